"""The local virtual cluster (scripts/vcluster) gives what herd's tests rely on:
nodes reachable over SSH with checked host keys, private per-node state, shared
storage, per-node LVM, two networks, reboots and cable pulls, and a teardown
that leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import paramiko
import pytest
from conftest import own_cluster
from vcluster import VCluster, VClusterCommandError, run_script, session_cluster_name

LVM_ENV = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
VENV_BIN = Path("/opt/herd/venv/bin")

# The paths every node must have its own copy of (issue 2/3 and the helpers' brief).
PRIVATE_DIRS = [
    "/var/lib/herd", "/etc/herd", "/run/herd", "/var/log/herd", "/root/.ssh",
    "/etc/lvm", "/run/lvm", "/etc/drbd.d", "/etc/network/interfaces.d", "/etc/sysctl.d",
    "/etc/modprobe.d", "/srv/herd", "/usr/local/lib/herd",
]
SHARED_DIRS = ["/srv/herd-shared", "/tmp"]

PROBE = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("unreachable")
else:
    print("open")
"""


def probe(cluster: VCluster, node: str, ip: str, port: int = 22, timeout: float = 2.0) -> str:
    """From inside node: 'open', 'refused' (host answered, nothing listens) or 'unreachable'."""
    proc = cluster.exec(node, ["python3", "-c", PROBE, ip, str(port), str(timeout)],
                        check=True)
    return proc.stdout.strip()


def probe_until(cluster: VCluster, node: str, ip: str, want: str, attempts: int = 10) -> str:
    """probe() until it answers want (or the attempts run out): the last answer."""
    for _attempt in range(attempts):
        got = probe(cluster, node, ip)
        if got == want:
            break
    return got


def ssh_run(client: paramiko.SSHClient, command: str) -> str:
    _stdin, stdout, _stderr = client.exec_command(command, timeout=30)
    out = stdout.read().decode()
    assert stdout.channel.recv_exit_status() == 0
    return out


def exists_in(cluster: VCluster, node: str, path: str) -> bool:
    return cluster.exec(node, ["test", "-e", path]).returncode == 0


def leftovers(name: str, state_dir: Path) -> dict[str, list[str]]:
    """What a cluster called `name` still has on the machine."""
    netns = [ns for ns in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
             if ns.startswith(f"{name}-")]
    links = [ln for ln in os.listdir("/sys/class/net") if ln.startswith(f"{name}-")]
    loops = json.loads(subprocess.run(
        ["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"],
        capture_output=True, text=True, check=True).stdout or '{"loopdevices": []}')
    ours = [d["name"] for d in loops.get("loopdevices", [])
            if (d.get("back-file") or "").startswith(f"{state_dir}/")]
    return {"netns": netns, "links": links, "loops": ours}


def uplink_network() -> str | None:
    """The network of the machine's default-route interface, e.g. 192.0.2.0/24."""
    routes = subprocess.run(["ip", "-4", "-o", "route", "show"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    dev = next((r.split()[r.split().index("dev") + 1] for r in routes
                if r.startswith("default ") and " dev " in r), None)
    if dev is None:
        return None
    for r in routes:
        f = r.split()
        if "/" in f[0] and "dev" in f and f[f.index("dev") + 1] == dev:
            return f[0]
    return None


@pytest.fixture(scope="module")
def vcluster():
    """A fresh 3-node cluster of this module's own (it replaces the session's here): these
    tests check the cluster exactly as scripts/vcluster leaves it (an unformatted spare
    disk, eth0 carrying its address), which the site.yml run of the other modules changes
    on the session's cluster; and the restarts and cable pulls here never disturb it."""
    with own_cluster("v", nodes=3) as cluster:
        yield cluster


@pytest.fixture
def extra_cluster(tmp_path: Path):
    """A separate 2-node cluster a test may break or tear down itself."""
    name = session_cluster_name("d")
    made: list[VCluster] = []

    def make() -> VCluster:
        cluster = VCluster.up(name, nodes=2, inventory=tmp_path / "hosts.yml")
        made.append(cluster)
        return cluster

    yield make
    run_script("down", "--name", name, check=False)


# ---------------------------------------------------------------- SSH


def test_every_node_runs_sshd_reachable_with_a_checked_host_key(vcluster: VCluster) -> None:
    for node in vcluster.node_names:
        client = vcluster.ssh_client(node)
        try:
            assert ssh_run(client, "hostname").strip() == node
        finally:
            client.close()


def test_a_node_presenting_another_nodes_host_key_is_rejected(
        vcluster: VCluster, tmp_path: Path) -> None:
    first, second = vcluster.nodes[0], vcluster.nodes[1]
    known = {line.split()[0].split(",")[0]: line.split(None, 1)[1]
             for line in vcluster.known_hosts.read_text().splitlines() if line.strip()}
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{first.primary_ip} {known[second.name]}")
    client = paramiko.SSHClient()
    client.load_host_keys(str(wrong))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(first.primary_ip, username="root",
                       key_filename=str(vcluster.private_key), timeout=10,
                       allow_agent=False, look_for_keys=False)
    client.close()


def test_openssh_client_reaches_each_node_with_strict_host_key_checking(
        vcluster: VCluster) -> None:
    for node in vcluster.node_names:
        proc = subprocess.run(vcluster.ssh_argv(node, ["cat", "/etc/hostname"]),
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == node


def test_ansible_reaches_every_node_through_the_generated_inventory(
        vcluster: VCluster) -> None:
    ansible = VENV_BIN / "ansible"
    if not ansible.exists():
        pytest.skip(f"{ansible} missing (scripts/setup.sh builds the venv)")
    proc = subprocess.run(
        [str(ansible), "-i", str(vcluster.inventory), "herd_nodes", "-m", "ping", "-o"],
        capture_output=True, text=True, timeout=120, cwd=vcluster.inventory.parents[2],
        env=dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}"), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for node in vcluster.node_names:
        assert f"{node} | SUCCESS" in proc.stdout


def test_inventory_groups_and_per_node_variables(vcluster: VCluster) -> None:
    inv = VENV_BIN / "ansible-inventory"
    if not inv.exists():
        pytest.skip(f"{inv} missing (scripts/setup.sh builds the venv)")
    proc = subprocess.run([str(inv), "-i", str(vcluster.inventory), "--list"],
                          capture_output=True, text=True, timeout=60, check=True)
    data = json.loads(proc.stdout)
    assert sorted(data["herd_nodes"]["hosts"]) == sorted(vcluster.node_names)
    assert sorted(data["herd_master_candidates"]["hosts"]) == sorted(vcluster.node_names)
    assert data["herd_master"]["hosts"] == [vcluster.master]
    for node in vcluster.nodes:
        hv = data["_meta"]["hostvars"][node.name]
        assert hv["ansible_host"] == node.primary_ip
        assert hv["herd_primary_ip"] == node.primary_ip
        assert hv["herd_secondary_ip"] == node.secondary_ip
        assert hv["herd_vcluster_spare_disk"] == node.spare_disk
        assert hv["ansible_user"] == "root"
        assert hv["ansible_ssh_private_key_file"] == str(vcluster.private_key)
        assert f"UserKnownHostsFile={vcluster.known_hosts}" in hv["ansible_ssh_common_args"]
        assert "StrictHostKeyChecking=yes" in hv["ansible_ssh_common_args"]


# ---------------------------------------------------------------- identity and files


def test_each_node_has_its_own_hostname(vcluster: VCluster) -> None:
    names = [vcluster.exec(n, ["hostname"], check=True).stdout.strip()
             for n in vcluster.node_names]
    assert names == vcluster.node_names


def test_etc_hosts_of_every_node_resolves_every_node_to_its_primary_ip(
        vcluster: VCluster) -> None:
    for node in vcluster.node_names:
        for other in vcluster.nodes:
            out = vcluster.exec(node, ["getent", "hosts", other.name], check=True).stdout
            assert out.split()[0] == other.primary_ip


@pytest.mark.parametrize("directory", PRIVATE_DIRS)
def test_a_file_written_in_a_private_directory_stays_on_its_node(
        vcluster: VCluster, directory: str) -> None:
    first, *others = vcluster.node_names
    path = f"{directory}/vcluster-test-{uuid.uuid4().hex}"
    vcluster.exec(first, ["touch", path], check=True)
    try:
        assert exists_in(vcluster, first, path)
        for other in others:
            assert not exists_in(vcluster, other, path)
        assert not os.path.exists(path)  # nor on the machine itself
    finally:
        vcluster.exec(first, ["rm", "-f", path])


@pytest.mark.parametrize("directory", SHARED_DIRS)
def test_a_file_written_in_a_shared_directory_is_seen_by_every_node(
        vcluster: VCluster, directory: str) -> None:
    first, *others = vcluster.node_names
    path = f"{directory}/vcluster-test-{uuid.uuid4().hex}"
    vcluster.exec(first, ["sh", "-c", f"echo from-{first} > {path}"], check=True)
    try:
        for other in others:
            assert vcluster.exec(other, ["cat", path], check=True).stdout == f"from-{first}\n"
    finally:
        vcluster.exec(first, ["rm", "-f", path])


# ---------------------------------------------------------------- storage


def test_each_node_has_its_own_unformatted_spare_disk(vcluster: VCluster) -> None:
    disks = [n.spare_disk for n in vcluster.nodes]
    assert len(set(disks)) == len(disks)
    for node in vcluster.nodes:
        size = vcluster.exec(node.name, ["blockdev", "--getsize64", node.spare_disk],
                             check=True).stdout
        assert int(size) == 2 * 1024**3
        # blkid exits 2 when it finds no signature: no filesystem, no PV
        assert vcluster.exec(node.name, ["blkid", "-p", node.spare_disk]).returncode == 2


def test_lvm_on_each_node_sees_only_its_own_spare_disk(vcluster: VCluster) -> None:
    first, second = vcluster.nodes[0], vcluster.nodes[1]

    def pvs(node: str) -> list[str]:
        out = vcluster.exec(node, ["pvs", "--noheadings", "-o", "pv_name"], check=True,
                            env=LVM_ENV).stdout
        return out.split()

    try:
        for node in (first, second):
            vcluster.exec(node.name, ["pvcreate", node.spare_disk], check=True, env=LVM_ENV)
        assert pvs(first.name) == [first.spare_disk]
        assert pvs(second.name) == [second.spare_disk]
        assert pvs(vcluster.nodes[2].name) == []
    finally:
        for node in (first, second):
            vcluster.exec(node.name, ["pvremove", "-y", node.spare_disk], env=LVM_ENV)


# ---------------------------------------------------------------- networks


def test_nodes_reach_each_other_on_the_primary_and_the_secondary_network(
        vcluster: VCluster) -> None:
    first, second = vcluster.nodes[0], vcluster.nodes[1]
    assert probe(vcluster, first.name, second.primary_ip) == "open"
    # sshd listens on the primary address only: "refused" proves the peer answered
    assert probe(vcluster, first.name, second.secondary_ip) == "refused"


def test_node_interfaces_carry_their_addresses(vcluster: VCluster) -> None:
    for node in vcluster.nodes:
        out = vcluster.exec(node.name, ["ip", "-4", "-o", "addr", "show"], check=True).stdout
        addrs = {line.split()[1]: line.split()[3].split("/")[0] for line in out.splitlines()}
        assert addrs["eth0"] == node.primary_ip
        assert addrs["eth1"] == node.secondary_ip
        assert addrs["lo"] == "127.0.0.1"


def test_link_down_cuts_a_node_off_and_link_up_reconnects_it(vcluster: VCluster) -> None:
    first, last = vcluster.nodes[0], vcluster.nodes[-1]
    vcluster.link_down(last.name)
    try:
        assert probe(vcluster, first.name, last.primary_ip) == "unreachable"
        assert probe(vcluster, first.name, last.secondary_ip) == "unreachable"
    finally:
        vcluster.link_up(last.name)
    # the neighbour entries that failed while the link was down take a moment to resolve again
    assert probe_until(vcluster, first.name, last.primary_ip, "open") == "open"
    assert probe_until(vcluster, first.name, last.secondary_ip, "refused") == "refused"


# ---------------------------------------------------------------- lifecycle


def test_up_again_reports_the_running_cluster_and_changes_nothing(
        vcluster: VCluster) -> None:
    pids = [vcluster.sshd_pid(n) for n in vcluster.node_names]
    proc = run_script("up", "--name", vcluster.name, "--nodes", str(len(vcluster.nodes)),
                      "--state-dir", str(vcluster.state_dir),
                      "--inventory", str(vcluster.inventory))
    assert "already up" in proc.stdout
    assert [vcluster.sshd_pid(n) for n in vcluster.node_names] == pids


def test_restart_node_kills_its_processes_clears_run_and_keeps_state_and_host_key(
        vcluster: VCluster) -> None:
    node = vcluster.node_names[1]
    marker = f"vcluster-test-{uuid.uuid4().hex}"
    vcluster.exec(node, ["sh", "-c", f"touch /run/herd/{marker} /var/lib/herd/{marker}"],
                  check=True)
    stray = subprocess.Popen(["nsenter", "-t", str(vcluster.sshd_pid(node)), "-n", "-m",
                              "-u", "--", "sleep", "600"])
    old_sshd = vcluster.sshd_pid(node)
    try:
        vcluster.restart_node(node)
        assert stray.wait(timeout=30) != 0  # killed
        assert vcluster.sshd_pid(node) != old_sshd
        assert not exists_in(vcluster, node, f"/run/herd/{marker}")
        assert exists_in(vcluster, node, f"/var/lib/herd/{marker}")
        assert vcluster.exec(node, ["hostname"], check=True).stdout.strip() == node
        client = vcluster.ssh_client(node)  # same known_hosts still matches
        client.close()
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
        vcluster.exec(node, ["rm", "-f", f"/var/lib/herd/{marker}"])


def test_overlap_with_the_machines_uplink_network_is_refused(tmp_path: Path) -> None:
    uplink = uplink_network()
    if uplink is None:
        pytest.skip("this machine has no default route to take an uplink network from")
    name = session_cluster_name("o")
    proc = run_script("up", "--name", name, "--primary-net", uplink,
                      "--inventory", str(tmp_path / "hosts.yml"), check=False)
    assert proc.returncode == 1
    assert "refusing to start" in proc.stderr
    assert f"primary network {uplink} overlaps" in proc.stderr
    assert leftovers(name, Path("/var/lib/herd-vcluster") / name) == {
        "netns": [], "links": [], "loops": []}
    assert not (tmp_path / "hosts.yml").exists()


def test_a_network_used_by_another_virtual_cluster_is_refused(
        vcluster: VCluster, tmp_path: Path) -> None:
    name = session_cluster_name("o")
    proc = run_script("up", "--name", name, "--secondary-net", vcluster.primary_network,
                      "--inventory", str(tmp_path / "hosts.yml"), check=False)
    assert proc.returncode == 1
    assert f"secondary network {vcluster.primary_network} overlaps" in proc.stderr
    assert vcluster.primary_bridge in proc.stderr  # names the conflicting interface


def test_automatic_ranges_avoid_networks_already_in_use(
        vcluster: VCluster, extra_cluster) -> None:
    other = extra_cluster()
    used = {vcluster.primary_network, vcluster.secondary_network}
    assert other.primary_network not in used
    assert other.secondary_network not in used
    assert other.primary_network != other.secondary_network


def test_down_leaves_no_process_namespace_interface_or_loop_device(extra_cluster) -> None:
    cluster = extra_cluster()
    stray = subprocess.Popen(["nsenter", "-t", str(cluster.sshd_pid("node1")), "-n", "-m",
                              "-u", "--", "sleep", "600"])
    pids = [cluster.sshd_pid(n) for n in cluster.node_names] + [stray.pid]
    assert leftovers(cluster.name, cluster.state_dir)["loops"]  # the check can see them
    proc = cluster.down()
    stray.wait(timeout=30)
    assert leftovers(cluster.name, cluster.state_dir) == {"netns": [], "links": [],
                                                          "loops": []}
    for pid in pids:
        assert not _alive(pid)
    assert not cluster.state_dir.exists()
    assert not cluster.inventory.exists()
    assert f"namespace {cluster.nodes[0].netns}" in proc.stdout  # it says what it removed


def test_down_is_idempotent(extra_cluster) -> None:
    cluster = extra_cluster()
    cluster.down()
    proc = run_script("down", "--name", cluster.name)
    assert "nothing to remove" in proc.stdout


def test_down_cleans_up_a_half_up_cluster(extra_cluster) -> None:
    cluster = extra_cluster()
    orphan = cluster.sshd_pid("node2")
    # half gone: the namespace's name is removed while its sshd still runs in it
    subprocess.run(["ip", "netns", "del", cluster.nodes[1].netns], check=True)
    cluster.down()
    assert leftovers(cluster.name, cluster.state_dir) == {"netns": [], "links": [],
                                                          "loops": []}
    assert not _alive(orphan)


def test_up_replaces_a_half_up_cluster_with_a_working_one(extra_cluster) -> None:
    cluster = extra_cluster()
    os.kill(cluster.sshd_pid("node2"), 9)
    assert not cluster.status()["up"]
    repaired = extra_cluster()
    assert repaired.status()["up"]
    assert repaired.exec("node2", ["hostname"], check=True).stdout.strip() == "node2"


def test_up_with_another_node_count_while_up_is_refused(vcluster: VCluster,
                                                        tmp_path: Path) -> None:
    with pytest.raises(VClusterCommandError) as err:
        run_script("up", "--name", vcluster.name, "--state-dir", str(vcluster.state_dir),
                   "--nodes", str(len(vcluster.nodes) + 1),
                   "--inventory", str(tmp_path / "hosts.yml"))
    assert "already up with" in err.value.proc.stderr


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
