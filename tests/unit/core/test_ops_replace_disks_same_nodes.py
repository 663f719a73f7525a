"""instance_replace_disks on the instance's own nodes (Ganeti's replace-disks -p / -s / -a):
new volumes on one node, synced in full from the other, the old ones removed only after."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import replace_disks

from .test_ops_instance import spec

VERBS = ("drbd_replace_local", "drbd_remove_replaced", "drbd_create", "disk_remove", "drbd_disconnect")


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


def lv_names(node):
    return sorted(lv for (_vg, lv) in node.volumes.lvs)


def test_the_secondarys_disks_are_rebuilt_and_the_old_volumes_go_after_the_resync(web1, nodes):
    before = lv_names(nodes[1])
    start = len(web1.rpc.log)
    result = replace_disks.replace(web1, {"name": "web1", "mode": "replace_on_secondary"})
    assert result["changed"] and result["replaced_on"] == "node2" and result["synced"] is True, result
    assert calls_since(web1, start) == [
        ("node2", "drbd_replace_local", 0), ("node2", "drbd_replace_local", 1),
        ("node2", "drbd_remove_replaced", 0), ("node2", "drbd_remove_replaced", 1)]
    assert lv_names(nodes[1]) == before  # same names, the set-aside ones removed
    job = [j for j in web1.journal.list() if j["opcode"] == "instance_replace_disks"][-1]
    steps = [s["name"] for s in job["steps"]]
    assert steps.index("wait for the resync") < steps.index("remove the old volumes")
    for key in keys(web1):
        assert nodes[0].drbd.status(key)["peer_uptodate"] and nodes[1].drbd.status(key)["disk_uptodate"]
    inst = web1.store.load().instances["web1"]
    assert (inst.primary_node, inst.secondary_node) == ("node1", "node2")


def test_the_primarys_disks_are_rebuilt_from_the_secondary(web1, nodes):
    result = replace_disks.replace(web1, {"name": "web1", "mode": "replace_on_primary"})
    assert result["replaced_on"] == "node1" and result["synced"] is True
    for key in keys(web1):
        assert nodes[0].drbd.status(key)["disk_uptodate"]


def test_auto_picks_the_node_whose_disk_failed_and_does_nothing_when_none_did(web1, nodes):
    start = len(web1.rpc.log)
    result = replace_disks.replace(web1, {"name": "web1", "mode": "replace_auto"})
    assert result["changed"] is False and result["replaced_on"] is None
    assert calls_since(web1, start) == []
    nodes[1].drbd[keys(web1)[1]]["disk"] = "Diskless"  # an I/O error detached it
    result = replace_disks.replace(web1, {"name": "web1", "mode": "replace_auto"})
    assert result["changed"] and result["replaced_on"] == "node2"


def test_nothing_is_rebuilt_while_the_other_node_is_not_uptodate(web1, nodes):
    key = keys(web1)[0]
    nodes[1].drbd[key]["disk"] = "Inconsistent"
    start = len(web1.rpc.log)
    with pytest.raises(PrerequisiteError, match="node2 is not connected and UpToDate as seen from node1"):
        replace_disks.replace(web1, {"name": "web1", "mode": "replace_on_primary"})
    assert calls_since(web1, start) == []


def test_check_mode_only_plans(web1, nodes):
    web1.check_mode = True
    before = lv_names(nodes[1])
    start = len(web1.rpc.log)
    result = replace_disks.replace(web1, {"name": "web1", "mode": "replace_on_secondary"})
    assert result["changed"] and "set the volumes on node2 aside" in result["actions"][0]
    assert calls_since(web1, start) == [] and lv_names(nodes[1]) == before


def test_remote_node_and_split_brain_survivor_do_not_go_with_a_same_node_mode(web1):
    with pytest.raises(ValidationError, match="remote_node node3 is only for replace_new_secondary"):
        replace_disks.replace(web1, {"name": "web1", "mode": "replace_on_secondary", "remote_node": "node3"})
    with pytest.raises(ValidationError, match="split_brain_survivor and mode exclude each other"):
        replace_disks.replace(web1, {"name": "web1", "mode": "replace_auto", "split_brain_survivor": "node1"})
    with pytest.raises(ValidationError, match="mode 'sideways' must be one of"):
        replace_disks.replace(web1, {"name": "web1", "mode": "sideways"})
