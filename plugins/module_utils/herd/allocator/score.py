"""The htools cluster score (``Cluster/Metrics.hs``), exact and incremental.

score = sum(weight_i * value_i) over the 20 terms of ``TERMS``.  "cv" terms are
population standard deviations over the *online* nodes of a per-node value;
"cnt"/"score" terms are sums (``offline_*`` over offline nodes only);
``location_exclusion_score`` is, over the union of the online nodes'
(location tag, exclusion tag) counts, sum(count) - number of distinct pairs.

Two ways to compute it:

* ``score(cluster, nodes=None)`` / ``breakdown(...)``: from scratch, two-pass
  (exactly what hbal prints as "Initial score");
* ``Stats``: running sums and sums of squares per term for a set of nodes,
  updated by removing a node's old vector and adding its new one (O(1) per
  node change).  ``Cluster`` keeps one ``Stats`` per group and one for all
  nodes, so ``cluster.score(gdx)`` is O(1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .model import Cluster, Node

# (weight, name, kind) -- kind: "cv" (stddev over online nodes), "sum" (sum over
# online nodes), "off" (sum over offline nodes), "map" (location/exclusion map)
TERMS: tuple[tuple[float, str, str], ...] = (
    (0.5, "free_mem_cv", "cv"),
    (0.5, "free_disk_cv", "cv"),
    (1.0, "n1_cnt", "sum"),
    (1.0, "reserved_mem_cv", "cv"),
    (4.0, "offline_all_cnt", "off"),
    (16.0, "offline_pri_cnt", "off"),
    (0.5, "vcpu_ratio_cv", "cv"),
    (1.0, "cpu_load_cv", "cv"),
    (1.0, "mem_load_cv", "cv"),
    (1.0, "disk_load_cv", "cv"),
    (1.0, "net_load_cv", "cv"),
    (2.0, "pri_tags_score", "sum"),
    (0.5, "spindles_cv", "cv"),
    (0.5, "free_mem_cv_forth", "cv"),
    (0.5, "free_disk_cv_forth", "cv"),
    (0.5, "vcpu_ratio_cv_forth", "cv"),
    (0.5, "spindles_cv_forth", "cv"),
    (1.0, "location_score", "sum"),
    (1.0, "location_exclusion_score", "map"),
    (0.25, "reserved_mem_rtotal", "sum"),
)
TERM_NAMES = tuple(t[1] for t in TERMS)
WEIGHTS = tuple(t[0] for t in TERMS)
CV_IDX = tuple(i for i, t in enumerate(TERMS) if t[2] == "cv")
SUM_IDX = tuple(i for i, t in enumerate(TERMS) if t[2] == "sum")
OFF_IDX = tuple(i for i, t in enumerate(TERMS) if t[2] == "off")
MAP_IDX = TERM_NAMES.index("location_exclusion_score")
NTERMS = len(TERMS)
_CV_W = tuple((i, WEIGHTS[i]) for i in CV_IDX)
_SUM_W = tuple((i, WEIGHTS[i]) for i in SUM_IDX)
_OFF_W = tuple((i, WEIGHTS[i]) for i in OFF_IDX)


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def node_vector(n: "Node") -> tuple[float, ...]:
    """The per-node values of ``TERMS`` (``compDetailedCVNode``); the map term is 0 here."""
    # the hottest function of candidate scoring: ``_div`` inlined, each
    # attribute read once (same arithmetic as the plain form)
    t_mem = n.t_mem
    npri = len(n.plist)
    nsec = len(n.slist)
    r_mem = n.r_mem
    prem = r_mem / t_mem if t_mem else 0.0
    if n.excl_stor:
        ts = n.t_spindles
        pdsk = 1.0 if ts == 0 else n.f_spindles / ts
        pdsk_f = 1.0 if ts == 0 else n.f_sp_forth / ts
    else:
        td = n.t_dsk
        pdsk = 1.0 if td == 0 else n.f_dsk / td
        pdsk_f = 1.0 if td == 0 else n.f_dsk_forth / td
    speed = n.cpu_speed or 1.0
    ptags = 0
    pt = n.p_tags
    if pt:
        ptags = sum(pt.values()) - len(pt)
    t_cpu = n.t_cpu
    hs = n.hi_spindles
    unal = int(t_mem) - n.n_mem - n.i_mem - max(0, n.x_mem)
    cnt = float(npri + nsec)
    return (
        unal / t_mem if t_mem else 0.0,
        pdsk,
        cnt if n.fail_n1 else 0.0,
        prem,
        cnt,
        float(npri),
        (n.u_cpu / t_cpu if t_cpu else 0.0) / speed,
        n.load_c,
        n.load_m,
        n.load_d,
        n.load_n,
        float(ptags),
        n.inst_sp / hs if hs else 0.0,
        n.f_mem_forth / t_mem if t_mem else 0.0,
        pdsk_f,
        (n.u_cpu_forth / t_cpu if t_cpu else 0.0) / speed,
        n.inst_sp_forth / hs if hs else 0.0,
        float(n.loc_score),
        0.0,
        prem,
    )


if TYPE_CHECKING:  # pragma: no cover
    # (node, vector the sums hold, its current vector, map the sums hold or None)
    _Change = tuple[Node, tuple[float, ...], tuple[float, ...],
                    Optional[dict[tuple[str, str], int]]]


class Stats:
    """Running sums for one set of nodes (a group, or the whole cluster)."""

    __slots__ = ("n", "s", "q", "k", "off", "map_counts", "map_total")

    def __init__(self) -> None:
        self.n = 0
        # cv terms are accumulated as deviations from a shift ``k`` (the first
        # node's value) so that equal values give exactly zero variance and
        # rounding is relative to the spread, not to the values themselves.
        self.k = [0.0] * NTERMS
        self.s = [0.0] * NTERMS
        self.q = [0.0] * NTERMS
        self.off = [0.0] * NTERMS
        self.map_counts: dict[tuple[str, str], int] = {}
        self.map_total = 0

    def add(self, node: "Node") -> None:
        v = node.vec
        if node.offline:
            off = self.off
            for i in OFF_IDX:
                off[i] += v[i]
            return
        s, q, k = self.s, self.q, self.k
        if self.n == 0:
            for i in CV_IDX:
                k[i] = v[i]
                s[i] = q[i] = 0.0
        self.n += 1
        for i in CV_IDX:
            x = v[i] - k[i]
            s[i] += x
            q[i] += x * x
        for i in SUM_IDX:
            s[i] += v[i]
        if node.instance_map:
            mc = self.map_counts
            for key, c in node.instance_map.items():
                mc[key] = mc.get(key, 0) + c
                self.map_total += c

    def remove(self, node: "Node") -> None:
        v = node.vec
        if node.offline:
            off = self.off
            for i in OFF_IDX:
                off[i] -= v[i]
            return
        self.n -= 1
        s, q, k = self.s, self.q, self.k
        for i in CV_IDX:
            x = v[i] - k[i]
            s[i] -= x
            q[i] -= x * x
        for i in SUM_IDX:
            s[i] -= v[i]
        if node.instance_map:
            mc = self.map_counts
            for key, c in node.instance_map.items():
                r = mc[key] - c
                if r:
                    mc[key] = r
                else:
                    del mc[key]
                self.map_total -= c

    def snapshot(self) -> tuple:
        return (self.n, self.s[:], self.q[:], self.k[:], self.off[:],
                dict(self.map_counts) if self.map_counts else None, self.map_total)

    def restore(self, snap: tuple) -> None:
        n, s, q, k, off, mc, mt = snap
        self.n = n
        self.s[:] = s
        self.q[:] = q
        self.k[:] = k
        self.off[:] = off
        self.map_counts = dict(mc) if mc else {}
        self.map_total = mt

    def values(self) -> list[float]:
        out = [0.0] * NTERMS
        n = self.n
        for i in CV_IDX:
            if n:
                mean = self.s[i] / n
                var = self.q[i] / n - mean * mean
                out[i] = math.sqrt(var) if var > 0 else 0.0
        for i in SUM_IDX:
            out[i] = self.s[i]
        for i in OFF_IDX:
            out[i] = self.off[i]
        out[MAP_IDX] = float(self.map_total - len(self.map_counts))
        return out

    def value(self) -> float:
        n = self.n
        s, q = self.s, self.q
        total = 0.0
        if n:
            for i in CV_IDX:
                mean = s[i] / n
                var = q[i] / n - mean * mean
                if var > 0:
                    total += WEIGHTS[i] * math.sqrt(var)
        for i in SUM_IDX:
            total += WEIGHTS[i] * s[i]
        for i in OFF_IDX:
            total += WEIGHTS[i] * self.off[i]
        total += WEIGHTS[MAP_IDX] * (self.map_total - len(self.map_counts))
        return total

    def value_with(self, changes: list[_Change]) -> float:
        """``value()`` as if each ``(node, old_vec, new_vec, old_map)`` had its
        old vector and map replaced by ``new_vec`` and the node's current map,
        without changing the sums (``Cluster.defer_stats``)."""
        # Per term, the changes are added in their order, then the term's
        # value is added to the total in term order: the same floating-point
        # operations as updating the sums node by node, without copying them.
        s = self.s
        q = self.q
        k = self.k
        online = []
        offline = None
        maps = None
        for ch in changes:
            node = ch[0]
            if node.offline:
                if offline is None:
                    offline = []
                offline.append(ch)
                continue
            online.append((ch[1], ch[2]))
            if ch[3] is not None or node.instance_map:
                if maps is None:
                    maps = []
                maps.append(ch)
        n = self.n
        total = 0.0
        if n:
            for i, w in _CV_W:
                si = s[i]
                qi = q[i]
                ki = k[i]
                for old, new in online:
                    x = new[i]
                    y = old[i]
                    if x != y:
                        si += x - y
                        x -= ki
                        y -= ki
                        qi += x * x - y * y
                mean = si / n
                var = qi / n - mean * mean
                if var > 0:
                    total += w * math.sqrt(var)
        for i, w in _SUM_W:
            si = s[i]
            for old, new in online:
                x = new[i]
                y = old[i]
                if x != y:
                    si += x - y
            total += w * si
        off = self.off
        for i, w in _OFF_W:
            oi = off[i]
            if offline is not None:
                for _node, old, new, _omap in offline:
                    oi += new[i] - old[i]
            total += w * oi
        mc = self.map_counts
        map_total = self.map_total
        distinct = len(mc)
        if maps is not None:
            new_counts: dict[tuple[str, str], int] = {}
            for node, _old, _new, omap in maps:
                for key, cnt in (omap or {}).items():
                    new_counts[key] = new_counts.get(key, mc.get(key, 0)) - cnt
                    map_total -= cnt
                for key, cnt in node.instance_map.items():
                    new_counts[key] = new_counts.get(key, mc.get(key, 0)) + cnt
                    map_total += cnt
            for key, cnt in new_counts.items():
                was = mc.get(key, 0)
                if was and not cnt:
                    distinct -= 1
                elif cnt and not was:
                    distinct += 1
        total += WEIGHTS[MAP_IDX] * (map_total - distinct)
        return total


def breakdown(cluster: "Cluster", nodes: Iterable[int] | None = None) -> list[tuple[str, float, float]]:
    """Exact (two-pass) per-term values: ``[(name, weight, value), ...]``.

    ``nodes`` restricts the computation to those node indices (hbal scores the
    selected group only); default: every node.
    """
    sel = [cluster.nodes[i] for i in nodes] if nodes is not None else list(cluster.nodes)
    from .score import node_vector as nv  # local alias for speed
    online = [nv(n) for n in sel if not n.offline]
    offline = [nv(n) for n in sel if n.offline]
    vals = [0.0] * NTERMS
    cnt = len(online)
    for i in CV_IDX:
        if cnt:
            mean = sum(v[i] for v in online) / cnt
            vals[i] = math.sqrt(sum((v[i] - mean) ** 2 for v in online) / cnt)
        else:
            vals[i] = float("nan")
    for i in SUM_IDX:
        vals[i] = sum(v[i] for v in online)
    for i in OFF_IDX:
        vals[i] = sum(v[i] for v in offline)
    counts: dict[tuple[str, str], int] = {}
    for n in sel:
        if not n.offline:
            for k, c in n.instance_map.items():
                counts[k] = counts.get(k, 0) + c
    vals[MAP_IDX] = float(sum(counts.values()) - len(counts))
    return [(name, w, v) for (w, name, _kind), v in zip(TERMS, vals)]


def score(cluster: "Cluster", nodes: Iterable[int] | None = None) -> float:
    """The htools cluster score, computed from scratch (``compCV``)."""
    return sum(w * v for _name, w, v in breakdown(cluster, nodes) if not math.isnan(v))


def optimal_score(cluster: "Cluster", nodes: Iterable[int] | None = None) -> float:
    """htools ``optimalCVScore``: lower bound of the reachable score."""
    sel = [cluster.nodes[i] for i in nodes] if nodes is not None else list(cluster.nodes)
    if len(sel) <= 1:
        return 0.0
    mems = [n.t_mem for n in sel]
    total = sum(mems)
    less = total - max(mems)
    if less <= 0:
        return 0.0
    drbd = float(sum(sum(n.peers.values()) for n in sel))
    return 0.25 * (drbd / less - drbd / total)
