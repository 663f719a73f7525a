"""Run real ansible-playbook processes against the virtual cluster and read
their results through the json stdout callback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import return_docs

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def ensure_collection_link() -> Path:
    link = REPO / ".build" / "collections" / "ansible_collections" / "herd" / "cluster"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(REPO)
    return REPO / ".build" / "collections"


def inventory_dir(vcluster: Any, dest: Path) -> Path:
    """The cluster's hosts.yml with the repo's vcluster group_vars beside it."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(vcluster.inventory, dest / "hosts.yml")
    group_vars = REPO / "inventories" / "vcluster" / "group_vars"
    if (dest / "group_vars").exists():
        shutil.rmtree(dest / "group_vars")
    shutil.copytree(group_vars, dest / "group_vars")
    return dest / "hosts.yml"


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ensure_collection_link()),
        "ANSIBLE_STDOUT_CALLBACK": "herd_json",
        "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).resolve().parent / "callback_plugins"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PATH": f"{VENV_BIN}:{out.get('PATH', '')}",
    })
    return out


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str]):
        self.proc = proc
        self.rc = proc.returncode
        try:
            self.data = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            self.data = {"plays": [], "stats": {}}

    @property
    def stats(self) -> dict[str, Any]:
        return self.data.get("stats", {})

    def changed(self, host: str) -> int:
        return self.stats.get(host, {}).get("changed", 0)

    def tasks(self) -> list[dict[str, Any]]:
        return [t for play in self.data.get("plays", []) for t in play.get("tasks", [])]

    def result(self, task_name: str, host: str) -> dict[str, Any]:
        for task in self.tasks():
            name = task["task"]["name"]
            # tasks of a role are named "<role> : <task>"
            if (name == task_name or name.endswith(f" : {task_name}")) and host in task["hosts"]:
                return task["hosts"][host]
        raise KeyError(f"no task {task_name!r} on {host} in: {[t['task']['name'] for t in self.tasks()]}\n"
                       f"{self.proc.stdout[-3000:]}\n{self.proc.stderr[-3000:]}")

    def __repr__(self) -> str:
        return f"<Run rc={self.rc} stats={self.stats} stderr={self.proc.stderr[-2000:]!r}>"


def playbook(inventory: Path, path: Path | str, extra_vars: dict[str, Any] | None = None, check: bool = False,
             diff: bool = False, limit: str | None = None, timeout: float = 1200) -> Run:
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(path)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if limit:
        argv += ["--limit", limit]
    return Run(subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=timeout, cwd=REPO, check=False))


def module(inventory: Path, host: str, name: str, args: dict[str, Any], check: bool = False,
           diff: bool = False, timeout: float = 900) -> dict[str, Any]:
    """Run one herd.cluster module on host through a one-task playbook; its result dict."""
    play = [{"hosts": host, "gather_facts": False,
             "tasks": [{"name": "module under test", f"herd.cluster.{name}": args, "ignore_errors": True}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=REPO / ".build", delete=False) as handle:
        json.dump(play, handle)
    try:
        run = playbook(inventory, handle.name, check=check, diff=diff, timeout=timeout)
    finally:
        os.unlink(handle.name)
    try:
        result = run.result("module under test", host)
    except KeyError:
        raise AssertionError(f"ansible-playbook gave no result: {run!r}\n{run.proc.stdout[-3000:]}") from None
    problems = return_docs.mismatches(name, result)
    assert not problems, "\n".join(problems)
    return result


def start_module(inventory: Path, host: str, name: str, args: dict[str, Any]) -> tuple[subprocess.Popen, str]:
    """Start a module run in the background (for concurrency tests); returns (process, playbook path)."""
    play = [{"hosts": host, "gather_facts": False,
             "tasks": [{"name": "module under test", f"herd.cluster.{name}": args, "ignore_errors": True}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=REPO / ".build", delete=False) as handle:
        json.dump(play, handle)
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), handle.name]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
                            cwd=REPO), handle.name


def finish_module(proc: subprocess.Popen, path: str, host: str, timeout: float = 600) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    os.unlink(path)
    run = Run(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return run.result("module under test", host)
