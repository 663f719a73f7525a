"""A new drbd instance waits for its disks to sync before the OS is installed and it starts
(Ganeti's default; ``wait_for_sync: false`` is --no-wait-for-sync), with the real agent in
process and DRBD simulated by the recording storage runner."""

import pytest

from plugins.module_utils.herd.errors import HerdError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op

from .test_ops_instance import spec


def steps(cluster):
    return [(s["name"], s["status"]) for s in cluster.journal.list(opcode="instance_create")[-1]["steps"]]


def secondary_disk(cluster, nodes):
    disk = cluster.store.load().instances["web1"].disks[0]
    return nodes[1].drbd.status(f"web1/{disk.uuid}", advance=False)["disk"]


def test_a_new_drbd_instance_is_installed_and_started_only_once_its_disks_are_in_sync(cluster, nodes):
    instance_op.ensure(cluster, spec(disk_template="drbd"))
    names = [name for name, _status in steps(cluster)]
    assert ("wait for the disks to sync", "success") in steps(cluster)
    assert names.index("create disks") < names.index("wait for the disks to sync") < names.index("install OS")
    assert secondary_disk(cluster, nodes) == "UpToDate"


def test_without_wait_for_sync_the_create_returns_while_the_secondary_still_syncs(cluster, nodes):
    instance_op.ensure(cluster, spec(disk_template="drbd", wait_for_sync=False))
    assert "wait for the disks to sync" not in [name for name, _status in steps(cluster)]
    assert secondary_disk(cluster, nodes) == "Inconsistent"


def test_a_sync_that_outlasts_sync_timeout_undoes_the_create(cluster, nodes):
    nodes[0].drbd.sync_polls = nodes[1].drbd.sync_polls = 10 ** 6
    with pytest.raises(HerdError, match=r"the new disks of web1 did not sync within 1 s: disk 0 .*% synced"):
        instance_op.ensure(cluster, spec(disk_template="drbd", sync_timeout=1))
    assert "web1" not in cluster.store.load().instances
    assert not nodes[0].disks and not nodes[1].disks and not nodes[0].drbd.state and not nodes[1].drbd.state


@pytest.mark.parametrize("value", [0, -5, True, "10"])
def test_a_bad_sync_timeout_is_refused_naming_it(cluster, nodes, value):
    with pytest.raises(ValidationError, match=f"sync_timeout {value!r} must be 1 to 604800 seconds"):
        instance_op.ensure(cluster, spec(disk_template="drbd", sync_timeout=value))
    assert not nodes[0].disks
