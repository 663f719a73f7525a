"""Disk template conversion of a stopped instance, Ganeti's ``gnt-instance modify -t drbd|plain``.

plain -> drbd: the secondary comes from the operator (``secondary_node``) or the allocator
(the primary fixed); on the secondary a data and a meta LV and a DRBD device, on the
primary a meta LV and the existing LV renamed to DRBD's data LV, so the instance's data
is the device's content and the primary, forced Primary on fresh metadata, is the sync
source. The config switches once both sides are Connected and UpToDate. A failure before
that puts everything back: the secondary's volumes and the primary's meta LV and resource
file go, the data LV gets its plain name back.

drbd -> plain: both sides go down, the primary's data LV takes the plain name, the config
switches; then the secondary's volumes and the primary's meta LV and resource file go
(a failure there is a warning: cluster_verify reports what was left as orphans).
"""

import copy
import time
import secrets
from typing import Any, Callable, Dict, List, Optional

from ..config import Config, Disk, Instance, now
from ..errors import HerdError, PrerequisiteError, RpcError, ValidationError
from ..jobs import Job, Locks
from . import instance_disks, nodecalls, placement
from .common import Context, diff_dict
from .instance_spec import instance_view
from .phases import allocation_lock, node_locks
from .recovery import nodes_gone, repairs

CONVERSIONS = (("plain", "drbd"), ("drbd", "plain"))
SYNC_TIMEOUT = 86400.0
POLL_INTERVAL = 2.0
STALL_POLLS = 60  # polls (two minutes) the peers may stay unconnected before the conversion is undone


def requested(inst: Instance, spec: Dict[str, Any]) -> bool:
    """Whether the spec declares another disk template than the instance has."""
    return spec.get("disk_template") is not None and spec["disk_template"] != inst.disk_template


def plain_lv(inst: Instance, index: int) -> str:
    """The plain LV of disk ``index`` (an adopted disk keeps its own name)."""
    disk = inst.disks[index]
    return str(disk.logical_id.get("lv") or f"{disk.uuid}.disk{index}")


def data_lv(inst: Instance, index: int) -> str:
    return f"{inst.disks[index].uuid}.disk{index}_data"


def disk_vg(config: Config, inst: Instance, index: int) -> str:
    return inst.disks[index].vg or config.cluster.volume_group


def convert(ctx: Context, locks: Locks, spec: Dict[str, Any],
            then: Callable[[Context, Locks, Dict[str, Any]], Dict[str, Any]],
            status: Dict[str, Any]) -> Dict[str, Any]:
    """Convert, then ``then`` (the rest of the modify) for the spec's other declarations.
    ``status`` is the instance's run state as the modify found it (instance.instance_status)."""
    config = ctx.load_master_config()
    inst = config.instances[spec["name"]]
    source, target_template = inst.disk_template, spec["disk_template"]
    if (source, target_template) not in CONVERSIONS:
        raise PrerequisiteError(f"instance {inst.name}: converting {source} to {target_template} is not supported; "
                                "supported: " + ", ".join(f"{a} to {b}" for a, b in CONVERSIONS))
    if target_template not in config.cluster.enabled_disk_templates:
        raise PrerequisiteError(f"disk template {target_template} is not enabled in the cluster "
                                f"(enabled: {config.cluster.enabled_disk_templates})")
    if status["running"] or status["running_on"]:
        raise PrerequisiteError(f"instance {inst.name} is running on {', '.join(status['running_on'])}: stop it "
                                f"before converting its disks from {source} to {target_template} (declare "
                                "state: stopped)")
    if spec.get("state") in ("running", "restarted"):
        raise ValidationError(f"instance {inst.name}: a disk template conversion needs the instance stopped; "
                              f"declare state: stopped, not {spec['state']} (start it in a later task)")
    if target_template == "drbd":
        result = _to_drbd(ctx, locks, config, inst, spec)
    else:
        result = _to_plain(ctx, locks, config, inst, spec)
    result["status"] = status
    if ctx.check_mode:
        return result
    rest = then(ctx, locks, spec)
    if rest.get("changed"):
        result["actions"] += rest.get("actions", [])
        result["msg"] += "; then " + rest["msg"]
    result["instance"] = instance_view(ctx.store.load().instances[inst.name])
    result["diff"]["after"] = result["instance"]
    return result


def _result(inst: Instance, after: Instance, actions: List[str], verb: str) -> Dict[str, Any]:
    before_view, after_view = instance_view(inst), instance_view(after)
    return {"changed": True, "instance": after_view, "diff": diff_dict(before_view, after_view),
            "actions": actions, "msg": f"instance {inst.name} {verb}: " + ", ".join(actions)}


def _lv_call(ctx: Context, config: Config, inst: Instance, node: str, vg: str, old: str, new: str) -> None:
    nodecalls.call(ctx, config, node, "lv_rename", {"instance": inst.name, "vg": vg, "old": old, "new": new,
                                                    "storage": nodecalls.storage_context(config)})


# --------------------------------------------------------------------------- plain -> drbd

def _to_drbd(ctx: Context, locks: Locks, config: Config, inst: Instance, spec: Dict[str, Any]) -> Dict[str, Any]:
    target = copy.deepcopy(inst)
    target.disk_template = "drbd"
    for disk in target.disks:
        disk.logical_id = {}
    with allocation_lock(ctx, locks):
        config = ctx.load_master_config()
        secondary = spec.get("secondary_node")
        if secondary:
            placement.check_nodes_usable(config, [secondary], f"instance {inst.name}")
            if secondary == inst.primary_node:
                raise ValidationError(f"secondary_node {secondary} is the primary of {inst.name}")
        answer = placement.place(ctx, config, target, inst.primary_node, secondary)
        target.secondary_node = answer.get("secondary")
        if not target.secondary_node:
            raise PrerequisiteError(f"instance {inst.name}: no node can be its DRBD secondary: "
                                    + "; ".join(answer.get("reasons", [])))
        instance_disks.allocate_drbd(ctx, config, target, 0)
        sec = target.secondary_node
        actions = ([f"create data and meta LVs of disk {i} on {sec}" for i in range(len(inst.disks))]
                   + [f"rename {disk_vg(config, inst, i)}/{plain_lv(inst, i)} to {data_lv(inst, i)} on "
                      f"{inst.primary_node} and add its meta LV" for i in range(len(inst.disks))]
                   + [f"sync every disk from {inst.primary_node} to {sec}", "switch the config to drbd"])
        result = _result(inst, target, actions, "converted to drbd")
        result["placement"] = {"primary": inst.primary_node, "secondary": sec, "reasons": answer.get("reasons", [])}
        if ctx.check_mode:
            result["msg"] = f"instance {inst.name} would be converted to drbd: " + ", ".join(actions)
            return result
        with node_locks(locks, [inst.primary_node, sec], shared=True), \
                ctx.job("instance_convert", _params("drbd", inst, target)) as job:
            for index in range(len(inst.disks)):
                _drbd_disk(ctx, job, config, inst, target, index)
            with job.step("wait for the sync", node=inst.primary_node):
                _wait_sync(ctx, job, config, target)
            with job.step("commit config"):
                _commit(ctx, locks, target)
            job.no_more_undo()
    return result


def _drbd_disk(ctx: Context, job: Job, config: Config, inst: Instance, target: Instance, index: int) -> None:
    primary, sec = inst.primary_node, str(target.secondary_node)
    vg = disk_vg(config, inst, index)
    with job.step(f"disk {index}: DRBD volumes on the secondary", node=sec):
        job.on_undo(f"remove disk {index} on {sec}",
                    lambda: nodecalls.call(ctx, config, sec, "disk_remove",
                                           nodecalls.disk_args(config, target, target.disks[index], index, sec)))
        nodecalls.call(ctx, config, sec, "disk_create", nodecalls.disk_args(config, target, target.disks[index],
                                                                            index, sec))
    with job.step(f"disk {index}: the plain LV becomes DRBD's data on the primary", node=primary):
        job.on_undo(f"give disk {index} its plain LV back on {primary}",
                    lambda: _unmake_primary(ctx, config, inst, target, index))
        _lv_call(ctx, config, inst, primary, vg, plain_lv(inst, index), data_lv(inst, index))
        # the meta LV is fresh: create-md, up, and this side forced Primary (the sync source)
        nodecalls.call(ctx, config, primary, "disk_create",
                       nodecalls.disk_args(config, target, target.disks[index], index, primary))


def _unmake_primary(ctx: Context, config: Config, inst: Instance, target: Instance, index: int) -> None:
    """Undo of the primary's half: DRBD down, the data LV back to its plain name, then (only
    then) the meta LV and resource file removed: the data LV is no longer under the name
    disk_remove would delete."""
    primary = inst.primary_node
    args = nodecalls.disk_args(config, target, target.disks[index], index, primary)
    nodecalls.call(ctx, config, primary, "disk_shutdown", args)
    _lv_call(ctx, config, inst, primary, disk_vg(config, inst, index), data_lv(inst, index), plain_lv(inst, index))
    nodecalls.call(ctx, config, primary, "disk_remove", args)


def _wait_sync(ctx: Context, job: Job, config: Config, target: Instance) -> None:
    """Until every disk is Connected and UpToDate/UpToDate; a failure (the peers never connect,
    the timeout) undoes the conversion, the data being whole on the primary all along."""
    deadline = time.monotonic() + SYNC_TIMEOUT
    stalled = 0
    while True:
        states = [instance_disks.drbd_state(ctx, config, target, i, target.primary_node) or {}
                  for i in range(len(target.disks))]
        if all(s.get("connected") and s.get("disk_uptodate") and s.get("peer_uptodate") for s in states):
            job.log("every disk Connected and UpToDate/UpToDate")
            return
        parts = [f"disk {i} cs:{s.get('cs', 'Unconfigured')} ds:{s.get('disk')}/{s.get('peer_disk')}"
                 + (f" {float(s.get('sync_percent') or 0):.1f}%" if s.get("in_resync") else "")
                 for i, s in enumerate(states)]
        job.log("sync: " + "; ".join(parts))
        stalled = 0 if all(s.get("connected") for s in states) else stalled + 1
        if stalled > STALL_POLLS:
            raise HerdError(f"{target.primary_node} and {target.secondary_node} do not connect for the sync of "
                            f"{target.name} (" + "; ".join(parts) + "): check the secondary network between them")
        if time.monotonic() >= deadline:
            raise HerdError(f"the sync of {target.name} to {target.secondary_node} did not finish within "
                            f"{SYNC_TIMEOUT:g} s: " + "; ".join(parts))
        time.sleep(POLL_INTERVAL)


def _commit(ctx: Context, locks: Locks, target: Instance) -> None:
    with locks.cluster():
        fresh = ctx.store.load()
        stored = fresh.instances[target.name]
        stored.disk_template = target.disk_template
        stored.secondary_node = target.secondary_node
        stored.disks = target.disks
        stored.mtime = now()
        ctx.commit(fresh)


# --------------------------------------------------------------------------- drbd -> plain

def _to_plain(ctx: Context, locks: Locks, config: Config, inst: Instance, spec: Dict[str, Any]) -> Dict[str, Any]:
    if spec.get("secondary_node"):
        raise ValidationError(f"instance {inst.name}: a plain instance has no secondary; drop secondary_node "
                              f"({spec['secondary_node']}) from the spec")
    primary, sec = inst.primary_node, inst.secondary_node
    target = copy.deepcopy(inst)
    target.disk_template, target.secondary_node = "plain", None
    for disk in target.disks:
        disk.logical_id = {}
    actions = ([f"take down DRBD of every disk on {primary} and {sec}"]
               + [f"rename {data_lv(inst, i)} to {plain_lv(target, i)} on {primary}" for i in range(len(inst.disks))]
               + ["switch the config to plain", f"remove the DRBD volumes on {sec} and the meta LVs on {primary}"])
    result = _result(inst, target, actions, "converted to plain")
    if ctx.check_mode:
        result["msg"] = f"instance {inst.name} would be converted to plain: " + ", ".join(actions)
        return result
    if sec and config.nodes[sec].offline:
        sec = None  # its volumes stay there; cluster_verify reports them once it is back
        ctx.warnings.append(f"the secondary {inst.secondary_node} of {inst.name} is offline: its DRBD volumes stay "
                            "there (cluster_verify reports them as orphans once it is back)")
    with node_locks(locks, inst.nodes(), shared=True), \
            ctx.job("instance_convert", _params("plain", target, inst)) as job:
        with job.step("take down DRBD"):
            for node in [primary] + ([sec] if sec else []):
                for index, disk in enumerate(inst.disks):
                    nodecalls.call(ctx, config, node, "disk_shutdown",
                                   nodecalls.disk_args(config, inst, disk, index, node))
        for index in range(len(inst.disks)):
            vg = disk_vg(config, inst, index)
            with job.step(f"disk {index}: DRBD's data LV becomes the plain LV", node=primary):
                job.on_undo(f"give disk {index} its DRBD data LV name back",
                            _renamer(ctx, config, inst, primary, vg, plain_lv(target, index), data_lv(inst, index)))
                _lv_call(ctx, config, inst, primary, vg, data_lv(inst, index), plain_lv(target, index))
        with job.step("commit config"):
            _commit(ctx, locks, target)
        job.no_more_undo()
        with job.step("remove the DRBD volumes"):
            for index, disk in enumerate(inst.disks):
                for node in ([sec] if sec else []) + [primary]:
                    # on the primary the data LV has its plain name now: only the meta LV and the file go
                    try:
                        nodecalls.call(ctx, config, node, "disk_remove",
                                       nodecalls.disk_args(config, inst, disk, index, node))
                    except HerdError as exc:
                        ctx.warnings.append(f"disk {index} of {inst.name}: DRBD volumes left on {node}: {exc} "
                                            "(cluster_verify reports them)")
    return result


def _renamer(ctx: Context, config: Config, inst: Instance, node: str, vg: str, old: str, new: str
             ) -> Callable[[], None]:
    return lambda: _lv_call(ctx, config, inst, node, vg, old, new)


# --------------------------------------------------------------------------- an interrupted conversion

def _params(direction: str, plain: Instance, drbd: Instance) -> Dict[str, Any]:
    """The job's parameters: the direction and, for the repair of a killed run, the drbd side's
    nodes and identifiers (the secret stays out of the journal) and each disk's plain LV name."""
    return {"name": plain.name, "disk_template": direction, "primary_node": drbd.primary_node,
            "secondary_node": drbd.secondary_node,
            "disks": [{"uuid": d.uuid, "size": d.size, "vg": d.vg, "plain_lv": plain_lv(plain, i),
                       "logical_id": {k: v for k, v in d.logical_id.items() if k != "secret"}}
                      for i, d in enumerate(drbd.disks)]}


def _recorded_drbd(inst: Instance, params: Dict[str, Any]) -> Instance:
    """The drbd side a job recorded, with a throwaway secret (drbdadm down and the removal need a
    resource file; the secret plays no part in them)."""
    out = copy.deepcopy(inst)
    out.disk_template, out.primary_node, out.secondary_node = "drbd", params["primary_node"], params["secondary_node"]
    out.disks = [Disk(uuid=d["uuid"], size=d["size"], vg=d.get("vg"),
                      logical_id=dict(d.get("logical_id") or {}, secret=secrets.token_hex(16)))
                 for d in params["disks"]]
    return out


@repairs("instance_convert")
def _repair_convert(ctx: Context, locks: Locks, config: Config, inst: Optional[Instance], job: Dict[str, Any]
                    ) -> List[str]:
    """A conversion killed half-way. Not committed: every disk is put back as the config has it
    (to drbd: the secondary's volumes and the primary's meta go, the data LV gets its plain name
    back; to plain: the data LV gets its DRBD name back). Committed to plain: the leftover DRBD
    volumes go. Committed to drbd: nothing (the disks are in place; activate-disks syncs them)."""
    params = job.get("params") or {}
    if inst is None or "disks" not in params:
        return []
    if nodes_gone(config, params):
        return [f"job {job['id']}: the conversion of {inst.name} left volumes on {nodes_gone(config, params)} "
                "(node gone or offline; cluster_verify reports them)"]
    drbd = _recorded_drbd(inst, params)
    primary, sec = drbd.primary_node, str(drbd.secondary_node)
    lines: List[str] = []
    for index, disk in enumerate(params["disks"]):
        vg = disk.get("vg") or config.cluster.volume_group
        data = f"{disk['uuid']}.disk{index}_data"
        try:
            if params["disk_template"] == "drbd" and inst.disk_template == "plain":
                removed = nodecalls.disk_args(config, drbd, drbd.disks[index], index, sec)
                nodecalls.call(ctx, config, sec, "disk_remove", removed)
                args = nodecalls.disk_args(config, drbd, drbd.disks[index], index, primary)
                nodecalls.call(ctx, config, primary, "disk_shutdown", args)
                _lv_call(ctx, config, inst, primary, vg, data, disk["plain_lv"])
                nodecalls.call(ctx, config, primary, "disk_remove", args)
                lines.append(f"job {job['id']}: disk {index} of {inst.name} is plain again (DRBD volumes removed)")
            elif params["disk_template"] == "plain" and inst.disk_template == "drbd":
                _lv_call(ctx, config, inst, primary, vg, disk["plain_lv"], data)
                lines.append(f"job {job['id']}: disk {index} of {inst.name} has its DRBD data LV back; "
                             "herd.cluster.instance_activate_disks brings it up")
            elif params["disk_template"] == "plain" and inst.disk_template == "plain":
                for node in (sec, primary):
                    nodecalls.call(ctx, config, node, "disk_remove", nodecalls.disk_args(config, drbd,
                                                                                         drbd.disks[index], index, node))
                lines.append(f"job {job['id']}: leftover DRBD volumes of disk {index} of {inst.name} removed")
        except (RpcError, HerdError) as exc:
            lines.append(f"job {job['id']}: disk {index} of {inst.name} could not be put back: {exc}")
    ctx.warnings.extend(lines)
    return lines
