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
from typing import Any, Callable, Iterable, Sequence

from . import rules
from .model import NO_NODE, Cluster, Instance, mirror_type
from .moves import (Move, apply_unchecked, each_move_shared, move_label, move_steps, step_command,
                    target_check)
from .score import CV_IDX, WEIGHTS, optimal_score


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
    exhaustive_limit: int = 4000        # candidate evaluations/step below which search is exact
    targets: int = 8                    # pruned target nodes per role and shape
    time_limit: float | None = None     # seconds; stop (keeping moves found) after this
    revisit: bool | None = None         # re-evaluate instances on nodes a move touched;
    #                                     None = only in groups of <= revisit_nodes online nodes
    revisit_nodes: int = 64
    stale_window: int = 64              # steps a cached move stays usable if its nodes are unchanged


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
    commands: list[str]       # hbal's gnt-instance commands, for display only
    nodes: list[str]          # every node the move touches
    steps: list[dict[str, str | None]] = field(default_factory=list)  # what an executor runs

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


def split_jobsets(node_sets: Sequence[Iterable[str]]) -> list[list[int]]:
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


# --------------------------------------------------------------------------- search

_EPS = 1e-12  # scores closer than this are ties (hbal keeps the earlier candidate)


class _Balancer:
    def __init__(self, c: Cluster, gdx: int, opts: BalanceOptions) -> None:
        self.c = c
        self.gdx = gdx
        self.opts = opts
        self.force = opts.ignore_soft_errors
        self.gnodes = [n.idx for n in c.nodes if n.group == gdx]
        self.online = [i for i in self.gnodes if not c.nodes[i].offline]
        self.online_set = set(self.online)
        gset = set(self.gnodes)
        sel = set(opts.select_instances)
        exc = set(opts.exclude_instances)
        offline = {i for i in self.gnodes if c.nodes[i].offline}
        victims = []
        for inst in c.instances:
            if inst.pnode not in gset:
                continue
            if not (inst.movable and inst.auto_balance):
                continue
            if inst.name in exc or (sel and inst.name not in sel):
                continue
            if mirror_type(inst.template) == "none":
                continue
            if opts.evac_mode and not ({inst.pnode, inst.snode} & offline):
                continue
            victims.append(inst)
        self.victims = victims
        self.offline_set = offline
        self.evals = 0
        self.full_scans = 0
        per_step = len(victims) * max(0, len(self.online) - 2) * 4
        self.exhaustive = per_step <= opts.exhaustive_limit
        self.prune = (not self.exhaustive) and len(self.online) > 2 * opts.targets
        self.shape_targets: dict[tuple, tuple[list[int], list[int]]] = {}
        self.revisit = (opts.revisit if opts.revisit is not None
                        else len(self.online) <= opts.revisit_nodes)
        # target checks of candidate moves, valid while the node is unchanged
        self.node_ver = [0] * len(c.nodes)
        self.fit_cache: dict[tuple[int, int, bool, int], tuple[int, bool]] = {}

    def eligible(self, inst: Instance) -> bool:
        """In evacuation mode only instances still on an offline node move
        (hbal recomputes this every step)."""
        if not self.opts.evac_mode:
            return True
        return inst.pnode in self.offline_set or inst.snode in self.offline_set

    # ---- candidate generation (hbal possibleMoves order)
    def candidates(self, inst: Instance, targets: Iterable[int],
                   sec_targets: Iterable[int] | None = None) -> list[Move]:
        """Moves to try for ``inst``.  ``targets`` may become the primary (or,
        when ``sec_targets`` is None, either role); ``sec_targets`` may become
        the secondary (pruned search ranks the two roles separately)."""
        o = self.opts
        c = self.c
        mt = mirror_type(inst.template)
        out: list[Move] = []
        p, s = inst.pnode, inst.snode
        if mt == "external":
            if not o.instance_moves:
                return out
            return [("fa", t) for t in targets if t != p and t != s]
        use_sec = s in self.online_set and o.instance_moves
        if use_sec:
            out.append(("f",))
        if not o.disk_moves:
            return out
        p_off = c.nodes[p].offline
        if not o.instance_moves or (o.restricted_migration and not p_off):
            kinds: tuple[str, ...] = ("r",)
        elif use_sec and not o.restricted_migration:
            kinds = ("r", "rf", "frf", "fr")
        elif use_sec:
            kinds = ("r", "rf", "fr")
        else:
            kinds = ("r", "rf")
        if sec_targets is None:
            for t in targets:
                if t in (p, s):
                    continue
                for k in kinds:
                    out.append((k, t))
            return out
        pk = [k for k in kinds if k in ("rf", "frf")]
        sk = [k for k in kinds if k in ("r", "fr")]
        for t in sec_targets:
            if t != p and t != s:
                out.extend((k, t) for k in sk)
        for t in targets:
            if t != p and t != s:
                out.extend((k, t) for k in pk)
        return out

    def best_for(self, inst: Instance, cur: float, targets: Iterable[int],
                 sec_targets: Iterable[int] | None = None) -> tuple[float, Move | None]:
        c = self.c
        g = self.gdx
        force = self.force
        best, best_move = cur, None
        cands = self.candidates(inst, targets, sec_targets)
        nodes = c.nodes
        # The target's own check (a node other than the instance's two) does
        # not depend on the rest of the move: most candidates fail there, so
        # it is made first, without touching the model, shared by the kinds
        # that ask the same question and kept across steps while the node is
        # unchanged (its version is bumped when an accepted move touches it).
        cache = self.fit_cache
        ver = self.node_ver
        idx = inst.idx

        def fits(mv: Move) -> bool:
            chk = target_check(c, inst, mv, force)
            if chk is None:
                return True
            role, t, peer, f = chk
            key = (idx, t, f, peer)
            e = cache.get(key)
            v = ver[t]
            if e is not None and e[0] == v:
                return e[1]
            if role == "pri":
                r = rules.pri_failure(nodes[t], inst, f) is None
            else:
                r = rules.sec_failure(nodes[t], inst, peer, f) is None
            cache[key] = (v, r)
            return r

        # every candidate is rolled back: score it without updating the statistics
        ok = [mv for mv in cands if fits(mv)]
        scores: list[float | None] = [None] * len(ok)
        c.defer_stats(True)
        try:
            for pos, fail in each_move_shared(c, inst, ok, force, targets_checked=True):
                if fail is None:
                    scores[pos] = c.score(g)
        finally:
            c.defer_stats(False)
        # hbal's order decides between equal scores (the earlier candidate wins)
        for mv, sc in zip(ok, scores):
            if sc is not None and sc < best - _EPS:
                best, best_move = sc, mv
        self.evals += len(cands)
        return best, best_move

    # ---- target pruning: first-order score change per node, per instance shape
    def _shape(self, inst: Instance) -> tuple:
        def q(x: float) -> int:
            return int(round(math.log2(x) * 4)) if x > 0 else -1
        return (q(inst.mem if inst.uses_memory else 0), q(inst.dsk), inst.vcpus,
                inst.uses_local_storage, inst.uses_sec_mem, inst.util, inst.spindle_use,
                mirror_type(inst.template))

    def refresh_targets(self) -> None:
        if not self.prune:
            return
        c = self.c
        st = c.stats[self.gdx]
        n = st.n or 1
        grad = [0.0] * len(WEIGHTS)
        mean = [0.0] * len(WEIGHTS)
        for i in CV_IDX:
            m = st.s[i] / n
            var = st.q[i] / n - m * m
            mean[i] = m
            grad[i] = WEIGHTS[i] / (n * math.sqrt(var)) if var > 1e-18 else 0.0
        reps: dict[tuple, Instance] = {}
        for inst in self.victims:
            reps.setdefault(self._shape(inst), inst)
        nodes = c.nodes
        k = self.opts.targets
        self.shape_targets = {}
        for key, inst in reps.items():
            mem = inst.mem if inst.uses_memory else 0
            dsk = inst.dsk if inst.uses_local_storage else 0
            u = inst.util
            sp = float(inst.spindle_use) if inst.uses_local_storage else 0.0
            smem = inst.mem if inst.uses_sec_mem else 0
            pri: list[tuple[float, int]] = []
            sec: list[tuple[float, int]] = []
            for ndx in self.online:
                nd = nodes[ndx]
                v = nd.vec
                tm = nd.t_mem or 1.0
                td = nd.t_dsk or 1.0
                tc = (nd.t_cpu or 1.0) * (nd.cpu_speed or 1.0)
                hs = nd.hi_spindles or 1.0

                def d(i: int, delta: float) -> float:
                    return grad[i] * (v[i] - mean[i]) * delta  # noqa: B023 - called in this iteration only
                common = (d(1, -dsk / td) + d(14, -dsk / td) + d(9, u[2])
                          + d(12, sp / hs) + d(16, sp / hs))
                pc = (common + d(0, -mem / tm) + d(13, -inst.mem / tm) + d(6, inst.vcpus / tc)
                      + d(15, inst.vcpus / tc) + d(7, u[0]) + d(8, u[1]) + d(10, u[3]))
                unal = nd.unallocated_mem()
                if unal - mem <= nd.r_mem:
                    pc += 1e3   # would fail N+1 / memory
                new_r = max(nd.r_mem, smem)
                sc = common + d(3, (new_r - nd.r_mem) / tm) + 0.25 * (new_r - nd.r_mem) / tm
                if smem >= unal or unal <= new_r:
                    sc += 1e3
                pri.append((pc, ndx))
                sec.append((sc, ndx))
            pri.sort()
            sec.sort()
            self.shape_targets[key] = ([x for _score, x in pri[:2 * k]], [x for _score, x in sec[:k]])

    def targets_for(self, inst: Instance) -> tuple[list[int], list[int] | None]:
        """(primary-role targets, secondary-role targets or None = same list)."""
        if not self.prune:
            return self.online, None
        tl = self.shape_targets.get(self._shape(inst))
        if tl is None:
            return self.online, None
        pri, sec = tl
        k = self.opts.targets
        if inst.excl_tags and not self.force:
            nodes = self.c.nodes
            tags = inst.excl_tags
            pri = [t for t in pri if not any(x in nodes[t].p_tags for x in tags)]
        return pri[:k], sec

    # ---- acceptance (hbal tryBalance)
    def acceptable(self, cur: float, new: float) -> bool:
        o = self.opts
        return new < cur - _EPS and (cur > o.min_gain_limit or cur - new >= o.min_gain)


class _NoStats:
    """Stand-in for ``Cluster.all_stats`` while one group is balanced: the
    whole-cluster running sums are not needed then and cost as much as the
    group's (see the request in API.md); rebuilt exactly afterwards."""

    def add(self, node: Any) -> None:
        pass

    def remove(self, node: Any) -> None:
        pass


def _exact_score(c: Cluster, nodes: list[int]) -> float:
    from .score import score as full_score
    return full_score(c, nodes)


def balance_group(c: Cluster, gdx: int, opts: BalanceOptions | None = None,
                  progress: Callable[[BalanceMove], None] | None = None) -> BalanceResult:
    """Balance one node group of ``c`` in place (the model ends in the final state)."""
    opts = opts or BalanceOptions()
    t0 = time.monotonic()
    b = _Balancer(c, gdx, opts)
    c.commit()
    nodes = c.nodes
    ini = _exact_score(c, b.gnodes)
    opt_score = optimal_score(c, b.gnodes)
    stop_at = opt_score + opts.min_score
    moves: list[BalanceMove] = []
    touched: list[list[str]] = []
    result = BalanceResult(c.groups[gdx].name if c.groups else "", ini, ini, opt_score, moves,
                           [], "")
    if not b.online or not b.victims:
        result.stop_reason = "nothing to move"
    elif ini - opt_score < opts.min_score:
        result.stop_reason = "already well balanced"
    elif opts.max_moves == 0:
        # score only (hbal -l 0): no candidate is looked at
        result.stop_reason = "max moves reached"

    def room() -> bool:
        if opts.max_moves >= 0 and len(moves) >= opts.max_moves:
            result.stop_reason = "max moves reached"
            return False
        if c.score(gdx) <= stop_at:
            result.stop_reason = "optimal score reached"
            return False
        if opts.time_limit is not None and time.monotonic() - t0 > opts.time_limit:
            result.stop_reason = "time limit reached"
            return False
        return True

    def accept(inst: Instance, mv: Move) -> None:
        old_p, old_s = inst.pnode, inst.snode
        steps = move_steps(c, mv)
        c.checkpoint()
        fail = apply_unchecked(c, inst, mv, b.force)
        c.commit()
        if fail is not None:
            raise RuntimeError(f"internal error: move {mv} of {inst.name} failed on apply: {fail}")
        sc = c.score(gdx)
        ns = {old_p, old_s, inst.pnode, inst.snode} - {NO_NODE}
        for x in ns:
            b.node_ver[x] += 1
        names = [nodes[x].name for x in sorted(ns)]
        bm = BalanceMove(
            inst.name, move_label(c, mv), mv[0],
            nodes[mv[1]].name if len(mv) > 1 else None,
            nodes[old_p].name, nodes[old_s].name if old_s != NO_NODE else None,
            nodes[inst.pnode].name,
            nodes[inst.snode].name if inst.snode != NO_NODE else None,
            sc, [step_command(inst, st) for st in steps], names, [st.as_dict() for st in steps])
        moves.append(bm)
        touched.append(names)
        if progress:
            progress(bm)

    if not result.stop_reason:
        c.all_stats = _NoStats()  # type: ignore[assignment]
        try:
            if b.exhaustive:
                _run_exhaustive(b, room, accept, result)
            else:
                _run_lazy(b, room, accept, result)
        finally:
            c.commit()
            c.rebuild_stats()
    fin = _exact_score(c, b.gnodes)
    result.final_score = fin
    # report scores exactly (two-pass), not from running sums
    if moves:
        moves[-1].score = fin
    result.jobsets = split_jobsets(touched)
    result.elapsed = time.monotonic() - t0
    result.evaluations = b.evals
    return result


def _run_exhaustive(b: _Balancer, room: Callable[[], bool],
                    accept: Callable[[Instance, Move], None], result: BalanceResult) -> None:
    """hbal's loop exactly: every step tries every candidate of every instance."""
    c = b.c
    while room():
        cur = c.score(b.gdx)
        best, best_inst, best_mv = cur, None, None
        for inst in b.victims:
            if not b.eligible(inst):
                continue
            sc, mv = b.best_for(inst, cur, b.online)
            if mv is not None and sc < best - _EPS:
                best, best_inst, best_mv = sc, inst, mv
        if best_inst is None or best_mv is None or not b.acceptable(cur, best):
            result.stop_reason = "no improving move"
            return
        accept(best_inst, best_mv)


def _run_lazy(b: _Balancer, room: Callable[[], bool],
              accept: Callable[[Instance, Move], None], result: BalanceResult) -> None:
    """Lazy greedy: cached per-instance best moves in a heap keyed by gain.

    A popped entry computed before the last accepted move is re-evaluated and
    pushed back; a fresh entry on top is taken.  When the heap has nothing
    acceptable, every instance is re-evaluated once more (targets re-ranked)
    before stopping, so the end state has no acceptable move left among the
    candidates (as hbal's)."""
    c = b.c
    step = 0
    heap: list[tuple[float, int, int, Move]] = []
    stamp: dict[int, int] = {}

    def full_scan() -> None:
        b.full_scans += 1
        heap.clear()
        b.refresh_targets()
        cur = c.score(b.gdx)
        for inst in b.victims:
            if not b.eligible(inst):
                continue
            sc, mv = b.best_for(inst, cur, *b.targets_for(inst))
            stamp[inst.idx] = step
            if mv is not None:
                heap.append((sc - cur, inst.idx, step, mv))
        heapq.heapify(heap)

    full_scan()
    last_full = step
    refresh_every = 16
    window = b.opts.stale_window
    touched_at = [-1] * len(c.nodes)       # step at which a node last changed

    def untouched_since(inst: Instance, mv: Move, st: int) -> bool:
        if step - st > window:
            return False
        if touched_at[inst.pnode] >= st:
            return False
        if inst.snode != NO_NODE and touched_at[inst.snode] >= st:
            return False
        return len(mv) == 1 or touched_at[mv[1]] < st

    while room():
        cur = c.score(b.gdx)
        chosen = None
        while heap:
            gain, idx, st, mv = heap[0]
            if stamp.get(idx) != st:
                heapq.heappop(heap)          # superseded entry
                continue
            inst = c.instances[idx]
            if st == step:
                chosen = (gain, idx, mv)
                break
            if untouched_since(inst, mv, st) and b.eligible(inst):
                # nothing this move involves changed since it was scored: only
                # the group means drifted; re-score just this move
                mark = c.checkpoint()
                c.defer_stats(True)
                try:
                    ok = apply_unchecked(c, inst, mv, b.force) is None
                    sc = c.score(b.gdx) if ok else cur
                    c.rollback(mark)
                finally:
                    c.defer_stats(False)
                b.evals += 1
                if ok and sc < cur - _EPS:
                    heapq.heapreplace(heap, (sc - cur, idx, step, mv))
                    stamp[idx] = step
                    continue
            heapq.heappop(heap)
            if not b.eligible(inst):
                stamp.pop(idx, None)
                continue
            sc, mv2 = b.best_for(inst, cur, *b.targets_for(inst))
            stamp[idx] = step
            if mv2 is not None:
                heapq.heappush(heap, (sc - cur, idx, step, mv2))
        if chosen is not None and b.acceptable(cur, cur + chosen[0]):
            gain, idx, mv = chosen
            heapq.heappop(heap)
            stamp.pop(idx, None)
            inst = c.instances[idx]
            before = (inst.pnode, inst.snode)
            accept(inst, mv)
            step += 1
            hit = {x for x in before + (inst.pnode, inst.snode) if x != NO_NODE}
            for x in hit:
                touched_at[x] = step - 1
            if b.revisit:
                # instances on the nodes just changed are likely to have new
                # best moves: re-evaluate them now (lazy greedy misses gains
                # that grew)
                cur2 = c.score(b.gdx)
                for other in b.victims:
                    if other is inst or not (other.pnode in hit or other.snode in hit):
                        continue
                    if not b.eligible(other):
                        continue
                    sc, mv2 = b.best_for(other, cur2, *b.targets_for(other))
                    stamp[other.idx] = step
                    if mv2 is not None:
                        heapq.heappush(heap, (sc - cur2, other.idx, step, mv2))
            if b.prune and step % refresh_every == 0:
                b.refresh_targets()
            continue
        if last_full == step:
            result.stop_reason = "no improving move"
            return
        full_scan()
        last_full = step


# --------------------------------------------------------------------------- entry point

def balance(c: Cluster, opts: BalanceOptions | None = None,
            progress: Callable[[BalanceMove], None] | None = None) -> list[BalanceResult]:
    """Balance ``opts.group`` (or every group with online nodes, one after the other)."""
    opts = opts or BalanceOptions()
    if opts.group is not None:
        if opts.group not in c.group_by_name:
            raise ValueError(f"node group {opts.group!r} not found; groups: "
                             f"{', '.join(g.name for g in c.groups)}")
        gdxs = [c.group_by_name[opts.group]]
    else:
        gdxs = [g.idx for g in c.groups if any(n.group == g.idx for n in c.nodes)]
    for name in list(opts.select_instances) + list(opts.exclude_instances):
        if name not in c.inst_by_name:
            raise ValueError(f"unknown instance {name!r} in select/exclude list")
    return [balance_group(c, g, opts, progress) for g in gdxs]
