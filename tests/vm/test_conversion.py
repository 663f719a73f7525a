"""Disk template conversion, LV adoption and two volume groups on real LVM and DRBD 8.4.

The session's VM nodes (the README's walk-through), each with a third empty disk (/dev/vdc)
for a second volume group; in the README's test command (marker ``vm``).
Nothing is mocked: ``lvs``, ``/proc/drbd``, the resource files and the data's checksums on
the nodes are what is checked. The tests run in file order, before the other VM tests; each leaves no instance, LV or
volume group behind.
"""

from __future__ import annotations

import json

import pytest
from vmnodes import REPO, VG, VMCluster, ansible_run, drbd_resource_files, instance_lvs, lvs, proc_drbd

pytestmark = pytest.mark.vm

MIB = 16
HDD = "hdd"


def module_ok(vm: VMCluster, name: str, args: dict) -> dict:
    result = vm.module(name, args)
    assert not result.get("failed"), result.get("msg") or result
    return result


def instance(vm: VMCluster, name: str, **spec: object) -> dict:
    return module_ok(vm, "instance", {"name": name, "hypervisor": "fake", "memory": "128M", "vcpus": 1, **spec})


def remove(vm: VMCluster, name: str) -> None:
    vm.module("instance", {"name": name, "state": "absent", "shutdown_timeout": 5})


def write_pattern(vm: VMCluster, node: str, device: str) -> str:
    out = vm.sh(node, f"set -e; dd if=/dev/urandom of=/root/pattern bs=1M count={MIB} status=none; "
                      f"dd if=/root/pattern of={device} bs=1M oflag=direct status=none; "
                      "sha256sum < /root/pattern").stdout
    return out.split()[0]


def checksum(vm: VMCluster, node: str, device: str) -> str:
    return vm.sh(node, f"dd if={device} bs=1M count={MIB} iflag=direct status=none | sha256sum").stdout.split()[0]


def lv_names(vm: VMCluster, node: str, name: str) -> list[str]:
    return sorted(lv["lv_name"] for lv in instance_lvs(vm, node, name))


def test_plain_to_drbd_and_back_keeps_the_data(vm, site):
    name = "conv1.example.org"
    made = instance(vm, name, state="stopped", disk_template="plain", disks=["128M"], primary_node="node1")
    try:
        uuid = made["instance"]["disks"][0]["uuid"]
        plain_lv = f"/dev/{VG}/{uuid}.disk0"
        written = write_pattern(vm, "node1", plain_lv)

        running = vm.module("instance", {"name": name, "state": "running", "disk_template": "drbd"})
        assert running.get("failed") and "needs the instance stopped" in running["msg"], running

        planned = ansible_run.module(vm.inventory, "node1", "instance",
                                     {"name": name, "state": "stopped", "disk_template": "drbd",
                                      "secondary_node": "node2"}, check=True, diff=True)
        assert planned["changed"] and "would be converted to drbd" in planned["msg"], planned
        assert lv_names(vm, "node1", name) == [f"{uuid}.disk0"] and lv_names(vm, "node2", name) == []

        converted = instance(vm, name, state="stopped", disk_template="drbd", secondary_node="node2")
        assert converted["changed"] and converted["instance"]["disk_template"] == "drbd", converted
        for node in ("node1", "node2"):
            assert lv_names(vm, node, name) == [f"{uuid}.disk0_data", f"{uuid}.disk0_meta"], node
            states = list(proc_drbd(vm, node).values())
            assert len(states) == 1, (node, states)
            state = states[0]
            assert state["cs"] == "Connected" and state["ds"] == "UpToDate/UpToDate", (node, state)
            assert checksum(vm, node, f"/dev/{VG}/{uuid}.disk0_data") == written, node
        again = vm.module("instance", {"name": name, "state": "stopped", "disk_template": "drbd"})
        assert not again["changed"], again

        back = instance(vm, name, state="stopped", disk_template="plain")
        assert back["changed"] and back["instance"]["secondary_node"] is None, back
        assert lv_names(vm, "node1", name) == [f"{uuid}.disk0"]
        assert checksum(vm, "node1", plain_lv) == written
        for node in ("node1", "node2"):
            assert proc_drbd(vm, node) == {}, (node, vm.sh(node, "cat /proc/drbd").stdout)
            assert drbd_resource_files(vm, node) == [], node
        assert lv_names(vm, "node2", name) == []
        verify = vm.module("cluster_verify", {})
        assert verify["error_count"] == 0, verify["lines"]
    finally:
        remove(vm, name)
    assert lv_names(vm, "node1", name) == []


def test_an_lv_made_with_lvcreate_is_adopted_unless_it_is_open(vm, site):
    name = "adopt1.example.org"
    vm.sh("node1", f"lvcreate -q -Wn -L 64m -n olddata {VG}")
    try:
        written = write_pattern(vm, "node1", f"/dev/{VG}/olddata")
        vm.sh("node1", f"setsid sh -c 'exec sleep 600 < /dev/{VG}/olddata' > /dev/null 2>&1 &")
        spec = {"name": name, "state": "stopped", "hypervisor": "fake", "memory": "128M", "disk_template": "plain",
                "primary_node": "node1", "disks": [{"adopt": "olddata", "vg": VG}]}
        refused = vm.module("instance", spec)
        assert refused.get("failed") and f"cannot adopt {VG}/olddata: it is open" in refused["msg"], refused
        vm.sh("node1", "pkill -x -f 'sleep 600'")
        adopted = module_ok(vm, "instance", spec)
        assert adopted["changed"] and adopted["instance"]["disks"][0]["size"] == 64, adopted
        (lv,) = [x for x in lvs(vm, "node1") if x["lv_name"] == "olddata"]
        assert sorted(lv["lv_tags"].split(",")) == ["herd", f"originstname+{name}"], lv
        assert checksum(vm, "node1", f"/dev/{VG}/olddata") == written
        assert not vm.module("instance", spec)["changed"]
        other = vm.module("instance", dict(spec, name="adopt2.example.org"))
        assert other.get("failed") and "adopt1.example.org" in other["msg"], other
    finally:
        remove(vm, name)
        vm.sh("node1", f"lvremove -f {VG}/olddata 2>/dev/null || true")
    assert "olddata" not in [x["lv_name"] for x in lvs(vm, "node1")]


def test_two_disks_in_two_volume_groups(vm, site):
    play = [{"hosts": "herd_nodes", "gather_facts": True,
             "roles": [{"role": "herd.cluster.node_storage"}]}]
    path = REPO / ".build" / f"two-vgs-{vm.name}.yml"
    path.write_text(json.dumps(play))
    try:
        run = ansible_run.playbook(vm.inventory, path, extra_vars={
            "herd_extra_vgs": [{"name": HDD, "devices": [vm.node("node1")["extra_disk"]]}]}, timeout=1200)
    finally:
        path.unlink()
    assert run.rc == 0, run.proc.stdout[-4000:]
    for node in vm.node_names:
        assert vm.sh(node, f"vgs --noheadings -o vg_name {HDD}").stdout.strip() == HDD, node
        assert f"r|^/dev/{HDD}/|" in vm.sh(node, "lvmconfig devices/global_filter").stdout, node
    name = "twovg1.example.org"
    made = instance(vm, name, state="stopped", disk_template="plain", primary_node="node2",
                    disks=[{"size": "64M"}, {"size": "64M", "vg": HDD}])
    try:
        disks = made["instance"]["disks"]
        out = json.loads(vm.sh("node2", "lvs --reportformat json --units m --nosuffix -o vg_name,lv_name,lv_size").stdout)
        where = {lv["lv_name"]: (lv["vg_name"], float(lv["lv_size"])) for lv in out["report"][0]["lv"]}
        assert where[f"{disks[0]['uuid']}.disk0"] == (VG, 64.0), where
        assert where[f"{disks[1]['uuid']}.disk1"] == (HDD, 64.0), where
        instance(vm, name, state="stopped", disks=[{"size": "64M"}, {"size": "128M", "vg": HDD}])
        size = vm.sh("node2", f"lvs --noheadings --units m --nosuffix -o lv_size {HDD}/{disks[1]['uuid']}.disk1")
        assert float(size.stdout) == 128.0, size.stdout
        verify = vm.module("cluster_verify", {})
        assert verify["error_count"] == 0, verify["lines"]
    finally:
        remove(vm, name)
        left = vm.sh("node2", f"lvs --noheadings -o lv_name {HDD}", check=False).stdout.strip()
        # the later tests see the walk-through's storage: one volume group, on /dev/vdb
        for node in vm.node_names:
            vm.sh(node, f"vgremove -q {HDD}; pvremove -q {vm.node(node)['extra_disk']}", check=False)
    assert left == "", left
