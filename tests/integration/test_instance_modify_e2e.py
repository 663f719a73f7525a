"""Disk and NIC add/remove on an existing instance, end to end through herd.cluster.instance on
the namespace cluster: a plain disk (real lvm2 metadata on the node's volume group) and a NIC
with a pool address; check mode and --diff first, an idempotent second run, removal of the disk
with remove_disks: true (its refusal without it is unit-tested), the address freed with its NIC.

Fake hypervisor and a stopped instance: LVs cannot be activated here (no device-mapper on the namespace nodes), which the
disk add/remove does not need."""

from __future__ import annotations

import json

import ansible_run

MASTER = "node1"
NAME = "it-modify"
NET = {"name": "it-modify", "subnet": "10.214.0.0/29", "gateway": "10.214.0.1",
       "groups": [{"name": "default", "mode": "bridged", "link": "br0"}]}


def declared(disks, nics, **extra) -> dict:
    return {"name": NAME, "state": "stopped", "hypervisor": "fake", "disk_template": "plain",
            "primary_node": MASTER, "memory": "128M", "disks": disks, "nics": nics, **extra}


def lvs(vcluster) -> list[str]:
    """The LVs of the instance on its node, from lvm2 itself (the herd instance tag)."""
    out = vcluster.exec(MASTER, ["lvs", "--reportformat", "json", "-o", "lv_name,lv_tags", "gnt"], check=True).stdout
    return sorted(row["lv_name"] for row in json.loads(out)["report"][0]["lv"]
                  if f"originstname+{NAME}" in row["lv_tags"].split(","))


def allocated(vcluster) -> dict:
    config = json.loads(vcluster.exec(MASTER, ["cat", "/var/lib/herd/config.json"], check=True).stdout)
    return config["networks"]["it-modify"]["allocated"]


def test_a_plain_disk_and_a_pool_nic_are_added_and_removed(site, inventory, vcluster):
    made = ansible_run.module(inventory, MASTER, "network", NET)
    assert not made.get("failed"), made.get("msg")
    bridge = {"link": "br0"}
    pool = {"network": "it-modify", "ip": "pool"}
    try:
        created = ansible_run.module(inventory, MASTER, "instance", declared(["64M"], [bridge]))
        assert created["changed"] and not created.get("failed"), created.get("msg")
        first_lv = lvs(vcluster)
        assert len(first_lv) == 1
        mac = created["instance"]["nics"][0]["mac"]

        grown = declared(["64M", "32M"], [bridge, pool])
        plan = ansible_run.module(inventory, MASTER, "instance", grown, check=True, diff=True)
        assert plan["changed"] and "add disk 1 of 32 MiB" in plan["actions"], plan.get("msg")
        assert [d["size"] for d in plan["diff"]["after"]["disks"]] == [64, 32]
        assert lvs(vcluster) == first_lv and allocated(vcluster) == {}

        added = ansible_run.module(inventory, MASTER, "instance", grown)
        assert added["changed"] and not added.get("failed"), added.get("msg")
        assert len(lvs(vcluster)) == 2
        assert [n["mac"] for n in added["instance"]["nics"]][0] == mac
        ip = added["instance"]["nics"][1]["ip"]
        assert ip == "10.214.0.2" and allocated(vcluster) == {ip: NAME}
        assert ansible_run.module(inventory, MASTER, "instance", grown)["changed"] is False

        shrunk = ansible_run.module(inventory, MASTER, "instance",
                                    declared(["64M"], [bridge], remove_disks=True), diff=True)
        assert shrunk["changed"] and not shrunk.get("failed"), shrunk.get("msg")
        assert "remove disk 1 (32 MiB) with its data" in shrunk["actions"]
        assert lvs(vcluster) == first_lv and allocated(vcluster) == {}
        assert [n["mac"] for n in shrunk["instance"]["nics"]] == [mac]
    finally:
        ansible_run.module(inventory, MASTER, "instance", {"name": NAME, "state": "absent"})
        ansible_run.module(inventory, MASTER, "network", {"name": "it-modify", "state": "absent"})
    assert lvs(vcluster) == []
