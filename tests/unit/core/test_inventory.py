"""The cluster as inventory (module_utils/herd/inventory.py, behind the herd.cluster.herd inventory plugin)."""

from plugins.module_utils.herd.config import Cluster, Config, Instance, Nic, Node
from plugins.module_utils.herd.inventory import cluster_inventory


def node(name, index, **flags):
    return Node(name=name, uuid=f"n{index}", primary_ip=f"198.51.100.{index}", secondary_ip=f"203.0.113.{index}",
                **flags)


def cluster():
    nodes = {
        "node1": node("node1", 11),
        "node2": node("node2", 12, drained=True),
        "node3": node("node3", 13, offline=True, master_candidate=False),
        "node4": node("node4", 14, master_candidate=False, group="rack-2", tags=["ssd"]),
    }
    instances = {
        "web1": Instance(name="web1", uuid="i1", primary_node="node1", hypervisor="kvm", disk_template="drbd",
                         secondary_node="node4", os="image", admin_state="up", tags=["web", "prod.eu"],
                         nics=[Nic(mac="aa:00:00:00:00:01"), Nic(mac="aa:00:00:00:00:02", ip="198.51.100.101")]),
        "batch1": Instance(name="batch1", uuid="i2", primary_node="node4", hypervisor="kvm",
                           disk_template="plain", nics=[Nic(mac="aa:00:00:00:00:03")]),
    }
    return Config(cluster=Cluster(name="c.example", uuid="u", master_node="node1"), nodes=nodes, instances=instances)


def test_nodes_are_grouped_by_role_with_the_master_among_the_candidates():
    groups = cluster_inventory(cluster())["groups"]
    assert groups["herd_master"] == ["node1"]
    assert groups["herd_master_candidates"] == ["node1"]
    assert groups["herd_drained"] == ["node2"]
    assert groups["herd_offline"] == ["node3"]
    assert groups["herd_regular"] == ["node4"]
    assert groups["herd_nodes"] == ["node1", "node2", "node3", "node4"]


def test_nodes_are_grouped_by_node_group_and_tag():
    groups = cluster_inventory(cluster())["groups"]
    assert groups["herd_nodegroup_default"] == ["node1", "node2", "node3"]
    assert groups["herd_nodegroup_rack_2"] == ["node4"]
    assert groups["herd_tag_ssd"] == ["node4"]


def test_instances_are_grouped_by_primary_template_status_os_and_tag():
    groups = cluster_inventory(cluster())["groups"]
    assert groups["herd_instances"] == ["batch1", "web1"]
    assert groups["herd_primary_node1"] == ["web1"]
    assert groups["herd_primary_node4"] == ["batch1"]
    assert groups["herd_disk_template_drbd"] == ["web1"]
    assert groups["herd_disk_template_plain"] == ["batch1"]
    assert groups["herd_status_up"] == ["web1"]
    assert groups["herd_status_down"] == ["batch1"]
    assert groups["herd_os_image"] == ["web1"]
    assert groups["herd_tag_prod_eu"] == ["web1"]


def test_an_instance_is_reached_at_its_first_nic_address_and_a_node_at_its_primary_ip():
    hosts = cluster_inventory(cluster())["hosts"]
    assert hosts["web1"]["ansible_host"] == "198.51.100.101"
    assert "ansible_host" not in hosts["batch1"]
    assert hosts["node4"]["ansible_host"] == "198.51.100.14"
    assert hosts["web1"]["herd_secondary_node"] == "node4"
    assert hosts["node2"]["herd_role"] == "drained"
