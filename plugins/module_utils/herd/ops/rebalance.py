"""hbal -L -X: plan with the allocator, then execute the job sets.

Sets run in order; the moves of one set touch disjoint nodes and run in
parallel, each as its own instance job (migrate live, or fail over what does
not run). The first set with a failed move stops the run. Moves that need a
new drbd secondary (hbal's replace-disks moves) are reported as not
executable until instance_replace_disks exists; the planner can be told to
avoid them with no_disk_moves.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

from ..errors import HerdError
from . import migrate
from .common import Context
from .info import load_allocator_cluster

EXECUTABLE = {"f", "fa"}  # failover (drbd, to the secondary) and failover-to-any (shared storage)


def plan(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    from ..allocator.modsupport import rebalance_plan

    cluster = load_allocator_cluster(params, ctx)
    return rebalance_plan(dict(params, _cluster=cluster))


def execute(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    result = plan(ctx, params)
    pending: Dict[str, List[Dict[str, Any]]] = {}  # an instance may move more than once, in order
    for move in result["moves"]:
        pending.setdefault(move["instance"], []).append(move)
    result.update(changed=False, executed=[], failed=[], stopped_at_set=None)
    if not result["moves"]:
        result["msg"] = "the cluster is balanced as well as the limits allow; nothing to move"
        return result
    if ctx.check_mode:
        result["changed"] = True
        result["msg"] = f"{len(result['moves'])} move(s) in {len(result['jobsets'])} job set(s) would run"
        return result
    not_executable = sorted({m["instance"] for m in result["moves"] if m.get("kind") not in EXECUTABLE})
    if not_executable:
        raise HerdError(f"moves of {not_executable} need a new drbd secondary (replace-disks), which this "
                        "build cannot execute; plan with no_disk_moves: true")
    max_parallel = int(params.get("max_parallel") or 8)
    for index, jobset in enumerate(result["jobsets"]):
        batch = [(name, pending[name].pop(0)) for name in jobset]

        def run_move(item: Any) -> Dict[str, Any]:
            name, move = item
            try:
                migrate.migrate(ctx, {"name": name, "target_node": move.get("new_primary") or None,
                                      "fallback_to_failover": True})
                return {"instance": name, "ok": True, "move": move.get("move")}
            except HerdError as exc:
                return {"instance": name, "ok": False, "reason": str(exc), "move": move.get("move")}

        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(jobset)))) as pool:
            outcomes: List[Dict[str, Any]] = list(pool.map(run_move, batch))
        result["executed"] += [o for o in outcomes if o["ok"]]
        failed = [o for o in outcomes if not o["ok"]]
        if result["executed"]:
            result["changed"] = True
        if failed:
            result["failed"] = failed
            result["stopped_at_set"] = index
            break
    after = load_allocator_cluster(params, ctx)
    result["achieved_score"] = after.score()
    result["msg"] = (f"executed {len(result['executed'])} of {len(result['moves'])} move(s); score "
                     f"{result['initial_score']:.6f} -> {result['achieved_score']:.6f} "
                     f"(plan predicted {result['final_score']:.6f})")
    return result
