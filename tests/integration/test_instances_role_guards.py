"""The instances role's guards, with real ansible-playbook processes on the controller
itself: secrets in osparams never reach the output, and an empty declared list does not
prune every instance without an explicit prune_all. Every run fails before the role
reaches a cluster (bad input or the guard), so no cluster is needed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import ansible_run

PASSWORD = "Hunter2-Sup3rS3cret"  # noqa: S105 - the value the test looks for in the output


def run_role(tmp_path: Path, role_vars: dict[str, Any], callback: str = "herd_json",
             verbose: bool = False, check: bool = False) -> subprocess.CompletedProcess[str]:
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "roles": [{"role": "herd.cluster.instances", **role_vars}]}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    env = ansible_run.env()
    env["ANSIBLE_STDOUT_CALLBACK"] = callback
    argv = [str(ansible_run.VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(path)]
    if verbose:
        argv.append("-vvv")
    if check:
        argv.append("--check")
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ansible_run.REPO, timeout=600,
                          check=False)


def test_item4_osparams_never_reach_the_instances_role_output(tmp_path: Path) -> None:
    declared = [{"name": "web1", "state": "bogus",  # refused by the module's argument_spec
                 "osparams": {"password": PASSWORD, "user_data": f"#cloud-config\npassword: {PASSWORD}\n"}}]
    for callback, verbose in (("herd_json", False), ("default", True)):
        proc = run_role(tmp_path, {"instances_declared": declared}, callback, verbose)
        assert proc.returncode != 0, proc.stdout[-2000:]
        assert "web1" in proc.stdout
        assert PASSWORD not in proc.stdout + proc.stderr, f"{callback}: {proc.stdout[-3000:]}"


def test_item17_an_empty_list_with_prune_is_refused_without_prune_all(tmp_path: Path) -> None:
    proc = run_role(tmp_path, {"instances_declared": [], "instances_prune": True})
    run = ansible_run.Run(proc)
    assert run.rc != 0
    guard = run.result("Refuse to prune every instance without an explicit prune_all", "localhost")
    assert guard.get("failed") and "herd_instances_prune_all: true" in guard["msg"]
    names = [t["task"]["name"] for t in run.tasks()]
    assert not any("Read the instances" in n or "Remove undeclared" in n for n in names)


def test_item17_prune_all_lets_an_empty_list_past_the_guard(tmp_path: Path) -> None:
    run = ansible_run.Run(run_role(tmp_path, {"instances_declared": [], "instances_prune": True,
                                              "instances_prune_all": True}, check=True))
    guard = run.result("Refuse to prune every instance without an explicit prune_all", "localhost")
    assert not guard.get("failed")
