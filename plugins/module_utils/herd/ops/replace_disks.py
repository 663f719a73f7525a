"""gnt-instance replace-disks -n NODE / -I allocator, mode replace_new_secondary:
give a drbd instance a new secondary node while it keeps running.

The sequence is Ganeti's ``TLReplaceDisks._ExecDrbd8Secondary``:

1. check, before anything is touched: the instance is drbd and its primary is
   online with UpToDate disks; the new node (the operator's, or the
   allocator's relocate answer) is not the primary or the secondary, is in the
   cluster, online, not drained, vm_capable, has room in its volume group(s),
   has the DRBD module loaded and holds nothing left of this instance's disks;
2. allocate one DRBD minor per disk on the new node (port and secret stay);
3. create the data and meta LVs and the DRBD device on the new node,
   standalone (attached, no network, never promoted);
4. shut DRBD down on the old secondary (its LVs stay; an offline node is skipped);
5. disconnect the primary's DRBD (StandAlone; the guest keeps running on it);
6. switch the config in one commit: ``secondary_node`` and the new node's minors;
7. connect the primary and the new secondary: the new node syncs from the primary;
8. wait for the resync, with progress in the job log (``wait_for_sync``);
9. remove the old secondary's LVs and resource file (an offline old node is
   skipped with a warning naming what is left there).

Every step before the commit has its undo: the new node's device and LVs are
removed, DRBD on the old secondary comes up again and the primary reconnects
to it; the config stays as it was. Nothing of the instance's data is deleted
before the new secondary is in the config. A job that stopped after its
commit (an error, or the master died) is finished by the next replace-disks
on the instance; one interrupted before its commit is rolled back by the next
operation on the instance (``instance.recover_interrupted``).

Locks: the instance; the allocation lock from choosing the new node (and its
minors) to the commit, as instance creation holds it; the primary, the old
and the new secondary node, shared (node modify waits; other replace-disks,
such as a parallel evacuation, do not). Every mode is one ``phases.Operation``,
``ReplaceDisks``, which declares them.
"""

import copy
import time
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

from .. import names
from ..allocator import placement as allocator_placement
from ..config import DRBD_META_SIZE_MIB, Config, Instance, now
from ..errors import HerdError, PrerequisiteError, RpcError, ValidationError
from ..jobs import Job, Locks, index_latest_by_name
from . import nodecalls, placement
from .common import Context, diff_dict
from .facts import allocator_facts, live_facts
from . import instance_disks
from .instance_disks import drbd_state, in_sync, minors_in_use
from .instance_spec import instance_view
from .phases import LockDecl, Operation
from .recovery import recover_interrupted, repairs

OPCODE = "instance_replace_disks"
index_latest_by_name(OPCODE)  # a replacement stopped after its commit is resumed from its job
COMMIT_STEP = "commit config: new secondary"
POLL_INTERVAL = 2.0   # seconds between resync polls (Ganeti's drbd_wait_sync polls every 2 s)
STALL_POLLS = 30      # polls a disk may stay neither in sync nor syncing before the wait gives up
DEFAULT_SYNC_TIMEOUT = 86400.0
# Ganeti's replace-disks modes: -p, -s, -n/-I, -a
MODES = ("replace_on_primary", "replace_on_secondary", "replace_new_secondary", "replace_auto")
SAME_NODES = ("replace_on_primary", "replace_on_secondary", "replace_auto")


# --------------------------------------------------------------------------- helpers

def with_secondary(inst: Instance, secondary: str, minors: Sequence[Optional[int]]) -> Instance:
    """A copy of ``inst`` with ``secondary`` and its minor per disk; the primary's minors, the
    port and the secret stay."""
    out = copy.deepcopy(inst)
    out.secondary_node = secondary
    for disk, minor in zip(out.disks, minors):
        old = disk.logical_id.get("minors") or {}
        disk.logical_id["minors"] = {inst.primary_node: old.get(inst.primary_node), secondary: minor}
    return out


def secondary_of(inst: Instance) -> str:
    """The drbd secondary of an instance that check_drbd admitted (it has one)."""
    if not inst.secondary_node:
        raise PrerequisiteError(f"instance {inst.name} has no drbd secondary in the config")
    return inst.secondary_node


def secondary_minors(inst: Instance) -> List[Optional[int]]:
    return [(d.logical_id.get("minors") or {}).get(inst.secondary_node) for d in inst.disks]


CONNECT_TIMEOUT = 60  # seconds for a DRBD connection to reach Connected/SyncSource/SyncTarget


def disk_call(ctx: Context, config: Config, inst: Instance, index: int, node: str, verb: str,
              **extra: Any) -> Dict[str, Any]:
    args = nodecalls.disk_args(config, inst, inst.disks[index], index, node)
    args.update(extra)
    return nodecalls.call(ctx, config, node, verb, args)


def each_disk(ctx: Context, config: Config, inst: Instance, node: str, verb: str, **extra: Any) -> None:
    for index in range(len(inst.disks)):
        disk_call(ctx, config, inst, index, node, verb, **extra)


def volumes(inst: Instance) -> List[str]:
    out = []
    for index, disk in enumerate(inst.disks):
        lid = disk.logical_id
        vg = lid.get("vg") or disk.vg or "?"
        out += [f"{vg}/{lid.get('data_lv') or f'{disk.uuid}.disk{index}_data'}",
                f"{lid.get('meta_vg') or vg}/{lid.get('meta_lv') or f'{disk.uuid}.disk{index}_meta'}"]
    return out


def _last_job(ctx: Context, name: str) -> Optional[Dict[str, Any]]:
    return ctx.journal.latest(OPCODE, name)


def _committed(job: Dict[str, Any]) -> bool:
    return any(s.get("name") == COMMIT_STEP and s.get("status") == "success" for s in job.get("steps", []))


# --------------------------------------------------------------------------- checks

def check_drbd(inst: Instance) -> None:
    if inst.disk_template != "drbd":
        raise PrerequisiteError(f"instance {inst.name} uses {inst.disk_template} disks: replace-disks gives a drbd "
                                "instance a new secondary node; other templates have none")
    if not inst.secondary_node or not inst.disks:
        raise PrerequisiteError(f"instance {inst.name} has no drbd secondary or no disks in the config")


def choose_node(ctx: Context, config: Config, inst: Instance, remote: Optional[str]) -> Tuple[str, List[str]]:
    """The operator's node, or the allocator's relocate answer (hail relocate, Ganeti's -I)."""
    if remote:
        return remote, []
    facts = allocator_facts(config, live_facts(ctx, config))
    answer = allocator_placement.relocate(config.to_dict(), facts, inst.name)
    if not answer.get("success") or not answer.get("secondary"):
        lines = "; ".join(answer.get("reasons") or []) or "no node fits"
        raise PrerequisiteError(f"the allocator found no new secondary for {inst.name} (away from "
                                f"{inst.secondary_node}): {lines}")
    return answer["secondary"], list(answer.get("reasons") or [])


def check_new_node(ctx: Context, config: Config, inst: Instance, new: str) -> None:
    purpose = f"instance {inst.name}: new secondary"
    if new == inst.primary_node:
        raise PrerequisiteError(f"{purpose} {new} is the primary node of the instance; choose another node")
    if new == inst.secondary_node:
        raise PrerequisiteError(f"{purpose} {new} is already the secondary node of the instance")
    placement.check_nodes_usable(config, [new], purpose)
    instance_disks.check_room(ctx, config, new, instance_disks.space_needed(config, inst, inst.disks), purpose,
                              f"the disks of {inst.name} (data + {DRBD_META_SIZE_MIB} MiB meta per disk)")


def allocate_minors(ctx: Context, config: Config, inst: Instance, new: str) -> List[int]:
    """The lowest free minor per disk on ``new``: free in the config and on the node itself
    (the cluster's one minor allocator, ``Config.allocate_minors``)."""
    live = minors_in_use(ctx, config, new, f"instance {inst.name}: new secondary")
    return config.allocate_minors(new, len(inst.disks), live)


def check_leftovers(ctx: Context, config: Config, target: Instance, new: str) -> None:
    """Refuse a node that still holds volumes or a resource of these disks (an earlier
    placement whose cleanup was skipped): the rollback must only ever remove what this
    job created."""
    for index, disk in enumerate(target.disks):
        found = disk_call(ctx, config, target, index, new, "disk_info")
        if found.get("data_lv") or found.get("meta_lv") or found.get("config") or found.get("exists"):
            vols = volumes(target)[2 * index:2 * index + 2]
            raise PrerequisiteError(
                f"instance {target.name}: new secondary {new} still holds disk {index} of the instance "
                f"({', '.join(vols)}, resource herd-{disk.uuid}) from an earlier placement; the config does not "
                f"use them. Remove them on {new} (drbdadm down herd-{disk.uuid}; lvremove {' '.join(vols)}) "
                "and run again")


def check_primary(ctx: Context, config: Config, inst: Instance) -> bool:
    """The primary's disks must be UpToDate (Ganeti's peer consistency check). Returns whether
    they need activating first (DRBD down on the primary, e.g. a stopped instance after a reboot)."""
    primary = inst.primary_node
    if config.nodes[primary].offline:
        raise PrerequisiteError(f"the primary {primary} of {inst.name} is offline: fail the instance over "
                                "first (herd.cluster.instance_failover), then replace its secondary")
    activate = False
    for index in range(len(inst.disks)):
        try:
            status = drbd_state(ctx, config, inst, index, primary)
        except RpcError as exc:
            raise PrerequisiteError(f"the primary {primary} of {inst.name} does not answer: {exc}") from None
        if status is None:
            activate = True
        elif not status.get("disk_uptodate"):
            raise PrerequisiteError(
                f"disk {index} of {inst.name} is {status.get('disk')}, not UpToDate, on its primary {primary} "
                f"(cs:{status.get('cs')}): replacing the secondary now could lose the only good copy; wait "
                "until it is in sync and run again")
    return activate


# --------------------------------------------------------------------------- the op

class ReplaceDisks(Operation):
    """All of gnt-instance replace-disks: a new secondary (-n / -I), new volumes on the
    instance's own nodes (-p / -s / -a), the finish of a replacement stopped after its commit,
    and the operator's split-brain resolution. ``check_prerequisites`` picks the path and
    returns its result; ``execute`` runs that path's steps in its job.

    Locks: the instance. Same nodes and split brain: its two nodes, shared, read under the
    instance lock. A new secondary: the node-allocation lock from the choice of the node (and
    its minors) to the commit, released there (or as soon as the request turns out to need no
    new node), and the primary, old and new secondary, shared, taken once the new node is
    chosen (``hold``: the allocator's answer is known only in the prerequisites)."""

    opcode = OPCODE
    job_params: Tuple[str, Dict[str, Any]]  # the chosen path's journal entry
    steps: Callable[[Job, Dict[str, Any]], None]  # the chosen path's execution

    def check_arguments(self) -> None:
        spec = self.spec
        self.name = names.check_instance_name(spec.get("name"))
        remote = spec.get("remote_node")
        self.remote: Optional[str] = names.check_hostname(remote, "remote_node") \
            if remote is not None and remote != "" else None
        wait = spec.get("wait_for_sync", True)
        if not isinstance(wait, bool):
            raise ValidationError(f"wait_for_sync {wait!r} must be true or false")
        timeout = spec.get("sync_timeout") or DEFAULT_SYNC_TIMEOUT
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ValidationError(f"sync_timeout {timeout!r} must be a positive number of seconds")
        self.wait, self.timeout = wait, float(timeout)
        mode = spec.get("mode") or None
        if mode is not None and mode not in MODES:
            raise ValidationError(f"mode {mode!r} must be one of {', '.join(MODES)}")
        if mode in SAME_NODES and self.remote is not None:
            raise ValidationError(f"mode {mode} rebuilds disks on the instance's own nodes: remote_node "
                                  f"{self.remote} is only for replace_new_secondary")
        self.mode = mode
        survivor = spec.get("split_brain_survivor") or None
        if survivor is not None:
            survivor = names.check_hostname(survivor, "split_brain_survivor")
            if mode is not None:
                raise ValidationError("split_brain_survivor and mode exclude each other: resolve the split brain "
                                      "first, then replace disks")
            if self.remote is not None:
                raise ValidationError("split_brain_survivor and remote_node exclude each other: resolve the split "
                                      "brain first, then move the secondary")
        self.survivor: Optional[str] = survivor
        self.locks = self.ctx.locks(f"{OPCODE} {self.name}")

    def declare_locks(self, config: Config) -> LockDecl:
        if self.survivor is not None or self.mode in SAME_NODES:
            return LockDecl(instances=[self.name], instance_nodes=True, shared_nodes=True)
        return LockDecl(instances=[self.name], node_alloc=True)

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        ctx, name, remote = self.ctx, self.name, self.remote
        inst = config.instances.get(name)
        if inst is None:
            raise PrerequisiteError(f"instance {name} does not exist")
        check_drbd(inst)
        if self.survivor is not None:
            return self._check_split_brain(config, inst, self.survivor)
        if recover_interrupted(ctx, name, self.locks, config):
            config = ctx.load_master_config()
            inst = config.instances[name]
        if self.mode in SAME_NODES:
            return self._check_same_nodes(config, inst, self.mode)
        unfinished = _last_job(ctx, name)
        if unfinished and unfinished["status"] != "success" and _committed(unfinished) \
                and inst.secondary_node == unfinished["params"].get("new_secondary") \
                and (remote is None or remote == inst.secondary_node):
            self.held.release("node_alloc")  # the new node is in the config already
            return self._check_resume(config, inst, unfinished)
        if remote is not None and remote == inst.secondary_node:
            self.held.release("node_alloc")
            view = instance_view(inst)
            return {"changed": False, "instance": name, "primary_node": inst.primary_node,
                    "old_secondary": remote, "new_secondary": remote, "actions": [], "synced": None,
                    "diff": diff_dict(view, view), "msg": f"{remote} is already the secondary of {name}"}
        if remote is not None and remote == inst.primary_node:
            raise PrerequisiteError(f"instance {name}: new secondary {remote} is the primary node of the instance; "
                                    "choose another node")
        new, reasons = choose_node(ctx, config, inst, remote)
        check_new_node(ctx, config, inst, new)
        self.hold({inst.primary_node, secondary_of(inst), new})
        activate = check_primary(ctx, config, inst)
        minors = allocate_minors(ctx, config, inst, new)
        target = with_secondary(inst, new, minors)
        check_leftovers(ctx, config, target, new)
        return self._check_new_secondary(config, inst, target, activate, reasons)

    def open_job(self) -> ContextManager[Any]:
        return self.ctx.job(*self.job_params)

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        self.steps(job, result)

    # ----------------------------------------------------------------- split brain

    def _check_split_brain(self, config: Config, inst: Instance, survivor: str) -> Dict[str, Any]:
        """The operator's explicit split-brain resolution: ``survivor`` keeps its data; the other
        node (the victim) is demoted and reconnects with ``--discard-my-data``, so DRBD resyncs it
        from the survivor. Only disks that are not connected are touched; nothing is discarded
        without this request, and never under a running instance."""
        ctx, name = self.ctx, inst.name
        if survivor not in inst.nodes():
            raise ValidationError(f"split_brain_survivor {survivor} is not a node of {name}; its nodes are "
                                  f"{inst.primary_node} (primary) and {inst.secondary_node} (secondary)")
        victim = next(n for n in inst.nodes() if n != survivor)
        for node in inst.nodes():
            if config.nodes[node].offline:
                raise PrerequisiteError(f"instance {name}: {node} is offline; both nodes must be up to reconnect "
                                        "DRBD")
        if victim == inst.primary_node and inst.admin_state == "up":
            raise PrerequisiteError(f"instance {name} is marked running on {victim}, whose data would be "
                                    f"discarded under it: stop the instance first, or fail it over to {survivor} "
                                    "(herd.cluster.instance_failover) and run this again")
        broken = []
        for index in range(len(inst.disks)):
            states = {node: drbd_state(ctx, config, inst, index, node) for node in inst.nodes()}
            if any(s is None for s in states.values()):
                raise PrerequisiteError(f"instance {name}: disk {index} is not active on "
                                        f"{', '.join(n for n, s in states.items() if s is None)}; activate the "
                                        "disks first")
            if not all((s or {}).get("connected") or (s or {}).get("in_resync") for s in states.values()):
                broken.append(index)
        view = instance_view(inst)
        result: Dict[str, Any] = {"changed": bool(broken), "instance": name, "primary_node": inst.primary_node,
                                  "old_secondary": inst.secondary_node, "new_secondary": inst.secondary_node,
                                  "survivor": survivor, "discarded_on": victim if broken else None,
                                  "actions": [], "synced": None, "diff": diff_dict(view, view)}
        for index in broken:
            result["actions"] += [f"disk {index}: {victim} becomes secondary and reconnects discarding its changes",
                                  f"disk {index}: {survivor} reconnects and resyncs {victim} from its data"]
        if not broken:
            result["msg"] = f"instance {name}: every disk is connected; no split brain to resolve"
            return result
        result["msg"] = f"instance {name}: would keep the data of {survivor} and discard {victim}'s changes"
        self.job_params = ("instance_resolve_split_brain",
                           {"name": name, "survivor": survivor, "victim": victim, "disks": broken})

        def steps(job: Job, result: Dict[str, Any]) -> None:
            for index in broken:
                with job.step(f"disk {index}: discard the changes on {victim}", node=victim):
                    disk_call(ctx, config, inst, index, victim, "drbd_connect", discard_my_data=True, timeout=0)
                with job.step(f"disk {index}: reconnect {survivor}", node=survivor):
                    disk_call(ctx, config, inst, index, survivor, "drbd_connect", timeout=CONNECT_TIMEOUT)
            job.finish({"survivor": survivor, "victim": victim, "disks": broken})
            result["msg"] = (f"instance {name}: split brain resolved on disks {broken}: {survivor}'s data kept, "
                             f"{victim} resyncs from it (cluster_verify shows the resync until it is done)")

        self.steps = steps
        return result

    # ----------------------------------------------------------------- same nodes

    def _check_same_nodes(self, config: Config, inst: Instance, mode: str) -> Dict[str, Any]:
        """Ganeti's replace-disks -p / -s / -a (``_ExecDrbd8DiskOnly``): new data and meta volumes
        for every disk on one of the instance's own nodes, synced in full from the other node,
        which must be connected and UpToDate. The old volumes are set aside
        (``<lv>_replaced-<time>``) and removed only after the resync (at once without
        wait_for_sync, Ganeti's early release: the peer holds the data)."""
        ctx, name, wait, timeout = self.ctx, inst.name, self.wait, self.timeout
        for peer in inst.nodes():
            if config.nodes[peer].offline:
                raise PrerequisiteError(f"instance {name}: {peer} is offline; replacing disks on the same nodes "
                                        "needs both (replace_new_secondary moves the secondary instead)")
        states = {peer: [drbd_state(ctx, config, inst, i, peer) for i in range(len(inst.disks))]
                  for peer in inst.nodes()}
        for peer, disks in states.items():
            down = [i for i, s in enumerate(disks) if s is None]
            if down:
                raise PrerequisiteError(f"instance {name}: disk(s) {down} are not active on {peer}; activate the "
                                        "disks first (herd.cluster.instance_activate_disks)")
        if mode == "replace_auto":
            bad = [n for n in inst.nodes() if any(_faulty(s) for s in states[n])]
            if len(bad) > 1:
                raise PrerequisiteError(f"instance {name}: the disks on both nodes ({', '.join(bad)}) are faulty; "
                                        "nothing to resync from")
            found: Optional[str] = bad[0] if bad else None
        else:
            found = inst.primary_node if mode == "replace_on_primary" else inst.secondary_node
        view = instance_view(inst)
        result: Dict[str, Any] = {"changed": found is not None, "instance": name,
                                  "primary_node": inst.primary_node, "old_secondary": inst.secondary_node,
                                  "new_secondary": inst.secondary_node, "replaced_on": found, "actions": [],
                                  "synced": None, "diff": diff_dict(view, view)}
        if found is None:
            result["msg"] = f"instance {name}: no faulty disk on {' or '.join(inst.nodes())}; nothing replaced"
            return result
        node: str = found
        peer = next(n for n in inst.nodes() if n != node)
        for index, s in enumerate(states[node]):
            if not ((s or {}).get("connected") and (s or {}).get("peer_uptodate")):
                raise PrerequisiteError(
                    f"disk {index} of {name}: {peer} is not connected and UpToDate as seen from {node} "
                    f"(cs:{(s or {}).get('cs')} ds:{(s or {}).get('disk')}/{(s or {}).get('peer_disk')}): it would "
                    f"hold the only copy while the disks on {node} are rebuilt; wait for the sync or repair it "
                    "first")
        stamp = int(time.time())
        result["actions"] = [f"disk {i}: set the volumes on {node} aside, attach new ones, resync them from {peer}"
                             for i in range(len(inst.disks))] + (["wait for the resync"] if wait else []) + [
            f"remove the old volumes on {node} (*_replaced-{stamp})"]
        result["msg"] = f"instance {name}: the disks on {node} would be rebuilt from {peer}"
        self.job_params = (OPCODE, {"name": name, "mode": mode, "node": node, "stamp": stamp, "wait_for_sync": wait})

        def steps(job: Job, result: Dict[str, Any]) -> None:
            for index in range(len(inst.disks)):
                with job.step(f"disk {index}: new volumes on {node}", node=node):
                    disk_call(ctx, config, inst, index, node, "drbd_replace_local", stamp=stamp)
            synced = False
            if wait:
                with job.step("wait for the resync", node=node):
                    synced = wait_for_sync(ctx, job, config, inst, timeout, node)
            left: List[str] = []
            with job.step("remove the old volumes", node=node):
                for index in range(len(inst.disks)):
                    try:
                        disk_call(ctx, config, inst, index, node, "drbd_remove_replaced", stamp=stamp)
                    except HerdError as exc:
                        vols = [f"{v}_replaced-{stamp}" for v in volumes(inst)[2 * index:2 * index + 2]]
                        left += vols
                        ctx.warnings.append(f"could not remove the old volumes of disk {index} of {name} on {node}: "
                                            f"{exc}; remove {', '.join(vols)} there by hand")
            job.finish({"node": node, "synced": synced, "left": left})
            result.update(synced=synced, left_on_old=left,
                          msg=f"instance {name}: disks rebuilt on {node} from {peer}"
                          + ("" if wait else "; the resync continues in the background"))

        self.steps = steps
        return result

    # ----------------------------------------------------------------- new secondary

    def _check_new_secondary(self, config: Config, inst: Instance, target: Instance, activate: bool,
                             reasons: List[str]) -> Dict[str, Any]:
        ctx, name, wait, timeout = self.ctx, inst.name, self.wait, self.timeout
        primary, old, new = inst.primary_node, secondary_of(inst), secondary_of(target)
        before = instance_view(inst)
        after = dict(before, secondary_node=new)
        actions = _plan(config, inst, target, activate, wait)
        result: Dict[str, Any] = {"changed": True, "instance": name, "primary_node": primary, "old_secondary": old,
                                  "new_secondary": new, "minors": secondary_minors(target), "reasons": reasons,
                                  "actions": actions, "synced": None, "diff": diff_dict(before, after),
                                  "msg": f"instance {name} would get secondary {new} instead of {old}"}
        old_minors = secondary_minors(inst)
        self.job_params = (OPCODE, {"name": name, "primary": primary, "old_secondary": old, "new_secondary": new,
                                    "old_minors": old_minors, "new_minors": secondary_minors(target),
                                    "wait_for_sync": wait})

        def steps(job: Job, result: Dict[str, Any]) -> None:
            old_online = not config.nodes[old].offline
            if activate:
                with job.step("activate the disks on the primary", node=primary):
                    each_disk(ctx, config, inst, primary, "drbd_attach")
                    _await_uptodate(ctx, config, inst)
            with job.step("create storage on the new secondary", node=new, minors=secondary_minors(target)):
                for index in range(len(target.disks)):
                    job.on_undo(f"remove disk {index} from {new}",
                                _later(disk_call, ctx, config, target, index, new, "disk_remove"))
                    answer = disk_call(ctx, config, target, index, new, "drbd_create", standalone=True)
                    for key, value in (answer.get("logical_id") or {}).items():
                        if key != "minors":
                            target.disks[index].logical_id[key] = value
            if old_online:
                with job.step("shut down drbd on the old secondary", node=old):
                    for index in range(len(inst.disks)):
                        try:
                            disk_call(ctx, config, inst, index, old, "disk_shutdown")
                        except HerdError as exc:  # as Ganeti: warn and go on, the primary disconnects anyway
                            ctx.warnings.append(f"could not shut down drbd for disk {index} of {name} on the old "
                                                f"secondary {old}: {exc}; clean it up there as soon as possible")
                            continue
                        job.on_undo(f"bring disk {index} up again on {old}",
                                    _later(disk_call, ctx, config, inst, index, old, "drbd_attach"))
            else:
                ctx.warnings.append(f"the old secondary {old} of {name} is offline: drbd was not shut down there")
            with job.step("disconnect the primary", node=primary):
                for index in range(len(inst.disks)):
                    job.on_undo(f"reconnect disk {index} of {primary} to {old}",
                                _later(disk_call, ctx, config, inst, index, primary, "drbd_connect"))
                    disk_call(ctx, config, inst, index, primary, "drbd_disconnect")
            with job.step(COMMIT_STEP, secondary=new):
                committed = _commit(ctx, self.locks, inst, target)
            job.no_more_undo()  # the config names the new secondary: from here on, forward only
            self.held.release("node_alloc")
            switched = committed.instances[name]
            outcome = _finish(ctx, job, committed, switched, old, old_minors, wait, timeout)
            job.finish(outcome)
            result.update(synced=outcome["synced"], left_on_old=outcome["left_on_old"],
                          msg=f"instance {name}: secondary {old} -> {new}"
                          + ("" if wait else "; the resync continues in the background"))

        self.steps = steps
        return result

    # ----------------------------------------------------------------- resume

    def _check_resume(self, config: Config, inst: Instance, earlier: Dict[str, Any]) -> Dict[str, Any]:
        """Finish a replacement whose job stopped after its commit: connect, wait, remove the old storage."""
        ctx, wait, timeout = self.ctx, self.wait, self.timeout
        params = earlier["params"]
        old = params["old_secondary"]
        view = instance_view(inst)
        actions = [f"finish job {earlier['id']}: connect {inst.primary_node} to {inst.secondary_node}"] + (
            ["wait for the resync"] if wait else []) + [f"remove the old volumes on {old}"]
        result: Dict[str, Any] = {"changed": True, "instance": inst.name, "primary_node": inst.primary_node,
                                  "old_secondary": old, "new_secondary": inst.secondary_node, "actions": actions,
                                  "synced": None, "diff": diff_dict(view, view),
                                  "msg": f"instance {inst.name}: job {earlier['id']} would be finished"}
        if not ctx.check_mode:
            self.hold({inst.primary_node, secondary_of(inst), old})
        self.job_params = (OPCODE, dict(params, resume_of=earlier["id"], wait_for_sync=wait))

        def steps(job: Job, result: Dict[str, Any]) -> None:
            with job.step(COMMIT_STEP, done_by_job=earlier["id"]):
                pass  # recorded so that this job, if it stops too, is resumed the same way
            outcome = _finish(ctx, job, config, inst, old, params.get("old_minors") or [], wait, timeout)
            job.finish(outcome)
            result.update(synced=outcome["synced"], left_on_old=outcome["left_on_old"],
                          msg=f"instance {inst.name}: finished the replacement of job {earlier['id']}, secondary "
                              f"{old} -> {inst.secondary_node}")

        self.steps = steps
        return result


def replace(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    return ReplaceDisks(ctx, spec).run()


def _faulty(status: Optional[Dict[str, Any]]) -> bool:
    """A local disk that needs rebuilding: up, but not UpToDate and not being resynced
    (Diskless after an I/O error detached it, Failed, Inconsistent without a sync)."""
    s = status or {}
    return bool(s) and not s.get("disk_uptodate") and not s.get("in_resync")


def _plan(config: Config, inst: Instance, target: Instance, activate: bool, wait: bool) -> List[str]:
    primary, old, new = inst.primary_node, secondary_of(inst), secondary_of(target)
    old_offline = config.nodes[old].offline
    minors = secondary_minors(target)
    return ([f"activate the disks on the primary {primary}"] if activate else []) + [
        f"create {len(inst.disks)} disk(s) on {new}, standalone (minors {minors})",
        f"skip {old}: it is offline" if old_offline else f"shut down drbd on the old secondary {old}",
        f"disconnect the primary {primary}",
        f"commit: secondary {old} -> {new}",
        f"connect {primary} to {new}",
    ] + (["wait for the resync"] if wait else []) + [
        f"leave the old volumes on {old} (offline): {', '.join(volumes(inst))}" if old_offline
        else f"remove the old volumes on {old}"]


def _await_uptodate(ctx: Context, config: Config, inst: Instance) -> None:
    """After activating the primary's disks: wait for the handshake with the old secondary
    (the disks turn UpToDate), as Ganeti's disk activation does; refuse otherwise."""
    primary = inst.primary_node
    for _poll in range(STALL_POLLS + 1):
        states = [drbd_state(ctx, config, inst, index, primary) or {} for index in range(len(inst.disks))]
        behind = [(index, s) for index, s in enumerate(states) if not s.get("disk_uptodate")]
        if not behind:
            return
        time.sleep(POLL_INTERVAL)
    index, s = behind[0]
    raise HerdError(f"disk {index} of {inst.name} on its primary {primary} is {s.get('disk')} (cs:{s.get('cs')}), "
                    "not UpToDate, after activating it: not replacing its secondary")


def _later(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: func(*args, **kwargs)


def _commit(ctx: Context, locks: Locks, inst: Instance, target: Instance) -> Config:
    with locks.cluster():
        fresh = ctx.store.load()
        current = fresh.instances.get(inst.name)
        if current is None or current.primary_node != inst.primary_node \
                or current.secondary_node != inst.secondary_node \
                or [d.uuid for d in current.disks] != [d.uuid for d in target.disks]:
            raise HerdError(f"instance {inst.name} changed in the config while its secondary was being replaced; "
                            "nothing was committed")
        for disk, planned in zip(current.disks, target.disks):
            disk.logical_id = copy.deepcopy(planned.logical_id)
        current.secondary_node = target.secondary_node
        current.mtime = now()
        ctx.commit(fresh)
        return fresh


def _finish(ctx: Context, job: Job, config: Config, inst: Instance, old: str, old_minors: List[Optional[int]],
            wait: bool, timeout: float) -> Dict[str, Any]:
    """After the commit: connect, wait for the resync, remove the old storage."""
    name, primary, new = inst.name, inst.primary_node, secondary_of(inst)
    with job.step("connect the primary to the new secondary", nodes=[primary, new]):
        for index in range(len(inst.disks)):
            for node in (primary, new):
                try:
                    # the second side waits until the connection holds (a split brain drops it)
                    disk_call(ctx, config, inst, index, node, "drbd_connect",
                              timeout=CONNECT_TIMEOUT if node == new else 0)
                except HerdError as exc:
                    raise HerdError(f"{exc}; the config names {new} as the secondary of {name} since this job's "
                                    f"commit; the old volumes on {old} were kept. Fix the cause and run "
                                    f"herd.cluster.instance_replace_disks for {name} again: it finishes this "
                                    "replacement") from None
    try:
        nodecalls.seed_to(ctx, config, inst, new)  # a cloud-init seed: node-local, the secondary needs one too
    except HerdError as exc:
        ctx.warnings.append(f"could not write the cloud-init seed of {name} on {new}: {exc}; a failover to {new} "
                            "writes it then")
    synced = False
    if wait:
        with job.step("wait for the resync", node=new):
            synced = wait_for_sync(ctx, job, config, inst, timeout, old)
    left: List[str] = []
    if old in inst.nodes():
        return {"synced": synced, "left_on_old": left}
    with job.step("remove the old storage", node=old):
        if old not in config.nodes or config.nodes[old].offline:
            left = volumes(inst)
            ctx.warnings.append(f"the old secondary {old} of {name} is offline or no longer in the cluster: its "
                                f"volumes {', '.join(left)} and resource files herd-<disk uuid>.res are left there; "
                                "remove them when it is back (herd never deletes on a node it does not reach)")
            return {"synced": synced, "left_on_old": left}
        old_inst = with_secondary(inst, old, old_minors)
        for index in range(len(old_inst.disks)):
            try:
                disk_call(ctx, config, old_inst, index, old, "disk_remove")
            except HerdError as exc:  # as Ganeti: warn, remove by hand
                vols = volumes(old_inst)[2 * index:2 * index + 2]
                left += vols
                ctx.warnings.append(f"could not remove disk {index} of {name} from the old secondary {old}: "
                                    f"{exc}; remove {', '.join(vols)} there by hand")
        if inst.os == "cloud_init":
            try:
                nodecalls.call(ctx, config, old, "cloud_init_seed_remove",
                               {"instance": name, "storage": nodecalls.storage_context(config),
                                "template": inst.disk_template})
            except HerdError as exc:
                ctx.warnings.append(f"could not remove the cloud-init seed of {name} from {old}: {exc}")
    return {"synced": synced, "left_on_old": left}


def wait_for_sync(ctx: Context, job: Job, config: Config, inst: Instance, timeout: float, old: str = "") -> bool:
    """Poll the primary's DRBD status until every disk is Connected and UpToDate/UpToDate;
    the progress goes to the job log. Gives up on a timeout, or when a disk stays neither
    connected nor syncing, naming its state."""
    name, primary, new = inst.name, inst.primary_node, inst.secondary_node
    deadline = time.monotonic() + timeout
    stalled = [0] * len(inst.disks)
    kept = f"; the old volumes on {old} were kept" if old else ""
    while True:
        states = []
        for index in range(len(inst.disks)):
            try:
                states.append(drbd_state(ctx, config, inst, index, primary) or {})
            except RpcError as exc:  # a lost answer counts as a poll without progress
                states.append({"cs": f"unknown ({exc})"})
        if all(in_sync(s) for s in states):
            job.log(f"resync to {new} done: every disk UpToDate/UpToDate")
            return True
        parts = []
        for index, s in enumerate(states):
            if in_sync(s):
                stalled[index] = 0
                parts.append(f"disk {index} in sync")
            elif s.get("in_resync"):
                stalled[index] = 0
                eta = f", {s['eta_seconds']} s left" if s.get("eta_seconds") is not None else ""
                parts.append(f"disk {index} {float(s.get('sync_percent') or 0):.1f}% synced{eta}")
            else:
                stalled[index] += 1
                state = f"cs:{s.get('cs', 'Unconfigured')} ds:{s.get('disk')}/{s.get('peer_disk')}"
                parts.append(f"disk {index} {state}")
                if stalled[index] > STALL_POLLS:
                    raise HerdError(f"disk {index} of {name}: {primary} and the new secondary {new} do not sync "
                                    f"({state}){kept}; once they do, run herd.cluster.instance_replace_disks for "
                                    f"{name} again to finish")
        job.log(f"resync to {new}: " + "; ".join(parts))
        if time.monotonic() >= deadline:
            raise HerdError(f"the resync of {name} to {new} did not finish within {timeout:g} s; it was at: "
                            + "; ".join(parts) + f"{kept}; run herd.cluster.instance_replace_disks for {name} "
                            "again to wait for it and finish")
        time.sleep(POLL_INTERVAL)


# --------------------------------------------------------------------------- resume / repair

@repairs("instance_replace_disks")
def repair(ctx: Context, locks: Locks, config: Config, inst: Optional[Instance], job: Dict[str, Any]) -> List[str]:
    """An interrupted replace-disks job (the master died): roll back when it had not
    committed (old secondary up again, primary reconnected to it, the new node's device
    and volumes removed); after its commit, reconnect the primary to the new secondary
    (the next replace-disks on the instance waits for the resync and removes the old volumes)."""
    params = job.get("params", {})
    old, new = params.get("old_secondary"), params.get("new_secondary")
    actions: List[str] = []
    if inst is None or inst.disk_template != "drbd" or not old or not new:
        return actions

    def attempt(what: str, func: Callable[[], Any]) -> None:
        try:
            func()
            actions.append(what)
        except HerdError as exc:
            ctx.warnings.append(f"repairing interrupted job {job['id']} on {inst.name}: {what} failed: {exc}")

    primary = inst.primary_node
    if inst.secondary_node == old and not _committed(job):
        if not config.nodes[old].offline:
            attempt(f"bring drbd up again on {old}", lambda: each_disk(ctx, config, inst, old, "drbd_attach"))
        attempt(f"reconnect {primary} to {old}", lambda: each_disk(ctx, config, inst, primary, "drbd_connect"))
        minors = params.get("new_minors") or []
        if new not in inst.nodes() and new in config.nodes and not config.nodes[new].offline \
                and len(minors) == len(inst.disks) and all(isinstance(m, int) for m in minors):
            planned = with_secondary(inst, new, minors)
            attempt(f"remove what the job created on {new}",
                    lambda: each_disk(ctx, config, planned, new, "disk_remove"))
    elif inst.secondary_node == new:
        for node in (primary, new):
            if not config.nodes[node].offline:
                attempt(f"connect drbd on {node}", _later(each_disk, ctx, config, inst, node, "drbd_connect"))
        ctx.warnings.append(f"job {job['id']} had already made {new} the secondary of {inst.name}; run "
                            f"herd.cluster.instance_replace_disks for {inst.name} to wait for the resync and "
                            f"remove the old volumes on {old}")
    return actions
