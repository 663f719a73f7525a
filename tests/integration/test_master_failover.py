"""herd.cluster.master_failover end to end on a virtual cluster of its own (the master moves, so
the session's shared cluster is left alone): the master's cables are pulled, a candidate takes
over with the floating master IP, an instance is created and migrated under the new master, the
old master comes back, refuses to act as master, is re-synchronised and cluster_verify is clean."""

from __future__ import annotations

import ipaddress
import json

import yaml

import ansible_run
from conftest import own_cluster
from vcluster import REPO


def cluster_vars(master_ip: str) -> dict:
    group_vars = yaml.safe_load((REPO / "inventories" / "vcluster" / "group_vars" / "herd_nodes.yml").read_text())
    params = dict(group_vars["herd_cluster"])
    params.update(master_ip=master_ip, master_netdev="br0")
    return params


def addresses(vc, node: str) -> list[str]:
    out = vc.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "br0"], check=True).stdout
    return [word.split("/")[0] for line in out.splitlines() for word in line.split() if "/" in word]


def node_file(vc, node: str, name: str) -> dict:
    return json.loads(vc.exec(node, ["cat", f"/var/lib/herd/{name}"], check=True).stdout)


def test_a_candidate_takes_over_from_a_dead_master_and_the_old_master_is_resynchronised():
    with own_cluster("m", nodes=3) as vc:
        inventory = vc.inventory
        network = ipaddress.ip_network(vc.primary_network)
        master_ip = str(network.network_address + 200)
        site = ansible_run.playbook(inventory, REPO / "playbooks" / "site.yml",
                                    extra_vars={"herd_cluster": cluster_vars(master_ip)})
        assert site.rc == 0, site
        assert master_ip in addresses(vc, "node1")

        vc.link_down("node1")
        try:
            plan = ansible_run.module(inventory, "node2", "master_failover", {}, check=True, diff=True)
            assert plan["changed"] and not plan.get("failed"), plan.get("msg")
            assert plan["diff"]["after"]["master_node"] == "node2"
            assert node_file(vc, "node2", "config.json")["cluster"]["master_node"] == "node1"

            done = ansible_run.module(inventory, "node2", "master_failover", {})
            assert done["changed"] and not done.get("failed"), done.get("msg")
            assert done["old_master"] == "node1" and done["unreachable_nodes"] == ["node1"]
            assert node_file(vc, "node3", "ssconf.json")["master_node"] == "node2"
            assert master_ip in addresses(vc, "node2")

            again = ansible_run.module(inventory, "node2", "master_failover", {})
            assert again["changed"] is False and not again.get("failed"), again.get("msg")

            created = ansible_run.module(inventory, "node2", "instance", {
                "name": "mf-inst1", "state": "running", "hypervisor": "fake", "disk_template": "diskless",
                "memory": "128M", "primary_node": "node2"})
            assert not created.get("failed"), created.get("msg")
            moved = ansible_run.module(inventory, "node2", "instance_migrate",
                                       {"name": "mf-inst1", "target_node": "node3"})
            assert not moved.get("failed"), moved.get("msg")
        finally:
            vc.link_up("node1")

        stale = ansible_run.module(inventory, "node1", "cluster_info", {})
        assert stale.get("failed") and "no longer the master" in stale["msg"], stale

        resync = ansible_run.module(inventory, "node2", "master_failover", {})
        assert resync["changed"] and resync["resynced"] == ["node1"], resync.get("msg")
        assert (node_file(vc, "node1", "config.json")["serial_no"]
                == node_file(vc, "node2", "config.json")["serial_no"])
        assert node_file(vc, "node1", "ssconf.json")["master_node"] == "node2"
        assert master_ip not in addresses(vc, "node1") and master_ip in addresses(vc, "node2")

        verify = ansible_run.module(inventory, "node2", "cluster_verify", {})
        assert verify["error_count"] == 0, verify
        removed = ansible_run.module(inventory, "node2", "instance", {"name": "mf-inst1", "state": "absent"})
        assert not removed.get("failed"), removed.get("msg")
