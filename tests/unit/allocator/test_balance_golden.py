"""herd's balancer against hbal run live on Ganeti's htools data (Debian's htools 3.0.2)."""

import functools
import re

import pytest

from plugins.module_utils.herd.allocator.balance import BalanceOptions, balance
from plugins.module_utils.herd.allocator.text import load_file

from .htools_live import hbal_cases, params, require

CASES = [k for k in hbal_cases() if k.rc == 0 and k.final is not None and k.data]


@functools.cache
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
    require("hbal")
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", params(CASES, [k.name for k in CASES], "hbal"))
def test_final_score_is_no_worse_than_hbal(case):
    res = _run(case)
    assert res.final_score <= case.final + 1e-6


@pytest.mark.parametrize("case", params(CASES, [k.name for k in CASES], "hbal"))
def test_initial_score_equals_hbal(case):
    res = _run(case)
    assert res.initial_score == pytest.approx(case.initial, abs=1e-6)


def test_evac_case_reproduces_hbal_moves():
    require("hbal")
    case = next(k for k in CASES if k.name == "hbal-evac__evacmode")
    res = _run(case)
    theirs = re.findall(r"^\s+\d+\. (\S+)\s+\S+:\S+ => \S+:\S+\s+[0-9.]+ a=(.+?)\s*$",
                        case.stdout, re.M)
    assert theirs, case.stdout
    assert [(m.instance, m.move) for m in res.moves] == theirs
