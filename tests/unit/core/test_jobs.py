import multiprocessing
import os
from pathlib import Path

import pytest

from plugins.module_utils.herd import names
from plugins.module_utils.herd.errors import LockError, ValidationError
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
    raw = Path(journal.path(job.id)).read_text()
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


def test_item4_the_journal_withholds_all_of_osparams(tmp_path):
    journal = Journal(str(tmp_path))
    user_data = "#cloud-config\nchpasswd: {list: 'root:Sup3rS3cret'}\n"
    osparams = {"user_data": user_data, "image": "/srv/img.qcow2"}
    job = journal.open("instance_add", {"name": "web1", "osparams": osparams})
    with job.step("create", spec={"osparams": {"network_config": {"wifi_psk": "p4ss"}}}):
        pass
    raw = Path(journal.path(job.id)).read_text()
    assert "Sup3rS3cret" not in raw and "p4ss" not in raw and "/srv/img.qcow2" not in raw
    assert journal.get(job.id)["params"]["name"] == "web1"


def test_item10_instance_names_up_to_253_characters_can_be_locked(tmp_path):
    label = "a" * 63
    longest = names.check_instance_name(".".join([label, label, label, "b" * 61]))
    assert len(longest) == 253
    locks = Locks(str(tmp_path), "me", timeout=0.2)
    with locks.instance(longest):
        pass
    assert all(len(name) <= 255 for name in os.listdir(tmp_path / "locks"))


def hold_instance_lock(state_dir, name, ready, release):
    with Locks(state_dir, "job 9 (instance_add)").instance(name):
        ready.set()
        release.wait(10)


def test_item10_long_names_that_share_a_prefix_have_separate_locks(tmp_path):
    prefix = "web-" + "x" * 70
    first, second = prefix + ".example.org", prefix + ".example.net"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=hold_instance_lock, args=(str(tmp_path), first, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with Locks(str(tmp_path), "me", timeout=0.3).instance(second):
            pass
        with pytest.raises(LockError, match="held by job 9"):
            with Locks(str(tmp_path), "me", timeout=0.3).instance(first):
                pass
    finally:
        release.set()
        proc.join(10)


def test_item10_a_lock_name_with_a_path_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="invalid lock name"):
        with Locks(str(tmp_path), "me").instance("../../etc/passwd" + "x" * 70):
            pass


def test_item11_a_lost_counter_never_restarts_ids_at_1(tmp_path):
    journal = Journal(str(tmp_path))
    ids = [journal.open("x", {}).id for _job in range(3)]
    os.unlink(journal.counter)  # a crash between truncate and write left nothing
    assert journal.open("x", {}).id == ids[-1] + 1
    with open(journal.counter, "w") as handle:
        handle.write("")  # an empty counter
    assert journal.open("x", {}).id == ids[-1] + 2
    assert len(os.listdir(journal.dir)) - 2 == 5  # no job file was overwritten (counter, its lock)


def test_item11_the_counter_is_replaced_by_rename_not_rewritten_in_place(tmp_path):
    journal = Journal(str(tmp_path))
    journal.open("x", {})
    before = os.stat(journal.counter).st_ino
    job = journal.open("x", {})
    assert os.stat(journal.counter).st_ino != before
    with open(journal.counter) as handle:
        assert handle.read() == f"{job.id + 1}\n"
