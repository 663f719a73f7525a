"""What the master asks a node about an instance: the one place that maps
instance operations onto the node agent's storage and hypervisor verbs."""

from typing import Any, Dict, List, Optional

from .. import validate as node_checks
from ..config import Config, Disk, Instance
from ..errors import PrerequisiteError, RpcError
from .common import Context
from .instance_spec import effective_beparams, effective_hvparams


def storage_context(config: Config) -> Dict[str, Any]:
    cluster = config.cluster
    return {"vg": cluster.volume_group, "file_storage_dir": cluster.file_storage_dir,
            "shared_file_storage_dir": cluster.shared_file_storage_dir}


def disk_args(config: Config, inst: Instance, disk: Disk, index: int, node: str) -> Dict[str, Any]:
    data = {"template": inst.disk_template, "instance": inst.name, "index": index,
            "disk": {"uuid": disk.uuid, "size": disk.size, "name": disk.name, "vg": disk.vg or config.cluster.volume_group,
                     "logical_id": dict(disk.logical_id)},
            "node": node, "storage": storage_context(config)}
    if inst.disk_template == "drbd":
        data["drbd"] = drbd_peers(config, inst, disk, node)
    return data


def drbd_peers(config: Config, inst: Instance, disk: Disk, node: str) -> Dict[str, Any]:
    nodes = [inst.primary_node, inst.secondary_node]
    return {"local": node, "nodes": {n: {"address": config.nodes[n].secondary_ip,
                                         "minor": disk.logical_id.get("minors", {}).get(n)} for n in nodes if n},
            "port": disk.logical_id.get("port"), "secret": disk.logical_id.get("secret"),
            "primary": inst.primary_node, "params": dict(config.cluster.diskparams.get("drbd", {}))}


def call(ctx: Context, config: Config, node: str, verb: str, args: Dict[str, Any],
         timeout: Optional[float] = None) -> Dict[str, Any]:
    if config.nodes[node].offline:
        raise PrerequisiteError(f"node {node} is offline; cannot run {verb} there")
    return ctx.rpc.call(ctx.endpoint(config.nodes[node], config), verb, args, timeout)


def disk_nodes(inst: Instance) -> List[str]:
    """Nodes that hold a copy of the instance's disks (sharedfile: the primary creates it once)."""
    if inst.disk_template == "diskless":
        return []
    if inst.disk_template == "drbd":
        return [inst.primary_node, inst.secondary_node]  # type: ignore[list-item]
    return [inst.primary_node]


def disk_create(ctx: Context, config: Config, inst: Instance, index: int) -> None:
    disk = inst.disks[index]
    for node in disk_nodes(inst):
        result = call(ctx, config, node, "disk_create", disk_args(config, inst, disk, index, node))
        for key, value in (result.get("logical_id") or {}).items():
            if key == "minors":
                disk.logical_id.setdefault("minors", {}).update(value)
            else:
                disk.logical_id[key] = value


def disk_remove(ctx: Context, config: Config, inst: Instance, index: int, ignore_offline: bool = False) -> List[str]:
    problems = []
    disk = inst.disks[index]
    for node in disk_nodes(inst):
        if config.nodes[node].offline and ignore_offline:
            problems.append(f"{node} is offline: disk {index} of {inst.name} left there (cluster_verify reports it)")
            continue
        call(ctx, config, node, "disk_remove", disk_args(config, inst, disk, index, node))
    return problems


def disk_grow(ctx: Context, config: Config, inst: Instance, index: int, new_size: int) -> None:
    disk = inst.disks[index]
    for node in disk_nodes(inst):
        args = disk_args(config, inst, disk, index, node)
        args["new_size"] = new_size
        call(ctx, config, node, "disk_grow", args)


def assemble(ctx: Context, config: Config, inst: Instance, node: str) -> List[Dict[str, Any]]:
    """Assemble the disks on ``node``: [{"path", "format"}] as the hypervisor opens them."""
    disks = []
    for index, disk in enumerate(inst.disks):
        result = call(ctx, config, node, "disk_assemble", disk_args(config, inst, disk, index, node))
        disks.append({"path": result["path"], "format": result.get("format") or "raw"})
    return disks


def disk_paths(ctx: Context, config: Config, inst: Instance, node: str) -> List[str]:
    return [d["path"] for d in assemble(ctx, config, inst, node)]


def os_install(ctx: Context, config: Config, inst: Instance) -> None:
    """Run the OS provider on the primary; a cloud-init seed also goes to the drbd secondary,
    which must be able to start the instance after a failover."""
    if inst.os == "noop":
        return
    node = inst.primary_node
    args = {"instance": inst.name, "uuid": inst.uuid, "os": inst.os, "osparams": dict(inst.osparams),
            "disk_path": disk_paths(ctx, config, inst, node)[0] if inst.disks else None,
            "storage": storage_context(config), "template": inst.disk_template}
    call(ctx, config, node, "os_install", args, timeout=1800)
    if inst.os == "cloud_init" and inst.disk_template == "drbd" and inst.secondary_node:
        seed_to(ctx, config, inst, inst.secondary_node)


def seed_to(ctx: Context, config: Config, inst: Instance, node: str) -> None:
    """Make sure ``node`` has the instance's cloud-init seed (it is node-local unless the
    instance's disks are sharedfile); idempotent on the agent's side."""
    if inst.os != "cloud_init" or inst.disk_template == "sharedfile":
        return
    call(ctx, config, node, "cloud_init_seed_create",
         {"instance": inst.name, "uuid": inst.uuid, "osparams": dict(inst.osparams),
          "storage": storage_context(config), "template": inst.disk_template})


def os_remove(ctx: Context, config: Config, inst: Instance) -> List[str]:
    """Remove what the OS provider kept with the instance (the cloud-init seed)."""
    problems: List[str] = []
    if inst.os != "cloud_init":
        return problems
    nodes = inst.nodes() if inst.disk_template != "sharedfile" else [inst.primary_node]
    for node in nodes:
        if config.nodes[node].offline:
            problems.append(f"{node} is offline: the cloud-init seed of {inst.name} is left there")
            continue
        call(ctx, config, node, "cloud_init_seed_remove",
             {"instance": inst.name, "storage": storage_context(config), "template": inst.disk_template})
    return problems


def runtime_spec(config: Config, inst: Instance, assembled: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Everything the hypervisor needs to build the machine, from the config."""
    hvparams = effective_hvparams(config, inst)
    beparams = effective_beparams(config, inst)
    return {
        "name": inst.name, "uuid": inst.uuid, "hypervisor": inst.hypervisor,
        "memory": beparams["maxmem"],
        "vcpus": beparams["vcpus"],
        "hvparams": hvparams,
        "disks": [{"path": a["path"], "format": a["format"], "uuid": d.uuid, "size": d.size, "index": i}
                  for i, (d, a) in enumerate(zip(inst.disks, assembled))],
        "nics": [{"mac": n.mac, "link": n.link, "mode": n.mode, "vlan": n.vlan, "index": i} for i, n in enumerate(inst.nics)],
        "network_port": inst.network_port,
        "os": inst.os,
        "cloud_init": inst.os == "cloud_init",
        "storage": storage_context(config),
        "uefi_vars": uefi_vars_path(config, inst),
        "cdrom": seed_path(config, inst),
        "vnc_password": inst.vnc_password,
    }


def call_each(ctx: Context, config: Config, nodes: List[str], verb: str, args: Dict[str, Any],
              timeout: Optional[float] = None) -> Dict[str, Dict[str, Any]]:
    """The same call on several nodes in one parallel round; {node: answer}. An offline node or
    a failed call raises, as :func:`call` does, the first in the nodes' order."""
    for node in nodes:
        if config.nodes[node].offline:
            raise PrerequisiteError(f"node {node} is offline; cannot run {verb} there")
    answers = ctx.rpc.call_many([(ctx.endpoint(config.nodes[n], config), verb, args) for n in nodes], timeout)
    out: Dict[str, Dict[str, Any]] = {}
    for node in nodes:
        answer = answers[node]
        if isinstance(answer, RpcError):
            raise answer
        out[node] = answer
    return out


def check_nodes_run(ctx: Context, config: Config, inst: Instance) -> None:
    """Before anything is touched: each of the instance's nodes (the secondary runs it after a
    failover) has what its hypervisor needs for these hvparams (QEMU, the CPU model, KVM,
    firmware), checked by the node with the check its start runs; then its Open vSwitch links."""
    answers = call_each(ctx, config, inst.nodes(), "hypervisor_check",
                        {"hypervisor": inst.hypervisor, "hvparams": effective_hvparams(config, inst)})
    problems = [p for node in inst.nodes() for p in answers[node]["problems"]]
    if problems:
        raise PrerequisiteError("; ".join(problems))
    check_ovs_links(ctx, config, inst)


def check_ovs_links(ctx: Context, config: Config, inst: Instance) -> None:
    """Before anything is touched: every NIC of mode openvswitch has its link as an Open vSwitch
    bridge on each of the instance's nodes (the secondary runs it after a failover), checked
    by the node with the check its start runs. Bridged links are checked by the start itself."""
    node_checks.instance_nics(inst)
    nics = [{"mac": n.mac, "link": n.link, "mode": n.mode, "vlan": n.vlan, "index": i}
            for i, n in enumerate(inst.nics) if n.mode == "openvswitch"]
    if not nics:
        return
    answers = call_each(ctx, config, inst.nodes(), "nic_check", {"name": inst.name, "nics": nics})
    problems = [p for node in inst.nodes() for p in answers[node]["problems"]]
    if problems:
        raise PrerequisiteError("; ".join(problems))


def seed_path(config: Config, inst: Instance) -> Optional[str]:
    """The NoCloud seed ISO the node agent writes (one rule, in storage/osprov.py)."""
    if inst.os != "cloud_init":
        return None
    from ..storage.base import StorageContext
    from ..storage.osprov import seed_path as agent_seed_path

    return agent_seed_path(StorageContext.from_dict(storage_context(config)), inst.name, inst.disk_template)


def uefi_vars_path(config: Config, inst: Instance) -> Optional[str]:
    """The instance's own OVMF variables: on shared storage for sharedfile (so a migration
    target opens the same file), node-local (the agent's default) otherwise."""
    if effective_hvparams(config, inst).get("firmware") != "uefi":
        return None
    if inst.disk_template == "sharedfile":
        return f"{config.cluster.shared_file_storage_dir}/{inst.name}/{inst.uuid}.OVMF_VARS.fd"
    return None


def carry_uefi_vars(ctx: Context, config: Config, inst: Instance, source: str, target: str) -> Optional[str]:
    """Copy the instance's node-local UEFI variables from ``source`` to ``target`` before it
    runs there (migration, failover), so it keeps its boot entries and Secure Boot state.
    Returns a warning when they cannot be carried (the target then starts from the template)."""
    if effective_hvparams(config, inst).get("firmware") != "uefi" or uefi_vars_path(config, inst):
        return None  # no variables, or on shared storage that both nodes open
    args = {"name": inst.name, "uuid": inst.uuid, "hypervisor": inst.hypervisor}
    try:
        got = call(ctx, config, source, "uefi_vars_get", args)
    except (RpcError, PrerequisiteError) as exc:
        return (f"the UEFI variables of {inst.name} could not be read on {source} ({exc}): it starts on {target} "
                "with the variables it has there, or fresh ones")
    if not got.get("exists"):
        return None
    call(ctx, config, target, "uefi_vars_put", dict(args, data=got["data"], sha256=got["sha256"]))
    return None


def instance_start(ctx: Context, config: Config, inst: Instance, node: Optional[str] = None,
                   timeout: float = 300) -> Dict[str, Any]:
    node = node or inst.primary_node
    spec = runtime_spec(config, inst, assemble(ctx, config, inst, node))
    return call(ctx, config, node, "instance_start", {"instance": spec}, timeout=timeout)


def instance_stop(ctx: Context, config: Config, inst: Instance, node: Optional[str] = None,
                  timeout: int = 120, force: bool = False) -> Dict[str, Any]:
    node = node or inst.primary_node
    return call(ctx, config, node, "instance_stop",
                {"name": inst.name, "hypervisor": inst.hypervisor, "timeout": timeout, "force": force},
                timeout=timeout + 60)


def instance_disk_grown(ctx: Context, config: Config, inst: Instance, index: int, size: int) -> Dict[str, Any]:
    """Tell the instance's running guest that disk ``index`` now has ``size`` MiB."""
    return call(ctx, config, inst.primary_node, "instance_disk_grown",
                {"name": inst.name, "hypervisor": inst.hypervisor, "index": index, "size": size})


def instance_cleanup(ctx: Context, config: Config, inst: Instance, node: str, purge: bool = False) -> Dict[str, Any]:
    """Remove runtime files (runtime spec, sockets) of a stopped instance on a node; with ``purge``
    (instance removal) also what is kept with the instance (the UEFI variables)."""
    return call(ctx, config, node, "instance_cleanup",
                {"name": inst.name, "uuid": inst.uuid, "hypervisor": inst.hypervisor, "purge": purge,
                 "uefi_vars": uefi_vars_path(config, inst)})


def running_on(ctx: Context, config: Config, nodes: List[str], hypervisor: Optional[str] = None,
               every_state: bool = False) -> Dict[str, Any]:
    """{node: {instance: info} or RpcError} for online nodes.

    By default only running (or paused) instances, as Ganeti lists them; with
    ``every_state`` also ``incoming`` (a migration target) and ``migrated`` (a
    source whose guest moved) processes, which a migration cleanup needs.
    """
    hypervisors = sorted(set(config.cluster.enabled_hypervisors)) if hypervisor is None else [hypervisor]
    calls = [(ctx.endpoint(config.nodes[n], config), "instance_list",
              {"hypervisors": hypervisors, "all": every_state})
             for n in nodes if not config.nodes[n].offline]
    answers = ctx.rpc.call_many(calls, timeout=60)
    out: Dict[str, Any] = {}
    for name, answer in answers.items():
        out[name] = answer if isinstance(answer, RpcError) else answer.get("instances", {})
    return out
