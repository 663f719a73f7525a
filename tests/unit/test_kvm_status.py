"""How the KVM driver recognises its QEMU processes and reports status (no root, no QEMU).

A stand-in "QEMU" is python3 run through a symlink named qemu-system-x86_64,
sleeping with the arguments a real one would have.
"""

import os
import subprocess
import sys
import time

import pytest

from plugins.module_utils.herd.hypervisor import kvm


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HERD_RUN_DIR", str(tmp_path / "run"))
    os.makedirs(tmp_path / "run" / "kvm")
    return tmp_path / "run" / "kvm"


@pytest.fixture
def fake_qemu(tmp_path):
    procs = []
    link = tmp_path / "qemu-system-x86_64"
    link.symlink_to(sys.executable)

    def spawn(name, pidfile, binary=str(link)):
        proc = subprocess.Popen([binary, "-c", "import time; time.sleep(60)", "-name", name,
                                 "-pidfile", pidfile, "-m", "256", "-smp", "2"])
        procs.append(proc)
        # right after exec /proc/<pid>/cmdline can still read empty on some kernels
        for _attempt in range(200):
            with open(f"/proc/{proc.pid}/cmdline", "rb") as handle:
                if b"-pidfile" in handle.read():
                    break
            time.sleep(0.01)
        with open(pidfile, "w") as handle:
            handle.write(f"{proc.pid}\n")
        return proc

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


def test_running_when_the_pidfile_names_our_qemu(run_dir, fake_qemu):
    proc = fake_qemu("web1", str(run_dir / "web1.pid"))
    status = kvm.KVM().status("web1")
    assert (status["status"], status["pid"]) == ("running", proc.pid)


def test_a_process_of_another_instance_is_not_ours(run_dir, fake_qemu):
    fake_qemu("web2", str(run_dir / "web1.pid"))
    assert kvm.KVM().status("web1")["status"] != "running"


def test_a_process_that_is_not_qemu_is_not_ours(run_dir, fake_qemu):
    fake_qemu("web1", str(run_dir / "web1.pid"), binary=sys.executable)
    assert kvm.KVM().status("web1")["status"] != "running"


def test_stopped_when_nothing_is_left(run_dir):
    assert kvm.KVM().status("web1")["status"] == "stopped"


def test_error_when_the_pidfile_outlives_the_process(run_dir, fake_qemu):
    proc = fake_qemu("web1", str(run_dir / "web1.pid"))
    proc.kill()
    proc.wait()
    status = kvm.KVM().status("web1")
    assert status["status"] == "error"
    assert f"QEMU process {proc.pid} from the pidfile is gone" in status["detail"]


def test_running_process_found_without_its_pidfile(run_dir, fake_qemu):
    proc = fake_qemu("web1", str(run_dir / "web1.pid"))
    os.unlink(run_dir / "web1.pid")
    assert kvm.KVM().status("web1")["pid"] == proc.pid


def test_list_reports_running_and_leftover_instances_with_memory(run_dir, fake_qemu):
    fake_qemu("web1", str(run_dir / "web1.pid"))
    (run_dir / "db1.runtime.json").write_text('{"spec": {"memory": 128, "vcpus": 1}}')
    listing = kvm.KVM().list_instances()
    assert {n: (i["status"], i["memory"], i["vcpus"]) for n, i in listing.items()} == {
        "web1": ("running", 256, 2), "db1": ("error", 128, 1)}


def test_cleanup_removes_leftovers_of_a_dead_instance(run_dir):
    (run_dir / "web1.pid").write_text("999999\n")
    (run_dir / "web1.runtime.json").write_text("{}")
    result = kvm.KVM().cleanup("web1")
    assert sorted(os.path.basename(p) for p in result["cleaned"]) == ["web1.pid", "web1.runtime.json"]
    assert kvm.KVM().status("web1")["status"] == "stopped"
