"""gnt-instance activate-disks, and the watcher's re-activation after a node reboot.

A node that rebooted comes back with its DRBD devices unconfigured (and, where
LVM does not auto-activate, its volumes inactive). An instance that keeps
running on its primary is then degraded: its primary waits in WFConnection for
a secondary that never comes. One operation, ``ActivateDisks``, brings the
disks up; its callers differ only by two options:

- ``promote`` (the operator's ``instance_activate_disks``, Ganeti's
  ``activate-disks``): the disks are made usable on the primary, which is made
  Primary, and their device paths are returned. A disk found not active is
  brought up in Ganeti's two passes (``AssembleInstanceDisks``): every node
  attaches and connects as secondary first, so the pair can handshake, then
  the primary is promoted. ``wait_for_sync`` then waits for the resync of what
  the primary wrote while its peer was away (Ganeti's ``--wait-for-sync``).
- without it (``instance_disks`` state ``active``, the watcher's
  ``activate_all``, autorepair): only what is down is brought up and nothing
  is promoted, because the primary role is the instance start's business.

What "active" means, per template:

- drbd: the resource is configured on every online node (``drbd_attach``:
  volumes activated, attach and connect) and not StandAlone
  (``drbd_connect``); with ``promote``, Primary on the primary. StandAlone on
  both nodes is a split brain: refused, the operator decides whose data
  survives (``instance_replace_disks`` with ``split_brain_survivor``). A
  secondary that is offline or does not answer (still rebooting) is left out
  with a warning: the primary's side is done now, its own at the next run.
- plain: the volume is active on the primary (``disk_assemble``: lvchange -ay);
  a missing volume is an error that names it (replace-disks rebuilds those).
- file, sharedfile, diskless: nothing to activate.

Every step brings up what the config says should be up, so there is no undo:
a failure half-way leaves some devices up, which the next run would bring up
anyway, and nothing is ever taken down, created or deleted.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .. import names
from ..config import Config, Instance
from ..errors import HerdError, PrerequisiteError, RpcError, ValidationError
from ..jobs import Job
from . import nodecalls
from .common import Context, diff_dict
from .disk_health import SPLIT_BRAIN_HINT
from .instance_disks import drbd_state, in_sync
from .phases import LockDecl, Operation
from .replace_disks import DEFAULT_SYNC_TIMEOUT, wait_for_sync

OPCODE = "instance_activate_disks"
STATES = ("active",)
WAIT_ACTION = "wait for the resync"
STATUS_TIMEOUT = 30  # seconds for a node to report a disk's state


class Unreachable(PrerequisiteError):
    """The instance's primary does not answer (rebooting, or dead and not yet marked offline)."""


@dataclass
class Step:
    node: str
    disk: int
    verb: str    # drbd_attach, drbd_connect or disk_assemble
    reason: str  # the state found
    promote: bool = False

    def text(self) -> str:
        what = {"drbd_attach": "bring up", "drbd_connect": "connect", "disk_assemble": "activate"}[self.verb]
        return f"{what} disk {self.disk} on {self.node} ({self.reason})" + (" and make it Primary"
                                                                            if self.promote else "")


@dataclass
class Plan:
    steps: List[Step] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)  # nodes left out, and why
    paths: Dict[int, str] = field(default_factory=dict)  # with promote: each disk's device on the primary
    in_sync: Optional[bool] = None  # drbd, every node read: whether every disk was seen in sync


def _found(status: Optional[Dict[str, Any]]) -> str:
    if status is None:
        return "not configured"
    return str(status.get("cs") or "unknown state")


def plan(ctx: Context, config: Config, inst: Instance, promote: bool = False) -> Plan:
    """What makes ``inst``'s disks active (``promote``: and Primary on its primary). Raises
    PrerequisiteError when they cannot be (primary offline, split brain, missing volume), an
    RpcError when the primary does not answer."""
    out = Plan()
    if inst.disk_template == "diskless" or not inst.disks:
        return out
    primary = inst.primary_node
    if config.nodes[primary].offline:
        raise PrerequisiteError(f"the primary {primary} of {inst.name} is offline: its disks cannot be activated "
                                "(fail the instance over with herd.cluster.instance_failover)")
    if inst.disk_template != "drbd":
        if inst.disk_template != "plain" and not promote:
            return out
        for index, disk in enumerate(inst.disks):
            found = nodecalls.call(ctx, config, primary, "disk_info",
                                   nodecalls.disk_args(config, inst, disk, index, primary), timeout=STATUS_TIMEOUT)
            if not found.get("exists"):
                raise PrerequisiteError(f"disk {index} of {inst.name}: {found.get('path')} does not exist on "
                                        f"{primary}; there is nothing to activate")
            out.paths[index] = found["path"]
            if inst.disk_template == "plain" and found.get("activatable", True) and not found.get("device_present"):
                out.steps.append(Step(primary, index, "disk_assemble", "volume inactive"))
        return out
    # drbd: secondaries first, then the primary, as Ganeti's AssembleInstanceDisks
    nodes = [n for n in (inst.secondary_node, primary) if n]
    online = [n for n in nodes if not config.nodes[n].offline]
    out.skipped += [f"{n} is offline: the disks of {inst.name} stay down there and the instance runs degraded "
                    "until it is back and this runs again, or its secondary is replaced "
                    "(herd.cluster.instance_replace_disks)" for n in nodes if n not in online]
    synced = True
    for index, disk in enumerate(inst.disks):
        states: Dict[str, Optional[Dict[str, Any]]] = {}
        for node in list(online):
            try:
                # a short timeout: a secondary still rebooting is left out, not waited for
                states[node] = drbd_state(ctx, config, inst, index, node, timeout=STATUS_TIMEOUT)
            except RpcError as exc:
                if node == primary:
                    raise
                online.remove(node)
                out.skipped.append(f"{node} does not answer ({exc}): the disks of {inst.name} are not activated "
                                   "there")
        if len(online) == 2 and all(s is not None and s.get("cs") == "StandAlone" for s in states.values()):
            raise PrerequisiteError(f"disk {index} of {inst.name} is StandAlone on both {online[0]} and {online[1]}: "
                                    f"a split brain is not activated automatically; {SPLIT_BRAIN_HINT}")
        synced = synced and all(in_sync(states.get(n)) for n in online)
        down = [n for n in online if _found(states.get(n)) in ("not configured", "StandAlone")]
        promoted = bool((states.get(primary) or {}).get("primary"))
        if promote and (down or not promoted):
            # Ganeti's two passes over this disk: every node as secondary (attach re-applies the
            # resource file, which names the peers), then the primary promoted
            for node in online:
                status = states.get(node)
                verb = "drbd_connect" if status is not None and status.get("cs") == "StandAlone" else "drbd_attach"
                out.steps.append(Step(node, index, verb, _found(status)))
            out.steps.append(Step(primary, index, "disk_assemble", _found(states.get(primary)), promote=not promoted))
        else:
            out.steps += [Step(n, index, "drbd_connect" if states.get(n) else "drbd_attach", _found(states.get(n)))
                          for n in down]
        minor = (disk.logical_id.get("minors") or {}).get(primary)
        out.paths[index] = f"/dev/drbd{minor}"
    out.steps.sort(key=lambda s: (s.node == primary, s.verb == "disk_assemble", s.disk))
    out.in_sync = synced if len(online) == len(nodes) else None
    return out


def run_step(ctx: Context, config: Config, inst: Instance, step: Step) -> Dict[str, Any]:
    args = nodecalls.disk_args(config, inst, inst.disks[step.disk], step.disk, step.node)
    if step.verb == "disk_assemble":
        args["promote"] = step.promote
    return nodecalls.call(ctx, config, step.node, step.verb, args)


class ActivateDisks(Operation):
    """One instance's disks made active on its nodes (phases: see ``phases.Operation``).

    spec: ``name``; ``state`` (only ``active``); ``promote`` (make the primary's disks Primary and
    return their paths, default false); ``wait_for_sync`` and ``sync_timeout`` (seconds) for a
    drbd resync, with ``promote``."""

    opcode = OPCODE
    quiet = False  # activate_all reports the skipped nodes once, in its own result

    def check_arguments(self) -> None:
        self.name = names.check_instance_name(self.spec.get("name"))
        state = self.spec.get("state") or "active"
        if state not in STATES:
            raise ValidationError(f"state {state!r} is not one of {list(STATES)}")
        for option in ("promote", "wait_for_sync"):
            if not isinstance(self.spec.get(option, False), bool):
                raise ValidationError(f"{option} {self.spec[option]!r} must be true or false")
        self.promote = self.spec.get("promote", False)
        self.wait = self.spec.get("wait_for_sync", False)
        timeout = self.spec.get("sync_timeout") or DEFAULT_SYNC_TIMEOUT
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ValidationError(f"sync_timeout {timeout!r} must be a positive number of seconds")
        self.timeout = float(timeout)

    def declare_locks(self, config: Config) -> LockDecl:
        inst = config.instances.get(self.name)
        # shared node locks: node modify (offline, removal) waits, other instances' operations do not
        return LockDecl(instances=[self.name], nodes=inst.nodes() if inst else [], shared_nodes=True)

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        inst = config.instances.get(self.name)
        if inst is None:
            raise PrerequisiteError(f"instance {self.name} does not exist")
        self.inst = inst
        try:
            self.plan = plan(self.ctx, config, inst, promote=self.promote)
        except RpcError as exc:
            raise Unreachable(f"cannot read the disks of {self.name}: {exc}") from None
        if not self.quiet:
            self.ctx.warnings.extend(self.plan.skipped)
        # the resync is waited for only where every node was read: a node left out never syncs
        self.waits = self.wait and self.plan.in_sync is False
        actions = [s.text() for s in self.plan.steps] + ([WAIT_ACTION] if self.waits else [])
        changed = bool(self.plan.steps)
        result: Dict[str, Any] = {
            "changed": changed, "instance": self.name, "actions": actions, "left_out": self.plan.skipped,
            "diff": diff_dict({"disks_active": not changed}, {"disks_active": True}),
            "msg": (f"instance {self.name}: would " + "; ".join(actions)) if changed
            else f"the disks of {self.name} are active" + (" and in sync" if self.plan.in_sync else "")}
        if self.promote:
            drbd = inst.disk_template == "drbd"
            result.update(primary_node=inst.primary_node, secondary_node=inst.secondary_node if drbd else None,
                          disks=[] if changed and self.ctx.check_mode else self._disks())
        if self.promote or self.wait:
            result["synced"] = True if self.plan.in_sync else None
        return result

    def has_work(self, result: Dict[str, Any]) -> bool:
        return bool(result["changed"]) or self.waits

    def _disks(self) -> List[Dict[str, Any]]:
        return [{"index": i, "node": self.inst.primary_node, "path": p} for i, p in sorted(self.plan.paths.items())]

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        for step in self.plan.steps:
            with job.step(step.text(), node=step.node, disk=step.disk):
                answer = run_step(self.ctx, config, self.inst, step)
            if step.verb == "disk_assemble" and answer.get("path"):
                self.plan.paths[step.disk] = answer["path"]
        if self.waits:
            with job.step(WAIT_ACTION, node=self.inst.primary_node):
                result["synced"] = wait_for_sync(self.ctx, job, config, self.inst, self.timeout)
        if self.promote:
            result["disks"] = self._disks()
        job.finish({"actions": result["actions"], **({"synced": result["synced"]} if "synced" in result else {})})
        if result["changed"]:
            result["msg"] = f"instance {self.name}: " + "; ".join(result["actions"]) + (
                "; a resync may still be running (cluster_verify shows it)"
                if self.promote and self.inst.disk_template == "drbd" and not result["synced"] else "")
        else:
            result["msg"] = f"the disks of {self.name} are active" + (" and in sync" if result.get("synced") else "")


def activate(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    """gnt-instance activate-disks NAME (``promote`` as the caller says; see ``ActivateDisks``)."""
    return ActivateDisks(ctx, spec).run()


def activate_all(ctx: Context, spec: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The watcher's pass: activate, without promoting, the disks of every instance whose admin
    state is up and whose primary is online. One instance that fails does not stop the others;
    each failure is named in ``failures``."""
    config = ctx.load_master_config()
    activated: List[Dict[str, Any]] = []
    failures: List[Dict[str, str]] = []
    skipped: List[str] = []
    for name in sorted(config.instances):
        inst = config.instances[name]
        if inst.admin_state != "up" or inst.disk_template not in ("drbd", "plain"):
            continue
        if config.nodes[inst.primary_node].offline:
            skipped.append(f"{name}: primary {inst.primary_node} is offline (autorepair failover, or "
                           "herd.cluster.instance_failover)")
            continue
        try:
            op = ActivateDisks(ctx, {"name": name, "state": "active", "promote": False})
            op.quiet = True
            result = op.run()
        except Unreachable as exc:
            # a primary still rebooting is the restart step's (and the next run's) business
            skipped.append(f"{name}: {exc}")
            continue
        except HerdError as exc:
            failures.append({"instance": name, "reason": str(exc)})
            continue
        skipped += [f"{name}: {s}" for s in result.get("left_out", [])]
        if result["changed"]:
            activated.append({"instance": name, "actions": result["actions"]})
    changed = bool(activated)
    verb = "would activate" if ctx.check_mode else "activated"
    msg = (f"{verb} the disks of " + ", ".join(a["instance"] for a in activated)) if activated \
        else "the disks of every instance that should run are active"
    return {"changed": changed, "activated": activated, "failures": failures, "left_out": skipped, "msg": msg}
