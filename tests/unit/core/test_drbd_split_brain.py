"""The operator's explicit split-brain resolution (issue 9 bug 2): instance_replace_disks with
split_brain_survivor keeps the chosen node's data; the other side discards its changes only on
that request, never under a running instance."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import replace_disks

from .test_ops_instance import spec


@pytest.fixture
def web1(cluster):
    """A stopped drbd instance (primary node1, secondary node2) whose disk is split-brained."""
    instance_op.ensure(cluster, spec(disk_template="drbd", disks=["1G"], state="stopped", primary_node="node1",
                                     secondary_node="node2"))
    return cluster


def split(ctx, nodes):
    key = f"web1/{ctx.store.load().instances['web1'].disks[0].uuid}"
    for node in nodes[:2]:
        node.drbd.standalone(key)
    return key


def record_connects(ctx):
    seen = []
    real = ctx.rpc.call

    def call(endpoint, verb, args=None, timeout=None):
        if verb == "drbd_connect":
            seen.append((endpoint.name, bool(args.get("discard_my_data")), args.get("timeout")))
        return real(endpoint, verb, args, timeout)
    ctx.rpc.call = call
    return seen


def test_only_the_victim_discards_and_the_survivor_waits_for_the_connection(web1, nodes):
    key = split(web1, nodes)
    seen = record_connects(web1)
    result = replace_disks.replace(web1, {"name": "web1", "split_brain_survivor": "node2"})
    assert result["changed"] and result["survivor"] == "node2" and result["discarded_on"] == "node1"
    assert seen == [("node1", True, 0), ("node2", False, replace_disks.CONNECT_TIMEOUT)]
    assert nodes[0].drbd.status(key)["connected"]
    inst = web1.store.load().instances["web1"]
    assert (inst.primary_node, inst.secondary_node) == ("node1", "node2")


def test_nothing_is_discarded_when_every_disk_is_connected(web1, nodes):
    seen = record_connects(web1)
    result = replace_disks.replace(web1, {"name": "web1", "split_brain_survivor": "node2"})
    assert result["changed"] is False and seen == []


def test_check_mode_only_plans(web1, nodes):
    split(web1, nodes)
    seen = record_connects(web1)
    web1.check_mode = True
    result = replace_disks.replace(web1, {"name": "web1", "split_brain_survivor": "node1"})
    assert result["changed"] and seen == [] and "node2 becomes secondary" in result["actions"][0]


def test_the_data_under_a_running_instance_is_never_discarded(web1, nodes):
    instance_op.ensure(web1, spec(disk_template="drbd", disks=["1G"], state="running"))
    split(web1, nodes)
    seen = record_connects(web1)
    with pytest.raises(PrerequisiteError, match="marked running on node1"):
        replace_disks.replace(web1, {"name": "web1", "split_brain_survivor": "node2"})
    assert seen == []


def test_the_survivor_must_be_one_of_the_instances_nodes(web1, nodes):
    with pytest.raises(ValidationError, match="node3 is not a node of web1"):
        replace_disks.replace(web1, {"name": "web1", "split_brain_survivor": "node3"})
    with pytest.raises(ValidationError, match="exclude each other"):
        replace_disks.replace(web1, {"name": "web1", "split_brain_survivor": "node2", "remote_node": "node3"})
