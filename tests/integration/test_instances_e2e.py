"""Issue 4 end to end: real QEMU guests (TCG) created, changed and removed through
the herd.cluster.instance module on the virtual cluster, the fake hypervisor at
scale, and the bad inputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import ansible_run

REPO = Path(__file__).resolve().parents[2]
GUEST_MEMORY = "128M"


def kvm_spec(guest, name, template, **extra):
    # a guest still booting ignores the ACPI power button: do not wait Ganeti's 120 s for it
    spec = {"name": name, "state": "running", "hypervisor": "kvm", "disk_template": template, "shutdown_timeout": 5,
            "disks": ["64M"], "memory": GUEST_MEMORY, "vcpus": 1, "nics": [{"link": "br0"}],
            "hvparams": {"kernel_path": guest["kernel"], "initrd_path": guest["initrd"],
                         "kernel_args": "console=ttyS0 quiet", "accel": "tcg"}}
    spec.update(extra)
    return spec


def run(inventory, args, check=False, diff=False):
    return ansible_run.module(inventory, "node1", "instance", args, check=check, diff=diff)


def config(vcluster):
    return json.loads(vcluster.exec("node1", ["cat", "/var/lib/herd/config.json"], check=True).stdout)


def qemu_cmdline(vcluster, node, name):
    pid = vcluster.exec(node, ["cat", f"/run/herd/kvm/{name}.pid"]).stdout.strip()
    if not pid:
        return None
    raw = vcluster.exec(node, ["cat", f"/proc/{pid}/cmdline"]).stdout
    return raw.split("\0") if raw else None


def wait_for(predicate, timeout=90, interval=1.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def disk_text(vcluster, node, path):
    return vcluster.exec(node, ["head", "-c", "64", path]).stdout


def counter(vcluster, node, path):
    text = disk_text(vcluster, node, path)
    if text.startswith("herd-counter "):
        try:
            return int(text.split()[1])
        except (IndexError, ValueError):
            return None
    return None


def vnc_banner(vcluster, node, port):
    code = (f"import socket; s=socket.create_connection(('127.0.0.1', {port}), 5); "
            "print(s.recv(12).decode())")
    return vcluster.exec(node, ["python3", "-c", code]).stdout.strip()


@pytest.mark.parametrize("template", ["file", "sharedfile"])
def test_guest_lifecycle(site, inventory, vcluster, guest, template):
    name = f"kvm-{template}"
    spec = kvm_spec(guest, name, template)
    result = run(inventory, spec)
    assert result.get("changed") and not result.get("failed"), result
    node = result["instance"]["primary_node"]
    inst = config(vcluster)["instances"][name]
    disk_path = inst["disks"][0]["logical_id"]["path"]

    # the QEMU process runs on the chosen node with the right memory, CPUs and disk
    argv = qemu_cmdline(vcluster, node, name)
    assert argv and "-m" in argv and argv[argv.index("-m") + 1].startswith("128")
    assert any(a.startswith("1") for a in argv[argv.index("-smp") + 1:argv.index("-smp") + 2])
    assert any(disk_path in a for a in argv)
    # its tap is on the bridge, VNC answers on the allocated port, on localhost only
    taps = vcluster.exec(node, ["ip", "-o", "link", "show", "master", "br0"]).stdout
    assert "hv" in taps
    port = inst["network_port"]
    assert port >= 11000 and any(f"127.0.0.1:{port - 5900}" in a for a in argv)
    assert vnc_banner(vcluster, node, port).startswith("RFB 003")
    # the guest's disk writes land in the instance's disk file
    first = wait_for(lambda: counter(vcluster, node, disk_path), what="the guest's counter on its disk")
    wait_for(lambda: (counter(vcluster, node, disk_path) or 0) > first, what="the counter to advance")

    # a second identical run changes nothing
    again = run(inventory, spec)
    assert again["changed"] is False, again

    # stop, start, restart
    assert run(inventory, dict(spec, state="stopped"))["changed"] is True
    assert qemu_cmdline(vcluster, node, name) is None
    assert run(inventory, dict(spec, state="running"))["changed"] is True
    assert qemu_cmdline(vcluster, node, name)
    pid_before = vcluster.exec(node, ["cat", f"/run/herd/kvm/{name}.pid"]).stdout
    assert run(inventory, dict(spec, state="restarted"))["actions"] == ["stop", "start"]
    assert vcluster.exec(node, ["cat", f"/run/herd/kvm/{name}.pid"]).stdout != pid_before

    # memory change with restart, disk growth
    changed = run(inventory, dict(spec, memory="256M", restart_on_change=True), diff=True)
    assert changed["diff"]["before"]["memory"] == 128 and changed["diff"]["after"]["memory"] == 256
    argv = qemu_cmdline(vcluster, node, name)
    assert argv[argv.index("-m") + 1].startswith("256")
    grown = run(inventory, dict(spec, memory="256M", disks=["128M"]))
    assert "grow disk 0 to 128 MiB" in grown["actions"], grown
    size = vcluster.exec(node, ["stat", "-c", "%s", disk_path], check=True).stdout.strip()
    assert int(size) == 128 * 1024 * 1024

    # removal leaves no file, tap, socket or process
    assert run(inventory, {"name": name, "state": "absent", "shutdown_timeout": 5})["changed"] is True
    assert qemu_cmdline(vcluster, node, name) is None
    assert vcluster.exec(node, ["test", "-e", disk_path]).returncode != 0
    assert "hv" not in vcluster.exec(node, ["ip", "-o", "link", "show", "master", "br0"]).stdout
    leftovers = vcluster.exec(node, ["sh", "-c", f"ls /run/herd/kvm/ | grep -F {name} || true"]).stdout
    assert leftovers.strip() == ""
    assert name not in config(vcluster)["instances"]


def test_declared_instances_converge_and_check_mode_shows_the_plan(site, inventory, vcluster, guest):
    declared = [
        {"name": "decl1", "hypervisor": "fake", "disk_template": "diskless", "memory": "256M"},
        {"name": "decl2", "hypervisor": "fake", "disk_template": "sharedfile", "disks": ["64M"], "memory": "256M"},
        {"name": "decl3", "hypervisor": "fake", "disk_template": "file", "disks": ["64M"], "memory": "128M",
         "state": "stopped"},
    ]
    playbook = REPO / "tests" / "integration" / "playbooks" / "instances.yml"
    plan = ansible_run.playbook(inventory, playbook, {"herd_instances": declared}, check=True)
    assert plan.rc == 0, plan
    converged = plan.result("Converge declared instances", "node1")["instances"]
    assert [r["name"] for r in converged] == ["decl1", "decl2", "decl3"]
    assert all(r["changed"] and r["placement"]["primary"] for r in converged)
    assert not any(n.startswith("decl") for n in config(vcluster)["instances"])
    # the module itself, with its documented return keys checked
    direct = ansible_run.module(inventory, "node1", "instances", {"instances": declared, "default_state": "running"},
                                check=True, diff=True)
    assert direct["changed"] and direct["failures"] == [] and sorted(direct["diff"]["after"]) == [
        "decl1", "decl2", "decl3"]

    first = ansible_run.playbook(inventory, playbook, {"herd_instances": declared})
    assert first.rc == 0, first
    second = ansible_run.playbook(inventory, playbook, {"herd_instances": declared})
    assert second.changed("node1") == 0, second.stats
    table = second.result("Instances (gnt-instance list)", "node1")["msg"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["decl1"][4] == "running" and rows["decl3"][4] == "ADMIN_down"

    undeclared = ansible_run.playbook(inventory, playbook, {"herd_instances": declared[:2]})
    report = undeclared.result("Report undeclared instances", "node1")["msg"]
    assert "decl3" in report and "decl3" in config(vcluster)["instances"]
    refused = ansible_run.playbook(inventory, playbook, {"herd_instances": [], "herd_instances_prune": True})
    guard = refused.result("Refuse to prune every instance without an explicit prune_all", "node1")
    assert refused.rc != 0 and "herd_instances_prune_all: true" in guard["msg"], refused
    assert "decl1" in config(vcluster)["instances"]
    pruned = ansible_run.playbook(inventory, playbook, {"herd_instances": [], "herd_instances_prune": True,
                                                        "herd_instances_prune_all": True})
    assert pruned.rc == 0, pruned
    assert not any(n.startswith("decl") for n in config(vcluster)["instances"])


def test_fake_hypervisor_runs_thirty_instances_at_once_through_their_lifecycle(site, inventory, vcluster):
    """30 jobs at once, each its own module run, under the instance and allocation locks
    (60 in-process on three nodes: tests/unit/test_fake_hv.py)."""
    playbook = REPO / "tests" / "integration" / "playbooks" / "fake_scale.yml"
    count = 30
    for state in ("running", "stopped", "running"):
        phase = ansible_run.playbook(inventory, playbook, {"scale_state": state, "scale_count": count}, timeout=1800)
        assert phase.rc == 0, phase
        rows = [r for r in ansible_run.module(inventory, "node1", "instance_info", {})["instances"]
                if r["name"].startswith("scale")]
        assert len(rows) == count
        want = "running" if state == "running" else "ADMIN_down"
        assert {r["status"] for r in rows} == {want}, {r["name"]: r["status"] for r in rows if r["status"] != want}
        assert len({r["primary_node"] for r in rows}) == 3  # the allocator spread them
    removed = ansible_run.playbook(inventory, playbook, {"scale_state": "absent", "scale_count": count}, timeout=1800)
    assert removed.rc == 0, removed
    assert not any(n.startswith("scale") for n in config(vcluster)["instances"])
    for node in vcluster.node_names:
        assert vcluster.exec(node, ["sh", "-c", "ls /var/lib/herd/fake 2>/dev/null | grep -c scale || true"]
                             ).stdout.strip() in ("", "0")


# ----------------------------------------------------------------------------- bad input

def assert_nothing_created(vcluster, name):
    assert name not in config(vcluster)["instances"]
    for node in vcluster.node_names:
        found = vcluster.exec(node, ["sh", "-c", f"find /srv/herd /srv/herd-shared /run/herd -name '*{name}*' "
                                     "2>/dev/null"]).stdout.strip()
        assert found == "", f"{node} has leftovers of {name}: {found}"


def test_memory_larger_than_any_node_names_each_node(site, inventory, vcluster):
    # 60 GiB: within the policy's maximum (64 GiB), above what any node has free
    result = run(inventory, {"name": "huge", "state": "running", "hypervisor": "fake",
                             "disk_template": "diskless", "memory": "60G"})
    assert result.get("failed"), result
    for node in vcluster.node_names:
        assert f"{node}: FailMem needs 61440 MiB, has " in result["msg"], result["msg"]
    assert_nothing_created(vcluster, "huge")


@pytest.mark.parametrize("args,message", [
    ({"nics": [{"mac": "aa:00:zz:00:00:01"}]}, "invalid MAC address"),
    ({"disks": ["10X"]}, "invalid disks[0] size '10X'"),
    # what the nodes' check finds (QEMU's CPU models, the kernel file) stops it before any disk
    ({"hvparams": {"cpu_type": "no-such-cpu", "accel": "tcg"}}, "no CPU model 'no-such-cpu'"),
    ({"hvparams": {"kernel_path": "/nonexistent/vmlinuz", "accel": "tcg"}}, "kernel_path /nonexistent/vmlinuz"),
])
def test_invalid_values_are_refused_before_anything_is_touched(site, inventory, vcluster, guest, args, message):
    result = run(inventory, kvm_spec(guest, "bad1", "file", **args))
    assert result.get("failed") and message in result["msg"], result
    assert_nothing_created(vcluster, "bad1")


@pytest.mark.parametrize("args,message", [
    # a flag QEMU lacks, on a model it has: only QEMU's start finds that out
    ({"hvparams": {"cpu_type": "qemu64,+no-such-flag", "accel": "tcg"}}, "no-such-flag"),
])
def test_failed_start_of_a_new_instance_removes_its_disks(site, inventory, vcluster, guest, args, message):
    spec = kvm_spec(guest, "bad2", "file")
    hv = dict(spec["hvparams"], **args.pop("hvparams", {}))
    spec.update(args, hvparams=hv)
    result = run(inventory, spec)
    assert result.get("failed") and message in result["msg"], result
    assert_nothing_created(vcluster, "bad2")


def test_an_image_that_is_not_an_image_is_refused_and_cleaned(site, inventory, vcluster, guest, tmp_path):
    bogus = Path("/tmp") / f"herd-not-an-image-{vcluster.name}.qcow2"
    bogus.write_bytes(b"QFI\xfb" + b"\x00" * 60)  # a qcow2 magic with a broken header
    try:
        result = run(inventory, kvm_spec(guest, "bad3", "file", os="image", osparams={"image": str(bogus)}))
        # the path itself is masked in Ansible's output: osparams is no_log (it can hold passwords)
        assert result.get("failed") and "is not a disk image" in result["msg"], result
        assert_nothing_created(vcluster, "bad3")
    finally:
        bogus.unlink()


def test_shrinking_and_template_change_are_refused(site, inventory, vcluster):
    spec = {"name": "keep1", "state": "present", "hypervisor": "fake", "disk_template": "sharedfile",
            "disks": ["128M"], "memory": "128M"}
    assert run(inventory, spec)["changed"] is True
    try:
        shrink = run(inventory, dict(spec, disks=["64M"]))
        assert shrink.get("failed") and "disks never shrink" in shrink["msg"], shrink
        dup = run(inventory, dict(spec, disk_template="file"))
        assert dup.get("failed") and "converting sharedfile to file is not supported; supported: plain to drbd, drbd to plain" in dup["msg"], dup
    finally:
        run(inventory, {"name": "keep1", "state": "absent"})
