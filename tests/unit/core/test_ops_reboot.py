"""ops.reboot.plan_reboot_groups: the reboot_groups module's engine, on fake nodes."""

import pytest

from plugins.module_utils.herd.config import Instance
from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.ops.reboot import plan_reboot_groups


def add_instances(ctx, placements):
    config = ctx.store.load()
    for name, node in placements.items():
        config.instances[name] = Instance(name=name, uuid=name, primary_node=node, hypervisor="fake",
                                          disk_template="sharedfile", admin_state="up")
    ctx.store.save(config)


def test_every_node_is_planned_and_the_master_comes_last(cluster):
    result = plan_reboot_groups(cluster, {})
    assert sorted(n for g in result["groups"] for n in g) == ["node1", "node2", "node3"]
    assert result["groups"][-1][-1] == "node1"
    assert result["changed"] is False


def test_free_memory_of_the_nodes_is_part_of_the_plan(cluster):
    assert plan_reboot_groups(cluster, {})["memory_checked"] is True
    assert plan_reboot_groups(cluster, {"use_memory": False})["memory_checked"] is False


def test_running_shared_instances_keep_a_node_to_go_to(cluster):
    add_instances(cluster, {"a": "node1", "b": "node2", "c": "node3"})
    result = plan_reboot_groups(cluster, {})
    assert all(len(g) < 3 for g in result["groups"])


def test_an_unreachable_node_is_warned_about_and_still_planned(cluster, nodes):
    nodes[2].reachable = False
    result = plan_reboot_groups(cluster, {})
    assert result["unreachable"] == ["node3"]
    assert any("node3" in w for w in cluster.warnings)
    assert any("node3" in g for g in result["groups"])


def test_a_group_size_below_one_is_refused(cluster):
    with pytest.raises(ValidationError, match="max_group_size"):
        plan_reboot_groups(cluster, {"max_group_size": 0})
