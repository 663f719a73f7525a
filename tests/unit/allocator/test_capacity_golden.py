"""herd's capacity reports against hspace run live on Ganeti's htools data."""

import functools

import pytest

from plugins.module_utils.herd.allocator.capacity import capacity
from plugins.module_utils.herd.allocator.text import load_file

from .htools_live import HspaceCase, hspace_cases, params, require

CASES = hspace_cases()
PARAMS = params(CASES, [k.name for k in CASES], "hspace")


@functools.cache
def _report(data: str, nocap: bool):
    return capacity(load_file(data, legacy_n1=True), capacity_checks=not nocap)


def _ours(case: HspaceCase):
    return _report(case.data, "--no-capacity-checks" in case.args)


def test_golden_hspace_cases_are_found():
    require("hspace")
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", PARAMS)
def test_standard_capacity_is_at_least_hspace(case):
    assert _ours(case).standard.count >= case.standard


@pytest.mark.parametrize("case", PARAMS)
def test_tiered_capacity_is_at_least_hspace(case):
    assert _ours(case).tiered.count >= sum(n for _spec, n in case.tiered)


@pytest.mark.parametrize("case", PARAMS)
def test_standard_failure_reason_matches_hspace(case):
    assert _ours(case).standard.fail_reason.upper() == case.fail_reason


@pytest.mark.parametrize("case", PARAMS)
def test_tiered_specs_match_hspace(case):
    got = [(s.hts(), n) for s, n in _ours(case).tiered.specs]
    assert got == case.tiered
