"""Disk add and remove on an existing instance (gnt-instance modify --disk add|remove), for every
template, with the real agent in process: the declared list adds at the end, removes the trailing
disks only with remove_disks: true, and a failure half-way leaves no volume behind."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError
from plugins.module_utils.herd.jobs import Job
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import nodecalls

from .test_ops_instance import spec


def disks_of(cluster, name="web1"):
    return cluster.store.load().instances[name].disks


def held(node, name="web1"):
    return sorted(key.split("/")[1] for key in node.disks if key.startswith(f"{name}/"))


@pytest.mark.parametrize("template", ["file", "sharedfile", "plain"])
def test_a_longer_disk_list_adds_a_disk_and_a_second_run_changes_nothing(cluster, nodes, template):
    instance_op.ensure(cluster, spec(disk_template=template, state="stopped"))
    result = instance_op.ensure(cluster, spec(disk_template=template, state="stopped", disks=["1G", "1536M"]))
    assert result["changed"] is True and "add disk 1 of 1536 MiB" in result["actions"]
    disks = disks_of(cluster)
    assert [d.size for d in disks] == [1024, 1536]
    assert held(nodes[0]) == sorted(d.uuid for d in disks)
    serial = cluster.store.load().serial_no
    again = instance_op.ensure(cluster, spec(disk_template=template, state="stopped", disks=["1G", "1536M"]))
    assert again["changed"] is False and cluster.store.load().serial_no == serial


def test_a_shorter_list_without_remove_disks_is_refused_and_deletes_nothing(cluster, nodes):
    instance_op.ensure(cluster, spec(state="stopped", disks=["1G", {"size": "1536M", "name": "scratch"}]))
    before = dict(nodes[0].disks)
    with pytest.raises(PrerequisiteError, match=r"would delete disk 1 \(1536 MiB, scratch\) with their data. "
                                                r"Set remove_disks: true"):
        instance_op.ensure(cluster, spec(state="stopped", disks=["1G"]))
    assert nodes[0].disks == before and len(disks_of(cluster)) == 2


def test_remove_disks_removes_the_trailing_disks_and_their_volumes(cluster, nodes):
    instance_op.ensure(cluster, spec(state="stopped", disks=["1G", "1536M", "1280M"]))
    first = disks_of(cluster)[0]
    result = instance_op.ensure(cluster, spec(state="stopped", disks=["1G"], remove_disks=True))
    assert result["actions"] == ["remove disk 1 (1536 MiB) with its data", "remove disk 2 (1280 MiB) with its data"]
    assert [d.uuid for d in disks_of(cluster)] == [first.uuid]
    assert held(nodes[0]) == [first.uuid]
    assert instance_op.ensure(cluster, spec(state="stopped", disks=["1G"], remove_disks=True))["changed"] is False


def test_the_last_disk_is_never_removed_declaratively(cluster):
    instance_op.ensure(cluster, spec(state="stopped"))
    with pytest.raises(PrerequisiteError, match="keeps at least one disk"):
        instance_op.ensure(cluster, spec(state="stopped", disks=[], remove_disks=True))


def test_a_diskless_instance_gets_no_disks(cluster):
    instance_op.ensure(cluster, spec(disk_template="diskless", disks=[], state="stopped"))
    with pytest.raises(PrerequisiteError, match="is diskless: it cannot have disks"):
        instance_op.ensure(cluster, spec(disk_template="diskless", disks=["1G"], state="stopped"))


def test_removing_a_disk_from_a_running_instance_needs_a_stop(cluster, nodes):
    instance_op.ensure(cluster, spec(disks=["1G", "1536M"]))
    with pytest.raises(PrerequisiteError, match="is running: removing disks \\[1\\] needs it stopped"):
        instance_op.ensure(cluster, spec(disks=["1G"], remove_disks=True))
    assert len(held(nodes[0])) == 2 and "web1" in nodes[0].running
    result = instance_op.ensure(cluster, spec(disks=["1G"], remove_disks=True, restart_on_change=True))
    assert result["actions"] == ["stop", "remove disk 1 (1536 MiB) with its data", "start"]
    assert len(held(nodes[0])) == 1 and len(nodes[0].running["web1"]["disks"]) == 1


def test_a_disk_added_to_a_running_instance_is_attached_at_the_next_start(cluster, nodes):
    instance_op.ensure(cluster, spec())
    result = instance_op.ensure(cluster, spec(disks=["1G", "1536M"]))
    assert "the new disks are attached at the next start (herd does not hot-plug disks)" in result["actions"]
    assert len(held(nodes[0])) == 2 and len(nodes[0].running["web1"]["disks"]) == 1
    assert cluster.store.load().instances["web1"].pending_restart is True
    instance_op.ensure(cluster, spec(disks=["1G", "1536M"], state="restarted"))
    assert len(nodes[0].running["web1"]["disks"]) == 2


def test_check_mode_says_what_would_be_added_and_removed_and_touches_nothing(cluster, nodes):
    instance_op.ensure(cluster, spec(state="stopped", disks=["1G", "1536M"]))
    before, serial = dict(nodes[0].disks), cluster.store.load().serial_no
    cluster.check_mode = True
    removal = instance_op.ensure(cluster, spec(state="stopped", disks=["1G"], remove_disks=True))
    addition = instance_op.ensure(cluster, spec(state="stopped", disks=["1G", "1536M", "2G"]))
    assert removal["changed"] and removal["actions"] == ["remove disk 1 (1536 MiB) with its data"]
    assert [d["size"] for d in removal["diff"]["after"]["disks"]] == [1024]
    assert addition["actions"] == ["add disk 2 of 2048 MiB"]
    assert [d["size"] for d in addition["diff"]["after"]["disks"]] == [1024, 1536, 2048]
    assert nodes[0].disks == before and cluster.store.load().serial_no == serial


def test_a_drbd_disk_add_takes_new_minors_and_port_creates_both_sides_and_waits_for_sync(cluster, nodes):
    instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped"))
    nodes[0].drbd.sync_polls = nodes[1].drbd.sync_polls = 0
    result = instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped", disks=["1G", "1536M"]))
    assert result["changed"]
    old, new = disks_of(cluster)
    assert new.logical_id["minors"] == {"node1": 1, "node2": 1} and old.logical_id["minors"] == {"node1": 0, "node2": 0}
    assert new.logical_id["port"] not in (old.logical_id["port"], None) and new.logical_id["secret"]
    assert held(nodes[0]) == held(nodes[1]) == sorted([old.uuid, new.uuid])
    assert nodes[0].drbd.status(f"web1/{new.uuid}")["peer_disk"] == "UpToDate"
    job = cluster.journal.list(opcode="instance_modify")[-1]
    assert any(s["name"] == "wait for the new disks to sync" and s["status"] == "success" for s in job["steps"])


def test_a_drbd_disk_remove_frees_both_sides_and_its_minors_and_port(cluster, nodes):
    instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped", disks=["1G", "1536M"]))
    old, gone = disks_of(cluster)
    instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped", disks=["1G"], remove_disks=True))
    assert held(nodes[0]) == held(nodes[1]) == [old.uuid]
    assert f"web1/{gone.uuid}" not in nodes[0].drbd and f"web1/{gone.uuid}" not in nodes[1].drbd
    config = cluster.store.load()
    assert config.used_minors("node1") == {0} and gone.logical_id["port"] not in config.used_ports()


def test_a_failed_drbd_disk_add_removes_the_half_created_disk(cluster, nodes):
    instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped"))
    serial = cluster.store.load().serial_no
    nodes[1].fail["disk_create"] = "lvcreate: Volume group gnt has insufficient free space"
    with pytest.raises(Exception, match="insufficient free space"):
        instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped", disks=["1G", "1536M"]))
    nodes[1].fail.pop("disk_create")
    first = disks_of(cluster)[0]
    assert held(nodes[0]) == held(nodes[1]) == [first.uuid]  # node1's half of the new disk is gone
    assert cluster.store.load().serial_no == serial
    job = cluster.journal.list(opcode="instance_modify")[-1]
    assert job["status"] == "error" and any(s["name"] == "rollback: remove disk 1" for s in job["steps"])


def kill_during(cluster, monkeypatch, where, declared):
    """A modify that dies in ``where`` ("commit": the config commit; "disk_remove": removing a
    volume) the way a killed process does: no rollback, its journal entry left "running" under
    a pid that no longer exists."""
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(Job, "rollback", lambda self: [])
    monkeypatch.setattr(*((cluster, "commit") if where == "commit" else (nodecalls, "disk_remove")), killed)
    with pytest.raises(RuntimeError, match="killed"):
        instance_op.ensure(cluster, declared)
    monkeypatch.undo()
    job = cluster.journal.list(opcode="instance_modify")[-1]
    job.update(status="running", pid=2 ** 22 + 12345)
    cluster.journal.write(job)


@pytest.mark.parametrize("template", ["plain", "drbd"])
def test_an_interrupted_disk_add_is_cleaned_by_the_next_run(cluster, nodes, monkeypatch, template):
    instance_op.ensure(cluster, spec(disk_template=template, state="stopped"))
    first = disks_of(cluster)[0]
    kill_during(cluster, monkeypatch, "commit",
                spec(disk_template=template, state="stopped", disks=["1G", "1536M", "1280M"]))
    assert len(held(nodes[0])) == 3 and len(disks_of(cluster)) == 1  # made, never committed
    result = instance_op.ensure(cluster, spec(disk_template=template, state="stopped"))
    assert result["changed"] is False
    assert held(nodes[0]) == [first.uuid]
    if template == "drbd":
        assert held(nodes[1]) == [first.uuid]
    assert sum("left by job" in w for w in cluster.warnings) == 2
    assert cluster.journal.interrupted() == []


def test_an_interrupted_disk_removal_finishes_on_the_next_run(cluster, nodes, monkeypatch):
    instance_op.ensure(cluster, spec(disk_template="plain", state="stopped", disks=["1G", "1536M"]))
    first, gone = disks_of(cluster)
    kill_during(cluster, monkeypatch, "disk_remove",
                spec(disk_template="plain", state="stopped", disks=["1G"], remove_disks=True))
    assert [d.uuid for d in disks_of(cluster)] == [first.uuid]  # committed before the volumes went
    assert held(nodes[0]) == sorted([first.uuid, gone.uuid])
    instance_op.ensure(cluster, spec(disk_template="plain", state="stopped", disks=["1G"]))
    assert held(nodes[0]) == [first.uuid]
    assert any(f"removed disk 1 ({gone.uuid}) of web1 left by job" in w for w in cluster.warnings)


@pytest.mark.parametrize("template,node", [("plain", 0), ("drbd", 1)])
def test_a_disk_add_without_room_in_the_volume_group_is_refused_before_anything_is_made(
        cluster, nodes, template, node):
    instance_op.ensure(cluster, spec(disk_template=template, state="stopped"))
    before = [dict(n.disks) for n in nodes]
    nodes[node].answers["node_facts"] = {"volume_group": {"present": True, "free": 300}}
    with pytest.raises(PrerequisiteError, match=f"adding disk 1 \\(1536 MiB\\): node{node + 1} has 300 MiB free in "
                                                "volume group gnt; the new disks need"):
        instance_op.ensure(cluster, spec(disk_template=template, state="stopped", disks=["1G", "1536M"]))
    assert [dict(n.disks) for n in nodes] == before and len(disks_of(cluster)) == 1
