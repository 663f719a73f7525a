"""hspace's options against the real hspace on the same input: clusters that
start N+1-unhealthy (``--accept-existing-errors``), node groups judged on
their own (``--independent-groups``), with and without capacity checks, and
exclusive-storage clusters (capacity checks stay on, as in hspace), and the
tiered spec shrinking order on generated clusters."""

from __future__ import annotations

import functools
import itertools
import os
import sys

import pytest

from plugins.module_utils.herd.allocator.capacity import CapacityReport, capacity
from plugins.module_utils.herd.allocator.text import load_file

from .htools_live import HTOOLS, hspace_answer, params, require, run_tool

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "alloc"))
from gen import generate  # noqa: E402

ACCEPT = "--accept-existing-errors"
INDEPENDENT = "--independent-groups"
NOCAP = "--no-capacity-checks"

# multi-group, unhealthy-group and unhealthy-node data: every option combination
UNHEALTHY = ("hspace-groups-two", "hspace-bad-group", "n1-failure")
FLAGS = [sum(f, []) for f in
         itertools.product([[], [ACCEPT]], [[], [INDEPENDENT]], [[], [NOCAP]])]
# exclusive storage: capacity checks on and off, each as hspace's
EXCLUSIVE = ("hspace-tiered-exclusive", "hspace-tiered-dualspec-exclusive")
CASES = [(name, flags) for name in UNHEALTHY for flags in FLAGS] + \
    [(name, flags) for name in EXCLUSIVE for flags in ([], [NOCAP])]


@functools.cache
def _ours(name: str, flags: tuple[str, ...]) -> CapacityReport:
    return capacity(load_file(f"{HTOOLS}/{name}.data", legacy_n1=True),
                    capacity_checks=NOCAP not in flags, accept_existing=ACCEPT in flags,
                    independent_groups=INDEPENDENT in flags)


@pytest.mark.parametrize("case", params(CASES, [f"{n}[{' '.join(f) or 'default'}]"
                                                for n, f in CASES], "hspace"))
def test_capacity_with_hspaces_options_equals_hspace(case):
    name, flags = case
    require("hspace")
    ours = _ours(name, tuple(flags))
    run = run_tool("hspace", ("-t", f"{HTOOLS}/{name}.data", "--machine-readable", *flags))
    if run.rc != 0:
        # hspace stops when no group is left to allocate to; herd allocates nothing
        assert "No online nodes" in run.stderr or "Not enough online nodes" in run.stderr
        assert (ours.standard.count, ours.tiered.count) == (0, 0)
        return
    theirs = hspace_answer(f"{HTOOLS}/{name}.data", *flags)
    assert (ours.standard.count, ours.standard.fail_reason.upper()) == \
        (theirs.standard, theirs.fail_reason)
    assert [(s.hts(), n) for s, n in ours.tiered.specs] == theirs.tiered


GENERATED = [(6, 30, 1), (4, 40, 2), (8, 60, 2)]   # nodes, instances, seed


@pytest.mark.parametrize("shape", GENERATED, ids=[f"gen-{n}-{i}-s{s}" for n, i, s in GENERATED])
def test_tiered_capacity_shrinks_in_hspaces_order(tmp_path, shape):
    # each tier step: the same spec sizes and counts as hspace, so the same MiB placed
    require("hspace")
    nodes, insts, seed = shape
    path = tmp_path / "gen.data"
    path.write_text(generate(nodes, insts, seed=seed))
    theirs = hspace_answer(str(path), ACCEPT, NOCAP)
    ours = capacity(load_file(str(path), legacy_n1=True), capacity_checks=False,
                    accept_existing=True)
    assert [(s.hts(), n) for s, n in ours.tiered.specs] == theirs.tiered
    assert ours.standard.count == theirs.standard
