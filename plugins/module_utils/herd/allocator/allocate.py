"""Placement: allocate, multi-allocate, relocate, node-evacuate, change-group.

hail's semantics (``Cluster.hs`` tryAlloc/tryMGAlloc, ``Evacuate.hs``,
``GlobalN1.hs``) with herd's additions: every node not chosen gets a reason,
and multi-allocate allows partial success.

Candidate evaluation uses the model's O(1) primitives under
``checkpoint``/``rollback``; for a mirrored instance the primary is added once
per primary candidate and only the secondary varies in the inner loop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import rules
from .model import NO_NODE, SHARED_MOVABLE, Cluster, Instance, mirror_type
from .moves import apply_move, move_opcodes, replace_secondary_each
from .rules import Reason

# In groups larger than this, the global N+1 check picks re-creation targets by
# free memory instead of by score (hail's way costs O(nodes) score evaluations
# per instance of every node).
EXACT_RECREATE_NODES = 24

POLICY_ORDER = {"preferred": 0, "last_resort": 1, "unallocable": 2}


class AllocError(Exception):
    """A request that cannot even be attempted (hail's ``Bad`` results)."""


@dataclass
class AllocResult:
    success: bool
    nodes: list[str] = field(default_factory=list)
    group: str = ""
    score: float | None = None
    info: str = ""
    failures: Counter = field(default_factory=Counter)
    reasons: list[Reason] = field(default_factory=list)
    successes: int = 0

    def reason_lines(self) -> list[str]:
        return [str(r) for r in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {"success": self.success, "nodes": self.nodes, "group": self.group,
                "score": self.score, "info": self.info, "failures": dict(self.failures),
                "reasons": [str(r) for r in self.reasons]}


def _fail_text(failures: Counter) -> str:
    return ", ".join(f"{m}: {failures[m]}" for m in rules.FAIL_MODES if failures.get(m))


# ----------------------------------------------------------------- global N+1

def can_evacuate_node(c: Cluster, ndx: int) -> Reason | None:
    """htools ``canEvacuateNode``: None if every instance of node ``ndx`` could be
    moved away (drbd failover, shared-storage failover-to-any, re-creation of
    plain/file/blockdev instances elsewhere in the group).  Leaves ``c`` unchanged."""
    n = c.nodes[ndx]
    mark = c.checkpoint()
    try:
        # htools keeps pList newest-first (instances are prepended)
        insts = [c.instances[i] for i in sorted(n.plist, reverse=True)]
        drbd = [i for i in insts if i.template == "drbd"]
        others = [i for i in insts if i.template != "drbd"]
        shared = [i for i in others if i.template in SHARED_MOVABLE]
        nonmove = [i for i in others if i.template not in SHARED_MOVABLE]
        for inst in drbd:
            r = apply_move(c, inst, ("f",), True)
            if r is not None:
                return rules.n1_reason(n.name, r.node, f"failover of {inst.name}: {r}")
        escape = [m.idx for m in c.nodes if m.group == n.group and m.idx != ndx]
        for inst in shared:
            best = None
            if len(escape) >= EXACT_RECREATE_NODES:
                for t in sorted(escape, key=lambda x: -c.nodes[x].unallocated_mem()):
                    if apply_move(c, inst, ("fa", t), True) is None:
                        best = (0.0, t)
                        break
                if best is None:
                    return rules.n1_reason(n.name, n.name, f"no node can take {inst.name}")
                continue
            for t in escape:
                m2 = c.checkpoint()
                if apply_move(c, inst, ("fa", t), True) is None:
                    s = c.score(n.group)
                    if best is None or not best[0] < s:
                        best = (s, t)
                c.rollback(m2)
            if best is None:
                return rules.n1_reason(n.name, n.name, f"no node can take {inst.name}")
            apply_move(c, inst, ("fa", best[1]), True)
        nonmove.sort(key=lambda i: -i.mem)
        # hail re-creates each instance on the best-scoring node that passes the hard
        # checks.  That is O(nodes) score evaluations per instance; on big groups we
        # take the node with the most unallocated memory that passes instead (a
        # feasibility question; documented deviation).
        exact = len(escape) < EXACT_RECREATE_NODES
        for inst in nonmove:
            best = None
            old_p = inst.pnode
            if exact:
                for t in escape:
                    m2 = c.checkpoint()
                    if rules.policy_failure(c.nodes[t], inst,
                                            c.node_policy(c.nodes[t])) is None:
                        c.remove_pri(old_p, inst)
                        c.set_inst_nodes(inst, t, NO_NODE)
                        if c.add_pri(t, inst, True) is None:
                            s = c.score(n.group)
                            if best is None or not best[0] < s:
                                best = (s, t)
                    c.rollback(m2)
            else:
                for t in sorted(escape, key=lambda x: -c.nodes[x].unallocated_mem()):
                    tn = c.nodes[t]
                    if rules.policy_failure(tn, inst, c.node_policy(tn)) is None and \
                            rules.pri_failure(tn, inst, True) is None:
                        best = (0.0, t)
                        break
            if best is None:
                return rules.n1_reason(n.name, n.name, f"no node can re-create {inst.name}")
            c.remove_pri(old_p, inst)
            c.set_inst_nodes(inst, best[1], NO_NODE)
            c.add_pri(best[1], inst, True)
        return None
    finally:
        c.rollback(mark)


def global_n1(c: Cluster, nodes: Iterable[int], hint: list[int] | None = None
              ) -> Reason | None:
    """hail's capacity check (``redundant``): the reason the first node that cannot
    be evacuated fails, or None.  ``hint`` (a one-element list, updated in place)
    remembers the last failing node, which is checked first next time: when the
    cluster is not redundant anyway, each candidate then fails after one node."""
    order = list(nodes)
    if hint and hint[0] in order:
        order.remove(hint[0])
        order.insert(0, hint[0])
    for ndx in order:
        r = can_evacuate_node(c, ndx)
        if r is not None:
            if hint is not None:
                hint[:] = [ndx]
            return r
    return None


# ----------------------------------------------------------------- allocate

def is_dedicated(c: Cluster, group: str | None = None) -> bool:
    """hail ``isDedicated``: every node of the candidate groups uses exclusive
    storage; hail then ranks by "lost allocations" and skips capacity checks."""
    if group is not None:
        gids = {c.group_by_name.get(group, -1)}
    else:
        gids = {g.idx for g in c.groups if g.allocable}
    return all(n.excl_stor or n.group not in gids for n in c.nodes)


def _test_instances(c: Cluster, pol: Any) -> list[Instance]:
    specs = sorted((mn for mn, _mx in pol.minmax), key=lambda s: -s.disk_size)
    out = []
    for s in specs:
        i = Instance(-2, "minimalspecinstance", s.memory_size, s.disk_size, s.cpu_count,
                     "running", NO_NODE, NO_NODE, "plain", [], s.spindle_use, [], False)
        out.append(i)
    return out


def _alloc_vector(c: Cluster, ndx: int, tests: list[Instance]) -> list[int]:
    vec = []
    for t in tests:
        mark = c.checkpoint()
        k = 0
        while k < 100000 and c.add_pri(ndx, t, False) is None:
            k += 1
        c.rollback(mark)
        vec.append(k)
    return vec


@dataclass
class _GroupSol:
    gdx: int
    best: tuple[Any, int, int, float] | None   # sort key, pdx, sdx, score
    successes: int
    failures: Counter
    reasons: dict[int, Reason]
    error: str = ""

    def pick(self) -> tuple[Any, int, int, float]:
        """``best``, for a solution known to have one."""
        if self.best is None:
            raise AssertionError(f"group {self.gdx} has no solution")
        return self.best


def _try_group_candidates(c: Cluster, inst: Instance, count: int, nodes: list[Any], pol: Any,
                          score_scope: int | None, ignore_soft: bool, key: Any,
                          sols: list[tuple[Any, int, int, float]], failures: Counter,
                          reasons: dict[int, Reason]) -> None:
    """``_try_group``'s candidates (every placement rolled back): ``sols``,
    ``failures`` and ``reasons`` filled in."""
    if count == 1:
        for n in nodes:
            r = rules.policy_failure(n, inst, pol)
            if r is None:
                mark = c.checkpoint()
                c.set_inst_nodes(inst, n.idx, NO_NODE)
                r = c.add_pri(n.idx, inst, ignore_soft)
                if r is None:
                    sc = c.score(score_scope)
                    sols.append((key(n.idx, NO_NODE, sc), n.idx, NO_NODE, sc))
                c.rollback(mark)
            if r is not None:
                failures[r.mode] += 1
                reasons[n.idx] = r
    else:
        sec_reason: dict[int, Reason] = {}
        has_loc = any(n.loc_tags for n in nodes)
        npairs = len(nodes) - 1
        for p in nodes:
            r = rules.policy_failure(p, inst, pol)
            if r is None:
                mark = c.checkpoint()
                c.set_inst_nodes(inst, p.idx, NO_NODE)
                r = c.add_pri(p.idx, inst, ignore_soft)
                if r is not None:
                    c.rollback(mark)
            if r is not None:
                # the primary checks do not depend on the secondary: same failure
                # for every pair with this primary (hail counts each pair)
                failures[r.mode] += npairs
                reasons[p.idx] = r
                continue
            for s in nodes:
                if s is p:
                    continue
                m2 = c.checkpoint()
                if has_loc:
                    c.remove_pri(p.idx, inst)
                    c.set_inst_nodes(inst, p.idx, s.idx)
                    c.add_pri(p.idx, inst, True)
                else:
                    c.set_inst_nodes(inst, p.idx, s.idx)
                rs = c.add_sec(s.idx, inst, p.idx, False)
                if rs is None:
                    sc = c.score(score_scope)
                    sols.append((key(p.idx, s.idx, sc), p.idx, s.idx, sc))
                else:
                    failures[rs.mode] += 1
                    sec_reason.setdefault(s.idx, rs)
                c.rollback(m2)
            c.rollback(mark)
        for ndx, r in sec_reason.items():
            if ndx not in reasons:
                reasons[ndx] = Reason(r.mode, r.node, r.text + " (as secondary)", r.soft)


def _try_group(c: Cluster, inst: Instance, count: int, gdx: int, score_scope: int | None,
               restrict: set[str] | None, ignore_soft: bool, capacity: bool,
               n1_nodes: list[int], other_ok: Reason | None,
               dedicated: bool = False) -> _GroupSol:
    """hail ``tryAlloc`` over the online nodes of group ``gdx``.

    ``dedicated``: rank by hail's lost-allocations metric (exclusive storage
    clusters) instead of the score."""
    nodes = [n for n in c.nodes if n.group == gdx and not n.offline
             and (restrict is None or n.name in restrict)]
    failures: Counter = Counter()
    reasons: dict[int, Reason] = {}
    sols: list[tuple[Any, int, int, float]] = []
    tests = _test_instances(c, c.groups[gdx].ipolicy) if dedicated else []
    before: dict[int, list[int]] = {}

    if dedicated:
        for n in nodes:
            before[n.idx] = _alloc_vector(c, n.idx, tests)

    def key(pdx: int, sdx: int, sc: float) -> Any:
        if not dedicated:
            return sc
        vec = [b - a for b, a in zip(before[pdx], _alloc_vector(c, pdx, tests))]
        dsk = c.nodes[pdx].f_dsk
        if sdx != NO_NODE:
            vec = [v + b - a for v, b, a in zip(vec, before[sdx], _alloc_vector(c, sdx, tests))]
            dsk += c.nodes[sdx].f_dsk
        return (vec, dsk)

    if not nodes:
        return _GroupSol(gdx, None, 0, failures, reasons,
                         "No online nodes" if count == 1 else "Not enough online nodes")
    if count != 1 and len(nodes) < 2:
        return _GroupSol(gdx, None, 0, failures, reasons, "Not enough online nodes")
    pol = c.groups[gdx].ipolicy
    # every candidate is rolled back: score it without updating the statistics
    was_deferred = c.defer_stats(True)
    try:
        _try_group_candidates(c, inst, count, nodes, pol, score_scope, ignore_soft, key, sols,
                              failures, reasons)
    finally:
        c.defer_stats(was_deferred)
    successes = len(sols)
    # by score; on ties hail ends up with the candidate evaluated last
    order = sorted(range(len(sols)), key=lambda k: (sols[k][0], -k))
    best = None
    dropped = 0
    hint: list[int] = []
    if capacity and other_ok is None and sols:
        # Adding an instance only consumes resources, so a group that cannot be
        # evacuated without it cannot be evacuated with it either: check once.
        base = global_n1(c, n1_nodes, hint)
        if base is not None:
            other_ok = Reason(base.mode, base.node, "the cluster is already not N+1 "
                              f"redundant: {base.text}")
    for k in order:
        sol = sols[k]
        if capacity:
            if other_ok is not None:
                rr: Reason | None = other_ok
            else:
                mark = c.checkpoint()
                c.set_inst_nodes(inst, sol[1], sol[2])
                c.add_pri(sol[1], inst, True)
                if sol[2] != NO_NODE:
                    c.add_sec(sol[2], inst, sol[1], True)
                rr = global_n1(c, n1_nodes, hint)
                c.rollback(mark)
            if rr is not None:
                dropped += 1
                failures["FailN1"] += 1
                reasons.setdefault(sol[1], Reason(
                    "FailN1", c.nodes[sol[1]].name,
                    f"placement here fails the N+1 capacity check: {rr}"))
                continue
        best = sol
        break
    return _GroupSol(gdx, best, successes - dropped, failures, reasons)


def _describe(c: Cluster, g: _GroupSol) -> str:
    grp = c.groups[g.gdx]
    head = f"Group {grp.name} ({grp.alloc_policy}): "
    if g.error:
        return f"Group {grp.name}: error {g.error}"
    if g.best is None:
        ft = _fail_text(g.failures)
        return head + "No valid allocation solutions, failure reasons: " + \
            (ft if ft else "unknown reasons")
    names = [c.nodes[g.best[1]].name] + ([c.nodes[g.best[2]].name] if g.best[2] != NO_NODE
                                         else [])
    k = g.best[0]
    shown = f"{k:.8f}" if isinstance(k, float) else \
        f"([{','.join(str(x) for x in k[0])}],{k[1]})"
    return head + (f"score: {shown}, successes {g.successes}, failures "
                   f"{sum(g.failures.values())} ({_fail_text(g.failures)}) for node(s) "
                   f"{'/'.join(names)}")


def allocate(c: Cluster, inst: Instance, count: int | None = None, group: str | None = None,
             restrict: Iterable[str] | None = None, ignore_soft: bool = False,
             capacity: bool = True, allowed_groups: Iterable[int] | None = None,
             n1_ignore_groups: Iterable[int] = (), n1_online_only: bool = False,
             dedicated: bool | None = None) -> AllocResult:
    """Find nodes for the unplaced instance ``inst`` (hail allocate).

    ``count`` = required nodes (default from the template), ``group`` forces a
    group (hail ``group_name``), ``restrict`` limits candidate nodes,
    ``capacity`` enables hail's global N+1 check, which skips the nodes of
    ``n1_ignore_groups`` and, with ``n1_online_only``, offline nodes (htools
    ``algCapacityIgnoreGroups`` and ``algAcceptExisting``).  ``dedicated``:
    None = hail's choice (``is_dedicated``: exclusive storage everywhere ranks
    by lost allocations without capacity checks); hspace passes False, as its
    allocation never takes that path.  ``c`` is unchanged; apply the result
    with ``place(c, inst, nodes)``.
    """
    ignored = set(n1_ignore_groups)

    def n1_nodes_of(gdx: int) -> list[int]:
        if gdx in ignored:
            return []
        return [ndx for ndx in c.group_nodes(gdx)
                if not (n1_online_only and c.nodes[ndx].offline)]

    if count is None:
        count = 2 if inst.template == "drbd" else 1
    if count not in (1, 2):
        raise AllocError("Unsupported number of nodes, only one or two  supported")
    rset = set(restrict) if restrict is not None else None
    if dedicated is None:
        dedicated = is_dedicated(c, group)
    if dedicated:
        capacity = False
    groups_present = sorted({n.group for n in c.nodes})
    msgs: list[str] = []
    sols: list[_GroupSol] = []
    if group is not None:
        if group not in c.group_by_name:
            raise AllocError(f"Unknown group '{group}'")
        gdx = c.group_by_name[group]
        grp = c.groups[gdx]
        missing = [nw for nw in inst.networks() if nw not in grp.networks]
        if missing:
            raise AllocError(f"The group {grp.name} is not connected to a network required "
                             f"by instance {inst.name}")
        n1_nodes = n1_nodes_of(gdx)
        g = _try_group(c, inst, count, gdx, gdx, rset, ignore_soft, capacity, n1_nodes, None,
                       dedicated)
        sols.append(g)
        msgs.append(_describe(c, g))
        chosen = g if g.best is not None else None
        prefix: list[str] = []
    else:
        cand = groups_present if allowed_groups is None else \
            [g for g in groups_present if g in set(allowed_groups)]
        valid = []
        for gdx in cand:
            grp = c.groups[gdx]
            if any(nw not in grp.networks for nw in inst.networks()):
                msgs.append(f"group {grp.name} is not connected to a network required by "
                            f"instance {inst.name}")
            else:
                valid.append(gdx)
        # hail checks redundancy of the whole cluster: the other groups do not change
        # when allocating into one group, so check each group once up front.
        other_bad: dict[int, Reason | None] = {}
        if capacity and len(groups_present) > 1:
            for gdx in groups_present:
                other_bad[gdx] = global_n1(c, n1_nodes_of(gdx))
        for gdx in valid:
            bad_elsewhere = next((r for g2, r in other_bad.items() if g2 != gdx and r), None)
            g = _try_group(c, inst, count, gdx, None, rset, ignore_soft, capacity,
                           n1_nodes_of(gdx), bad_elsewhere, dedicated)
            sols.append(g)
        msgs.extend(_describe(c, g) for g in sols)
        good = [g for g in sols if g.best is not None and c.groups[g.gdx].allocable]
        good.sort(key=lambda g: (POLICY_ORDER[c.groups[g.gdx].alloc_policy], g.pick()[0]))
        chosen = good[0] if good else None
        prefix = [f"Selected group: {c.groups[chosen.gdx].name}"] if chosen else []
    # per-node reasons for every node not chosen
    reasons: list[Reason] = []
    failures: Counter = Counter()
    for g in sols:
        failures.update(g.failures)
    chosen_nodes = set()
    if chosen is not None:
        chosen_nodes = {chosen.pick()[1], chosen.pick()[2]} - {NO_NODE}
    by_group = {g.gdx: g for g in sols}
    for n in c.nodes:
        if n.idx in chosen_nodes:
            continue
        sol = by_group.get(n.group)
        if n.offline:
            reasons.append(Reason("Offline", n.name, n.offline_reason or "node is offline"))
        elif sol is None:
            grp = c.groups[n.group]
            why = "not a candidate group"
            if group is not None:
                why = f"not in the requested group {group}"
            elif any(nw not in grp.networks for nw in inst.networks()):
                why = f"group {grp.name} lacks a network the instance needs"
            reasons.append(Reason("NotChosen", n.name, why))
        elif rset is not None and n.name not in rset:
            reasons.append(Reason("NotChosen", n.name, "excluded by restrict-to-nodes"))
        elif n.idx in sol.reasons:
            reasons.append(sol.reasons[n.idx])
        elif not c.groups[n.group].allocable and group is None:
            reasons.append(Reason("NotChosen", n.name, f"group {c.groups[n.group].name} is "
                                  "unallocable"))
        elif chosen is not None and sol is not chosen:
            reasons.append(Reason("NotChosen", n.name, f"group {c.groups[n.group].name} "
                                  f"ranks below the selected group"))
        else:
            best = f"{chosen.pick()[3]:.8f}" if chosen is not None else "n/a"
            reasons.append(Reason("NotChosen", n.name, f"valid, but a better-scoring "
                                  f"placement was chosen (score {best})"))
    if chosen is None:
        info = ", ".join(msgs)
        return AllocResult(False, [], "", None, info, failures, reasons)
    names = [c.nodes[chosen.pick()[1]].name]
    if chosen.pick()[2] != NO_NODE:
        names.append(c.nodes[chosen.pick()[2]].name)
    info = ", ".join(prefix + msgs)
    return AllocResult(True, names, c.groups[chosen.gdx].name, chosen.pick()[3], info, failures,
                       reasons, chosen.successes)


def place(c: Cluster, inst: Instance, nodes: list[str], force: bool = True) -> None:
    """Put an unplaced instance on the given nodes (after ``allocate``)."""
    pdx = c.node_by_name[nodes[0]]
    sdx = c.node_by_name[nodes[1]] if len(nodes) > 1 else NO_NODE
    c.set_inst_nodes(inst, pdx, sdx)
    r = c.add_pri(pdx, inst, force)
    if r is None and sdx != NO_NODE:
        r = c.add_sec(sdx, inst, pdx, force)
    if r is not None:
        raise AllocError(f"cannot place {inst.name}: {r}")


def multi_allocate(c: Cluster, reqs: list[tuple[Instance, int, str | None]],
                   ignore_soft: bool = False, capacity: bool = True,
                   restrict: Iterable[str] | None = None
                   ) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]], list[AllocResult]]:
    """Allocate several instances in order; each success is applied before the next.
    Partial success is allowed (hail 3.0.2 fails the whole request instead)."""
    ok: list[tuple[str, list[str]]] = []
    failed: list[tuple[str, str]] = []
    results = []
    for inst, count, grp in reqs:
        try:
            res = allocate(c, inst, count, grp, restrict, ignore_soft, capacity)
        except AllocError as exc:
            res = AllocResult(False, info=str(exc))
        results.append(res)
        if res.success:
            place(c, inst, res.nodes)
            ok.append((inst.name, res.nodes))
        else:
            failed.append((inst.name, res.info))
    return ok, failed, results


# ----------------------------------------------------------------- evacuation

@dataclass
class EvacResult:
    moved: list[tuple[str, str, list[str]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    jobs: list[list[dict[str, Any]]] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)

    @property
    def info(self) -> str:
        return (f"{len(self.failed)} instances failed to move and {len(self.moved)} were "
                "moved successfully")


def _evac_one_node_only(c: Cluster, inst: Instance, gdx: int, avail: list[int],
                        ignore_soft: bool, reasons: list[str]) -> tuple | str:
    mt = mirror_type(inst.template)
    if mt == "none":
        return "Can't relocate/evacuate non-mirrored instances"
    kind = "r" if mt == "internal" else "fa"
    best = None
    msg = ""
    for t in avail:
        mark = c.checkpoint()
        r = apply_move(c, inst, (kind, t), ignore_soft)
        if r is not None:
            msg += f" Node {c.nodes[t].name} failed: {r.mode};"
            reasons.append(str(Reason(r.mode, c.nodes[t].name, r.text, r.soft)))
        else:
            s = c.score(gdx)
            if best is None or not best[0] < s:
                best = (s, t)
        c.rollback(mark)
    if best is None:
        return "Can't find any good node: " + msg
    return ((kind, best[1]),)


def _evac_drbd_all(c: Cluster, inst: Instance, gdx: int, avail: list[int], ignore_soft: bool,
                   reasons: list[str]) -> tuple | str:
    """Every (new primary, new secondary) pair, as hail: replace the secondary
    with the new primary, fail over, replace the secondary with the final one.
    The first two steps depend on the new primary only, so they are applied
    once per new primary and only the last step is tried per pair."""
    best = None
    last = "no nodes available"
    for tp in avail:
        mark = c.checkpoint()
        # every trial is rolled back: score it without updating the statistics
        c.defer_stats(True)
        try:
            best, last = _evac_drbd_pairs(c, inst, gdx, avail, ignore_soft, reasons, tp,
                                          best, last)
        finally:
            c.rollback(mark)
            c.defer_stats(False)
    if best is None:
        return "Can't find any good nodes for relocation: " + last
    return best[1]


def _evac_drbd_pairs(c: Cluster, inst: Instance, gdx: int, avail: list[int], ignore_soft: bool,
                     reasons: list[str], tp: int, best: tuple | None,
                     last: str) -> tuple[tuple | None, str]:
    """``_evac_drbd_all`` for the pairs with new primary ``tp``: the best so
    far and the last failure, updated (the moves stay applied)."""
    seq: list[tuple] = []
    err = None
    line = None
    if c.nodes[inst.pnode].offline:
        r = apply_move(c, inst, ("f",), ignore_soft)
        if r:
            err = f"Failing over to the secondary: {r.mode}"
        seq.append(("f",))
    for mv, what in ((("r", tp), "Changing secondary to new primary"),
                     (("f",), "Failing over to new primary")):
        if err:
            break
        r = apply_move(c, inst, mv, ignore_soft)
        if r:
            err = f"{what}: {r.mode}"
            line = f"{what}: {r}"
        seq.append(mv)
    what = "Changing secondary to final secondary"
    finals = [ts for ts in avail if ts != tp]
    tried = replace_secondary_each(c, inst, finals, ignore_soft) if err is None else \
        ((ts, None) for ts in finals)
    for ts, r in tried:
        if err is None and r is None:
            s = c.score(gdx)
            if best is None or not best[0] < s:
                best = (s, tuple(seq) + (("r", ts),))
            continue
        if r is not None:
            # the last step failed (the first two succeeded: their failure
            # gives every pair a None reason)
            e = f"{what}: {r.mode}"
            reasons.append(f"{c.nodes[tp].name}/{c.nodes[ts].name}: {what}: {r}")
        else:
            e = str(err)
            if line is not None:
                reasons.append(f"{c.nodes[tp].name}/{c.nodes[ts].name}: {line}")
        if best is None:
            last = "Allocation failed: " + e
    return best, last


def _evac_instance(c: Cluster, inst: Instance, mode: str, gdx: int, avail: list[int],
                   ignore_soft: bool, reasons: list[str]) -> tuple | str:
    """htools ``nodeEvacInstance``: a move sequence or an error string."""
    t = inst.template
    if t in ("plain", "file"):
        return f"Instances of type {t} cannot be relocated"
    if t != "drbd":
        if mode == "secondary-only":
            return f"Instances with disk template '{t}' can't execute change secondary"
        return _evac_one_node_only(c, inst, gdx, avail, ignore_soft, reasons)
    if mode == "primary-only":
        mark = c.checkpoint()
        r = apply_move(c, inst, ("f",), ignore_soft)
        c.rollback(mark)
        if r:
            reasons.append(str(r))
            return str(r.mode)
        return (("f",),)
    if mode == "secondary-only":
        return _evac_one_node_only(c, inst, gdx, avail, ignore_soft, reasons)
    return _evac_drbd_all(c, inst, gdx, avail, ignore_soft, reasons)


def _apply_evac(c: Cluster, inst: Instance, seq: tuple, ignore_soft: bool) -> list[dict]:
    ops: list[dict[str, Any]] = []
    for mv in seq:
        r = apply_move(c, inst, mv, ignore_soft)
        if r is not None:  # pragma: no cover - was feasible a moment ago
            raise AllocError(f"internal error: move {mv} failed: {r}")
        ops.extend(move_opcodes(c, inst, mv))
    return ops


EVAC_MODES = ("primary-only", "secondary-only", "all")


def node_evacuate(c: Cluster, names: list[str], mode: str,
                  ignore_soft: bool = False) -> EvacResult:
    """hail node-evacuate (``tryNodeEvac``); applies the moves to ``c``."""
    if mode not in EVAC_MODES:
        raise AllocError(f"invalid evac_mode {mode!r} (expected one of {', '.join(EVAC_MODES)})")
    insts = []
    for nm in names:
        if nm not in c.inst_by_name:
            raise AllocError(f"Unknown instance '{nm}'")
        insts.append(c.instances[c.inst_by_name[nm]])
    evac = set()
    for i in insts:
        if mode in ("primary-only", "all"):
            evac.add(i.pnode)
        if mode in ("secondary-only", "all") and i.template == "drbd":
            evac.add(i.snode)
    evac.discard(NO_NODE)
    excl = evac | {n.idx for n in c.nodes if n.offline}
    res = EvacResult()
    for inst in insts:
        gdx = c.inst_group(inst)
        avail = [n.idx for n in c.nodes if n.group == gdx and n.idx not in excl
                 and n.idx != inst.pnode]
        why: list[str] = []
        out = _evac_instance(c, inst, mode, gdx, avail, ignore_soft, why)
        if isinstance(out, str):
            res.failed.append((inst.name, out))
            res.reasons[inst.name] = why
            continue
        ops = _apply_evac(c, inst, out, ignore_soft)
        res.jobs.append(ops)
        nodes = [c.nodes[inst.pnode].name] + ([c.nodes[inst.snode].name]
                                              if inst.template == "drbd" else [])
        res.moved.append((inst.name, c.groups[c.inst_group(inst)].name, nodes))
    return res


def change_group(c: Cluster, names: list[str], target_groups: list[str],
                 ignore_soft: bool = False, capacity: bool = True) -> EvacResult:
    """hail change-group (``tryChangeGroup``); ``target_groups`` are group names or
    uuids, empty = any other group; ``capacity`` is hail's global N+1 check on
    the target group (``--no-capacity-checks`` turns it off).  Applies the moves
    to ``c``."""
    insts = []
    for nm in names:
        if nm not in c.inst_by_name:
            raise AllocError(f"Unknown instance '{nm}'")
        insts.append(c.instances[c.inst_by_name[nm]])
    tg = []
    for g in target_groups:
        if g in c.group_by_uuid:
            tg.append(c.group_by_uuid[g])
        elif g in c.group_by_name:
            tg.append(c.group_by_name[g])
        else:
            raise AllocError(f"Unknown group '{g}'")
    evac_g = {c.inst_group(i) for i in insts}
    targets = [g for g in (tg or [gr.idx for gr in c.groups]) if g not in evac_g]
    offline = {n.idx for n in c.nodes if n.offline}
    res = EvacResult()
    for inst in insts:
        # choose the group as hail does: allocate a copy of the instance there
        probe = c.new_instance(f"{inst.name}\x00probe", inst.mem, list(inst.disks), inst.vcpus,
                               inst.template, inst.tags, inst.spindle_use, inst.nics, inst.dsk,
                               inst.status, inst.auto_balance)
        try:
            try:
                ar = allocate(c, probe, None, None, None, ignore_soft, capacity, targets)
            except AllocError as exc:
                ar = AllocResult(False, info=str(exc))
        finally:
            c.drop_last_instance(probe)
        if not ar.success:
            res.failed.append((inst.name, ar.info or "no target group"))
            res.reasons[inst.name] = ar.reason_lines()
            continue
        gdx = c.group_by_name[ar.group]
        avail = [n.idx for n in c.nodes if n.group == gdx and n.idx not in offline]
        why: list[str] = []
        out = _evac_instance(c, inst, "all", gdx, avail, False, why)
        if isinstance(out, str):
            res.failed.append((inst.name, out))
            res.reasons[inst.name] = why
            continue
        ops = _apply_evac(c, inst, out, False)
        res.jobs.append(ops)
        nodes = [c.nodes[inst.pnode].name] + ([c.nodes[inst.snode].name]
                                              if inst.template == "drbd" else [])
        res.moved.append((inst.name, c.groups[c.inst_group(inst)].name, nodes))
    return res


def relocate(c: Cluster, name: str, relocate_from: list[str], count: int = 1,
             ignore_soft: bool = False) -> tuple[list[str], list[str]]:
    """hail relocate (``processRelocate``): returns (new nodes, reasons); raises
    ``AllocError`` with hail's message on failure.  Applies the move to ``c``."""
    if count != 1:
        raise AllocError(f"Exchange {count} nodes mode is not implemented")
    if name not in c.inst_by_name:
        raise AllocError(f"Unknown instance '{name}'")
    inst = c.instances[c.inst_by_name[name]]
    mt = mirror_type(inst.template)
    if mt == "none":
        raise AllocError("Can't relocate non-mirrored instances")
    exp = inst.snode if mt == "internal" else inst.pnode
    kind = "secondary" if mt == "internal" else "primary"
    ex = []
    for nm in relocate_from:
        if nm not in c.node_by_name:
            raise AllocError(f"Unknown node '{nm}'")
        ex.append(c.node_by_name[nm])
    if ex != [exp]:
        raise AllocError(f"Unsupported request: excluded nodes not equal to instance's {kind}"
                         f"({c.node_name(exp)} versus {', '.join(relocate_from)})")
    mode = "secondary-only" if mt == "internal" else "primary-only"
    # tryNodeEvac with ChangeSecondary / ChangePrimary on one instance
    excl = {exp} | {n.idx for n in c.nodes if n.offline}
    gdx = c.inst_group(inst)
    avail = [n.idx for n in c.nodes if n.group == gdx and n.idx not in excl
             and n.idx != inst.pnode]
    why: list[str] = []
    if mt == "internal":
        out = _evac_one_node_only(c, inst, gdx, avail, ignore_soft, why)
    else:
        out = _evac_instance(c, inst, mode, gdx, avail, ignore_soft, why)
        if not isinstance(out, str) and out == (("f",),):
            out = _evac_one_node_only(c, inst, gdx, avail, ignore_soft, why)
    if isinstance(out, str):
        err = AllocError(out)
        err.reasons = why  # type: ignore[attr-defined]
        raise err
    _apply_evac(c, inst, out, ignore_soft)
    new = inst.snode if mt == "internal" else inst.pnode
    return [c.nodes[new].name], why


def allocate_secondary(c: Cluster, name: str, ignore_soft: bool = False) -> AllocResult:
    """hail allocate-secondary: best secondary for a plain instance becoming drbd."""
    if name not in c.inst_by_name:
        raise AllocError(f"Unknown instance '{name}'")
    inst = c.instances[c.inst_by_name[name]]
    gdx = c.inst_group(inst)
    pdx = inst.pnode
    best = None
    reasons: list[Reason] = []
    failures: Counter = Counter()
    ok = 0
    old_t = inst.template
    mark = c.checkpoint()
    try:
        c.remove_pri(pdx, inst)
        inst.template = "drbd"
        c.add_pri(pdx, inst, True)
        for n in c.nodes:
            if n.group != gdx or n.offline or n.idx == pdx:
                continue
            m2 = c.checkpoint()
            c.set_inst_nodes(inst, pdx, n.idx)
            r = c.add_sec(n.idx, inst, pdx, ignore_soft)
            if r is None:
                ok += 1
                s = c.score(gdx)
                if best is None or s < best[0]:
                    best = (s, n.idx)
            else:
                failures[r.mode] += 1
                reasons.append(r)
            c.rollback(m2)
    finally:
        c.rollback(mark)
        inst.template = old_t
    if best is None:
        return AllocResult(False, info="No valid allocation solutions, failure reasons: " +
                           (_fail_text(failures) or "unknown reasons"), failures=failures,
                           reasons=reasons)
    nm = [c.nodes[pdx].name, c.nodes[best[1]].name]
    info = (f"score: {best[0]:.8f}, successes {ok}, failures {sum(failures.values())} "
            f"({_fail_text(failures)}) for node(s) {'/'.join(nm)}")
    return AllocResult(True, nm, c.groups[gdx].name, best[0], info, failures, reasons, ok)
