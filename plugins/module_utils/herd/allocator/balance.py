"""hbal-class cluster balancing: greedy best-move loop, fast.

Semantics follow Ganeti's hbal (``Cluster.hs`` tryBalance/checkMove,
``Cluster/Moves.hs`` applyMoveEx):

* move types: failover ``f``, replace secondary ``r:N``, ReplaceAndFailover
  ``r:N f``, FailoverAndReplace ``f r:N``, ReplacePrimary ``f r:N f`` (drbd),
  FailoverToAny ``fa:N`` (externally mirrored storage: sharedfile, rbd, ext,
  gluster, blockdev);
* every step applies the move with the lowest resulting score; a step is
  accepted iff ``new < cur`` and (``cur > min_gain_limit`` or
  ``cur - new >= min_gain``); the loop stops at ``max_moves``, when no step is
  accepted, or when ``score <= optimum + min_score``;
* options: evacuation mode, no disk moves, no instance moves, restricted
  migration, ignore soft errors, exclusion tags (at load time), selected /
  excluded instances.

Speed: a candidate move is applied with the model's O(1) incremental
primitives and undone with ``rollback`` (never a copy of the cluster, never
an O(nodes) rescore).  On big groups the candidate set is pruned: per instance
"shape" the target nodes are ranked by the first-order change of the score
(the gradient of every standard-deviation term at the target node) and only
the best ``targets`` are tried, and steps use lazy greedy selection (cached
per-instance best moves in a heap, re-evaluated when popped; a full rescan
before stopping), so a step costs a few instances' evaluations instead of all.
Small groups use the exhaustive search, which is hbal's exactly.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import rules
from .model import NO_NODE, Cluster, Instance, mirror_type
from .score import CV_IDX, WEIGHTS, optimal_score

Move = tuple  # ("f",) | ("r", ndx) | ("rf", ndx) | ("fr", ndx) | ("frf", ndx) | ("fa", ndx)

MOVE_LABELS = {"f": "f", "r": "r:{t}", "rf": "r:{t} f", "fr": "f r:{t}", "frf": "f r:{t} f",
               "fa": "fa:{t}"}


# --------------------------------------------------------------------------- moves

def _mig(c: Cluster, src: int, tgt: int) -> rules.Reason | None:
    return rules.migration_failure(c.nodes[src], c.nodes[tgt])


def apply_move(c: Cluster, inst: Instance, move: Move, force: bool = False) -> rules.Reason | None:
    """htools ``applyMoveEx``: apply ``move`` to ``inst`` or return why not.

    On failure the cluster is left unchanged.  Journaled like every model
    primitive, so it can be undone with ``checkpoint``/``rollback``.
    """
    mark = c.checkpoint()
    fail = _apply(c, inst, move, force)
    if fail is not None:
        c.rollback(mark)
    return fail


def _apply(c: Cluster, inst: Instance, move: Move, force: bool) -> rules.Reason | None:
    kind = move[0]
    op, os_ = inst.pnode, inst.snode
    nodes = c.nodes
    p_off = nodes[op].offline
    if kind == "f":
        fail = _mig(c, op, os_)
        if fail:
            return fail
        c.remove_pri(op, inst)
        c.remove_sec(os_, inst)
        c.set_inst_nodes(inst, os_, op)
        return (c.add_pri(os_, inst, p_off or force)
                or c.add_sec(op, inst, os_, p_off or force, ignore_disks=p_off))
    t = move[1]
    if kind == "fa":
        fail = _mig(c, op, t)
        if fail:
            return fail
        fail = c.add_pri(t, inst, p_off or force)
        if fail:
            return fail
        c.remove_pri(op, inst)
        c.set_inst_nodes(inst, t, os_)
        return None
    if kind == "r":
        force_s = nodes[os_].offline or force
        c.remove_pri(op, inst)
        c.remove_sec(os_, inst)
        c.set_inst_nodes(inst, op, t)
        return c.add_sec(t, inst, op, force_s) or c.add_pri(op, inst, True)
    if kind == "rf":
        fail = _mig(c, op, t)
        if fail:
            return fail
        force_s = nodes[os_].offline or force
        c.remove_pri(op, inst)
        c.remove_sec(os_, inst)
        c.set_inst_nodes(inst, t, op)
        return c.add_pri(t, inst, force) or c.add_sec(op, inst, t, force_s)
    if kind == "fr":
        fail = _mig(c, op, os_)
        if fail:
            return fail
        c.remove_pri(op, inst)
        c.remove_sec(os_, inst)
        c.set_inst_nodes(inst, os_, t)
        return c.add_pri(os_, inst, p_off or force) or c.add_sec(t, inst, os_, p_off or force)
    if kind == "frf":
        fail = _mig(c, op, os_) or _mig(c, os_, t)
        if fail:
            return fail
        force_p = p_off or force
        c.remove_pri(op, inst)
        c.remove_sec(os_, inst)
        c.set_inst_nodes(inst, t, os_)
        fail = rules.pri_failure(nodes[os_], inst, force_p)
        if fail:
            return fail
        return c.add_pri(t, inst, force_p) or c.add_sec(os_, inst, t, force_p)
    raise ValueError(f"unknown move kind {kind!r}")


def move_label(c: Cluster, move: Move) -> str:
    """hbal's ``a=`` column: ``f``, ``r:node``, ``f r:node f``, ..."""
    if move[0] == "f":
        return "f"
    return MOVE_LABELS[move[0]].format(t=c.nodes[move[1]].name)


def move_commands(c: Cluster, inst: Instance, move: Move, new_p: int, new_s: int) -> list[str]:
    """The gnt-instance-style commands of a move (hbal ``computeMoves``)."""
    mig = f"migrate -f {inst.name}" if inst.running else f"failover -f {inst.name}"
    kind = move[0]
    if kind == "f":
        return [mig]
    tname = c.nodes[move[1]].name
    rep = f"replace-disks -n {tname} {inst.name}"
    if kind == "fa":
        return [f"migrate -f -n {tname} {inst.name}"]
    return {"r": [rep], "rf": [rep, mig], "fr": [mig, rep], "frf": [mig, rep, mig]}[kind]


# --------------------------------------------------------------------------- options/results

@dataclass
class BalanceOptions:
    """hbal's options (defaults as ``CLI.hs``)."""

    max_moves: int = -1                 # -l; -1 = unlimited
    min_gain: float = 0.01              # -g
    min_gain_limit: float = 0.1         # --min-gain-limit
    min_score: float = 1e-9             # -e
    evac_mode: bool = False             # --evac-mode
    disk_moves: bool = True             # not --no-disk-moves
    instance_moves: bool = True         # not --no-instance-moves
    restricted_migration: bool = False  # --restricted-migration
    ignore_soft_errors: bool = False    # --ignore-soft-errors
    select_instances: list[str] = field(default_factory=list)
    exclude_instances: list[str] = field(default_factory=list)
    group: str | None = None            # -G
    # search tuning (not hbal options)
    exhaustive_limit: int = 40000       # candidate evaluations/step below which search is exact
    targets: int = 12                   # pruned target nodes per role and shape
    time_limit: float | None = None     # seconds; stop (keeping moves found) after this


@dataclass
class BalanceMove:
    instance: str
    move: str                 # hbal notation: f, r:node, f r:node f, ...
    kind: str
    target: str | None
    old_primary: str
    old_secondary: str | None
    new_primary: str
    new_secondary: str | None
    score: float              # cluster (group) score after this move
    commands: list[str]
    nodes: list[str]          # every node the move touches

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BalanceResult:
    group: str
    initial_score: float
    final_score: float
    optimal_score: float
    moves: list[BalanceMove]
    jobsets: list[list[int]]  # indices into moves; moves in a set touch disjoint nodes
    stop_reason: str
    elapsed: float = 0.0
    evaluations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "initial_score": self.initial_score,
            "final_score": self.final_score,
            "optimal_score": self.optimal_score,
            "moves": [m.as_dict() for m in self.moves],
            "jobsets": [[self.moves[i].instance for i in js] for js in self.jobsets],
            "stop_reason": self.stop_reason,
            "elapsed": self.elapsed,
            "evaluations": self.evaluations,
        }


def split_jobsets(node_sets: list[Iterable[str]]) -> list[list[int]]:
    """hbal ``splitJobs``: consecutive moves share a set until one touches a
    node already touched in the current set; order is kept."""
    sets: list[list[int]] = []
    used: set[str] = set()
    for i, ns in enumerate(node_sets):
        ns = set(ns)
        if sets and not (ns & used):
            sets[-1].append(i)
            used |= ns
        else:
            sets.append([i])
            used = set(ns)
    return sets
