"""hbal -L -X: plan with the allocator, then execute the job sets.

Sets run in order; the moves of one set touch disjoint nodes and run in
parallel. Each move runs as the sequence of instance jobs that hbal's
``commands`` list gives: ``migrate``/``failover`` (migrate live, or fail over
what does not run; drbd to its secondary, shared storage to ``-n NODE``) and
``replace-disks -n NODE`` (a new drbd secondary); ``r:n f`` is replace then
failover, ``f r:n f`` failover, replace, failover. A move stops at its first
failed step, and the first set with a failed move stops the run.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

from ..allocator.modsupport import capacity_report, rebalance_plan
from ..errors import HerdError, ValidationError
from . import migrate, replace_disks
from .common import Context
from .facts import allocator_cluster


def plan(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    cluster = allocator_cluster(ctx, ctx.load_master_config(), legacy_n1=bool(params.get("legacy_n1", False)))
    return rebalance_plan(params, cluster)


def capacity(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    """hspace on this cluster's config and live facts."""
    cluster = allocator_cluster(ctx, ctx.load_master_config(), legacy_n1=bool(params.get("legacy_n1", False)))
    try:
        return capacity_report(params, cluster)
    except (KeyError, ValueError) as exc:
        raise ValidationError(f"capacity spec: {exc}") from None


def execute(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    result = plan(ctx, params)
    pending: Dict[str, List[Dict[str, Any]]] = {}  # an instance may move more than once, in order
    for move in result["moves"]:
        pending.setdefault(move["instance"], []).append(move)
    result.update(changed=False, executed=[], failures=[], stopped_at_set=None)
    if not result["moves"]:
        result["msg"] = "the cluster is balanced as well as the limits allow; nothing to move"
        return result
    if ctx.check_mode:
        result["changed"] = True
        result["msg"] = f"{len(result['moves'])} move(s) in {len(result['jobsets'])} job set(s) would run"
        return result
    steps = {id(m): move_steps(m) for m in result["moves"]}  # every command understood before anything runs
    max_parallel = int(params.get("max_parallel") or 8)
    for index, jobset in enumerate(result["jobsets"]):
        batch = [(name, pending[name].pop(0)) for name in jobset]

        def run_move(item: Any) -> Dict[str, Any]:
            name, move = item
            done: List[str] = []
            try:
                for command, (verb, node) in steps[id(move)]:
                    if verb == "migrate":
                        migrate.migrate(ctx, {"name": name, "target_node": node, "fallback_to_failover": True})
                    else:
                        replace_disks.replace(ctx, {"name": name, "remote_node": node})
                    done.append(command)
                return {"instance": name, "ok": True, "move": move.get("move"), "steps": done}
            except HerdError as exc:
                return {"instance": name, "ok": False, "reason": str(exc), "move": move.get("move"), "steps": done}

        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(jobset)))) as pool:
            outcomes: List[Dict[str, Any]] = list(pool.map(run_move, batch))
        result["executed"] += [o for o in outcomes if o["ok"]]
        failed = [o for o in outcomes if not o["ok"]]
        if result["executed"]:
            result["changed"] = True
        if failed:
            result["failures"] = failed  # not "failed": Ansible's own key
            result["stopped_at_set"] = index
            break
    after = allocator_cluster(ctx, ctx.load_master_config(), legacy_n1=bool(params.get("legacy_n1", False)))
    result["achieved_score"] = after.score()
    result["msg"] = (("stopped at job set %d: " % result["stopped_at_set"] if result["failures"] else "")
                     + f"executed {len(result['executed'])} of {len(result['moves'])} move(s); score "
                     f"{result['initial_score']:.6f} -> {result['achieved_score']:.6f} "
                     f"(plan predicted {result['final_score']:.6f})")
    return result


def move_steps(move: Dict[str, Any]) -> List[Tuple[str, Tuple[str, Optional[str]]]]:
    """hbal's commands of one move as (command, (verb, node)): ``migrate -f X`` and ``failover -f X``
    -> ("migrate", None) (drbd: to the secondary; migrate falls back to failover when X is down),
    ``migrate -f -n N X`` -> ("migrate", N), ``replace-disks -n N X`` -> ("replace", N)."""
    out: List[Tuple[str, Tuple[str, Optional[str]]]] = []
    for command in move.get("commands") or []:
        words = command.split()
        node = words[words.index("-n") + 1] if "-n" in words[:-1] else None
        if words and words[0] in ("migrate", "failover"):
            out.append((command, ("migrate", node)))
        elif words and words[0] == "replace-disks" and node:
            out.append((command, ("replace", node)))
        else:
            raise HerdError(f"move {move.get('move')!r} of {move.get('instance')}: command {command!r} is not one "
                            "this executor knows (migrate, failover, replace-disks -n NODE)")
    if not out:
        raise HerdError(f"move {move.get('move')!r} of {move.get('instance')} has no commands")
    return out
