"""Node evacuation (gnt-node migrate / evacuate): move every instance off a node, each move
its own instance operation (migrate, failover, replace-disks), at most ``max_parallel`` at once.
``Evacuate`` is a ``phases.Operation`` whose execution runs those member operations."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, ContextManager, Dict, List

from .. import names
from ..allocator import placement as allocator_placement
from ..config import Config
from ..errors import HerdError, PrerequisiteError, ValidationError
from . import migrate, replace_disks
from .common import Context
from .facts import allocator_facts, live_facts
from .phases import Operation


class Evacuate(Operation):
    """gnt-node migrate / evacuate: primaries first (migrate or fail over), then, for mode
    secondary or all, a new secondary for every drbd instance whose secondary is the node
    (replace-disks to the allocator's node-evacuate answer). In mode all a drbd primary that
    failed over to its secondary leaves the node as a secondary, and is replaced too.

    As Ganeti's LUNodeEvacuate, which plans and returns jobs, this operation's prerequisites
    are the plan and its execution submits the member operations, each with its own locks
    and job. It declares no locks and opens no job itself: holding an instance's lock while
    its member operation takes the same lock would wait for itself; the evacuated node is
    locked, shared, by every member while it moves an instance off it."""

    opcode = "node_evacuate"

    def check_arguments(self) -> None:
        spec = self.spec
        self.node = names.check_hostname(spec.get("node"))
        self.mode = spec.get("mode") or "all"
        if self.mode not in ("primary", "secondary", "all"):
            raise ValidationError(f"mode {self.mode!r} is not one of ['primary', 'secondary', 'all']")
        self.live = spec.get("live", True)
        self.max_parallel = int(spec.get("max_parallel") or 1)
        if self.max_parallel < 1:
            raise ValidationError(f"max_parallel {self.max_parallel} must be at least 1")

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        """The plan: the primaries' moves, and the secondaries' as they would be after them. When
        the primaries move for real, the secondaries are planned again after they have moved."""
        ctx, node = self.ctx, self.node
        if node not in config.nodes:
            raise PrerequisiteError(f"node {node} is not in the cluster")
        self.plan: List[Dict[str, Any]] = []
        self.failed: List[Dict[str, Any]] = []
        self.first: List[Dict[str, Any]] = []
        if self.mode in ("primary", "all"):
            primaries = sorted(i.name for i in config.instances.values() if i.primary_node == node)
            targets = _evacuation_targets(ctx, config, node, primaries)
            for name in primaries:
                inst = config.instances[name]
                how = "migrate" if self.live and inst.admin_state == "up" else "failover"
                if name in targets and targets[name].get("target"):
                    self.first.append({"instance": name, "from": node, "to": targets[name]["target"], "how": how})
                else:
                    reason = targets.get(name, {}).get("reason", "no target found")
                    self.failed.append({"instance": name, "reason": reason})
            self.plan += self.first
        if self.mode in ("secondary", "all") and not (self.first and not ctx.check_mode):
            if self.first:
                config = _as_if_moved(config, self.first)
            self.plan += self._plan_secondaries(config)
        return self._planned()

    def _plan_secondaries(self, config: Config) -> List[Dict[str, Any]]:
        node = self.node
        secondaries = sorted(i.name for i in config.instances.values()
                             if i.secondary_node == node and i.disk_template == "drbd")
        second: List[Dict[str, Any]] = []
        targets = _secondary_targets(self.ctx, config, node, secondaries)
        for name in secondaries:
            if targets.get(name, {}).get("target"):
                second.append({"instance": name, "from": node, "to": targets[name]["target"],
                               "how": "replace_disks"})
            else:
                self.failed.append({"instance": name,
                                    "reason": targets.get(name, {}).get("reason", "no target found")})
        return second

    def _planned(self) -> Dict[str, Any]:
        return {"changed": bool(self.plan), "planned": self.plan, "moved": [], "failed": self.failed,
                "msg": f"node {self.node}: {len(self.plan)} instance(s) would move, {len(self.failed)} cannot"}

    def open_job(self) -> ContextManager[Any]:
        return nullcontext()  # each move is its own operation, in its own job

    def execute(self, job: Any, config: Config, result: Dict[str, Any]) -> None:
        moved: List[Dict[str, Any]] = []
        second: List[Dict[str, Any]] = []
        if self.first:
            done, not_done = _run_moves(self.ctx, self.spec, self.first, self.max_parallel)
            moved += done
            self.failed += not_done
            if self.mode in ("secondary", "all"):
                second = self._plan_secondaries(self.ctx.load_master_config())
                self.plan += second
        else:
            second = [item for item in self.plan if item["how"] == "replace_disks"]
        if second:
            done, not_done = _run_moves(self.ctx, self.spec, second, self.max_parallel)
            moved += done
            self.failed += not_done
        result.update(changed=bool(moved), planned=self.plan, moved=moved, failed=self.failed,
                      msg=f"node {self.node}: moved {len(moved)}, failed {len(self.failed)}")


def evacuate(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    return Evacuate(ctx, spec).run()


def _run_moves(ctx: Context, spec: Dict[str, Any], plan: List[Dict[str, Any]], max_parallel: int
               ) -> Any:
    """Each move its own job, at most ``max_parallel`` at once: (moved, failed)."""
    def move(item: Dict[str, Any]) -> Dict[str, Any]:
        base = {"name": item["instance"], "target_node": item["to"],
                "ignore_consistency": spec.get("ignore_consistency", False)}
        try:
            if item["how"] == "migrate":
                migrate.migrate(ctx, dict(base, fallback_to_failover=True))
            elif item["how"] == "failover":
                migrate.failover(ctx, base)
            else:
                replace_disks.replace(ctx, {"name": item["instance"], "remote_node": item["to"]})
            return dict(item, ok=True)
        except HerdError as exc:
            return dict(item, ok=False, reason=str(exc))

    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        outcomes = list(pool.map(move, plan))
    moved = [{k: v for k, v in o.items() if k != "ok"} for o in outcomes if o["ok"]]
    failed = [{"instance": o["instance"], "reason": o["reason"]} for o in outcomes if not o["ok"]]
    return moved, failed


def _as_if_moved(config: Config, plan: List[Dict[str, Any]]) -> Config:
    """The config after ``plan``'s primary moves, for check mode (a drbd instance swaps its nodes)."""
    out = config.copy()
    for item in plan:
        inst = out.instances[item["instance"]]
        if inst.disk_template == "drbd":
            inst.primary_node, inst.secondary_node = item["to"], inst.primary_node
        else:
            inst.primary_node = item["to"]
    return out


def _secondary_targets(ctx: Context, config: Config, node: str, instances: List[str]) -> Dict[str, Dict[str, Any]]:
    """{instance: {"target": new secondary} or {"reason": why}}: hail's node-evacuate, secondary-only."""
    if not instances:
        return {}
    facts = allocator_facts(config, live_facts(ctx, config))
    return allocator_placement.evacuate(config.to_dict(), facts, node, instances, mode="secondary-only")


def _evacuation_targets(ctx: Context, config: Config, node: str, instances: List[str]) -> Dict[str, Dict[str, Any]]:
    """{instance: {"target": node} or {"reason": why}} from the allocator's node-evacuate answer."""
    out: Dict[str, Dict[str, Any]] = {}
    shared = []
    for name in instances:
        inst = config.instances[name]
        if inst.disk_template == "drbd":
            out[name] = {"target": inst.secondary_node}
        elif inst.disk_template in migrate.MIGRATABLE:
            shared.append(name)
        else:
            out[name] = {"reason": f"{inst.disk_template} disks live on {node} only; it cannot be moved"}
    if shared:
        facts = allocator_facts(config, live_facts(ctx, config))
        out.update(allocator_placement.evacuate(config.to_dict(), facts, node, shared))
    return out
