"""The rebalance / capacity_info module logic (modsupport), without Ansible."""

import os

import pytest

from plugins.module_utils.herd.allocator.modsupport import (
    PlanError, capacity_report, rebalance_plan)

from .golden_hbal import HTOOLS

EVAC = os.path.join(HTOOLS, "hbal-evac.data")


def test_plan_lists_each_move_with_the_score_after_it():
    plan = rebalance_plan({"cluster_file": EVAC, "legacy_n1": True})
    assert [m["instance"] for m in plan["moves"]] == ["inst-p2", "inst-p1", "inst-32a", "inst-s1"]
    assert plan["moves"][-1]["score"] == plan["final_score"]


def test_plan_job_sets_name_the_instances():
    plan = rebalance_plan({"cluster_file": EVAC})
    assert [i for js in plan["jobsets"] for i in js] == [m["instance"] for m in plan["moves"]]


def test_plan_honours_max_moves():
    plan = rebalance_plan({"cluster_file": EVAC, "max_moves": 1})
    assert len(plan["moves"]) == 1


def test_missing_cluster_file_is_reported_with_its_path():
    with pytest.raises(PlanError, match="/nonexistent.data"):
        rebalance_plan({"cluster_file": "/nonexistent.data"})


def test_without_cluster_file_or_a_model_the_error_says_what_to_do():
    with pytest.raises(PlanError, match="run on the master .* or pass cluster_file"):
        rebalance_plan({})


def test_a_model_given_by_the_caller_is_planned_on():
    from plugins.module_utils.herd.allocator.text import load_file

    assert len(rebalance_plan({}, load_file(EVAC))["moves"]) == 4


def test_unknown_excluded_instance_is_refused():
    with pytest.raises(PlanError, match="no-such-instance"):
        rebalance_plan({"cluster_file": EVAC, "exclude_instances": ["no-such-instance"]})


def test_capacity_report_has_both_modes():
    rep = capacity_report({"cluster_file": os.path.join(HTOOLS, "hspace-tiered.data"),
                           "no_capacity_checks": True, "legacy_n1": True})
    assert (rep["standard"]["count"], rep["tiered"]["count"]) == (6, 6)
