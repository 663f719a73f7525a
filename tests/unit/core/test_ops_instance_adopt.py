"""Adoption of an operator's LV into a new plain instance (gnt-instance add --disk 0:adopt=LV), with
the real agent in process: the LV keeps its name and data and gets herd's tags; a missing, open or
foreign LV is refused before anything is touched; a failed create gives it back and never deletes it."""

import pytest

from plugins.module_utils.herd.errors import HerdError, PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import nodecalls

from .test_ops_instance import spec


def adopt(**extra):
    return spec(**{"disk_template": "plain", "state": "stopped", "primary_node": "node1",
                   "disks": [{"adopt": "olddata", "vg": "gnt"}], **extra})


@pytest.fixture
def olddata(nodes):
    nodes[0].volumes.lvs[("gnt", "olddata")] = {"size": 1536, "tags": [], "data": "the operator's bytes"}
    return nodes[0].volumes.lvs[("gnt", "olddata")]


def test_an_adopted_lv_keeps_its_name_and_data_and_gets_herds_tags(cluster, nodes, olddata):
    result = instance_op.ensure(cluster, adopt())
    assert result["changed"] is True
    disk = cluster.store.load().instances["web1"].disks[0]
    assert disk.size == 1536 and disk.logical_id == {"vg": "gnt", "lv": "olddata", "adopted": True}
    assert sorted(olddata["tags"]) == ["herd", "originstname+web1"] and olddata["data"] == "the operator's bytes"
    assert [lv for (_vg, lv) in nodes[0].volumes.lvs] == ["olddata"]
    assert instance_op.ensure(cluster, adopt())["changed"] is False


def test_removing_the_instance_removes_the_adopted_lv(cluster, nodes, olddata):
    instance_op.ensure(cluster, adopt())
    instance_op.ensure(cluster, {"name": "web1", "state": "absent"})
    assert nodes[0].volumes.lvs == {}


def test_a_missing_lv_is_refused_before_anything_is_touched(cluster, nodes):
    with pytest.raises(PrerequisiteError, match=r"disks\[0\] on node1: .*cannot adopt gnt/olddata: no such logical "
                                                r"volume"):
        instance_op.ensure(cluster, adopt())
    assert "web1" not in cluster.store.load().instances


def test_an_open_lv_is_refused(cluster, nodes, olddata):
    olddata["attr"] = "-wi-ao----"
    with pytest.raises(PrerequisiteError, match=r"cannot adopt gnt/olddata: it is open \(in use: lv_attr -wi-ao----\)"):
        instance_op.ensure(cluster, adopt())
    assert olddata["tags"] == [] and "web1" not in cluster.store.load().instances


def test_an_lv_of_another_instance_is_refused(cluster, nodes, olddata):
    olddata["tags"] = ["herd", "originstname+db1"]
    with pytest.raises(PrerequisiteError, match=r"cannot adopt gnt/olddata: it belongs to instance db1"):
        instance_op.ensure(cluster, adopt())
    assert olddata["tags"] == ["herd", "originstname+db1"]


def test_an_lv_already_a_disk_in_the_config_is_refused(cluster, nodes, olddata):
    instance_op.ensure(cluster, adopt())
    with pytest.raises(PrerequisiteError, match="it is a disk of instance web1"):
        instance_op.ensure(cluster, adopt(name="web2"))


def test_a_failed_create_gives_the_lv_back_untouched(cluster, nodes, olddata, monkeypatch):
    def broken(*_args, **_kw):
        raise HerdError("the OS install failed")
    monkeypatch.setattr(nodecalls, "os_install", broken)
    with pytest.raises(HerdError, match="OS install failed"):
        instance_op.ensure(cluster, adopt())
    assert nodes[0].volumes.lvs == {("gnt", "olddata"): {"size": 1536, "tags": [], "data": "the operator's bytes"}}
    assert "web1" not in cluster.store.load().instances


@pytest.mark.parametrize("extra, message", [
    ({"primary_node": None}, "adopting LVs needs primary_node"),
    ({"disk_template": "file"}, "only plain disks adopt LVs, not file"),
    ({"disks": [{"adopt": "olddata"}, "1G"]}, "either every disk adopts an LV or none does"),
    ({"disks": [{"adopt": "olddata", "size": "1G"}]}, r"size is read from the adopted LV olddata; drop size"),
    ({"disks": [{"adopt": "bad/name"}]}, "volume group 'bad/name'|bad/name"),
])
def test_bad_adoption_specs_are_refused(cluster, olddata, extra, message):
    with pytest.raises(ValidationError, match=message):
        instance_op.ensure(cluster, adopt(**extra))


def test_adopting_on_an_existing_instance_is_refused(cluster, olddata):
    instance_op.ensure(cluster, spec(disk_template="plain", state="stopped"))
    with pytest.raises(PrerequisiteError, match="adopted only when the instance is created"):
        instance_op.ensure(cluster, spec(disk_template="plain", state="stopped",
                                         disks=["1G", {"adopt": "olddata"}]))


def test_an_adopted_plain_disk_converts_to_drbd_and_back(cluster, nodes, olddata):
    instance_op.ensure(cluster, adopt())
    instance_op.ensure(cluster, adopt(disk_template="drbd", secondary_node="node2", disks=None))
    inst = cluster.store.load().instances["web1"]
    assert nodes[0].volumes.lvs[("gnt", f"{inst.disks[0].uuid}.disk0_data")]["data"] == "the operator's bytes"
    instance_op.ensure(cluster, adopt(disk_template="plain", disks=None))
    assert nodes[0].volumes.lvs[("gnt", f"{inst.disks[0].uuid}.disk0")]["data"] == "the operator's bytes"


def test_an_adopted_lv_needs_no_free_space_of_its_own(cluster, nodes, olddata):
    nodes[0].volumes.vgs["gnt"] = 2048  # 512 MiB free beside the 1536 MiB LV: it already holds its space
    result = instance_op.ensure(cluster, adopt())
    assert result["changed"] is True and cluster.store.load().instances["web1"].primary_node == "node1"
