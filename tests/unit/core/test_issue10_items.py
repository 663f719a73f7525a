"""Issue 10 items checked against Ganeti: rename of a running instance, security_model and the
migration limits as cluster defaults, and pausing the watcher (gnt-cluster watcher pause/continue/info)."""

import time

import pytest

from plugins.module_utils.herd.allocator import placement as allocator_placement
from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import migrate
from plugins.module_utils.herd.ops import rename as rename_op
from plugins.module_utils.herd.ops import watcher as watcher_op

from .conftest import init_spec
from .test_ops_instance import spec


# --------------------------------------------------------------------------- rename

def test_rename_refuses_an_instance_that_runs_although_marked_down(cluster, nodes):
    """Ganeti's rename needs the instance stopped; herd checks the node, not only the admin state."""
    instance_op.ensure(cluster, spec(state="running"))
    config = cluster.store.load()
    config.instances["web1"].admin_state = "down"  # ERROR_up: the process outlived its admin state
    cluster.commit(config)
    with pytest.raises(PrerequisiteError, match=r"instance web1 runs on node1: stop it first"):
        rename_op.rename(cluster, {"name": "web1", "new_name": "web2"})
    assert sorted(cluster.store.load().instances) == ["web1"] and "web1" in nodes[0].running


# --------------------------------------------------------------------------- cluster defaults

def migration_args(nodes):
    return [args for node in nodes for verb, args in node.requests if verb == "migration_start"]


def test_cluster_migration_bandwidth_and_downtime_reach_the_source_node(cluster, nodes, monkeypatch):
    monkeypatch.setattr(allocator_placement, "relocate", lambda config, facts, name: {"success": True, "primary": "node2"})
    cluster_op.present(cluster, init_spec(enabled_hypervisors=["kvm", "fake"],
                                          hvparams={"fake": {"migration_bandwidth": 128, "migration_downtime": 300}}))
    instance_op.ensure(cluster, spec(disk_template="sharedfile"))
    migrate.migrate(cluster, {"name": "web1"})
    assert [(a["bandwidth"], a["downtime"]) for a in migration_args(nodes)] == [(128, 300)]
    # the instance's own value wins over the cluster default
    instance_op.ensure(cluster, spec(disk_template="sharedfile", hvparams={"migration_bandwidth": 64},
                                     primary_node="node2"))
    migrate.migrate(cluster, {"name": "web1", "target_node": "node1"})
    assert [(a["bandwidth"], a["downtime"]) for a in migration_args(nodes)][-1] == (64, 300)


@pytest.mark.parametrize("hv, message", [
    ({"migration_bandwidth": 0}, r"cluster hvparams.kvm: hvparams.migration_bandwidth 0 must be an integer from 1"),
    ({"migration_downtime": "fast"}, r"hvparams.migration_downtime 'fast' must be an integer"),
    ({"security_model": "chroot"}, r"security_model 'chroot'"),
    ({"security_model": "user", "security_domain": "root"}, r"root would not confine QEMU"),
])
def test_bad_cluster_defaults_are_refused_with_the_nodes_validator(cluster, hv, message):
    serial = cluster.store.load().serial_no
    with pytest.raises(ValidationError, match=message):
        cluster_op.present(cluster, init_spec(enabled_hypervisors=["kvm", "fake"], hvparams={"kvm": hv}))
    assert cluster.store.load().serial_no == serial


def test_security_model_pool_is_the_default_of_a_new_cluster_and_user_can_be_declared(cluster):
    assert cluster.store.load().cluster.hvparams["kvm"]["security_model"] == "pool"
    cluster_op.present(cluster, init_spec(enabled_hypervisors=["kvm", "fake"],
                                          hvparams={"kvm": {"security_model": "user", "security_domain": "herdvm"}}))
    assert cluster.store.load().cluster.hvparams["kvm"]["security_model"] == "user"


# --------------------------------------------------------------------------- watcher pause

def test_watcher_is_not_paused_by_default(cluster):
    result = watcher_op.run(cluster, {})
    assert result["paused"] is False and result["changed"] is False and result["until"] is None


def test_pause_sets_an_expiry_a_second_run_keeps_it_and_continue_ends_it(cluster):
    before = time.time()
    paused = watcher_op.run(cluster, {"state": "paused", "duration": "2h"})
    assert paused["changed"] and paused["paused"] and before + 7200 <= paused["until"] <= time.time() + 7200
    assert cluster.store.load().cluster.watcher_pause_until == paused["until"]
    again = watcher_op.run(cluster, {"state": "paused", "duration": "2h"})
    assert again["changed"] is False and again["until"] == paused["until"]
    longer = watcher_op.run(cluster, {"state": "paused", "duration": "1d"})
    assert longer["changed"] and longer["until"] > paused["until"]
    assert watcher_op.run(cluster, {"state": "query"})["paused"]
    resumed = watcher_op.run(cluster, {"state": "running"})
    assert resumed["changed"] and resumed["paused"] is False
    assert cluster.store.load().cluster.watcher_pause_until is None
    assert watcher_op.run(cluster, {"state": "running"})["changed"] is False


def test_an_expired_pause_no_longer_pauses(cluster):
    config = cluster.store.load()
    config.cluster.watcher_pause_until = time.time() - 1
    cluster.commit(config)
    assert watcher_op.run(cluster, {"state": "query"})["paused"] is False


def test_pause_in_check_mode_writes_nothing(cluster):
    cluster.check_mode = True
    result = watcher_op.run(cluster, {"state": "paused", "duration": 600})
    assert result["changed"] and result["paused"] and result["diff"]["before"]["paused"] is False
    assert cluster.store.load().cluster.watcher_pause_until is None


@pytest.mark.parametrize("bad, message", [
    ({"state": "paused"}, "state paused needs duration"),
    ({"state": "paused", "duration": "2 hours"}, "duration '2 hours' must be a number of seconds or a duration"),
    ({"state": "paused", "duration": 0}, "duration 0 must be"),
    ({"state": "paused", "duration": "400d"}, "from 1 second to 366 days"),
    ({"state": "running", "duration": "1h"}, "duration is only for state paused"),
    ({"state": "stopped"}, "state 'stopped' must be one of"),
])
def test_bad_pause_requests_are_refused(cluster, bad, message):
    with pytest.raises(ValidationError, match=message):
        watcher_op.run(cluster, bad)
    assert cluster.store.load().cluster.watcher_pause_until is None
