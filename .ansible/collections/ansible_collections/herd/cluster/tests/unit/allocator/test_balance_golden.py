"""herd's balancer against hbal's recorded runs (ganeti-data/golden, htools 3.0.2)."""

import functools

import pytest

from plugins.module_utils.herd.allocator.balance import BalanceOptions, balance
from plugins.module_utils.herd.allocator.text import load_file

from .golden_hbal import hbal_cases

CASES = [k for k in hbal_cases() if k.rc == 0 and k.final is not None and k.data]


@functools.lru_cache(maxsize=None)
def _run_named(name):
    return _run_case(next(k for k in CASES if k.name == name))


def _run(case):
    return _run_named(case.name)


def _run_case(case):
    c = load_file(case.data, legacy_n1=True, ignore_dynu=case.ignore_dynu,
                  offline_nodes=case.offline, exclusion_tags=case.exclusion_tags)
    opts = BalanceOptions(group=case.group, ignore_soft_errors=case.ignore_soft,
                          evac_mode=case.evac_mode, restricted_migration=case.restricted)
    return balance(c, opts)[0]


def test_golden_hbal_cases_are_found():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[k.name for k in CASES])
def test_final_score_is_no_worse_than_hbal(case):
    res = _run(case)
    assert res.final_score <= case.final + 1e-6


@pytest.mark.parametrize("case", CASES, ids=[k.name for k in CASES])
def test_initial_score_equals_hbal(case):
    res = _run(case)
    assert res.initial_score == pytest.approx(case.initial, abs=1e-6)


def test_evac_case_reproduces_hbal_moves():
    case = next(k for k in CASES if k.name == "hbal-evac__evacmode")
    res = _run(case)
    assert [(m.instance, m.move) for m in res.moves] == [
        ("inst-p2", "f r:node-1 f"), ("inst-p1", "f r:node-3 f"), ("inst-s1", "r:node-1")]
