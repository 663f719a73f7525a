#!/usr/bin/env python
"""Does an operation's cost grow with the job history? The same instance create, in process through
the ops layer (the real node agent's handle() with the fake hypervisor, as in tests/unit/core), on a
master whose journal is empty and on one holding 10,000 finished jobs.

    /opt/herd/venv/bin/python bench/orchestration/journal.py [--jobs 10000] [--reps 15]

Per rep: create a running instance (file disk, fake hypervisor) and remove it; the create is timed
(wall and CPU seconds of this process). The two masters alternate rep by rep so load on the
machine hits both alike. Reports the medians and the ratio full/empty (goal: <= 1.1).

The 10,000 jobs are written where the journal keeps finished jobs (its archive, or the job
directory itself for a journal without one), each a finished instance_create with five steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from plugins.module_utils.herd.allocator import placement as allocator_placement  # noqa: E402
from plugins.module_utils.herd.config import ConfigStore  # noqa: E402
from plugins.module_utils.herd.jobs import Journal  # noqa: E402
from plugins.module_utils.herd.ops import cluster as cluster_op  # noqa: E402
from plugins.module_utils.herd.ops import instance as instance_op  # noqa: E402
from plugins.module_utils.herd.ops import node as node_op  # noqa: E402
from plugins.module_utils.herd.ops.common import Context  # noqa: E402
from plugins.module_utils.herd.rpc import MANAGED_BLOCK  # noqa: E402
from unit.core.agentnodes import AgentNode, AgentRpc  # noqa: E402


def first_fit(config: dict[str, Any], facts: Any, request: dict[str, Any], primary: Any = None,
              secondary: Any = None) -> dict[str, Any]:
    """The unit tests' placement stand-in: the create is what is measured, not the allocator."""
    names = sorted(n for n, node in config["nodes"].items() if not node["offline"] and not node["drained"])
    return {"success": True, "primary": primary or names[0], "secondary": None, "reasons": []}


def master(root: Path) -> Context:
    nodes = [AgentNode(f"node{i}", f"198.51.100.{10 + i}", f"203.0.113.{10 + i}", i, root / "nodes" / f"node{i}",
                       root / "shared") for i in (1, 2, 3)]
    nodes[0].state_dir = str(root / "state")
    store = ConfigStore(str(root / "state"))
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"# BEGIN {MANAGED_BLOCK}\n"
                           + "".join(f"{n.name},{n.addresses[0]} ssh-ed25519 {n.host_key}\n" for n in nodes)
                           + f"# END {MANAGED_BLOCK}\n")
    ctx = Context(store=store, journal=Journal(store.state_dir), rpc=AgentRpc(nodes, nodes[0]), local_node="node1",
                  known_hosts=str(known_hosts), lock_timeout=10)
    cluster_op.present(ctx, {"name": "cluster.example", "primary_ip": "198.51.100.11",
                             "secondary_ip": "203.0.113.11", "enabled_hypervisors": ["kvm", "fake"]})
    for i in (2, 3):
        node_op.present(ctx, {"name": f"node{i}", "primary_ip": f"198.51.100.{10 + i}",
                              "secondary_ip": f"203.0.113.{10 + i}"})
    return ctx


def fill(journal: Journal, count: int) -> None:
    """``count`` finished jobs after the ones already there, where this journal keeps finished jobs."""
    first = max((int(n[:-5]) for n in os.listdir(journal.dir) if n[:-5].isdigit()), default=0) + 1000
    where = getattr(journal, "archive_path", journal.path)
    for job_id in range(first, first + count):
        now = time.time()
        steps = [{"name": name, "status": "success", "start_ts": now, "end_ts": now, "message": "",
                  "progress": [], "details": {}} for name in ("create disks", "install OS", "commit config",
                                                              "start", "verify")]
        path = where(job_id)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w") as handle:
            json.dump({"id": job_id, "opcode": "instance_create", "params": {"name": f"old{job_id}"},
                       "status": "success", "steps": steps, "received_ts": now, "start_ts": now, "end_ts": now,
                       "last_message": "start", "result": None, "pid": 1, "host": "node1"}, handle)
    with open(journal.counter, "w") as handle:
        handle.write(f"{first + count}\n")


def create_once(ctx: Context, name: str) -> dict[str, float]:
    spec = {"name": name, "state": "running", "disk_template": "file", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "fake"}
    wall, cpu = time.perf_counter(), time.process_time()
    result = instance_op.ensure(ctx, spec)
    measured = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    assert result["changed"], result
    instance_op.ensure(ctx, {"name": name, "state": "absent"})
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    allocator_placement.place = first_fit  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="herd-journal-bench-") as tmp:
        empty, full = master(Path(tmp) / "empty"), master(Path(tmp) / "full")
        started = time.perf_counter()
        fill(full.journal, args.jobs)
        print(f"wrote {args.jobs} finished jobs in {time.perf_counter() - started:.1f} s")
        create_once(empty, "warmup")
        create_once(full, "warmup")
        times: dict[str, list[dict[str, float]]] = {"empty": [], "full": []}
        for rep in range(args.reps):
            order = [("empty", empty), ("full", full)] if rep % 2 == 0 else [("full", full), ("empty", empty)]
            for label, ctx in order:
                times[label].append(create_once(ctx, f"web{rep}"))
    print(f"instance create, median of {args.reps} (seconds)")
    print("| journal | wall | CPU |")
    print("|---|---|---|")
    medians = {}
    for label in ("empty", "full"):
        medians[label] = {k: statistics.median(t[k] for t in times[label]) for k in ("wall", "cpu")}
        title = "empty" if label == "empty" else f"{args.jobs} finished jobs"
        print(f"| {title} | {medians[label]['wall']:.4f} | {medians[label]['cpu']:.4f} |")
    print(f"ratio full/empty: wall {medians['full']['wall'] / medians['empty']['wall']:.2f}, "
          f"CPU {medians['full']['cpu'] / medians['empty']['cpu']:.2f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
