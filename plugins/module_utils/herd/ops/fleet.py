"""Converge many declared instances in one operation (the instances role's bulk path).

One call instead of one task per instance: the specs are all validated before
anything is touched; existing instances converge one after another through
the same ``instance.ensure`` a single task runs; new instances are placed
together (``placement.place_many``: each placement counts the ones before
it, as hail's multi-allocate does, so together they never overcommit a node,
break N+1 or put two holders of an exclusion tag on one node), then created
as parallel jobs. The phases are a single create's (``instance.InstanceCreate``)
for many instances at once: the same lock declaration over all their names
(with the node-allocation lock, held from placement to the last commit, so
no other create can take what the plan counted on), the same repair of
interrupted jobs, the same build and checks, then each instance's execute
phase (``instance.run_create``) in its own job. A creation that fails is
rolled back alone (its own job); the others complete, and the result names
each failure.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

from ..errors import HerdError, ValidationError
from . import instance as instance_ops
from . import placement
from .common import Context
from .instance_spec import validate
from .phases import LockDecl, acquire
from .recovery import recover_interrupted

MAX_PARALLEL_LIMIT = 64


def ensure_many(ctx: Context, specs: List[Dict[str, Any]], max_parallel: int = 8) -> Dict[str, Any]:
    if not 1 <= max_parallel <= MAX_PARALLEL_LIMIT:
        raise ValidationError(f"max_parallel {max_parallel} is not between 1 and {MAX_PARALLEL_LIMIT}")
    checked = [validate(spec) for spec in specs]
    declared = {spec["name"]: raw for spec, raw in zip(checked, specs)}
    names = [spec["name"] for spec in checked]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValidationError(f"instances declared more than once: {', '.join(repeated)}")
    config = ctx.load_master_config()
    new = [spec for spec in checked if spec["name"] not in config.instances and spec["state"] != "absent"]
    results: Dict[str, Dict[str, Any]] = {}
    failures: List[Dict[str, str]] = []
    if new:
        created, create_failures = create_many(ctx, new, max_parallel)
        results.update(created)
        failures += create_failures
    for spec in checked:
        if spec["name"] in results or any(f["instance"] == spec["name"] for f in failures):
            continue
        try:
            results[spec["name"]] = instance_ops.ensure(ctx, declared[spec["name"]])
        except HerdError as exc:
            failures.append({"instance": spec["name"], "reason": str(exc)})
    # each instance's diff goes into the one diff of the task, by name
    diffs = {name: results[name].get("diff") or {} for name in names if name in results}
    ordered = [dict({k: v for k, v in results[name].items() if k != "diff"}, name=name)
               for name in names if name in results]
    changed = [r["name"] for r in ordered if r.get("changed")]
    verb = "would change" if ctx.check_mode else "changed"
    return {"changed": bool(changed), "instances": ordered, "failures": failures,
            "diff": {"before": {name: diffs[name].get("before") for name in changed},
                     "after": {name: diffs[name].get("after") for name in changed}},
            "msg": f"{len(ordered)} instances converged, {verb} {len(changed)}"
                   + (f" ({', '.join(changed)})" if changed else "")
                   + (f"; {len(failures)} failed" if failures else "")}


def create_many(ctx: Context, specs: List[Dict[str, Any]], max_parallel: int
                ) -> "tuple[Dict[str, Dict[str, Any]], List[Dict[str, str]]]":
    """Place all of ``specs`` together, then create them in parallel: ({name: result}, failures)."""
    locks = ctx.locks(f"instances op on {len(specs)} new instances")
    decl = LockDecl(instances=[spec["name"] for spec in specs], node_alloc=True)
    with acquire(ctx, locks, decl, allocation_timeout=max(ctx.lock_timeout, 300)):
        config = ctx.load_master_config()
        interrupted = ctx.journal.interrupted()
        if any(recover_interrupted(ctx, spec["name"], locks, config, interrupted) for spec in specs):
            config = ctx.load_master_config()
        planned = plan_many(ctx, config, specs)
        if ctx.check_mode:
            return {p.inst.name: p.result for p in planned}, []

        def create(plan: "instance_ops.PlannedCreate") -> Dict[str, Any]:
            return instance_ops.run_create(ctx, ctx.locks(f"instance create of {plan.inst.name}"), plan)

        results: Dict[str, Dict[str, Any]] = {}
        failures: List[Dict[str, str]] = []
        with ThreadPoolExecutor(max_workers=min(max_parallel, len(planned))) as pool:
            futures = [(plan.inst.name, pool.submit(create, plan)) for plan in planned]
            for name, future in futures:
                try:
                    results[name] = future.result()
                except HerdError as exc:
                    failures.append({"instance": name, "reason": str(exc)})
        return results, failures


def plan_many(ctx: Context, config: Any, specs: List[Dict[str, Any]]) -> List["instance_ops.PlannedCreate"]:
    """Every new instance built, placed and given minors, ports and addresses, each counting the
    ones planned before it. ``config`` is the caller's working copy; it is never committed."""
    built = []
    for spec in specs:
        inst = instance_ops.build_instance(ctx, config, spec)
        instance_ops.check_requested_nodes(config, inst, spec)
        config.instances[inst.name] = inst  # the next builds see its MACs and VNC port
        built.append((spec, inst))
    for _spec, inst in built:
        del config.instances[inst.name]  # placed below, by the allocator's model of the config
    answers = placement.place_many(ctx, config, [(inst, spec["primary_node"], spec["secondary_node"])
                                                 for spec, inst in built])
    planned = []
    for (spec, inst), answer in zip(built, answers):
        planned.append(instance_ops.finish_plan(ctx, config, spec, inst, answer))
        config.instances[inst.name] = inst  # the next ones see its minors, ports and addresses
    return planned
