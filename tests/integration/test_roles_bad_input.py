"""Bad input to the node bootstrap roles: each is refused with a message that
says what is wrong, before anything on the node changes.

Runs real ansible-playbook processes against a one-node virtual cluster of
this module's own (the roles change the node's network and storage, so the
session's shared cluster is not used)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible_run
import pytest
from conftest import own_cluster
from vcluster import REPO, VCluster

PLAY = REPO / "tests" / "integration" / "playbooks" / "apply_role.yml"
NODE = "node1"
LVM_ENV = ["env", "LVM_SUPPRESS_FD_WARNINGS=1"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[VCluster]:
    with own_cluster("r", nodes=1) as vc:
        yield vc


def apply_role(cluster: VCluster, role: str, **role_vars: Any) -> ansible_run.Run:
    return ansible_run.playbook(cluster.inventory, PLAY, extra_vars={"herd_test_role": role, **role_vars})


def failure(run: ansible_run.Run, task: str) -> str:
    """The message of the failed task whose name (after the role prefix) starts with task."""
    assert run.rc != 0, f"the role did not fail: {run!r}"
    failed = [(t["task"]["name"], t["hosts"][NODE]) for t in run.tasks()
              if NODE in t["hosts"] and t["hosts"][NODE].get("failed")]
    assert failed, f"no failed task: {run!r}"
    name, result = failed[-1]
    assert name.split(" : ")[-1].startswith(task.split("{")[0]), f"{name!r} failed, not {task!r}: {result}"
    return str(result.get("msg"))


def network_state(cluster: VCluster) -> list[Any]:
    out = cluster.exec(NODE, ["ip", "-j", "addr", "show"], check=True).stdout
    return sorted((link["ifname"], link.get("master"), sorted(a["local"] for a in link.get("addr_info", [])))
                  for link in json.loads(out))


def vgs(cluster: VCluster) -> dict[str, list[str]]:
    out = cluster.exec(NODE, [*LVM_ENV, "pvs", "--reportformat", "json", "-o", "pv_name,vg_name"], check=True).stdout
    groups: dict[str, list[str]] = {}
    for pv in json.loads(out)["report"][0]["pv"]:
        groups.setdefault(pv["vg_name"], []).append(pv["pv_name"])
    return {vg: sorted(pvs) for vg, pvs in groups.items()}


@pytest.fixture
def scratch_disk(cluster: VCluster, tmp_path: Path) -> Iterator[Any]:
    """make(filesystem=None) -> a new loop device (visible to the node: /dev is shared)."""
    made: list[str] = []

    def make(filesystem: str | None = None) -> str:
        image = tmp_path / f"disk{len(made)}.img"
        with open(image, "wb") as handle:
            handle.truncate(64 * 2**20)
        if filesystem:
            subprocess.run([f"mkfs.{filesystem}", "-q", str(image)], check=True)
        dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                             text=True).stdout.strip()
        made.append(dev)
        return dev

    yield make
    for dev in made:
        for vg, pvs in vgs(cluster).items():
            if dev in pvs and vg:
                cluster.exec(NODE, [*LVM_ENV, "vgremove", "-f", vg])
        cluster.exec(NODE, [*LVM_ENV, "pvremove", "-ff", "-y", dev])
        cluster.exec(NODE, [*LVM_ENV, "lvm", "lvmdevices", "--yes", "--deldev", dev])
        subprocess.run(["losetup", "-d", dev], check=False)


# ---- node_network

NETWORK_TASK = "Bridges and the secondary network"


def test_bridge_port_that_does_not_exist_is_refused_before_any_change(cluster: VCluster) -> None:
    before = network_state(cluster)
    run = apply_role(cluster, "node_network", node_network_bridges=[{"name": "br0", "port": "eth9"}],
                     node_network_secondary={})
    msg = failure(run, NETWORK_TASK)
    assert "port eth9 does not exist on this node" in msg
    assert "nothing was changed" in msg
    assert network_state(cluster) == before


@pytest.mark.parametrize("vlan", [0, 4095, "100-5000"])
def test_vlan_id_out_of_range_is_refused_before_any_change(cluster: VCluster, vlan: Any) -> None:
    before = network_state(cluster)
    run = apply_role(cluster, "node_network", node_network_secondary={}, node_network_bridges=[
        {"name": "br0", "port": "eth0", "vlan_aware": True, "vlans": [10, vlan]}])
    msg = failure(run, NETWORK_TASK)
    assert "out of range (1-4094)" in msg
    assert network_state(cluster) == before


@pytest.mark.parametrize("address", ["203.0.113.300/24", "not-an-address/24", "10.1/8", "203.0.113.11",
                                     "203.0.113.11/33"])
def test_secondary_address_that_is_not_an_address_is_refused_before_any_change(cluster: VCluster,
                                                                               address: str) -> None:
    before = network_state(cluster)
    run = apply_role(cluster, "node_network", node_network_bridges=[{"name": "br0", "port": "eth0"}],
                     node_network_secondary={"interface": "eth1", "address": address})
    msg = failure(run, NETWORK_TASK)
    assert f"secondary address {address!r}" in msg
    assert network_state(cluster) == before


def test_bridge_address_that_is_not_an_address_is_refused(cluster: VCluster) -> None:
    before = network_state(cluster)
    run = apply_role(cluster, "node_network", node_network_secondary={},
                     node_network_bridges=[{"name": "br0", "port": "eth0", "addresses": ["198.51.100.999/24"]}])
    assert "is not an address" in failure(run, NETWORK_TASK)
    assert network_state(cluster) == before


# ---- node_storage

STORAGE_TASK = "Volume group {}"  # the role names the task after the volume group


def test_pv_device_holding_a_filesystem_is_refused(cluster: VCluster, scratch_disk: Any) -> None:
    disk = scratch_disk(filesystem="ext4")
    run = apply_role(cluster, "node_storage", node_storage_vg_name="herdfs", node_storage_pvs=[disk])
    msg = failure(run, STORAGE_TASK.format("herdfs"))
    assert f"device {disk} holds a ext4 filesystem" in msg
    assert "node_storage_wipe" in msg
    assert "herdfs" not in vgs(cluster)
    blkid = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", disk], capture_output=True, text=True,
                           check=False)
    assert blkid.stdout.strip() == "ext4"


def test_pv_device_that_does_not_exist_is_refused(cluster: VCluster) -> None:
    run = apply_role(cluster, "node_storage", node_storage_vg_name="herdnone", node_storage_pvs=["/dev/herd-no-such"])
    assert "device /dev/herd-no-such for volume group herdnone does not exist" in failure(
        run, STORAGE_TASK.format("herdnone"))


def test_vg_name_existing_on_other_pvs_is_refused(cluster: VCluster, scratch_disk: Any) -> None:
    spare = cluster.node(NODE).spare_disk
    first = apply_role(cluster, "node_storage", node_storage_pvs=[spare])
    assert first.rc == 0, first
    other = scratch_disk()
    run = apply_role(cluster, "node_storage", node_storage_pvs=[other])
    msg = failure(run, STORAGE_TASK.format("gnt"))
    assert f"volume group gnt already exists on {spare}, not on the requested {other}" in msg
    assert "never recreates" in msg
    assert vgs(cluster)["gnt"] == [spare]


def test_storage_role_twice_with_fewer_devices_refuses_to_shrink(cluster: VCluster, scratch_disk: Any) -> None:
    a, b = scratch_disk(), scratch_disk()
    first = apply_role(cluster, "node_storage", node_storage_vg_name="herdshrink", node_storage_pvs=[a, b])
    assert first.rc == 0, first
    assert vgs(cluster)["herdshrink"] == sorted([a, b])
    run = apply_role(cluster, "node_storage", node_storage_vg_name="herdshrink", node_storage_pvs=[a])
    msg = failure(run, STORAGE_TASK.format("herdshrink"))
    assert f"holds physical volume(s) {b} that are not in the requested device list {a}" in msg
    assert "never shrinks" in msg and "pvmove" in msg
    assert vgs(cluster)["herdshrink"] == sorted([a, b])


def test_storage_role_twice_with_the_same_devices_changes_nothing(cluster: VCluster, scratch_disk: Any) -> None:
    a = scratch_disk()
    first = apply_role(cluster, "node_storage", node_storage_vg_name="herdsame", node_storage_pvs=[a])
    assert first.rc == 0, first
    second = apply_role(cluster, "node_storage", node_storage_vg_name="herdsame", node_storage_pvs=[a])
    assert second.rc == 0, second
    assert second.changed(NODE) == 0
