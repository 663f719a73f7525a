"""A long operation run the way docs/operations.md tells operators to ("Watching long operations"):
in the background with `async`/`poll: 0`, its job found and followed with
herd.cluster.job_info, the task's own result collected with async_status.
The playbook is the documented one, run as written (only the instance's name differs)."""

from __future__ import annotations

import re
import textwrap

import pytest
import yaml

import ansible_run
from ansible_run import REPO

pytestmark = pytest.mark.usefixtures("site")

NAME = "async1"


def documented_tasks() -> list[dict]:
    text = (REPO / "docs" / "operations.md").read_text()
    section = text[text.index("## Watching long operations"):]
    block = re.search(r"^```yaml\n(.*?)^```", section, re.S | re.M)
    assert block, "docs/operations.md shows no async playbook"
    tasks = yaml.safe_load(textwrap.dedent(block.group(1)).replace("db1", NAME))
    assert any(t.get("async") and t.get("poll") == 0 for t in tasks), tasks
    return tasks


def test_a_migration_run_with_async_is_followed_through_its_job(inventory, tmp_path):
    created = ansible_run.module(inventory, "node1", "instance", {
        "name": NAME, "state": "running", "hypervisor": "fake", "disk_template": "sharedfile",
        "disks": ["64M"], "memory": "128M", "primary_node": "node2"})
    assert created["changed"] and not created.get("failed"), created
    try:
        play = tmp_path / "async.yml"
        play.write_text(yaml.safe_dump([{"name": "The documented async migration", "hosts": "herd_master",
                                         "gather_facts": False, "tasks": documented_tasks()}]))
        run = ansible_run.playbook(inventory, play, timeout=300)
        assert run.rc == 0, f"{run!r}\n{run.proc.stdout[-4000:]}"

        started = run.result(f"Migrate {NAME} in the background (up to an hour)", "node1")
        assert started["started"] == 1 and started["finished"] == 0 and started["ansible_job_id"], started

        job = run.result("Follow it until it ends (gnt-job watch), then print its steps and progress", "node1")
        (record,) = job["jobs"]
        assert record["opcode"] == "instance_migrate" and record["status"] == "success", record
        assert record["params"]["name"] == NAME
        assert record["steps"] and all(s["status"] == "success" for s in record["steps"]), record["steps"]
        table = "\n".join(job["table"])
        assert f"job {record['id']} instance_migrate: success" in table, table

        result = run.result("The task's own result (changed, job_ids, msg)", "node1")
        assert result["finished"] == 1 and result["changed"], result
        assert record["id"] in result["job_ids"], (record["id"], result["job_ids"])
        assert result["target"] not in ("node2", None), result
    finally:
        ansible_run.module(inventory, "node1", "instance", {"name": NAME, "state": "absent"})
