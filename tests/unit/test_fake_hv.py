"""The fake hypervisor: state files only, the same verbs as KVM, migration simulated.

Nodes are simulated by switching HERD_STATE_DIR between per-node directories;
requests go through the agent's JSON protocol (agent.main.handle).
"""

import os
import uuid
from pathlib import Path

import pytest

from plugins.module_utils.herd.agent import main as agent
from plugins.module_utils.herd.hypervisor import base
from plugins.module_utils.herd.version import VERSION


class Node:
    def __init__(self, name, state_dir, monkeypatch):
        self.name = name
        self.state_dir = str(state_dir)
        self.monkeypatch = monkeypatch

    def call(self, verb, **args):
        self.monkeypatch.setenv("HERD_STATE_DIR", self.state_dir)
        self.monkeypatch.setenv("HERD_RUN_DIR", os.path.join(self.state_dir, "run"))
        args.setdefault("hypervisor", "fake")
        return agent.handle({"version": VERSION, "verb": verb, "args": args})

    def ok(self, verb, **args):
        answer = self.call(verb, **args)
        assert answer["ok"], answer
        return answer["result"]


@pytest.fixture
def nodes(tmp_path, monkeypatch):
    return [Node(f"node{i}", tmp_path / f"node{i}", monkeypatch) for i in (1, 2, 3)]


def spec(name="web1", memory=128):
    return {"name": name, "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "memory": memory, "vcpus": 1,
            "hvparams": {"migration_bandwidth": 64}, "nics": [{"mac": "aa:00:00:00:00:01", "link": "br0"}]}


def test_start_writes_a_state_file_and_reports_running(nodes):
    node = nodes[0]
    assert node.ok("instance_start", spec=spec())["changed"] is True
    assert os.path.exists(os.path.join(node.state_dir, "fake", "web1.json"))
    assert node.ok("instance_status", name="web1")["status"] == "running"


def test_second_start_changes_nothing(nodes):
    nodes[0].ok("instance_start", spec=spec())
    again = nodes[0].ok("instance_start", spec=spec())
    assert (again["changed"], again["runtime_differs"]) == (False, False)


def test_start_with_another_spec_reports_the_difference(nodes):
    nodes[0].ok("instance_start", spec=spec())
    assert nodes[0].ok("instance_start", spec=spec(memory=256))["runtime_differs"] is True


def test_stop_removes_the_state(nodes):
    nodes[0].ok("instance_start", spec=spec())
    stopped = nodes[0].ok("instance_stop", name="web1")
    assert (stopped["was_running"], nodes[0].ok("instance_status", name="web1")["status"]) == (True, "stopped")


def test_stop_of_a_stopped_instance_changes_nothing(nodes):
    assert nodes[0].ok("instance_stop", name="web1")["changed"] is False


def test_list_reports_memory_per_instance(nodes):
    nodes[0].ok("instance_start", spec=spec("a", 128))
    nodes[0].ok("instance_start", spec=spec("b", 512))
    listing = nodes[0].ok("instance_list", hypervisors=["fake"])["instances"]
    assert {n: (i["status"], i["memory"]) for n, i in listing.items()} == {"a": ("running", 128),
                                                                           "b": ("running", 512)}


def test_reboot_keeps_it_running(nodes):
    nodes[0].ok("instance_start", spec=spec())
    nodes[0].ok("instance_reboot", name="web1")
    assert nodes[0].ok("instance_status", name="web1")["status"] == "running"


def test_invalid_name_is_refused_through_the_protocol(nodes):
    answer = nodes[0].call("instance_status", name="../../etc/passwd")
    assert not answer["ok"] and "invalid instance name" in answer["error"]


def test_unknown_hypervisor_is_refused(nodes):
    answer = nodes[0].call("instance_status", name="web1", hypervisor="xen")
    assert not answer["ok"] and "unknown hypervisor 'xen'" in answer["error"]


def test_corrupt_state_file_is_an_error_state(nodes):
    os.makedirs(os.path.join(nodes[0].state_dir, "fake"))
    with open(os.path.join(nodes[0].state_dir, "fake", "web1.json"), "w") as handle:
        handle.write("{not json")
    assert nodes[0].ok("instance_status", name="web1")["status"] == "error"


def migrate(source, target, name="web1"):
    runtime = source.ok("migration_info", name=name)["runtime"]
    accepted = target.ok("migration_accept", runtime=runtime, address="203.0.113.2", port=None)
    source.ok("migration_start", name=name, address="203.0.113.2", port=accepted["port"])
    return accepted


def test_live_migration_moves_the_instance(nodes):
    source, target = nodes[0], nodes[1]
    source.ok("instance_start", spec=spec())
    migrate(source, target)
    status = source.ok("migration_status", name="web1")
    assert (status["status"], status["transferred"], status["total"]) == ("completed", 128 * 2**20, 128 * 2**20)
    target.ok("migration_finalize", name="web1", role="target", success=True)
    source.ok("migration_finalize", name="web1", role="source", success=True)
    assert (source.ok("instance_status", name="web1")["status"],
            target.ok("instance_status", name="web1")["status"]) == ("stopped", "running")


def test_target_is_incoming_until_finalized(nodes):
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    status = nodes[1].ok("instance_status", name="web1")
    assert (status["status"], status["qemu_status"]) == ("incoming", "inmigrate")


def test_source_is_migrated_once_the_copy_completed(nodes):
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    nodes[0].ok("migration_status", name="web1")
    assert nodes[0].ok("instance_status", name="web1")["status"] == "migrated"


def test_list_shows_only_where_the_guest_runs_unless_all(nodes):
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    nodes[0].ok("migration_status", name="web1")
    default = [list(n.ok("instance_list", hypervisors=["fake"])["instances"]) for n in nodes[:2]]
    full = [{k: v["status"] for k, v in n.ok("instance_list", hypervisors=["fake"], all=True)["instances"].items()}
            for n in nodes[:2]]
    assert (default, full) == ([[], []], [{"web1": "migrated"}, {"web1": "incoming"}])


def test_start_is_refused_during_a_migration(nodes):
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    answer = nodes[1].call("instance_start", spec=spec())
    assert not answer["ok"] and "finalize or abort it first" in answer["error"]


def test_accept_is_refused_where_the_instance_already_runs(nodes):
    nodes[0].ok("instance_start", spec=spec())
    nodes[1].ok("instance_start", spec=spec())
    runtime = nodes[0].ok("migration_info", name="web1")["runtime"]
    answer = nodes[1].call("migration_accept", runtime=runtime, address="203.0.113.2")
    assert not answer["ok"] and "already runs" in answer["error"]


def test_second_migration_at_once_is_refused(nodes, monkeypatch):
    monkeypatch.setenv("HERD_FAKE_MIGRATION_SECONDS", "3600")
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    answer = nodes[0].call("migration_start", name="web1", address="203.0.113.3", port=8102)
    assert not answer["ok"] and "already in progress" in answer["error"]


def test_abort_leaves_the_source_running_and_the_target_empty(nodes, monkeypatch):
    monkeypatch.setenv("HERD_FAKE_MIGRATION_SECONDS", "3600")
    source, target = nodes[0], nodes[1]
    source.ok("instance_start", spec=spec())
    migrate(source, target)
    assert source.ok("migration_status", name="web1")["status"] == "active"
    source.ok("migration_abort", name="web1", role="source")
    target.ok("migration_finalize", name="web1", role="target", success=False)
    source.ok("migration_finalize", name="web1", role="source", success=False)
    assert (source.ok("instance_status", name="web1")["status"],
            target.ok("instance_status", name="web1")["status"]) == ("running", "stopped")


def test_source_is_not_removed_before_the_migration_completed(nodes, monkeypatch):
    monkeypatch.setenv("HERD_FAKE_MIGRATION_SECONDS", "3600")
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    answer = nodes[0].call("migration_finalize", name="web1", role="source", success=True)
    assert not answer["ok"] and "refusing to remove" in answer["error"]


def test_sixty_instances_on_three_nodes(nodes):
    for i in range(60):
        nodes[i % 3].ok("instance_start", spec=spec(f"inst{i:02d}"))
    counts = [len(n.ok("instance_list", hypervisors=["fake"])["instances"]) for n in nodes]
    for i in range(0, 60, 2):
        nodes[i % 3].ok("instance_stop", name=f"inst{i:02d}")
    after = [len(n.ok("instance_list", hypervisors=["fake"])["instances"]) for n in nodes]
    assert (counts, after) == ([20, 20, 20], [10, 10, 10])


def test_a_busy_instance_is_refused_with_the_lock_named(nodes, monkeypatch):
    monkeypatch.setenv("HERD_RUN_DIR", os.path.join(nodes[0].state_dir, "run"))
    with base.instance_lock("web1", "test"):
        with pytest.raises(base.HypervisorError, match="instance web1 is busy with another operation"):
            with base.instance_lock("web1", "instance_stop", timeout=0.2):
                pass


def test_the_lock_leaves_no_file_behind(nodes, monkeypatch):
    monkeypatch.setenv("HERD_RUN_DIR", os.path.join(nodes[0].state_dir, "run"))
    with base.instance_lock("web1", "test"):
        pass
    assert os.listdir(os.path.join(nodes[0].state_dir, "run", "locks")) == []


# --- the request shapes the master's ops send ------------------------------------------

def test_spec_under_instance_with_the_hypervisor_inside_it(nodes):
    data = dict(spec(), hypervisor="fake", os="noop", storage={"vg": "gnt"},
                disks=[{"path": "/srv/herd/web1/disk0", "uuid": "d0", "size": 1024, "index": 0}])
    answer = nodes[0].call("instance_start", instance=data, hypervisor=None)
    assert answer["ok"], answer
    assert nodes[0].ok("instance_status", name="web1")["status"] == "running"


def test_item14_uefi_vars_default_to_a_node_file_keyed_by_the_uuid(nodes):
    data = dict(spec(), hvparams={"firmware": "uefi"})
    nodes[0].ok("instance_start", spec=data)
    stored = nodes[0].ok("instance_info", name="web1")["runtime"]["spec"]
    assert stored["uefi_vars"] == os.path.join(nodes[0].state_dir, "uefi", f"{data['uuid']}.OVMF_VARS.fd")


def test_item14_a_new_instance_of_an_old_name_gets_other_uefi_vars(nodes, monkeypatch):
    monkeypatch.setenv("HERD_STATE_DIR", nodes[0].state_dir)
    assert base.default_uefi_vars(str(uuid.uuid4())) != base.default_uefi_vars(str(uuid.uuid4()))


def test_item14_purge_removes_the_uuid_keyed_and_the_old_name_keyed_vars(nodes):
    data = spec()
    directory = os.path.join(nodes[0].state_dir, "uefi")
    os.makedirs(directory)
    files = [os.path.join(directory, f"{data['uuid']}.OVMF_VARS.fd"), os.path.join(directory, "web1.OVMF_VARS.fd")]
    for path in files:
        open(path, "wb").close()
    cleaned = nodes[0].ok("instance_cleanup", name="web1", uuid=data["uuid"], purge=True)["cleaned"]
    assert sorted(cleaned) == sorted(files) and os.listdir(directory) == []


def test_item14_the_uefi_vars_file_is_private_from_its_creation(tmp_path):
    template = tmp_path / "OVMF_VARS_4M.fd"
    template.write_bytes(b"\x01" * 4096)
    template.chmod(0o644)
    path = str(tmp_path / "uefi" / "x.OVMF_VARS.fd")
    old = os.umask(0o022)
    try:
        assert base.ensure_uefi_vars(path, str(template)) is True
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o777, Path(path).read_bytes()) == (0o600, b"\x01" * 4096)
    os.chmod(path, 0o644)  # a file from before: kept, made private
    assert base.ensure_uefi_vars(path, str(template)) is False and os.stat(path).st_mode & 0o777 == 0o600


def test_item14_uefi_vars_are_carried_between_nodes_and_never_under_a_running_qemu(nodes):
    data = dict(spec(), hvparams={"firmware": "uefi"})
    source = os.path.join(nodes[0].state_dir, "uefi", f"{data['uuid']}.OVMF_VARS.fd")
    os.makedirs(os.path.dirname(source))
    with open(source, "wb") as handle:
        handle.write(b"boot-entries" * 100)
    got = nodes[0].ok("uefi_vars_get", name="web1", uuid=data["uuid"])
    put = nodes[1].ok("uefi_vars_put", name="web1", uuid=data["uuid"], data=got["data"], sha256=got["sha256"])
    target = os.path.join(nodes[1].state_dir, "uefi", f"{data['uuid']}.OVMF_VARS.fd")
    assert (put["changed"], Path(target).read_bytes(), os.stat(target).st_mode & 0o777) == \
        (True, b"boot-entries" * 100, 0o600)
    nodes[1].ok("instance_start", spec=data)
    answer = nodes[1].call("uefi_vars_put", name="web1", uuid=data["uuid"], data=got["data"], sha256=got["sha256"])
    assert not answer["ok"] and "is running on this node" in answer["error"]


def test_item14_only_ovmf_vars_files_are_read_written_or_removed(nodes):
    answer = nodes[0].call("uefi_vars_get", name="web1", uefi_vars="/root/.ssh/id_ed25519")
    assert not answer["ok"] and "OVMF_VARS.fd" in answer["error"]


def test_item10_a_253_character_instance_name_can_be_locked_on_the_node(nodes, monkeypatch):
    monkeypatch.setenv("HERD_RUN_DIR", os.path.join(nodes[0].state_dir, "run"))
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    with base.instance_lock(longest, "test", timeout=1):
        pass


def test_list_leaves_out_instances_in_error_unless_asked(nodes):
    os.makedirs(os.path.join(nodes[0].state_dir, "fake"))
    with open(os.path.join(nodes[0].state_dir, "fake", "web1.json"), "w") as handle:
        handle.write("{not json")
    assert (nodes[0].ok("instance_list", hypervisors=["fake"])["instances"],
            list(nodes[0].ok("instance_list", hypervisors=["fake"], all=True)["instances"])) == ({}, ["web1"])


def test_accept_takes_the_targets_own_disk_paths(nodes):
    nodes[0].ok("instance_start", spec=dict(spec(), disks=[{"path": "/dev/drbd0"}]))
    runtime = nodes[0].ok("migration_info", name="web1")["runtime"]
    nodes[1].ok("migration_accept", runtime=runtime, address="203.0.113.2", disk_paths=["/dev/drbd7"])
    assert nodes[1].ok("instance_info", name="web1")["runtime"]["spec"]["disks"][0]["path"] == "/dev/drbd7"


def test_abort_without_role_resumes_the_source(nodes, monkeypatch):
    monkeypatch.setenv("HERD_FAKE_MIGRATION_SECONDS", "3600")
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    nodes[1].ok("migration_abort", name="web1", role="target")
    aborted = nodes[0].ok("migration_abort", name="web1")
    assert (aborted["status"], nodes[0].ok("instance_status", name="web1")["qemu_status"]) == \
        ("cancelled", "running")


def test_abort_after_a_completed_migration_does_not_resume_the_source(nodes):
    nodes[0].ok("instance_start", spec=spec())
    migrate(nodes[0], nodes[1])
    nodes[0].ok("migration_status", name="web1")  # completes
    aborted = nodes[0].ok("migration_abort", name="web1")
    assert (aborted["resumed"], nodes[0].ok("instance_status", name="web1")["status"]) == (False, "migrated")
