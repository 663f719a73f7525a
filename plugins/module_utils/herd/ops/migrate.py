"""gnt-instance migrate / failover, each a ``phases.Operation``.

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
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Dict, List, Optional

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
from .phases import LockDecl, Operation, check_still_there
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

class Migrate(Operation):
    """gnt-instance migrate, and its cleanup (``cleanup: true``, or an interrupted migration
    found on the instance), and the failover of a stopped instance (``fallback_to_failover``).

    Locks: the instance (declared). Its nodes and the target, shared, are taken after the
    prerequisites and only when it runs for real (``hold``): the target of a sharedfile or
    diskless instance is the allocator's choice, known only from the one round of node facts
    that the checks read."""

    opcode = "instance_migrate"

    def check_arguments(self) -> None:
        self.name = names.check_instance_name(self.spec.get("name"))
        self.mode = self.spec.get("mode") or "live"
        if self.mode not in ("live", "non-live"):
            raise ValidationError(f"mode {self.mode!r} is not one of ['live', 'non-live']")
        self.timeout = float(self.spec.get("timeout") or 3600)
        self.locks = self.ctx.locks(f"instance_migrate {self.name}")
        self.cleaning: Optional[Cleanup] = None
        self.recovered: List[str] = []
        self.fallback: Optional[Failover] = None

    def declare_locks(self, config: Config) -> LockDecl:
        return LockDecl(instances=[self.name], instance_timeout=None if self.spec.get("wait_for_lock", True) else 0)

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        ctx, name = self.ctx, self.name
        if name not in config.instances:
            raise PrerequisiteError(f"instance {name} does not exist")
        inst = config.instances[name]
        interrupted = [j for j in ctx.journal.interrupted()
                       if j.get("params", {}).get("name") == name and j["opcode"] == "instance_migrate"]
        if self.spec.get("cleanup") or interrupted:
            # every interrupted job on the instance is repaired (a migration's by this same cleanup)
            self.recovered = recover_interrupted(ctx, name, self.locks, config)
            if self.recovered:
                config = ctx.load_master_config()
                inst = config.instances[name]
            self.cleaning = Cleanup(ctx, config, inst)
            return self._cleaned()
        if recover_interrupted(ctx, name, self.locks, config):
            config = ctx.load_master_config()
            inst = config.instances[name]
        status = instance_status(ctx, config, inst)
        if not status["running"]:
            if self.spec.get("fallback_to_failover"):
                self.fallback = Failover(ctx, self.spec)
                self.fallback.name, self.fallback.locks = name, self.locks
                return self.fallback.check_locked(config, inst)
            raise PrerequisiteError(f"instance {name} is not running ({status['status']}); set "
                                    "fallback_to_failover: true to fail it over instead")
        raw_facts = live_facts(ctx, config)  # one round serves the target's choice and its checks
        target = _target(config, inst, self.spec.get("target_node"), "migrate", raw_facts)
        check_target(config, inst, target, True, raw_facts)
        self.config, self.inst, self.target = config, inst, target
        before = instance_view(inst)
        after = dict(before, primary_node=target,
                     secondary_node=inst.primary_node if inst.disk_template == "drbd" else None)
        if not ctx.check_mode:
            self.hold(inst.nodes() + [target])
        return {"changed": True, "source": inst.primary_node, "target": target, "mode": self.mode,
                "diff": diff_dict(before, after),
                "msg": f"instance {name} would migrate ({self.mode}) {inst.primary_node} -> {target}"}

    def _cleaned(self) -> Dict[str, Any]:
        if self.cleaning is None:
            raise AssertionError("no cleanup was planned")
        cleaned = self.cleaning.result()
        cleaned["actions"] = self.recovered + cleaned["actions"]
        cleaned["changed"] = cleaned["changed"] or bool(self.recovered)
        return cleaned

    def open_job(self) -> ContextManager[Any]:
        if self.cleaning is not None:
            return nullcontext()  # the cleanup journals only its switch of the primary
        if self.fallback is not None:
            return self.fallback.open_job()
        return self.ctx.job("instance_migrate", {"name": self.name, "target": self.target, "mode": self.mode})

    def execute(self, job: Optional[Job], config: Config, result: Dict[str, Any]) -> None:
        if self.cleaning is not None:
            self.cleaning.apply(self.locks)
            result.update(self._cleaned())
            return
        if job is None:
            raise AssertionError("a migration runs in a job")
        if self.fallback is not None:
            self.fallback.execute(job, config, result)
            return
        ctx, name, inst, target, mode = self.ctx, self.name, self.inst, self.target, self.mode
        check_still_there(ctx.store.load(), inst.nodes() + [target], [name], what=f"migration of {name}")
        stats = _live_migrate(ctx, job, self.config, inst, target, mode, self.timeout)
        # as Ganeti: the guest runs on the target, so the config says so before anything
        # else can fail; the demote that follows is cleanup, and its failure is recorded
        with job.step("commit config: switch primary"):
            moved_config = _switch_primary(ctx, self.locks, name, target)
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


def migrate(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    return Migrate(ctx, spec).run()


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
    """Ganeti's migrate --cleanup in one call (the repair of an interrupted migration)."""
    found = Cleanup(ctx, config, inst)
    if not ctx.check_mode:
        found.apply(locks)
    return found.result()


class Cleanup:
    """Ganeti's migrate --cleanup: find where the instance really runs and make the config say so.

    From every node's view of the instance (``running``, ``incoming`` on a
    target still receiving, ``migrated`` on a source whose guest left):
    target running + source migrated: the migration completed, finalize both
    and switch the primary; source running + target incoming: it stopped
    half-way, kill the target and resume the source; running elsewhere only:
    switch the primary; running on the primary only: resume it if paused.
    The constructor reads and plans (the prerequisites); ``apply`` acts.
    """

    def __init__(self, ctx: Context, config: Config, inst: Instance):
        self.ctx, self.config, self.inst = ctx, config, inst
        nodes = [n for n in sorted(config.nodes) if config.nodes[n].vm_capable]
        answers = nodecalls.running_on(ctx, config, nodes, inst.hypervisor, every_state=True)
        self.state = {n: a[inst.name].get("status") for n, a in answers.items()
                      if not isinstance(a, RpcError) and inst.name in a}
        state, primary = self.state, inst.primary_node
        running = [n for n, s in state.items() if s == "running"]
        incoming = [n for n, s in state.items() if s == "incoming"]
        self.actions: List[str] = []
        self.calls: List[Callable[[], Any]] = []  # in order, the node calls the actions need
        self.new_primary = primary
        args = {"name": inst.name, "hypervisor": inst.hypervisor}

        def call(node: str, verb: str, **extra: Any) -> None:
            self.calls.append(_later(nodecalls.call, ctx, config, node, verb, dict(args, **extra)))

        if state.get(primary) == "migrated" and running and running[0] != primary:
            self.new_primary = running[0]
            self.actions += [f"the migration to {self.new_primary} had completed: finalize both sides",
                             f"make {self.new_primary} the primary"]
            call(self.new_primary, "migration_finalize", role="target", success=True)
            call(primary, "migration_finalize", role="source", success=True)
        elif state.get(primary) == "migrated":
            self.actions.append(f"the guest left {primary} but runs nowhere else: resume it on {primary}")
            call(primary, "migration_abort", resume_completed=True)
        else:
            for node in incoming:
                self.actions.append(f"kill the incoming process on {node}")
                call(node, "migration_finalize", role="target", success=False)
            others = [n for n in running if n != primary]
            if primary in running:
                if incoming:  # a migration stopped half-way may have left the source paused
                    self.actions.append(f"resume the guest on {primary} if a migration left it paused")
                    call(primary, "migration_abort")
                for node in others:
                    self.actions.append(f"stop the second copy on {node}")
                    self.calls.append(_later(nodecalls.instance_stop, ctx, config, inst, node=node, force=True))
            elif others:
                self.new_primary = others[0]
                self.actions.append(f"the instance runs on {self.new_primary}: make it the primary")
        # the secondary's DRBD role is read after the calls above when they run (apply)
        self.demote_checked = ctx.check_mode or not self.actions
        if self.demote_checked:
            self._check_demote()

    def _check_demote(self) -> None:
        inst = self.inst
        if inst.disk_template == "drbd" and self.new_primary == inst.primary_node \
                and _secondary_still_primary(self.ctx, self.config, inst):
            self.actions.append(f"demote drbd on {inst.secondary_node} (still Primary: a demote after a "
                                "migration failed)")

    def apply(self, locks: Locks) -> None:
        ctx, inst = self.ctx, self.inst
        for call in self.calls:
            call()
        if self.new_primary != inst.primary_node:
            with ctx.job("instance_migrate_cleanup", {"name": inst.name, "primary": self.new_primary}):
                _switch_primary(ctx, locks, inst.name, self.new_primary)
        if not self.demote_checked:
            self._check_demote()
        if inst.disk_template == "drbd" and self.actions:
            fresh = ctx.store.load().instances[inst.name]
            _drbd_mode(ctx, self.config, fresh, dual=False, primary=fresh.primary_node)
            self.actions.append("drbd back to single-primary")

    def result(self) -> Dict[str, Any]:
        inst = self.inst
        before = instance_view(inst)
        after = dict(before, primary_node=self.new_primary)
        return {"changed": bool(self.actions), "actions": list(self.actions), "source": inst.primary_node,
                "target": self.new_primary, "node_states": self.state, "diff": diff_dict(before, after),
                "msg": f"cleanup of {inst.name}: " + ("; ".join(self.actions) or "nothing to do")}


def _later(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: func(*args, **kwargs)


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

class Failover(Operation):
    """gnt-instance failover: shut down on the primary (unless it is dead), switch the
    primary in the config, start on the target. Locks: the instance."""

    opcode = "instance_failover"

    def check_arguments(self) -> None:
        self.name = names.check_instance_name(self.spec.get("name"))
        self.locks = self.ctx.locks(f"instance_failover {self.name}")

    def declare_locks(self, config: Config) -> LockDecl:
        return LockDecl(instances=[self.name])

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        if self.name not in config.instances:
            raise PrerequisiteError(f"instance {self.name} does not exist")
        if recover_interrupted(self.ctx, self.name, self.locks, config):
            config = self.ctx.load_master_config()
        return self.check_locked(config, config.instances[self.name])

    def check_locked(self, config: Config, inst: Instance) -> Dict[str, Any]:
        """The prerequisites once the instance is locked and repaired (also a migration's fallback)."""
        source = inst.primary_node
        # one round: the target's choice and checks, and whether the source still answers
        raw_facts = live_facts(self.ctx, config)
        target = _target(config, inst, self.spec.get("target_node"), "fail over", raw_facts)
        ignore = bool(self.spec.get("ignore_consistency"))
        source_down = config.nodes[source].offline
        if not source_down and (raw_facts.get(source) or {}).get("error"):
            if not ignore:
                raise PrerequisiteError(f"primary {source} of {inst.name} does not answer "
                                        f"({raw_facts[source]['error']}); if it is dead, "
                                        "set ignore_consistency: true (or mark it offline)")
            source_down = True
        check_target(config, inst, target, inst.admin_state == "up", raw_facts)
        self.config, self.inst, self.target = config, inst, target
        self.ignore, self.source_down = ignore, source_down
        before = instance_view(inst)
        after = dict(before, primary_node=target,
                     secondary_node=source if inst.disk_template == "drbd" else None)
        return {"changed": True, "source": source, "target": target, "diff": diff_dict(before, after),
                "msg": f"instance {inst.name} would fail over {source} -> {target}"}

    def open_job(self) -> ContextManager[Any]:
        return self.ctx.job("instance_failover", {"name": self.inst.name, "target": self.target})

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        ctx, inst, target, ignore = self.ctx, self.inst, self.target, self.ignore
        config, source = self.config, inst.primary_node
        if not self.source_down:
            with job.step("shut down on source", node=source):
                try:
                    timeout = int(self.spec.get("shutdown_timeout") or 120)
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
            config = _switch_primary(ctx, self.locks, inst.name, target)
        moved = config.instances[inst.name]
        nodecalls.seed_to(ctx, config, moved, target)
        if not self.source_down:  # from a dead node they cannot be read: the target keeps what it has
            with job.step("UEFI variables to target"):
                ctx.warnings += filter(None, [nodecalls.carry_uefi_vars(ctx, config, moved, source, target)])
        if moved.admin_state == "up":
            if inst.disk_template == "drbd":
                with job.step("drbd: promote target"):
                    _drbd_role(ctx, config, moved, target, "primary", tolerate=False)
            with job.step("start on target", node=target):
                nodecalls.instance_start(ctx, config, moved, node=target)
        result["msg"] = f"instance {inst.name} failed over {source} -> {target}"


def failover(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    return Failover(ctx, spec).run()


def _drbd_role(ctx: Context, config: Config, inst: Instance, node: str, role: str, tolerate: bool) -> None:
    for index, disk in enumerate(inst.disks):
        args = nodecalls.disk_args(config, inst, disk, index, node)
        args.update({"role": role, "dual_primary": False, "force": tolerate})
        try:
            nodecalls.call(ctx, config, node, "drbd_set_mode", args)
        except RpcError:
            if not tolerate:
                raise
