"""cluster_verify looks at storage (issue 9 bug 1): every drbd disk's state on both nodes,
orphan volumes, minors the config does not know, N+1 memory; instance_info shows disk health.

The op tests run the verify op against the in-process nodes; the rule tests feed the rules
what the real agent reports: /proc/drbd through the real parser and LVs through the real
``classify``."""

import pytest

from plugins.module_utils.herd.ops import disk_health, views
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import verify as verify_op
from plugins.module_utils.herd.storage.drbd import parse_proc_drbd
from plugins.module_utils.herd.storage.lvm import LogicalVolume, classify

from .test_ops_instance import spec

PROC_HEAD = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: 0\n"


@pytest.fixture
def web1(cluster):
    """A running drbd instance, primary node1, secondary node2."""
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G"], primary_node="node1", secondary_node="node2"))
    return cluster


def key(ctx):
    inst = ctx.store.load().instances["web1"]
    return f"web1/{inst.disks[0].uuid}"


def findings(ctx, code=None):
    return [f for f in verify_op.verify(ctx)["findings"] if code is None or f["code"] == code]


def test_a_healthy_drbd_instance_has_no_storage_findings(web1):
    assert verify_op.verify(web1)["ok"], verify_op.verify(web1)["lines"]


def test_a_standalone_secondary_is_a_faulty_disk_naming_node_instance_and_resource(web1, nodes):
    nodes[1].drbd.standalone(key(web1))
    found = findings(web1, "EINSTANCEFAULTYDISK")
    inst = web1.store.load().instances["web1"]
    text = " | ".join(f["message"] for f in found)
    assert all(f["object"] == "web1" for f in found)
    assert "node2: disk 0 (herd-" in text and inst.disks[0].uuid in text and "StandAlone" in text
    assert not verify_op.verify(web1)["ok"]


def test_an_unreachable_secondary_shows_as_a_disconnected_primary(web1, nodes):
    nodes[1].reachable = False
    found = findings(web1, "EINSTANCEFAULTYDISK")
    assert any(f["message"].startswith("node1: disk 0") and "disconnected from node2" in f["message"]
               for f in found)


def test_a_missing_secondary_device_is_reported(web1, nodes):
    nodes[1].drbd.down(key(web1))
    found = findings(web1, "EINSTANCEFAULTYDISK")
    assert any("node2" in f["message"] and "secondary is missing" in f["message"] for f in found)


def test_an_orphan_volume_and_an_unknown_minor_are_reported_on_their_node(web1, nodes):
    nodes[2].drbd.volumes("gone/0b7e3c1e-1111-4222-8333-444455556666", 1024)
    nodes[2].drbd.leftover("gone/0b7e3c1e-1111-4222-8333-444455556666", minor=7, peer="node1")
    drbd = findings(web1, "ENODEDRBD")
    assert [(f["object"], "minor 7" in f["message"]) for f in drbd] == [("node3", True)]
    orphans = findings(web1, "ENODEORPHANLV")
    assert [(f["object"], f["message"].split(" ")[1]) for f in orphans] == [
        ("node3", "gnt/0b7e3c1e-1111-4222-8333-444455556666.disk0_data"),
        ("node3", "gnt/0b7e3c1e-1111-4222-8333-444455556666.disk0_meta")]
    assert all("tagged for instance gone" in f["message"] for f in orphans)


def test_out_of_sync_blocks_on_a_connected_disk_are_reported(web1, nodes):
    nodes[0].drbd.out_of_sync(key(web1), 4096)
    found = findings(web1, "EINSTANCEFAULTYDISK")
    assert [(f["object"], f["message"].split(": ", 1)[0]) for f in found] == [("web1", "node1")]
    assert "4096 KiB out of sync with node2" in found[0]["message"]
    assert not verify_op.verify(web1)["ok"]


def test_a_missing_volume_is_reported_for_its_instance(web1, nodes):
    nodes[1].drbd.remove_volumes(key(web1))
    found = findings(web1, "EINSTANCEFAULTYDISK")
    assert any(f["message"].startswith("node2: volume") and "_data is missing" in f["message"] for f in found)


def test_instance_info_shows_disk_health(web1, nodes):
    row = views.instance_info(web1)["instances"][0]
    assert row["disk_health"] == "ok"
    nodes[1].drbd.standalone(key(web1))
    row = views.instance_info(web1)["instances"][0]
    assert row["disk_health"] == "degraded"
    assert any("StandAlone" in line for line in row["disk_problems"])


def test_n_plus_one_memory_failure_names_the_node_whose_failure_cannot_be_absorbed(web1, nodes):
    for node in nodes:  # roomy while web2 is placed (the allocator refuses what breaks N+1) ...
        node.memory_free = 4096
    instance_op.ensure(web1, spec(name="web2", disk_template="drbd", disks=["1G"], memory="1800M"))
    for node in nodes:  # ... then the nodes turn out smaller
        node.memory_total, node.memory_free = 2048 + 64, 2048  # barely anything unallocated
    n1 = findings(web1, "ENODEN1")
    assert n1, verify_op.verify(web1)["lines"]
    assert "not enough memory to accommodate instance failovers should node node1 fail" in n1[0]["message"]
    assert n1[0]["object"] == "node2"


# ------------------------------------------------------------------ the rules over real parser output

def drbd_instance(web1):
    return web1.store.load().instances["web1"]


def proc_of(minor, line):
    parsed = parse_proc_drbd(PROC_HEAD + f" {minor}: {line}\n"
                             "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:2048\n")
    return {"loaded": True, "minors": {str(k): v for k, v in parsed["minors"].items()}}


def test_split_brain_on_both_sides_is_named_with_the_resolution(web1):
    inst = drbd_instance(web1)
    minors = inst.disks[0].logical_id["minors"]
    proc = {"node1": proc_of(minors["node1"], "cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   r-----"),
            "node2": proc_of(minors["node2"], "cs:StandAlone ro:Secondary/Unknown ds:UpToDate/DUnknown   r-----")}
    problems = disk_health.drbd_problems(inst, proc)
    assert any("split brain" in p.message and "split_brain_survivor" in p.message for p in problems)


def test_out_of_sync_blocks_while_connected_are_an_error(web1):
    inst = drbd_instance(web1)
    minors = inst.disks[0].logical_id["minors"]
    proc = {"node1": proc_of(minors["node1"], "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----")}
    problems = disk_health.drbd_problems(inst, proc)
    assert [p.message.split(": ", 1)[1] for p in problems] == [
        "2048 KiB out of sync with node2 (cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate); disconnect and "
        "connect the resource to resync them"]


def test_a_primary_left_on_the_secondary_is_an_error(web1):
    inst = drbd_instance(web1)
    minors = inst.disks[0].logical_id["minors"]
    proc = {"node2": proc_of(minors["node2"], "cs:SyncTarget ro:Primary/Primary ds:Inconsistent/UpToDate C r-----")}
    problems = disk_health.drbd_problems(inst, proc)
    assert any(p.node == "node2" and "not the instance's primary (node1)" in p.message for p in problems)
    assert any(p.severity == "warning" and "resyncing" in p.message for p in problems)


def test_orphan_lv_from_real_classify_is_reported_and_owned_lvs_are_not(web1):
    config = web1.store.load()
    inst = config.instances["web1"]
    vg = config.cluster.volume_group
    mine = [classify(LogicalVolume(vg, f"{inst.disks[0].uuid}.disk0{s}", 1024, ["herd", "originstname+web1"]))
            for s in ("_data", "_meta")]
    orphan = classify(LogicalVolume(vg, "0b7e3c1e-1111-4222-8333-444455556666.disk0", 100,
                                    ["herd", "originstname+old"]))
    foreign = classify(LogicalVolume(vg, "root", 100, []))
    listing = {"lvs": mine + [orphan, foreign], "errors": [], "drbd": {"proc": None}}
    out = disk_health.node_problems(config, "node1", listing)
    assert [row[:3] for row in out] == [("warning", "ENODEORPHANLV", "node1")]
    assert "tagged for instance old" in out[0][3]
