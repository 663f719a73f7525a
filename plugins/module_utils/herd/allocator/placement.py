"""The allocator's answers for herd's own operations, from herd's config plus
live node facts: placing a new instance, relocating one, evacuating a node.

Every answer is a plain dict. On failure it carries one line per node that was
rejected, saying why (e.g. ``node3: FailMem needs 8192 MiB, has 5120 free``),
which is what hail does not tell its users.
"""

from typing import Any, Dict, List, Optional

from . import allocate as alloc
from .config_model import from_herd_config
from .model import mirror_type
from .moves import apply_move


def _unreachable(facts: Dict[str, Any]) -> List[str]:
    return [f"{name}: not considered, its agent did not answer ({fact['error']})"
            for name, fact in sorted(facts.items()) if isinstance(fact, dict) and fact.get("error")]


def place(config: Dict[str, Any], facts: Dict[str, Any], request: Dict[str, Any],
          primary: Optional[str] = None, secondary: Optional[str] = None) -> Dict[str, Any]:
    """Nodes for a new instance: {"success", "primary", "secondary", "reasons", "score", "info"}."""
    return place_many(config, facts, [dict(request, primary=primary, secondary=secondary)])[0]


def place_many(config: Dict[str, Any], facts: Dict[str, Any], requests: List[Dict[str, Any]]
               ) -> List[Dict[str, Any]]:
    """Nodes for several new instances, one answer per request (as ``place``), in order.

    One model serves them all and each success is placed in it before the next
    request is judged (hail's multi-allocate), so together they never overcommit
    a node, break N+1 or put two instances with the same exclusion tag on one
    node. A request may name its ``primary``/``secondary``.
    """
    model = from_herd_config(config, facts)
    unreachable = _unreachable(facts)
    return [_place_one(model, request, request.get("primary"), request.get("secondary"), unreachable)
            for request in requests]


def _place_one(model: Any, request: Dict[str, Any], primary: Optional[str], secondary: Optional[str],
               unreachable: List[str]) -> Dict[str, Any]:
    inst = model.new_instance(
        request["name"], request["memory"], [(d["size"], d.get("spindles")) for d in request["disks"]],
        request["vcpus"], request["disk_template"], tags=request.get("tags", []),
        spindle_use=request.get("spindle_use", 1), nics=[{} for _nic in range(request.get("nics", 1))],
        dsk=request.get("disk_space"))
    restrict = [n for n in (primary, secondary) if n] or None
    try:
        result = alloc.allocate(model, inst, count=request["required_nodes"], restrict=restrict)
    except alloc.AllocError as exc:
        model.drop_last_instance(inst)
        return {"success": False, "reasons": list(unreachable), "info": str(exc)}
    reasons = result.reason_lines() + unreachable
    nodes = list(result.nodes) if result.success else []
    if nodes and primary and nodes[0] != primary:
        if len(nodes) == 2 and nodes[1] == primary:
            nodes.reverse()  # the pair fits; the operator chose which end is primary
        else:
            model.drop_last_instance(inst)
            return {"success": False, "reasons": reasons, "info": f"{primary} cannot be the primary"}
    if not result.success:
        model.drop_last_instance(inst)
        return {"success": False, "reasons": reasons, "info": result.info}
    alloc.place(model, inst, nodes)
    return {"success": True, "primary": nodes[0], "secondary": nodes[1] if len(nodes) > 1 else None,
            "reasons": reasons, "score": result.score, "info": result.info}


def relocate(config: Dict[str, Any], facts: Dict[str, Any], name: str) -> Dict[str, Any]:
    """hail relocate: a new primary for a shared-storage instance ({"success", "primary",
    "reasons"}), a new secondary for a drbd instance ({"success", "secondary", "reasons"})."""
    model = from_herd_config(config, facts)
    inst = config["instances"][name]
    drbd = inst.get("disk_template") == "drbd"
    current = inst["secondary_node"] if drbd else inst["primary_node"]
    try:
        nodes, reasons = alloc.relocate(model, name, [current])
    except alloc.AllocError as exc:
        return {"success": False, "reasons": [str(exc)] + list(getattr(exc, "reasons", [])) + _unreachable(facts)}
    return {"success": True, ("secondary" if drbd else "primary"): nodes[0], "reasons": list(reasons)}


def check_target(config: Dict[str, Any], facts: Dict[str, Any], name: str, target: str) -> List[str]:
    """Why ``target`` cannot take instance ``name`` as its new primary (migration or failover), by
    the rules the allocator applies to a node it picks: memory with N+1, disk, CPU ratio, the
    group's instance policy and the migration tags (``htools:migration:``,
    ``htools:allowmigration:``). An empty list when it can; a drbd instance's target is its
    secondary (a failover move), any other the named node (a failover-to-any move)."""
    model = from_herd_config(config, facts)
    if name not in model.inst_by_name or target not in model.node_by_name:
        return [f"{target}: not in the allocator's view of the cluster"] + _unreachable(facts)
    inst = model.instances[model.inst_by_name[name]]
    node = model.nodes[model.node_by_name[target]]
    reasons = []
    move = ("f",) if mirror_type(inst.template) == "internal" else ("fa", node.idx)
    mark = model.checkpoint()
    failure = apply_move(model, inst, move)
    model.rollback(mark)
    if failure is not None:
        reasons.append(str(failure))
    return reasons


def evacuate(config: Dict[str, Any], facts: Dict[str, Any], node: str, names: List[str],
             mode: str = "primary-only") -> Dict[str, Dict[str, Any]]:
    """Targets for moving ``names`` away from ``node``: {name: {"target"} or {"reason"}}.

    ``primary-only``: the target is the new primary of each instance (a primary of
    ``node``); ``secondary-only``: the new secondary of each drbd instance whose
    secondary is ``node`` (hail's change-secondary)."""
    model = from_herd_config(config, facts)
    try:
        result = alloc.node_evacuate(model, names, mode)
    except alloc.AllocError as exc:
        return {name: {"reason": str(exc)} for name in names}
    out: Dict[str, Dict[str, Any]] = {}
    for name, _group, nodes in result.moved:
        out[name] = {"target": nodes[1] if mode == "secondary-only" else nodes[0]}
    for name, why in result.failed:
        detail = "; ".join(result.reasons.get(name, []))
        out[name] = {"reason": why + (f" ({detail})" if detail else "")}
    return out
