"""hspace's options against the real hspace on the same input: clusters that
start N+1-unhealthy (``--accept-existing-errors``), node groups judged on
their own (``--independent-groups``), with and without capacity checks, and
exclusive-storage clusters (capacity checks stay on, as in hspace)."""

from __future__ import annotations

import functools
import itertools

import pytest

from plugins.module_utils.herd.allocator.capacity import CapacityReport, capacity
from plugins.module_utils.herd.allocator.text import load_file

from .htools_live import HTOOLS, hspace_answer, params, require, run_tool

ACCEPT = "--accept-existing-errors"
INDEPENDENT = "--independent-groups"
NOCAP = "--no-capacity-checks"

# multi-group, unhealthy-group and unhealthy-node data: every option combination
UNHEALTHY = ("hspace-groups-two", "hspace-bad-group", "n1-failure")
FLAGS = [sum(f, []) for f in itertools.product([[], [ACCEPT]], [[], [INDEPENDENT]],
                                                 [[], [NOCAP]])]
# exclusive storage: with checks must differ from without them exactly as hspace's
EXCLUSIVE = ("hspace-tiered-exclusive", "hspace-tiered-dualspec-exclusive")
CASES = [(name, flags) for name in UNHEALTHY for flags in FLAGS] + \
    [(name, flags) for name in EXCLUSIVE for flags in ([], [NOCAP])]


@functools.lru_cache(maxsize=None)
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
