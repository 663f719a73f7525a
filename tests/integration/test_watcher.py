"""playbooks/watcher.yml: a crashed instance (its fake hypervisor state removed on its node) is
started again; an instance the operator stopped is left alone; the disk re-activation and the
auto-repair steps run over the real cluster (the namespace nodes have no DRBD or device-mapper,
so there is nothing to activate or repair here: the DRBD cases are the unit tests'); a second
run does nothing."""

from __future__ import annotations

from pathlib import Path

import ansible_run

REPO = Path(__file__).resolve().parents[2]
MASTER = "node1"


def status(inventory, names):
    rows = ansible_run.module(inventory, MASTER, "instance_info", {"names": names})["instances"]
    return {r["name"]: r["status"] for r in rows}


def make(inventory, name, state, template="diskless"):
    result = ansible_run.module(inventory, MASTER, "instance", {
        "name": name, "state": state, "hypervisor": "fake", "disk_template": template, "memory": "128M",
        "primary_node": "node2", **({"disks": ["64M"]} if template != "diskless" else {})})
    assert not result.get("failed"), result.get("msg")


def test_watcher_restarts_a_crashed_instance_and_leaves_a_stopped_one_alone(site, inventory, vcluster):
    names = ["wt-crashed", "wt-stopped"]
    try:
        make(inventory, "wt-crashed", "running", template="file")
        make(inventory, "wt-stopped", "stopped")
        disks = ansible_run.module(inventory, MASTER, "instance_disks", {"name": "wt-crashed", "state": "active"})
        assert not disks.get("failed") and disks["changed"] is False and disks["actions"] == [], disks
        vcluster.exec("node2", ["rm", "-f", "/var/lib/herd/fake/wt-crashed.json"], check=True)
        assert status(inventory, names) == {"wt-crashed": "ERROR_down", "wt-stopped": "ADMIN_down"}

        run = ansible_run.playbook(inventory, REPO / "playbooks" / "watcher.yml")
        assert run.rc == 0, run
        restarted = [r["item"]["name"] for r in run.result("Restart the instances that crashed", MASTER)["results"]]
        assert restarted == ["wt-crashed"]
        activated = run.result("Re-activate the disks of the instances that should run", MASTER)
        assert not activated.get("failed") and activated["failures"] == [], activated
        repaired = run.result("Auto-repair what the operator opted into", MASTER)
        assert not repaired.get("failed") and repaired["instances"] == [] and repaired["repaired"] == [], repaired
        assert status(inventory, names) == {"wt-crashed": "running", "wt-stopped": "ADMIN_down"}

        again = ansible_run.playbook(inventory, REPO / "playbooks" / "watcher.yml")
        assert again.rc == 0, again
        assert again.result("Restart the instances that crashed", MASTER).get("results", []) == []
    finally:
        for name in names:
            ansible_run.module(inventory, MASTER, "instance", {"name": name, "state": "absent"})


def test_a_paused_watcher_leaves_a_crashed_instance_down_until_the_pause_ends(site, inventory, vcluster):
    name = "wt-paused"
    try:
        make(inventory, name, "running", template="file")
        paused = ansible_run.module(inventory, MASTER, "watcher", {"state": "paused", "duration": "1h"})
        assert not paused.get("failed") and paused["changed"] and paused["paused"], paused
        again = ansible_run.module(inventory, MASTER, "watcher", {"state": "paused", "duration": "1h"})
        assert not again.get("failed") and again["changed"] is False, again
        vcluster.exec("node2", ["rm", "-f", f"/var/lib/herd/fake/{name}.json"], check=True)
        assert status(inventory, [name]) == {name: "ERROR_down"}

        run = ansible_run.playbook(inventory, REPO / "playbooks" / "watcher.yml")
        assert run.rc == 0, run
        assert "paused" in run.result("Paused by an operator", MASTER)["msg"]
        names = [t["task"]["name"] for t in run.tasks()]
        assert "Restart the instances that crashed" not in names, names
        assert status(inventory, [name]) == {name: "ERROR_down"}

        ended = ansible_run.module(inventory, MASTER, "watcher", {"state": "running"})
        assert not ended.get("failed") and ended["changed"] and not ended["paused"], ended
        run = ansible_run.playbook(inventory, REPO / "playbooks" / "watcher.yml")
        assert run.rc == 0, run
        restarted = [r["item"]["name"] for r in run.result("Restart the instances that crashed", MASTER)["results"]]
        assert restarted == [name]
        assert status(inventory, [name]) == {name: "running"}
    finally:
        ansible_run.module(inventory, MASTER, "watcher", {"state": "running"})
        ansible_run.module(inventory, MASTER, "instance", {"name": name, "state": "absent"})
