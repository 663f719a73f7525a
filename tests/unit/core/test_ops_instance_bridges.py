"""A NIC's bridge must exist on the instance's nodes (node_facts' bridges) before anything is
created or changed: creation, a NIC change and a fleet of instances, each refused naming the
node and the bridge, with nothing left on any node."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError
from plugins.module_utils.herd.ops import instance as instance_op

from .test_ops_instance import spec


def test_create_with_a_bridge_missing_on_the_primary_is_refused_before_any_disk(cluster, nodes):
    with pytest.raises(PrerequisiteError, match=r"bridge br9 does not exist on node node1 \(bridges there: br0\)"):
        instance_op.ensure(cluster, spec(disk_template="plain", nics=[{"link": "br9"}]))
    assert "web1" not in cluster.store.load().instances
    assert nodes[0].disks == {} and "disk_create" not in nodes[0].calls


def test_create_checks_the_drbd_secondary_too(cluster, nodes):
    nodes[1].answers["node_facts"] = dict(nodes[1].hardware({"vg": "gnt"}), bridges=["br1"])
    with pytest.raises(PrerequisiteError, match=r"bridge br0 does not exist on node node2"):
        instance_op.ensure(cluster, spec(disk_template="drbd", state="stopped"))
    assert all(n.drbd.disks == {} for n in nodes) and "web1" not in cluster.store.load().instances


def test_create_with_the_bridge_present_goes_ahead(cluster, nodes):
    result = instance_op.ensure(cluster, spec(disk_template="plain", nics=[{"link": "br0"}]))
    assert result["changed"] is True and cluster.store.load().instances["web1"].nics[0].link == "br0"


def test_a_nic_changed_to_a_missing_bridge_is_refused_and_the_config_kept(cluster, nodes):
    instance_op.ensure(cluster, spec(state="stopped"))
    serial = cluster.store.load().serial_no
    with pytest.raises(PrerequisiteError, match=r"bridge br7 does not exist on node node1"):
        instance_op.ensure(cluster, spec(state="stopped", nics=[{"link": "br7"}]))
    assert cluster.store.load().serial_no == serial
    assert cluster.store.load().instances["web1"].nics[0].link == "br0"
