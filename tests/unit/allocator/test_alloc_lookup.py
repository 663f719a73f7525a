"""The herd.cluster.placement lookup plugin."""

from __future__ import annotations


import pytest
import yaml

from plugins.lookup import placement

from .htools_live import data_file
from .test_alloc_rules_model import FACTS, herd_config


def opts(**kw):
    base = {"config": None, "facts": {}, "text_file": None, "name": "new-instance",
            "memory": 1024, "vcpus": 1, "disks": [1024], "disk_template": "drbd", "tags": [],
            "spindle_use": 1, "group": None, "nodes": None, "relocate_from": None,
            "instances": None, "mode": "all", "ignore_soft_errors": False,
            "capacity_checks": True}
    base.update(kw)
    return base


def test_documentation_is_valid_yaml_with_every_option():
    doc = yaml.safe_load(placement.DOCUMENTATION)
    assert doc["name"] == "placement"
    assert set(doc["options"]) >= {"config", "facts", "text_file", "memory", "disks",
                                   "disk_template"}
    yaml.safe_load(placement.EXAMPLES)
    yaml.safe_load(placement.RETURN)


def test_allocate_from_herd_config_returns_nodes_and_reasons():
    out = placement.answer("allocate", opts(config=herd_config(), facts=FACTS, memory=4096,
                                            disks=[20480]))
    assert out["success"] and len(out["nodes"]) == 2
    assert len(out["reasons"]) == 1  # the third node, with why it was not chosen


def test_impossible_allocate_lists_a_reason_per_node():
    out = placement.answer("allocate", opts(config=herd_config(), facts=FACTS, memory=65536,
                                            disk_template="plain"))
    assert out["success"] is False
    assert sorted(r.split(":")[0] for r in out["reasons"]) == ["node1", "node2", "node3"]


def test_score_from_a_text_file_has_twenty_terms():
    out = placement.answer("score", opts(text_file=data_file("n1-failure.data")))
    assert len(out["terms"]) == 20 and out["score"] > 0


def test_relocate_secondary_from_text_file():
    out = placement.answer("relocate", opts(text_file=data_file("partly-used.data"),
                                            name="inst12", relocate_from=["node-02"]))
    assert out["success"] and out["nodes"][0] not in ("node-01", "node-02")


def test_relocate_from_the_wrong_node_explains_the_mismatch():
    out = placement.answer("relocate", opts(text_file=data_file("partly-used.data"),
                                            name="inst12", relocate_from=["node-01"]))
    assert out["success"] is False and "excluded nodes not equal" in out["info"]


def test_unknown_question_is_an_ansible_error():
    from ansible.errors import AnsibleLookupError
    with pytest.raises(AnsibleLookupError, match="unknown question"):
        placement.answer("teleport", opts(text_file=data_file("n1-failure.data")))
