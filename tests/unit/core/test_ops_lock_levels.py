"""Operations in two real processes take their locks by level, in one order (issue 11 item 5):
a node removal racing an instance creation never leaves an instance on a removed node."""

import multiprocessing
import os
import time

import pytest

from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import migrate, nodecalls, phases
from plugins.module_utils.herd.ops import node as node_op

from .test_ops_instance import spec

FORK = multiprocessing.get_context("fork")


def _wait_for(path: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


def _outcome(queue, func, *args) -> None:
    try:
        func(*args)
        queue.put((os.getpid(), "ok"))
    except Exception as exc:  # the parent asserts on what each process saw
        queue.put((os.getpid(), f"{type(exc).__name__}: {exc}"))


def _create_pausing_after_placement(ctx, queue, placed: str, pause: float) -> None:
    real = nodecalls.disk_create

    def slow_disk_create(*args, **kwargs):
        with open(placed, "w"):
            pass
        time.sleep(pause)  # the window in which a removal would slip in
        return real(*args, **kwargs)

    nodecalls.disk_create = slow_disk_create
    ctx.lock_timeout = 30
    _outcome(queue, instance_op.ensure, ctx, spec(primary_node="node3"))


def _remove_once_placed(ctx, queue, placed: str) -> None:
    _wait_for(placed)
    ctx.lock_timeout = 30
    _outcome(queue, node_op.absent, ctx, {"name": "node3"})


def _run_both(first, second) -> dict:
    queue = FORK.Queue()
    procs = [FORK.Process(target=f, args=(queue, *a)) for f, a in (first, second)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    outcomes = dict(queue.get(timeout=5) for _proc in procs)
    return {name: outcomes[proc.pid] for name, proc in zip(("first", "second"), procs)}


def test_a_node_removal_racing_an_instance_creation_never_commits_an_instance_on_a_removed_node(
        cluster, tmp_path):
    placed = str(tmp_path / "placed")
    outcome = _run_both((lambda q, *a: _create_pausing_after_placement(cluster, q, placed, 1.0), ()),
                        (lambda q, *a: _remove_once_placed(cluster, q, placed), ()))
    config = cluster.store.load()
    for inst in config.instances.values():
        assert set(inst.nodes()) <= set(config.nodes), (inst.name, inst.nodes(), sorted(config.nodes))
    # the removal waited for the creation's allocation lock, then found the new instance on the node
    assert outcome["first"] == "ok"
    assert "node node3 still holds instances ['web1']" in outcome["second"]
    assert "web1" in config.instances and "node3" in config.nodes


def test_a_commit_refers_only_to_nodes_that_still_exist(cluster):
    config = cluster.store.load()
    locks = cluster.locks("test")
    with pytest.raises(Exception, match=r"node\(s\) node9 were removed from the cluster while it ran"):
        phases.commit(cluster, locks, lambda fresh: None, nodes=["node1", "node9"], what="test")
    assert cluster.store.load().serial_no == config.serial_no


def test_locks_are_declared_by_level_and_taken_in_one_order(cluster):
    taken = []

    class Recording:
        def instance(self, name):
            taken.append(("instance", name))
            return _Null()

        def lock(self, kind, timeout=None):
            taken.append((kind, ""))
            return _Null()

        def node(self, name, shared=False):
            taken.append(("node", name))
            return _Null()

    decl = phases.LockDecl(instances=["b", "a"], node_alloc=True, nodes=["node3", "node1"])
    with phases.acquire(cluster, Recording(), decl):
        pass
    assert taken == [("instance", "a"), ("instance", "b"), ("allocation", ""), ("node", "node1"),
                     ("node", "node3")]


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_migrate_holds_its_nodes_so_the_target_cannot_be_removed_meanwhile(cluster, tmp_path):
    instance_op.ensure(cluster, spec(disk_template="sharedfile"))
    started = str(tmp_path / "started")

    def slow_migrate(queue):
        real = nodecalls.call

        def call(ctx, config, node, verb, args, timeout=None):
            if verb == "migration_accept":
                with open(started, "w"):
                    pass
                time.sleep(1.0)
            return real(ctx, config, node, verb, args, timeout)

        nodecalls.call = call
        cluster.lock_timeout = 30
        _outcome(queue, migrate.migrate, cluster, {"name": "web1", "target_node": "node3"})

    def remove_target(queue):
        _wait_for(started)
        cluster.lock_timeout = 30
        _outcome(queue, node_op.absent, cluster, {"name": "node3"})

    outcome = _run_both((slow_migrate, ()), (remove_target, ()))
    config = cluster.store.load()
    assert outcome["first"] == "ok" and config.instances["web1"].primary_node == "node3"
    assert "node node3 still holds instances ['web1']" in outcome["second"]
