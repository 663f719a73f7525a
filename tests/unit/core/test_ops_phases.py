"""The lock phase of ``phases.Operation``: what ``acquire`` takes, when, and what it lets go early."""

import time

import pytest

from plugins.module_utils.herd.errors import LockError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import migrate, phases

from .test_ops_instance import spec


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_instance_nodes_are_read_under_the_instance_lock_and_locked_after_it(cluster):
    instance_op.ensure(cluster, spec(primary_node="node3"))
    taken = []

    class Recording:
        def instance(self, name):
            taken.append(("instance", name))
            # what another operation could have committed while this one waited for the lock
            config = cluster.store.load()
            config.instances[name].primary_node = "node2"
            cluster.store.save(config)
            return _Null()

        def node(self, name, shared=False):
            taken.append(("node", name, shared))
            return _Null()

    decl = phases.LockDecl(instances=["web1"], instance_nodes=True, shared_nodes=True)
    with phases.acquire(cluster, Recording(), decl):
        pass
    assert taken == [("instance", "web1"), ("node", "node2", True)]


def test_a_released_level_is_free_for_others_while_the_rest_stays_held(cluster):
    other = cluster.locks("another operation")
    decl = phases.LockDecl(node_alloc=True, nodes=["node1"])
    with phases.acquire(cluster, cluster.locks("this operation"), decl) as held:
        with pytest.raises(LockError), other.lock(phases.ALLOCATION_LOCK, timeout=0):
            pass
        held.release("node_alloc")
        with other.lock(phases.ALLOCATION_LOCK, timeout=0):
            pass
        with pytest.raises(LockError), other.node("node1", timeout=0):
            pass
    with other.node("node1", timeout=0):
        pass


def test_migrate_without_waiting_for_the_lock_fails_at_once_when_the_instance_is_busy(cluster):
    instance_op.ensure(cluster, spec(disk_template="sharedfile", primary_node="node1"))
    cluster.lock_timeout = 30
    with cluster.locks("a running operation").instance("web1"):
        started = time.monotonic()
        with pytest.raises(LockError, match="instance:web1"):
            migrate.migrate(cluster, {"name": "web1", "target_node": "node2", "wait_for_lock": False})
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("confirmed_for,asked", [(phases.MASTER_CONFIRMED_FOR, 1), (0.0, 2)])
def test_the_candidates_are_asked_again_under_the_locks_only_once_their_answer_is_old(
        cluster, nodes, monkeypatch, confirmed_for, asked):
    # 0 s: as after a long wait for the locks
    monkeypatch.setattr(phases, "MASTER_CONFIRMED_FOR", confirmed_for)
    before = nodes[1].calls.count("cluster_membership")
    instance_op.ensure(cluster, spec())
    assert nodes[1].calls.count("cluster_membership") - before == asked
