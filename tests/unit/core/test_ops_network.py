"""Networks and their IP pools: declaration, group connections, instance NIC addresses."""

import pytest

from plugins.module_utils.herd.config import Network
from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import network as network_op

from .conftest import init_spec


@pytest.fixture(autouse=True)
def _bridges_of_the_networks(nodes):
    """The nodes have the bridges the networks of these tests connect NICs to (br7, br9)."""
    for node in nodes:
        node.bridges = ["br0", "br7", "br9"]


NET = {"name": "gnt-fsn", "subnet": "192.0.2.0/29", "gateway": "192.0.2.1", "reserved": ["192.0.2.2"],
       "groups": [{"name": "default", "mode": "bridged", "link": "br9", "vlan": 40}]}


def inst(name, **nic):
    return {"name": name, "state": "stopped", "disk_template": "diskless", "memory": "128M", "hypervisor": "fake",
            "nics": [dict({"network": "gnt-fsn", "ip": "pool"}, **nic)]}


def nic_of(ctx, name):
    return ctx.store.load().instances[name].nics[0]


@pytest.fixture
def net(cluster):
    network_op.run(cluster, dict(NET))
    return cluster


def test_network_is_created_with_its_groups_and_a_second_run_changes_nothing(cluster):
    first = network_op.run(cluster, dict(NET))
    groups = {"default": {"mode": "bridged", "link": "br9", "vlan": 40}}
    assert first["changed"] and first["network"]["groups"] == groups
    serial = cluster.store.load().serial_no
    again = network_op.run(cluster, dict(NET))
    assert again["changed"] is False and cluster.store.load().serial_no == serial


def test_check_mode_reports_the_network_and_writes_nothing(cluster):
    cluster.check_mode = True
    result = network_op.run(cluster, dict(NET))
    assert result["changed"] and result["diff"]["after"]["subnet"] == "192.0.2.0/29"
    assert cluster.store.load().networks == {}


@pytest.mark.parametrize("bad, message", [
    ({"subnet": "192.0.2.5/24"}, "did you mean 192.0.2.0/24"),
    ({"subnet": "2001:db8::/64"}, "subnet must be IPv4"),
    ({"gateway": "198.51.100.1"}, "gateway 198.51.100.1 is outside the subnet 192.0.2.0/29"),
    ({"reserved": ["192.0.2.7"]}, "192.0.2.7 is the network or broadcast address"),
    ({"gateway6": "2001:db8::1"}, "gateway6 needs subnet6"),
    ({"groups": [{"name": "default", "vlan": 5000}]}, "vlan 5000 must be an integer from 1 to 4094"),
    ({"groups": [{"name": "default", "mode": "bonded"}]}, "mode 'bonded' is not supported on nodes"),
])
def test_bad_declarations_are_refused_before_anything_is_written(cluster, bad, message):
    serial = cluster.store.load().serial_no
    with pytest.raises(ValidationError, match=message):
        network_op.run(cluster, dict(NET, **bad))
    assert cluster.store.load().serial_no == serial


def test_the_subnet_of_an_existing_network_cannot_change(net):
    with pytest.raises(PrerequisiteError, match="cannot change"):
        network_op.run(net, dict(NET, subnet="192.0.2.8/29", gateway=None, reserved=None))


def test_connecting_to_an_unknown_group_is_refused(cluster):
    with pytest.raises(PrerequisiteError, match=r"node groups \['rack9'\] do not exist"):
        network_op.run(cluster, dict(NET, groups=[{"name": "rack9"}]))


def test_pool_gives_the_lowest_free_address_skipping_gateway_and_reservations(net):
    result = instance_op.ensure(net, inst("a"))
    assert result["instance"]["nics"][0]["ip"] == "192.0.2.3"
    instance_op.ensure(net, inst("b"))
    assert nic_of(net, "b").ip == "192.0.2.4"
    assert net.store.load().networks["gnt-fsn"].allocated == {"192.0.2.3": "a", "192.0.2.4": "b"}


def test_a_nic_gets_the_network_parameters_of_its_group(net):
    instance_op.ensure(net, inst("a"))
    nic = nic_of(net, "a")
    assert (nic.mode, nic.link, nic.vlan) == ("bridged", "br9", 40)


def test_a_second_run_with_ip_pool_keeps_the_address(net):
    instance_op.ensure(net, inst("a"))
    serial = net.store.load().serial_no
    again = instance_op.ensure(net, inst("a"))
    assert again["changed"] is False and net.store.load().serial_no == serial
    assert nic_of(net, "a").ip == "192.0.2.3"


def test_an_explicit_address_is_reserved_and_refused_when_taken_or_outside(net):
    instance_op.ensure(net, inst("a", ip="192.0.2.5"))
    assert nic_of(net, "a").ip == "192.0.2.5"
    with pytest.raises(PrerequisiteError, match="192.0.2.5 in network gnt-fsn is already allocated to a"):
        instance_op.ensure(net, inst("b", ip="192.0.2.5"))
    with pytest.raises(PrerequisiteError, match="192.0.2.2 in network gnt-fsn is already reserved"):
        instance_op.ensure(net, inst("c", ip="192.0.2.2"))
    with pytest.raises(ValidationError, match="192.0.2.9 is outside the subnet 192.0.2.0/29"):
        instance_op.ensure(net, inst("d", ip="192.0.2.9"))
    assert set(net.store.load().instances) == {"a"}


def test_removing_the_instance_frees_its_address(net):
    instance_op.ensure(net, inst("a"))
    instance_op.ensure(net, {"name": "a", "state": "absent"})
    assert net.store.load().networks["gnt-fsn"].allocated == {}
    instance_op.ensure(net, inst("b"))
    assert nic_of(net, "b").ip == "192.0.2.3"


def test_a_full_pool_says_so(net):
    for name in ("a", "b", "c", "d"):  # .3 .4 .5 .6 of a /29 with .1 gateway and .2 reserved
        instance_op.ensure(net, inst(name))
    with pytest.raises(PrerequisiteError, match=r"network gnt-fsn \(192.0.2.0/29\) has no free address left"):
        instance_op.ensure(net, inst("e"))


def test_a_network_with_instances_cannot_be_removed_or_disconnected(net):
    instance_op.ensure(net, inst("a"))
    with pytest.raises(PrerequisiteError, match=r"still used by instances \['a'\]"):
        network_op.run(net, {"name": "gnt-fsn", "state": "absent"})
    with pytest.raises(PrerequisiteError, match="cannot be disconnected"):
        network_op.run(net, dict(NET, groups=[]))
    instance_op.ensure(net, {"name": "a", "state": "absent"})
    assert network_op.run(net, {"name": "gnt-fsn", "state": "absent"})["changed"]
    assert network_op.run(net, {"name": "gnt-fsn", "state": "absent"})["changed"] is False


def test_an_address_given_to_an_instance_cannot_be_reserved(net):
    instance_op.ensure(net, inst("a"))
    with pytest.raises(PrerequisiteError, match=r"\['192.0.2.3'\] are allocated to instances \['a'\]"):
        network_op.run(net, dict(NET, reserved=["192.0.2.3"]))


def test_a_network_not_connected_to_the_primary_group_is_refused(cluster):
    network_op.run(cluster, dict(NET, groups=[]))
    with pytest.raises(PrerequisiteError, match="not connected to node group default"):
        instance_op.ensure(cluster, inst("a"))


def test_ip_pool_without_network_is_refused(cluster):
    with pytest.raises(ValidationError, match="ip: pool needs network"):
        instance_op.ensure(cluster, inst("a", network=None))


def test_cluster_nicparams_apply_to_nics_that_do_not_set_them(cluster):
    cluster_op.present(cluster, init_spec(nicparams={"link": "br7", "vlan": 12}))
    instance_op.ensure(cluster, {"name": "a", "state": "stopped", "disk_template": "diskless", "memory": "128M",
                                 "hypervisor": "fake", "nics": [{}, {"vlan": 30, "link": "br0"}]})
    nics = cluster.store.load().instances["a"].nics
    assert [(n.link, n.vlan) for n in nics] == [("br7", 12), ("br0", 30)]
    assert instance_op.ensure(cluster, {"name": "a", "state": "stopped", "disk_template": "diskless",
                                        "memory": "128M", "hypervisor": "fake",
                                        "nics": [{}, {"vlan": 30, "link": "br0"}]})["changed"] is False


def test_next_free_skips_taken_addresses():
    net = Network(name="n", uuid="u", subnet="10.0.0.0/30", gateway="10.0.0.1", allocated={"10.0.0.2": "x"})
    with pytest.raises(PrerequisiteError, match="no free address"):
        network_op.next_free(net)
    assert network_op.free_count(net) == 0


def test_dropping_a_nic_frees_its_address_and_a_new_pool_nic_takes_one(net):
    two = inst("a")
    two["nics"] = [{"network": "gnt-fsn", "ip": "pool"}, {"network": "gnt-fsn", "ip": "pool"}]
    instance_op.ensure(net, two)
    assert sorted(net.store.load().networks["gnt-fsn"].allocated) == ["192.0.2.3", "192.0.2.4"]
    instance_op.ensure(net, inst("a"))
    assert net.store.load().networks["gnt-fsn"].allocated == {"192.0.2.3": "a"}
    instance_op.ensure(net, two)
    assert net.store.load().networks["gnt-fsn"].allocated == {"192.0.2.3": "a", "192.0.2.4": "a"}
