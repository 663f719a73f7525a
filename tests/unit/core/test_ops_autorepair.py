"""autorepair (Ganeti's harep with herd:autorepair: tags): which instance gets which repair, the
opt-in inherited from instance, node group and cluster, never above the opt-in, and no retry
loop. The repairs run for real against the in-process nodes (the real agent; DRBD simulated
as the kernel holds it)."""

import pytest

from plugins.module_utils.herd.config import Config, Instance, Node, NodeGroup
from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.ops import autorepair, repair_tags
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import node as node_op
from plugins.module_utils.herd.ops import replace_disks

from .conftest import init_spec
from .test_ops_instance import spec

CHANGING = ("drbd_create", "drbd_attach", "drbd_connect", "drbd_disconnect", "disk_shutdown", "disk_remove",
            "drbd_set_mode", "instance_start", "instance_stop", "migration_start")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(replace_disks, "POLL_INTERVAL", 0)


@pytest.fixture
def web1(cluster):
    """A running drbd instance, primary node1, secondary node2; node3 is free."""
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G"], primary_node="node1", secondary_node="node2"))
    return cluster


def key(ctx, name="web1"):
    return f"{name}/{ctx.store.load().instances[name].disks[0].uuid}"


def changes_since(ctx, start):
    return [entry for entry in ctx.rpc.log[start:] if entry[1] in CHANGING]


def cluster_tags(ctx, tags):
    cluster_op.present(ctx, init_spec(tags=tags))


def instance_tags(ctx, tags, name="web1"):
    instance_op.ensure(ctx, {"name": name, "tags": tags})


def dead(ctx, nodes, index):
    """The node died and the operator marked it offline (harep's only signal, as herd's)."""
    nodes[index].reachable = False
    node_op.present(ctx, {"name": f"node{index + 1}", "offline": True})


def row(result, name="web1"):
    return next(r for r in result["instances"] if r["instance"] == name)


# --------------------------------------------------------------------------- policy (pure rules)

def config_with(cluster=(), group=(), inst=()):
    config = Config.__new__(Config)
    config.cluster = type("C", (), {"tags": list(cluster)})()
    config.nodegroups = {"g1": NodeGroup(name="g1", uuid="u", tags=list(group))}
    config.nodes = {"n1": Node(name="n1", uuid="u", primary_ip="192.0.2.1", secondary_ip="192.0.2.1", group="g1")}
    return config, Instance(name="i1", uuid="u", primary_node="n1", hypervisor="fake", disk_template="drbd",
                            tags=list(inst))


@pytest.mark.parametrize("cluster,group,inst,enabled,source", [
    ([], [], [], None, ""),
    (["herd:autorepair:failover"], [], [], "failover", "cluster"),
    (["herd:autorepair:failover"], ["herd:autorepair:fix-storage"], [], "fix-storage", "node group g1"),
    (["herd:autorepair:fix-storage"], [], ["herd:autorepair:failover"], "failover", "instance"),   # nearest wins
    ([], [], ["herd:autorepair:failover", "herd:autorepair:migrate"], "migrate", "instance"),    # least wins
    (["herd:autorepair:fix-storage", "herd:autorepair:reinstall"], [], [], "fix-storage", "cluster"),
    ([], ["herd:autorepair:migrate", "web", "herd:autorepair:result:migrate:4:100:failure"], [], "migrate",
     "node group g1"),
])
def test_the_opt_in_is_inherited_like_hareps(cluster, group, inst, enabled, source):
    config, instance = config_with(cluster, group, inst)
    found = repair_tags.policy(config, instance, at=1000.0)
    assert (found.enabled, found.source, found.suspended_until) == (enabled, source, None)


def test_a_suspend_tag_stops_what_an_outer_object_enabled_until_its_time():
    config, inst = config_with(["herd:autorepair:failover"], [], ["herd:autorepair:suspend:2000"])
    assert repair_tags.policy(config, inst, at=1000.0).suspended_until == 2000.0
    assert not repair_tags.policy(config, inst, at=1000.0).allows("fix-storage")
    later = repair_tags.policy(config, inst, at=3000.0)      # past: no longer suspends, the cluster's tag counts
    assert later.enabled == "failover" and later.allows("failover")
    config, inst = config_with([], ["herd:autorepair:suspend"], [])
    assert repair_tags.policy(config, inst, at=1e12).suspended_until == float("inf")


def test_never_more_than_the_opt_in_level():
    config, inst = config_with(["herd:autorepair:migrate"])
    found = repair_tags.policy(config, inst, at=0)
    assert found.allows("fix-storage") and found.allows("migrate") and not found.allows("failover")


@pytest.mark.parametrize("tag", ["herd:autorepair:reboot", "herd:autorepair:suspend:soon", "herd:autorepair:"])
def test_a_malformed_opt_in_tag_is_refused_naming_it(web1, tag):
    with pytest.raises(ValidationError, match=f"tag '{tag}' is not an autorepair tag herd knows"):
        instance_tags(web1, [tag])
    with pytest.raises(ValidationError, match=f"tag '{tag}'"):
        cluster_tags(web1, [tag])


# --------------------------------------------------------------------------- diagnosis and repairs

def test_a_healthy_cluster_has_nothing_to_repair(web1):
    cluster_tags(web1, ["herd:autorepair:failover"])
    result = autorepair.autorepair(web1)
    assert result["changed"] is False and result["instances"] == [] and result["msg"] == "nothing repaired"


def test_an_offline_secondary_is_replaced_through_the_allocator_when_fix_storage_is_allowed(web1, nodes):
    dead(web1, nodes, 1)
    cluster_tags(web1, ["herd:autorepair:fix-storage"])
    web1.check_mode = True
    start = len(web1.rpc.log)
    plan = autorepair.autorepair(web1)
    assert row(plan)["state"] == "would-repair" and row(plan)["needed"] == "fix-storage"
    assert "secondary node2 is offline" in row(plan)["msg"] and changes_since(web1, start) == []
    assert web1.store.load().instances["web1"].tags == []
    web1.check_mode = False
    result = autorepair.autorepair(web1)
    assert result["changed"] is True and result["repaired"] == ["web1"] and result["failures"] == []
    inst = web1.store.load().instances["web1"]
    assert (inst.primary_node, inst.secondary_node) == ("node1", "node3")
    assert nodes[0].drbd.status(key(web1))["connected"] and "web1" in nodes[0].running
    job = row(result)["job"]
    assert [t.split(":")[3:5] + t.split(":")[6:] for t in inst.tags] == [["fix-storage", str(job), "success"]]
    assert web1.journal.get(job)["status"] == "success"
    again = autorepair.autorepair(web1)            # healthy now: nothing to do, the record stays
    assert again["changed"] is False and again["instances"] == []


def test_without_an_opt_in_the_problem_is_only_reported(web1, nodes):
    dead(web1, nodes, 1)
    start = len(web1.rpc.log)
    result = autorepair.autorepair(web1)
    assert result["changed"] is False and row(result)["state"] == "not-allowed"
    assert "needs a fix-storage repair; autorepair is not enabled" in row(result)["msg"]
    assert changes_since(web1, start) == [] and web1.store.load().instances["web1"].secondary_node == "node2"


def test_an_offline_primary_needs_failover_and_fix_storage_is_not_enough(web1, nodes):
    instance_op.ensure(web1, spec(name="db1", disk_template="drbd", disks=["1G"], primary_node="node2",
                                  secondary_node="node3"))
    cluster_tags(web1, ["herd:autorepair:migrate"])
    dead(web1, nodes, 1)      # node2: db1's primary (and web1's secondary)
    web1.check_mode = True
    plan = autorepair.autorepair(web1)
    assert row(plan, "db1")["state"] == "not-allowed" and row(plan, "db1")["needed"] == "failover"
    assert row(plan)["state"] == "would-repair"         # web1 only needs fix-storage, which migrate includes
    web1.check_mode = False
    cluster_tags(web1, ["herd:autorepair:failover"])
    start = len(web1.rpc.log)
    result = autorepair.autorepair(web1, {"instances": ["db1"]})
    assert result["repaired"] == ["db1"] and not [e for e in changes_since(web1, start) if e[0] == "node1"]
    inst = web1.store.load().instances["db1"]
    assert (inst.primary_node, inst.secondary_node) == ("node3", "node2") and "db1" in nodes[2].running
    assert any(t.startswith("herd:autorepair:result:failover:") and t.endswith(":success") for t in inst.tags)
    assert web1.store.load().instances["web1"].secondary_node == "node2"   # not asked for in that run


def test_a_device_down_on_the_secondary_is_brought_up(web1, nodes):
    nodes[1].drbd.down(key(web1))           # node2 rebooted
    instance_tags(web1, ["herd:autorepair:fix-storage"])
    result = autorepair.autorepair(web1)
    assert row(result)["state"] == "repaired" and row(result)["action"] == "activate the disks on node2"
    assert nodes[0].drbd.status(key(web1))["connected"]
    assert web1.store.load().instances["web1"].secondary_node == "node2"


def test_a_stopped_instance_with_its_devices_down_is_left_alone(web1, nodes):
    instance_op.ensure(web1, {"name": "web1", "state": "stopped"})
    nodes[1].drbd.down(key(web1))
    cluster_tags(web1, ["herd:autorepair:failover"])
    assert autorepair.autorepair(web1)["instances"] == []


def test_a_failed_primary_disk_migrates_the_instance_away_when_migrate_is_allowed(web1, nodes):
    nodes[0].drbd[key(web1)]["disk"] = "Diskless"   # the primary's backing volume failed
    cluster_tags(web1, ["herd:autorepair:fix-storage"])
    result = autorepair.autorepair(web1)
    assert row(result)["state"] == "not-allowed" and row(result)["needed"] == "migrate"
    cluster_tags(web1, ["herd:autorepair:migrate"])
    result = autorepair.autorepair(web1)
    assert row(result)["state"] == "repaired", row(result)
    inst = web1.store.load().instances["web1"]
    assert inst.primary_node == "node2" and "web1" in nodes[1].running


def test_a_split_brain_is_never_repaired(web1, nodes):
    nodes[0].drbd.standalone(key(web1))
    nodes[1].drbd.standalone(key(web1))
    cluster_tags(web1, ["herd:autorepair:failover"])
    start = len(web1.rpc.log)
    result = autorepair.autorepair(web1)
    assert row(result)["state"] == "manual" and "split brain" in row(result)["msg"]
    assert "split_brain_survivor" in row(result)["msg"] and changes_since(web1, start) == []


def test_a_failed_repair_is_recorded_and_not_retried_until_reset(web1, nodes):
    dead(web1, nodes, 1)
    cluster_tags(web1, ["herd:autorepair:fix-storage"])
    nodes[2].fail["drbd_create"] = "lvcreate: Volume group gnt has insufficient free space"
    result = autorepair.autorepair(web1)
    assert result["changed"] is True and row(result)["state"] == "repair-failed"
    assert [f["instance"] for f in result["failures"]] == ["web1"] and "insufficient" in result["failures"][0]["reason"]
    inst = web1.store.load().instances["web1"]
    assert inst.secondary_node == "node2"                  # the replace-disks rollback: nothing changed
    job = row(result)["job"]
    assert [t for t in inst.tags if t.startswith("herd:autorepair:")] == [
        next(t for t in inst.tags if t.startswith(f"herd:autorepair:result:fix-storage:{job}:"))]
    assert inst.tags[0].endswith(":failure") and web1.journal.get(job)["status"] == "error"
    del nodes[2].fail["drbd_create"]
    for _run in range(2):                                  # the cause is gone, still no loop
        start = len(web1.rpc.log)
        again = autorepair.autorepair(web1)
        assert again["changed"] is False and row(again)["state"] == "failed"
        assert "reset: [web1]" in row(again)["msg"] and changes_since(web1, start) == []
    instance_tags(web1, ["web"])                           # declaring the tags keeps the repair state
    assert any(t.endswith(":failure") for t in web1.store.load().instances["web1"].tags)
    web1.check_mode = True
    plan = autorepair.autorepair(web1, {"reset": ["web1"]})
    assert plan["reset"] == ["web1"] and row(plan)["state"] == "would-repair"
    assert any(t.endswith(":failure") for t in web1.store.load().instances["web1"].tags)
    web1.check_mode = False
    result = autorepair.autorepair(web1, {"reset": ["web1"]})
    assert result["reset"] == ["web1"] and result["repaired"] == ["web1"]
    assert web1.store.load().instances["web1"].secondary_node == "node3"


def test_a_repair_whose_run_was_killed_counts_as_failed(web1, nodes):
    dead(web1, nodes, 1)
    cluster_tags(web1, ["herd:autorepair:fix-storage"])
    job = web1.journal.open("autorepair", {"name": "web1", "type": "fix-storage"})
    job.start()
    data = web1.journal.get(job.id)
    data["pid"] = 2 ** 22 + 12345                          # a process that does not exist: the run was killed
    web1.journal.write(data)
    pending = repair_tags.record_tag("pending", "fix-storage", job.id, 1000)
    inst = web1.store.load().instances["web1"]
    instance_tags(web1, inst.tags + [pending])
    start = len(web1.rpc.log)
    result = autorepair.autorepair(web1)
    assert row(result)["state"] == "failed" and row(result)["job"] == job.id and changes_since(web1, start) == []
    tags = web1.store.load().instances["web1"].tags
    assert pending not in tags and any(t.startswith(f"herd:autorepair:result:fix-storage:{job.id}:")
                                       and t.endswith(":failure") for t in tags)


def test_only_the_instances_asked_for_and_bad_names_are_refused(web1, nodes):
    with pytest.raises(ValidationError, match="Web_1"):
        autorepair.autorepair(web1, {"instances": ["Web_1"]})
    with pytest.raises(Exception, match="instance\\(s\\) db9 do not exist"):
        autorepair.autorepair(web1, {"reset": ["db9"]})
    # created before node2 dies: the allocator places nothing on a cluster that is no longer N+1
    instance_op.ensure(web1, spec(name="db1", disk_template="file", primary_node="node3"))
    dead(web1, nodes, 1)
    cluster_tags(web1, ["herd:autorepair:fix-storage"])
    result = autorepair.autorepair(web1, {"instances": ["db1"]})
    assert result["instances"] == [] and web1.store.load().instances["web1"].secondary_node == "node2"
