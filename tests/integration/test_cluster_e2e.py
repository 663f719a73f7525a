"""Issue 2 end to end: site.yml on the virtual cluster, idempotence, and the
bad inputs, each with real sshd nodes, real agents and real ansible-playbook runs."""

from __future__ import annotations

import json
from pathlib import Path


import ansible_run

REPO = Path(__file__).resolve().parents[2]


def read_config(vcluster, node="node1"):
    out = vcluster.exec(node, ["cat", "/var/lib/herd/config.json"], check=True).stdout
    return json.loads(out)


def test_site_initialises_a_three_node_cluster_and_prints_the_node_table(site, vcluster):
    table = site.result("Nodes (gnt-node list)", "node1")["msg"]
    assert table[0].split() == ["Node", "Role", "DTotal", "DFree", "MTotal", "MFree", "CPUs", "Pinst", "Sinst"]
    assert [line.split()[:2] for line in table[1:]] == [["node1", "M"], ["node2", "C"], ["node3", "C"]]
    config = read_config(vcluster)
    assert sorted(config["nodes"]) == ["node1", "node2", "node3"]


def test_master_candidates_hold_the_current_config_and_every_node_its_ssconf(site, vcluster):
    serial = read_config(vcluster)["serial_no"]
    for node in ("node2", "node3"):
        assert read_config(vcluster, node)["serial_no"] == serial
        ssconf = json.loads(vcluster.exec(node, ["cat", "/var/lib/herd/ssconf.json"], check=True).stdout)
        assert ssconf["master_node"] == "node1"
    mode = vcluster.exec("node1", ["stat", "-c", "%a", "/var/lib/herd/config.json"], check=True).stdout.strip()
    assert mode == "600"


def test_second_site_run_changes_nothing_in_the_cluster_tasks(site, inventory):
    run = ansible_run.playbook(inventory, REPO / "playbooks" / "site.yml")
    assert run.rc == 0, run
    for task in run.tasks():
        if task["task"]["name"].startswith(("Cluster ", "Add node")):
            for host, result in task["hosts"].items():
                changed = result.get("changed") or any(r.get("changed") for r in result.get("results", []))
                assert not changed, (task["task"]["name"], host, result)


def test_cluster_verify_is_clean(site, inventory):
    result = ansible_run.module(inventory, "node1", "cluster_verify", {})
    assert result["ok"], result["lines"]


def test_check_mode_modify_reports_diff_and_writes_nothing(site, inventory, vcluster):
    serial = read_config(vcluster)["serial_no"]
    result = ansible_run.module(inventory, "node1", "cluster", {"name": "herd-vcluster", "mac_prefix": "aa:bb:cc"},
                                check=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["mac_prefix"] == "aa:00:00" and result["diff"]["after"]["mac_prefix"] == "aa:bb:cc"
    assert read_config(vcluster)["serial_no"] == serial


def test_node_add_of_an_unreachable_host_names_it_and_changes_nothing(site, inventory, vcluster):
    before = read_config(vcluster)
    key = vcluster.exec("node2", ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.strip() or \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuuE1bBgMnqwNmJAYhX1VEtfu0mJmgfd+0xGxWt3kDV"
    address = vcluster.primary_ip("node1").rsplit(".", 1)[0] + ".99"
    result = ansible_run.module(inventory, "node1", "node", {"name": "node9", "primary_ip": address,
                                                             "ssh_host_key": key, "rpc_timeout": 10})
    assert result.get("failed"), result
    assert "node add node9" in result["msg"] and address in result["msg"] and "config is unchanged" in result["msg"]
    assert read_config(vcluster) == before


def test_node_add_of_a_present_name_with_another_address_is_refused(site, inventory, vcluster):
    result = ansible_run.module(inventory, "node1", "node", {"name": "node2", "primary_ip": vcluster.primary_ip("node3")})
    assert result.get("failed") and "changing primary_ip" in result["msg"], result


def test_removing_the_master_is_refused(site, inventory):
    result = ansible_run.module(inventory, "node1", "node", {"name": "node1", "state": "absent"})
    assert result.get("failed") and "node1 is the master" in result["msg"], result


def test_a_module_on_a_non_master_names_the_master(site, inventory):
    result = ansible_run.module(inventory, "node2", "node_info", {})
    assert result.get("failed") and "run this on the master, node1" in result["msg"], result


def test_lock_held_by_another_process_makes_a_clear_error(site, inventory, vcluster):
    holder = ("import fcntl,os,time\n"
              "os.makedirs('/var/lib/herd/locks', exist_ok=True)\n"
              "fd = os.open('/var/lib/herd/locks/node.node3', os.O_RDWR | os.O_CREAT, 0o600)\n"
              "fcntl.flock(fd, fcntl.LOCK_EX)\n"
              "os.ftruncate(fd, 0); os.write(fd, b'job 4242 (node_modify node3)')\n"
              "print('locked', flush=True); time.sleep(30)\n")
    import subprocess
    proc = subprocess.Popen(["nsenter", "-t", str(vcluster.sshd_pid("node1")), "-n", "-m", "-u", "--",
                             "python3", "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        result = ansible_run.module(inventory, "node1", "node", {"name": "node3", "drained": True, "lock_timeout": 2})
        assert result.get("failed"), result
        assert "could not take the node:node3 lock within 2 s: held by job 4242 (node_modify node3)" in result["msg"]
    finally:
        proc.kill()
        proc.wait()


def test_concurrent_node_operations_both_land_and_the_config_stays_valid(site, inventory, vcluster):
    serial = read_config(vcluster)["serial_no"]
    runs = [ansible_run.start_module(inventory, "node1", "node", {"name": name, "tags": ["concurrent"]})
            for name in ("node2", "node3")]
    results = [ansible_run.finish_module(proc, path, "node1") for proc, path in runs]
    assert all(r.get("changed") and not r.get("failed") for r in results), results
    config = read_config(vcluster)
    assert config["nodes"]["node2"]["tags"] == ["concurrent"] and config["nodes"]["node3"]["tags"] == ["concurrent"]
    assert config["serial_no"] == serial + 2
    for proc, path in [ansible_run.start_module(inventory, "node1", "node", {"name": n, "tags": []})
                       for n in ("node2", "node3")]:
        ansible_run.finish_module(proc, path, "node1")


def test_corrupt_config_is_a_clear_error_and_is_never_overwritten(site, inventory, vcluster):
    path = "/var/lib/herd/config.json"
    good = vcluster.exec("node1", ["cat", path], check=True).stdout
    truncated = good[: len(good) // 3]
    vcluster.exec("node1", ["python3", "-c", f"open({path!r}, 'w').write({truncated!r})"], check=True)
    try:
        result = ansible_run.module(inventory, "node1", "node", {"name": "node2", "drained": True})
        assert result.get("failed") and "is corrupt (line" in result["msg"], result
        assert vcluster.exec("node1", ["cat", path]).stdout == truncated
    finally:
        vcluster.exec("node1", ["python3", "-c", f"open({path!r}, 'w').write({good!r})"], check=True)


def test_agent_of_another_version_is_refused_and_named(site, inventory, vcluster):
    version_file = "/usr/local/lib/herd/herd/version.py"
    original = vcluster.exec("node3", ["cat", version_file], check=True).stdout
    vcluster.exec("node3", ["python3", "-c", f"open({version_file!r}, 'w').write('VERSION = \"0.0.1\"\\n"
                            "AGENT_REINSTALL_HINT = \"x\"\\n')"], check=True)
    try:
        result = ansible_run.module(inventory, "node1", "cluster_verify", {})
        bad = [f for f in result["findings"] if f["object"] == "node3"]
        assert bad and bad[0]["code"] == "ENODEVERSION", result["findings"]
        assert "0.0.1" in bad[0]["message"] and "herd.cluster.node_base" in bad[0]["message"]
    finally:
        vcluster.exec("node3", ["python3", "-c", f"open({version_file!r}, 'w').write({original!r})"], check=True)


def test_init_on_a_node_of_another_cluster_is_refused(site, inventory, vcluster):
    result = ansible_run.module(inventory, "node3", "cluster", {"name": "other-cluster",
                                                                "primary_ip": vcluster.primary_ip("node3")})
    assert result.get("failed"), result
    assert "node3 already belongs to cluster 'herd-vcluster' (master node1)" in result["msg"]


def test_job_info_lists_the_jobs_with_steps(site, inventory):
    result = ansible_run.module(inventory, "node1", "job_info", {"opcode": "node_add"})
    assert [job["status"] for job in result["jobs"]] == ["success", "success"]
    assert [s["name"] for s in result["jobs"][0]["steps"]] == ["commit config"]
