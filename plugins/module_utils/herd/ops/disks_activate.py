"""gnt-instance activate-disks, and the watcher's re-activation after a node reboot.

A node that rebooted comes back with its DRBD devices unconfigured (and, where
LVM does not auto-activate, its volumes inactive). An instance that keeps
running on its primary is then degraded: its primary waits for a secondary
that never comes. Ganeti's watcher calls activate-disks for such instances;
``activate`` does the same for one instance, ``activate_all`` for every
instance whose disks should be active (admin state up, as Ganeti activates
only the disks of instances marked active).

What "active" means, per template:

- drbd: the resource is configured on both nodes (``drbd_attach``: volumes
  activated, attach and connect, never promoted: the primary role is the
  instance start's business) and not StandAlone (``drbd_connect``). StandAlone
  on both nodes is a split brain: refused, the operator decides whose data
  survives (``instance_replace_disks`` with ``split_brain_survivor``).
- plain: the volume is active on the primary (``disk_assemble``: lvchange -ay).
- file, sharedfile, diskless: nothing to activate.

Every step brings up what the config says should be up, so there is no undo:
a failure half-way leaves some devices up, which the next run would bring up
anyway, and nothing is ever taken down or deleted.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .. import names
from ..config import Config, Instance
from ..errors import HerdError, PrerequisiteError, RpcError, ValidationError
from . import nodecalls
from .common import Context, diff_dict
from .disk_health import SPLIT_BRAIN_HINT
from .phases import LockDecl, Operation

OPCODE = "instance_activate_disks"
STATES = ("active",)


class Unreachable(PrerequisiteError):
    """The instance's primary does not answer (rebooting, or dead and not yet marked offline)."""


@dataclass
class Step:
    node: str
    disk: int
    verb: str
    reason: str

    def text(self) -> str:
        what = {"drbd_attach": "bring up", "drbd_connect": "connect", "disk_assemble": "activate"}[self.verb]
        return f"{what} disk {self.disk} on {self.node} ({self.reason})"


def _drbd_status(ctx: Context, config: Config, inst: Instance, index: int, node: str) -> Optional[Dict[str, Any]]:
    args = nodecalls.disk_args(config, inst, inst.disks[index], index, node)
    answer = nodecalls.call(ctx, config, node, "drbd_status", args, timeout=30)
    if not answer.get("loaded"):
        raise PrerequisiteError(f"the DRBD kernel module is not loaded on {node}: the disks of {inst.name} cannot "
                                "be activated there (load it with the herd.cluster.storage role, or modprobe drbd)")
    return answer.get("status")


def plan(ctx: Context, config: Config, inst: Instance) -> Dict[str, Any]:
    """{"steps": [Step], "skipped": [why a node is left out]} to make ``inst``'s disks active.
    Raises PrerequisiteError when they cannot be (primary offline, split brain, missing volume)."""
    if inst.disk_template not in ("drbd", "plain"):
        return {"steps": [], "skipped": []}
    primary = inst.primary_node
    if config.nodes[primary].offline:
        raise PrerequisiteError(f"the primary {primary} of {inst.name} is offline: its disks cannot be activated "
                                "(fail the instance over with herd.cluster.instance_failover)")
    steps: List[Step] = []
    skipped: List[str] = []
    if inst.disk_template == "plain":
        for index, disk in enumerate(inst.disks):
            found = nodecalls.call(ctx, config, primary, "disk_info",
                                   nodecalls.disk_args(config, inst, disk, index, primary), timeout=30)
            if not found.get("exists"):
                raise PrerequisiteError(f"disk {index} of {inst.name}: volume {found.get('path')} does not exist on "
                                        f"{primary}; there is nothing to activate")
            if found.get("activatable", True) and not found.get("device_present"):
                steps.append(Step(primary, index, "disk_assemble", "volume inactive"))
        return {"steps": steps, "skipped": skipped}
    # drbd: secondaries first, then the primary, as Ganeti's AssembleInstanceDisks
    nodes = [n for n in (inst.secondary_node, primary) if n]
    online = [n for n in nodes if not config.nodes[n].offline]
    skipped += [f"{n} is offline: the disks of {inst.name} stay degraded until it is back or the secondary is "
                "replaced (herd.cluster.instance_replace_disks)" for n in nodes if n not in online]
    for index in range(len(inst.disks)):
        states = {}
        for node in list(online):
            try:
                states[node] = _drbd_status(ctx, config, inst, index, node)
            except RpcError as exc:
                if node == primary:
                    raise
                # a secondary still rebooting: the primary's side is done now, its own at the next run
                online.remove(node)
                skipped.append(f"{node} does not answer ({exc}): the disks of {inst.name} are not activated there")
        if len(online) == 2 and all(s is not None and s.get("cs") == "StandAlone" for s in states.values()):
            raise PrerequisiteError(f"disk {index} of {inst.name} is StandAlone on both {online[0]} and {online[1]}: "
                                    f"a split brain is not activated automatically; {SPLIT_BRAIN_HINT}")
        for node in online:
            status = states.get(node)
            if status is None:
                steps.append(Step(node, index, "drbd_attach", "not configured"))
            elif status.get("cs") == "StandAlone":
                steps.append(Step(node, index, "drbd_connect", "StandAlone"))
    steps.sort(key=lambda s: (s.node == primary, s.disk))
    return {"steps": steps, "skipped": skipped}


def run_step(ctx: Context, config: Config, inst: Instance, step: Step) -> bool:
    args = nodecalls.disk_args(config, inst, inst.disks[step.disk], step.disk, step.node)
    if step.verb == "disk_assemble":
        args["promote"] = False
    answer = nodecalls.call(ctx, config, step.node, step.verb, args)
    return bool(answer.get("changed", True))


class ActivateDisks(Operation):
    """One instance's disks made active on its nodes (phases: see ``phases.Operation``)."""

    opcode = OPCODE
    quiet = False  # activate_all reports the skipped nodes once, in its own result

    def check_arguments(self) -> None:
        self.name = names.check_instance_name(self.spec.get("name"))
        state = self.spec.get("state") or "active"
        if state not in STATES:
            raise ValidationError(f"state {state!r} is not one of {list(STATES)}")

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
            found = plan(self.ctx, config, inst)
        except RpcError as exc:
            raise Unreachable(f"cannot read the disks of {self.name}: {exc}") from None
        self.steps = found["steps"]
        if not self.quiet:
            self.ctx.warnings.extend(found["skipped"])
        before = {"disks_active": not self.steps}
        actions = [s.text() for s in self.steps]
        return {"changed": bool(self.steps), "instance": self.name, "actions": actions,
                "left_out": found["skipped"], "diff": diff_dict(before, {"disks_active": True}),
                "msg": (f"instance {self.name}: would " + "; ".join(actions)) if actions
                else f"the disks of {self.name} are active"}

    def execute(self, job: Any, config: Config, result: Dict[str, Any]) -> None:
        for step in self.steps:
            with job.step(step.text(), node=step.node, disk=step.disk):
                run_step(self.ctx, config, self.inst, step)
        job.finish({"actions": result["actions"]})
        result["msg"] = f"instance {self.name}: " + "; ".join(result["actions"])


def activate(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    """gnt-instance activate-disks NAME."""
    return ActivateDisks(ctx, spec).run()


def activate_all(ctx: Context, spec: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The watcher's pass: activate the disks of every instance whose admin state is up and
    whose primary is online. One instance that fails does not stop the others; each failure
    is named in ``failures``."""
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
            op = ActivateDisks(ctx, {"name": name, "state": "active"})
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
