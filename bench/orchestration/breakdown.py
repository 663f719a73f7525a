#!/usr/bin/env python
"""Where one herd task's wall time goes, on a running virtual cluster.

Run as root from the repository, against a cluster brought up and bootstrapped
by bench/orchestration/run.py --keep (or scripts/vcluster up + site.yml):

    /opt/herd/venv/bin/python bench/orchestration/breakdown.py [--cluster herdbench] [--reps 3]

Three measurements per operation (create, migrate, failover, remove of a fake
instance):

  task      the module task's duration as Ansible records it (what run.py reports);
  ansible   the same task shape running a module that does nothing on the master
            (ansible.builtin.ping): connection, module transfer and Python start;
  engine    the operation itself, run in one Python process on the master with the
            collection's own code, every RPC, config load/save, lock, journal write
            and replication timed (the classes are wrapped here, in the benchmark,
            so the product carries no tracing code).

"task - engine" is what Ansible and the module's start-up cost; the engine lines
say which of its parts cost what. The agent's own start-up on a node is measured
by a trivial verb (cluster_membership) over a reused connection.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import ansible_run  # noqa: E402

# Runs on the master node (node1): times the engine's parts by wrapping its classes.
ENGINE = r'''
import json, sys, time, collections
sys.path.insert(0, COLLECTIONS)
from ansible_collections.herd.cluster.plugins.module_utils.herd import config as config_mod, jobs, rpc
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import common
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import instance, migrate

spans = collections.defaultdict(lambda: [0, 0.0])

def wrap(owner, attr, label):
    original = getattr(owner, attr)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            key = label(args, kwargs) if callable(label) else label
            spans[key][0] += 1
            spans[key][1] += time.perf_counter() - start
    setattr(owner, attr, timed)

wrap(rpc.Rpc, "_client", "rpc: SSH client (connect once per node)")
wrap(rpc.Rpc, "_session", "rpc: agent session (idle one, or channel + agent start)")
wrap(rpc.Rpc, "call", lambda a, k: f"rpc: {a[2]} ({'local' if a[1].name == a[0].local_node else 'remote'})")
wrap(config_mod.ConfigStore, "load", "config: load+parse")
wrap(config_mod.ConfigStore, "save", "config: save")
wrap(common.Context, "replicate", "config: replicate to nodes")
wrap(common, "newer_master", "master check: ask candidates")
wrap(jobs.Journal, "open", "journal: open job")
for name in ("start", "finish", "fail", "step", "on_undo", "record_created"):
    if hasattr(jobs.Job, name):
        wrap(jobs.Job, name, f"journal: job.{name}")
for name in ("lock",):
    if hasattr(jobs.Locks, name):
        wrap(jobs.Locks, name, f"locks: {name}")

op, spec = OP, SPEC
t0 = time.perf_counter()
ctx = common.Context.on_this_node()
t1 = time.perf_counter()
if op == "create" or op == "remove":
    instance.ensure(ctx, spec)
elif op == "migrate":
    migrate.migrate(ctx, spec)
elif op == "failover":
    migrate.failover(ctx, spec)
elif op == "membership":
    config = ctx.store.load()
    node = config.nodes["node2"]
    ctx.rpc.call(ctx.endpoint(node, config), "cluster_membership", {})
    spans.clear()
    for _ in range(5):
        ctx.rpc.call(ctx.endpoint(node, config), "cluster_membership", {})
t2 = time.perf_counter()
print(json.dumps({"context_s": t1 - t0, "op_s": t2 - t1,
                  "spans": {k: {"n": v[0], "s": v[1]} for k, v in spans.items()}}))
'''


def on_master(cluster: str, code: str) -> dict[str, Any]:
    argv = [str(REPO / "scripts" / "vcluster"), "exec", "--name", cluster, "node1", "--",
            "/usr/bin/python3", "-c", code]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def engine(cluster: str, op: str, spec: dict[str, Any]) -> dict[str, Any]:
    code = (ENGINE.replace("COLLECTIONS", repr(str(REPO / ".build" / "collections")))
            .replace("OP, SPEC", f"{op!r}, {spec!r}"))
    return on_master(cluster, code)


def task(inventory: Path, module: str, args: dict[str, Any]) -> float:
    result = ansible_run.module(inventory, "node1", module, args)
    if result.get("failed"):
        raise RuntimeError(f"{module} failed: {result.get('msg')}")
    return result["duration"]["end"] - result["duration"]["start"]


def ping(inventory: Path) -> float:
    """The same one-task play shape running ansible.builtin.ping on the master."""
    play = [{"hosts": "node1", "gather_facts": False, "tasks": [{"name": "ping", "ansible.builtin.ping": {}}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=REPO / ".build", delete=False) as handle:
        json.dump(play, handle)
    try:
        run = ansible_run.playbook(inventory, handle.name)
    finally:
        os.unlink(handle.name)
    result = run.result("ping", "node1")
    return result["duration"]["end"] - result["duration"]["start"]


def fake_spec(name: str) -> dict[str, Any]:
    return {"name": name, "state": "running", "hypervisor": "fake", "disk_template": "sharedfile",
            "disks": ["64M"], "memory": "128M"}


def full_spec(name: str, **over: Any) -> dict[str, Any]:
    spec = {key: None for key in ("disk_template", "hypervisor", "disks", "nics", "memory", "minmem", "vcpus",
                                  "hvparams", "os", "osparams", "tags", "primary_node", "secondary_node")}
    spec.update({"restart_on_change": False, "shutdown_timeout": 120, **fake_spec(name), **over})
    return spec


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted({k for r in runs for k in r["spans"]})
    return {"op_s": statistics.median(r["op_s"] for r in runs),
            "context_s": statistics.median(r["context_s"] for r in runs),
            "spans": {k: {"n": statistics.median(r["spans"].get(k, {"n": 0})["n"] for r in runs),
                          "s": statistics.median(r["spans"].get(k, {"s": 0.0})["s"] for r in runs)}
                      for k in keys}}


def report(rows: dict[str, Any]) -> str:
    lines = ["## Where a task's time goes (fake hypervisor, median seconds)", "",
             f"Ansible running a module that does nothing on the master (ping): {rows['ansible_s']:.2f} s; "
             f"the agent answering a trivial verb over its open session: {rows['agent_verb_s'] * 1000:.1f} ms.", ""]
    for op in ("create", "migrate", "failover", "remove"):
        r = rows[op]
        e = r["engine"]
        lines += [f"### {op}: task {r['task_s']:.2f} s, engine {e['op_s']:.2f} s "
                  f"(+ context {e['context_s']:.2f} s), outside the engine {r['task_s'] - e['op_s']:.2f} s", "",
                  "| part | calls | seconds |", "|---|---|---|"]
        for key, span in sorted(e["spans"].items(), key=lambda kv: -kv[1]["s"]):
            lines.append(f"| {key} | {span['n']:g} | {span['s']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def collect(cluster: str, reps: int) -> dict[str, Any]:
    """Every measurement of this module, on the running cluster ``cluster``."""
    sys.path.insert(0, str(REPO / ".build" / "collections"))
    inventory = REPO / "inventories" / "vcluster" / f"hosts-{cluster}.yml"
    rows: dict[str, Any] = {"ansible_s": statistics.median(ping(inventory) for _rep in range(reps))}
    spans = engine(cluster, "membership", {})["spans"]
    membership = spans.get("rpc: cluster_membership (remote)", {"n": 1, "s": 0.0})
    rows["agent_verb_s"] = membership["s"] / max(membership["n"], 1)
    tasks: dict[str, list[float]] = {op: [] for op in ("create", "migrate", "failover", "remove")}
    engines: dict[str, list[dict[str, Any]]] = {op: [] for op in tasks}
    for i in range(reps):
        name = f"bd-task{i}"
        tasks["create"].append(task(inventory, "instance", fake_spec(name)))
        tasks["migrate"].append(task(inventory, "instance_migrate", {"name": name}))
        tasks["failover"].append(task(inventory, "instance_failover", {"name": name}))
        tasks["remove"].append(task(inventory, "instance", {"name": name, "state": "absent"}))
        name = f"bd-engine{i}"
        engines["create"].append(engine(cluster, "create", full_spec(name)))
        engines["migrate"].append(engine(cluster, "migrate", {
            "name": name, "target_node": None, "mode": "live", "cleanup": False, "fallback_to_failover": False,
            "ignore_consistency": False, "timeout": 3600}))
        engines["failover"].append(engine(cluster, "failover", {
            "name": name, "target_node": None, "ignore_consistency": False, "shutdown_timeout": 120}))
        engines["remove"].append(engine(cluster, "remove", full_spec(name, state="absent")))
    for op in tasks:
        rows[op] = {"task_s": statistics.median(tasks[op]), "engine": merge(engines[op])}
    (REPO / "bench" / "orchestration" / "breakdown.json").write_text(json.dumps(rows, indent=1))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", default="herdbench")
    parser.add_argument("--reps", type=int, default=3)
    options = parser.parse_args()
    print(report(collect(options.cluster, options.reps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
