"""Instance placement through the real allocator (no stand-in)."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError
from plugins.module_utils.herd.ops import instance as instance_op


def spec(**extra):
    base = {"name": "web1", "state": "running", "disk_template": "sharedfile", "disks": ["1G"],
            "memory": "256M", "vcpus": 1, "hypervisor": "fake"}
    base.update(extra)
    return base


def test_allocator_places_a_new_instance_on_a_node_of_the_cluster(cluster):
    result = instance_op.ensure(cluster, spec())
    assert result["placement"]["primary"] in ("node1", "node2", "node3")


def test_allocator_spreads_instances_over_nodes(cluster):
    for i in range(6):
        instance_op.ensure(cluster, spec(name=f"vm{i}", memory="256M"))
    primaries = {inst.primary_node for inst in cluster.store.load().instances.values()}
    assert len(primaries) == 3


def test_too_much_memory_names_every_node_and_what_it_lacks(cluster, nodes):
    with pytest.raises(PrerequisiteError) as info:
        instance_op.ensure(cluster, spec(memory="100G"))
    message = str(info.value)
    for name in ("node1", "node2", "node3"):
        assert f"{name}: FailMem" in message, message
    assert "102400" in message
    assert "web1" not in cluster.store.load().instances
    assert all(not n.disks for n in nodes)


def test_drbd_gets_two_different_nodes(cluster):
    instance_op.ensure(cluster, spec(disk_template="drbd", state="present"))
    inst = cluster.store.load().instances["web1"]
    assert inst.secondary_node and inst.secondary_node != inst.primary_node
