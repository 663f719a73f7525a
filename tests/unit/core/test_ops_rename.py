"""Instance rename (gnt-instance rename): declarative, stopped only, everything keyed by the name moved."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import network as network_op
from plugins.module_utils.herd.ops import rename as rename_op


@pytest.fixture(autouse=True)
def _bridges_of_the_networks(nodes):
    """The nodes have the bridges the networks of these tests connect NICs to (br7, br9)."""
    for node in nodes:
        node.bridges = ["br0", "br7", "br9"]


def spec(**extra):
    base = {"name": "web1", "state": "stopped", "disk_template": "file", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "fake", "primary_node": "node1"}
    base.update(extra)
    return base


RENAME = {"name": "web1", "new_name": "www1"}


def test_stopped_file_instance_is_renamed_with_its_disk_directory(cluster, nodes):
    instance_op.ensure(cluster, spec())
    uuid = cluster.store.load().instances["web1"].disks[0].uuid
    result = rename_op.rename(cluster, dict(RENAME))
    config = cluster.store.load()
    assert result["changed"] is True and result["instance"]["name"] == "www1"
    assert sorted(config.instances) == ["www1"]
    assert nodes[0].disks == {f"www1/{uuid}": 1024}
    assert "/www1/" in config.instances["www1"].disks[0].logical_id["path"]


def test_renamed_instance_starts_under_its_new_name(cluster, nodes):
    instance_op.ensure(cluster, spec())
    rename_op.rename(cluster, dict(RENAME))
    started = instance_op.ensure(cluster, spec(name="www1", state="running"))
    assert started["changed"] is True and "www1" in nodes[0].running and "web1" not in nodes[0].running


def test_second_run_finds_it_renamed_and_changes_nothing(cluster):
    instance_op.ensure(cluster, spec())
    rename_op.rename(cluster, dict(RENAME))
    serial = cluster.store.load().serial_no
    again = rename_op.rename(cluster, dict(RENAME))
    assert again["changed"] is False and "already renamed" in again["msg"]
    assert cluster.store.load().serial_no == serial


def test_check_mode_reports_the_steps_and_touches_nothing(cluster, nodes):
    instance_op.ensure(cluster, spec())
    disks = dict(nodes[0].disks)
    cluster.check_mode = True
    result = rename_op.rename(cluster, dict(RENAME))
    assert result["changed"] is True and result["diff"]["after"]["name"] == "www1"
    assert any("file-storage/web1 to" in a for a in result["actions"])
    assert sorted(cluster.store.load().instances) == ["web1"] and nodes[0].disks == disks


def test_running_instance_is_refused(cluster, nodes):
    instance_op.ensure(cluster, spec(state="running"))
    with pytest.raises(PrerequisiteError, match="stop it first"):
        rename_op.rename(cluster, dict(RENAME))
    assert sorted(cluster.store.load().instances) == ["web1"] and "web1" in nodes[0].running


def test_a_taken_new_name_is_refused(cluster):
    instance_op.ensure(cluster, spec())
    instance_op.ensure(cluster, spec(name="www1"))
    with pytest.raises(PrerequisiteError, match="an instance www1 exists already"):
        rename_op.rename(cluster, dict(RENAME))


def test_neither_name_existing_is_an_error(cluster):
    with pytest.raises(PrerequisiteError, match="web1 does not exist"):
        rename_op.rename(cluster, dict(RENAME))


@pytest.mark.parametrize("bad, message", [({"name": "web1", "new_name": "web1"}, "is the instance's name already"),
                                          ({"name": "web1", "new_name": "bad name"}, "new_name")])
def test_bad_new_names_are_refused(cluster, bad, message):
    with pytest.raises(ValidationError, match=message):
        rename_op.rename(cluster, bad)


def test_ip_pool_reservations_follow_the_new_name(cluster):
    network_op.run(cluster, {"name": "gnt-fsn", "subnet": "192.0.2.0/29", "gateway": "192.0.2.1",
                             "groups": [{"name": "default", "mode": "bridged", "link": "br9"}]})
    instance_op.ensure(cluster, {"name": "web1", "state": "stopped", "disk_template": "diskless", "memory": "128M",
                                 "hypervisor": "fake", "nics": [{"network": "gnt-fsn", "ip": "pool"}]})
    ip = cluster.store.load().instances["web1"].nics[0].ip
    rename_op.rename(cluster, dict(RENAME))
    assert cluster.store.load().networks["gnt-fsn"].allocated[ip] == "www1"


def test_a_failed_commit_renames_the_directory_back(cluster, nodes, monkeypatch):
    instance_op.ensure(cluster, spec())
    uuid = cluster.store.load().instances["web1"].disks[0].uuid

    def broken(config):
        raise OSError("disk full")

    monkeypatch.setattr(cluster, "commit", broken)
    with pytest.raises(OSError, match="disk full"):
        rename_op.rename(cluster, dict(RENAME))
    assert nodes[0].disks == {f"web1/{uuid}": 1024}
    assert sorted(cluster.store.load().instances) == ["web1"]
    job = cluster.journal.list(opcode="instance_rename")[0]
    assert job["status"] == "error"
