"""instance_replace_disks (Ganeti's replace-disks -n / -I, mode replace_new_secondary) against the
in-process fake nodes, whose DRBD model is Connected only when both sides are up and point at each
other, and syncs an Inconsistent new secondary from an UpToDate primary."""

import pytest

from plugins.module_utils.herd.allocator import placement as allocator_placement
from plugins.module_utils.herd.errors import HerdError, PrerequisiteError, RpcError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import evacuate, migrate, rebalance, replace_disks
from plugins.module_utils.herd.ops import node as node_op

from .test_ops_instance import spec

CHANGING = ("drbd_create", "disk_shutdown", "drbd_disconnect", "drbd_connect", "drbd_attach", "disk_remove")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(replace_disks, "POLL_INTERVAL", 0)


@pytest.fixture
def web1(cluster):
    """A running drbd instance with two disks, primary node1, secondary node2; node3 is free."""
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G", "2G"], primary_node="node1", secondary_node="node2"))
    return cluster


def keys(ctx, name="web1"):
    return [f"{name}/{d.uuid}" for d in ctx.store.load().instances[name].disks]


def changes_since(ctx, start):
    return [entry for entry in ctx.rpc.log[start:] if entry[1] in CHANGING]


def status(ctx, node, key):
    return node.drbd.status(key)


def job_steps(ctx):
    job = [j for j in ctx.journal.list() if j["opcode"] == "instance_replace_disks"][-1]
    return job, [s["name"] for s in job["steps"]]


def test_the_secondary_moves_in_ganetis_order_while_the_instance_runs(web1, nodes):
    before = web1.store.load().instances["web1"]
    start = len(web1.rpc.log)
    result = replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert result["changed"] and result["synced"] is True
    assert (result["old_secondary"], result["new_secondary"]) == ("node2", "node3")
    assert changes_since(web1, start) == [
        ("node3", "drbd_create", 0), ("node3", "drbd_create", 1),           # new storage, standalone
        ("node2", "disk_shutdown", 0), ("node2", "disk_shutdown", 1),       # drbd down on the old secondary
        ("node1", "drbd_disconnect", 0), ("node1", "drbd_disconnect", 1),   # primary StandAlone
        ("node1", "drbd_connect", 0), ("node3", "drbd_connect", 0),         # after the commit
        ("node1", "drbd_connect", 1), ("node3", "drbd_connect", 1),
        ("node2", "disk_remove", 0), ("node2", "disk_remove", 1),           # old storage, last
    ]
    _job, steps = job_steps(web1)
    assert steps == ["create storage on the new secondary", "shut down drbd on the old secondary",
                     "disconnect the primary", "commit config: new secondary",
                     "connect the primary to the new secondary", "wait for the resync", "remove the old storage"]
    after = web1.store.load().instances["web1"]
    assert after.primary_node == "node1" and after.secondary_node == "node3"
    for old, new in zip(before.disks, after.disks):
        assert new.logical_id["minors"] == {"node1": old.logical_id["minors"]["node1"],
                                            "node3": result["minors"][before.disks.index(old)]}
        assert (new.logical_id["port"], new.logical_id["secret"]) == (old.logical_id["port"], old.logical_id["secret"])
    assert result["minors"] == [0, 1]
    for key in keys(web1):
        assert key not in nodes[1].disks and key not in nodes[1].drbd
        assert key in nodes[2].disks
        assert status(web1, nodes[0], key)["connected"] and status(web1, nodes[0], key)["peer_uptodate"]
    assert "web1" in nodes[0].running
    assert "instance_stop" not in nodes[0].calls[nodes[0].calls.index("instance_start"):]


def test_a_second_identical_run_changes_nothing(web1, nodes):
    replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    serial = web1.store.load().serial_no
    start = len(web1.rpc.log)
    again = replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert again["changed"] is False and "already the secondary" in again["msg"]
    assert web1.store.load().serial_no == serial and changes_since(web1, start) == []


def test_the_allocator_chooses_the_new_secondary_when_none_is_given(web1, nodes):
    result = replace_disks.replace(web1, {"name": "web1"})
    assert result["new_secondary"] == "node3"  # hail relocate: not the primary, not the old secondary
    assert web1.store.load().instances["web1"].secondary_node == "node3"


def test_the_allocator_answer_is_what_is_used(web1, nodes, monkeypatch):
    asked = []

    def relocate(config, facts, name):
        asked.append((name, config["instances"][name]["secondary_node"]))
        return {"success": True, "secondary": "node3", "reasons": ["node1: is the primary"]}

    monkeypatch.setattr(allocator_placement, "relocate", relocate)
    result = replace_disks.replace(web1, {"name": "web1"})
    assert asked == [("web1", "node2")] and result["reasons"] == ["node1: is the primary"]


def test_an_allocator_without_answer_is_a_clear_refusal(web1, nodes, monkeypatch):
    monkeypatch.setattr(allocator_placement, "relocate", lambda config, facts, name: {
        "success": False, "reasons": ["node3: FailDisk needs 1792 MiB"]})
    with pytest.raises(PrerequisiteError, match="no new secondary for web1 .*node3: FailDisk needs 1792 MiB"):
        replace_disks.replace(web1, {"name": "web1"})


@pytest.mark.parametrize("remote,prepare,error,message", [
    ("node1", None, PrerequisiteError, "new secondary node1 is the primary node of the instance"),
    ("node9", None, PrerequisiteError, "node node9 is not in the cluster"),
    ("node3", {"drained": True}, PrerequisiteError, "new secondary: node node3 is drained"),
    ("node3", {"offline": True}, PrerequisiteError, "new secondary: node node3 is offline"),
    ("node3", {"vm_capable": False}, PrerequisiteError, "new secondary: node node3 is not vm_capable"),
    ("Node_3", None, ValidationError, "invalid remote_node 'Node_3'"),
])
def test_refusals_name_the_value_and_touch_nothing(web1, nodes, remote, prepare, error, message):
    if prepare:
        node_op.present(web1, dict(name="node3", **prepare))
    config = web1.store.load()
    start = len(web1.rpc.log)
    with pytest.raises(error, match=message):
        replace_disks.replace(web1, {"name": "web1", "remote_node": remote})
    assert changes_since(web1, start) == []
    assert web1.store.load().serial_no == config.serial_no
    assert not [j for j in web1.journal.list() if j["opcode"] == "instance_replace_disks"]


def test_a_non_drbd_instance_is_refused(cluster):
    instance_op.ensure(cluster, spec(disk_template="file"))
    with pytest.raises(PrerequisiteError, match="instance web1 uses file disks: replace-disks gives a drbd"):
        replace_disks.replace(cluster, {"name": "web1", "remote_node": "node3"})


def test_an_unknown_instance_is_refused(cluster):
    with pytest.raises(PrerequisiteError, match="instance web9 does not exist"):
        replace_disks.replace(cluster, {"name": "web9", "remote_node": "node3"})


def test_a_primary_that_is_not_uptodate_is_refused(web1, nodes):
    nodes[0].drbd[keys(web1)[1]]["disk"] = "Inconsistent"
    start = len(web1.rpc.log)
    with pytest.raises(PrerequisiteError, match="disk 1 of web1 is Inconsistent, not UpToDate, on its primary node1"):
        replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert changes_since(web1, start) == []


def test_leftovers_on_the_new_node_are_refused_not_overwritten(web1, nodes):
    nodes[2].drbd.volumes(keys(web1)[0], 1024)  # an earlier placement whose cleanup was skipped
    with pytest.raises(PrerequisiteError, match="node3 still holds disk 0 of the instance .*lvremove"):
        replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert nodes[2].disks == {keys(web1)[0]: 1024}


def test_a_failed_create_on_the_new_node_is_rolled_back(web1, nodes, monkeypatch):
    config = web1.store.load()
    real = nodes[2].drbd.answer

    def second_disk_fails(verb, args):
        if verb == "drbd_create" and args["index"] == 1:
            real(verb, args)  # its volumes exist, then create-md fails
            raise RpcError("node3", verb, "drbdmeta: create-md failed: No space left on device")
        return real(verb, args)

    monkeypatch.setattr(nodes[2].drbd, "answer", second_disk_fails)
    with pytest.raises(RpcError, match="No space left on device"):
        replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert nodes[2].disks == {} and nodes[2].drbd == {}                  # nothing left on the new node
    after = web1.store.load()
    assert after.serial_no == config.serial_no and after.instances["web1"].secondary_node == "node2"
    for key in keys(web1):
        assert status(web1, nodes[0], key)["connected"] and nodes[0].drbd[key]["peer"] == "node2"
        assert key in nodes[1].disks
    job, steps = job_steps(web1)
    assert job["status"] == "error" and "rollback: remove disk 1 from node3" in steps


def test_a_failed_disconnect_brings_the_old_secondary_back_and_reconnects_the_primary(web1, nodes, monkeypatch):
    def second_disconnect_fails(node, real):
        def answer(verb, args):
            if verb == "drbd_disconnect" and args["index"] == 1:
                raise RpcError(node.name, verb, "drbdsetup disconnect: timeout")
            return real(verb, args)
        return answer

    for node in nodes:
        monkeypatch.setattr(node.drbd, "answer", second_disconnect_fails(node, node.drbd.answer))
    with pytest.raises(RpcError, match="timeout"):
        replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert web1.store.load().instances["web1"].secondary_node == "node2"
    assert nodes[2].disks == {} and nodes[2].drbd == {}
    for key in keys(web1):
        assert key in nodes[1].drbd                                       # up again on the old secondary
        assert status(web1, nodes[0], key)["connected"] and nodes[0].drbd[key]["peer"] == "node2"
    _job, steps = job_steps(web1)
    assert steps.index("rollback: reconnect disk 0 of node1 to node2") < steps.index(
        "rollback: bring disk 0 up again on node2") < steps.index("rollback: remove disk 0 from node3")


def test_an_offline_old_secondary_is_skipped_with_a_warning(web1, nodes):
    node_op.present(web1, {"name": "node2", "offline": True})
    start = len(web1.rpc.log)
    result = replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert web1.store.load().instances["web1"].secondary_node == "node3"
    assert not [e for e in web1.rpc.log[start:] if e[0] == "node2"]
    assert result["left_on_old"] and all(v.startswith("gnt/") for v in result["left_on_old"])
    assert any("old secondary node2 of web1 is offline" in w and "remove them when it is back" in w
               for w in web1.warnings)


def test_check_mode_reports_the_plan_and_touches_nothing(web1, nodes):
    web1.check_mode = True
    serial = web1.store.load().serial_no
    start = len(web1.rpc.log)
    result = replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert result["changed"] is True and result["new_secondary"] == "node3" and result["minors"] == [0, 1]
    assert result["diff"]["before"]["secondary_node"] == "node2"
    assert result["diff"]["after"]["secondary_node"] == "node3"
    assert "commit: secondary node2 -> node3" in result["actions"]
    assert changes_since(web1, start) == [] and web1.store.load().serial_no == serial
    assert nodes[2].disks == {} and not [j for j in web1.journal.list() if j["opcode"] == "instance_replace_disks"]


def test_without_wait_for_sync_the_old_storage_goes_at_once(web1, nodes):
    result = replace_disks.replace(web1, {"name": "web1", "remote_node": "node3", "wait_for_sync": False})
    assert result["synced"] is False and "resync continues in the background" in result["msg"]
    _job, steps = job_steps(web1)
    assert "wait for the resync" not in steps
    assert all(key not in nodes[1].disks for key in keys(web1))


def test_the_resync_progress_goes_to_the_job_log(web1, nodes, monkeypatch):
    lines = []
    from plugins.module_utils.herd.jobs import Job
    real_log = Job.log
    monkeypatch.setattr(Job, "log", lambda self, message: (lines.append(message), real_log(self, message)))
    replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert "resync to node3: disk 0 0.0% synced, 3 s left; disk 1 0.0% synced, 3 s left" in lines
    assert lines[-1].startswith("resync to node3 done")


def test_a_replacement_stopped_after_its_commit_is_finished_by_the_next_run(web1, nodes):
    nodes[2].fail["drbd_connect"] = "connect: Network is unreachable"
    with pytest.raises(HerdError, match="config names node3 as the secondary of web1 .*run "
                                        "herd.cluster.instance_replace_disks for web1 again"):
        replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert web1.store.load().instances["web1"].secondary_node == "node3"
    assert all(key in nodes[1].disks for key in keys(web1))              # old copy kept until in sync
    del nodes[2].fail["drbd_connect"]
    result = replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})
    assert result["changed"] and result["synced"] and "finished the replacement" in result["msg"]
    assert all(key not in nodes[1].disks for key in keys(web1))
    assert replace_disks.replace(web1, {"name": "web1", "remote_node": "node3"})["changed"] is False


def interrupted_replacement(web1):
    """A replace-disks whose master died after the new node's devices were made and the old
    secondary was taken down, before its commit."""
    config = web1.store.load()
    inst = config.instances["web1"]
    job = web1.journal.open("instance_replace_disks", {
        "name": "web1", "primary": "node1", "old_secondary": "node2", "new_secondary": "node3",
        "old_minors": replace_disks.secondary_minors(inst), "new_minors": [0, 1]})
    job.start()
    data = web1.journal.get(job.id)
    data["pid"] = 2 ** 22 + 4324
    web1.journal.write(data)
    planned = replace_disks.with_secondary(inst, "node3", [0, 1])
    for index in range(2):
        replace_disks.disk_call(web1, config, planned, index, "node3", "drbd_create", standalone=True)
        replace_disks.disk_call(web1, config, inst, index, "node2", "disk_shutdown")
        replace_disks.disk_call(web1, config, inst, index, "node1", "drbd_disconnect")
    return job


def test_an_interrupted_replacement_before_its_commit_is_rolled_back_by_the_next_operation(web1, nodes):
    job = interrupted_replacement(web1)
    instance_op.ensure(web1, spec(disk_template="drbd", disks=["1G", "2G"]))
    assert nodes[2].disks == {} and nodes[2].drbd == {}
    for key in keys(web1):
        assert status(web1, nodes[0], key)["connected"] and nodes[0].drbd[key]["peer"] == "node2"
    assert web1.journal.get(job.id)["status"] == "error"


@pytest.mark.parametrize("operation", ["migrate", "failover", "migrate_cleanup"])
def test_an_interrupted_replacement_is_repaired_by_a_later_migration_or_failover(
        web1, nodes, operation, monkeypatch):
    monkeypatch.setattr(allocator_placement, "relocate",
                        lambda config, facts, name: {"success": True, "primary": "node2"})
    job = interrupted_replacement(web1)
    if operation == "failover":
        migrate.failover(web1, {"name": "web1", "target_node": "node2"})
    else:
        migrate.migrate(web1, {"name": "web1", "target_node": "node2", "cleanup": operation == "migrate_cleanup"})
    assert web1.journal.get(job.id)["status"] == "error"
    assert nodes[2].disks == {} and nodes[2].drbd == {}          # what the job made on node3 is gone
    for key in keys(web1):
        assert key in nodes[1].drbd                              # the old secondary is up again


# --------------------------------------------------------------------------- evacuate and rebalance

def test_evacuate_secondary_mode_gives_each_drbd_instance_a_new_secondary(cluster, nodes):
    for name in ("db1", "db2"):
        instance_op.ensure(cluster, spec(name=name, disk_template="drbd", disks=["2G"]))
    node_op.present(cluster, {"name": "node2", "drained": True})
    result = evacuate.evacuate(cluster, {"node": "node2", "mode": "secondary", "max_parallel": 2})
    assert result["failed"] == []
    assert sorted((m["instance"], m["to"], m["how"]) for m in result["moved"]) == [
        ("db1", "node3", "replace_disks"), ("db2", "node3", "replace_disks")]
    config = cluster.store.load()
    assert {config.instances[n].secondary_node for n in ("db1", "db2")} == {"node3"}
    assert nodes[1].disks == {} and nodes[1].drbd == {}
    minors = sorted(config.instances[n].disks[0].logical_id["minors"]["node3"] for n in ("db1", "db2"))
    assert minors == [0, 1]  # parallel replacements never share a minor


def test_evacuate_secondary_mode_in_check_mode_plans_only(cluster, nodes):
    instance_op.ensure(cluster, spec(name="db1", disk_template="drbd", disks=["2G"]))
    cluster.check_mode = True
    result = evacuate.evacuate(cluster, {"node": "node2", "mode": "secondary"})
    assert result["planned"] == [{"instance": "db1", "from": "node2", "to": "node3", "how": "replace_disks"}]
    assert result["moved"] == [] and nodes[2].disks == {}


def test_evacuate_all_fails_over_then_replaces_the_secondary_left_behind(cluster, nodes):
    instance_op.ensure(cluster, spec(name="db1", disk_template="drbd", disks=["2G"]))
    cluster.check_mode = True
    planned = evacuate.evacuate(cluster, {"node": "node1", "mode": "all"})["planned"]
    assert [(p["how"], p["to"]) for p in planned] == [("migrate", "node2"), ("replace_disks", "node3")]
    cluster.check_mode = False
    result = evacuate.evacuate(cluster, {"node": "node1", "mode": "all"})
    assert result["failed"] == [] and len(result["moved"]) == 2
    inst = cluster.store.load().instances["db1"]
    assert (inst.primary_node, inst.secondary_node) == ("node2", "node3")
    assert nodes[0].disks == {}


def test_rebalance_executes_replace_secondary_moves_step_by_step(web1, nodes, monkeypatch):
    move = {"instance": "web1", "move": "f r:node3 f", "kind": "frf", "target": "node3",
            "old_primary": "node1", "old_secondary": "node2", "new_primary": "node3", "new_secondary": "node2",
            "score": 0.5, "nodes": ["node1", "node2", "node3"],
            "commands": ["migrate -f web1", "replace-disks -n node3 web1", "migrate -f web1"],
            "steps": [{"op": "migrate", "node": None}, {"op": "replace_secondary", "node": "node3"},
                      {"op": "migrate", "node": None}]}
    monkeypatch.setattr(rebalance, "plan", lambda ctx, params: {
        "moves": [move], "jobsets": [["web1"]], "initial_score": 1.0, "final_score": 0.5, "groups": []})
    result = rebalance.execute(web1, {"execute": True})
    assert result["failures"] == [] and result["changed"]
    assert result["executed"][0]["steps"] == move["commands"]
    inst = web1.store.load().instances["web1"]
    assert (inst.primary_node, inst.secondary_node) == ("node3", "node2")
    assert all(key not in nodes[0].disks for key in keys(web1))          # node1 left the instance
    assert "web1" in nodes[2].running


def test_rebalance_executes_a_plain_r_move(web1, nodes, monkeypatch):
    move = {"instance": "web1", "move": "r:node3", "kind": "r", "target": "node3", "old_primary": "node1",
            "old_secondary": "node2", "new_primary": "node1", "new_secondary": "node3", "score": 0.5,
            "nodes": ["node1", "node2", "node3"], "commands": ["replace-disks -n node3 web1"],
            "steps": [{"op": "replace_secondary", "node": "node3"}]}
    monkeypatch.setattr(rebalance, "plan", lambda ctx, params: {
        "moves": [move], "jobsets": [["web1"]], "initial_score": 1.0, "final_score": 0.5, "groups": []})
    result = rebalance.execute(web1, {"execute": True})
    assert result["executed"] == [{"instance": "web1", "ok": True, "move": "r:node3",
                                   "steps": ["replace-disks -n node3 web1"]}]
    assert web1.store.load().instances["web1"].secondary_node == "node3"


def test_rebalance_refuses_a_command_it_does_not_know_before_moving_anything(web1, monkeypatch):
    move = {"instance": "web1", "move": "x", "kind": "x", "commands": ["change-group web1"],
            "steps": [{"op": "change_group", "node": None}]}
    monkeypatch.setattr(rebalance, "plan", lambda ctx, params: {
        "moves": [move], "jobsets": [["web1"]], "initial_score": 1.0, "final_score": 0.5, "groups": []})
    with pytest.raises(HerdError, match="step .*change_group.* is not one this executor knows"):
        rebalance.execute(web1, {"execute": True})
