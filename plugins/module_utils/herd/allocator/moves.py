"""Instance moves (htools ``Cluster/Moves.hs`` ``applyMoveEx``): the one place
that applies a move to the model, and a move's operations as data.

A move is a tuple: ``("f",)`` failover, ``("fa", n)`` failover-to-any (shared
storage), ``("r", n)`` replace secondary, ``("frf", n)`` replace primary,
``("rf", n)`` replace-and-failover, ``("fr", n)`` failover-and-replace.
``apply_move`` either applies the move (returns None) or leaves the cluster as it
was and returns the ``Reason``.  ``move_steps`` gives the instance operations
that carry a move out (what an executor runs); ``move_label`` and
``move_commands`` only display them, ``move_opcodes`` translates them for Ganeti.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from . import rules
from .model import Cluster, Instance

Move = tuple  # ("f",) | (kind, node_idx)

MOVE_LABELS = {"f": "f", "r": "r:{t}", "rf": "r:{t} f", "fr": "f r:{t}", "frf": "f r:{t} f",
               "fa": "fa:{t}"}


def move_label(c: Cluster, move: Move) -> str:
    """hbal's ``a=`` notation: ``f``, ``r:node``, ``f r:node f``, ``r:node f``,
    ``f r:node``, ``fa:node`` (display only)."""
    if move[0] == "f":
        return "f"
    return MOVE_LABELS[move[0]].format(t=c.nodes[move[1]].name)


def apply_move(c: Cluster, inst: Instance, move: Move, force: bool = False) -> rules.Reason | None:
    """Apply ``move`` to ``inst`` (htools applyMoveEx).  Journaled: callers may
    ``rollback`` to a checkpoint taken before.  On failure nothing changes."""
    mark = c.checkpoint()
    res = apply_unchecked(c, inst, move, force)
    if res is not None:
        c.rollback(mark)
    return res


def replace_secondary_each(c: Cluster, inst: Instance, targets: Iterable[int],
                           force: bool = False) -> Iterator[tuple[int, rules.Reason | None]]:
    """``apply_move(c, inst, ("r", t), force)`` for each target ``t`` in turn:
    yields ``(t, reason)`` with the move applied while the reason is None, and
    undoes it before the next target (the cluster is as before at the end).
    Taking the instance off its current nodes is shared by every target,
    which halves the work of trying many secondaries."""
    old_pdx, old_sdx = inst.pnode, inst.snode
    force_s = c.nodes[old_sdx].offline or force
    mark = c.checkpoint()
    try:
        c.remove_pri(old_pdx, inst)
        c.remove_sec(old_sdx, inst)
        base = c.checkpoint()
        for t in targets:
            c.set_inst_nodes(inst, old_pdx, t)
            r = c.add_sec(t, inst, old_pdx, force_s)
            if r is None:
                r = c.add_pri(old_pdx, inst, True)
            yield t, r
            c.rollback(base)
    finally:
        c.rollback(mark)


def apply_unchecked(c: Cluster, inst: Instance, move: Move, force: bool) -> rules.Reason | None:
    """``apply_move`` without the rollback on failure, for callers that hold
    their own checkpoint (the balancer's inner loop)."""
    nodes = c.nodes
    kind = move[0]
    old_pdx, old_sdx = inst.pnode, inst.snode
    old_p = nodes[old_pdx]
    if kind == "f":
        old_s = nodes[old_sdx]
        r = rules.migration_failure(old_p, old_s)
        if r:
            return r
        c.remove_pri(old_pdx, inst)
        c.remove_sec(old_sdx, inst)
        c.set_inst_nodes(inst, old_sdx, old_pdx)
        r = c.add_pri(old_sdx, inst, old_p.offline or force)
        if r:
            return r
        return c.add_sec(old_pdx, inst, old_sdx, old_p.offline or force,
                         ignore_disks=old_p.offline)
    if kind == "fa":
        new_pdx = move[1]
        r = rules.migration_failure(old_p, nodes[new_pdx])
        if r:
            return r
        r = c.add_pri(new_pdx, inst, old_p.offline or force)
        if r:
            return r
        c.remove_pri(old_pdx, inst)
        c.set_inst_nodes(inst, new_pdx, old_sdx)
        return None
    r = _move_precheck(c, kind, old_pdx, old_sdx, move[1])
    if r:
        return r
    c.remove_pri(old_pdx, inst)
    c.remove_sec(old_sdx, inst)
    return _put_back(c, inst, kind, move[1], old_pdx, old_sdx, force)


# The drbd moves other than a failover ("r", "rf", "frf", "fr") all take the
# instance off both its nodes, then put it on its new pair; the checks that
# need no change of the model come first.

def _move_precheck(c: Cluster, kind: str, old_pdx: int, old_sdx: int,
                   tgt: int) -> rules.Reason | None:
    nodes = c.nodes
    if kind == "r":
        return None
    if kind == "rf":
        return rules.migration_failure(nodes[old_pdx], nodes[tgt])
    if kind == "frf":
        return (rules.migration_failure(nodes[old_pdx], nodes[old_sdx])
                or rules.migration_failure(nodes[old_sdx], nodes[tgt]))
    if kind == "fr":
        return rules.migration_failure(nodes[old_pdx], nodes[old_sdx])
    raise ValueError(f"unknown move {(kind, tgt)!r}")


def _put_back(c: Cluster, inst: Instance, kind: str, tgt: int, old_pdx: int, old_sdx: int,
              force: bool, tgt_checked: bool = False) -> rules.Reason | None:
    """The second half of a drbd move: ``inst`` is off ``old_pdx`` and ``old_sdx``.
    ``tgt_checked``: the target's own check (``target_check``) passed."""
    nodes = c.nodes
    if kind == "r":
        force_s = nodes[old_sdx].offline or force
        c.set_inst_nodes(inst, old_pdx, tgt)
        r = c.add_sec(tgt, inst, old_pdx, force_s, checked=tgt_checked)
        if r:
            return r
        return c.add_pri(old_pdx, inst, True)
    if kind == "frf":
        force_p = nodes[old_pdx].offline or force
        c.set_inst_nodes(inst, tgt, old_sdx)
        # the current secondary must be able to run the instance during the
        # intermediate failover; checking is enough, it ends up secondary again
        r = rules.pri_failure(nodes[old_sdx], inst, force_p)
        if r:
            return r
        return (c.add_pri(tgt, inst, force_p, checked=tgt_checked)
                or c.add_sec(old_sdx, inst, tgt, force_p))
    if kind == "rf":
        force_s = nodes[old_sdx].offline or force
        c.set_inst_nodes(inst, tgt, old_pdx)
        r = c.add_pri(tgt, inst, force, checked=tgt_checked)
        if r:
            return r
        return c.add_sec(old_pdx, inst, tgt, force_s)
    if kind == "fr":
        force_p = nodes[old_pdx].offline or force
        c.set_inst_nodes(inst, old_sdx, tgt)
        r = c.add_pri(old_sdx, inst, force_p)
        if r:
            return r
        return c.add_sec(tgt, inst, old_sdx, force_p, checked=tgt_checked)
    raise ValueError(f"unknown move {(kind, tgt)!r}")


def target_check(c: Cluster, inst: Instance, move: Move, force: bool) -> tuple | None:
    """The check a drbd move (other than the failover) makes on its target, as
    ``(kind, node, peer, force)`` (kind "pri" or "sec", peer -1 for "pri");
    None for the failover.  It needs no change of the model (the
    target is neither of the instance's nodes), so callers can make it
    first, share it between moves, and pass ``targets_checked`` to
    ``each_move``."""
    kind = move[0]
    if kind == "f":
        return None
    nodes = c.nodes
    p, s = inst.pnode, inst.snode
    t = move[1]
    force_p = nodes[p].offline or force
    if kind == "r":
        return ("sec", t, p, (s >= 0 and nodes[s].offline) or force)
    if kind == "rf":
        return ("pri", t, -1, force)
    if kind == "fr":
        return ("sec", t, s, force_p)
    return ("pri", t, -1, force_p)   # frf, fa


def each_move(c: Cluster, inst: Instance, candidates: Iterable[Move],
              force: bool = False,
              targets_checked: bool = False) -> Iterator[tuple[Move, rules.Reason | None]]:
    """``apply_move`` for each candidate in turn: yields ``(move, reason)``
    with the move applied while the reason is None, and undoes it before the
    next (the cluster is as before at the end).  The drbd moves that take the
    instance off both its nodes share that half, so a candidate costs its
    two additions and their undo.  ``targets_checked``: every candidate's
    ``target_check`` passed, so it is not made again."""
    old_pdx, old_sdx = inst.pnode, inst.snode
    mark = c.checkpoint()
    base = -1
    try:
        for mv in candidates:
            kind = mv[0]
            if kind in ("f", "fa"):
                if base >= 0:
                    c.rollback(mark)
                    base = -1
                yield mv, apply_unchecked(c, inst, mv, force)
                c.rollback(mark)
                continue
            r = _move_precheck(c, kind, old_pdx, old_sdx, mv[1])
            if r:
                yield mv, r
                continue
            if base < 0:
                c.remove_pri(old_pdx, inst)
                c.remove_sec(old_sdx, inst)
                base = c.checkpoint()
            yield mv, _put_back(c, inst, kind, mv[1], old_pdx, old_sdx, force, targets_checked)
            c.rollback(base)
    finally:
        c.rollback(mark)


def each_move_shared(c: Cluster, inst: Instance, candidates: Iterable[Move],
                     force: bool = False,
                     targets_checked: bool = False) -> Iterator[tuple[int, rules.Reason | None]]:
    """``each_move`` for callers that do not need the candidates in order:
    yields ``(position in candidates, reason)``.  A replace-secondary ("r")
    and a failover-and-replace ("fr") change one node that does not depend
    on the target (the primary it stays on, the secondary it fails over to)
    when that node has no location tags (the instance's location score is
    then 0 with any target): those candidates are tried together, that
    node's change made once for all of them, so each costs only the
    target's addition.  The move's state and score are the same as with
    ``each_move``; a failing candidate may report the shared node's reason
    where ``each_move`` reports the target's (both make it fail)."""
    cands = list(candidates)
    nodes = c.nodes
    old_pdx, old_sdx = inst.pnode, inst.snode
    share_r = not nodes[old_pdx].loc_tags
    share_fr = old_sdx >= 0 and not nodes[old_sdx].loc_tags
    rest: list[int] = []
    reps: list[int] = []
    fails: list[int] = []
    for pos, mv in enumerate(cands):
        kind = mv[0]
        if kind == "r" and share_r:
            reps.append(pos)
        elif kind == "fr" and share_fr:
            fails.append(pos)
        else:
            rest.append(pos)
    for (_mv, r), pos in zip(each_move(c, inst, [cands[p] for p in rest], force,
                                       targets_checked), rest):
        yield pos, r
    if not reps and not fails:
        return
    mark = c.checkpoint()
    try:
        c.remove_pri(old_pdx, inst)
        c.remove_sec(old_sdx, inst)
        base = c.checkpoint()
        # (positions, node kept, its addition, force of the target's addition)
        groups: list[tuple[list[int], int, rules.Reason | None, bool]] = []
        if reps:
            groups.append((reps, old_pdx, None, nodes[old_sdx].offline or force))
        if fails:
            groups.append((fails, old_sdx, rules.migration_failure(nodes[old_pdx], nodes[old_sdx]),
                           nodes[old_pdx].offline or force))
        for group, keep, pre, force_t in groups:
            if pre is None:
                c.set_inst_nodes(inst, keep, cands[group[0]][1])
                pre = c.add_pri(keep, inst, True if keep == old_pdx else force_t)
            cp = c.checkpoint()
            for pos in group:
                if pre is not None:
                    yield pos, pre
                    continue
                t = cands[pos][1]
                c.set_inst_nodes(inst, keep, t)
                yield pos, c.add_sec(t, inst, keep, force_t, checked=targets_checked)
                c.rollback(cp)
            c.rollback(base)
    finally:
        c.rollback(mark)


# ----------------------------------------------------------------- operations

MIGRATE = "migrate"                  # live migration (failover when not running)
REPLACE_SECONDARY = "replace_secondary"
STEP_OPS = (MIGRATE, REPLACE_SECONDARY)


@dataclass(frozen=True)
class Step:
    """One instance operation of a move.  ``migrate``: ``node`` None = to the
    drbd secondary, else the target of a failover-to-any; ``replace_secondary``:
    ``node`` is the new drbd secondary."""
    op: str
    node: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"op": self.op, "node": self.node}


def move_steps(c: Cluster, move: Move) -> list[Step]:
    """htools ``computeMoves``/``iMoveToJob``: the operations of ``move``, in order."""
    kind = move[0]
    if kind == "f":
        return [Step(MIGRATE)]
    name = c.nodes[move[1]].name
    if kind == "fa":
        return [Step(MIGRATE, name)]
    rep = Step(REPLACE_SECONDARY, name)
    return {"r": [rep], "rf": [rep, Step(MIGRATE)], "fr": [Step(MIGRATE), rep],
            "frf": [Step(MIGRATE), rep, Step(MIGRATE)]}[kind]


def step_command(inst: Instance, step: Step) -> str:
    """hbal's gnt-instance command for one step (display only)."""
    if step.op == REPLACE_SECONDARY:
        return f"replace-disks -n {step.node} {inst.name}"
    if step.node is not None:
        return f"migrate -f -n {step.node} {inst.name}"
    return f"migrate -f {inst.name}" if inst.running else f"failover -f {inst.name}"


def move_commands(c: Cluster, inst: Instance, move: Move) -> list[str]:
    """The gnt-instance-style commands of a move (display only)."""
    return [step_command(inst, st) for st in move_steps(c, move)]


# ----------------------------------------------------------------- opcodes

def _op_migrate(inst: Instance, target: str | None) -> dict[str, Any]:
    if inst.forthcoming:
        op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_FAILOVER", "instance_name": inst.name,
                              "shutdown_timeout": 120, "ignore_consistency": False}
        if target is not None:
            op["target_node"] = target
        op.update({"ignore_ipolicy": False, "cleanup": False})
        return op
    op = {"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": inst.name}
    if target is not None:
        op["target_node"] = target
    op.update({"allow_runtime_changes": False, "ignore_ipolicy": False, "cleanup": False,
               "allow_failover": True, "ignore_hvversions": True})
    return op


def _op_replace(inst: Instance, node: str | None) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_REPLACE_DISKS", "instance_name": inst.name,
            "early_release": False, "ignore_ipolicy": False, "mode": "replace_new_secondary",
            "disks": [], "remote_node": node}


def move_opcodes(c: Cluster, inst: Instance, move: Move) -> list[dict[str, Any]]:
    """htools ``iMoveToJob``: the Ganeti opcodes for one move."""
    return [_op_replace(inst, st.node) if st.op == REPLACE_SECONDARY else
            _op_migrate(inst, st.node) for st in move_steps(c, move)]
