"""The KVM driver on real QEMU (TCG), through the agent's JSON protocol (root).

Two "nodes" are network namespaces this module creates, each with a
VLAN-aware bridge br0 and its own runtime directory (HERD_RUN_DIR); a veth
pair between them in a free /30 of 203.0.113.0/24 is the secondary network
for migration; the instance's disk is one file under /tmp both sides open
(the sharedfile layout). The agent runs as the nodes run it: /usr/bin/python3
inside the namespace, one JSON request on stdin.

The guest (tests/guest/build.py) prints ``herd-counter N`` every second on
its serial console and writes the same text at offset 0 of its disk.

The tests run in file order and share one guest (a TCG boot takes 8-18 s):
boot on node A, live-migrate to B, a killed migration back to A that leaves
it on B, a non-live migration to A, stop. Everything this module started is
killed by PID and its namespaces removed at the end.
"""

import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid

import pytest

from plugins.module_utils.herd.hypervisor import tap as taps
from plugins.module_utils.herd.hypervisor.qmp import QMP
from plugins.module_utils.herd.version import VERSION

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from plugins.module_utils.herd.agent.main import main; sys.exit(main())")
NAME = "guest1.example.org"
PORT = 11000
COUNTER = re.compile(r"herd-counter (\d+)")

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, taps, QEMU)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 is not installed"),
]

TIMINGS = {}


def sh(*argv, check=True):
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def _used_networks(family):
    used = []
    for line in sh("ip", family, "-o", "addr").splitlines():
        used.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in sh("ip", family, "route").splitlines():
        dest = line.split()[0]
        if dest not in ("default", "multicast", "local", "broadcast", "unreachable"):
            used.append(ipaddress.ip_network(dest, strict=False))
    return used


def free_link_net():
    """The migration link between the two test namespaces: a /30 of a documentation range
    that overlaps no address or route of this machine, else a /64 of 2001:db8::/32."""
    used = _used_networks("-4")
    for parent in ("203.0.113.0/24", "198.51.100.0/24"):
        for net in reversed(list(ipaddress.ip_network(parent).subnets(new_prefix=30))):
            if not any(net.overlaps(u) for u in used):
                return net
    used6 = _used_networks("-6")
    for index in range(0x4e70, 0x4e80):
        net = ipaddress.ip_network(f"2001:db8:{index:x}::/64")
        if not any(net.version == u.version and net.overlaps(u) for u in used6):
            return net
    pytest.fail("no free documentation range for the migration link")


class Node:
    def __init__(self, ns, run_dir, address):
        self.ns = ns
        self.run_dir = run_dir
        self.address = address

    @property
    def kvm_dir(self):
        return os.path.join(self.run_dir, "kvm")

    def call(self, verb, **args):
        request = {"version": VERSION, "verb": verb, "args": dict(args, hypervisor="kvm")}
        proc = subprocess.run(["ip", "netns", "exec", self.ns, "env", f"HERD_RUN_DIR={self.run_dir}",
                               "/usr/bin/python3", "-c", AGENT, REPO],
                              input=json.dumps(request), capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def ok(self, verb, **args):
        answer = self.call(verb, **args)
        assert answer["ok"], answer
        return answer["result"]

    def links_on_bridge(self):
        data = json.loads(sh("ip", "-n", self.ns, "-j", "link", "show", "master", "br0") or "[]")
        return sorted(link["ifname"] for link in data)

    def taps(self):
        data = json.loads(sh("ip", "-n", self.ns, "-j", "link", "show") or "[]")
        return sorted(link["ifname"] for link in data if link["ifname"].startswith(taps.TAP_PREFIX))

    def files(self):
        return sorted(os.listdir(self.kvm_dir)) if os.path.isdir(self.kvm_dir) else []

    def qmp(self):
        return QMP(os.path.join(self.kvm_dir, f"{NAME}.qmp"))


class SerialLog:
    """Collects the guest's serial console lines from the unix socket in a thread."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        sock = None
        while not self._stop.is_set() and sock is None:
            try:
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(self.path)
            except OSError:
                sock = None
                time.sleep(0.1)
        if sock is None:
            return
        sock.settimeout(0.3)
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            self.lines.extend(line.decode("utf-8", "replace").strip() for line in done)
        sock.close()

    def counters(self):
        return [int(m.group(1)) for line in list(self.lines) if (m := COUNTER.fullmatch(line))]

    def wait_counter(self, above=0, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            values = [c for c in self.counters() if c > above]
            if values:
                return values[-1]
            time.sleep(0.2)
        raise AssertionError(f"no herd-counter above {above} on {self.path} within {timeout} s; "
                             f"last lines: {self.lines[-5:]}")

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)


def disk_counter(path):
    with open(path, "rb") as handle:
        match = COUNTER.match(handle.read(64).decode("ascii", "replace"))
    return int(match.group(1)) if match else None


def wait_disk_counter(path, above=0, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = disk_counter(path)
        if value is not None and value > above:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{path} shows no herd-counter above {above} within {timeout} s")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_migration(node, until=("completed", "failed", "cancelled"), timeout=180, check=None):
    deadline = time.monotonic() + timeout
    status = {}
    while time.monotonic() < deadline:
        status = node.ok("migration_status", name=NAME)
        if status["status"] in until or (check and check(status)):
            return status
        time.sleep(0.3)
    raise AssertionError(f"migration still {status} after {timeout} s")


@pytest.fixture(scope="module")
def guest():
    proc = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests", "guest", "build.py")],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def env(guest, tmp_path_factory):
    base = f"/tmp/herd-hvtest-{os.getpid()}"
    net = free_link_net()
    hosts = [net[1], net[2]]
    nodes = {}
    os.makedirs(base)
    try:
        for key, address in (("a", hosts[0]), ("b", hosts[1])):
            ns = f"hvt{os.getpid()}{key}"
            sh("ip", "netns", "add", ns)
            nodes[key] = Node(ns, os.path.join(base, key, "run"), str(address))
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # (this kernel has no bridge VLAN filtering: the VLAN path is unit-tested)
            sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", ns, "link", "set", "br0", "up")
        sh("ip", "link", "add", "miglink", "netns", nodes["a"].ns, "type", "veth",
           "peer", "name", "miglink", "netns", nodes["b"].ns)
        for node in nodes.values():
            sh("ip", "-n", node.ns, "addr", "add", f"{node.address}/{net.prefixlen}", "dev", "miglink",
               *(["nodad"] if net.version == 6 else []))
            sh("ip", "-n", node.ns, "link", "set", "miglink", "up")
        disk = os.path.join(base, "disk0.raw")
        with open(disk, "wb") as handle:
            handle.truncate(16 * 2**20)
        spec = {"name": NAME, "uuid": str(uuid.uuid4()), "memory": 128, "vcpus": 1, "network_port": PORT,
                "hvparams": {"accel": "tcg", "kernel_path": guest["kernel"], "initrd_path": guest["initrd"],
                             "kernel_args": "quiet", "migration_bandwidth": 256, "migration_downtime": 100,
                             # confined as on a cluster: -runas an unprivileged user, in the sandbox
                             "security_model": "user", "security_domain": "nobody"},
                "disks": [{"path": disk}],
                "nics": [{"mac": "aa:00:00:00:00:01", "link": "br0"}]}
        yield {"a": nodes["a"], "b": nodes["b"], "spec": spec, "disk": disk, "base": base, "state": {}}
    finally:
        # kill, by PID, every QEMU whose pidfile lives in this module's directory
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as handle:
                        argv = handle.read().split(b"\0")
                except OSError:
                    continue
                if any(a.startswith(base.encode() + b"/") for a in argv) and b"-pidfile" in argv:
                    try:
                        os.kill(int(entry), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for node in nodes.values():
            subprocess.run(["ip", "netns", "del", node.ns], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        if TIMINGS:
            print(f"\nKVM node timings (migration link {net}): "
                  + ", ".join(f"{k} {v:.3g} s" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def booted(env):
    """The guest started on node A and counting (shared by the tests that follow)."""
    a = env["a"]
    t0 = time.monotonic()
    result = a.ok("instance_start", spec=env["spec"])
    TIMINGS["start verb"] = time.monotonic() - t0
    serial = SerialLog(result["serial"])
    first = serial.wait_counter(timeout=120)
    TIMINGS["start to first counter"] = time.monotonic() - t0
    env["state"].update(where="a", serial=serial, start=result, first=first)
    yield env
    env["state"]["serial"].close()


# --- start and what a running instance looks like --------------------------------

def test_guest_counts_on_the_serial_console(booted):
    serial = booted["state"]["serial"]
    first = booted["state"]["first"]
    assert serial.wait_counter(above=first, timeout=30) > first


def test_guest_disk_writes_land_in_the_disk_file(booted):
    assert wait_disk_counter(booted["disk"], timeout=30) >= 1


def test_vnc_answers_rfb_on_the_allocated_port_bound_to_loopback(booted):
    a = booted["a"]
    greeting = sh("ip", "netns", "exec", a.ns, "/usr/bin/python3", "-c",
                  f"import socket; s = socket.create_connection(('127.0.0.1', {PORT}), 10); "
                  "print(s.recv(12).decode().strip())")
    listening = sh("ip", "netns", "exec", a.ns, "ss", "-Hltn", f"sport = :{PORT}").split()
    assert (greeting.strip(), f"127.0.0.1:{PORT}" in listening) == ("RFB 003.008", True)


def test_qmp_reports_running(booted):
    with booted["a"].qmp() as qmp:
        assert qmp.execute("query-status")["status"] == "running"


def test_tap_is_up_on_the_bridge(booted):
    a = booted["a"]
    tap = taps.tap_name(booted["spec"]["uuid"], 0)
    link = json.loads(sh("ip", "-n", a.ns, "-j", "link", "show", "dev", tap))[0]
    assert (a.links_on_bridge(), "UP" in link["flags"]) == ([tap], True)


def test_qemu_runs_with_the_specs_memory_and_cpus(booted):
    listing = booted["a"].ok("instance_list")["instances"]
    assert {k: listing[NAME][k] for k in ("status", "memory", "vcpus")} == {"status": "running", "memory": 128,
                                                                            "vcpus": 1}


def test_status_is_running_with_qemu_status(booted):
    status = booted["a"].ok("instance_status", name=NAME)
    assert (status["status"], status["qemu_status"], status["pid"]) == \
        ("running", "running", booted["state"]["start"]["pid"])


def test_second_start_changes_nothing(booted):
    again = booted["a"].ok("instance_start", spec=booted["spec"])
    assert (again["changed"], again["pid"], again["runtime_differs"]) == \
        (False, booted["state"]["start"]["pid"], False)


def test_item8_qemu_runs_unprivileged_in_the_seccomp_sandbox_and_owns_its_disk(booted):
    pid = booted["state"]["start"]["pid"]
    with open(f"/proc/{pid}/status") as handle:
        status = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
    nobody = pwd.getpwnam("nobody")
    assert (int(status["Uid"].split()[0]), status["Seccomp"].strip(), status["NoNewPrivs"].strip()) == \
        (nobody.pw_uid, "2", "1")
    assert os.stat(booted["disk"]).st_uid == nobody.pw_uid


def test_runtime_file_keeps_spec_and_command_line(booted):
    info = booted["a"].ok("instance_info", name=NAME)
    runtime = info["runtime"]
    assert (runtime["spec"]["machine"].startswith("pc-i440fx-"), runtime["argv"][0], runtime["pid"]) == \
        (True, "qemu-system-x86_64", info["pid"])


# --- live migration A -> B ---------------------------------------------------------

def test_live_migration_moves_the_running_guest(booted):
    a, b, state = booted["a"], booted["b"], booted["state"]
    assert state["where"] == "a"
    source_pid = state["start"]["pid"]
    t0 = time.monotonic()
    runtime = a.ok("migration_info", name=NAME)["runtime"]
    accepted = b.ok("migration_accept", runtime=runtime, address=b.address, port=None)
    serial_b = SerialLog(os.path.join(b.kvm_dir, f"{NAME}.serial"))
    before = state["serial"].counters()[-1]
    incoming = b.ok("instance_status", name=NAME)["status"]
    a.ok("migration_start", name=NAME, address=b.address, port=accepted["port"])
    status = wait_migration(a)
    TIMINGS["live migration 128 MiB"] = time.monotonic() - t0
    assert status["status"] == "completed", status
    migrated = a.ok("instance_status", name=NAME)["status"]
    b.ok("migration_finalize", name=NAME, role="target", success=True)
    a.ok("migration_finalize", name=NAME, role="source", success=True)
    state["serial"].close()
    state.update(where="b", serial=serial_b, pid=accepted["pid"])
    TIMINGS["its downtime"] = (status.get("downtime_ms") or 0) / 1000
    after = serial_b.wait_counter(above=before, timeout=30)
    # the guest kept counting: the target continues the source's counter, it never restarted at 1
    assert (min(serial_b.counters()) > 1, after > before) == (True, True)
    assert (incoming, migrated) == ("incoming", "migrated")
    assert (pid_alive(source_pid), a.taps(), a.files()) == (False, [], [])


def test_after_migration_the_target_runs_and_writes_the_shared_disk(booted):
    b, state = booted["b"], booted["state"]
    assert state["where"] == "b"
    seen = state["serial"].wait_counter(timeout=30)
    status = b.ok("instance_status", name=NAME)
    assert (status["status"], status["qemu_status"]) == ("running", "running")
    assert wait_disk_counter(booted["disk"], above=seen, timeout=30) > seen
    assert b.links_on_bridge() == [taps.tap_name(booted["spec"]["uuid"], 0)]


# --- a failed migration B -> A: the target is killed mid-way ---------------------------

def test_killing_the_target_mid_migration_keeps_the_source_running(booted):
    a, b, state = booted["a"], booted["b"], booted["state"]
    assert state["where"] == "b"
    runtime = b.ok("migration_info", name=NAME)["runtime"]
    accepted = a.ok("migration_accept", runtime=runtime, address=a.address, port=None)
    # 1 MiB/s: the guest's non-zero memory takes far longer than the test needs
    b.ok("migration_start", name=NAME, address=a.address, port=accepted["port"], bandwidth=1)
    wait_migration(b, check=lambda s: s["status"] == "active" and (s["transferred"] or 0) > 0)
    os.kill(accepted["pid"], signal.SIGKILL)
    failed = wait_migration(b, timeout=60)
    # rollback in Ganeti's order: the target first, then the source
    a.ok("migration_finalize", name=NAME, role="target", success=False)
    b.ok("migration_abort", name=NAME)
    seen = state["serial"].counters()[-1]
    assert state["serial"].wait_counter(above=seen, timeout=30) > seen
    status = b.ok("instance_status", name=NAME)
    assert (failed["status"], status["status"], status["qemu_status"], status["pid"]) == \
        ("failed", "running", "running", state["pid"])
    assert (a.taps(), a.files()) == ([], [])


def test_cancelled_non_live_migration_resumes_the_paused_source(booted):
    a, b, state = booted["a"], booted["b"], booted["state"]
    assert state["where"] == "b"
    runtime = b.ok("migration_info", name=NAME)["runtime"]
    accepted = a.ok("migration_accept", runtime=runtime, address=a.address, port=None)
    b.ok("migration_start", name=NAME, address=a.address, port=accepted["port"], bandwidth=1, live=False)
    paused = wait_migration(b, check=lambda s: s["status"] == "active")["qemu_status"]
    a.ok("migration_abort", name=NAME, role="target")
    aborted = b.ok("migration_abort", name=NAME, role="source")
    seen = state["serial"].counters()[-1]
    assert state["serial"].wait_counter(above=seen, timeout=30) > seen
    # the killed target fails the migration (or the cancel gets there first)
    assert aborted["status"] in ("failed", "cancelled")
    assert (paused, aborted["resumed"], aborted["qemu_status"]) == ("paused", True, "running")
    assert (pid_alive(accepted["pid"]), a.taps(), a.files()) == (False, [], [])


def test_second_migration_of_the_same_instance_is_refused(booted):
    a, b, state = booted["a"], booted["b"], booted["state"]
    assert state["where"] == "b"
    runtime = b.ok("migration_info", name=NAME)["runtime"]
    accepted = a.ok("migration_accept", runtime=runtime, address=a.address, port=None)
    b.ok("migration_start", name=NAME, address=a.address, port=accepted["port"], bandwidth=1)
    try:
        second = b.call("migration_start", name=NAME, address=a.address, port=accepted["port"])
    finally:
        a.ok("migration_finalize", name=NAME, role="target", success=False)
        b.ok("migration_abort", name=NAME, role="source")
    assert not second["ok"] and "already in progress" in second["error"]


# --- non-live migration B -> A (stop, copy, cont) ----------------------------------------

def test_non_live_migration_pauses_copies_and_resumes(booted):
    a, b, state = booted["a"], booted["b"], booted["state"]
    assert state["where"] == "b"
    t0 = time.monotonic()
    runtime = b.ok("migration_info", name=NAME)["runtime"]
    accepted = a.ok("migration_accept", runtime=runtime, address=a.address, port=None)
    serial_a = SerialLog(os.path.join(a.kvm_dir, f"{NAME}.serial"))
    before = state["serial"].counters()[-1]
    b.ok("migration_start", name=NAME, address=a.address, port=accepted["port"], live=False)
    status = wait_migration(b)
    assert status["status"] == "completed", status
    finalized = a.ok("migration_finalize", name=NAME, role="target", success=True)
    b.ok("migration_finalize", name=NAME, role="source", success=True)
    TIMINGS["non-live migration 128 MiB"] = time.monotonic() - t0
    state["serial"].close()
    state.update(where="a", serial=serial_a, pid=accepted["pid"])
    assert finalized["qemu_status"] == "running"
    assert serial_a.wait_counter(above=before, timeout=30) > before
    assert (b.taps(), b.files()) == ([], [])


# --- stop ------------------------------------------------------------------------------

def test_stop_powers_the_guest_off_by_acpi_and_removes_process_tap_and_sockets(booted):
    a, state = booted["a"], booted["state"]
    assert state["where"] == "a"
    pid = state["pid"]
    t0 = time.monotonic()
    stopped = a.ok("instance_stop", name=NAME, timeout=60)
    TIMINGS["stop by ACPI powerdown"] = time.monotonic() - t0
    state["where"] = None
    assert "herd-guest: power button, powering off" in state["serial"].lines
    state["serial"].close()
    assert (stopped["was_running"], stopped["method"], pid_alive(pid)) == (True, "acpi", False)
    assert (a.taps(), a.links_on_bridge(), a.files()) == ([], [], [])
    assert a.ok("instance_status", name=NAME)["status"] == "stopped"


# --- failures with clear messages ---------------------------------------------------------

def test_qemu_failing_at_start_returns_qemus_own_message(env):
    a = env["a"]
    # a model QEMU has, with a flag it has not: only QEMU itself finds that out
    spec = dict(env["spec"], hvparams=dict(env["spec"]["hvparams"], cpu_type="qemu64,+no-such-flag"))
    answer = a.call("instance_start", spec=spec)
    assert not answer["ok"]
    assert "Property 'qemu64-x86_64-cpu.no-such-flag' not found" in answer["error"]
    assert (a.taps(), a.files()) == ([], [])


def test_a_cpu_model_this_qemu_lacks_is_named_before_qemu_runs(env):
    a = env["a"]
    spec = dict(env["spec"], hvparams=dict(env["spec"]["hvparams"], cpu_type="x86-64-v2-AES"))
    answer = a.call("instance_start", spec=spec)
    assert not answer["ok"]
    assert "hvparams.cpu_type 'x86-64-v2-AES'" in answer["error"] and "no CPU model" in answer["error"]
    assert (a.taps(), a.files()) == ([], [])
    checked = a.call("hypervisor_check", hypervisor="kvm", hvparams=spec["hvparams"])
    assert checked["ok"] and any("no CPU model 'x86-64-v2-AES'" in p for p in checked["result"]["problems"])


def test_missing_kernel_is_a_clear_error(env):
    spec = dict(env["spec"], hvparams=dict(env["spec"]["hvparams"], kernel_path="/nonexistent/vmlinuz"))
    answer = env["a"].call("instance_start", spec=spec)
    assert not answer["ok"] and "kernel_path /nonexistent/vmlinuz does not exist on node" in answer["error"]


def test_missing_bridge_is_a_clear_error(env):
    spec = dict(env["spec"], nics=[{"mac": "aa:00:00:00:00:02", "link": "brnope"}])
    answer = env["a"].call("instance_start", spec=spec)
    assert not answer["ok"] and "bridge brnope does not exist on node" in answer["error"]
    assert env["a"].taps() == []


def idle_spec(env, name, **extra):
    """A machine without kernel or disks: it sits in the firmware, enough for process-level checks."""
    return dict({"name": name, "uuid": str(uuid.uuid4()), "memory": 64, "vcpus": 1, "network_port": None,
                 "hvparams": {"accel": "tcg"},
                 "nics": [{"mac": "aa:00:00:00:01:01", "link": "br0"}]}, **extra)


def test_hard_reboot_restarts_qemu_from_the_runtime_file(env):
    a = env["a"]
    first = a.ok("instance_start", spec=idle_spec(env, "reboot1"))
    rebooted = a.ok("instance_reboot", name="reboot1", type="hard", timeout=0)
    status = a.ok("instance_status", name="reboot1")
    a.ok("instance_stop", name="reboot1", force=True)
    assert (pid_alive(first["pid"]), status["status"], status["pid"]) == \
        (False, "running", rebooted["start"]["pid"])


def test_stop_kills_a_guest_that_ignores_acpi_after_the_timeout(env):
    a = env["a"]
    started = a.ok("instance_start", spec=idle_spec(env, "deaf1"))  # no OS: nobody handles the power button
    stopped = a.ok("instance_stop", name="deaf1", timeout=1)
    assert (stopped["method"], pid_alive(started["pid"]), a.taps(), a.files()) == ("kill", False, [], [])


def test_dead_qemu_is_an_error_until_cleaned_up(env):
    a = env["a"]
    spec = idle_spec(env, "crash1")
    started = a.ok("instance_start", spec=spec)
    os.kill(started["pid"], signal.SIGKILL)
    while pid_alive(started["pid"]):
        time.sleep(0.05)
    status = a.ok("instance_status", name="crash1")
    cleaned = a.ok("instance_cleanup", name="crash1")
    assert (status["status"], f"QEMU process {started['pid']} from the pidfile is gone" in status["detail"]) == \
        ("error", True)
    assert (taps.tap_name(spec["uuid"], 0) in " ".join(cleaned["cleaned"]),
            a.ok("instance_status", name="crash1")["status"], a.taps()) == (True, "stopped", [])


def test_cloud_init_seed_is_attached_as_a_cdrom(env):
    a = env["a"]
    seed_dir = os.path.join(env["base"], "seed")
    os.makedirs(seed_dir)
    for name, text in (("meta-data", "instance-id: seed1\n"), ("user-data", "#cloud-config\n")):
        with open(os.path.join(seed_dir, name), "w") as handle:
            handle.write(text)
    iso = os.path.join(env["base"], "seed.iso")
    sh("genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", seed_dir)
    started = a.ok("instance_start", spec=idle_spec(env, "seed1", cdrom=iso,
                                                    hvparams={"accel": "tcg", "machine_type": "q35"}))
    with QMP(started["qmp"]) as qmp:
        block = {b["device"]: b for b in qmp.execute("query-block")}
    a.ok("instance_stop", name="seed1", force=True)
    assert (block["cdrom0"]["removable"], block["cdrom0"]["inserted"]["file"]) == (True, iso)


def test_uefi_instance_gets_its_own_vars_file_kept_after_stop(env):
    a = env["a"]
    vars_file = os.path.join(env["base"], "uefi1", "OVMF_VARS.fd")
    spec = {"name": "uefi1", "uuid": str(uuid.uuid4()), "memory": 64, "vcpus": 1, "network_port": PORT + 1,
            "hvparams": {"accel": "tcg", "machine_type": "q35", "firmware": "uefi"}, "uefi_vars": vars_file}
    started = a.ok("instance_start", spec=spec)
    with QMP(started["qmp"]) as qmp:
        state = qmp.execute("query-status")["status"]
    a.ok("instance_stop", name="uefi1", force=True)
    assert (state, os.path.getsize(vars_file), a.ok("instance_status", name="uefi1")["status"]) == \
        ("running", os.path.getsize("/usr/share/OVMF/OVMF_VARS_4M.fd"), "stopped")


def test_scsi_disk_boot_iso_vnc_password_and_extra_arguments_reach_qemu(env):
    """One guest with the runbook's KVM parameters: disk_type scsi-hd, an installer ISO booted first,
    a VNC password (a secret object, not on the command line), kvm_extra."""
    a = env["a"]
    disk = os.path.join(env["base"], "scsi1.disk0")
    with open(disk, "wb") as handle:
        handle.truncate(8 * 2**20)
    iso_dir = os.path.join(env["base"], "iso")
    os.makedirs(iso_dir, exist_ok=True)
    with open(os.path.join(iso_dir, "README"), "w") as handle:
        handle.write("installer\n")
    iso = os.path.join(env["base"], "installer.iso")
    sh("genisoimage", "-quiet", "-output", iso, "-volid", "INSTALL", iso_dir)
    spec = idle_spec(env, "scsi1", network_port=PORT + 2, vnc_password="s3cr#tPw", disks=[{"path": disk}],
                     hvparams={"accel": "tcg", "disk_type": "scsi-hd", "cdrom_image_path": iso, "boot_order": "cdrom",
                               "disk_discard": "ignore", "vnc_bind_address": "0.0.0.0", "kvm_extra": "-rtc base=utc"})
    started = a.ok("instance_start", spec=spec)
    try:
        with QMP(started["qmp"]) as qmp:
            block = {b["device"]: b for b in qmp.execute("query-block")}
            peripherals = {p["name"] for p in qmp.execute("qom-list", {"path": "/machine/peripheral"})}
            vnc = qmp.execute("query-vnc")
        with open(f"/proc/{started['pid']}/cmdline", "rb") as handle:
            cmdline = handle.read()
        secret_mode = stat.S_IMODE(os.stat(os.path.join(a.kvm_dir, "scsi1.vnc-secret")).st_mode)
        info = a.ok("instance_info", name="scsi1")
    finally:
        a.ok("instance_stop", name="scsi1", force=True)
    assert (block["cdrom1"]["inserted"]["file"], block["disk0"]["inserted"]["file"]) == (iso, disk)
    assert {"scsi0", "scsi-disk0", "ide-cd1"} <= peripherals
    assert (vnc["enabled"], vnc["auth"]) == (True, "vnc")
    assert b"s3cr#tPw" not in cmdline and b"password-secret=herd-vnc-secret" in cmdline
    assert b"-rtc\x00base=utc" in cmdline
    assert secret_mode == 0o600 and "s3cr#tPw" not in json.dumps(info)
    assert "scsi1.vnc-secret" not in a.files()
