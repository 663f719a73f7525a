"""The job journal as operators see it: every progress line kept, finished jobs archived and never
read by operations, job ids in results and errors, job_info's table and follow mode."""

import builtins
import importlib.util
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from plugins.module_utils.herd import errors as errors_mod
from plugins.module_utils.herd import jobs as jobs_mod
from plugins.module_utils.herd.errors import HerdError
from plugins.module_utils.herd.jobs import ARCHIVE_BUCKET, Journal
from plugins.module_utils.herd.ops import common as common_mod
from plugins.module_utils.herd.ops import views
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.ops import verify

REPO = Path(__file__).resolve().parents[3]


def spec(**extra):
    base = {"name": "web1", "state": "running", "disk_template": "file", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "fake", "primary_node": "node1"}
    base.update(extra)
    return base


def fill_archive(journal, count, first=1):
    """``count`` finished jobs written straight into the archive, as a long-lived master has them."""
    for job_id in range(first, first + count):
        path = journal.archive_path(job_id)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w") as handle:
            json.dump({"id": job_id, "opcode": "instance_create", "params": {"name": f"old{job_id}"},
                       "status": "success", "steps": [], "received_ts": 1.0, "start_ts": 1.0, "end_ts": 2.0,
                       "last_message": "", "result": None, "pid": 1, "host": "node1"}, handle)
    with open(journal.counter, "w") as handle:
        handle.write(f"{first + count}\n")


def test_every_progress_line_is_kept_with_its_time(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("instance_migrate", {"name": "web1"})
    job.start()
    with job.step("migrate"):
        for mib in (64, 128, 256):
            job.log(f"migration active: {mib} of 256 MiB transferred")
    job.finish()
    step = journal.get(job.id)["steps"][0]
    assert [line["message"] for line in step["progress"]] == [
        f"migration active: {mib} of 256 MiB transferred" for mib in (64, 128, 256)]
    assert step["message"] == "migration active: 256 of 256 MiB transferred"
    assert step["start_ts"] <= step["progress"][0]["ts"] <= step["progress"][-1]["ts"] <= step["end_ts"]


def test_a_finished_job_moves_to_the_archive_with_its_log(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("node_add", {"name": "node2"})
    job.start()
    with job.step("commit config"):
        job.log("pushed to node3")
    running_log = journal.log_path(job.id)
    assert os.path.dirname(running_log) == journal.dir
    job.finish()
    assert not os.path.exists(journal.path(job.id)) and os.path.exists(journal.archive_path(job.id))
    assert journal.get(job.id)["status"] == "success"
    with open(journal.log_path(job.id)) as handle:
        lines = [line.split(" ", 2)[2] for line in handle.read().splitlines()]
    assert lines == [f"node_add started (pid {os.getpid()})", "step commit config", "pushed to node3",
                     lines[3], "success"]
    assert lines[3].startswith("step commit config done (")
    assert os.stat(journal.log_path(job.id)).st_mode & 0o777 == 0o600
    assert os.listdir(journal.dir) == [n for n in os.listdir(journal.dir) if not n.endswith((".json", ".log"))]


def test_ids_continue_after_the_archive_when_the_counter_is_lost(tmp_path):
    journal = Journal(str(tmp_path))
    fill_archive(journal, 2 * ARCHIVE_BUCKET + 5)
    os.unlink(journal.counter)
    assert journal.open("x", {}).id == 2 * ARCHIVE_BUCKET + 6


def test_job_info_lists_the_newest_across_running_and_archived_jobs(tmp_path):
    journal = Journal(str(tmp_path))
    fill_archive(journal, 30)
    running = journal.open("instance_migrate", {"name": "web1"})
    running.start()
    done = journal.open("node_add", {"name": "node2"})
    done.finish()
    assert [j["id"] for j in journal.list(limit=3)] == [30, running.id, done.id]
    assert [j["id"] for j in journal.list(status="running")] == [running.id]
    assert [j["id"] for j in journal.list(opcode="node_add")] == [done.id]


class Reads:
    """Every file opened and every directory listed below ``root`` while active."""

    def __init__(self, monkeypatch, root):
        self.opened, self.listed, self.root = [], [], str(root)
        real_open, real_listdir = builtins.open, os.listdir

        def counting_open(file, *args, **kwargs):
            if isinstance(file, str | Path) and str(file).startswith(self.root):
                self.opened.append(str(file))
            return real_open(file, *args, **kwargs)

        def counting_listdir(path="."):
            if str(path).startswith(self.root):
                self.listed.append(str(path))
            return real_listdir(path)

        monkeypatch.setattr(builtins, "open", counting_open)
        monkeypatch.setattr(os, "listdir", counting_listdir)


def test_operations_never_read_or_list_archived_jobs(cluster, nodes, monkeypatch):
    """Create, modify, verify and remove an instance with 2,500 finished jobs in the archive: not one
    archived job file is opened, and of the archive only its bucket names and the newest bucket's
    file names (for the next id) are listed."""
    journal = cluster.journal
    fill_archive(journal, 2500, first=1000)
    newest = os.path.dirname(journal.archive_path(3499))
    journal.opened.clear()
    reads = Reads(monkeypatch, journal.archive_dir)
    instance_op.ensure(cluster, spec())
    instance_op.ensure(cluster, spec(memory="512M", restart_on_change=True))
    verify.verify(cluster)
    instance_op.ensure(cluster, spec(state="absent"))
    monkeypatch.undo()
    ours = list(journal.opened)
    assert len(ours) == 3
    old = [p for p in reads.opened if int(os.path.basename(p)[:8]) not in ours]
    assert old == []
    assert set(reads.listed) <= {journal.archive_dir, newest} and newest in reads.listed


def test_an_interrupted_finished_archiving_is_completed_by_the_next_operation(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("node_add", {})
    data = journal.get(job.id)
    data.update(status="success", end_ts=time.time())
    jobs_mod.write_json_atomic(journal.path(job.id), data)  # written, not yet renamed into the archive
    assert journal.interrupted() == []
    assert not os.path.exists(journal.path(job.id)) and journal.get(job.id)["status"] == "success"


def test_the_latest_indexed_job_is_found_without_the_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs_mod, "_LATEST_BY_NAME", {"instance_replace_disks"})
    journal = Journal(str(tmp_path))
    first = journal.open("instance_replace_disks", {"name": "web1"})
    first.fail("resync timed out")
    journal.open("instance_replace_disks", {"name": "db1"}).finish()
    assert journal.latest("instance_replace_disks", "web1")["id"] == first.id
    second = journal.open("instance_replace_disks", {"name": "web1"})
    assert journal.latest("instance_replace_disks", "web1")["id"] == second.id
    assert journal.latest("instance_replace_disks", "www") is None


def test_job_info_table_and_one_job_with_its_steps_and_progress(cluster):
    instance_op.ensure(cluster, spec())
    listing = views.job_info(cluster, limit=5)
    header, *rows = listing["table"]
    assert header.split()[:5] == ["ID", "Status", "Opcode", "Received", "Duration"]
    assert [row.split()[:3] for row in rows] == [[str(j["id"]), j["status"], j["opcode"]] for j in listing["jobs"]]
    assert time.strftime("%Y-%m-%d") in rows[-1]
    job = listing["jobs"][-1]
    journal_job = cluster.journal.get(job["id"])
    journal_job["steps"][-1]["progress"] = [{"ts": time.time(), "message": "disk 0 42.0% synced"}]
    cluster.journal.write(journal_job)
    detail = views.job_info(cluster, job_id=job["id"])
    assert detail["table"][0].startswith(f"job {job['id']} instance_create: success, received ")
    assert any(line.strip().endswith("disk 0 42.0% synced") for line in detail["table"])
    assert any(f" success {job['steps'][0]['name']}" in line for line in detail["table"])
    assert detail["log"] == cluster.journal.log_path(job["id"])


def test_follow_waits_until_the_job_ends(cluster, monkeypatch):
    monkeypatch.setattr(views, "FOLLOW_INTERVAL", 0.05)
    job = cluster.journal.open("instance_migrate", {"name": "web1"})
    job.start()

    def work():
        with job.step("migrate"):
            for i in range(3):
                time.sleep(0.1)
                job.log(f"migration active: {i}")
        job.finish()

    worker = threading.Thread(target=work)
    worker.start()
    result = views.job_info(cluster, job_id=job.id, follow=True, follow_timeout=30)
    worker.join()
    followed = result["jobs"][0]
    assert followed["status"] == "success"
    assert [p["message"] for p in followed["steps"][0]["progress"]] == [f"migration active: {i}" for i in range(3)]


def test_follow_gives_up_after_its_timeout_with_a_warning(cluster, monkeypatch):
    monkeypatch.setattr(views, "FOLLOW_INTERVAL", 0.05)
    job = cluster.journal.open("instance_migrate", {"name": "web1"})
    job.start()
    result = views.job_info(cluster, job_id=job.id, follow=True, follow_timeout=0.2)
    assert result["jobs"][0]["status"] == "running"
    assert cluster.warnings == [f"job {job.id} is still running after 0.2 s of following"]
    with pytest.raises(HerdError, match="follow needs the id"):
        views.job_info(cluster, follow=True)


# ---------------------------------------------------------------- job ids in module results and errors

def ansible_herd():
    """The modules' glue (ansible_herd.py) loaded over this test's engine modules, as the module
    would load it on the master."""
    prefix = "ansible_collections.herd.cluster.plugins.module_utils.herd"
    sys.modules.setdefault(f"{prefix}.errors", errors_mod)
    sys.modules.setdefault(f"{prefix}.ops.common", common_mod)
    loader = importlib.util.spec_from_file_location(
        "herd_ansible_glue", REPO / "plugins" / "module_utils" / "ansible_herd.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


class Failed(Exception):
    pass


class FakeModule:
    """The AnsibleModule surface ansible_herd.run uses."""

    _diff = False
    check_mode = False

    def __init__(self):
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


def test_state_changing_results_and_errors_carry_the_job_ids(cluster, nodes, monkeypatch):
    glue = ansible_herd()
    monkeypatch.setattr(glue, "context", lambda module: cluster)
    cluster.journal.opened.clear()  # the cluster's own init and node adds
    created = glue.run(FakeModule(), instance_op.ensure, spec())
    [job_id] = created["job_ids"]
    assert created["changed"] is True and cluster.journal.get(job_id)["opcode"] == "instance_create"

    cluster.journal.opened.clear()
    unchanged = glue.run(FakeModule(), instance_op.ensure, spec())
    assert unchanged["changed"] is False and "job_ids" not in unchanged

    cluster.journal.opened.clear()
    nodes[0].fail["instance_start"] = "qemu refused to start"
    with pytest.raises(Failed) as failed:
        glue.run(FakeModule(), instance_op.ensure, spec(name="db1"))
    error = failed.value.args[0]
    [job_id] = error["job_ids"]
    assert f"(job {job_id}; herd.cluster.job_info id={job_id} shows its steps)" in error["msg"]
    assert cluster.journal.get(job_id)["status"] == "error"


def test_a_journal_of_an_older_herd_is_archived_and_indexed_by_the_next_operation(tmp_path, monkeypatch):
    """Finished jobs beside the running ones, no index: the first look for interrupted jobs archives
    them, and a replace-disks job stopped after its commit is still found by ``latest``."""
    monkeypatch.setattr(jobs_mod, "_LATEST_BY_NAME", {"instance_replace_disks"})
    journal = Journal(str(tmp_path))
    os.makedirs(journal.dir)
    old = {"opcode": "instance_create", "params": {"name": "web1"}, "status": "success", "steps": [], "pid": 1}
    for job_id in (1, 2):
        jobs_mod.write_json_atomic(journal.path(job_id), dict(old, id=job_id))
    stopped = dict(old, id=3, opcode="instance_replace_disks", status="running", pid=2 ** 22 + 7)
    jobs_mod.write_json_atomic(journal.path(3), stopped)
    assert journal.latest("instance_replace_disks", "web1") is None
    [found] = journal.interrupted()
    journal.mark_recovered(found["id"], "found by a test")
    assert sorted(n for n in os.listdir(journal.dir) if n.endswith(".json")) == []
    assert journal.latest("instance_replace_disks", "web1")["status"] == "error"
    assert [j["id"] for j in journal.list()] == [1, 2, 3]
    assert journal.open("x", {}).id == 4
