import pytest

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import views


def spec(**extra):
    """A small instance on node1 (drbd: node2 its secondary) unless the test names other nodes:
    these tests are about the operations; the allocator's own choice is tested in
    test_placement_allocator.py and test_ops_fleet.py (a named node still passes its checks)."""
    base = {"name": "web1", "state": "running", "disk_template": "file", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "fake", "primary_node": "node1"}
    base.update(extra)
    if base["disk_template"] == "drbd" and "secondary_node" not in extra and base["primary_node"] == "node1":
        base["secondary_node"] = "node2"
    return base


def test_create_running_instance_makes_disks_starts_and_records(cluster, nodes):
    result = instance_op.ensure(cluster, spec())
    assert result["changed"] is True
    inst = cluster.store.load().instances["web1"]
    assert inst.admin_state == "up" and inst.primary_node == "node1"
    assert nodes[0].disks == {f"web1/{inst.disks[0].uuid}": 1024}
    assert "web1" in nodes[0].running


def test_second_identical_run_changes_nothing(cluster):
    instance_op.ensure(cluster, spec())
    serial = cluster.store.load().serial_no
    result = instance_op.ensure(cluster, spec())
    assert result["changed"] is False, result
    assert cluster.store.load().serial_no == serial


def test_sizes_in_other_units_are_the_same_size(cluster):
    instance_op.ensure(cluster, spec())
    assert instance_op.ensure(cluster, spec(disks=["1024M"], memory=256))["changed"] is False


def test_check_mode_create_reports_placement_and_touches_nothing(cluster, nodes):
    cluster.check_mode = True
    result = instance_op.ensure(cluster, spec())
    assert result["placement"]["primary"] == "node1"
    assert "web1" not in cluster.store.load().instances
    assert nodes[0].disks == {} and nodes[0].running == {}


def test_macs_and_ids_are_generated_once_and_kept(cluster):
    instance_op.ensure(cluster, spec(hypervisor="kvm", nics=[{"link": "br0"}]))
    first = cluster.store.load().instances["web1"]
    instance_op.ensure(cluster, spec(hypervisor="kvm", nics=[{"link": "br0"}], memory="512M",
                                     restart_on_change=True))
    again = cluster.store.load().instances["web1"]
    assert first.nics[0].mac == again.nics[0].mac and first.nics[0].mac.startswith("aa:00:00:")
    assert first.uuid == again.uuid and first.network_port == again.network_port == 11000


def test_memory_change_on_running_instance_waits_for_restart(cluster, nodes):
    instance_op.ensure(cluster, spec())
    result = instance_op.ensure(cluster, spec(memory="512M"))
    assert result["changed"] is True
    assert any("next restart" in a for a in result["actions"])
    inst = cluster.store.load().instances["web1"]
    assert inst.pending_restart is True and inst.beparams["maxmem"] == 512
    assert nodes[0].running["web1"]["memory"] == 256


def test_memory_change_with_restart_on_change_restarts(cluster, nodes):
    instance_op.ensure(cluster, spec())
    result = instance_op.ensure(cluster, spec(memory="512M", restart_on_change=True))
    assert result["actions"] == ["stop", "start"]
    assert nodes[0].running["web1"]["memory"] == 512
    assert cluster.store.load().instances["web1"].pending_restart is False


def test_disk_grows(cluster, nodes):
    instance_op.ensure(cluster, spec())
    result = instance_op.ensure(cluster, spec(disks=["2G"]))
    inst = cluster.store.load().instances["web1"]
    assert "grow disk 0 to 2048 MiB" in result["actions"]
    assert nodes[0].disks[f"web1/{inst.disks[0].uuid}"] == 2048


def test_shrinking_a_disk_is_refused(cluster):
    instance_op.ensure(cluster, spec(disks=["2G"]))
    with pytest.raises(PrerequisiteError, match="disk 0 is 2048 MiB, declared 1024 MiB: disks never shrink"):
        instance_op.ensure(cluster, spec(disks=["1G"]))


def test_changing_the_template_other_than_plain_and_drbd_is_refused(cluster):
    instance_op.ensure(cluster, spec())
    with pytest.raises(PrerequisiteError, match="converting file to sharedfile is not supported; supported: plain to drbd"):
        instance_op.ensure(cluster, spec(disk_template="sharedfile"))


def test_stop_and_start(cluster, nodes):
    instance_op.ensure(cluster, spec())
    assert instance_op.ensure(cluster, spec(state="stopped"))["actions"] == ["stop"]
    assert "web1" not in nodes[0].running
    assert cluster.store.load().instances["web1"].admin_state == "down"
    assert instance_op.ensure(cluster, spec(state="running"))["actions"] == ["start"]
    assert "web1" in nodes[0].running


def test_start_failure_of_a_new_instance_removes_its_disks_and_config(cluster, nodes):
    nodes[0].fail["instance_start"] = "qemu-system-x86_64: -drive file=/x: Could not open '/x'"
    with pytest.raises(Exception, match="Could not open '/x'"):
        instance_op.ensure(cluster, spec())
    assert "web1" not in cluster.store.load().instances
    assert nodes[0].disks == {}
    job = cluster.journal.list()[-1]
    assert job["opcode"] == "instance_create" and job["status"] == "error"
    assert any(step["name"].startswith("rollback: remove disk 0") for step in job["steps"])


def test_remove_stops_and_deletes_disks_and_runtime_files(cluster, nodes):
    instance_op.ensure(cluster, spec())
    result = instance_op.ensure(cluster, {"name": "web1", "state": "absent"})
    assert result["changed"] is True
    assert nodes[0].disks == {} and nodes[0].running == {} and nodes[0].runtime_files == set()
    assert "web1" not in cluster.store.load().instances
    assert instance_op.ensure(cluster, {"name": "web1", "state": "absent"})["changed"] is False


def test_instance_info_reports_error_states(cluster, nodes):
    instance_op.ensure(cluster, spec())
    nodes[0].drop("web1")
    rows = views.instance_info(cluster)["instances"]
    assert rows[0]["status"] == "ERROR_down"
    assert views.instance_info(cluster)["table"][0].split()[:5] == ["Instance", "Hypervisor", "OS",
                                                                    "Primary_node", "Status"]


@pytest.mark.parametrize("bad,message", [
    ({"disks": ["10X"]}, "invalid disks\\[0\\] size '10X'"),
    ({"nics": [{"mac": "zz:00:00:00:00:00"}]}, "invalid MAC address"),
    ({"nics": [{"vlan": 5000}]}, "vlan 5000 must be an integer from 1 to 4094"),
    ({"name": "Bad_Name"}, "invalid instance name"),
    ({"hypervisor": "kvm", "hvparams": {"machine_type": "isapc"}}, "hvparams.machine_type 'isapc' is not one of"),
    ({"hypervisor": "kvm", "hvparams": {"kernel_path": "vmlinuz"}}, "expected an absolute path"),
    ({"hvparams": {"kernel_path": "/vmlinuz"}}, r"unknown parameters \['kernel_path'\] for fake"),
])
def test_bad_input_is_refused_before_anything_is_touched(cluster, nodes, bad, message):
    with pytest.raises(ValidationError, match=message):
        instance_op.ensure(cluster, spec(**bad))
    assert nodes[0].calls.count("disk_create") == 0


def test_duplicate_mac_is_refused(cluster):
    instance_op.ensure(cluster, spec(nics=[{"mac": "aa:00:00:00:00:01"}]))
    with pytest.raises(PrerequisiteError, match="MAC aa:00:00:00:00:01 is already used"):
        instance_op.ensure(cluster, spec(name="web2", nics=[{"mac": "aa:00:00:00:00:01"}]))


def test_drained_node_is_refused_as_explicit_target(cluster):
    from plugins.module_utils.herd.ops import node as node_op
    node_op.present(cluster, {"name": "node2", "drained": True})
    with pytest.raises(PrerequisiteError, match="node node2 is drained"):
        instance_op.ensure(cluster, spec(primary_node="node2"))


def test_restarted_always_restarts_and_applies_pending_changes(cluster, nodes):
    instance_op.ensure(cluster, spec())
    instance_op.ensure(cluster, spec(memory="512M"))
    assert nodes[0].running["web1"]["memory"] == 256
    result = instance_op.ensure(cluster, spec(memory="512M", state="restarted"))
    assert result["actions"] == ["stop", "start"]
    assert nodes[0].running["web1"]["memory"] == 512
    assert cluster.store.load().instances["web1"].pending_restart is False


IMAGE = {"os": "image", "osparams": {"image": "/srv/images/debian.raw"}}


def interrupt_during(cluster, nodes, monkeypatch, verb, os_spec=None):
    """Run a create that dies at ``verb`` the way a killed process does: no rollback runs, and
    its journal entry stays "running" under a pid that no longer exists."""
    from plugins.module_utils.herd.jobs import Job

    os_spec = IMAGE if os_spec is None else os_spec

    monkeypatch.setattr(Job, "rollback", lambda self: [])
    for node in nodes:
        node.fail[verb] = "killed"
    with pytest.raises(Exception, match="killed"):
        instance_op.ensure(cluster, spec(**os_spec))
    for node in nodes:
        node.fail.pop(verb)
    monkeypatch.undo()
    job = cluster.journal.list(opcode="instance_create")[-1]
    job.update(status="running", pid=2 ** 22 + 12345)
    cluster.journal.write(job)
    return job


def test_item18_an_interrupted_create_records_the_disks_it_made(cluster, nodes, monkeypatch):
    job = interrupt_during(cluster, nodes, monkeypatch, "os_install")
    made = [key.split("/")[1] for key in nodes[0].disks]
    assert [e["kind"] for e in job["created"]] == ["disk", "os"]
    assert [e["instance"]["disks"][e["index"]]["uuid"] for e in job["created"] if e["kind"] == "disk"] == made
    assert "web1" not in cluster.store.load().instances


def test_item18_recovery_removes_exactly_what_the_interrupted_create_made(cluster, nodes, monkeypatch):
    instance_op.ensure(cluster, spec(name="db1", state="stopped"))
    others = dict(nodes[0].disks)  # another instance's disk on the same node
    interrupt_during(cluster, nodes, monkeypatch, "os_install")
    assert len(nodes[0].disks) == len(others) + 1
    result = instance_op.ensure(cluster, spec(state="absent"))
    assert result["changed"] is False
    assert nodes[0].disks == others
    assert any("removed disk 0 of web1 left by job" in w for w in cluster.warnings)
    assert cluster.journal.interrupted() == []


def test_item18_a_create_interrupted_after_its_commit_keeps_its_disks(cluster, nodes, monkeypatch):
    # past the OS step: the noop OS, as no image file exists on the in-process nodes
    noop = {"os": "noop"}
    interrupt_during(cluster, nodes, monkeypatch, "instance_start", noop)
    inst = cluster.store.load().instances["web1"]
    instance_op.ensure(cluster, spec(state="stopped", **noop))
    assert nodes[0].disks == {f"web1/{inst.disks[0].uuid}": 1024}


def test_an_instance_created_while_ensure_waited_for_its_lock_is_modified_not_created_again(cluster, monkeypatch):
    # The operation is chosen from the config read before the instance lock is taken: another
    # job may create the instance in between. Simulated by choosing create for an instance that
    # exists; under the lock, create sees it and ensure chooses again.
    instance_op.ensure(cluster, spec())
    chosen = []
    real = instance_op.operation_for

    def stale_first(ctx, declared):
        chosen.append(instance_op.InstanceCreate if not chosen else real(ctx, declared))
        return chosen[-1]

    monkeypatch.setattr(instance_op, "operation_for", stale_first)
    result = instance_op.ensure(cluster, spec(memory="512M", restart_on_change=True))
    assert chosen == [instance_op.InstanceCreate, instance_op.InstanceModify]
    assert result["changed"] is True and "stop" in result["actions"]
    assert cluster.store.load().instances["web1"].beparams["maxmem"] == 512
    assert [j["opcode"] for j in cluster.journal.list()].count("instance_create") == 1


def test_without_named_nodes_the_allocator_places_on_an_emptier_node(cluster):
    # hail's score prefers the spread: with 1 GiB on node1, both other nodes are emptier
    instance_op.ensure(cluster, spec(memory="1G"))
    result = instance_op.ensure(cluster, spec(name="web2", primary_node=None))
    assert result["placement"]["primary"] in ("node2", "node3")
    assert cluster.store.load().instances["web2"].primary_node == result["placement"]["primary"]
