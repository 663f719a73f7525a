"""NIC mode openvswitch (Ganeti's --net 0:mode=openvswitch,link=br0,vlan=4000): the NIC's mode, link
and vlan come from the NIC, its network's connection or the cluster's nicparams, reach the node in
the instance spec, and are checked on the chosen nodes by the real agent (ovs-vsctl br-exists)
before anything is touched."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import network as network_op
from plugins.module_utils.herd.ops import nodecalls

from .conftest import init_spec

OVS_NET = {"name": "gnt-fsn", "subnet": "192.0.2.0/29", "gateway": "192.0.2.1",
           "groups": [{"name": "default", "mode": "openvswitch", "link": "brovs", "vlan": 4000}]}


def declared(name="web1", template="diskless", primary_node="node1", secondary_node=None, **nic):
    """A diskless instance on node1 unless named otherwise: these tests are about its NICs, not placement."""
    spec = {"name": name, "state": "stopped", "disk_template": template, "hypervisor": "fake", "memory": "128M",
            "nics": [nic], "primary_node": primary_node, "secondary_node": secondary_node}
    if template != "diskless":
        spec["disks"] = ["1G"]
    return spec


def with_ovs(nodes, *names, bridges=("brovs",)):
    for node in nodes:
        if node.name in names:
            node.ovs_bridges = set(bridges)


def test_network_connection_gives_the_nic_mode_link_and_vlan_and_the_nodes_check_the_bridge(cluster, nodes):
    network_op.run(cluster, dict(OVS_NET))
    with_ovs(nodes, "node1")
    result = instance_op.ensure(cluster, declared(network="gnt-fsn", ip="pool", primary_node="node1"))
    nic = cluster.store.load().instances["web1"].nics[0]
    assert (nic.mode, nic.link, nic.vlan, nic.ip) == ("openvswitch", "brovs", 4000, "192.0.2.2")
    assert result["instance"]["nics"][0]["mode"] == "openvswitch"
    assert ["br-exists", "brovs"] in nodes[0].ovs_calls
    spec = nodecalls.runtime_spec(cluster.store.load(), cluster.store.load().instances["web1"], [])
    assert spec["nics"][0] == {"mac": nic.mac, "link": "brovs", "mode": "openvswitch", "vlan": 4000, "index": 0}


def test_cluster_nicparams_default_to_openvswitch(cluster, nodes):
    cluster_op.present(cluster, init_spec(enabled_hypervisors=["fake"],
                                          nicparams={"mode": "openvswitch", "link": "brovs", "vlan": 10}))
    with_ovs(nodes, "node1")
    instance_op.ensure(cluster, declared())
    nic = cluster.store.load().instances["web1"].nics[0]
    assert (nic.mode, nic.link, nic.vlan) == ("openvswitch", "brovs", 10)


def test_a_nic_declares_the_runbooks_mode_link_and_vlan(cluster, nodes):
    with_ovs(nodes, "node1", bridges=("br0",))
    instance_op.ensure(cluster, declared(mode="openvswitch", link="br0", vlan=4000))
    nic = cluster.store.load().instances["web1"].nics[0]
    assert (nic.mode, nic.link, nic.vlan) == ("openvswitch", "br0", 4000)
    again = instance_op.ensure(cluster, declared(mode="openvswitch", link="br0", vlan=4000))
    assert again["changed"] is False


def test_missing_ovs_bridge_on_the_secondary_is_refused_before_any_disk_naming_node_and_bridge(cluster, nodes):
    cluster_op.present(cluster, init_spec(enabled_hypervisors=["kvm", "fake"],
                                          enabled_disk_templates=["drbd", "plain", "diskless"]))
    network_op.run(cluster, dict(OVS_NET))
    with_ovs(nodes, "node1")
    nodes[1].ovs_bridges = {"brother"}
    with pytest.raises(PrerequisiteError, match=r"NIC 0 of web1: brovs is not an Open vSwitch bridge on node node2"):
        instance_op.ensure(cluster, declared(template="drbd", network="gnt-fsn", ip="pool", primary_node="node1",
                                             secondary_node="node2"))
    config = cluster.store.load()
    assert "web1" not in config.instances and not config.networks["gnt-fsn"].allocated
    assert not [c for node in nodes for c in node.runner.calls if c[0] in ("lvcreate", "drbdmeta")]


def test_node_without_open_vswitch_is_named(cluster, nodes):
    with pytest.raises(PrerequisiteError, match=r"mode openvswitch needs Open vSwitch on node node1 .*"
                                                r"node_network_ovs_bridges"):
        instance_op.ensure(cluster, declared(mode="openvswitch", link="brovs", primary_node="node1"))
    assert "web1" not in cluster.store.load().instances


@pytest.mark.parametrize("nic, message", [
    ({"mode": "routed"}, r"nics\[0\]: mode 'routed' is not supported on nodes; valid: \['bridged', 'openvswitch'\]"),
    ({"mode": "openvswitch", "link": "brovs", "vlan": 4095}, r"nics\[0\] vlan 4095 must be an integer from 1 to 4094"),
    ({"mode": "openvswitch", "link": "br;rm"}, r"bridge 'br;rm'"),
])
def test_bad_nic_values_are_refused_before_any_node_is_asked(cluster, nodes, nic, message):
    with pytest.raises(ValidationError, match=message):
        instance_op.ensure(cluster, declared(**nic))
    assert not any(node.ovs_calls for node in nodes)


def test_a_network_of_mode_routed_is_refused_when_connected_before_any_instance_uses_it(cluster, nodes):
    before = cluster.store.load().serial_no
    with pytest.raises(ValidationError, match=r"mode 'routed' is not supported on nodes; valid: \['bridged', 'openvswitch'\]"):
        network_op.run(cluster, dict(OVS_NET, groups=[{"name": "default", "mode": "routed", "link": "br0"}]))
    assert "gnt-fsn" not in cluster.store.load().networks
    assert cluster.store.load().serial_no == before


def test_modify_to_an_ovs_bridge_a_node_lacks_is_refused_and_changes_nothing(cluster, nodes):
    with_ovs(nodes, "node1")
    instance_op.ensure(cluster, declared(mode="openvswitch", link="brovs", vlan=100, primary_node="node1"))
    serial = cluster.store.load().serial_no
    with pytest.raises(PrerequisiteError, match="brnew is not an Open vSwitch bridge on node node1"):
        instance_op.ensure(cluster, declared(mode="openvswitch", link="brnew", vlan=100))
    assert cluster.store.load().serial_no == serial
    changed = instance_op.ensure(cluster, declared(mode="openvswitch", link="brovs", vlan=200))
    assert changed["changed"] and cluster.store.load().instances["web1"].nics[0].vlan == 200
