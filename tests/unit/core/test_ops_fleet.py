"""Many declared instances in one operation: placed together by the real allocator, created in
parallel (the instances role's bulk path). Real agents in process; each node has 2048 MiB free."""

from collections import Counter

import pytest
import yaml

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import fleet
from plugins.module_utils.herd.ops import verify as verify_op

from .conftest import init_spec


def spec(name, **extra):
    base = {"name": name, "state": "running", "disk_template": "sharedfile", "disks": ["1G"],
            "memory": "512M", "vcpus": 1, "hypervisor": "fake"}
    base.update(extra)
    return base


def memory_by_node(ctx):
    used = Counter()
    for inst in ctx.store.load().instances.values():
        used[inst.primary_node] += inst.beparams["maxmem"]
    return used


def test_instances_placed_together_never_overcommit_a_node_nor_break_n_plus_1(cluster, nodes):
    # judged one by one against the same facts, every 512 MiB instance would go to the same best
    # node (6 x 512 MiB > the 2048 MiB it has free); together, each counts the ones before it
    result = fleet.ensure_many(cluster, [spec(f"vm{i}") for i in range(6)], max_parallel=6)
    assert result["failures"] == [] and result["changed"]
    assert [r["name"] for r in result["instances"]] == [f"vm{i}" for i in range(6)]
    assert max(memory_by_node(cluster).values()) <= 2048
    report = verify_op.verify(cluster)
    assert not [f for f in report["findings"] if f["code"] == "ENODEN1"], report["findings"]
    running = {name for n in nodes for name in n.running}
    assert running == {f"vm{i}" for i in range(6)}


def test_a_batch_that_does_not_fit_is_refused_whole_before_anything_is_made(cluster, nodes):
    with pytest.raises(PrerequisiteError) as info:
        fleet.ensure_many(cluster, [spec(f"vm{i}") for i in range(13)])
    message = str(info.value)
    assert "of 13 instances" in message and "vm12" in message and "vm0 " not in message
    for name in ("node1", "node2", "node3"):
        assert f"{name}: Fail" in message, message
    assert cluster.store.load().instances == {}
    assert all(not n.disks for n in nodes) and not any(n.running for n in nodes)


def test_exclusion_tags_spread_the_batch_over_distinct_nodes(cluster):
    cluster_op.present(cluster, init_spec(tags=["htools:iextags:svc"]))
    batch = [spec(f"web{i}", memory="128M", tags=["svc:web"]) for i in range(3)]
    batch += [spec(f"db{i}", memory="128M", tags=["svc:db"]) for i in range(3)]
    fleet.ensure_many(cluster, batch)
    instances = cluster.store.load().instances
    for service in ("web", "db"):
        assert len({instances[f"{service}{i}"].primary_node for i in range(3)}) == 3


def test_drbd_batch_keeps_every_node_able_to_take_over_its_secondaries(cluster):
    # 4 x 600 MiB drbd on 3 nodes with 2048 MiB free: placed one by one without counting
    # the earlier ones a node could end up unable to fail over; together they stay N+1
    fleet.ensure_many(cluster, [spec(f"db{i}", disk_template="drbd", memory="600M") for i in range(4)])
    report = verify_op.verify(cluster)
    assert not [f for f in report["findings"] if f["code"] == "ENODEN1"], report["findings"]
    instances = cluster.store.load().instances
    assert all(i.secondary_node and i.secondary_node != i.primary_node for i in instances.values())


def test_failed_creation_is_rolled_back_alone_and_the_others_complete(cluster, nodes):
    nodes[1].fail["disk_create"] = "the disk could not be made"
    result = fleet.ensure_many(cluster, [spec(f"vm{i}", memory="256M") for i in range(6)], max_parallel=3)
    failed = {f["instance"] for f in result["failures"]}
    instances = cluster.store.load().instances
    assert failed and all("the disk could not be made" in f["reason"] for f in result["failures"])
    assert failed.isdisjoint(instances) and len(instances) + len(failed) == 6
    assert all(inst.primary_node != "node2" for inst in instances.values())
    # every disk made for a failed creation was removed again (sharedfile: one directory for all)
    assert {key.split("/")[0] for n in nodes for key in n.disks} == set(instances)
    statuses = [job["status"] for job in cluster.journal.list(opcode="instance_create")]
    assert sorted(statuses) == sorted(["success"] * len(instances) + ["error"] * len(failed))


def test_check_mode_plans_the_batch_and_touches_nothing(cluster, nodes):
    cluster.check_mode = True
    result = fleet.ensure_many(cluster, [spec(f"vm{i}") for i in range(6)])
    assert result["changed"] and len(result["instances"]) == 6
    planned = Counter(r["placement"]["primary"] for r in result["instances"])
    assert len(planned) > 1 and max(planned.values()) <= 4  # 4 x 512 MiB = the 2048 MiB a node has free
    assert cluster.store.load().instances == {} and all(not n.disks for n in nodes)


def test_a_second_identical_run_changes_nothing(cluster):
    batch = [spec(f"vm{i}") for i in range(4)]
    fleet.ensure_many(cluster, batch)
    again = fleet.ensure_many(cluster, batch)
    assert again["changed"] is False and again["failures"] == []


def test_existing_and_new_instances_converge_in_one_call(cluster, nodes):
    fleet.ensure_many(cluster, [spec("vm0"), spec("vm1")])
    result = fleet.ensure_many(cluster, [spec("vm0", state="stopped"), spec("vm1", state="absent"), spec("vm2")])
    instances = cluster.store.load().instances
    assert set(instances) == {"vm0", "vm2"} and instances["vm0"].admin_state == "down"
    assert [r["name"] for r in result["instances"] if r["changed"]] == ["vm0", "vm1", "vm2"]


@pytest.mark.parametrize("batch, message", [
    ([spec("vm0"), spec("vm0")], "declared more than once: vm0"),
    ([spec("vm0"), spec("bad name!")], "bad name!"),
    ([spec("vm0", memory="lots")], "lots"),
])
def test_bad_declarations_are_refused_before_anything_is_touched(cluster, nodes, batch, message):
    with pytest.raises(ValidationError, match=message):
        fleet.ensure_many(cluster, batch)
    assert cluster.store.load().instances == {} and all(not n.disks for n in nodes)


def test_the_bulk_module_documents_each_option_as_the_instance_module_does():
    def options(path):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return yaml.safe_load(text.split("DOCUMENTATION = r'''")[1].split("'''")[0])["options"]
    single = options("plugins/modules/instance.py")
    bulk = options("plugins/modules/instances.py")["instances"]["suboptions"]
    single = {k: v for k, v in single.items() if k not in ("lock_timeout", "rpc_timeout")}
    assert set(bulk) == set(single)
    for key, doc in single.items():
        expected = dict(doc)
        if key == "state":  # default_state applies to a declaration without one
            expected.pop("default")
            expected["description"] = doc["description"] + ["Defaults to I(default_state)."]
        assert bulk[key] == expected, key
