import pytest

from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import rebalance


def spec(name, **extra):
    base = {"name": name, "state": "running", "disk_template": "sharedfile", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "fake", "primary_node": "node1"}
    base.update(extra)
    return base


@pytest.fixture
def unbalanced(cluster):
    for i in range(6):
        instance_op.ensure(cluster, spec(f"vm{i}"))
    return cluster


def test_plan_in_check_mode_moves_nothing(unbalanced):
    unbalanced.check_mode = True
    result = rebalance.execute(unbalanced, {"execute": True})
    assert result["moves"] and result["final_score"] < result["initial_score"]
    assert {i.primary_node for i in unbalanced.store.load().instances.values()} == {"node1"}


def test_execution_reaches_the_predicted_score(unbalanced, nodes):
    result = rebalance.execute(unbalanced, {"execute": True})
    assert result["failures"] == [] and result["changed"]
    assert len(result["executed"]) == len(result["moves"])
    assert result["achieved_score"] == pytest.approx(result["final_score"], abs=1e-6)
    primaries = {i.primary_node for i in unbalanced.store.load().instances.values()}
    assert len(primaries) == 3
    running = {name for n in nodes[:3] for name in n.running}
    assert running == {f"vm{i}" for i in range(6)}


def test_a_balanced_cluster_is_left_alone(unbalanced):
    rebalance.execute(unbalanced, {"execute": True})
    again = rebalance.execute(unbalanced, {"execute": True})
    assert again["changed"] is False and again["moves"] == []


def test_a_failed_move_stops_at_its_set(unbalanced, nodes):
    for node in nodes[1:3]:
        node.fail["migration_accept"] = "qemu: address already in use"
    result = rebalance.execute(unbalanced, {"execute": True})
    assert result["stopped_at_set"] == 0 and result["failures"]
    assert "address already in use" in result["failures"][0]["reason"]
