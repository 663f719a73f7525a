"""RETURN documentation against what the operations really return, in process on the real agent:
every key the engine returns, down into each documented C(contains), is documented
(tests/integration/return_docs.py, the checker the integration runs use on real module results)."""

import json
import os
import sys
from pathlib import Path

import pytest

from plugins.module_utils.herd import listing
from plugins.module_utils.herd.allocator import placement as allocator_placement
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import views, migrate, rebalance, reboot
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import network as network_op
from plugins.module_utils.herd.ops import node as node_op

from .conftest import add_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

import return_docs  # noqa: E402


@pytest.fixture(autouse=True)
def _bridges_of_the_networks(nodes):
    """The nodes have the bridges the networks of these tests connect NICs to (br7, br9)."""
    for node in nodes:
        node.bridges = ["br0", "br7", "br9"]


def spec(name, **extra):
    base = {"name": name, "state": "running", "disk_template": "sharedfile", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "fake", "primary_node": "node1", "nics": [{"link": "br0"}]}
    base.update(extra)
    return base


def tree(value, path="", out=None):
    """{path: sorted keys} of every dict in value, for reading a result's shape."""
    out = {} if out is None else out
    if isinstance(value, dict):
        out.setdefault(path, set()).update(value)
        for key, sub in value.items():
            tree(sub, f"{path}.{key}", out)
    elif isinstance(value, list):
        for item in value:
            tree(item, path, out)
    return out


def documented(module, result):
    if os.environ.get("HERD_DUMP_TREE"):
        print(module, json.dumps({k: sorted(v) for k, v in tree(result).items()}, indent=1))
    problems = return_docs.mismatches(module, result)
    assert problems == [], (problems, {k: sorted(v) for k, v in tree(result).items()})


@pytest.fixture
def busy(cluster):
    for i in range(4):
        instance_op.ensure(cluster, spec(f"vm{i}"))
    return cluster


def test_cluster_and_cluster_info(cluster):
    documented("cluster", cluster_op.present(cluster, {"name": "cluster.example", "candidate_pool_size": 5}))
    documented("cluster_info", views.cluster_info(cluster))


def test_node(cluster, nodes):
    node_op.absent(cluster, {"name": "node3"})
    documented("node", node_op.present(cluster, add_spec(3)))
    documented("node", node_op.present(cluster, {"name": "node3", "drained": True}))


def test_instance_and_instance_info(cluster):
    documented("instance", instance_op.ensure(cluster, spec("web1")))
    documented("instance", instance_op.ensure(cluster, spec("web1", memory="512M", restart_on_change=True)))
    documented("instance_info", listing.list_instances(cluster, {}))
    documented("instance_info", listing.list_instances(cluster, {"fields": ["name", "pnode", "be/memory"]}))


def test_node_info(busy):
    documented("node_info", listing.list_nodes(busy, {}))
    documented("node_info", listing.list_nodes(busy, {"fields": ["name", "role", "n1"]}))


def test_instance_migrate(busy, monkeypatch):
    monkeypatch.setattr(allocator_placement, "relocate",
                        lambda config, facts, name: {"success": True, "primary": "node2"})
    documented("instance_migrate", migrate.migrate(busy, {"name": "vm0"}))


def test_rebalance_and_capacity(busy):
    documented("rebalance", rebalance.execute(busy, {"execute": True}))
    documented("capacity_info", rebalance.capacity(busy, {}))


def test_reboot_groups(busy):
    documented("reboot_groups", reboot.plan_reboot_groups(busy, {}))


def test_network(cluster):
    documented("network", network_op.run(cluster, {
        "name": "gnt-fsn", "subnet": "192.0.2.0/29", "gateway": "192.0.2.1", "reserved": ["192.0.2.2"],
        "groups": [{"name": "default", "mode": "bridged", "link": "br9", "vlan": 40}]}))


def test_job_info(busy):
    documented("job_info", views.job_info(busy, limit=3))
    documented("job_info", views.job_info(busy, job_id=busy.journal.list(limit=1)[0]["id"]))
