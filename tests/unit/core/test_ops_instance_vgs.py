"""A new instance's disks in a volume group other than the cluster's (the runbook's SSD/HDD
split), with the real agent in process: the allocator counts only the cluster's volume group,
so the other one is checked on each of the instance's nodes before anything is made."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError
from plugins.module_utils.herd.ops import instance as instance_op

from .test_ops_instance import spec


def on_hdd(template, size="2G"):
    return spec(disk_template=template, state="stopped", disks=["1G", {"size": size, "vg": "hdd"}])


@pytest.mark.parametrize("template", ["plain", "drbd"])
def test_a_missing_volume_group_is_refused_naming_the_node_before_anything_is_made(cluster, nodes, template):
    for node in nodes:
        node.volumes.vgs["hdd"] = 8192
    missing = 1 if template == "drbd" else 0
    del nodes[missing].volumes.vgs["hdd"]
    with pytest.raises(PrerequisiteError, match=f"instance web1: volume group hdd does not exist on node{missing + 1}"):
        instance_op.ensure(cluster, on_hdd(template))
    assert all(not n.volumes.lvs for n in nodes) and "web1" not in cluster.store.load().instances


def test_too_little_room_in_the_other_volume_group_is_refused(cluster, nodes):
    nodes[0].volumes.vgs["hdd"] = 1024
    with pytest.raises(PrerequisiteError, match="node1 has 1024 MiB free in volume group hdd; its disks need 2048 MiB"):
        instance_op.ensure(cluster, on_hdd("plain"))
    assert not nodes[0].volumes.lvs


def test_a_disk_in_the_other_volume_group_takes_no_room_in_the_clusters(cluster, nodes):
    nodes[0].volumes.vgs.update(gnt=1536, hdd=8192)  # gnt holds disk 0 (1 GiB), not disk 1's 4 GiB
    instance_op.ensure(cluster, on_hdd("plain", size="4G"))
    held = {vg: lv["size"] for (vg, _name), lv in nodes[0].volumes.lvs.items()}
    assert held == {"gnt": 1024, "hdd": 4096}
