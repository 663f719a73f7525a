"""playbooks/watcher.yml: a crashed instance (its fake hypervisor state removed on its node) is
started again; an instance the operator stopped is left alone; a second run does nothing."""

from __future__ import annotations

from pathlib import Path

import ansible_run

REPO = Path(__file__).resolve().parents[2]
MASTER = "node1"


def status(inventory, names):
    rows = ansible_run.module(inventory, MASTER, "instance_info", {"names": names})["instances"]
    return {r["name"]: r["status"] for r in rows}


def make(inventory, name, state):
    result = ansible_run.module(inventory, MASTER, "instance", {
        "name": name, "state": state, "hypervisor": "fake", "disk_template": "diskless", "memory": "128M",
        "primary_node": "node2"})
    assert not result.get("failed"), result.get("msg")


def test_watcher_restarts_a_crashed_instance_and_leaves_a_stopped_one_alone(site, inventory, vcluster):
    names = ["wt-crashed", "wt-stopped"]
    try:
        make(inventory, "wt-crashed", "running")
        make(inventory, "wt-stopped", "stopped")
        vcluster.exec("node2", ["rm", "-f", "/var/lib/herd/fake/wt-crashed.json"], check=True)
        assert status(inventory, names) == {"wt-crashed": "ERROR_down", "wt-stopped": "ADMIN_down"}

        run = ansible_run.playbook(inventory, REPO / "playbooks" / "watcher.yml")
        assert run.rc == 0, run
        restarted = [r["item"]["name"] for r in run.result("Restart the instances that crashed", MASTER)["results"]]
        assert restarted == ["wt-crashed"]
        assert status(inventory, names) == {"wt-crashed": "running", "wt-stopped": "ADMIN_down"}

        again = ansible_run.playbook(inventory, REPO / "playbooks" / "watcher.yml")
        assert again.rc == 0, again
        assert again.result("Restart the instances that crashed", MASTER).get("results", []) == []
    finally:
        for name in names:
            ansible_run.module(inventory, MASTER, "instance", {"name": name, "state": "absent"})
