"""module_defaults for the collection's action groups (meta/runtime.yml), through real ansible-playbook runs
on localhost: a default for group/herd.cluster.master reaches every master-side module and no node-side one."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_play(tmp_path, module_defaults, tasks):
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "module_defaults": module_defaults, "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="herd_json",
               ANSIBLE_CALLBACK_PLUGINS=str(REPO / "tests" / "integration" / "callback_plugins"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([BIN / "ansible-playbook", "-i", "localhost,", path], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300, check=False)
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    return {task["task"]["name"]: task["hosts"]["localhost"] for play in data["plays"] for task in play["tasks"]}


def test_a_master_group_default_reaches_a_master_module(tmp_path):
    results = run_play(tmp_path, {"group/herd.cluster.master": {"lock_timeout": "soon"}},
                       [{"name": "info", "herd.cluster.cluster_info": {}, "ignore_errors": True}])
    assert results["info"]["failed"]
    assert "lock_timeout" in results["info"]["msg"], results["info"]["msg"]


def test_a_master_group_default_leaves_the_node_modules_alone(tmp_path):
    results = run_play(tmp_path, {"group/herd.cluster.master": {"lock_timeout": 5, "rpc_timeout": 30}},
                       [{"name": "keys", "herd.cluster.ssh_host_keys": {}}])
    assert not results["keys"].get("failed"), results["keys"]
    assert results["keys"]["ansible_facts"]["herd_ssh_host_keys"]


def test_the_bootstrap_group_resolves_for_module_defaults(tmp_path):
    results = run_play(tmp_path, {"group/herd.cluster.bootstrap": {"allow_missing": True}},
                       [{"name": "module", "herd.cluster.kernel_module": {"name": "herd_no_such_module"},
                         "check_mode": True, "ignore_errors": True}])
    assert not results["module"].get("failed"), results["module"]
