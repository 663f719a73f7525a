"""Values the node agent checks, checked by the master with the very same functions.

A value the master accepts but the agent refuses fails after disks exist, or, at cluster
level, breaks every later start and migration. So the master runs the agent's own
validators before anything is touched: ``hypervisor.base.check_hvparams`` (what
``InstanceSpec.from_dict`` runs on the node) and ``storage.drbd.check_params`` (what the
DRBD template runs on the node). There is no second copy of those rules here.
"""

from typing import Any, Dict, List, Optional

from .config import Cluster, Config, Instance
from .errors import ValidationError
from .hypervisor.base import NicSpec, check_hvparams, check_vnc_password, vnc_bind_is_remote


def hvparams(params: Any, where: str = "hvparams") -> Dict[str, Any]:
    """Effective hypervisor parameters as the node will check them (defaults filled in)."""
    try:
        return check_hvparams(params)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None


def effective_hvparams(cluster: Cluster, hypervisor: str, own: Optional[Dict[str, Any]] = None
                       ) -> Dict[str, Any]:
    """An instance's hvparams as its node receives them: cluster values, then its own."""
    merged = dict(cluster.hvparams.get(hypervisor, {}))
    merged.update(own or {})
    return merged


def instance_hvparams(cluster: Cluster, hypervisor: str, own: Optional[Dict[str, Any]], name: str
                      ) -> Dict[str, Any]:
    return hvparams(effective_hvparams(cluster, hypervisor, own), f"instance {name} hvparams")


def drbd_params(params: Any, where: str = "diskparams.drbd") -> Dict[str, Any]:
    """Effective DRBD parameters as the node will check them (protocol, rates, hmac ...)."""
    # imported here: only DRBD instances need it, and a module task compiles all it imports
    from .storage.drbd import check_params as check_drbd_params

    try:
        return check_drbd_params(params)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None


def cluster_values(config: Config) -> None:
    """Every cluster-level value a node checks, and every instance's effective hvparams
    under them: a bad cluster value would otherwise break every start and migration."""
    cluster = config.cluster
    for hypervisor in sorted(cluster.hvparams):
        hvparams(cluster.hvparams[hypervisor], f"cluster hvparams.{hypervisor}")
    drbd_params(cluster.diskparams.get("drbd"), "cluster diskparams.drbd")
    for inst in sorted(config.instances.values(), key=lambda i: i.name):
        instance_hvparams(cluster, inst.hypervisor, inst.hvparams, inst.name)


def vnc_password(cluster: Cluster, inst: Instance) -> None:
    """A VNC password (what the node checks), and only where QEMU uses it: VNC on a non-local
    address (a loopback-bound server is reached through SSH, which authenticates already)."""
    if not inst.vnc_password:
        return
    try:
        check_vnc_password(inst.vnc_password)
    except ValidationError as exc:
        raise ValidationError(f"instance {inst.name}: {exc}") from None
    bind = effective_hvparams(cluster, inst.hypervisor, inst.hvparams).get(
        "vnc_bind_address", check_hvparams({})["vnc_bind_address"])
    if inst.hypervisor != "kvm" or not vnc_bind_is_remote(bind):
        raise ValidationError(f"instance {inst.name}: vnc_password is only used when VNC listens on a non-local "
                              f"address; its hvparams.vnc_bind_address is {bind!r} (set it to the node address "
                              "VNC clients connect to, or 0.0.0.0)")


def nic_mode(value: Any, where: str) -> str:
    """A NIC mode the nodes set up (``hypervisor.base.NIC_MODES``)."""
    return nic({"mac": "aa:00:00:00:00:00", "mode": value, "link": "br0"}, where).mode


def nic(params: Dict[str, Any], where: str) -> NicSpec:
    """A NIC (mac, mode, link, vlan) as the node checks it in the instance spec."""
    try:
        return NicSpec.from_dict(params, 0)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {str(exc).replace('nics[0] ', '')}") from None


def instance_nics(inst: Instance) -> List[NicSpec]:
    """The instance's NICs with their effective mode, link and vlan, as its nodes will check them."""
    return [nic({"mac": n.mac, "mode": n.mode, "link": n.link, "vlan": n.vlan}, f"instance {inst.name} nics[{i}]")
            for i, n in enumerate(inst.nics)]


def new_instance(config: Config, inst: Instance) -> None:
    """What the nodes will check for a new or modified instance, before any disk exists."""
    instance_hvparams(config.cluster, inst.hypervisor, inst.hvparams, inst.name)
    vnc_password(config.cluster, inst)
    if inst.disk_template == "drbd":
        drbd_params(config.cluster.diskparams.get("drbd"), "cluster diskparams.drbd")
