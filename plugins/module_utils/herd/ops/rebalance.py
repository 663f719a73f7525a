"""hbal -L -X: plan with the allocator, then execute the job sets.

Sets run in order; the moves of one set touch disjoint nodes and run in
parallel. Each move runs its ``steps`` (the allocator's operations as data):
``migrate`` (migrate live, or fail over what does not run; drbd to its
secondary, shared storage to ``node``) and ``replace_secondary`` (a new drbd
secondary ``node``); ``r:n f`` is replace then failover, ``f r:n f`` failover,
replace, failover. The ``commands`` strings are only reported. A move stops at
its first failed step, and the first set with a failed move stops the run.
``Rebalance`` is a ``phases.Operation`` whose execution runs those member operations.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, ContextManager, Dict, List, Optional, Tuple

from ..errors import HerdError, ValidationError
from ..allocator.moves import MIGRATE, REPLACE_SECONDARY, STEP_OPS
from ..allocator.plans import capacity_report, rebalance_plan
from ..config import Config
from . import migrate, replace_disks
from .common import Context
from .facts import allocator_cluster, load_allocator_cluster
from .phases import Operation


def plan(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    return rebalance_plan(params, live=lambda p: load_allocator_cluster(p, ctx))


def capacity(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    """hspace on this cluster's config and live facts."""
    try:
        return capacity_report(params, live=lambda p: load_allocator_cluster(p, ctx))
    except (KeyError, ValueError) as exc:
        raise ValidationError(f"capacity spec: {exc}") from None


class Rebalance(Operation):
    """hbal -X as an operation: the plan is its prerequisites (check mode returns it), and its
    execution runs the job sets, each move through the member operations (migrate, failover,
    replace-disks), each with its own locks and job, as Ganeti's hbal submits one job per move.
    It declares no locks and opens no job itself: a move's operation takes the locks of its
    instance and nodes, which this one must not hold meanwhile."""

    opcode = "rebalance"

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        result = plan(self.ctx, self.spec)
        self.pending: Dict[str, List[Dict[str, Any]]] = {}  # an instance may move more than once, in order
        for move in result["moves"]:
            self.pending.setdefault(move["instance"], []).append(move)
        result.update(changed=False, executed=[], failures=[], stopped_at_set=None)
        if not result["moves"]:
            result["msg"] = "the cluster is balanced as well as the limits allow; nothing to move"
            return result
        result["changed"] = True
        if self.ctx.check_mode:
            result["msg"] = f"{len(result['moves'])} move(s) in {len(result['jobsets'])} job set(s) would run"
            return result
        self.steps = {id(m): move_steps(m) for m in result["moves"]}  # every step understood before anything runs
        return result

    def open_job(self) -> ContextManager[Any]:
        return nullcontext()  # each move is its own operation, in its own job

    def execute(self, job: Any, config: Config, result: Dict[str, Any]) -> None:
        ctx, params, steps, pending = self.ctx, self.spec, self.steps, self.pending
        result["changed"] = False  # until a move has run
        max_parallel = int(params.get("max_parallel") or 8)
        for index, jobset in enumerate(result["jobsets"]):
            batch = [(name, pending[name].pop(0)) for name in jobset]

            def run_move(item: Any) -> Dict[str, Any]:
                name, move = item
                done: List[str] = []
                try:
                    for shown, (op, node) in steps[id(move)]:
                        if op == MIGRATE:
                            migrate.migrate(ctx, {"name": name, "target_node": node, "fallback_to_failover": True})
                        else:
                            replace_disks.replace(ctx, {"name": name, "remote_node": node})
                        done.append(shown)
                    return {"instance": name, "ok": True, "move": move.get("move"), "steps": done}
                except HerdError as exc:
                    return {"instance": name, "ok": False, "reason": str(exc), "move": move.get("move"),
                            "steps": done}

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


def execute(ctx: Context, params: Dict[str, Any]) -> Dict[str, Any]:
    return Rebalance(ctx, params).run()


def move_steps(move: Dict[str, Any]) -> List[Tuple[str, Tuple[str, Optional[str]]]]:
    """The move's ``steps`` as (what to report, (op, node)): ``migrate`` with node None (drbd: to the
    secondary; migrate falls back to failover when the instance is down) or a target node, and
    ``replace_secondary`` with the new secondary. What is reported is the move's display command of
    that step when it has one."""
    data = move.get("steps") or []
    shown = list(move.get("commands") or [])
    out: List[Tuple[str, Tuple[str, Optional[str]]]] = []
    for i, step in enumerate(data):
        op = step.get("op") if isinstance(step, dict) else None
        node = step.get("node") if isinstance(step, dict) else None
        if op not in STEP_OPS or (op == REPLACE_SECONDARY and not node):
            raise HerdError(f"move {move.get('move')!r} of {move.get('instance')}: step {step!r} is not one "
                            f"this executor knows ({MIGRATE} [node], {REPLACE_SECONDARY} node)")
        label = shown[i] if len(shown) == len(data) else f"{op} {node or ''}".strip()
        out.append((label, (op, node)))
    if not out:
        raise HerdError(f"move {move.get('move')!r} of {move.get('instance')} has no steps")
    return out
