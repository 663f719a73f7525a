"""instance_disks state=active (gnt-instance activate-disks) and the watcher's pass over every
instance, against the in-process nodes: the real agent, DRBD simulated as the kernel holds it
(Connected only when both sides are up and point at each other)."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import activate_disks
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import node as node_op

from .test_ops_instance import spec

CHANGING = ("drbd_attach", "drbd_connect", "disk_assemble", "drbd_disconnect", "disk_shutdown", "disk_remove",
            "drbd_primary", "drbd_set_mode", "instance_start", "instance_stop")


@pytest.fixture
def web1(cluster):
    """A running drbd instance with two disks, primary node1, secondary node2."""
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G", "2G"], primary_node="node1", secondary_node="node2"))
    return cluster


def keys(ctx, name="web1"):
    return [f"{name}/{d.uuid}" for d in ctx.store.load().instances[name].disks]


def changes_since(ctx, start):
    return [entry for entry in ctx.rpc.log[start:] if entry[1] in CHANGING]


def test_a_rebooted_secondary_is_brought_up_and_reconnects(web1, nodes):
    for key in keys(web1):
        nodes[1].drbd.down(key)           # node2 rebooted: its devices are not configured
        assert not nodes[0].drbd.status(key)["connected"]
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1", "state": "active"})
    assert result["changed"] is True
    assert result["actions"] == ["bring up disk 0 on node2 (not configured)",
                                 "bring up disk 1 on node2 (not configured)"]
    assert changes_since(web1, start) == [("node2", "drbd_attach", 0), ("node2", "drbd_attach", 1)]
    for key in keys(web1):
        assert nodes[0].drbd.status(key)["connected"]
        assert nodes[1].drbd[key]["role"] == "Secondary"
    assert "web1" in nodes[0].running
    job = [j for j in web1.journal.list() if j["opcode"] == "instance_activate_disks"][-1]
    assert job["status"] == "success" and [s["name"] for s in job["steps"]] == result["actions"]


def test_a_second_run_changes_nothing(web1, nodes):
    nodes[1].drbd.down(keys(web1)[0])
    activate_disks.activate(web1, {"name": "web1"})
    start = len(web1.rpc.log)
    again = activate_disks.activate(web1, {"name": "web1"})
    assert again["changed"] is False and again["actions"] == [] and changes_since(web1, start) == []
    assert "are active" in again["msg"]


def test_check_mode_shows_the_plan_and_touches_nothing(web1, nodes):
    key = keys(web1)[1]
    nodes[0].drbd.standalone(key)   # the primary dropped its connection; node2 still waits for it
    web1.check_mode = True
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1"})
    assert result["changed"] is True and result["actions"] == ["connect disk 1 on node1 (StandAlone)"]
    assert changes_since(web1, start) == [] and nodes[0].drbd[key]["cs"] == "StandAlone"
    assert not [j for j in web1.journal.list() if j["opcode"] == "instance_activate_disks"]
    web1.check_mode = False
    activate_disks.activate(web1, {"name": "web1"})
    assert nodes[0].drbd.status(key)["connected"]


def test_a_split_brain_is_refused_and_left_alone(web1, nodes):
    key = keys(web1)[0]
    nodes[0].drbd.standalone(key)
    nodes[1].drbd.standalone(key)
    start = len(web1.rpc.log)
    with pytest.raises(PrerequisiteError, match="StandAlone on both node2 and node1: a split brain .*"
                                                "split_brain_survivor"):
        activate_disks.activate(web1, {"name": "web1"})
    assert changes_since(web1, start) == []


def test_an_offline_secondary_is_skipped_with_a_warning(web1, nodes):
    for key in keys(web1):
        nodes[1].drbd.down(key)
    node_op.present(web1, {"name": "node2", "offline": True})
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1"})
    assert result["changed"] is False and changes_since(web1, start) == []
    assert any("node2 is offline" in w for w in web1.warnings)


@pytest.mark.parametrize("spec_,error,message", [
    ({"name": "Web_1"}, ValidationError, "Web_1"),
    ({"name": "web1", "state": "inactive"}, ValidationError, "state 'inactive' is not one of \\['active'\\]"),
    ({"name": "web9"}, PrerequisiteError, "instance web9 does not exist"),
])
def test_bad_input_is_refused_before_anything_is_touched(web1, spec_, error, message):
    start = len(web1.rpc.log)
    with pytest.raises(error, match=message):
        activate_disks.activate(web1, spec_)
    assert changes_since(web1, start) == []


def test_the_watcher_pass_activates_only_instances_that_should_run(web1, nodes):
    instance_op.ensure(web1, spec(name="db1", disk_template="drbd", disks=["1G"], state="stopped"))
    web1_keys, db1_key = keys(web1), keys(web1, "db1")[0]
    nodes[1].drbd.down(web1_keys[0])
    nodes[1].drbd.down(db1_key)
    nodes[0].drbd.down(db1_key)
    start = len(web1.rpc.log)
    result = activate_disks.activate_all(web1)
    assert result["changed"] is True and result["failures"] == []
    assert result["activated"] == [{"instance": "web1", "actions": ["bring up disk 0 on node2 (not configured)"]}]
    assert changes_since(web1, start) == [("node2", "drbd_attach", 0)]
    assert db1_key not in nodes[0].drbd and db1_key not in nodes[1].drbd   # stopped by the operator: untouched
    again = activate_disks.activate_all(web1)
    assert again["changed"] is False and again["activated"] == []


def test_the_watcher_pass_goes_on_after_one_instance_fails(web1, nodes):
    instance_op.ensure(web1, spec(name="db1", disk_template="drbd", disks=["1G"], primary_node="node3",
                                  secondary_node="node2"))
    for key in (keys(web1)[0], keys(web1, "db1")[0]):
        nodes[1].drbd.down(key)
    nodes[0].drbd.standalone(keys(web1)[1])
    nodes[1].drbd.standalone(keys(web1)[1])   # web1 has a split brain on disk 1: refused as a whole
    result = activate_disks.activate_all(web1)
    assert [f["instance"] for f in result["failures"]] == ["web1"] and "split brain" in result["failures"][0]["reason"]
    assert [a["instance"] for a in result["activated"]] == ["db1"]
    assert nodes[2].drbd.status(keys(web1, "db1")[0])["connected"]


def test_a_node_that_does_not_answer_yet_is_skipped_not_failed(web1, nodes):
    instance_op.ensure(web1, spec(name="db1", disk_template="drbd", disks=["1G"], primary_node="node2",
                                  secondary_node="node3"))
    web1_key, db1_key = keys(web1)[0], keys(web1, "db1")[0]
    nodes[2].drbd.down(db1_key)
    nodes[1].reachable = False          # node2 is still rebooting: web1's secondary, db1's primary
    result = activate_disks.activate_all(web1)
    assert result["failures"] == [] and result["activated"] == []
    assert any(s.startswith("web1: node2 does not answer") for s in result["left_out"])
    assert any(s.startswith("db1: cannot read the disks of db1") for s in result["left_out"])
    assert db1_key not in nodes[2].drbd and web1_key in nodes[0].drbd
    nodes[1].reachable = True
    nodes[1].drbd.down(web1_key)
    again = activate_disks.activate_all(web1)
    assert [a["instance"] for a in again["activated"]] == ["db1", "web1"]
