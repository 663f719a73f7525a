"""NIC add, modify and remove on an existing instance (gnt-instance modify --net add|N:modify|remove)
with the IP pool: a pool NIC takes the lowest free address, a changed ip re-reserves, a removed NIC
frees its address, and MACs are generated once and kept."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import network as network_op

from .test_ops_network import NET


@pytest.fixture(autouse=True)
def _bridges_of_the_networks(nodes):
    """The nodes have the bridges the networks of these tests connect NICs to (br7, br9)."""
    for node in nodes:
        node.bridges = ["br0", "br7", "br9"]


@pytest.fixture
def net(cluster):
    network_op.run(cluster, dict(NET))
    return cluster


def declared(*nics, state="stopped"):
    return {"name": "web1", "state": state, "disk_template": "diskless", "memory": "128M", "hypervisor": "fake",
            "primary_node": "node1", "nics": list(nics)}


def nics_of(ctx):
    return ctx.store.load().instances["web1"].nics


def allocated(ctx):
    return ctx.store.load().networks["gnt-fsn"].allocated


POOL = {"network": "gnt-fsn", "ip": "pool"}


def test_an_added_pool_nic_takes_the_lowest_free_address_and_keeps_its_mac(net):
    instance_op.ensure(net, declared({"link": "br0"}))
    mac0 = nics_of(net)[0].mac
    result = instance_op.ensure(net, declared({"link": "br0"}, POOL))
    assert result["changed"]
    assert [n["ip"] for n in result["instance"]["nics"]] == [None, "192.0.2.3"]
    assert allocated(net) == {"192.0.2.3": "web1"}
    first = nics_of(net)
    assert first[0].mac == mac0 and first[1].mac.startswith("aa:00:00:") and first[1].mac != mac0
    serial = net.store.load().serial_no
    assert instance_op.ensure(net, declared({"link": "br0"}, POOL))["changed"] is False
    assert net.store.load().serial_no == serial and [n.mac for n in nics_of(net)] == [n.mac for n in first]


def test_changing_the_ip_re_reserves_and_frees_the_old_address(net):
    instance_op.ensure(net, declared(POOL))
    mac = nics_of(net)[0].mac
    instance_op.ensure(net, declared({"network": "gnt-fsn", "ip": "192.0.2.6"}))
    assert allocated(net) == {"192.0.2.6": "web1"}
    assert nics_of(net)[0].ip == "192.0.2.6" and nics_of(net)[0].mac == mac


def test_changing_to_an_address_another_instance_holds_is_refused_and_changes_nothing(net):
    instance_op.ensure(net, dict(declared(POOL), name="db1"))  # takes .3
    instance_op.ensure(net, declared(POOL))  # takes .4
    serial = net.store.load().serial_no
    with pytest.raises(PrerequisiteError, match="192.0.2.3 in network gnt-fsn is already allocated to db1"):
        instance_op.ensure(net, declared({"network": "gnt-fsn", "ip": "192.0.2.3"}))
    assert allocated(net) == {"192.0.2.3": "db1", "192.0.2.4": "web1"} and net.store.load().serial_no == serial


def test_removing_a_nic_frees_its_address_for_the_next_pool_nic(net):
    instance_op.ensure(net, declared({"link": "br0"}, POOL))
    instance_op.ensure(net, declared({"link": "br0"}))
    assert allocated(net) == {} and len(nics_of(net)) == 1
    instance_op.ensure(net, dict(declared(POOL), name="db1"))
    assert allocated(net) == {"192.0.2.3": "db1"}


def test_check_mode_shows_the_new_nic_and_reserves_nothing(net):
    instance_op.ensure(net, declared({"link": "br0"}))
    serial = net.store.load().serial_no
    net.check_mode = True
    result = instance_op.ensure(net, declared({"link": "br0"}, POOL))
    assert result["changed"] and result["diff"]["after"]["nics"][1]["network"] == "gnt-fsn"
    assert result["diff"]["before"]["nics"][1:] == []
    assert allocated(net) == {} and net.store.load().serial_no == serial


def test_a_nic_change_on_a_running_instance_applies_at_the_next_restart(net, nodes):
    instance_op.ensure(net, declared({"link": "br0"}, state="running"))
    result = instance_op.ensure(net, declared({"link": "br0"}, POOL, state="running"))
    assert "changes apply at the next restart (restart_on_change is false)" in result["actions"]
    assert len(nodes[0].running["web1"]["nics"]) == 1 and allocated(net) == {"192.0.2.3": "web1"}
    instance_op.ensure(net, declared({"link": "br0"}, POOL, state="restarted"))
    assert [n["mac"] for n in nodes[0].running["web1"]["nics"]] == [n.mac for n in nics_of(net)]
