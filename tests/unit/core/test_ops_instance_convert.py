"""Disk template conversion (gnt-instance modify -t drbd|plain) with the real agent in process:
plain to drbd keeps the primary's LV as DRBD's data, drbd to plain keeps it under its plain
name, a running instance is refused, check mode touches nothing, a failure half-way puts every
volume back."""

import pytest

from plugins.module_utils.herd.errors import HerdError, PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op

from .test_ops_instance import spec


def lvs(node):
    return sorted(lv for (_vg, lv) in node.volumes.lvs)


def plain(**extra):
    return spec(**{"disk_template": "plain", "state": "stopped", **extra})


def test_plain_to_drbd_renames_the_lv_under_drbd_and_syncs_to_the_named_secondary(cluster, nodes):
    instance_op.ensure(cluster, plain())
    uuid = cluster.store.load().instances["web1"].disks[0].uuid
    nodes[0].volumes.lvs[("gnt", f"{uuid}.disk0")]["data"] = "the instance's bytes"
    result = instance_op.ensure(cluster, plain(disk_template="drbd", secondary_node="node3"))
    assert result["changed"] is True and "sync every disk from node1 to node3" in result["actions"]
    inst = cluster.store.load().instances["web1"]
    assert (inst.disk_template, inst.primary_node, inst.secondary_node) == ("drbd", "node1", "node3")
    assert set(inst.disks[0].logical_id["minors"]) == {"node1", "node3"} and inst.disks[0].logical_id["port"]
    assert lvs(nodes[0]) == [f"{uuid}.disk0_data", f"{uuid}.disk0_meta"]
    assert nodes[0].volumes.lvs[("gnt", f"{uuid}.disk0_data")]["data"] == "the instance's bytes"
    assert lvs(nodes[2]) == [f"{uuid}.disk0_data", f"{uuid}.disk0_meta"] and lvs(nodes[1]) == []
    key = f"web1/{uuid}"
    assert nodes[0].drbd.status(key)["connected"] and nodes[2].drbd.status(key)["disk_uptodate"]
    again = instance_op.ensure(cluster, plain(disk_template="drbd", secondary_node="node3"))
    assert again["changed"] is False


def test_plain_to_drbd_without_a_secondary_asks_the_allocator(cluster, nodes):
    instance_op.ensure(cluster, plain())
    instance_op.ensure(cluster, plain(disk_template="drbd"))
    assert cluster.store.load().instances["web1"].secondary_node == "node2"


def test_check_mode_plans_the_conversion_and_touches_nothing(cluster, nodes):
    instance_op.ensure(cluster, plain())
    before = {n.name: lvs(n) for n in nodes}
    cluster.check_mode = True
    result = instance_op.ensure(cluster, plain(disk_template="drbd", secondary_node="node2"))
    assert result["changed"] is True and result["msg"].startswith("instance web1 would be converted to drbd")
    assert result["diff"]["before"]["disk_template"] == "plain"
    assert result["diff"]["after"]["disk_template"] == "drbd" and result["diff"]["after"]["secondary_node"] == "node2"
    assert {n.name: lvs(n) for n in nodes} == before and cluster.store.load().instances["web1"].disk_template == "plain"


def test_a_running_instance_is_refused(cluster, nodes):
    instance_op.ensure(cluster, spec(disk_template="plain"))
    with pytest.raises(PrerequisiteError, match="web1 is running on node1: stop it before converting"):
        instance_op.ensure(cluster, spec(disk_template="drbd", state="present"))
    assert cluster.store.load().instances["web1"].disk_template == "plain"


def test_declaring_running_with_the_conversion_is_refused(cluster):
    instance_op.ensure(cluster, plain())
    with pytest.raises(ValidationError, match="needs the instance stopped; declare state: stopped, not running"):
        instance_op.ensure(cluster, spec(disk_template="drbd", state="running"))


def test_an_unsupported_conversion_names_the_supported_ones(cluster):
    instance_op.ensure(cluster, spec(state="stopped"))
    with pytest.raises(PrerequisiteError, match="converting file to plain is not supported; supported: plain to "
                                                "drbd, drbd to plain"):
        instance_op.ensure(cluster, spec(state="stopped", disk_template="plain"))


def test_a_failed_sync_puts_every_volume_back(cluster, nodes, monkeypatch):
    from plugins.module_utils.herd.ops import instance_convert

    instance_op.ensure(cluster, plain(disks=["1G", "1280M"]))
    inst = cluster.store.load().instances["web1"]
    before = {n.name: lvs(n) for n in nodes}

    def broken(*_args, **_kw):
        raise HerdError("the peers never connected")
    monkeypatch.setattr(instance_convert, "_wait_sync", broken)
    with pytest.raises(HerdError, match="never connected"):
        instance_op.ensure(cluster, plain(disks=["1G", "1280M"], disk_template="drbd", secondary_node="node2"))
    assert {n.name: lvs(n) for n in nodes} == before
    assert all(n.drbd.state == {} for n in nodes)
    assert cluster.store.load().instances["web1"].disk_template == "plain"
    assert [d.uuid for d in cluster.store.load().instances["web1"].disks] == [d.uuid for d in inst.disks]


def test_drbd_to_plain_keeps_the_primarys_data_and_removes_the_rest(cluster, nodes):
    instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped"))
    inst = cluster.store.load().instances["web1"]
    uuid = inst.disks[0].uuid
    nodes[0].volumes.lvs[("gnt", f"{uuid}.disk0_data")]["data"] = "kept"
    result = instance_op.ensure(cluster, spec(disk_template="plain", state="stopped"))
    assert result["changed"] is True
    stored = cluster.store.load().instances["web1"]
    assert (stored.disk_template, stored.secondary_node) == ("plain", None)
    assert lvs(nodes[0]) == [f"{uuid}.disk0"] and nodes[0].volumes.lvs[("gnt", f"{uuid}.disk0")]["data"] == "kept"
    assert lvs(nodes[1]) == [] and all(n.drbd.state == {} for n in nodes)
    assert instance_op.ensure(cluster, spec(disk_template="plain", state="stopped"))["changed"] is False


def test_drbd_to_plain_refuses_a_secondary_node(cluster):
    instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped"))
    with pytest.raises(ValidationError, match="a plain instance has no secondary"):
        instance_op.ensure(cluster, spec(disk_template="plain", state="stopped", secondary_node="node2"))


def kill_during_sync(cluster, monkeypatch, declared):
    """A conversion killed while it waits for the sync: no rollback, its journal entry left
    "running" under a pid that no longer exists."""
    from plugins.module_utils.herd.jobs import Job
    from plugins.module_utils.herd.ops import instance_convert

    def killed(*_args, **_kw):
        raise RuntimeError("killed")
    monkeypatch.setattr(Job, "rollback", lambda self: [])
    monkeypatch.setattr(instance_convert, "_wait_sync", killed)
    with pytest.raises(RuntimeError, match="killed"):
        instance_op.ensure(cluster, declared)
    monkeypatch.undo()
    job = cluster.journal.list(opcode="instance_convert")[-1]
    job.update(status="running", pid=2 ** 22 + 12345)
    cluster.journal.write(job)


def test_a_conversion_killed_before_its_commit_is_put_back_by_the_next_run(cluster, nodes, monkeypatch):
    instance_op.ensure(cluster, plain())
    before = {n.name: lvs(n) for n in nodes}
    kill_during_sync(cluster, monkeypatch, plain(disk_template="drbd", secondary_node="node2"))
    assert lvs(nodes[1]) != [] and cluster.store.load().instances["web1"].disk_template == "plain"
    result = instance_op.ensure(cluster, plain())
    assert result["changed"] is False
    assert {n.name: lvs(n) for n in nodes} == before and all(n.drbd.state == {} for n in nodes)
    assert any("is plain again" in w for w in cluster.warnings) and cluster.journal.interrupted() == []
