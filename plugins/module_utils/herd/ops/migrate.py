"""gnt-instance migrate / failover and gnt-node evacuate.

Live migration follows Ganeti's sequence (reference §4b): check the target,
(drbd: disconnect, reconnect dual-primary, both primary), start the identical
QEMU on the target with ``-incoming``, set bandwidth and downtime, migrate,
poll ``query-migrate`` with progress in the job log, finalize both sides, and
only then switch the primary in the config; then (drbd) demote the old
primary, back to single-primary: a failed demote is a recorded job step and a
warning, never a config naming the source. Any failure before the commit
cancels the migration, kills the target process, resumes the source, reverts
the disks and leaves the config as it was, with QEMU's own message in the error.
"""

import time
from typing import Any, Dict, List, Optional

from .. import names
from ..allocator import placement as allocator_placement
from ..config import Config, Instance, now
from ..errors import HerdError, PrerequisiteError, RpcError, ValidationError
from ..jobs import Job, Locks
from . import nodecalls, placement
from .common import Context, diff_dict
from .facts import allocator_facts, live_facts
from .instance import instance_status
from .instance_spec import effective_hvparams, instance_view
from .phases import check_still_there, node_locks
from .recovery import recover_interrupted, repairs

MIGRATABLE = ("drbd", "sharedfile", "diskless")
POLL_INTERVAL = 0.5


def _target(config: Config, inst: Instance, requested: Optional[str], what: str, raw_facts: Dict[str, Any]) -> str:
    template = inst.disk_template
    if template not in MIGRATABLE:
        raise PrerequisiteError(f"instance {inst.name} uses {template} disks, which live on one node only: "
                                f"it cannot {what}; move it with a new instance or use sharedfile/drbd")
    if template == "drbd":
        if requested and requested != inst.secondary_node:
            raise PrerequisiteError(f"instance {inst.name} is drbd: it can only {what} to its secondary "
                                    f"{inst.secondary_node}, not {requested} (change the secondary with "
                                    "instance_replace_disks first)")
        return inst.secondary_node  # type: ignore[return-value]
    if requested:
        names.check_hostname(requested, "target_node")
        if requested == inst.primary_node:
            raise PrerequisiteError(f"instance {inst.name} already has {requested} as primary")
        return requested
    answer = allocator_placement.relocate(config.to_dict(), allocator_facts(config, raw_facts), inst.name)
    if not answer["success"]:
        raise PrerequisiteError(f"no node can take {inst.name}: " + "; ".join(answer.get("reasons", [])))
    return answer["primary"]


def check_target(config: Config, inst: Instance, target: str, need_memory: bool, raw_facts: Dict[str, Any]) -> None:
    """Every reason the target cannot take the instance: its flags, its bridges (what the node
    reports), and, when the instance will run there, the allocator's own rules for a new primary
    (memory with N+1, instance policy, migration tags), so a named target is judged as a chosen one.
    ``raw_facts`` are the operation's one round of ``live_facts``."""
    placement.check_nodes_usable(config, [target], f"instance {inst.name}")
    facts = raw_facts.get(target) or {"error": "not asked"}
    if facts.get("error"):
        raise PrerequisiteError(f"cannot move {inst.name} to {target}: its agent does not answer ({facts['error']})")
    problems = []
    missing = sorted({nic.link for nic in inst.nics} - set(facts.get("bridges", [])))
    if missing:
        problems.append(f"{target}: bridge(s) {missing} do not exist there")
    if need_memory:
        problems += allocator_placement.check_target(config.to_dict(), allocator_facts(config, raw_facts),
                                                     inst.name, target)
    if problems:
        raise PrerequisiteError(f"cannot move {inst.name} to {target}: " + "; ".join(problems))


def _switch_primary(ctx: Context, locks: Locks, name: str, target: str) -> Config:
    with locks.cluster():
        fresh = ctx.store.load()
        check_still_there(fresh, [target], [name], what=f"switching the primary of {name}")
        inst = fresh.instances[name]
        old = inst.primary_node
        inst.primary_node = target
        if inst.disk_template == "drbd":
            inst.secondary_node = old
        inst.mtime = now()
        ctx.commit(fresh)
        return fresh


# --------------------------------------------------------------------------- migrate

def migrate(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    name = names.check_instance_name(spec.get("name"))
    mode = spec.get("mode") or "live"
    if mode not in ("live", "non-live"):
        raise ValidationError(f"mode {mode!r} is not one of ['live', 'non-live']")
    timeout = float(spec.get("timeout") or 3600)
    locks = ctx.locks(f"instance_migrate {name}")
    with locks.instance(name, timeout=ctx.lock_timeout if spec.get("wait_for_lock", True) else 0):
        config = ctx.load_master_config()
        if name not in config.instances:
            raise PrerequisiteError(f"instance {name} does not exist")
        inst = config.instances[name]
        interrupted = [j for j in ctx.journal.interrupted()
                       if j.get("params", {}).get("name") == name and j["opcode"] == "instance_migrate"]
        if spec.get("cleanup") or interrupted:
            # every interrupted job on the instance is repaired (a migration's by this same cleanup)
            actions = recover_interrupted(ctx, name, locks, config)
            if actions:
                config = ctx.load_master_config()
                inst = config.instances[name]
            cleaned = cleanup(ctx, locks, config, inst)
            cleaned["actions"] = actions + cleaned["actions"]
            cleaned["changed"] = cleaned["changed"] or bool(actions)
            return cleaned
        if recover_interrupted(ctx, name, locks, config):
            config = ctx.load_master_config()
            inst = config.instances[name]
        status = instance_status(ctx, config, inst)
        if not status["running"]:
            if spec.get("fallback_to_failover"):
                return _failover_locked(ctx, locks, config, inst, spec)
            raise PrerequisiteError(f"instance {name} is not running ({status['status']}); set "
                                    "fallback_to_failover: true to fail it over instead")
        raw_facts = live_facts(ctx, config)  # one round serves the target's choice and its checks
        target = _target(config, inst, spec.get("target_node"), "migrate", raw_facts)
        check_target(config, inst, target, True, raw_facts)
        before = instance_view(inst)
        after = dict(before, primary_node=target,
                     secondary_node=inst.primary_node if inst.disk_template == "drbd" else None)
        result: Dict[str, Any] = {"changed": True, "source": inst.primary_node, "target": target, "mode": mode,
                                  "diff": diff_dict(before, after),
                                  "msg": f"instance {name} would migrate ({mode}) {inst.primary_node} -> {target}"}
        if ctx.check_mode:
            return result
        with node_locks(locks, inst.nodes() + [target], shared=True), \
                ctx.job("instance_migrate", {"name": name, "target": target, "mode": mode}) as job:
            check_still_there(ctx.store.load(), inst.nodes() + [target], [name], what=f"migration of {name}")
            stats = _live_migrate(ctx, job, config, inst, target, mode, timeout)
            # as Ganeti: the guest runs on the target, so the config says so before anything
            # else can fail; the demote that follows is cleanup, and its failure is recorded
            with job.step("commit config: switch primary"):
                moved_config = _switch_primary(ctx, locks, name, target)
            demote_error = None
            if inst.disk_template == "drbd":
                demote_error = _demote_source(ctx, job, moved_config, name, target)
                stats = dict(stats, drbd_demote_error=demote_error)
            job.finish(stats)
        msg = (f"instance {name} migrated ({mode}) {inst.primary_node} -> {target} "
               f"in {(stats.get('total_time_ms') or 0) / 1000:.1f} s")
        if demote_error:
            msg += (f"; but demoting drbd on {inst.primary_node} failed ({demote_error}): both sides may still be "
                    "Primary with two primaries allowed; cluster_verify reports it and herd.cluster.instance_migrate "
                    "with cleanup: true demotes it")
            ctx.warnings.append(msg)
        result.update(migration=stats, msg=msg)
        return result


def _demote_source(ctx: Context, job: Job, config: Config, name: str, target: str) -> Optional[str]:
    """After the commit: single-primary on the target (the source demoted, two primaries
    forbidden). -> None, or the error text, recorded as the job's failed step."""
    moved = config.instances[name]
    try:
        with job.step("drbd: single-primary on the target (demote the source)", node=moved.secondary_node):
            _drbd_mode(ctx, config, moved, dual=False, primary=target)
    except HerdError as exc:
        return str(exc)
    return None


def _live_migrate(ctx: Context, job: Job, config: Config, inst: Instance, target: str, mode: str,
                  timeout: float) -> Dict[str, Any]:
    source = inst.primary_node
    hv = effective_hvparams(config, inst)
    drbd = inst.disk_template == "drbd"
    if drbd:
        with job.step("drbd: dual-primary", nodes=[source, target]):
            _drbd_mode(ctx, config, inst, dual=True)
            job.on_undo("drbd: back to single-primary on the source", lambda: _drbd_mode(
                ctx, config, inst, dual=False, primary=source))
    with job.step("cloud-init seed on target"):
        nodecalls.seed_to(ctx, config, inst, target)
    with job.step("UEFI variables to target"):
        ctx.warnings += filter(None, [nodecalls.carry_uefi_vars(ctx, config, inst, source, target)])
    with job.step("read runtime on source"):
        info = nodecalls.call(ctx, config, source, "migration_info",
                              {"name": inst.name, "hypervisor": inst.hypervisor})
    address = config.nodes[target].secondary_ip
    with job.step("accept on target", target=target):
        accepted = nodecalls.call(ctx, config, target, "migration_accept",
                                  {"name": inst.name, "hypervisor": inst.hypervisor, "runtime": info["runtime"],
                                   "address": address, "disk_paths": nodecalls.disk_paths(ctx, config, inst, target)
                                   if drbd else None})
    # Undo runs in reverse: the target's process dies first, then the source resumes
    # (resuming first could run the guest twice), as Ganeti's _AbortMigration.
    job.on_undo("resume the source", lambda: nodecalls.call(
        ctx, config, source, "migration_abort", {"name": inst.name, "hypervisor": inst.hypervisor}))
    job.on_undo("kill the incoming process on the target", lambda: nodecalls.call(
        ctx, config, target, "migration_finalize",
        {"name": inst.name, "hypervisor": inst.hypervisor, "role": "target", "success": False}))
    with job.step("migrate", target=target, mode=mode):
        nodecalls.call(ctx, config, source, "migration_start",
                       {"name": inst.name, "hypervisor": inst.hypervisor, "address": address,
                        "port": accepted["port"], "live": mode == "live",
                        "bandwidth": hv.get("migration_bandwidth", 32),
                        "downtime": hv.get("migration_downtime", 30)})
        stats = _poll(ctx, job, config, inst, source, timeout)
    with job.step("finalize target and source"):
        nodecalls.call(ctx, config, target, "migration_finalize",
                       {"name": inst.name, "hypervisor": inst.hypervisor, "role": "target", "success": True})
        nodecalls.call(ctx, config, source, "migration_finalize",
                       {"name": inst.name, "hypervisor": inst.hypervisor, "role": "source", "success": True})
    job.no_more_undo()  # past the point of no return: the instance runs on the target
    return stats


def _poll(ctx: Context, job: Job, config: Config, inst: Instance, source: str, timeout: float) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    unknown = 0
    last: Dict[str, Any] = {}
    last_log = 0.0
    while True:
        try:
            last = nodecalls.call(ctx, config, source, "migration_status",
                                  {"name": inst.name, "hypervisor": inst.hypervisor})
        except RpcError:
            unknown += 1
            if unknown >= 5:
                raise
            time.sleep(2)
            continue
        status = last.get("status")
        if status == "completed":
            return last
        if status in ("failed", "cancelled"):
            raise HerdError(f"migration of {inst.name} {status}: {last.get('error') or 'QEMU gave no reason'}")
        if time.monotonic() - last_log > 2:
            job.log(f"migration {status}: {_mib(last, 'transferred')} of {_mib(last, 'total')} MiB "
                    f"transferred, {_mib(last, 'remaining')} MiB remaining")
            last_log = time.monotonic()
        if time.monotonic() > deadline:
            raise HerdError(f"migration of {inst.name} did not finish within {timeout:g} s; it was at {status} with "
                            f"{_mib(last, 'transferred')} of {_mib(last, 'total')} MiB transferred; cancelled")
        time.sleep(POLL_INTERVAL)


def _mib(status: Dict[str, Any], key: str) -> int:
    """A byte count of QEMU's migration status in MiB; QEMU reports none while setting up."""
    return int(status.get(key) or 0) // 2**20


def _drbd_mode(ctx: Context, config: Config, inst: Instance, dual: bool, primary: Optional[str] = None) -> None:
    """DRBD network mode for migration: dual-primary on both, or single-primary on ``primary``."""
    for index, disk in enumerate(inst.disks):
        for node in inst.nodes():
            args = nodecalls.disk_args(config, inst, disk, index, node)
            args.update({"dual_primary": dual, "role": "primary" if dual or node == primary else "secondary"})
            if node == inst.nodes()[-1]:
                # the second side: a resource it reconnects must really connect (a split brain does not)
                args["connect_timeout"] = 60
            nodecalls.call(ctx, config, node, "drbd_set_mode", args)


@repairs("instance_migrate")
def repair(ctx: Context, locks: Locks, config: Config, inst: Optional[Instance], job: Dict[str, Any]) -> List[str]:
    """An interrupted migration: the instance may run on the target, or on both nodes."""
    if inst is None:
        return []
    return cleanup(ctx, locks, config, inst)["actions"]


def cleanup(ctx: Context, locks: Locks, config: Config, inst: Instance) -> Dict[str, Any]:
    """Ganeti's migrate --cleanup: find where the instance really runs and make the config say so.

    From every node's view of the instance (``running``, ``incoming`` on a
    target still receiving, ``migrated`` on a source whose guest left):
    target running + source migrated: the migration completed, finalize both
    and switch the primary; source running + target incoming: it stopped
    half-way, kill the target and resume the source; running elsewhere only:
    switch the primary; running on the primary only: resume it if paused.
    """
    nodes = [n for n in sorted(config.nodes) if config.nodes[n].vm_capable]
    answers = nodecalls.running_on(ctx, config, nodes, inst.hypervisor, every_state=True)
    state = {n: a[inst.name].get("status") for n, a in answers.items()
             if not isinstance(a, RpcError) and inst.name in a}
    primary = inst.primary_node
    running = [n for n, s in state.items() if s == "running"]
    incoming = [n for n, s in state.items() if s == "incoming"]
    before = instance_view(inst)
    actions: List[str] = []
    new_primary = primary
    args = {"name": inst.name, "hypervisor": inst.hypervisor}

    def finalize(node: str, role: str, success: bool) -> None:
        if not ctx.check_mode:
            nodecalls.call(ctx, config, node, "migration_finalize", dict(args, role=role, success=success))

    if state.get(primary) == "migrated" and running and running[0] != primary:
        new_primary = running[0]
        actions += [f"the migration to {new_primary} had completed: finalize both sides",
                    f"make {new_primary} the primary"]
        finalize(new_primary, "target", True)
        finalize(primary, "source", True)
    elif state.get(primary) == "migrated":
        actions.append(f"the guest left {primary} but runs nowhere else: resume it on {primary}")
        if not ctx.check_mode:
            nodecalls.call(ctx, config, primary, "migration_abort", dict(args, resume_completed=True))
    else:
        for node in incoming:
            actions.append(f"kill the incoming process on {node}")
            finalize(node, "target", False)
        others = [n for n in running if n != primary]
        if primary in running:
            if incoming:  # a migration stopped half-way may have left the source paused
                actions.append(f"resume the guest on {primary} if a migration left it paused")
                if not ctx.check_mode:
                    nodecalls.call(ctx, config, primary, "migration_abort", args)
            for node in others:
                actions.append(f"stop the second copy on {node}")
                if not ctx.check_mode:
                    nodecalls.instance_stop(ctx, config, inst, node=node, force=True)
        elif others:
            new_primary = others[0]
            actions.append(f"the instance runs on {new_primary}: make it the primary")
    if new_primary != primary and not ctx.check_mode:
        with ctx.job("instance_migrate_cleanup", {"name": inst.name, "primary": new_primary}):
            _switch_primary(ctx, locks, inst.name, new_primary)
    if inst.disk_template == "drbd" and new_primary == primary and _secondary_still_primary(ctx, config, inst):
        actions.append(f"demote drbd on {inst.secondary_node} (still Primary: a demote after a migration failed)")
    if inst.disk_template == "drbd" and actions and not ctx.check_mode:
        fresh = ctx.store.load().instances[inst.name]
        _drbd_mode(ctx, config, fresh, dual=False, primary=fresh.primary_node)
        actions.append("drbd back to single-primary")
    after = dict(before, primary_node=new_primary)
    return {"changed": bool(actions), "actions": actions, "source": primary, "target": new_primary,
            "node_states": state, "diff": diff_dict(before, after),
            "msg": f"cleanup of {inst.name}: " + ("; ".join(actions) or "nothing to do")}


def _secondary_still_primary(ctx: Context, config: Config, inst: Instance) -> bool:
    """Whether any disk is Primary on the secondary node (what a failed demote leaves)."""
    node = inst.secondary_node
    if not node or node not in config.nodes or config.nodes[node].offline:
        return False
    for index, disk in enumerate(inst.disks):
        try:
            answer = nodecalls.call(ctx, config, node, "drbd_status",
                                    nodecalls.disk_args(config, inst, disk, index, node))
        except RpcError:
            return False
        if (answer.get("status") or {}).get("primary"):
            return True
    return False


# --------------------------------------------------------------------------- failover

def failover(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    name = names.check_instance_name(spec.get("name"))
    locks = ctx.locks(f"instance_failover {name}")
    with locks.instance(name):
        config = ctx.load_master_config()
        if name not in config.instances:
            raise PrerequisiteError(f"instance {name} does not exist")
        if recover_interrupted(ctx, name, locks, config):
            config = ctx.load_master_config()
        return _failover_locked(ctx, locks, config, config.instances[name], spec)


def _failover_locked(ctx: Context, locks: Locks, config: Config, inst: Instance, spec: Dict[str, Any]) -> Dict[str, Any]:
    source = inst.primary_node
    # one round: the target's choice and checks, and whether the source still answers
    raw_facts = live_facts(ctx, config)
    target = _target(config, inst, spec.get("target_node"), "fail over", raw_facts)
    ignore = bool(spec.get("ignore_consistency"))
    source_down = config.nodes[source].offline
    if not source_down and (raw_facts.get(source) or {}).get("error"):
        if not ignore:
            raise PrerequisiteError(f"primary {source} of {inst.name} does not answer "
                                    f"({raw_facts[source]['error']}); if it is dead, "
                                    "set ignore_consistency: true (or mark it offline)")
        source_down = True
    check_target(config, inst, target, inst.admin_state == "up", raw_facts)
    before = instance_view(inst)
    after = dict(before, primary_node=target,
                 secondary_node=source if inst.disk_template == "drbd" else None)
    result: Dict[str, Any] = {"changed": True, "source": source, "target": target, "diff": diff_dict(before, after),
                              "msg": f"instance {inst.name} would fail over {source} -> {target}"}
    if ctx.check_mode:
        return result
    with ctx.job("instance_failover", {"name": inst.name, "target": target}) as job:
        if not source_down:
            with job.step("shut down on source", node=source):
                try:
                    timeout = int(spec.get("shutdown_timeout") or 120)
                    nodecalls.instance_stop(ctx, config, inst, node=source, timeout=timeout)
                except RpcError:
                    if not ignore:
                        raise
                    ctx.warnings.append(f"could not shut {inst.name} down on {source}; continuing "
                                        "(ignore_consistency)")
            if inst.disk_template == "drbd":
                with job.step("drbd: demote source"):
                    _drbd_role(ctx, config, inst, source, "secondary", tolerate=ignore)
        else:
            ctx.warnings.append(f"{source} is offline or unreachable: {inst.name} was not shut down there; "
                                "cluster_verify reports a stale process if it comes back")
        with job.step("commit config: switch primary"):
            config = _switch_primary(ctx, locks, inst.name, target)
        moved = config.instances[inst.name]
        nodecalls.seed_to(ctx, config, moved, target)
        if not source_down:  # from a dead node they cannot be read: the target keeps what it has
            with job.step("UEFI variables to target"):
                ctx.warnings += filter(None, [nodecalls.carry_uefi_vars(ctx, config, moved, source, target)])
        if moved.admin_state == "up":
            if inst.disk_template == "drbd":
                with job.step("drbd: promote target"):
                    _drbd_role(ctx, config, moved, target, "primary", tolerate=False)
            with job.step("start on target", node=target):
                nodecalls.instance_start(ctx, config, moved, node=target)
    result["msg"] = f"instance {inst.name} failed over {source} -> {target}"
    return result


def _drbd_role(ctx: Context, config: Config, inst: Instance, node: str, role: str, tolerate: bool) -> None:
    for index, disk in enumerate(inst.disks):
        args = nodecalls.disk_args(config, inst, disk, index, node)
        args.update({"role": role, "dual_primary": False, "force": tolerate})
        try:
            nodecalls.call(ctx, config, node, "drbd_set_mode", args)
        except RpcError:
            if not tolerate:
                raise
