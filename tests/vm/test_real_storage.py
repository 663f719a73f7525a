"""plain and drbd on real LVM and real DRBD 8.4: the essential path on three VM nodes.

Nothing is mocked: what is checked is `lvs`, `/proc/drbd`, `drbdsetup` and the
files on the nodes.  The instances use the fake hypervisor (their disks are
real); the tests run in file order and leave the cluster as they found it,
except the last, which cuts a node off.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from vmnodes import (DRBDSETUP, REPO, VG, VMCluster, ansible_run, data_lv, drbd_minor_of, drbd_resource_files,
                     instance_lvs, lvs, proc_drbd, wait_drbd)

sys.path.insert(0, str(REPO))
from plugins.module_utils.herd.storage.drbd import parse_drbdsetup_show  # noqa: E402

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


def read_backing(vm: VMCluster, node: str, instance: str) -> str:
    """sha256 of the pattern's span of the data LV under DRBD (a secondary's /dev/drbdN cannot
    be opened; with external meta-data the LV holds the data as the device shows it)."""
    return vm.sh(node, f"dd if={data_lv(vm, node, instance)} bs=1M count={PATTERN_MIB} iflag=direct "
                       f"status=none | sha256sum").stdout.split()[0]


def module_ok(vm: VMCluster, name: str, args: dict) -> dict:
    result = vm.module(name, args)
    assert not result.get("failed"), result.get("msg") or result
    return result


def drbd_gone(vm: VMCluster, node: str, name: str) -> None:
    assert instance_lvs(vm, node, name) == [], node
    assert drbd_resource_files(vm, node) == [], node
    assert proc_drbd(vm, node) == {}, f"{node}: {vm.sh(node, 'cat /proc/drbd').stdout}"


def create(vm: VMCluster, name: str, **spec: object) -> dict:
    result = vm.module("instance", {"name": name, "state": "running", "hypervisor": "fake",
                                    "memory": "128M", "vcpus": 1, **spec})
    assert not result.get("failed"), result.get("msg") or result
    return result


def remove(vm: VMCluster, name: str) -> None:
    result = vm.module("instance", {"name": name, "state": "absent", "shutdown_timeout": 5})
    assert not result.get("failed"), result.get("msg") or result


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


def test_drbd_disk_lifecycle_on_real_drbd(vm, site):
    """One instance through create, live migration, failover, replace-disks (new secondary and
    same nodes), grow, a secondary's reboot, a split brain, removal."""
    name = "drbd1.example.org"
    create(vm, name, disk_template="drbd", disks=["128M"], primary_node="node1",
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

        # herd's parser of `drbdsetup show` (which minor belongs to which resource: create refuses
        # a minor it cannot attribute) against the live 8.4 module
        (resfile,) = drbd_resource_files(vm, "node1")
        resource = resfile[:-len(".res")]
        assert parse_drbdsetup_show(vm.sh("node1", f"{DRBDSETUP} show").stdout) == {minor1: resource}

        # replace-disks to a new secondary: node3 syncs from node1, node2 keeps nothing
        replaced = module_ok(vm, "instance_replace_disks", {"name": name, "remote_node": "node3"})
        assert replaced["changed"] and replaced["synced"] is True, replaced
        minor3 = drbd_minor_of(vm, "node3")
        wait_drbd(vm, "node3", minor3, "Connected", "UpToDate/UpToDate")
        assert proc_drbd(vm, "node1")[minor1]["ro"] == "Primary/Secondary"
        assert read_backing(vm, "node3", name) == checksum
        drbd_gone(vm, "node2", name)

        # grow on the running instance: the backing LVs on both nodes, then the DRBD device
        grown = module_ok(vm, "instance", {"name": name, "disks": ["192M"]})
        assert grown["changed"], grown
        for node, minor in (("node1", minor1), ("node3", minor3)):
            # the kernel's size of the device (a Secondary cannot be opened for blockdev)
            size = int(vm.sh(node, f"cat /sys/block/drbd{minor}/size").stdout) * 512
            assert size == 192 * 1024 * 1024, f"{node}: /dev/drbd{minor} has {size} bytes"
        wait_drbd(vm, "node3", minor3, "Connected", "UpToDate/UpToDate")

        # the secondary's disk fails (detached: Diskless); replace-disks on the same nodes
        # (mode replace_auto picks node3) rebuilds it from the primary
        vm.sh("node3", f"{DRBDSETUP} detach {minor3}")
        assert proc_drbd(vm, "node3")[minor3]["ds"].startswith("Diskless/"), proc_drbd(vm, "node3")
        rebuilt = module_ok(vm, "instance_replace_disks", {"name": name, "mode": "replace_auto"})
        assert rebuilt["changed"] and rebuilt["replaced_on"] == "node3" and rebuilt["synced"], rebuilt
        wait_drbd(vm, "node3", minor3, "Connected", "UpToDate/UpToDate")
        assert read_backing(vm, "node3", name) == checksum
        assert sorted(float(lv["lv_size"]) for lv in instance_lvs(vm, "node3", name)) == [128, 192], \
            "the set-aside volumes were not removed"

        # a power cycle of the secondary: br0 comes back from the ifupdown stanzas alone, the
        # DRBD device stays down (the primary writes on alone) until activate-disks brings it
        # back and it resyncs what it missed
        vm.restart("node3")
        macs = vm.sh("node3", "cat /sys/class/net/br0/address /sys/class/net/eth0/address").stdout.split()
        assert macs[0] == macs[1], f"node3 after reboot: br0 MAC {macs}"
        assert f"inet {vm.node('node3')['primary_ip']}/" in vm.sh("node3", "ip -4 -o addr show dev br0").stdout
        assert "master br0" in vm.sh("node3", "ip -o link show dev eth0").stdout
        checksum = write_pattern(vm, "node1", minor1)
        activated = module_ok(vm, "instance_activate_disks", {"name": name, "wait_for_sync": True})
        assert activated["synced"] is True and activated["changed"], activated
        wait_drbd(vm, "node3", minor3, "Connected", "UpToDate/UpToDate")
        assert read_backing(vm, "node3", name) == checksum
        # only what was written meanwhile crossed the wire (DRBD's bitmap), not the whole disk
        received = int(re.search(r"\bnr:(\d+)", vm.sh("node3", "cat /proc/drbd").stdout).group(1))
        assert PATTERN_MIB * 1024 <= received < 2 * PATTERN_MIB * 1024, f"node3 received {received} KiB"

        # a real split brain: both sides disconnected, both written, connected again; verify
        # names it; the operator keeps node1's data and node3 discards its own
        for node in ("node1", "node3"):
            vm.sh(node, f"drbdadm disconnect {resource}")
        vm.sh("node3", f"drbdadm primary {resource} && dd if=/dev/urandom of=/dev/drbd{minor3} bs=1M count=4 "
                       f"oflag=direct status=none && drbdadm secondary {resource}")
        checksum = write_pattern(vm, "node1", minor1)
        for node in ("node3", "node1"):
            vm.sh(node, f"drbdadm connect {resource}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (proc_drbd(vm, "node1")[minor1]["cs"] == "StandAlone"
                                                   and proc_drbd(vm, "node3")[minor3]["cs"] == "StandAlone"):
            time.sleep(2)
        assert proc_drbd(vm, "node1")[minor1]["cs"] == proc_drbd(vm, "node3")[minor3]["cs"] == "StandAlone", \
            (proc_drbd(vm, "node1"), proc_drbd(vm, "node3"))
        verify = vm.module("cluster_verify", {})
        text = "\n".join(verify["lines"])
        assert not verify["ok"] and "StandAlone on both nodes" in text and resource in text, text
        resolved = module_ok(vm, "instance_replace_disks", {"name": name, "split_brain_survivor": "node1"})
        assert resolved["changed"] and resolved["discarded_on"] == "node3", resolved
        wait_drbd(vm, "node3", minor3, "Connected", "UpToDate/UpToDate")
        assert proc_drbd(vm, "node1")[minor1]["ro"] == "Primary/Secondary"
        assert read_backing(vm, "node3", name) == checksum
        verify = vm.module("cluster_verify", {})
        assert verify["ok"] and verify["error_count"] == 0, verify["lines"]
    finally:
        remove(vm, name)
    for node in vm.node_names:
        drbd_gone(vm, node, name)


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
