import pytest

from plugins.module_utils.herd.allocator import placement as allocator_placement
from plugins.module_utils.herd.errors import HerdError, PrerequisiteError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import evacuate, migrate

from .test_ops_instance import spec


@pytest.fixture
def relocate_to_node2(monkeypatch):
    monkeypatch.setattr(allocator_placement, "relocate", lambda config, facts, name: {"success": True, "primary": "node2"})
    monkeypatch.setattr(allocator_placement, "evacuate", lambda config, facts, node, names: {
        n: {"target": "node3" if i % 2 else "node2"} for i, n in enumerate(names)})


@pytest.fixture
def web1(cluster):
    instance_op.ensure(cluster, spec(disk_template="sharedfile"))
    return cluster


def test_live_migration_moves_the_process_and_then_the_config(web1, nodes, relocate_to_node2):
    result = migrate.migrate(web1, {"name": "web1"})
    assert result["target"] == "node2" and result["migration"]["status"] == "completed"
    assert "web1" in nodes[1].running and "web1" not in nodes[0].running
    assert web1.store.load().instances["web1"].primary_node == "node2"


def test_failed_migration_resumes_source_kills_target_and_keeps_config(web1, nodes, relocate_to_node2):
    nodes[0].answers["migration_status"] = {
        "status": "failed", "error": "Unable to write to socket: Connection reset by peer"}
    with pytest.raises(HerdError, match="migration of web1 failed: Unable to write to socket"):
        migrate.migrate(web1, {"name": "web1"})
    assert web1.store.load().instances["web1"].primary_node == "node1"
    assert nodes[1].incoming == {} and "web1" not in nodes[1].running
    assert nodes[0].aborted == ["web1"] and "web1" in nodes[0].running
    job = web1.journal.list()[-1]
    assert job["status"] == "error" and "Connection reset by peer" in job["last_message"]


def test_migration_to_a_drained_node_is_refused(web1, nodes):
    from plugins.module_utils.herd.ops import node as node_op
    node_op.present(web1, {"name": "node2", "drained": True})
    with pytest.raises(PrerequisiteError, match="node node2 is drained"):
        migrate.migrate(web1, {"name": "web1", "target_node": "node2"})


def test_migration_in_check_mode_touches_nothing(web1, nodes, relocate_to_node2):
    web1.check_mode = True
    result = migrate.migrate(web1, {"name": "web1"})
    assert result["changed"] and result["target"] == "node2"
    assert nodes[1].incoming == {} and web1.store.load().instances["web1"].primary_node == "node1"


def test_stopped_instance_needs_fallback_to_failover(web1, nodes, relocate_to_node2):
    instance_op.ensure(web1, spec(disk_template="sharedfile", state="stopped"))
    with pytest.raises(PrerequisiteError, match="not running"):
        migrate.migrate(web1, {"name": "web1"})
    result = migrate.migrate(web1, {"name": "web1", "fallback_to_failover": True})
    assert result["target"] == "node2"
    assert web1.store.load().instances["web1"].primary_node == "node2"
    assert "web1" not in nodes[1].running  # it was down, it stays down


def test_local_disks_cannot_migrate(cluster):
    instance_op.ensure(cluster, spec(disk_template="file"))
    with pytest.raises(PrerequisiteError, match="file disks, which live on one node only"):
        migrate.migrate(cluster, {"name": "web1"})


def test_failover_restarts_on_the_target(web1, nodes, relocate_to_node2):
    migrate.failover(web1, {"name": "web1"})
    assert "web1" in nodes[1].running and "web1" not in nodes[0].running
    assert web1.store.load().instances["web1"].primary_node == "node2"


def test_failover_from_a_dead_primary_needs_ignore_consistency(web1, nodes, relocate_to_node2):
    nodes[0].reachable = False
    # the master itself is node1 in these tests: use a second instance on node3 instead
    nodes[0].reachable = True
    instance_op.ensure(web1, spec(name="web2", disk_template="sharedfile", primary_node="node3"))
    nodes[2].reachable = False
    with pytest.raises(PrerequisiteError, match="primary node3 of web2 does not answer"):
        migrate.failover(web1, {"name": "web2"})
    migrate.failover(web1, {"name": "web2", "ignore_consistency": True})
    assert web1.store.load().instances["web2"].primary_node == "node2"
    assert "web2" in nodes[1].running


def test_cleanup_after_a_completed_migration_finalizes_both_and_switches(web1, nodes):
    # the migration completed but the module died before finalizing and switching the config
    runtime = nodes[0].running["web1"]
    nodes[1].put("web1", runtime)
    nodes[0].put("web1", runtime, "postmigrate")
    result = migrate.migrate(web1, {"name": "web1", "cleanup": True})
    assert result["changed"] and web1.store.load().instances["web1"].primary_node == "node2"
    assert "web1" not in nodes[0].migrated and "web1" in nodes[1].running


def test_cleanup_of_a_half_done_migration_kills_the_target_and_resumes_the_source(web1, nodes):
    nodes[1].put("web1", nodes[0].running["web1"], "incoming")
    result = migrate.migrate(web1, {"name": "web1", "cleanup": True})
    assert web1.store.load().instances["web1"].primary_node == "node1"
    assert nodes[1].incoming == {} and nodes[0].aborted == ["web1"]
    assert "kill the incoming process on node2" in result["actions"]


def test_any_later_migrate_repairs_an_interrupted_one_first(web1, nodes):
    job = web1.journal.open("instance_migrate", {"name": "web1"})
    job.start()
    data = web1.journal.get(job.id)
    data["pid"] = 2 ** 22 + 4321
    web1.journal.write(data)
    nodes[1].put("web1", nodes[0].running["web1"], "incoming")
    result = migrate.migrate(web1, {"name": "web1"})
    assert result["actions"][0] == "kill the incoming process on node2"
    assert web1.journal.get(job.id)["status"] == "error"


def test_evacuate_moves_every_primary_in_parallel(cluster, nodes, relocate_to_node2):
    for i in range(3):
        instance_op.ensure(cluster, spec(name=f"vm{i}", disk_template="sharedfile", primary_node="node1"))
    result = evacuate.evacuate(cluster, {"node": "node1", "mode": "primary", "max_parallel": 3})
    assert len(result["moved"]) == 3 and result["failed"] == []
    config = cluster.store.load()
    assert all(config.instances[f"vm{i}"].primary_node != "node1" for i in range(3))
    assert nodes[0].running == {}


def test_evacuate_reports_what_cannot_move(cluster, relocate_to_node2):
    instance_op.ensure(cluster, spec(name="local1", disk_template="file"))
    result = evacuate.evacuate(cluster, {"node": "node1", "mode": "primary"})
    assert result["failed"] == [{"instance": "local1",
                                 "reason": "file disks live on node1 only; it cannot be moved"}]


def test_an_instance_operation_repairs_an_interrupted_migration(web1, nodes):
    job = web1.journal.open("instance_migrate", {"name": "web1"})
    job.start()
    data = web1.journal.get(job.id)
    data["pid"] = 2 ** 22 + 4322
    web1.journal.write(data)
    runtime = nodes[0].running["web1"]
    nodes[1].put("web1", runtime)
    nodes[0].put("web1", runtime, "postmigrate")
    instance_op.ensure(web1, spec(disk_template="sharedfile", primary_node=None))
    assert web1.store.load().instances["web1"].primary_node == "node2"
    assert "web1" not in nodes[0].migrated


def test_verify_reports_a_stale_copy_and_cleanup_stops_it(web1, nodes):
    from plugins.module_utils.herd.ops import verify as verify_op
    nodes[2].put("web1", nodes[0].running["web1"])  # node3 came back with an old copy
    findings = verify_op.verify(web1)["findings"]
    assert any(f["code"] == "EINSTANCEWRONGNODE" and "runs on node3" in f["message"] for f in findings)
    result = migrate.migrate(web1, {"name": "web1", "cleanup": True})
    assert result["actions"] == ["stop the second copy on node3"]  # nothing was paused: no resume
    assert "web1" not in nodes[2].running and "web1" in nodes[0].running
    assert verify_op.verify(web1)["ok"]


def test_verify_reports_an_instance_the_config_does_not_know(web1, nodes):
    from plugins.module_utils.herd.ops import verify as verify_op
    nodes[1].put("ghost", dict(nodes[0].running["web1"], name="ghost"))
    findings = verify_op.verify(web1)["findings"]
    assert any(f["code"] == "ENODEORPHANINSTANCE" and f["object"] == "node2" for f in findings)


# ------------------------------------------------------- a named target is judged by the allocator's rules

def _tag(ctx, cluster_tags, node_tags):
    from plugins.module_utils.herd.ops import cluster as cluster_op
    from plugins.module_utils.herd.ops import node as node_op
    cluster_op.present(ctx, {"name": "cluster.example", "tags": cluster_tags})
    for name, tags in node_tags.items():
        node_op.present(ctx, {"name": name, "tags": tags})


def test_a_named_target_without_the_sources_migration_tag_is_refused(web1):
    _tag(web1, ["htools:migration:rack"], {"node1": ["rack:a"], "node3": ["rack:b"]})
    with pytest.raises(PrerequisiteError, match="node3: FailMig.*rack:a"):
        migrate.migrate(web1, {"name": "web1", "target_node": "node3"})


def test_allowmigration_lets_a_named_target_receive_from_another_tag(web1, nodes):
    _tag(web1, ["htools:migration:rack", "htools:allowmigration:rack:a::rack:b"],
         {"node1": ["rack:a"], "node3": ["rack:b"]})
    migrate.migrate(web1, {"name": "web1", "target_node": "node3"})
    assert "web1" in nodes[2].running


def test_a_migration_tag_prefix_matches_only_up_to_its_colon(web1, nodes):
    _tag(web1, ["htools:migration:rack"], {"node1": ["rackspace"]})  # not a "rack:" tag
    migrate.migrate(web1, {"name": "web1", "target_node": "node3"})
    assert "web1" in nodes[2].running


def test_a_named_target_that_would_break_n_plus_1_is_refused_like_a_chosen_one(web1, nodes):
    for node in nodes:
        node.memory_total, node.memory_free = 1024, 1000
    # node3 has the memory for web1 (256 MiB), but then not the 800 MiB to absorb db1's failover
    instance_op.ensure(web1, spec(name="db1", disk_template="drbd", memory="800M", primary_node="node2",
                                  secondary_node="node3"))
    with pytest.raises(PrerequisiteError, match="node3: FailMem"):
        migrate.migrate(web1, {"name": "web1", "target_node": "node3"})
