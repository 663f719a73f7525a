"""node_info / instance_info field selection and filters (module_utils/herd/listing.py), on the op-test
cluster (three fake nodes answering through the real agent code)."""

import pytest

from plugins.module_utils.herd import listing
from plugins.module_utils.herd.errors import HerdError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import node as node_op


def spec(name, **extra):
    base = {"name": name, "state": "running", "disk_template": "file", "disks": ["1536M"], "memory": "256M",
            "vcpus": 2, "hypervisor": "fake"}
    base.update(extra)
    return base


@pytest.fixture
def instances(cluster):
    instance_op.ensure(cluster, spec("web1", primary_node="node1", tags=["web"]))
    instance_op.ensure(cluster, spec("web2", primary_node="node2", tags=["web"], state="stopped"))
    instance_op.ensure(cluster, spec("db1", primary_node="node3", memory="1G"))
    return cluster


def test_instance_fields_select_the_runbooks_columns_in_order(instances):
    fields = ["pnode", "name", "be/vcpus", "be/memory", "status", "disk_template"]
    result = listing.list_instances(instances, {"fields": fields})
    assert result["table"][0].split() == ["Primary_node", "Instance", "ConfigVCPUs", "ConfigMaxMem", "Status",
                                          "Disk_template"]
    assert [row["name"] for row in result["selected"]] == ["db1", "web1", "web2"]
    assert result["selected"][0] == {"pnode": "node3", "name": "db1", "be/vcpus": 2, "be/memory": 1024,
                                     "status": "running", "disk_template": "file"}


def test_sizes_are_human_readable_in_the_table_and_mib_in_the_data(instances):
    result = listing.list_instances(instances, {"names": ["db1"], "fields": ["name", "be/memory", "disk.sizes"]})
    assert result["table"][1].split() == ["db1", "1.0G", "1.5G"]
    raw = listing.list_instances(instances, {"names": ["db1"], "fields": ["be/memory"], "human": False})
    assert raw["table"][1].split() == ["1024"]
    assert result["selected"][0]["disk.sizes"] == [1536]


def test_instances_filter_by_node_tag_and_status(instances):
    def names(**filters):
        return [row["name"] for row in listing.list_instances(instances, filters)["instances"]]
    assert names(nodes=["node2"]) == ["web2"]
    assert names(tags=["web"]) == ["web1", "web2"]
    assert names(status=["running"]) == ["db1", "web1"]
    assert names(tags=["web"], status=["ADMIN_down"]) == ["web2"]


def test_an_unknown_field_names_itself_and_the_valid_ones(instances):
    with pytest.raises(HerdError, match=r"unknown instance field 'be/ram'; valid fields: .*be/memory"):
        listing.list_instances(instances, {"fields": ["be/ram"]})
    with pytest.raises(HerdError, match=r"unknown node field 'free'; valid fields: .*vg_free/<volume group>"):
        listing.list_nodes(instances, {"fields": ["free"]})


def test_node_fields_with_n1_and_role_filter(instances):
    node_op.present(instances, {"name": "node3", "drained": True})
    result = listing.list_nodes(instances, {"fields": ["name", "role", "pinst_cnt", "n1"]})
    assert [row["name"] for row in result["selected"]] == ["node1", "node2", "node3"]
    assert [row["pinst_cnt"] for row in result["selected"]] == [1, 1, 1]
    assert all(isinstance(row["n1"], bool) for row in result["selected"])
    drained = listing.list_nodes(instances, {"roles": ["D"]})
    assert [row["name"] for row in drained["nodes"]] == ["node3"]


def test_free_disk_per_volume_group_is_a_node_field(instances):
    result = listing.list_nodes(instances, {"fields": ["name", "vg_free/gnt"], "human": False})
    assert result["table"][0].split() == ["Node", "VGFree(gnt)"]
    for row in result["selected"]:
        assert row["vg_free/gnt"] is None or isinstance(row["vg_free/gnt"], int)
