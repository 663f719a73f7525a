"""Tap devices for instance NICs (standard library only; uses ip and bridge from iproute2).

Tap names are deterministic: "hv" + the first 11 hex digits of the instance's
UUID + the NIC index ("hv1a2b3c4d5e60", at most 15 bytes), so a migration
target uses the same names as the source. UUIDs are unique in the cluster,
names derived from them need no hash of a name that anyone can choose.

Each tap carries its owner in the link's alias ("herd <uuid> <name>"): a tap
that exists with another owner is never taken over (create refuses it) nor
deleted by the cleanup of another instance (remove leaves it), so even a
collision of the 11 digits cannot hurt another instance's network.

NICs of mode openvswitch: the tap is a port of an Open vSwitch bridge, the
NIC's vlan its tag (an access port). Open vSwitch keeps ports in its database
across reboots, also when their interface is gone, so a port carries its
owner in ``external_ids:herd-instance`` and is deleted with the tap (and, as
a stale record of the same owner, when the tap is already gone).
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
from typing import Any, Dict, List, Optional

from .. import names
from .base import HypervisorError

SYS_NET = "/sys/class/net"
TAP_PREFIX = "hv"
OVS_VSCTL = "ovs-vsctl"
# the kernel datapath every Open vSwitch port is enslaved to
OVS_MASTER = "ovs-system"
OVS_OWNER_KEY = "herd-instance"


def tap_name(instance_uuid: str, index: int) -> str:
    names.check_uuid(instance_uuid)
    if not isinstance(index, int) or not 0 <= index <= 99:
        raise HypervisorError(f"NIC index {index!r} must be 0 to 99")
    return f"{TAP_PREFIX}{instance_uuid.replace('-', '')[:11]}{index}"


def owner_alias(instance_uuid: str, instance: str) -> str:
    """The alias a tap of ``instance`` carries (IFALIASZ allows 255 bytes)."""
    return f"herd {instance_uuid} {instance}"[:255]


def legacy_tap_name(instance: str, index: int) -> str:
    """The name taps had before they were derived from the UUID (sha1 of the name), so a
    node upgraded with instances running still cleans their taps up."""
    return f"{TAP_PREFIX}{hashlib.sha1(instance.encode('utf-8')).hexdigest()[:8]}{index}"


def owner_of(tap: str) -> str:
    """The alias of ``tap`` ("" when it has none)."""
    return _read(os.path.join(SYS_NET, tap, "ifalias")) or ""


def owned_by(tap: str, instance: str) -> bool:
    """Whether ``tap`` is one of ``instance``'s taps (by its alias, or the legacy name)."""
    alias = owner_of(tap)
    if not alias:
        return re.fullmatch(re.escape(legacy_tap_name(instance, 0)[:-1]) + r"\d{1,2}", tap) is not None
    parts = alias.split(" ", 2)
    return len(parts) == 3 and parts[0] == "herd" and alias == owner_alias(parts[1], instance)


def node_name() -> str:
    """This node's name in messages (its hostname)."""
    return socket.gethostname()


def exists(ifname: str) -> bool:
    return os.path.exists(os.path.join(SYS_NET, ifname))


def is_bridge(ifname: str) -> bool:
    return os.path.isdir(os.path.join(SYS_NET, ifname, "bridge"))


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def vlan_aware(bridge: str) -> bool:
    return _read(os.path.join(SYS_NET, bridge, "bridge", "vlan_filtering")) == "1"


def master_of(ifname: str) -> Optional[str]:
    link = os.path.join(SYS_NET, ifname, "master")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def instance_taps(instance: str) -> List[str]:
    """Taps of ``instance`` that exist on this node."""
    try:
        candidates = os.listdir(SYS_NET)
    except OSError:
        return []
    return sorted(n for n in candidates if n.startswith(TAP_PREFIX) and owned_by(n, instance))


def _ip(args: List[str], what: str) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HypervisorError(f"{what}: {' '.join(args)} failed: {exc}") from None
    if proc.returncode != 0:
        raise HypervisorError(f"{what}: {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")


def check_bridge(bridge: str, vlan: Optional[int], what: str) -> Optional[str]:
    """The problem with using ``bridge`` (and ``vlan``) on this node, or None."""
    names.check_bridge(bridge)
    node = node_name()
    if not exists(bridge):
        return f"{what}: bridge {bridge} does not exist on node {node}"
    if not is_bridge(bridge):
        return f"{what}: {bridge} on node {node} is not a bridge"
    if vlan is not None and not vlan_aware(bridge):
        return (f"{what}: vlan {vlan} needs a VLAN-aware bridge, but {bridge} on node {node} has "
                "vlan_filtering 0")
    return None


def ovs_installed() -> bool:
    return shutil.which(OVS_VSCTL) is not None


def _ovs(args: List[str], what: str, check: bool = True) -> "tuple[int, str]":
    """Run ovs-vsctl (a timeout, so a stopped ovsdb-server cannot hang the agent); (rc, stdout)."""
    argv = [OVS_VSCTL, "--timeout=20", *args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HypervisorError(f"{what}: {' '.join(argv)} failed: {exc}") from None
    if check and proc.returncode != 0:
        raise HypervisorError(f"{what}: {' '.join(argv)} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.returncode, proc.stdout


def check_ovs_bridge(bridge: str, what: str) -> Optional[str]:
    """The problem with ``bridge`` as an Open vSwitch bridge on this node, or None."""
    names.check_bridge(bridge)
    node = node_name()
    if not ovs_installed():
        return (f"{what}: mode openvswitch needs Open vSwitch on node {node} ({OVS_VSCTL} not found; the "
                "node_network role installs it when node_network_ovs_bridges is set)")
    rc, _out = _ovs(["br-exists", bridge], what, check=False)
    if rc == 2:
        return f"{what}: {bridge} is not an Open vSwitch bridge on node {node} (ovs-vsctl br-exists {bridge})"
    if rc != 0:
        return f"{what}: ovs-vsctl br-exists {bridge} failed on node {node} (rc {rc}; is ovsdb-server running?)"
    return None


def check_link(link: str, mode: str, vlan: Optional[int], what: str) -> Optional[str]:
    """The problem with a NIC of ``mode`` on ``link`` (and ``vlan``) on this node, or None."""
    if mode == "openvswitch":
        return check_ovs_bridge(link, what)
    return check_bridge(link, vlan, what)


def create(tap: str, bridge: str, vlan: Optional[int], what: str, instance_uuid: str, instance: str,
           mode: str = "bridged") -> None:
    """Create ``tap`` (mode tap, vnet_hdr) for ``instance``, attach it to ``bridge`` (a Linux bridge,
    or an Open vSwitch bridge for mode openvswitch) with the bridge's MTU, up. A tap of that name
    that belongs to anything else is refused."""
    names.check_ifname(tap, "tap")
    owner = owner_alias(names.check_uuid(instance_uuid), names.check_instance_name(instance))
    problem = check_link(bridge, mode, vlan, what)
    if problem:
        raise HypervisorError(problem)
    if exists(tap):
        current = owner_of(tap)
        if current != owner:
            raise HypervisorError(f"{what}: tap {tap} already exists on node {node_name()} and belongs "
                                  f"to {current or 'something that is not a herd instance'}; refusing to take "
                                  "it over")
        remove(tap, instance)  # our own, left by a crash
    _ip(["ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"], what)
    try:
        _ip(["ip", "link", "set", "dev", tap, "alias", owner], what)
        mtu = _read(os.path.join(SYS_NET, bridge, "mtu"))
        if mtu and mtu.isdigit():
            _ip(["ip", "link", "set", "dev", tap, "mtu", mtu], what)
        if mode == "openvswitch":
            # A port record of this name left by a reboot (its interface gone) would keep its old
            # tag under --may-exist: drop it in the same transaction.
            _ovs(["--if-exists", "del-port", tap, "--", "--may-exist", "add-port", bridge, tap]
                 + ([f"tag={vlan}"] if vlan is not None else [])
                 + ["--", "set", "Port", tap, f"external_ids:{OVS_OWNER_KEY}={json.dumps(instance)}"], what)
        else:
            _ip(["ip", "link", "set", "dev", tap, "master", bridge], what)
        if mode != "openvswitch" and vlan is not None:
            pvid = _read(os.path.join(SYS_NET, bridge, "bridge", "default_pvid")) or "1"
            if pvid != "0":
                _ip(["bridge", "vlan", "del", "dev", tap, "vid", pvid], what)
            _ip(["bridge", "vlan", "add", "dev", tap, "vid", str(vlan), "pvid", "untagged"], what)
        _ip(["ip", "link", "set", "dev", tap, "up"], what)
    except HypervisorError:
        remove(tap, instance)
        raise


def remove(tap: str, instance: Optional[str] = None) -> bool:
    """Delete ``tap`` if it exists (and, when ``instance`` is given, only if it is that
    instance's); True when something was removed."""
    names.check_ifname(tap, "tap")
    if not exists(tap):
        return _remove_stale_ovs_port(tap, instance)
    if instance is not None and not owned_by(tap, instance):
        return False  # another instance's tap: never ours to delete
    if master_of(tap) == OVS_MASTER:
        _ovs(["--if-exists", "del-port", tap], f"tap {tap}", check=False)
    subprocess.run(["ip", "link", "del", "dev", tap], capture_output=True, timeout=30, check=False)
    return not exists(tap)


def ovs_port_owner(tap: str) -> Optional[str]:
    """The instance an Open vSwitch port named ``tap`` belongs to (None: no such port or no owner)."""
    if not ovs_installed():
        return None
    rc, out = _ovs(["--if-exists", "get", "Port", tap, f"external_ids:{OVS_OWNER_KEY}"], f"tap {tap}",
                   check=False)
    if rc != 0 or not out.strip():
        return None
    text = out.strip()
    if not text.startswith('"'):
        return text  # ovs-vsctl quotes a string only when it has to
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _remove_stale_ovs_port(tap: str, instance: Optional[str]) -> bool:
    """Delete the Open vSwitch port record of a tap that no longer exists, if it is ``instance``'s."""
    if instance is None or ovs_port_owner(tap) != instance:
        return False
    rc, _out = _ovs(["--if-exists", "del-port", tap], f"tap {tap}", check=False)
    return rc == 0


def ovs_port(tap: str) -> Optional[Dict[str, Any]]:
    """{"bridge", "tag"} of the Open vSwitch port ``tap`` (None when it is not one), for info and tests."""
    if not ovs_installed():
        return None
    rc, bridge = _ovs(["port-to-br", tap], f"tap {tap}", check=False)
    if rc != 0:
        return None
    _rc, tag = _ovs(["get", "Port", tap, "tag"], f"tap {tap}", check=False)
    tag = tag.strip()
    return {"bridge": bridge.strip(), "tag": int(tag) if tag.isdigit() else None}


def info(tap: str) -> Dict[str, Any]:
    """{"name", "bridge", "vlans"} of a tap: its Linux bridge and VLANs, or its Open vSwitch
    bridge and tag."""
    master = master_of(tap)
    if master == OVS_MASTER:
        port = ovs_port(tap) or {}
        return {"name": tap, "bridge": port.get("bridge"), "vlans": [port["tag"]] if port.get("tag") else []}
    return {"name": tap, "bridge": master, "vlans": vlans_of(tap)}


def vlans_of(tap: str) -> List[int]:
    """VLANs configured on ``tap`` (bridge vlan show), for info and tests."""
    try:
        out = subprocess.run(["bridge", "-j", "vlan", "show", "dev", tap], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    try:
        data = json.loads(out or "[]")
    except ValueError:
        return []
    return sorted(v["vlan"] for entry in data for v in entry.get("vlans", []) if "vlan" in v)
