"""Disk add / grow / remove of an existing instance (gnt-instance modify --disk add|remove, grow-disk).

The declared ``disks`` list is compared by position with the instance's: a
longer list adds disks at the end, a larger size grows one, a shorter list
removes the trailing disks only with ``remove_disks: true`` (no instance disk
is deleted unless the operator asked). Like Ganeti, a disk is never removed
from a running instance without hotplug; herd does not hot-plug yet, so a
removal needs the instance stopped in the same run (``state: stopped``, or
``restart_on_change: true``, which stops it, removes and starts it again). An
added disk is created at once and attached at the instance's next start.

drbd: every new disk gets its minors (free in the config and on both nodes)
and its own port through the config's one allocator, and a secret; it is
created on both nodes (LVs, metadata, up, primary on the primary) and the
operation waits until it is in sync. Each disk is recorded in the job before
it is created and registers its removal as undo, so a failure half-way
removes what was made; a killed run is repaired by the next operation on the
instance (``repair_modify``): any disk the job recorded that the config does
not hold goes. The same record covers removals: the config drops the disks
first, then their volumes go, so a run killed in between leaves volumes the
repair removes, never a config pointing at a deleted disk.

In ``instance.InstanceModify``'s phases: ``plan``, ``check_running`` and
``check_add`` are prerequisites (they touch nothing); ``allocate_drbd``,
``create`` and ``record_removal`` run in the execute phase before the commit,
``remove_volumes`` after it (the config no longer holds those disks).
"""

import secrets
import time
from typing import Any, Dict, List, Optional

from ..config import DRBD_META_SIZE_MIB, Config, Disk, Instance, new_uuid
from ..errors import HerdError, PrerequisiteError, RpcError
from . import nodecalls
from .common import Context
from .instance_spec import SYNC_TIMEOUT
from .recovery import nodes_gone, repairs

POLL_INTERVAL = 2.0
STALL_POLLS = 30        # polls a new disk may stay neither in sync nor syncing


def plan(inst: Instance, spec: Dict[str, Any]) -> Dict[str, Any]:
    """The disk changes the declared ``disks`` ask for: {"grow": [(index, MiB)], "add_disks":
    [declared disk], "remove_disks": [index]}; only the keys that have something. Touches nothing."""
    changes: Dict[str, Any] = {}
    declared_disks = spec.get("disks")
    if declared_disks is None:
        return changes
    if inst.disk_template == "diskless" and declared_disks:
        raise PrerequisiteError(f"instance {inst.name} is diskless: it cannot have disks (the disk template "
                                "cannot be converted; create a new instance)")
    grow, add = [], []
    for index, declared in enumerate(declared_disks):
        if index >= len(inst.disks):
            if declared.get("adopt"):
                raise PrerequisiteError(f"instance {inst.name}: disks[{index}] adopts {declared['adopt']}: LVs are "
                                        "adopted only when the instance is created")
            add.append(declared)
            continue
        current = inst.disks[index]
        if declared.get("adopt"):  # an adopted disk: its size is the LV's (grow it by declaring size instead)
            if declared["adopt"] != current.logical_id.get("lv"):
                raise PrerequisiteError(f"instance {inst.name}: disk {index} is not the adopted LV "
                                        f"{declared['adopt']} (disks are adopted only at creation)")
            declared = dict(declared, size=current.size)
        if declared.get("vg") and declared["vg"] != (current.vg or declared["vg"]):
            raise PrerequisiteError(f"instance {inst.name}: disk {index} is in volume group {current.vg}, declared "
                                    f"{declared['vg']}: a disk does not move between volume groups")
        if declared["size"] < current.size:
            raise PrerequisiteError(f"instance {inst.name}: disk {index} is {current.size} MiB, declared "
                                    f"{declared['size']} MiB: disks never shrink")
        if declared["size"] > current.size:
            grow.append((index, declared["size"]))
    removed = list(range(len(declared_disks), len(inst.disks)))
    if removed:
        gone = ", ".join(f"disk {i} ({inst.disks[i].size} MiB"
                         + (f", {inst.disks[i].name}" if inst.disks[i].name else "") + ")" for i in removed)
        if not spec.get("remove_disks"):
            raise PrerequisiteError(f"instance {inst.name} has {len(inst.disks)} disks, {len(declared_disks)} "
                                    f"declared: that would delete {gone} with their data. Set remove_disks: true "
                                    "to remove them (the trailing disks only)")
        if not declared_disks:
            raise PrerequisiteError(f"instance {inst.name}: a {inst.disk_template} instance keeps at least one "
                                    "disk (remove the instance to delete them all)")
        changes["remove_disks"] = removed
    if grow:
        changes["grow"] = grow
    if add:
        changes["add_disks"] = add
    return changes


def check_running(inst: Instance, changes: Dict[str, Any], running: bool, stops: bool) -> None:
    """Ganeti's rule without hotplug: no disk leaves a running instance."""
    if changes.get("remove_disks") and running and not stops:
        raise PrerequisiteError(f"instance {inst.name} is running: removing disks "
                                f"{changes['remove_disks']} needs it stopped (herd does not hot-unplug disks). "
                                "Declare state: stopped, or restart_on_change: true to stop it, remove them and "
                                "start it again")


def space_needed(config: Config, inst: Instance, disks: List[Disk]) -> Dict[str, int]:
    """{volume group: MiB} that ``disks`` of ``inst`` take on each node holding them (drbd: data
    plus the metadata volume); nothing for file, sharedfile and diskless."""
    need: Dict[str, int] = {}
    if inst.disk_template not in ("plain", "drbd"):
        return need
    metavg = config.cluster.diskparams.get("drbd", {}).get("metavg")
    for disk in disks:
        vg = disk.logical_id.get("vg") or disk.vg or config.cluster.volume_group
        need[vg] = need.get(vg, 0) + disk.size
        if inst.disk_template == "drbd":
            meta_vg = disk.logical_id.get("meta_vg") or metavg or vg
            need[meta_vg] = need.get(meta_vg, 0) + DRBD_META_SIZE_MIB
    return need


def check_room(ctx: Context, config: Config, node: str, need: Dict[str, int], purpose: str, what: str) -> None:
    """Refuse before anything is made when ``node`` lacks a volume group or the room ``need``
    asks for (``what``: the disks, as the message names them)."""
    for vg, mib in sorted(need.items()):
        try:
            facts = nodecalls.call(ctx, config, node, "node_facts", {"vg": vg}, timeout=30)
        except RpcError as exc:
            raise PrerequisiteError(f"{purpose}: {node} does not answer: {exc}") from None
        group = facts.get("volume_group") or {}
        if not group.get("present"):
            raise PrerequisiteError(f"{purpose}: volume group {vg} does not exist on {node} "
                                    f"({group.get('error') or 'not found'})")
        if group.get("free", 0) < mib:
            raise PrerequisiteError(f"{purpose}: {node} has {group.get('free', 0)} MiB free in volume group {vg}; "
                                    f"{what} need {mib} MiB there")


def new_space(config: Config, inst: Instance) -> Dict[str, int]:
    """{volume group: MiB} a new instance's disks take on each of its nodes: an adopted LV
    (``logical_id["adopted"]``) already holds its space and takes none."""
    return space_needed(config, inst, [d for d in inst.disks if not d.logical_id.get("adopted")])


def check_other_vgs(ctx: Context, config: Config, inst: Instance) -> None:
    """A new instance's room in volume groups other than the cluster's, on each of its nodes,
    before anything is made: the allocator judged only the cluster's volume group (the one
    storage unit each node reports to it, as Ganeti reports one to htools)."""
    need = {vg: mib for vg, mib in new_space(config, inst).items() if vg != config.cluster.volume_group}
    for node in inst.nodes() if need else []:
        check_room(ctx, config, node, need, f"instance {inst.name}", "its disks")


def check_add(ctx: Context, config: Config, target: Instance, added: List[int]) -> None:
    """Before anything is made (check mode too): every node that will hold the new disks answers
    and has room for them in its volume groups (an offline node is refused by the call itself)."""
    if not added:
        return
    nodes = nodecalls.disk_nodes(target)
    need = space_needed(config, target, [target.disks[i] for i in added])
    sizes = ", ".join(f"disk {i} ({target.disks[i].size} MiB)" for i in added)
    for node in nodes:
        check_room(ctx, config, node, need, f"instance {target.name}: adding {sizes}", "the new disks")


def new_disks(inst: Instance, declared: List[Dict[str, Any]]) -> List[Disk]:
    """The Disk entries of the disks to add (their identifiers are generated here, once)."""
    return [Disk(uuid=new_uuid(), size=d["size"], name=d["name"], vg=d["vg"]) for d in declared]


def minors_in_use(ctx: Context, config: Config, node: str, purpose: str) -> List[int]:
    """The DRBD minors ``node`` has configured right now (its kernel's view, which the config
    may not know: removals on an offline node, failed steps of earlier jobs)."""
    try:
        live = nodecalls.call(ctx, config, node, "drbd_status", {}, timeout=30)
    except RpcError as exc:
        raise PrerequisiteError(f"{purpose}: {node} does not answer: {exc}") from None
    if not live.get("loaded"):
        raise PrerequisiteError(f"{purpose}: {node} has no DRBD kernel module loaded "
                                "(load it with the herd.cluster.node_drbd role, or modprobe drbd)")
    return sorted(int(m) for m, status in (live.get("minors") or {}).items()
                  if (status or {}).get("cs") != "Unconfigured")


def allocate_drbd(ctx: Context, config: Config, inst: Instance, first: int) -> None:
    """Minors on both nodes (free in the config and on the node), a port and a secret for each
    drbd disk from index ``first`` on (0 at create; the new disks at a disk add), allocated once
    and kept. The config's one allocator, which skips what every instance already holds."""
    count = len(inst.disks) - first
    if count <= 0 or inst.disk_template != "drbd":
        return
    per_node = {node: config.allocate_minors(node, count, minors_in_use(ctx, config, node, f"instance {inst.name}"))
                for node in inst.nodes()}
    reserved = {inst.network_port} if inst.network_port else set()
    for offset, disk in enumerate(inst.disks[first:]):
        port = config.allocate_port(reserved)
        reserved.add(port)
        disk.logical_id.update({"minors": {node: minors[offset] for node, minors in per_node.items()},
                                "port": port, "secret": secrets.token_hex(16)})


def drbd_state(ctx: Context, config: Config, inst: Instance, index: int, node: str,
               timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
    """Disk ``index``'s DRBD status on ``node`` (None: not configured there)."""
    answer = nodecalls.call(ctx, config, node, "drbd_status",
                            nodecalls.disk_args(config, inst, inst.disks[index], index, node), timeout=timeout)
    if not answer.get("loaded"):
        raise PrerequisiteError(f"the DRBD kernel module is not loaded on {node} (load it with the "
                                "herd.cluster.node_drbd role, or modprobe drbd)")
    return answer.get("status")


def in_sync(status: Optional[Dict[str, Any]]) -> bool:
    s = status or {}
    return bool(s.get("connected") and s.get("disk_uptodate") and s.get("peer_uptodate"))


def disk_record(inst: Instance, index: int, kind: str) -> Dict[str, Any]:
    """What removing one disk needs without the config: the instance's identity and nodes, the
    disk (the DRBD secret stays out of the journal; removal does not need it)."""
    disk = inst.disks[index]
    return {"kind": kind, "index": index,
            "instance": {"name": inst.name, "uuid": inst.uuid, "disk_template": inst.disk_template,
                         "hypervisor": inst.hypervisor, "os": inst.os, "primary_node": inst.primary_node,
                         "secondary_node": inst.secondary_node},
            "disk": {"uuid": disk.uuid, "size": disk.size, "name": disk.name, "vg": disk.vg,
                     "logical_id": {k: v for k, v in disk.logical_id.items() if k != "secret"}}}


def create(ctx: Context, job: Any, config: Config, target: Instance, indices: List[int],
           wait: bool = True, sync_timeout: float = SYNC_TIMEOUT) -> None:
    """Create the new disks ``indices`` of ``target`` on their nodes; each registers its removal
    first. drbd: then, with ``wait``, wait until they are UpToDate on both nodes."""
    for index in indices:
        with job.step(f"create disk {index}", size=target.disks[index].size):
            job.record_created(disk_record(target, index, "disk"))
            job.on_undo(f"remove disk {index}", _remover(ctx, config, target, index))
            nodecalls.disk_create(ctx, config, target, index)
    if target.disk_template == "drbd" and indices and wait:
        with job.step("wait for the new disks to sync", disks=indices):
            wait_for_sync(ctx, job, config, target, indices, sync_timeout)


def _remover(ctx: Context, config: Config, inst: Instance, index: int) -> Any:
    return lambda: nodecalls.disk_remove(ctx, config, inst, index)


def record_removal(job: Any, inst: Instance, indices: List[int]) -> None:
    """Name the disks about to leave the config, before the commit (recovery finishes their removal)."""
    for index in indices:
        job.record_created(disk_record(inst, index, "disk_removed"))


def remove_volumes(ctx: Context, job: Any, config: Config, inst: Instance, indices: List[int]) -> List[str]:
    """Remove the volumes of disks the config no longer holds; what could not be removed, one line each."""
    problems: List[str] = []
    for index in reversed(indices):
        with job.step(f"remove disk {index}"):
            try:
                problems += nodecalls.disk_remove(ctx, config, inst, index, ignore_offline=True)
            except (RpcError, HerdError) as exc:
                problems.append(f"disk {index} of {inst.name} ({inst.disks[index].uuid}) left its volumes: {exc}; "
                                "cluster_verify reports them as orphans")
    return problems


def wait_for_sync(ctx: Context, job: Any, config: Config, inst: Instance, indices: List[int],
                  timeout: float) -> None:
    """Poll the primary until the disks ``indices`` are Connected and UpToDate/UpToDate."""
    deadline = time.monotonic() + timeout
    stalled = {i: 0 for i in indices}
    while True:
        parts, done = [], True
        for index in indices:
            try:
                state = drbd_state(ctx, config, inst, index, inst.primary_node) or {}
            except RpcError as exc:
                state = {"cs": f"unknown ({exc})"}
            if in_sync(state):
                parts.append(f"disk {index} in sync")
                continue
            done = False
            if state.get("in_resync"):
                stalled[index] = 0
                parts.append(f"disk {index} {float(state.get('sync_percent') or 0):.1f}% synced")
                continue
            stalled[index] += 1
            word = f"cs:{state.get('cs', 'Unconfigured')} ds:{state.get('disk')}/{state.get('peer_disk')}"
            parts.append(f"disk {index} {word}")
            if stalled[index] > STALL_POLLS:
                raise HerdError(f"new disk {index} of {inst.name} does not sync between {inst.primary_node} and "
                                f"{inst.secondary_node} ({word})")
        job.log("; ".join(parts))
        if done:
            return
        if time.monotonic() >= deadline:
            raise HerdError(f"the new disks of {inst.name} did not sync within {timeout:g} s: " + "; ".join(parts))
        time.sleep(POLL_INTERVAL)


@repairs("instance_modify")
def repair_modify(ctx: Context, locks: Any, config: Config, inst: Optional[Instance],
                  job: Dict[str, Any]) -> List[str]:
    """An interrupted modify: every disk it recorded (created, or dropped from the config) whose
    UUID the config's instance does not hold is removed from its nodes."""
    lines = []
    held = {d.uuid for d in inst.disks} if inst is not None else set()
    for entry in reversed(job.get("created") or []):
        if entry.get("kind") not in ("disk", "disk_removed") or entry["disk"]["uuid"] in held:
            continue
        record, index = entry["instance"], entry["index"]
        gone = nodes_gone(config, record)
        if gone:
            lines.append(f"job {job['id']}: disk {index} of {record['name']} left on {gone} (node gone or offline; "
                         "cluster_verify reports it)")
            continue
        disk = entry["disk"]
        orphan = Instance(name=record["name"], uuid=record["uuid"], primary_node=record["primary_node"],
                          secondary_node=record.get("secondary_node"), hypervisor=record["hypervisor"],
                          disk_template=record["disk_template"], os=record.get("os") or "noop")
        # disk_args addresses the disk by index: pad so that it sits where it was
        orphan.disks = [Disk(uuid=new_uuid(), size=0) for _index in range(index)] + [
            Disk(uuid=disk["uuid"], size=disk["size"], name=disk.get("name"), vg=disk.get("vg"),
                 # drbdadm down needs a resource file; the secret in it plays no part
                 logical_id=dict(disk.get("logical_id") or {}, secret=secrets.token_hex(16)))]
        try:
            nodecalls.disk_remove(ctx, config, orphan, index)
            lines.append(f"removed disk {index} ({disk['uuid']}) of {record['name']} left by job {job['id']}")
        except (RpcError, HerdError) as exc:
            lines.append(f"job {job['id']}: could not remove disk {index} of {record['name']}: {exc}")
    ctx.warnings.extend(lines)
    return lines
