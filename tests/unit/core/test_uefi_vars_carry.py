"""Issue 11 item 14 from the master's side, with the real node agent in-process (one state
directory per node): an instance's node-local UEFI variables go with it to the node it
moves to, they are removed with it, and a sharedfile instance keeps them on shared storage
keyed by its UUID."""

import os
import uuid

import pytest

from plugins.module_utils.herd.agent import main as agent
from plugins.module_utils.herd.config import Cluster, Config, ConfigStore, Instance, Node
from plugins.module_utils.herd.errors import RpcError
from plugins.module_utils.herd.jobs import Journal
from plugins.module_utils.herd.ops import nodecalls
from plugins.module_utils.herd.ops.common import Context
from plugins.module_utils.herd.version import VERSION


class AgentRpc:
    """call/call_many as rpc.Rpc, answered by agent.main.handle with the node's own directories."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.down = set()

    def state_dir(self, node):
        return str(self.tmp_path / node)

    def call(self, endpoint, verb, args=None, timeout=None):
        if endpoint.name in self.down:
            raise RpcError(endpoint.name, verb, "cannot reach it: No route to host")
        self.monkeypatch.setenv("HERD_STATE_DIR", self.state_dir(endpoint.name))
        self.monkeypatch.setenv("HERD_RUN_DIR", os.path.join(self.state_dir(endpoint.name), "run"))
        answer = agent.handle({"version": VERSION, "verb": verb, "args": args or {}})
        if not answer["ok"]:
            raise RpcError(endpoint.name, verb, answer["error"])
        return answer["result"]


@pytest.fixture
def world(tmp_path, monkeypatch):
    rpc = AgentRpc(tmp_path, monkeypatch)
    store = ConfigStore(str(tmp_path / "master"))
    ctx = Context(store=store, journal=Journal(store.state_dir), rpc=rpc, local_node="node1")
    cluster = Cluster(name="c.example", uuid=str(uuid.uuid4()), master_node="node1",
                      shared_file_storage_dir=str(tmp_path / "shared"))
    nodes = {f"node{i}": Node(name=f"node{i}", uuid=str(uuid.uuid4()), primary_ip=f"198.51.100.{10 + i}",
                              secondary_ip=f"203.0.113.{10 + i}") for i in (1, 2)}
    inst = Instance(name="web1", uuid=str(uuid.uuid4()), primary_node="node1", secondary_node="node2",
                    hypervisor="fake", disk_template="drbd", hvparams={"firmware": "uefi"})
    config = Config(cluster=cluster, nodes=nodes, instances={"web1": inst})
    return ctx, rpc, config, inst


def vars_file(rpc, node, inst):
    return os.path.join(rpc.state_dir(node), "uefi", f"{inst.uuid}.OVMF_VARS.fd")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def test_item14_node_local_uefi_vars_move_with_the_instance(world):
    ctx, rpc, config, inst = world
    write(vars_file(rpc, "node1", inst), b"secure-boot-db" * 64)
    write(vars_file(rpc, "node2", inst), b"stale")  # what node2 had from an earlier stay
    assert nodecalls.carry_uefi_vars(ctx, config, inst, "node1", "node2") is None
    with open(vars_file(rpc, "node2", inst), "rb") as handle:
        assert handle.read() == b"secure-boot-db" * 64
    assert os.stat(vars_file(rpc, "node2", inst)).st_mode & 0o777 == 0o600


def test_item14_vars_that_cannot_be_read_give_a_warning_not_a_failure(world):
    ctx, rpc, config, inst = world
    rpc.down.add("node1")
    warning = nodecalls.carry_uefi_vars(ctx, config, inst, "node1", "node2")
    assert "UEFI variables of web1 could not be read on node1" in warning


def test_item14_the_vars_are_removed_with_the_instance_on_every_node(world):
    ctx, rpc, config, inst = world
    for node in inst.nodes():
        write(vars_file(rpc, node, inst), b"x")
        nodecalls.instance_cleanup(ctx, config, inst, node, purge=True)
        assert not os.path.exists(vars_file(rpc, node, inst))


def test_item14_sharedfile_vars_live_on_shared_storage_keyed_by_uuid(world):
    _ctx, _rpc, config, inst = world
    inst.disk_template, inst.secondary_node = "sharedfile", None
    path = nodecalls.uefi_vars_path(config, inst)
    assert path == os.path.join(config.cluster.shared_file_storage_dir, "web1", f"{inst.uuid}.OVMF_VARS.fd")
