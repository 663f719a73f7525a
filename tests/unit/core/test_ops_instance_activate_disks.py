"""instance_activate_disks (Ganeti's activate-disks) against the in-process fake nodes: after a
node reboot the secondary's DRBD device is down and only this brings it back."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError
from plugins.module_utils.herd.ops import activate_disks
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import replace_disks

from .test_ops_instance import spec

VERBS = ("drbd_attach", "disk_assemble")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(replace_disks, "POLL_INTERVAL", 0)


@pytest.fixture
def web1(cluster):
    """A running drbd instance with two disks, primary node1, secondary node2."""
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G", "2G"], primary_node="node1", secondary_node="node2"))
    return cluster


def keys(ctx):
    return [f"web1/{d.uuid}" for d in ctx.store.load().instances["web1"].disks]


def calls_since(ctx, start):
    return [entry for entry in ctx.rpc.log[start:] if entry[1] in VERBS]


def test_a_rebooted_secondary_comes_back_secondary_first_then_the_primary(web1, nodes):
    for key in keys(web1):
        nodes[1].drbd.down(key)  # node2 rebooted: its devices are not configured
        assert not nodes[0].drbd.status(key)["connected"]
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1", "promote": True, "wait_for_sync": True})
    assert result["changed"] and result["synced"] is True, result
    assert calls_since(web1, start) == [
        ("node2", "drbd_attach", 0), ("node2", "drbd_attach", 1),
        ("node1", "drbd_attach", 0), ("node1", "drbd_attach", 1),
        ("node1", "disk_assemble", 0), ("node1", "disk_assemble", 1)]
    for key in keys(web1):
        assert nodes[0].drbd.status(key)["connected"] and nodes[1].drbd.status(key)["connected"]
    assert [d["node"] for d in result["disks"]] == ["node1", "node1"]
    assert all(d["path"].startswith("/dev/drbd") for d in result["disks"])


def test_disks_that_are_up_and_in_sync_are_left_alone(web1, nodes):
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1", "promote": True})
    assert result["changed"] is False and result["synced"] is True
    assert calls_since(web1, start) == []


def test_check_mode_only_plans(web1, nodes):
    for key in keys(web1):
        nodes[1].drbd.down(key)
    web1.check_mode = True
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1", "promote": True})
    assert result["changed"] and "bring up disk 0 on node2 (not configured)" in result["actions"]
    assert result["actions"][-1] == "activate disk 1 on node1 (WFConnection)" and result["disks"] == []
    assert calls_since(web1, start) == []
    assert all(key not in nodes[1].drbd for key in keys(web1))


def test_an_unknown_instance_is_refused(web1):
    with pytest.raises(PrerequisiteError, match="instance nosuch.example.org does not exist"):
        activate_disks.activate(web1, {"name": "nosuch.example.org", "promote": True})


def test_a_start_brings_the_secondary_up_too(web1, nodes):
    """After both nodes rebooted the devices are down on both; starting the instance assembles
    the primary's, and (as Ganeti's start does) attaches the secondary's too."""
    instance_op.ensure(web1, spec(disk_template="drbd", disks=["1G", "2G"], state="stopped"))
    for key in keys(web1):
        nodes[0].drbd.down(key)
        nodes[1].drbd.down(key)
    instance_op.ensure(web1, spec(disk_template="drbd", disks=["1G", "2G"], state="running"))
    for key in keys(web1):
        assert nodes[1].drbd.status(key) is not None, "the secondary's device stayed down"


def test_a_start_goes_on_with_a_warning_when_the_secondary_does_not_answer(web1, nodes):
    instance_op.ensure(web1, spec(disk_template="drbd", disks=["1G", "2G"], state="stopped"))
    nodes[1].reachable = False
    instance_op.ensure(web1, spec(disk_template="drbd", disks=["1G", "2G"], state="running"))
    assert any("could not be activated on its secondary node2" in w for w in web1.warnings), web1.warnings
    assert "web1" in nodes[0].running


def test_only_the_operator_path_makes_the_primary_primary(web1, nodes):
    """The watcher's pass (no promote) leaves the primary role to the instance start; the
    operator's activate-disks promotes a primary left Secondary, and only that disk."""
    key = keys(web1)[1]
    nodes[0].drbd.set_role(key, "Secondary")
    start = len(web1.rpc.log)
    watcher = activate_disks.activate(web1, {"name": "web1", "promote": False})
    assert watcher["changed"] is False and calls_since(web1, start) == []
    result = activate_disks.activate(web1, {"name": "web1", "promote": True})
    assert result["changed"] and result["actions"][-1] == "activate disk 1 on node1 (Connected) and make it Primary"
    assert calls_since(web1, start) == [("node2", "drbd_attach", 1), ("node1", "drbd_attach", 1),
                                        ("node1", "disk_assemble", 1)]
    assert nodes[0].drbd[key]["role"] == "Primary"
    assert [d["path"] for d in result["disks"]] == [f"/dev/drbd{nodes[0].drbd[k]['minor']}" for k in keys(web1)]


def test_an_offline_secondary_is_left_out_and_not_waited_for(web1, nodes):
    from plugins.module_utils.herd.ops import node as node_op
    for key in keys(web1):
        nodes[1].drbd.down(key)
        nodes[0].drbd.set_role(key, "Secondary")
    node_op.present(web1, {"name": "node2", "offline": True})
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1", "promote": True, "wait_for_sync": True})
    assert result["changed"] and result["synced"] is None and "wait for the resync" not in result["actions"]
    assert [c for c in calls_since(web1, start) if c[0] == "node2"] == []
    assert any("node2 is offline" in w for w in web1.warnings) and result["left_out"]
    assert all(nodes[0].drbd[key]["role"] == "Primary" for key in keys(web1))


def test_a_split_brain_is_refused_by_the_operator_path_too(web1, nodes):
    key = keys(web1)[0]
    nodes[0].drbd.standalone(key)
    nodes[1].drbd.standalone(key)
    start = len(web1.rpc.log)
    with pytest.raises(PrerequisiteError, match="a split brain .*split_brain_survivor"):
        activate_disks.activate(web1, {"name": "web1", "promote": True})
    assert calls_since(web1, start) == []


def test_a_resync_already_running_is_waited_for_and_is_no_change(web1, nodes):
    key = keys(web1)[0]
    nodes[1].drbd[key].update(disk="Inconsistent", polls=0)   # the secondary resyncs from the primary
    start = len(web1.rpc.log)
    result = activate_disks.activate(web1, {"name": "web1", "promote": True, "wait_for_sync": True})
    assert result["changed"] is False and result["synced"] is True and result["actions"] == ["wait for the resync"]
    assert calls_since(web1, start) == [] and nodes[1].drbd[key]["disk"] == "UpToDate"
    job = [j for j in web1.journal.list() if j["opcode"] == "instance_activate_disks"][-1]
    assert [s["name"] for s in job["steps"]] == ["wait for the resync"]
    again = activate_disks.activate(web1, {"name": "web1", "promote": True, "wait_for_sync": True})
    assert again["changed"] is False and again["actions"] == [] and again["synced"] is True
