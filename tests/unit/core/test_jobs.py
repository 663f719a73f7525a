import multiprocessing

import pytest

from plugins.module_utils.herd.errors import LockError
from plugins.module_utils.herd.jobs import Journal, Locks, redact


def hold_lock(state_dir, ready, release):
    locks = Locks(state_dir, "job 7 (node_add node3)")
    with locks.node("node3"):
        ready.set()
        release.wait(10)


def test_lock_timeout_names_the_holding_job(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockError, match=r"node:node3 lock within 0.3 s: held by job 7 \(node_add node3"):
            with Locks(str(tmp_path), "me", timeout=0.3).node("node3"):
                pass
    finally:
        release.set()
        proc.join(10)


def test_lock_is_released_when_the_holder_dies(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    assert ready.wait(10)
    proc.kill()
    proc.join(10)
    with Locks(str(tmp_path), "me", timeout=2).node("node3"):
        pass


def test_waiter_gets_the_lock_after_release(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    assert ready.wait(10)
    release.set()
    with Locks(str(tmp_path), "me", timeout=10).node("node3"):
        pass
    proc.join(10)


def test_shared_node_locks_coexist_and_keep_an_exclusive_holder_out(tmp_path):
    replace1 = Locks(str(tmp_path), "instance_replace_disks web1")
    replace2 = Locks(str(tmp_path), "instance_replace_disks web2", timeout=0.3)
    with replace1.node("node2", shared=True):
        with replace2.node("node2", shared=True):
            with pytest.raises(LockError, match=r"node:node2 lock within 0.3 s: held by instance_replace_disks web"):
                with Locks(str(tmp_path), "node modify node2", timeout=0.3).node("node2"):
                    pass
        with pytest.raises(LockError, match="node:node2 lock within 0.3 s"):
            with Locks(str(tmp_path), "node modify node2", timeout=0.3).node("node2"):
                pass
    with Locks(str(tmp_path), "node modify node2", timeout=0.3).node("node2"):
        pass


def test_job_records_steps_status_and_timestamps(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("node_add", {"name": "node2"})
    job.start()
    with job.step("contact node"):
        job.log("facts gathered")
    job.finish({"ok": True})
    data = journal.get(job.id)
    assert data["status"] == "success"
    assert data["steps"][0]["name"] == "contact node"
    assert data["steps"][0]["status"] == "success"
    assert data["steps"][0]["message"] == "facts gathered"
    assert data["start_ts"] <= data["end_ts"]


def test_failed_step_marks_error_with_its_message(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("x", {})
    job.start()
    with pytest.raises(RuntimeError):
        with job.step("boom"):
            raise RuntimeError("disk full")
    assert journal.get(job.id)["steps"][0] == {**journal.get(job.id)["steps"][0], "status": "error",
                                               "message": "disk full"}


def test_rollback_runs_undo_actions_in_reverse(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("x", {})
    order = []
    job.on_undo("first", lambda: order.append(1))
    job.on_undo("second", lambda: order.append(2))
    assert job.rollback() == []
    assert order == [2, 1]


def test_job_ids_increase(tmp_path):
    journal = Journal(str(tmp_path))
    ids = [journal.open("x", {}).id for _job in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_secrets_never_reach_the_journal(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("instance_add", {"osparams": {"password": "hunter2"}, "drbd_secret": "s3"})
    raw = open(journal.path(job.id)).read()
    assert "hunter2" not in raw and "s3\"" not in raw
    assert redact({"a": [{"vnc_password": "x"}]}) == {"a": [{"vnc_password": "********"}]}


def test_running_job_of_a_dead_process_is_interrupted(tmp_path):
    journal = Journal(str(tmp_path))
    job = journal.open("instance_migrate", {})
    job.start()
    data = journal.get(job.id)
    data["pid"] = 2 ** 22 + 12345  # no such process
    journal.write(data)
    assert [j["id"] for j in journal.interrupted()] == [job.id]


def test_running_job_of_this_process_is_not_interrupted(tmp_path):
    journal = Journal(str(tmp_path))
    journal.open("x", {}).start()
    assert journal.interrupted() == []
