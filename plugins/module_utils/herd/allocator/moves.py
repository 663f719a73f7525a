"""Instance moves (htools ``Cluster/Moves.hs`` ``applyMoveEx``) and their opcodes.

A move is a tuple: ``("f",)`` failover, ``("fa", n)`` failover-to-any (shared
storage), ``("r", n)`` replace secondary, ``("frf", n)`` replace primary,
``("rf", n)`` replace-and-failover, ``("fr", n)`` failover-and-replace.
``apply_move`` either applies the move (returns None) or leaves the cluster as it
was and returns the ``Reason``.
"""

from __future__ import annotations

from typing import Any

from . import rules
from .model import Cluster, Instance

Move = tuple  # ("f",) | (kind, node_idx)


def apply_move(c: Cluster, inst: Instance, move: Move, force: bool = False) -> rules.Reason | None:
    """Apply ``move`` to ``inst`` (htools applyMoveEx).  Journaled: callers may
    ``rollback`` to a checkpoint taken before.  On failure nothing changes."""
    mark = c.checkpoint()
    res = _apply(c, inst, move, force)
    if res is not None:
        c.rollback(mark)
    return res


def _apply(c: Cluster, inst: Instance, move: Move, force: bool) -> rules.Reason | None:
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
    tgt = move[1]
    old_s = nodes[old_sdx]
    if kind == "r":
        force_s = old_s.offline or force
        c.remove_pri(old_pdx, inst)
        c.remove_sec(old_sdx, inst)
        c.set_inst_nodes(inst, old_pdx, tgt)
        r = c.add_sec(tgt, inst, old_pdx, force_s)
        if r:
            return r
        return c.add_pri(old_pdx, inst, True)
    if kind == "frf":
        force_p = old_p.offline or force
        r = rules.migration_failure(old_p, old_s) or rules.migration_failure(old_s, nodes[tgt])
        if r:
            return r
        c.remove_pri(old_pdx, inst)
        c.remove_sec(old_sdx, inst)
        c.set_inst_nodes(inst, tgt, old_sdx)
        r = c.add_pri(old_sdx, inst, force_p)
        if r:
            return r
        c.remove_pri(old_sdx, inst)
        r = c.add_pri(tgt, inst, force_p)
        if r:
            return r
        return c.add_sec(old_sdx, inst, tgt, force_p)
    if kind == "rf":
        force_s = old_s.offline or force
        r = rules.migration_failure(old_p, nodes[tgt])
        if r:
            return r
        c.remove_pri(old_pdx, inst)
        c.remove_sec(old_sdx, inst)
        c.set_inst_nodes(inst, tgt, old_pdx)
        r = c.add_pri(tgt, inst, force)
        if r:
            return r
        return c.add_sec(old_pdx, inst, tgt, force_s)
    if kind == "fr":
        force_p = old_p.offline or force
        r = rules.migration_failure(old_p, old_s)
        if r:
            return r
        c.remove_pri(old_pdx, inst)
        c.remove_sec(old_sdx, inst)
        c.set_inst_nodes(inst, old_sdx, tgt)
        r = c.add_pri(old_sdx, inst, force_p)
        if r:
            return r
        return c.add_sec(tgt, inst, old_sdx, force_p)
    raise ValueError(f"unknown move {move!r}")


# ----------------------------------------------------------------- opcodes

def _op_migrate(c: Cluster, inst: Instance, target: int | None) -> dict[str, Any]:
    if inst.forthcoming:
        op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_FAILOVER", "instance_name": inst.name,
                              "shutdown_timeout": 120, "ignore_consistency": False}
        if target is not None:
            op["target_node"] = c.nodes[target].name
        op.update({"ignore_ipolicy": False, "cleanup": False})
        return op
    op = {"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": inst.name}
    if target is not None:
        op["target_node"] = c.nodes[target].name
    op.update({"allow_runtime_changes": False, "ignore_ipolicy": False, "cleanup": False,
               "allow_failover": True, "ignore_hvversions": True})
    return op


def _op_replace(c: Cluster, inst: Instance, node: int) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_REPLACE_DISKS", "instance_name": inst.name,
            "early_release": False, "ignore_ipolicy": False, "mode": "replace_new_secondary",
            "disks": [], "remote_node": c.nodes[node].name}


def move_opcodes(c: Cluster, inst: Instance, move: Move) -> list[dict[str, Any]]:
    """htools ``iMoveToJob``: the Ganeti opcodes for one move."""
    kind = move[0]
    if kind == "f":
        return [_op_migrate(c, inst, None)]
    n = move[1]
    if kind == "fa":
        return [_op_migrate(c, inst, n)]
    if kind == "r":
        return [_op_replace(c, inst, n)]
    if kind == "frf":
        return [_op_migrate(c, inst, None), _op_replace(c, inst, n), _op_migrate(c, inst, None)]
    if kind == "rf":
        return [_op_replace(c, inst, n), _op_migrate(c, inst, None)]
    if kind == "fr":
        return [_op_migrate(c, inst, None), _op_replace(c, inst, n)]
    raise ValueError(f"unknown move {move!r}")
