"""Node evacuation (gnt-node migrate / evacuate): move every instance off a node, each move
its own instance operation (migrate, failover, replace-disks), at most ``max_parallel`` at once."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

from .. import names
from ..allocator import placement as allocator_placement
from ..config import Config
from ..errors import HerdError, PrerequisiteError, ValidationError
from . import migrate, replace_disks
from .common import Context
from .facts import allocator_facts, live_facts


def evacuate(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    """gnt-node migrate / evacuate: primaries first (migrate or fail over), then, for mode
    secondary or all, a new secondary for every drbd instance whose secondary is the node
    (replace-disks to the allocator's node-evacuate answer). In mode all a drbd primary that
    failed over to its secondary leaves the node as a secondary, and is replaced too."""
    node = names.check_hostname(spec.get("node"))
    mode = spec.get("mode") or "all"
    if mode not in ("primary", "secondary", "all"):
        raise ValidationError(f"mode {mode!r} is not one of ['primary', 'secondary', 'all']")
    live = spec.get("live", True)
    max_parallel = int(spec.get("max_parallel") or 1)
    if max_parallel < 1:
        raise ValidationError(f"max_parallel {max_parallel} must be at least 1")
    config = ctx.load_master_config()
    if node not in config.nodes:
        raise PrerequisiteError(f"node {node} is not in the cluster")
    plan: List[Dict[str, Any]] = []
    failed: List[Dict[str, Any]] = []
    moved: List[Dict[str, Any]] = []
    if mode in ("primary", "all"):
        primaries = sorted(i.name for i in config.instances.values() if i.primary_node == node)
        targets = _evacuation_targets(ctx, config, node, primaries)
        first: List[Dict[str, Any]] = []
        for name in primaries:
            inst = config.instances[name]
            how = "migrate" if live and inst.admin_state == "up" else "failover"
            if name in targets and targets[name].get("target"):
                first.append({"instance": name, "from": node, "to": targets[name]["target"], "how": how})
            else:
                reason = targets.get(name, {}).get("reason", "no target found")
                failed.append({"instance": name, "reason": reason})
        plan += first
        if first and not ctx.check_mode:
            done, not_done = _run_moves(ctx, spec, first, max_parallel)
            moved += done
            failed += not_done
            config = ctx.load_master_config()
        elif first:
            config = _as_if_moved(config, first)
    if mode in ("secondary", "all"):
        secondaries = sorted(i.name for i in config.instances.values()
                             if i.secondary_node == node and i.disk_template == "drbd")
        second: List[Dict[str, Any]] = []
        targets = _secondary_targets(ctx, config, node, secondaries)
        for name in secondaries:
            if targets.get(name, {}).get("target"):
                second.append({"instance": name, "from": node, "to": targets[name]["target"],
                               "how": "replace_disks"})
            else:
                failed.append({"instance": name, "reason": targets.get(name, {}).get("reason", "no target found")})
        plan += second
        if second and not ctx.check_mode:
            done, not_done = _run_moves(ctx, spec, second, max_parallel)
            moved += done
            failed += not_done
    if ctx.check_mode or not plan:
        return {"changed": bool(plan), "planned": plan, "moved": [], "failed": failed,
                "msg": f"node {node}: {len(plan)} instance(s) would move, {len(failed)} cannot"}
    return {"changed": bool(moved), "planned": plan, "moved": moved, "failed": failed,
            "msg": f"node {node}: moved {len(moved)}, failed {len(failed)}"}


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
