"""The checker that compares module results with RETURN documentation (tests/integration/return_docs.py),
on the real documentation of herd.cluster.node_evacuate and herd.cluster.node_info."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import return_docs  # noqa: E402


def test_an_undocumented_top_level_key_is_reported():
    problems = return_docs.mismatches("node_evacuate", {"planned": [], "moved": [], "failures": [], "msg": "m",
                                                        "failed": False, "journal": 7})
    assert problems == ["node_evacuate returns 'journal', which RETURN does not document"]


def test_an_undocumented_key_inside_a_documented_list_of_dicts_is_reported():
    move = {"instance": "web1", "from": "node2", "to": "node3", "how": "migrate", "seconds": 2}
    problems = return_docs.mismatches("node_evacuate", {"planned": [move], "moved": [], "failures": [], "msg": "m"})
    assert problems == ["node_evacuate returns 'planned.seconds', which RETURN does not document"]


def test_a_key_documented_as_always_returned_must_be_there_unless_the_task_failed():
    assert return_docs.mismatches("node_info", {"nodes": []}) == [
        "node_info documents 'table' as returned always, but did not return it"]
    assert return_docs.mismatches("node_info", {"nodes": [], "failed": True, "msg": "no master"}) == []


def test_ansible_own_keys_need_no_documentation():
    assert return_docs.mismatches("node_info", {"nodes": [], "table": [], "changed": False, "invocation": {},
                                                "_ansible_no_log": False}) == []
