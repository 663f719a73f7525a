import os

import pytest

from plugins.module_utils.herd.config import ConfigStore
from plugins.module_utils.herd.jobs import Journal
from plugins.module_utils.herd.ops.common import Context
from plugins.module_utils.herd.rpc import MANAGED_BLOCK

from .agentnodes import AgentNode, AgentRpc


@pytest.fixture(autouse=True)
def _quick_sync_polls(monkeypatch):
    """A simulated resync moves on with each status poll, so the wait between polls of a new
    drbd disk's sync (seconds on real nodes) only slows the tests."""
    from plugins.module_utils.herd.ops import instance_disks
    monkeypatch.setattr(instance_disks, "POLL_INTERVAL", 0.01)


@pytest.fixture
def nodes(tmp_path):
    """Four nodes running the real agent in process; node1 is the master, its agent state is the
    master's state directory."""
    made = [AgentNode(f"node{i}", f"198.51.100.{10 + i}", f"203.0.113.{10 + i}", i, tmp_path / "nodes" / f"node{i}",
                      tmp_path / "shared") for i in (1, 2, 3, 4)]
    made[0].state_dir = str(tmp_path / "state")
    return made


@pytest.fixture
def ctx(tmp_path, nodes):
    store = ConfigStore(str(tmp_path / "state"))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"# BEGIN {MANAGED_BLOCK}\n"
                           + "".join(f"{n.name},{n.addresses[0]} ssh-ed25519 {n.host_key}\n" for n in nodes[:3])
                           + f"# END {MANAGED_BLOCK}\n")
    context = Context(store=store, journal=Journal(store.state_dir), rpc=AgentRpc(nodes, nodes[0]),
                      local_node="node1", known_hosts=str(known_hosts), lock_timeout=2)
    return context


def init_spec(**extra):
    spec = {"name": "cluster.example", "primary_ip": "198.51.100.11", "secondary_ip": "203.0.113.11"}
    spec.update(extra)
    return spec


def add_spec(i, **extra):
    spec = {"name": f"node{i}", "primary_ip": f"198.51.100.{10 + i}", "secondary_ip": f"203.0.113.{10 + i}"}
    spec.update(extra)
    return spec


@pytest.fixture
def cluster(ctx):
    from plugins.module_utils.herd.ops import cluster as cluster_op, node as node_op
    cluster_op.present(ctx, init_spec(enabled_hypervisors=["kvm", "fake"]))
    node_op.present(ctx, add_spec(2))
    node_op.present(ctx, add_spec(3))
    return ctx


def state_files(ctx):
    return sorted(os.listdir(ctx.store.state_dir))
