"""Live migration of a drbd instance commits the primary switch once the guest runs on the
target, then demotes the source; a failed demote is recorded, never leaves the config naming
the source, and cleanup demotes it (issue 9 bug 3).

The demote failure is injected at the RPC boundary: the in-process node cannot make a real
``drbdadm secondary`` fail ("Device is held open")."""

import pytest

from plugins.module_utils.herd.errors import RpcError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import migrate

from .test_ops_instance import spec


@pytest.fixture
def web1(cluster):
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G"]))
    return cluster


def failing_demote(ctx, node_name):
    real = ctx.rpc.call

    def call(endpoint, verb, args=None, timeout=None):
        if (verb == "drbd_set_mode" and endpoint.name == node_name and args.get("role") == "secondary"
                and not args.get("dual_primary")):
            raise RpcError(endpoint.name, verb, "drbd secondary failed (exit 11): 0: State change failed: "
                           "(-12) Device is held open by someone")
        return real(endpoint, verb, args, timeout)
    ctx.rpc.call = call
    return real


def test_a_failed_demote_after_migration_leaves_the_config_naming_the_target(web1, nodes):
    failing_demote(web1, "node1")
    result = migrate.migrate(web1, {"name": "web1"})
    inst = web1.store.load().instances["web1"]
    assert (inst.primary_node, inst.secondary_node) == ("node2", "node1")
    assert "web1" in nodes[1].running
    assert "demoting drbd on node1 failed" in result["msg"] and "Device is held open" in result["msg"]
    job = [j for j in web1.journal.list() if j["opcode"] == "instance_migrate"][-1]
    steps = {s["name"]: s["status"] for s in job["steps"]}
    assert steps["commit config: switch primary"] == "success"
    assert steps["drbd: single-primary on the target (demote the source)"] == "error"
    names = [s["name"] for s in job["steps"]]
    assert names.index("commit config: switch primary") < names.index(
        "drbd: single-primary on the target (demote the source)")


def test_cleanup_demotes_what_a_failed_demote_left_primary(web1, nodes):
    real = failing_demote(web1, "node1")
    migrate.migrate(web1, {"name": "web1"})
    web1.rpc.call = real
    key = f"web1/{web1.store.load().instances['web1'].disks[0].uuid}"
    nodes[0].drbd.set_role(key, "Primary")  # what the failed demote left
    nodes[0].drbd.modes.clear()
    result = migrate.migrate(web1, {"name": "web1", "cleanup": True})
    assert any("demote drbd on node1" in a for a in result["actions"])
    assert ("web1", "secondary", False) in nodes[0].drbd.modes


def test_a_clean_migration_commits_before_it_demotes(web1, nodes):
    migrate.migrate(web1, {"name": "web1"})
    job = [j for j in web1.journal.list() if j["opcode"] == "instance_migrate"][-1]
    names = [s["name"] for s in job["steps"]]
    assert names[-2:] == ["commit config: switch primary", "drbd: single-primary on the target (demote the source)"]
    assert job["status"] == "success"
