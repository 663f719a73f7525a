"""Master failover: who may take over, from which config, and what a returning old master does.
Each node runs the real agent in process (agentnodes.py): its own state directory holds its copy
of the config and ssconf, and its master IP verbs change its (simulated) kernel addresses."""

import pytest

from plugins.module_utils.herd.config import ConfigStore
from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.jobs import Journal
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import master as master_op
from plugins.module_utils.herd.ops.common import Context

from .agentnodes import AgentRpc
from .conftest import add_spec, init_spec

MASTER_IP = "198.51.100.200"


@pytest.fixture
def three(ctx, nodes):
    """A three-node cluster (all master candidates) with a floating master IP on node1."""
    from plugins.module_utils.herd.ops import node as node_op
    cluster_op.present(ctx, init_spec(enabled_hypervisors=["kvm", "fake"], master_ip=MASTER_IP,
                                      master_netdev="br0"))
    node_op.present(ctx, add_spec(2))
    node_op.present(ctx, add_spec(3))
    return ctx


def on_node(nodes, index, check_mode=False):
    """A context on nodes[index]: its own state directory is its config store, as on a real node."""
    node = nodes[index]
    store = ConfigStore(node.state_dir)
    return Context(store=store, journal=Journal(store.state_dir), rpc=AgentRpc(nodes, node),
                   local_node=node.name, check_mode=check_mode, lock_timeout=2)


def test_candidate_takes_over_when_the_master_is_gone_and_the_others_agree(three, nodes):
    nodes[0].reachable = False
    ctx2 = on_node(nodes, 1)
    before = ctx2.store.load()

    result = master_op.failover(ctx2, {})

    after = ctx2.store.load()
    assert result["changed"] and result["old_master"] == "node1" and result["master_node"] == "node2"
    assert after.cluster.master_node == "node2"
    assert after.cluster.master_epoch == before.cluster.master_epoch + 1
    assert nodes[2].config["serial_no"] == after.serial_no and nodes[2].ssconf["master_node"] == "node2"
    assert MASTER_IP in nodes[1].master_ips
    assert result["unreachable_nodes"] == ["node1"]


def test_master_ip_is_configured_on_the_master_at_init(three, nodes):
    assert nodes[0].master_ips == {MASTER_IP}
    assert nodes[1].master_ips == set()


def test_takeover_is_refused_while_the_master_answers(three, nodes):
    ctx2 = on_node(nodes, 1)
    with pytest.raises(PrerequisiteError, match="the master node1 still answers"):
        master_op.failover(ctx2, {})
    assert ctx2.store.load().cluster.master_node == "node1"


def test_takeover_is_refused_without_a_majority_of_answering_nodes(three, nodes):
    nodes[0].reachable = False
    nodes[2].reachable = False
    ctx2 = on_node(nodes, 1)
    with pytest.raises(PrerequisiteError, match="only 1 of the 3 online nodes answer"):
        master_op.failover(ctx2, {})
    assert ctx2.store.load().cluster.master_node == "node1"


def test_takeover_is_refused_when_a_voter_still_reaches_the_master(three, nodes):
    nodes[0].reachable = False
    nodes[2].still_sees.add("node1")  # only node2 is cut off from the master
    ctx2 = on_node(nodes, 1)
    with pytest.raises(PrerequisiteError, match="node3 still reach the master node1"):
        master_op.failover(ctx2, {})


def test_no_voting_takes_over_alone_with_a_loud_warning(three, nodes):
    nodes[0].reachable = False
    nodes[2].reachable = False
    ctx2 = on_node(nodes, 1)

    result = master_op.failover(ctx2, {"no_voting": True})

    assert result["changed"] and result["no_voting"] is True
    assert ctx2.store.load().cluster.master_node == "node2"
    assert any("skipped the agreement" in w for w in ctx2.warnings)


def test_a_candidate_that_is_behind_fetches_the_newest_config_first(three, nodes):
    behind = nodes[1].config  # node2's copy as of now
    three.store.save(three.store.load())  # the master commits once more ...
    three.replicate(three.store.load())
    nodes[1].config = behind  # ... but node2 missed it
    ctx2 = on_node(nodes, 1)
    newest = nodes[2].config["serial_no"]
    assert ctx2.store.load().serial_no < newest
    nodes[0].reachable = False

    result = master_op.failover(ctx2, {})

    assert result["fetched_config_from"] == "node3"
    assert ctx2.store.load().serial_no == newest + 1


def test_check_mode_plans_the_takeover_and_touches_nothing(three, nodes):
    nodes[0].reachable = False
    ctx2 = on_node(nodes, 1, check_mode=True)
    serial = ctx2.store.load().serial_no

    result = master_op.failover(ctx2, {})

    assert result["changed"] and result["diff"]["after"]["master_node"] == "node2"
    assert ctx2.store.load().serial_no == serial and ctx2.store.load().cluster.master_node == "node1"
    assert nodes[1].master_ips == set()


def test_a_second_run_on_the_new_master_changes_nothing(three, nodes):
    nodes[0].reachable = False
    ctx2 = on_node(nodes, 1)
    master_op.failover(ctx2, {})
    serial = ctx2.store.load().serial_no

    again = master_op.failover(on_node(nodes, 1), {})

    assert again["changed"] is False
    assert ctx2.store.load().serial_no == serial


def test_a_returning_old_master_refuses_to_act_and_is_resynchronised(three, nodes):
    nodes[0].reachable = False
    ctx2 = on_node(nodes, 1)
    master_op.failover(ctx2, {})
    nodes[0].reachable = True  # node1 is back, still believing it is the master

    with pytest.raises(PrerequisiteError, match="node1 is no longer the master.*naming node2"):
        three.load_master_config()
    with pytest.raises(PrerequisiteError, match="the master node2 still answers"):
        master_op.failover(three, {})

    nodes[0].master_ips.add(MASTER_IP)  # it still carries the floating IP
    result = master_op.failover(on_node(nodes, 1), {})

    assert result["changed"] and result["resynced"] == ["node1"]
    assert nodes[0].config["serial_no"] == ctx2.store.load().serial_no
    assert nodes[0].ssconf["master_node"] == "node2"
    assert nodes[0].master_ips == set() and nodes[1].master_ips == {MASTER_IP}


def test_a_node_that_is_not_a_master_candidate_cannot_take_over(three, nodes):
    from plugins.module_utils.herd.ops import node as node_op
    node_op.present(three, {"name": "node3", "master_candidate": False})
    nodes[0].reachable = False
    nodes[2].config = None
    with pytest.raises(PrerequisiteError, match="not a master candidate"):
        master_op.failover(on_node(nodes, 2), {})


def test_decide_counts_only_online_nodes_towards_the_majority(three, nodes):
    config = three.store.load()
    config.nodes["node3"].offline = True
    answers = {"node1": master_op.Answer("node1", answered=False)}
    # node2 alone of the two online nodes: not a strict majority
    decision = master_op.decide(config, "node2", answers, no_voting=False)
    assert not decision.takeover and "only 1 of the 2 online nodes" in decision.reasons[0]


def test_the_newest_config_is_ranked_by_master_epoch_before_serial():
    answers = {"node1": master_op.Answer("node1", answered=True, rank=(0, 40)),
               "node3": master_op.Answer("node3", answered=True, rank=(1, 12))}
    assert master_op.newest("node2", (1, 11), answers) == "node3"
    assert master_op.newest("node2", (1, 12), answers) is None


def test_no_voting_must_be_a_boolean():
    with pytest.raises(ValidationError, match="no_voting must be true or false, got 'yes'"):
        master_op.validate_spec({"no_voting": "yes"})


def test_a_loopback_master_ip_is_refused_before_anything_is_touched(ctx):
    with pytest.raises(ValidationError, match="master_ip 127.0.0.5 is a loopback address"):
        cluster_op.present(ctx, init_spec(master_ip="127.0.0.5", master_netdev="lo"))
    assert not ctx.store.exists()


def test_declaring_another_master_points_at_master_failover_on_that_node(three):
    with pytest.raises(PrerequisiteError, match="run herd.cluster.master_failover on node2 .a master candidate."):
        cluster_op.present(three, init_spec(master_node="node2"))
