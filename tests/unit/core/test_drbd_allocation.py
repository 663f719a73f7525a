"""One allocator for DRBD minors and ports (issue 11 item 1, issue 12 item 1): minors free in
the config and on the nodes themselves, for create and replace-disks alike; an exhausted port
pool is a clear error."""

import pytest

from plugins.module_utils.herd.config import FIRST_PORT, LAST_PORT, Disk, Instance
from plugins.module_utils.herd.errors import ConfigError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import replace_disks

from .test_ops_instance import spec


def test_create_skips_a_minor_a_node_uses_that_the_config_does_not_know(cluster, nodes):
    nodes[1].drbd.leftover("left-over/x")  # e.g. removed from the config while node2 was offline
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G", "1G"]))
    inst = cluster.store.load().instances["web1"]
    assert [d.logical_id["minors"] for d in inst.disks] == [{"node1": 0, "node2": 1}, {"node1": 1, "node2": 2}]


def test_create_and_replace_disks_allocate_minors_the_same_way(cluster, nodes):
    nodes[2].drbd.leftover("left-over/x")
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G"]))
    config = cluster.store.load()
    inst = config.instances["web1"]
    assert replace_disks.allocate_minors(cluster, config, inst, "node3") == \
        config.allocate_minors("node3", 1, [0]) == [1]


def test_each_disk_gets_its_own_port_from_the_config_pool(cluster):
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G", "1G"]))
    config = cluster.store.load()
    ports = [d.logical_id["port"] for d in config.instances["web1"].disks]
    assert len(set(ports)) == 2 and all(FIRST_PORT <= p <= LAST_PORT for p in ports)
    assert config.allocate_port() not in ports


def test_an_exhausted_port_pool_is_a_clear_error_not_stopiteration(cluster):
    config = cluster.store.load()
    filler = Instance(name="filler", uuid="00000000-0000-4000-8000-000000000000", primary_node="node1",
                      hypervisor="fake", disk_template="diskless",
                      disks=[Disk(uuid=f"d{p}", size=1, logical_id={"port": p})
                             for p in range(FIRST_PORT, LAST_PORT + 1)])
    config.instances["filler"] = filler
    cluster.commit(config)
    with pytest.raises(ConfigError, match="port pool 11000-14999 is exhausted"):
        instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G"], hypervisor="fake"))
