"""hspace-class capacity planning: standard and tiered allocation reports.

Same semantics as Ganeti's hspace (``Program/Hspace.hs``, ``Cluster.hs``
iterateAlloc/tieredAlloc):

* the disk template is the first of the cluster policy's templates (or the
  one given); the standard spec is the policy's ``std``, the tiered specs are
  the ``max`` of every min/max pair;
* **standard**: allocate the std instance again and again (hail's best
  placement each time) until an allocation fails; report the count and the
  failure reasons of the last attempt;
* **tiered**: allocate the biggest spec until it fails, then shrink the spec
  on the most frequent failure resource (memory by 64 MiB, disk by 256 MiB,
  vCPUs by 1) and continue; if shrinking that resource alone does not help,
  shrink the other failing resources (hspace's "big steps"); report each spec
  with the number of instances placed at that size;
* if the cluster is not N+1 healthy at the start (and ``accept_existing`` is
  false) nothing is allocated and the reason is ``FailN1``, as hspace;
  ``independent_groups`` allocates in the groups that are healthy and leaves
  the others out of the capacity check;
* exclusive storage changes nothing here: hspace keeps its capacity checks
  (only hail's IAllocator ranks by lost allocations without them).

The cluster passed in is not modified (work happens on a clone).
"""

from __future__ import annotations

import bisect
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .allocate import allocate, global_n1, place
from .model import Cluster, Instance, ISpec
from .rules import FAIL_MODES, critical_values, policy_critical_values

UNIT_MEM = 64
UNIT_DSK = 256
UNIT_CPU = 1
# answer shrunk specs from remembered failures (see _Run); off only to check
# that it changes no result
REMEMBER_FAILURES = True


@dataclass(frozen=True)
class Spec:
    mem: int
    dsk: int
    cpu: int
    spn: int = 1

    def as_dict(self) -> dict[str, int]:
        return {"memory": self.mem, "disk": self.dsk, "vcpus": self.cpu, "spindles": self.spn}

    def hts(self) -> str:
        return f"{self.mem},{self.dsk},{self.cpu},{self.spn}"


@dataclass
class AllocReport:
    mode: str                              # "standard" | "tiered"
    disk_template: str
    count: int
    specs: list[tuple[Spec, int]]          # spec -> instances allocated at that spec
    fail_reason: str                       # most frequent failure mode of the last attempt
    failures: Counter = field(default_factory=Counter)
    reasons: list[str] = field(default_factory=list)   # per-node lines of the last failure
    final_score: float = 0.0
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "disk_template": self.disk_template,
            "count": self.count,
            "specs": [dict(s.as_dict(), count=n) for s, n in self.specs],
            "fail_reason": self.fail_reason,
            "failures": dict(self.failures),
            "reasons": list(self.reasons),
            "final_score": self.final_score,
            "elapsed": self.elapsed,
        }


@dataclass
class CapacityReport:
    initial_score: float
    standard: AllocReport
    tiered: AllocReport

    def as_dict(self) -> dict[str, Any]:
        return {"initial_score": self.initial_score, "standard": self.standard.as_dict(),
                "tiered": self.tiered.as_dict()}


def _spec_of(s: ISpec) -> Spec:
    return Spec(s.memory_size, s.disk_size, s.cpu_count, s.spindle_use)


def _new_inst(c: Cluster, name: str, spec: Spec, template: str, su: int) -> Instance:
    dsk = 0 if template == "diskless" else spec.dsk
    return c.new_instance(name, spec.mem, [(spec.dsk, spec.spn)], spec.cpu, template,
                          spindle_use=su, dsk=dsk)


def _shrink(spec: Spec, mode: str) -> Spec | None:
    """htools ``shrinkByType`` (one disk)."""
    if mode == "FailMem":
        v = spec.mem - UNIT_MEM
        return None if v < UNIT_MEM else Spec(v, spec.dsk, spec.cpu, spec.spn)
    if mode == "FailDisk":
        v = spec.dsk - UNIT_DSK
        return None if v < UNIT_DSK else Spec(spec.mem, v, spec.cpu, spec.spn)
    if mode == "FailCPU":
        v = spec.cpu - UNIT_CPU
        return None if v < UNIT_CPU else Spec(spec.mem, spec.dsk, v, spec.spn)
    if mode == "FailSpindles":
        v = spec.spn - 1
        return None if v < 1 else Spec(spec.mem, spec.dsk, spec.cpu, v)
    return None


class _Run:
    """One allocation run on the working clone.

    Failed attempts are remembered for the current cluster state (it changes
    only when an instance is committed) together with, per dimension, the open
    interval of sizes around the spec in which no node check can change its
    answer (``rules.critical_values``).  A shrunk spec inside every interval
    fails the same way, with the same failure counts, so the tiered walk's
    64 MiB / 256 MiB steps cost a lookup instead of an allocation.  Only
    failures where no node (pair) passed the node checks are remembered: when
    candidates existed and the global N+1 check dropped them, the answer
    depends on the sizes in ways these intervals do not describe."""

    def __init__(self, c: Cluster, template: str, su: int, capacity: bool,
                 ignore_soft: bool, limit: int | None, start: _Start) -> None:
        self.c = c
        self.groups = start.groups
        self.n1_ignore = start.n1_ignore
        self.accept_existing = start.accept_existing
        self.template = template
        self.su = su
        self.capacity = capacity
        self.ignore_soft = ignore_soft
        self.limit = limit
        self.count = 0
        self.seq = 0
        self.remember = REMEMBER_FAILURES
        self._crit: tuple[list[float], ...] | None = None
        self._failed: list[tuple[tuple[float, ...], Counter]] = []

    def _critical(self) -> tuple[list[float], ...]:
        if self._crit is None:
            dims: tuple[list[float], ...] = ([], [], [], [])
            for n in self.c.nodes:
                if not n.offline:
                    for d, vals in zip(dims, critical_values(n)):
                        d.extend(vals)
            for g in self.c.groups:
                for d, vals in zip(dims, policy_critical_values(g.ipolicy)):
                    d.extend(vals)
            self._crit = tuple(sorted(set(d)) for d in dims)
        return self._crit

    def _remember(self, spec: Spec, fails: Counter) -> None:
        bounds: list[float] = []
        for crit, v in zip(self._critical(), (spec.mem, spec.dsk, spec.cpu, spec.spn)):
            i = bisect.bisect_left(crit, v)
            if i < len(crit) and crit[i] == v:
                return              # on a critical value: no neighbour is known to match
            bounds.append(crit[i - 1] if i else float("-inf"))
            bounds.append(crit[i] if i < len(crit) else float("inf"))
        self._failed.append((tuple(bounds), fails))

    def _known_failure(self, spec: Spec) -> Counter | None:
        m, d, cp, sp = spec.mem, spec.dsk, spec.cpu, spec.spn
        for b, fails in self._failed:
            if b[0] < m < b[1] and b[2] < d < b[3] and b[4] < cp < b[5] and b[6] < sp < b[7]:
                return fails
        return None

    def try_one(self, spec: Spec, commit: bool) -> tuple[bool, Counter, list[str] | None]:
        """Allocate ``spec`` once (committed if ``commit``).  The reasons of a
        failure answered from memory are None (see ``reasons``)."""
        if self.remember:
            known = self._known_failure(spec)
            if known is not None:
                return False, known, None
        c = self.c
        self.seq += 1
        inst = _new_inst(c, f"new-{self.seq}", spec, self.template, self.su)
        # hspace (iterateAllocSmallStep) checks global N+1 per allocation only
        # for non-drbd instances: a drbd instance's failover is the node N+1
        # check already
        res = allocate(c, inst, capacity=self.capacity and self.template != "drbd",
                       ignore_soft=self.ignore_soft,
                       allowed_groups=self.groups, n1_ignore_groups=self.n1_ignore,
                       n1_online_only=self.accept_existing, dedicated=False)
        if res.success and commit:
            place(c, inst, res.nodes, force=True)
            c.commit()
            self._crit = None
            self._failed = []
            return True, res.failures, []
        c.drop_last_instance(inst)
        self.seq -= 1
        # every allowed group is allocable, so a failure without FailN1 means
        # no node (pair) passed the node checks
        if not res.success and self.remember and "FailN1" not in res.failures:
            self._remember(spec, res.failures)
        return res.success, res.failures, ([] if res.success else
                                           [str(r) for r in res.reasons])

    def reasons(self, spec: Spec, reasons: list[str] | None) -> list[str]:
        """The per-node reasons of the failure of ``spec`` in the current state."""
        if reasons is not None:
            return reasons
        remember, self.remember = self.remember, False
        try:
            return self.try_one(spec, False)[2] or []
        finally:
            self.remember = remember

    def iterate(self, spec: Spec) -> tuple[int, Counter, list[str] | None]:
        """Allocate ``spec`` until failure (hspace iterateAlloc)."""
        n = 0
        while self.limit is None or self.count < self.limit:
            ok, fails, reasons = self.try_one(spec, True)
            if not ok:
                return n, fails, reasons
            n += 1
            self.count += 1
        return n, Counter(), []


def _fail_mode(fails: Counter) -> str:
    if not fails:
        return ""
    return max(fails.items(), key=lambda kv: kv[1])[0]


def _sorted_errs(fails: Counter) -> list[str]:
    """htools: failure modes in enum order, stably sorted by count (ascending)."""
    order = {m: i for i, m in enumerate(FAIL_MODES)}
    modes = sorted((m for m, n in fails.items() if n > 0), key=lambda m: order.get(m, 99))
    return sorted(modes, key=lambda m: fails[m])


@dataclass
class _Start:
    """Where hspace allocates: ``blocked`` = the reason nothing is allocated,
    ``groups`` = the allocable groups, ``n1_ignore`` = groups the global N+1
    check skips."""
    blocked: str | None
    groups: list[int]
    n1_ignore: list[int]
    accept_existing: bool


def _start(c: Cluster, accept_existing: bool, independent_groups: bool = False) -> _Start:
    """hspace's start: without ``accept_existing`` the groups of nodes failing
    N+1 are not allocated to (and nothing is, unless ``independent_groups``
    leaves other groups); ``independent_groups`` also sets aside every group
    that is not globally N+1 redundant and leaves it out of the capacity
    check (``--accept-existing-errors``, ``--independent-groups``)."""
    groups = [g.idx for g in c.groups if g.allocable]
    bad = [n for n in c.nodes if not n.offline and n.fail_n1 and (n.plist or n.slist)]
    if not accept_existing:
        groups = [g for g in groups if g not in {n.group for n in bad}]
    ignore: list[int] = []
    if independent_groups:
        online_only = accept_existing
        for g in c.groups:
            nodes = [ndx for ndx in c.group_nodes(g.idx)
                     if not (online_only and c.nodes[ndx].offline)]
            if global_n1(c, nodes) is not None:
                ignore.append(g.idx)
        groups = [g for g in groups if g not in ignore]
    blocked = None
    if bad and not accept_existing and not (independent_groups and groups):
        blocked = "FailN1"
    return _Start(blocked, groups, ignore, accept_existing)


def standard_alloc(c: Cluster, template: str | None = None, spec: Spec | None = None,
                   capacity: bool = True, ignore_soft: bool = False,
                   accept_existing: bool = False, limit: int | None = None,
                   independent_groups: bool = False) -> AllocReport:
    """hspace's standard allocation on a clone of ``c``."""
    t0 = time.monotonic()
    w = c.clone()
    tmpl = template or w.ipolicy.disk_templates[0]
    sp = spec or _spec_of(w.ipolicy.std)
    su = w.ipolicy.std.spindle_use
    start = _start(w, accept_existing, independent_groups)
    blocked = start.blocked
    if blocked:
        return AllocReport("standard", tmpl, 0, [(sp, 0)], blocked, Counter({blocked: 1}),
                           ["cluster is not N+1 redundant at the start"],
                           w.score(), time.monotonic() - t0)
    run = _Run(w, tmpl, su, capacity, ignore_soft, limit, start)
    n, fails, reasons = run.iterate(sp)
    return AllocReport("standard", tmpl, n, [(sp, n)], _fail_mode(fails), fails,
                       run.reasons(sp, reasons),
                       w.score(), time.monotonic() - t0)


def tiered_alloc(c: Cluster, template: str | None = None, specs: list[Spec] | None = None,
                 capacity: bool = True, ignore_soft: bool = False,
                 accept_existing: bool = False, limit: int | None = None,
                 independent_groups: bool = False) -> AllocReport:
    """hspace's tiered allocation on a clone of ``c``."""
    t0 = time.monotonic()
    w = c.clone()
    tmpl = template or w.ipolicy.disk_templates[0]
    specs = specs or [_spec_of(mx) for _mn, mx in w.ipolicy.minmax]
    su = w.ipolicy.std.spindle_use
    start = _start(w, accept_existing, independent_groups)
    blocked = start.blocked
    if blocked:
        return AllocReport("tiered", tmpl, 0, [], blocked, Counter({blocked: 1}),
                           ["cluster is not N+1 redundant at the start"], w.score(),
                           time.monotonic() - t0)
    run = _Run(w, tmpl, su, capacity, ignore_soft, limit, start)
    placed: dict[Spec, int] = {}
    order: list[Spec] = []
    last: dict[str, Any] = {"fails": Counter(), "reasons": [], "spec": None}

    dead: set[tuple[int, Spec]] = set()   # (allocation count, spec) known to add nothing
    tried: dict[tuple[int, Spec], tuple[bool, Counter]] = {}

    def probe(spec: Spec) -> tuple[bool, Counter]:
        key = (run.count, spec)
        if key not in tried:
            ok, f2, _reasons = run.try_one(spec, False)
            tried[key] = (ok, f2)
        return tried[key]

    def level(spec: Spec) -> bool:
        """One level of htools' recursive tieredAlloc; True if anything was
        allocated in it or below.  Results are memoised per cluster state (the
        state only changes when something is allocated), which keeps the
        search linear where a naive recursion is quadratic."""
        if (run.count, spec) in dead:
            return False
        start = run.count
        res = _level(spec)
        if not res:
            dead.add((start, spec))
        return res

    def _level(spec: Spec) -> bool:
        key = (run.count, spec)
        if key in tried and not tried[key][0]:
            n, fails, reasons = 0, tried[key][1], None
        else:
            n, fails, reasons = run.iterate(spec)
        # the state only changes in iterate, so it is still this one at the end
        last["fails"], last["reasons"], last["spec"] = fails, reasons, spec
        if n:
            if spec not in placed:
                order.append(spec)
            placed[spec] = placed.get(spec, 0) + n
        if limit is not None and run.count >= limit:
            return n > 0
        errs = _sorted_errs(fails)
        if not errs:
            return n > 0
        nxt = _shrink(spec, errs[-1])
        if nxt is not None and level(nxt):
            return True
        for fm in reversed(errs):          # hspace's "big steps" (sufficesShrinking)
            found = suffices(spec, fm)
            if found is not None:
                return level(found) or n > 0
        return n > 0

    chains: dict[tuple[int, Spec, str], Spec | None] = {}

    def suffices(spec: Spec, fm: str) -> Spec | None:
        """First spec on the ``fm`` shrink path below ``spec`` that allocates,
        while ``fm`` stays among the failures (memoised per state)."""
        walked: list[Spec] = []
        cand = _shrink(spec, fm)
        result: Spec | None = None
        while cand is not None:
            key = (run.count, cand, fm)
            if key in chains:
                result = chains[key]
                break
            ok, f2 = probe(cand)
            if ok:
                result = cand
                break
            walked.append(cand)
            if fm not in f2:
                break
            cand = _shrink(cand, fm)
        for w in walked:
            # the answer from w's own position is the same unless w itself allocates
            chains[(run.count, w, fm)] = result
        return result

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 100000))
    try:
        for spec in specs:
            level(spec)
    finally:
        sys.setrecursionlimit(old_limit)
    fails = last["fails"]
    reasons = run.reasons(last["spec"], last["reasons"]) if last["spec"] is not None else []
    specs_out = [(sp, placed[sp]) for sp in order]
    return AllocReport("tiered", tmpl, run.count, specs_out, _fail_mode(fails), fails, reasons,
                       w.score(), time.monotonic() - t0)


def capacity(c: Cluster, template: str | None = None, std_spec: Spec | None = None,
             tiered_specs: list[Spec] | None = None, capacity_checks: bool = True,
             ignore_soft: bool = False, accept_existing: bool = False,
             limit: int | None = None, independent_groups: bool = False) -> CapacityReport:
    """Both hspace reports for cluster ``c`` (left unchanged)."""
    return CapacityReport(
        c.score(),
        standard_alloc(c, template, std_spec, capacity_checks, ignore_soft, accept_existing,
                       limit, independent_groups),
        tiered_alloc(c, template, tiered_specs, capacity_checks, ignore_soft, accept_existing,
                     limit, independent_groups))
