"""The herd.cluster.herd inventory plugin against the session's virtual cluster: real SSH to the nodes with
the cluster's known_hosts, real ansible-inventory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import ansible_run
import yaml


def source(tmp_path: Path, vcluster, hosts: list[str], known_hosts: Path | None = None, **extra) -> Path:
    path = tmp_path / "cluster.herd.yml"
    path.write_text(yaml.safe_dump(dict({
        "plugin": "herd.cluster.herd",
        "hosts": hosts,
        "known_hosts_file": str(known_hosts or vcluster.known_hosts),
        "private_key_file": str(vcluster.private_key),
    }, **extra)))
    return path


def inventory_list(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ansible_run.VENV_BIN / "ansible-inventory"), "-i", str(path), "--list"],
                          capture_output=True, text=True, env=ansible_run.env(), cwd=ansible_run.REPO,
                          timeout=300, check=False)


def listed(path: Path) -> dict:
    proc = inventory_list(path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["_meta"]["hostvars"], proc.stderr
    return data


def members(data: dict, group: str) -> list[str]:
    return sorted(data.get(group, {}).get("hosts", []))


def test_nodes_come_grouped_by_role_read_through_a_candidate(site, vcluster, tmp_path):
    names = sorted(n.name for n in vcluster.nodes)
    # ask node2 (a candidate): the plugin follows the config to the master
    data = listed(source(tmp_path, vcluster, [vcluster.nodes[1].primary_ip],
                         keyed_groups=[{"key": "herd_role", "prefix": "role"}],
                         compose={"herd_is_node": "herd_kind == 'node'"}))
    assert members(data, "herd_nodes") == names
    assert members(data, "herd_master") == [names[0]]
    assert members(data, "role_master") == [names[0]]
    assert set(members(data, "herd_master_candidates")) <= set(names)
    hostvars = data["_meta"]["hostvars"]
    for node in vcluster.nodes:
        assert hostvars[node.name]["ansible_host"] == node.primary_ip
        assert hostvars[node.name]["herd_is_node"] is True


def test_an_unknown_host_key_is_refused(site, vcluster, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    proc = inventory_list(source(tmp_path, vcluster, [vcluster.nodes[0].primary_ip], known_hosts=empty))
    assert "herd inventory: no cluster configuration could be read" in proc.stderr
    assert vcluster.nodes[0].primary_ip in proc.stderr


def test_a_cached_inventory_is_used_without_reaching_the_cluster(site, vcluster, tmp_path):
    cache = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache"),
             "cache_timeout": 3600}
    first = listed(source(tmp_path, vcluster, [vcluster.nodes[0].primary_ip], **cache))
    # nothing listens on loopback port 9 here: only the cache can answer
    again = listed(source(tmp_path, vcluster, ["127.0.0.1"], port=9, connect_timeout=2, **cache))
    assert members(again, "herd_nodes") == members(first, "herd_nodes")
