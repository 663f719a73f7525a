"""Reboot groups (hroller's idea) over herd's config dict."""

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.module_utils.herd.allocator.roller import RollerError, RollerOptions, reboot_groups
from plugins.module_utils.herd.config import Cluster, Config, Instance, Node

from .htools_live import data_file

HROLLER = shutil.which("hroller")


# ------------------------------------------------------------------ builders

def node(offline=False, drained=False, vm_capable=True, group="default", tags=()):
    return {"offline": offline, "drained": drained, "vm_capable": vm_capable, "group": group, "tags": list(tags)}


def inst(primary, secondary=None, template=None, up=True, memory=None):
    template = template or ("drbd" if secondary else "sharedfile")
    data = {"primary_node": primary, "secondary_node": secondary, "disk_template": template,
            "admin_state": "up" if up else "down", "beparams": {}}
    if memory is not None:
        data["beparams"]["maxmem"] = memory
    return data


def config(nodes, instances=None, master=None):
    if isinstance(nodes, int):
        nodes = {f"node{i}": node() for i in range(1, nodes + 1)}
    return {"cluster": {"master_node": master or sorted(nodes)[0], "beparams": {"maxmem": 128}},
            "nodes": nodes, "instances": instances or {}}


def group_of(plan, name):
    return [i for i, g in enumerate(plan.groups) if name in g]


def loses_both(plan, cfg):
    """Instances whose primary and secondary sit in one reboot group."""
    return [name for name, i in cfg["instances"].items()
            if i["secondary_node"] and any(i["primary_node"] in g and i["secondary_node"] in g
                                           for g in plan.groups)]


# -------------------------------------------------------------- graph rules

def test_the_two_nodes_of_a_drbd_instance_are_in_different_groups():
    cfg = config(2, {"web": inst("node1", "node2")})
    plan = reboot_groups(cfg)
    assert loses_both(plan, cfg) == []
    assert len(plan.groups) == 2


def test_nodes_sharing_no_instance_reboot_together():
    cfg = config(4, {"a": inst("node1", "node2"), "b": inst("node3", "node4")}, master="node4")
    plan = reboot_groups(cfg)
    assert len(plan.groups) == 2
    assert all(len(g) == 2 for g in plan.groups)


def test_primaries_of_running_instances_sharing_a_secondary_are_not_rebooted_together():
    cfg = config(3, {"a": inst("node1", "node2"), "b": inst("node3", "node2")}, master="node2")
    plan = reboot_groups(cfg)
    assert group_of(plan, "node1") != group_of(plan, "node3")


def test_offline_maintenance_lets_primaries_sharing_a_secondary_reboot_together():
    cfg = config(3, {"a": inst("node1", "node2"), "b": inst("node3", "node2")}, master="node2")
    plan = reboot_groups(cfg, options=RollerOptions(offline_maintenance=True))
    assert group_of(plan, "node1") == group_of(plan, "node3")


def test_stopped_instances_sharing_a_secondary_do_not_separate_their_primaries():
    cfg = config(3, {"a": inst("node1", "node2", up=False), "b": inst("node3", "node2", up=False)},
                 master="node2")
    plan = reboot_groups(cfg)
    assert group_of(plan, "node1") == group_of(plan, "node3")


# ------------------------------------------------------------ node selection

def test_offline_nodes_are_in_no_group_and_listed():
    nodes = {"node1": node(), "node2": node(offline=True), "node3": node()}
    plan = reboot_groups(config(nodes))
    assert all("node2" not in g for g in plan.groups)
    assert plan.offline == ["node2"]


def test_every_online_node_is_in_exactly_one_group():
    cfg = config(5, {"a": inst("node1", "node2"), "b": inst("node2", "node3"), "c": inst("node4")})
    plan = reboot_groups(cfg)
    flat = [n for g in plan.groups for n in g]
    assert sorted(flat) == sorted(cfg["nodes"])


def test_node_group_option_plans_only_that_group():
    nodes = {"a1": node(group="a"), "a2": node(group="a"), "b1": node(group="b")}
    plan = reboot_groups(config(nodes, master="b1"), options=RollerOptions(node_group="a"))
    assert sorted(n for g in plan.groups for n in g) == ["a1", "a2"]


def test_an_unknown_node_group_is_an_error():
    with pytest.raises(RollerError, match="no-such"):
        reboot_groups(config(2), options=RollerOptions(node_group="no-such"))


def test_node_tags_option_plans_only_tagged_nodes():
    nodes = {"n1": node(tags=["rack1"]), "n2": node(tags=["rack2"]), "n3": node(tags=["rack1", "x"])}
    plan = reboot_groups(config(nodes), options=RollerOptions(node_tags=["rack1"]))
    assert sorted(n for g in plan.groups for n in g) == ["n1", "n3"]


def test_a_config_without_master_is_an_error():
    cfg = config(2)
    cfg["cluster"]["master_node"] = None
    with pytest.raises(RollerError, match="no master"):
        reboot_groups(cfg)


def test_an_instance_on_an_unknown_node_is_an_error():
    with pytest.raises(RollerError, match="ghost"):
        reboot_groups(config(2, {"a": inst("node1", "ghost")}))


# ------------------------------------------------------------------- ordering

def test_the_master_is_last_in_the_last_group():
    cfg = config(4, {"a": inst("node1", "node2"), "b": inst("node3", "node4")}, master="node1")
    plan = reboot_groups(cfg)
    assert plan.groups[-1][-1] == "node1"
    assert plan.master == "node1"


def test_groups_are_ordered_largest_first_before_the_masters():
    cfg = config(5, {"a": inst("node1", "node2"), "b": inst("node1", "node3"), "c": inst("node1", "node4"),
                     "d": inst("node1", "node5")}, master="node5")
    plan = reboot_groups(cfg, options=RollerOptions(offline_maintenance=True))
    assert plan.groups == [["node1"], ["node2", "node3", "node4", "node5"]]


def test_the_plan_does_not_depend_on_dict_order():
    rng = random.Random(7)
    names = [f"node{i}" for i in range(1, 9)]
    instances = {f"i{k}": inst(*rng.sample(names, 2)) for k in range(12)}
    cfg = config({n: node() for n in names}, instances, master="node3")
    shuffled_nodes = list(cfg["nodes"].items())
    rng.shuffle(shuffled_nodes)
    shuffled_insts = list(cfg["instances"].items())
    rng.shuffle(shuffled_insts)
    other = dict(cfg, nodes=dict(shuffled_nodes), instances=dict(shuffled_insts))
    assert reboot_groups(cfg).to_dict() == reboot_groups(other).to_dict()


# ------------------------------------------------------------------- capacity

def test_shared_instances_keep_a_node_of_their_node_group_to_go_to():
    cfg = config(3, {"a": inst("node1"), "b": inst("node2"), "c": inst("node3")})
    plan = reboot_groups(cfg)
    assert len(plan.groups) >= 2
    assert all(len(g) < 3 for g in plan.groups)


def test_nodes_without_running_instances_may_all_reboot_together():
    cfg = config(3, {"a": inst("node1", up=False)})
    plan = reboot_groups(cfg)
    assert len(plan.groups) == 1


def test_drained_nodes_are_rebooted_but_do_not_count_as_targets():
    nodes = {"node1": node(), "node2": node(), "node3": node(drained=True)}
    cfg = config(nodes, {"a": inst("node1"), "b": inst("node2")})
    plan = reboot_groups(cfg)
    assert group_of(plan, "node1") != group_of(plan, "node2")
    assert any("node3" in g for g in plan.groups)


def test_memory_limits_how_many_nodes_reboot_at_once():
    names = [f"node{i}" for i in range(1, 5)]
    instances = {f"{n}-vm": inst(n, memory=1000) for n in names}
    cfg = config({n: node() for n in names}, instances)
    roomy = reboot_groups(cfg, node_memory={n: 4000 for n in names})
    tight = reboot_groups(cfg, node_memory={n: 1000 for n in names})
    assert max(len(g) for g in roomy.groups) == 3
    assert max(len(g) for g in tight.groups) == 2


def test_a_drbd_secondary_without_memory_for_two_failovers_separates_their_primaries():
    cfg = config(3, {"a": inst("node1", "node3", memory=600), "b": inst("node2", "node3", memory=600)},
                 master="node3")
    plan = reboot_groups(cfg, node_memory={"node1": 2000, "node2": 2000, "node3": 1000},
                         options=RollerOptions(offline_maintenance=False))
    assert group_of(plan, "node1") != group_of(plan, "node2")


def test_a_node_that_cannot_be_emptied_is_alone_and_warned_about():
    cfg = config(2, {"big": inst("node1", memory=4000)})
    plan = reboot_groups(cfg, node_memory={"node1": 8000, "node2": 1000})
    assert ["node1"] in plan.groups
    assert any("node1" in w and "big" in w for w in plan.warnings)


def test_max_group_size_caps_every_group():
    plan = reboot_groups(config(7), options=RollerOptions(max_group_size=3))
    assert sorted(len(g) for g in plan.groups) == [1, 3, 3]


# -------------------------------------------------------------- non-redundant

def test_non_redundant_running_instances_are_reported_as_downtime():
    cfg = config(2, {"db": inst("node2", template="plain")})
    plan = reboot_groups(cfg)
    assert plan.downtime == [{"instance": "db", "node": "node2", "reason": "plain disks live on node2 only"}]


def test_skip_non_redundant_leaves_their_nodes_out():
    cfg = config(3, {"db": inst("node2", template="file")})
    plan = reboot_groups(cfg, options=RollerOptions(skip_non_redundant=True))
    assert all("node2" not in g for g in plan.groups)
    assert [s["node"] for s in plan.skipped] == ["node2"]
    assert plan.downtime == []


def test_a_drbd_instance_whose_secondary_is_offline_is_downtime():
    nodes = {"node1": node(), "node2": node(offline=True), "node3": node()}
    plan = reboot_groups(config(nodes, {"a": inst("node1", "node2")}))
    assert [d["instance"] for d in plan.downtime] == ["a"]


# ----------------------------------------------------------- real config shape

def test_reads_the_dict_of_a_real_config():
    cfg = Config(cluster=Cluster(name="c", uuid="u", master_node="n1"))
    for name in ("n1", "n2", "n3"):
        cfg.nodes[name] = Node(name=name, uuid=name, primary_ip="198.51.100.1", secondary_ip="198.51.100.1")
    cfg.instances["web"] = Instance(name="web", uuid="w", primary_node="n2", secondary_node="n3",
                                    hypervisor="fake", disk_template="drbd", admin_state="up")
    plan = reboot_groups(cfg.to_dict())
    assert group_of(plan, "n2") != group_of(plan, "n3")
    assert plan.groups[-1][-1] == "n1"
    assert plan.to_dict()["lines"][0] == "'Node Reboot Groups'"


# ----------------------------------------------------------------- properties

@st.composite
def clusters(draw):
    count = draw(st.integers(1, 9))
    names = [f"node{i:02d}" for i in range(count)]
    nodes = {n: node(offline=draw(st.booleans()) and draw(st.booleans()),
                     drained=draw(st.integers(0, 5)) == 0,
                     group=draw(st.sampled_from(["default", "g2"]))) for n in names}
    master = draw(st.sampled_from(names))
    nodes[master].update(offline=False, drained=False)
    instances = {}
    for k in range(draw(st.integers(0, 20))):
        primary = draw(st.sampled_from(names))
        template = draw(st.sampled_from(["drbd", "sharedfile", "diskless", "plain", "file"]))
        secondary = None
        if template == "drbd":
            others = [n for n in names if n != primary]
            if not others:
                template = "diskless"
            else:
                secondary = draw(st.sampled_from(others))
        instances[f"i{k}"] = inst(primary, secondary, template, up=draw(st.booleans()),
                                  memory=draw(st.sampled_from([128, 512, 1024])))
    memory = draw(st.none() | st.fixed_dictionaries({n: st.integers(0, 4096) for n in names}))
    opts = RollerOptions(offline_maintenance=draw(st.booleans()),
                         skip_non_redundant=draw(st.booleans()))
    return config(nodes, instances, master), memory, opts


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(clusters())
def test_property_no_instance_loses_both_nodes_in_one_group(case):
    cfg, memory, opts = case
    plan = reboot_groups(cfg, memory, opts)
    assert loses_both(plan, cfg) == []


@SETTINGS
@given(clusters())
def test_property_every_online_node_is_in_exactly_one_group(case):
    cfg, memory, opts = case
    plan = reboot_groups(cfg, memory, opts)
    flat = [n for g in plan.groups for n in g]
    skipped = {s["node"] for s in plan.skipped}
    online = sorted(n for n, i in cfg["nodes"].items() if not i["offline"] and n not in skipped)
    assert sorted(flat) == online
    assert len(flat) == len(set(flat))
    assert not set(flat) & set(plan.offline)


@SETTINGS
@given(clusters())
def test_property_the_master_comes_last(case):
    cfg, memory, opts = case
    plan = reboot_groups(cfg, memory, opts)
    master = cfg["cluster"]["master_node"]
    if master not in {s["node"] for s in plan.skipped}:
        assert plan.groups[-1][-1] == master


@SETTINGS
@given(clusters())
def test_property_a_group_of_several_nodes_leaves_its_shared_instances_a_target(case):
    cfg, memory, opts = case
    plan = reboot_groups(cfg, memory, opts)
    if opts.offline_maintenance:
        return
    for group in plan.groups:
        if len(group) < 2:
            continue
        for name, i in cfg["instances"].items():
            if i["admin_state"] == "up" and i["primary_node"] in group and i["disk_template"] in ("sharedfile",
                                                                                                  "diskless"):
                home = cfg["nodes"][i["primary_node"]]["group"]
                assert any(n not in group and not info["offline"] and not info["drained"]
                           and info["group"] == home for n, info in cfg["nodes"].items()), (name, group)


# ----------------------------------------------------- against Ganeti's hroller

def _text_to_config(path):
    """A Ganeti htools text file as herd's config dict (names, master, offline, instances)."""
    sections = Path(path).read_text().split("\n\n")
    groups = {}
    for line in sections[0].splitlines():
        if line.strip():
            f = line.split("|")
            groups[f[1]] = f[0]
    nodes, master, memory = {}, None, {}
    for line in sections[1].splitlines():
        if not line.strip():
            continue
        f = line.split("|")
        nodes[f[0]] = node(offline=f[7] == "Y", group=groups.get(f[8], f[8]),
                           tags=f[10].split(",") if len(f) > 10 and f[10] else ())
        memory[f[0]] = int(f[3])
        if f[7] == "M":
            master = f[0]
    instances = {}
    for k, line in enumerate(sections[2].splitlines() if len(sections) > 2 else []):
        if not line.strip():
            continue
        f = line.split("|")
        instances[f"{f[0]}#{k}"] = inst(f[6], f[7] or None, f[8], up=f[4] == "running", memory=int(f[1]))
    return config(nodes, instances, master), memory


HROLLER_FILES = ["hroller-full.data", "hroller-nodegroups.data", "hroller-nonredundant.data",
                 "hroller-online.data", "unique-reboot-order.data", "multiple-tags.data"]
HROLLER_MODES = [
    ("--ignore-non-redundant", RollerOptions()),
    ("--offline-maintenance --ignore-non-redundant", RollerOptions(offline_maintenance=True)),
    ("--skip-non-redundant", RollerOptions(skip_non_redundant=True)),
]


def _hroller(path, flags):
    """hroller's groups, or None when it finds no node to plan ("Cannot create node graph")."""
    out = subprocess.run([HROLLER, "--no-headers", *flags.split(), "-t", path], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        assert "Cannot create node graph" in out.stderr, out.stderr
        return None
    return [line.split(",") for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.skipif(HROLLER is None, reason="Ganeti's hroller is not installed (ganeti-htools-3.0)")
@pytest.mark.parametrize("flag,opts", HROLLER_MODES, ids=[m[0] for m in HROLLER_MODES])
@pytest.mark.parametrize("name", HROLLER_FILES)
def test_group_count_is_no_worse_than_hrollers(name, flag, opts):
    path = data_file(name)
    theirs = _hroller(path, flag)
    cfg, _memory = _text_to_config(path)
    ours = reboot_groups(cfg, options=opts)
    if theirs is None:
        assert ours.groups == []
        return
    assert len(ours.groups) <= len(theirs), (ours.groups, theirs)
    assert sorted(n for g in ours.groups for n in g) == sorted(n for g in theirs for n in g)
    assert ours.groups[-1][-1] == theirs[-1][-1]  # both put the master last
