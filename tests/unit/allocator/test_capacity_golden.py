"""herd's capacity reports against hspace's recorded runs (ganeti-data/golden)."""

import functools
import os
import re

import pytest

from plugins.module_utils.herd.allocator.capacity import capacity
from plugins.module_utils.herd.allocator.text import load_file

from .golden_hbal import GOLDEN, HTOOLS


def _golden():
    out = []
    if not os.path.isdir(GOLDEN):
        return out
    for fn in sorted(os.listdir(GOLDEN)):
        if fn.startswith("hspace__") and fn.endswith(".stdout"):
            name = fn[len("hspace__"):-len(".stdout")]
            with open(os.path.join(GOLDEN, fn), encoding="utf-8") as fh:
                text = fh.read()
            with open(os.path.join(GOLDEN, f"hspace__{name}.cmd"), encoding="utf-8") as fh:
                cmd = fh.read()
            std = int(re.search(r"HTS_ALLOC_INSTANCES=(\d+)", text).group(1))
            tspec = re.search(r"HTS_TSPEC='([^']*)'", text).group(1)
            tiered = [(s.split("=")[0], int(s.split("=")[1])) for s in tspec.split()]
            reason = re.search(r"HTS_ALLOC_FAIL_REASON=(\w+)", text).group(1)
            out.append((name, std, tiered, reason, "--no-capacity-checks" in cmd))
    return out


CASES = _golden()


@functools.lru_cache(maxsize=None)
def _report(name, nocap):
    c = load_file(os.path.join(HTOOLS, name + ".data"), legacy_n1=True)
    return capacity(c, capacity_checks=not nocap)


def test_golden_hspace_cases_are_found():
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES, ids=[k[0] for k in CASES])
def test_standard_capacity_is_at_least_hspace(case):
    name, std, _tiered, _reason, nocap = case
    assert _report(name, nocap).standard.count >= std


@pytest.mark.parametrize("case", CASES, ids=[k[0] for k in CASES])
def test_tiered_capacity_is_at_least_hspace(case):
    name, _std, tiered, _reason, nocap = case
    assert _report(name, nocap).tiered.count >= sum(n for _spec, n in tiered)


@pytest.mark.parametrize("case", CASES, ids=[k[0] for k in CASES])
def test_standard_failure_reason_matches_hspace(case):
    name, _std, _tiered, reason, nocap = case
    assert _report(name, nocap).standard.fail_reason.upper() == reason


@pytest.mark.parametrize("case", CASES, ids=[k[0] for k in CASES])
def test_tiered_specs_match_hspace(case):
    name, _std, tiered, _reason, nocap = case
    got = [(s.hts(), n) for s, n in _report(name, nocap).tiered.specs]
    assert got == tiered
