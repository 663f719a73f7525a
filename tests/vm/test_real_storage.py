"""plain and drbd on real LVM and real DRBD 8.4: the essential path on three VM nodes.

Nothing is mocked: what is checked is `lvs`, `/proc/drbd`, `drbdsetup` and the
files on the nodes.  The instances use the fake hypervisor (their disks are
real); the tests run in file order and leave the cluster as they found it,
except the last, which cuts a node off.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from vmnodes import (REPO, VG, VMCluster, ansible_run, drbd_minor_of, drbd_resource_files,
                     instance_lvs, lvs, proc_drbd, wait_drbd)

pytestmark = pytest.mark.vm

PATTERN_MIB = 16


def write_pattern(vm: VMCluster, node: str, minor: int) -> str:
    """dd a random pattern onto the start of /dev/drbdN on node; its sha256."""
    out = vm.sh(node, f"set -e; dd if=/dev/urandom of=/root/pattern bs=1M count={PATTERN_MIB} status=none; "
                      f"dd if=/root/pattern of=/dev/drbd{minor} bs=1M oflag=direct status=none; "
                      f"sha256sum < /root/pattern").stdout
    return out.split()[0]


def read_pattern(vm: VMCluster, node: str, minor: int) -> str:
    return vm.sh(node, f"dd if=/dev/drbd{minor} bs=1M count={PATTERN_MIB} iflag=direct status=none "
                       f"| sha256sum").stdout.split()[0]


def create(vm: VMCluster, name: str, **spec: object) -> dict:
    result = vm.module("instance", {"name": name, "state": "running", "hypervisor": "fake",
                                    "memory": "128M", "vcpus": 1, **spec})
    assert not result.get("failed"), result
    return result


def remove(vm: VMCluster, name: str) -> None:
    result = vm.module("instance", {"name": name, "state": "absent", "shutdown_timeout": 5})
    assert not result.get("failed"), result


def allow_two_primaries(vm: VMCluster, node: str, minor: int) -> bool:
    shown = vm.sh(node, f"drbdsetup-84 show {minor} 2>/dev/null || drbdsetup show {minor}").stdout
    return "allow-two-primaries" in shown and "allow-two-primaries\tno" not in shown \
        and "allow-two-primaries no" not in shown


def test_site_builds_bridges_volume_group_and_drbd_from_the_documented_inventory(vm, site):
    verify = vm.module("cluster_verify", {})
    assert verify["ok"] and verify["error_count"] == 0, verify["lines"]
    for node in vm.node_names:
        pvs = vm.sh(node, "pvs --noheadings -o pv_name,vg_name").stdout.split()
        assert pvs == ["/dev/vdb", VG], f"{node}: pvs {pvs}"
        assert vm.sh(node, "test -e /proc/drbd && lsmod | grep -q '^drbd '", check=False).returncode == 0, \
            f"{node}: drbd module not loaded"
        macs = vm.sh(node, "cat /sys/class/net/br0/address /sys/class/net/eth0/address").stdout.split()
        assert macs[0] == macs[1], f"{node}: br0 MAC {macs[0]} is not its port's {macs[1]}"
        assert vm.sh(node, "cat /sys/class/net/eth0/master/uevent").stdout.count("INTERFACE=br0") == 1
        primary = vm.node(node)["primary_ip"]
        secondary = vm.node(node)["secondary_ip"]
        assert f"inet {primary}/" in vm.sh(node, "ip -4 -o addr show dev br0").stdout
        assert f"inet {secondary}/" in vm.sh(node, "ip -4 -o addr show dev eth1").stdout
        flt = vm.sh(node, "lvmconfig devices/global_filter").stdout
        assert "r|^/dev/drbd[0-9]+$|" in flt and f"r|^/dev/{VG}/|" in flt, f"{node}: {flt}"


def test_an_existing_bridge_gets_its_ports_mac_back(vm, site):
    port_mac = vm.sh("node2", "cat /sys/class/net/eth0/address").stdout.strip()
    vm.sh("node2", "ip link set dev br0 address 02:00:00:00:be:ef")
    result = vm.module("node_network", {"bridges": [{"name": "br0", "port": "eth0"}]}, host="node2")
    assert result["changed"] and f"link set dev br0 address {port_mac}" in result["ip_batch"], result
    assert vm.sh("node2", "cat /sys/class/net/br0/address").stdout.strip() == port_mac
    again = vm.module("node_network", {"bridges": [{"name": "br0", "port": "eth0"}]}, host="node2")
    assert not again["changed"], again


def test_plain_disk_is_a_tagged_lv_that_grows_and_goes_away(vm, site):
    name = "plain1.example.org"
    create(vm, name, disk_template="plain", disks=["256M"], primary_node="node2")
    try:
        (lv,) = instance_lvs(vm, "node2", name)
        assert "herd" in lv["lv_tags"].split(","), lv
        assert lv["lv_name"].endswith(".disk0"), lv
        assert float(lv["lv_size"]) == 256, lv
        assert lv["lv_attr"][4] == "a", f"not active: {lv}"
        vm.sh("node2", f"test -b /dev/{VG}/{lv['lv_name']}")
        for other in ("node1", "node3"):
            assert instance_lvs(vm, other, name) == []

        grown = vm.module("instance", {"name": name, "disks": ["512M"]})
        assert grown["changed"] and not grown.get("failed"), grown
        (lv,) = instance_lvs(vm, "node2", name)
        assert float(lv["lv_size"]) == 512, lv
        size = int(vm.sh("node2", f"blockdev --getsize64 /dev/{VG}/{lv['lv_name']}").stdout)
        assert size == 512 * 1024 * 1024
    finally:
        remove(vm, name)
    assert instance_lvs(vm, "node2", name) == []
    assert [x["lv_name"] for x in lvs(vm, "node2")] == []


def test_drbd_disk_syncs_migrates_fails_over_and_leaves_nothing(vm, site):
    name = "drbd1.example.org"
    create(vm, name, disk_template="drbd", disks=["256M"], primary_node="node1",
           secondary_node="node2")
    try:
        minor1, minor2 = drbd_minor_of(vm, "node1"), drbd_minor_of(vm, "node2")
        first = wait_drbd(vm, "node1", minor1, "Connected", "UpToDate/UpToDate")
        assert first["ro"] == "Primary/Secondary" and first["protocol"] == "C", first
        second = wait_drbd(vm, "node2", minor2, "Connected", "UpToDate/UpToDate")
        assert second["ro"] == "Secondary/Primary" and second["protocol"] == "C", second
        for node in ("node1", "node2"):
            names = sorted(lv["lv_name"] for lv in instance_lvs(vm, node, name))
            assert len(names) == 2 and names[0].endswith(".disk0_data") \
                and names[1].endswith(".disk0_meta"), f"{node}: {names}"
        assert instance_lvs(vm, "node3", name) == []
        checksum = write_pattern(vm, "node1", minor1)

        # live migration: both sides Primary while the guest moves, then single-primary again
        watcher = subprocess.Popen(
            ["ssh", "-i", vm.state["private_key"], "-o", f"UserKnownHostsFile={vm.state['known_hosts']}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{vm.node('node2')['primary_ip']}",
             f"for i in $(seq 3000); do grep -q '^ *{minor2}: .*ro:Primary/Primary' /proc/drbd "
             f"&& echo dual && exit 0; sleep 0.1; done; exit 1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        migrated = vm.module("instance_migrate", {"name": name})
        try:
            out = watcher.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            watcher.kill()
            out = watcher.communicate()[0]
        assert migrated["changed"] and not migrated.get("failed"), migrated
        assert out.strip() == "dual", "node2 was never Primary/Primary during the live migration"
        assert proc_drbd(vm, "node2")[minor2]["ro"] == "Primary/Secondary"
        assert proc_drbd(vm, "node1")[minor1]["ro"] == "Secondary/Primary"
        for node, minor in (("node1", minor1), ("node2", minor2)):
            assert not allow_two_primaries(vm, node, minor), f"{node}: still allow-two-primaries"
        assert read_pattern(vm, "node2", minor2) == checksum

        failed_over = vm.module("instance_failover", {"name": name})
        assert failed_over["changed"] and not failed_over.get("failed"), failed_over
        assert proc_drbd(vm, "node1")[minor1]["ro"] == "Primary/Secondary"
        assert proc_drbd(vm, "node2")[minor2]["ro"] == "Secondary/Primary"
        assert read_pattern(vm, "node1", minor1) == checksum
    finally:
        remove(vm, name)
    for node in vm.node_names:
        assert instance_lvs(vm, node, name) == [], node
        assert drbd_resource_files(vm, node) == [], node
        assert proc_drbd(vm, node) == {}, f"{node}: {vm.sh(node, 'cat /proc/drbd').stdout}"


def test_dead_primary_is_failed_over_to_its_secondary_with_its_data(vm, site):
    name = "dead1.example.org"
    create(vm, name, disk_template="drbd", disks=["128M"], primary_node="node2",
           secondary_node="node3")
    minor2, minor3 = drbd_minor_of(vm, "node2"), drbd_minor_of(vm, "node3")
    wait_drbd(vm, "node3", minor3, "Connected", "UpToDate/UpToDate")
    checksum = write_pattern(vm, "node2", minor2)
    vm.link("node2", up=False)
    try:
        run = ansible_run.playbook(vm.inventory, REPO / "playbooks" / "node_failover.yml",
                                   extra_vars={"node": "node2"}, timeout=1200)
        assert run.rc == 0, f"{run!r}\n{run.proc.stdout[-4000:]}"
        info = vm.module("instance_info", {"names": [name]})["instances"][0]
        assert info["primary_node"] == "node3", info
        assert proc_drbd(vm, "node3")[minor3]["ro"].startswith("Primary/"), proc_drbd(vm, "node3")
        assert read_pattern(vm, "node3", minor3) == checksum
    finally:
        vm.link("node2", up=True)
