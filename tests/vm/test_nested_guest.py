"""A real guest on a drbd disk, under nested KVM inside the VM nodes: live migration and failover
as its own writes see them.

The VM nodes run under TCG with `-cpu qemu64`, for which QEMU emulates AMD virtualisation: the
nodes have /dev/kvm and run a small guest with `accel: kvm` (docs/vcluster.md). The guest is the test
guest of tests/guest/build.py: every second it writes `herd-counter N` at offset 0 of its disk,
flushes it, and only then prints it on its serial console; at boot it records what offset 0 held
as `herd-boot-found ...` at offset 4096. So a counter seen on the console is a write the disk
acknowledged, and after a failover the guest itself reports what the new primary's disk held.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

import pytest
from vmnodes import PYTHON, REPO, VMCluster, ansible_run, data_lv, drbd_minor_of, proc_drbd, wait_drbd

# In the VM stage of scripts/test.sh (about 6 minutes on TCG nodes: boot 60 s, live migration 45 s,
# node failover 70 s, the rest cleanup). It runs before test_real_storage.py, whose dead-primary
# test leaves a node offline; this one puts its cut node back online.
pytestmark = pytest.mark.vm

NAME = "nested1.example.org"
PRIMARY, SECONDARY = "node2", "node3"
GUEST_DIR = "/srv/herd-test-guest"
COUNTER = re.compile(r"herd-counter (\d+)")
BOOT_FOUND = re.compile(r"herd-boot-found (herd-counter (\d+)|nothing)")
BOOT_RECORD_OFFSET = 4096


def module_ok(vm: VMCluster, name: str, args: dict) -> dict:
    result = vm.module(name, args)
    assert not result.get("failed"), result.get("msg") or result
    return result


def build_guest() -> dict[str, str]:
    proc = subprocess.run([PYTHON, str(REPO / "tests" / "guest" / "build.py")], capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def copy_guest(vm: VMCluster, node: str, guest: dict[str, str]) -> dict[str, str]:
    """The kernel and initrd onto node (the nodes have no package mirror); their paths there."""
    vm.sh(node, f"mkdir -p {GUEST_DIR} && chmod 755 {GUEST_DIR}")
    subprocess.run(["scp", "-q", "-i", vm.state["private_key"],
                    "-o", f"UserKnownHostsFile={vm.state['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
                    "-o", "BatchMode=yes", guest["kernel"], guest["initrd"],
                    f"root@{vm.node(node)['primary_ip']}:{GUEST_DIR}/"], check=True, timeout=300)
    paths = {"kernel_path": f"{GUEST_DIR}/vmlinuz", "initrd_path": f"{GUEST_DIR}/initrd.img"}
    vm.sh(node, "chmod 644 " + " ".join(paths.values()))
    return paths


def nested_kvm_problem(vm: VMCluster, node: str) -> str | None:
    """Why node cannot run a KVM guest, or None. Loads kvm_amd when /dev/kvm is missing."""
    vm.sh(node, "test -e /dev/kvm || modprobe kvm_amd || modprobe kvm_intel", check=False)
    probe = vm.sh(node, "test -c /dev/kvm && grep -qw svm /proc/cpuinfo", check=False)
    if probe.returncode != 0:
        cpu = vm.sh(node, "grep -m1 -o -w -e svm -e vmx /proc/cpuinfo; ls -l /dev/kvm; lsmod | grep kvm",
                    check=False)
        return f"{node} has no usable /dev/kvm (nested KVM): {(cpu.stdout + cpu.stderr).strip()}"
    return None


def console(vm: VMCluster) -> tuple[str, str]:
    """(primary node, serial socket) of the instance, as instance_info gives them."""
    info = vm.module("instance_info", {"names": [NAME]})["instances"][0]
    return info["console"]["node"], info["console"]["serial_socket"]


def console_lines(vm: VMCluster, seconds: int) -> list[str]:
    """What the guest prints on its serial console during `seconds`, read on its primary node."""
    node, sock = console(vm)
    out = vm.sh(node, f"timeout {seconds} socat -u UNIX-CONNECT:{shlex.quote(sock)} STDOUT", check=False,
                timeout=seconds + 60)
    return [line.strip() for line in out.stdout.splitlines()]


def counters(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := COUNTER.fullmatch(line))]


def wait_counters(vm: VMCluster, timeout: float, seconds: int = 5) -> list[int]:
    """The counters the guest prints in the first read of the console that shows any."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = console_lines(vm, seconds)
        if counters(lines):
            return counters(lines)
    raise AssertionError(f"no herd-counter on the console of {NAME} within {timeout:.0f} s; last: {lines[-5:]}")


def disk_text(vm: VMCluster, node: str, device: str, offset: int) -> str:
    """64 bytes of device at offset on node, read past the page cache."""
    out = vm.sh(node, f"dd if={device} bs=4096 skip={offset // 4096} count=1 iflag=direct status=none "
                      f"| head -c 64").stdout
    return out.strip()


def remove_stale_guest(vm: VMCluster, node: str) -> None:
    """The guest a cut-off node kept running: killed, its runtime files removed (as an operator
    does when a dead node comes back; cluster_verify reports it otherwise)."""
    run = "/run/herd/kvm"
    vm.sh(node, f"pid=$(cat {run}/{NAME}.pid 2>/dev/null) && kill -9 $pid; sleep 1; "
                f"rm -f {run}/{NAME}.pid {run}/{NAME}.qmp {run}/{NAME}.serial {run}/{NAME}.runtime.json "
                f"{run}/{NAME}.log {run}/{NAME}.vnc-secret", check=False)


def test_nested_kvm_guest_keeps_acknowledged_writes_through_migration_and_failover(vm, site):
    for node in (PRIMARY, SECONDARY):
        problem = nested_kvm_problem(vm, node)
        if problem:
            pytest.skip(problem)
    guest = build_guest()
    paths = {}
    for node in (PRIMARY, SECONDARY):
        paths = copy_guest(vm, node, guest)

    before = module_ok(vm, "cluster_info", {})
    cluster_name = before["cluster"]["name"]
    hypervisors = before["cluster"]["enabled_hypervisors"]
    module_ok(vm, "cluster", {"name": cluster_name, "enabled_hypervisors": sorted(set(hypervisors) | {"kvm"})})
    cut = False
    try:
        t0 = time.monotonic()
        created = vm.module("instance", {
            "name": NAME, "state": "running", "hypervisor": "kvm", "disk_template": "drbd",
            "disks": ["64M"], "memory": "128M", "vcpus": 1, "nics": [],
            "primary_node": PRIMARY, "secondary_node": SECONDARY,
            "hvparams": {"accel": "kvm", **paths, "security_model": "none", "vnc_bind_address": "none"}})
        if created.get("failed") and "accel kvm is not usable" in str(created.get("msg")):
            pytest.skip(f"herd finds KVM unusable on the VM nodes: {created['msg']}")
        assert not created.get("failed"), created.get("msg") or created
        minor2, minor3 = drbd_minor_of(vm, PRIMARY), drbd_minor_of(vm, SECONDARY)
        wait_drbd(vm, SECONDARY, minor3, "Connected", "UpToDate/UpToDate")
        booted = wait_counters(vm, timeout=300)
        print(f"\nnested: created, booted, counting {booted} after {time.monotonic() - t0:.0f} s", flush=True)
        qemu_args = vm.sh(PRIMARY, f"tr '\\0' ' ' < /proc/$(cat /run/herd/kvm/{NAME}.pid)/cmdline").stdout
        assert "-accel kvm" in qemu_args, qemu_args

        t1 = time.monotonic()
        migrated = module_ok(vm, "instance_migrate", {"name": NAME, "target_node": SECONDARY})
        print(f"nested: live migration {PRIMARY} -> {SECONDARY} {time.monotonic() - t1:.0f} s", flush=True)
        assert migrated["changed"], migrated
        assert console(vm)[0] == SECONDARY
        after_migration = wait_counters(vm, timeout=60)
        # the same guest went on counting: no restart (which starts at 1), past what node2 showed
        assert min(after_migration) > max(booted), (booted, after_migration)
        print(f"nested: counting on {SECONDARY}: {after_migration}", flush=True)

        # the last write the guest saw acknowledged, as close to the cut as a console read gets
        seen = wait_counters(vm, timeout=60, seconds=3)
        last_seen = max(seen)
        vm.link(SECONDARY, up=False)
        cut = True
        print(f"nested: {SECONDARY} cut after the console showed herd-counter {last_seen}", flush=True)
        # node2's copy, before the failover touches it (a secondary's data LV: external meta-data)
        replica = COUNTER.match(disk_text(vm, PRIMARY, data_lv(vm, PRIMARY, NAME), 0))
        assert replica and int(replica.group(1)) >= last_seen, (replica, last_seen)

        t2 = time.monotonic()
        run = ansible_run.playbook(vm.inventory, REPO / "playbooks" / "node_failover.yml",
                                   extra_vars={"node": SECONDARY}, timeout=1200)
        assert run.rc == 0, f"{run!r}\n{run.proc.stdout[-4000:]}"
        print(f"nested: node failover {time.monotonic() - t2:.0f} s", flush=True)
        info = vm.module("instance_info", {"names": [NAME]})["instances"][0]
        assert info["primary_node"] == PRIMARY, info
        assert proc_drbd(vm, PRIMARY)[minor2]["ro"].startswith("Primary/"), proc_drbd(vm, PRIMARY)
        # the guest booted again on node2 (counting from 1) and recorded what its disk held
        restarted = wait_counters(vm, timeout=300)
        assert min(restarted) < last_seen, (restarted, last_seen)
        record = BOOT_FOUND.match(disk_text(vm, PRIMARY, f"/dev/drbd{minor2}", BOOT_RECORD_OFFSET))
        assert record and record.group(2) is not None, record
        print(f"nested: after the failover the guest found herd-counter {record.group(2)} on {PRIMARY}'s "
              f"disk (last seen before the cut: {last_seen}); counting again {restarted}", flush=True)
        assert int(record.group(2)) >= last_seen, (record.group(0), last_seen)

        # the cut node back: its stale guest killed, online again, the instance removed on both nodes
        vm.link(SECONDARY, up=True)
        cut = False
        remove_stale_guest(vm, SECONDARY)
        module_ok(vm, "node", {"name": SECONDARY, "offline": False})
    finally:
        if cut:
            vm.link(SECONDARY, up=True)
            remove_stale_guest(vm, SECONDARY)
            vm.module("node", {"name": SECONDARY, "offline": False})
        vm.module("instance", {"name": NAME, "state": "absent", "shutdown_timeout": 5})
        module_ok(vm, "cluster", {"name": cluster_name, "enabled_hypervisors": hypervisors})
    for node in (PRIMARY, SECONDARY):
        assert proc_drbd(vm, node) == {}, f"{node}: {vm.sh(node, 'cat /proc/drbd').stdout}"
