"""The rebalance / capacity_info module logic (allocator.plans), without Ansible."""

import os

import pytest

from plugins.module_utils.herd.allocator.plans import (
    PlanError, capacity_report, rebalance_plan)

from .htools_live import HTOOLS, data_file, hspace_answer

EVAC = os.path.join(HTOOLS, "hbal-evac.data")


@pytest.fixture(autouse=True)
def _ganeti_data():
    data_file("hbal-evac.data")


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


def test_without_cluster_file_and_off_the_master_the_error_says_what_to_do():
    from plugins.module_utils.herd.errors import PrerequisiteError

    def not_master(params):
        raise PrerequisiteError("no cluster is initialised on this node")
    with pytest.raises(PlanError, match="run on the master or pass cluster_file"):
        rebalance_plan({}, live=not_master)


def test_without_cluster_file_nor_live_loader_the_error_names_cluster_file():
    with pytest.raises(PlanError, match="pass cluster_file"):
        rebalance_plan({})


def test_without_cluster_file_the_model_comes_from_the_callers_loader():
    from plugins.module_utils.herd.allocator.text import load_file

    assert len(rebalance_plan({}, live=lambda params: load_file(EVAC))["moves"]) == 4


def test_plan_moves_carry_their_steps_as_data():
    plan = rebalance_plan({"cluster_file": EVAC, "legacy_n1": True})
    frf = next(m for m in plan["moves"] if m["kind"] == "frf")
    assert frf["steps"] == [{"op": "migrate", "node": None},
                            {"op": "replace_secondary", "node": frf["target"]},
                            {"op": "migrate", "node": None}]
    assert all(len(m["steps"]) == len(m["commands"]) for m in plan["moves"])


def test_unknown_excluded_instance_is_refused():
    with pytest.raises(PlanError, match="no-such-instance"):
        rebalance_plan({"cluster_file": EVAC, "exclude_instances": ["no-such-instance"]})


def test_capacity_report_has_both_modes():
    path = data_file("hspace-tiered.data")
    rep = capacity_report({"cluster_file": path, "no_capacity_checks": True, "legacy_n1": True})
    theirs = hspace_answer(path, "--no-capacity-checks")
    assert (rep["standard"]["count"], rep["tiered"]["count"]) == \
        (theirs.standard, sum(n for _spec, n in theirs.tiered))
