"""herd.cluster.network end to end: a network with a pool, two real ansible-playbook processes
creating instances from it at the same time (never the same address), instance_info showing the
address, removal refused while in use, addresses freed by instance removal.

Fake-hypervisor instances: the addresses live in the config only, no traffic is sent."""

from __future__ import annotations

import json

import ansible_run

MASTER = "node1"
NET = {"name": "it-pool", "subnet": "10.213.0.0/28", "gateway": "10.213.0.1", "reserved": ["10.213.0.2"],
       "groups": [{"name": "default", "mode": "bridged", "link": "br0"}]}


def create_args(name: str) -> dict:
    return {"name": name, "state": "running", "hypervisor": "fake", "disk_template": "diskless",
            "memory": "128M", "nics": [{"network": "it-pool", "ip": "pool"}]}


def allocated(vcluster) -> dict:
    config = json.loads(vcluster.exec(MASTER, ["cat", "/var/lib/herd/config.json"], check=True).stdout)
    return config["networks"]["it-pool"]["allocated"] if "it-pool" in config["networks"] else None


def test_two_parallel_creations_get_different_pool_addresses(site, inventory, vcluster):
    plan = ansible_run.module(inventory, MASTER, "network", NET, check=True, diff=True)
    assert plan["changed"] and plan["diff"]["after"]["subnet"] == "10.213.0.0/28", plan.get("msg")
    assert allocated(vcluster) is None
    made = ansible_run.module(inventory, MASTER, "network", NET)
    assert made["changed"] and not made.get("failed"), made.get("msg")
    assert ansible_run.module(inventory, MASTER, "network", NET)["changed"] is False

    names = ["it-pool-a", "it-pool-b"]
    try:
        started = [ansible_run.start_module(inventory, MASTER, "instance", create_args(n)) for n in names]
        results = [ansible_run.finish_module(proc, path, MASTER) for proc, path in started]
        for result in results:
            assert not result.get("failed"), result.get("msg")
        ips = [r["instance"]["nics"][0]["ip"] for r in results]
        assert len(set(ips)) == 2 and all(ip.startswith("10.213.0.") for ip in ips), ips
        assert not {"10.213.0.1", "10.213.0.2"} & set(ips)
        assert allocated(vcluster) == dict(zip(ips, names))

        rows = ansible_run.module(inventory, MASTER, "instance_info", {"names": names})["instances"]
        assert {r["name"]: r["nics"][0]["ip"] for r in rows} == dict(zip(names, ips))

        again = ansible_run.module(inventory, MASTER, "instance", create_args("it-pool-a"))
        assert again["changed"] is False, again.get("msg")

        refused = ansible_run.module(inventory, MASTER, "network", {"name": "it-pool", "state": "absent"})
        assert refused.get("failed") and "still used by instances" in refused["msg"]
    finally:
        for name in names:
            ansible_run.module(inventory, MASTER, "instance", {"name": name, "state": "absent"})
    assert allocated(vcluster) == {}
    gone = ansible_run.module(inventory, MASTER, "network", {"name": "it-pool", "state": "absent"})
    assert gone["changed"] and not gone.get("failed"), gone.get("msg")
