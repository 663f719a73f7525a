"""Rules (hard/soft checks, reasons) and the model's incremental bookkeeping."""

from __future__ import annotations

import random

import pytest

from plugins.module_utils.herd.allocator import allocate as al
from plugins.module_utils.herd.allocator import rules, score
from plugins.module_utils.herd.allocator.config_model import HerdConfigError, from_herd_config
from plugins.module_utils.herd.allocator.model import NO_NODE
from plugins.module_utils.herd.allocator.moves import apply_move
from plugins.module_utils.herd.allocator.text import load_text

# node1: 16 GiB, 5 GiB unallocated; node2/node3: roomy; node4 small
CLUSTER = ("g|u|preferred||\n\n"
           "node1|16384|1024|5120|500000|400000|8|N|u|1\n"
           "node2|16384|1024|15360|500000|500000|8|N|u|1\n"
           "node3|16384|1024|15360|500000|500000|8|N|u|1\n"
           "node4|4096|1024|3072|500000|500000|2|N|u|1\n"
           "\n"
           "big|10240|10240|2|running|Y|node1|node2|drbd|svc:db\n"
           "\n"
           "htools:iextags:svc\n"
           "\n")


def cluster():
    return load_text(CLUSTER)


def test_memory_failure_renders_one_line_with_the_numbers():
    c = cluster()
    inst = c.new_instance("new", 8192, [(1024, None)], 1, "plain")
    r = c.add_pri(0, inst)
    assert str(r) == "node1: FailMem needs 8192 MiB, has 5120 free"
    assert r.mode == "FailMem" and not r.soft


def test_failed_add_leaves_the_node_untouched():
    c = cluster()
    before = (c.nodes[0].i_mem, c.nodes[0].vec, c.score())
    inst = c.new_instance("new", 8192, [(1024, None)], 1, "plain")
    assert c.add_pri(0, inst) is not None
    assert (c.nodes[0].i_mem, c.nodes[0].vec, c.score()) == before


def test_secondary_that_would_newly_fail_n1_is_a_soft_memory_failure():
    c = cluster()
    inst = c.new_instance("new", 6144, [(1024, None)], 1, "drbd")
    # node2 (15360 MiB unallocated) reserves 10240 MiB for node1's failover;
    # 6144 more from node1 makes 16384 -> N+1 broken.  From node3 it is fine.
    r = c.add_sec(1, inst, 0)
    assert r.mode == "FailMem" and r.soft
    assert "node1's failover" in str(r)
    assert c.add_sec(1, inst, 2) is None


def test_exclusion_tags_are_a_soft_failure():
    c = cluster()
    inst = c.new_instance("db2", 1024, [(1024, None)], 1, "plain", tags=["svc:db"])
    r = c.add_pri(0, inst)
    assert r.mode == "FailTags" and r.soft and "svc:db" in str(r)
    assert c.add_pri(0, inst, force=True) is None


def test_vcpu_ratio_is_a_soft_cpu_failure():
    c = cluster()
    inst = c.new_instance("cpu", 512, [(1024, None)], 8, "plain")
    r = c.add_pri(3, inst)  # node4: 2 CPUs, ratio 4 -> at most 8 vCPUs incl. the OS one
    assert r.mode == "FailCPU" and r.soft


def test_policy_violation_uses_hails_failure_modes():
    c = cluster()
    pol = c.groups[0].ipolicy
    huge = c.new_instance("huge", 65536, [(1024, None)], 1, "plain")
    assert rules.policy_failure(c.nodes[0], huge, pol).mode == "FailMem"
    many = c.new_instance("many", 1024, [(1024, None)] * 17, 1, "plain")
    assert rules.policy_failure(c.nodes[0], many, pol).mode == "FailDiskCount"
    small = c.new_instance("small", 1024, [(10, None)], 1, "plain")
    assert rules.policy_failure(c.nodes[0], small, pol).mode == "FailDisk"


def test_migration_tags_forbid_failover_to_a_node_that_cannot_receive():
    text = CLUSTER.replace("node1|16384|1024|5120|500000|400000|8|N|u|1",
                           "node1|16384|1024|5120|500000|400000|8|N|u|1|zone:a") \
        .replace("htools:iextags:svc", "htools:iextags:svc\nhtools:migration:zone")
    c = load_text(text)
    big = c.instances[0]
    r = apply_move(c, big, ("f",))
    assert r.mode == "FailMig" and r.node == "node2"
    assert (big.pnode, big.snode) == (0, 1)


def test_rollback_restores_nodes_instances_and_score_exactly():
    c = cluster()
    big = c.instances[0]
    snap = [(n.i_mem, n.f_dsk, n.r_mem, dict(n.peers), set(n.plist), set(n.slist), n.vec)
            for n in c.nodes]
    s0 = c.score()
    mark = c.checkpoint()
    assert apply_move(c, big, ("r", 2)) is None
    assert apply_move(c, big, ("f",)) is None
    assert (big.pnode, big.snode) == (2, 0)
    assert c.score() != s0
    c.rollback(mark)
    assert (big.pnode, big.snode) == (0, 1)
    assert [(n.i_mem, n.f_dsk, n.r_mem, dict(n.peers), set(n.plist), set(n.slist), n.vec)
            for n in c.nodes] == snap
    assert c.score() == pytest.approx(s0, abs=1e-12)


def test_incremental_score_tracks_random_moves():
    text = ("g|u|preferred||\n\n" +
            "".join(f"n{i}|32768|1024|31744|900000|900000|16|N|u|2|rack:r{i % 3}\n"
                    for i in range(8)) + "\n")
    rnd = random.Random(5)
    lines = []
    for k in range(30):
        p, s = rnd.sample(range(8), 2)
        lines.append(f"i{k}|{rnd.choice([512, 1024, 2048])}|10240|{rnd.choice([1, 2])}|running|Y|"
                     f"n{p}|n{s}|drbd|svc:{k % 4}")
    c = load_text(text + "\n".join(lines) + "\n\nhtools:iextags:svc\nhtools:nlocation:rack\n\n")
    c.checkpoint()
    for _round in range(200):
        inst = c.instances[rnd.randrange(30)]
        mv = rnd.choice([("f",), ("r", rnd.randrange(8)), ("fr", rnd.randrange(8)),
                         ("rf", rnd.randrange(8)), ("frf", rnd.randrange(8))])
        if len(mv) == 2 and mv[1] in (inst.pnode, inst.snode):
            continue
        apply_move(c, inst, mv, force=True)
    assert c.score() == pytest.approx(score.score(c), abs=1e-9)


def test_allocation_explains_every_node_not_chosen():
    c = cluster()
    inst = c.new_instance("new", 4096, [(10240, None)], 1, "plain")
    res = al.allocate(c, inst)
    assert res.success
    lines = res.reason_lines()
    assert sorted(line.split(":")[0] for line in lines) == \
        sorted(n.name for n in c.nodes if n.name not in res.nodes)
    assert "node4: FailMem needs 4096 MiB, has 3072 free" in lines


def test_impossible_allocation_gives_reasons_not_an_exception():
    c = cluster()
    inst = c.new_instance("new", 30000, [(10240, None)], 1, "drbd")
    res = al.allocate(c, inst)
    assert not res.success and res.nodes == []
    assert len(res.reasons) == len(c.nodes)
    assert all(r.mode in ("FailMem",) for r in res.reasons)


def test_mirrored_allocation_uses_two_different_nodes_of_one_group():
    c = cluster()
    inst = c.new_instance("new", 1024, [(10240, None)], 1, "drbd")
    res = al.allocate(c, inst)
    assert res.success and len(set(res.nodes)) == 2
    al.place(c, inst, res.nodes)
    assert inst.pnode != inst.snode != NO_NODE


def herd_config():
    return {
        "cluster": {"name": "c", "tags": [], "ipolicy": {"vcpu-ratio": 4.0}},
        "nodegroups": {"default": {"name": "default", "uuid": "g1", "alloc_policy": "preferred",
                                   "networks": []}},
        "nodes": {f"node{i}": {"name": f"node{i}", "uuid": f"u{i}", "group": "default",
                               "master_candidate": True, "drained": False, "offline": False,
                               "vm_capable": True, "tags": [],
                               "ndparams": {"spindle_count": 1, "exclusive_storage": False}}
                  for i in (1, 2, 3)},
        "instances": {"web1": {"name": "web1", "uuid": "i1", "primary_node": "node1",
                               "secondary_node": "node2", "disk_template": "drbd",
                               "admin_state": "up",
                               "beparams": {"maxmem": 2048, "minmem": 2048, "vcpus": 2,
                                            "auto_balance": True, "spindle_use": 1},
                               "disks": [{"size": 10240, "spindles": None}], "tags": [],
                               "nics": []}},
    }


FACTS = {f"node{i}": {"memory_total": 16384, "memory_free": 12288, "memory_dom0": 2048,
                      "cpu_count": 8, "cpu_dom0": 1, "disk_total": 400000,
                      "disk_free": 300000, "spindles_total": 0} for i in (1, 2, 3)}


def test_herd_config_maps_to_the_model():
    c = from_herd_config(herd_config(), FACTS)
    web1 = c.instances[c.inst_by_name["web1"]]
    assert (web1.mem, web1.dsk, web1.vcpus, web1.status) == (2048, 10368, 2, "running")
    n2 = c.nodes[c.node_by_name["node2"]]
    assert n2.r_mem == 2048 and n2.peers == {c.node_by_name["node1"]: 2048}


def test_nodes_without_facts_are_offline_with_a_reason():
    facts = dict(FACTS)
    del facts["node3"]
    c = from_herd_config(herd_config(), facts)
    n3 = c.nodes[c.node_by_name["node3"]]
    assert n3.offline and "no facts" in n3.offline_reason
    inst = c.new_instance("new", 1024, [(1024, None)], 1, "plain")
    res = al.allocate(c, inst)
    assert "node3: Offline no facts for this node (unreachable?)" in res.reason_lines()


def test_herd_config_errors_name_the_key():
    cfg = herd_config()
    cfg["instances"]["web1"]["primary_node"] = "node9"
    with pytest.raises(HerdConfigError, match=r"instances.web1: key 'primary_node': unknown "
                                              r"node 'node9'"):
        from_herd_config(cfg, FACTS)


def test_clone_is_independent():
    """``Cluster.clone`` (field by field, not deepcopy): the copy scores the
    same, and moves and allocations on it leave the original as it was."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "alloc"))
    from gen import generate
    c = load_text(generate(8, 40, seed=5, groups=2, offline=1), legacy_n1=True)

    def state(x):
        return ([(i.pnode, i.snode, i.location_score, list(i.tags)) for i in x.instances],
                [(n.i_mem, n.f_dsk, n.r_mem, n.fail_n1, sorted(n.plist), sorted(n.slist),
                  dict(n.peers), dict(n.p_tags), dict(n.instance_map), list(n.tags))
                 for n in x.nodes], len(x.instances), dict(x.inst_by_name),
                [x.score(g.idx) for g in x.groups])
    before = state(c)
    w = c.clone()
    assert state(w) == before
    moved = 0
    for inst in w.instances:
        if inst.snode == NO_NODE:
            continue
        if apply_move(w, inst, ("f",), force=True) is None:
            moved += 1
    w.commit()
    new = w.new_instance("extra", 512, [(1024, None)], 1, "drbd")
    res = al.allocate(w, new)
    if res.success:
        al.place(w, new, res.nodes)
    w.nodes[0].tags.append("changed")
    w.instances[0].tags.append("changed")
    assert moved > 0
    assert state(c) == before
    assert state(w) != before
