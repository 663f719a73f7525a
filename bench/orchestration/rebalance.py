"""A rebalance beside Ganeti's ``hbal -L -X``, on the same layout (issue 14).

Both sides: ``count`` running fake-hypervisor instances with one ``sharedfile`` disk (a template
htools can move: externally mirrored, so hbal migrates or fails them over to any node), all placed
on the first node of a 3-node cluster. Timed: Ganeti's ``hbal -L -X`` (plan and execute, its
jobs included) and herd's ``rebalance execute=true`` task. Diskless instances would do for hbal
too, but the sharedfile layout is the one herd's evacuation case already uses.

Ganeti's virtual cluster runs file-backed templates (its doc/virtual-cluster.rst: "Instances
must be diskless or file-backed"): a directory every virtual node sees (they share the file
system) is enabled as the shared file storage directory and listed in each node's
``file-storage-paths``.

Used by run.py (the ``rebalance`` case); importable on its own.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COUNT = 45  # 45 on one of 3 nodes: a balanced layout moves 30 of them


def _vcluster() -> Any:
    sys.path.insert(0, str(REPO / "bench" / "ganeti"))
    import measure  # bench/ganeti/measure.py

    return measure.vcluster


def ganeti_rebalance(count: int = COUNT) -> dict[str, Any]:
    """On Ganeti's virtual cluster (brought up by the caller): the layout, ``hbal -L`` (the plan,
    not timed), ``hbal -L -X`` (timed), the layout after; the instances removed at the end."""
    vc = _vcluster()
    st = vc.up(vc.DEFAULT_DIR)
    shared = Path(st.dir) / "shared-file-storage"
    shared.mkdir(exist_ok=True)
    shared.chmod(0o755)
    for node in st.nodes:
        paths = Path(st.dir, node, "etc", "ganeti", "file-storage-paths")
        if str(shared) not in (paths.read_text().split() if paths.exists() else []):
            with open(paths, "a", encoding="utf-8") as handle:
                handle.write(f"{shared}\n")
    vc.run_on(st, ["gnt-cluster", "modify", "--enabled-disk-templates=diskless,sharedfile",
                   "--ipolicy-disk-templates=diskless,sharedfile", f"--shared-file-storage-dir={shared}",
                   "--ipolicy-vcpu-ratio=32"])
    names = [f"instance{i + 1}" for i in range(count)]
    try:
        jobs = []
        for name in names:
            res = vc.run_on(st, ["gnt-instance", "add", "--submit", "-t", "sharedfile", "--disk", "0:size=64M",
                                 "-o", "noop+default", "--no-name-check", "--no-ip-check", "-B", "memory=128,vcpus=1",
                                 "--net", f"0:link={vc.BRIDGE}", "-n", st.nodes[0], name])
            jobs.append((res.stdout + res.stderr).split()[-1])
        _wait_jobs(vc, st, jobs)
        before = _layout(vc, st)
        plan = vc.run_on(st, ["hbal", "-L"]).stdout
        moves = sum(1 for line in plan.splitlines() if " => " in line)
        t0 = time.monotonic()
        vc.run_on(st, ["hbal", "-L", "-X"], timeout=3600)
        seconds = time.monotonic() - t0
        after = _layout(vc, st)
        return {"count": count, "seconds": round(seconds, 3), "planned_moves": moves,
                "moved": sum(1 for n in names if before.get(n) != after.get(n)),
                "before": _per_node(before), "after": _per_node(after)}
    finally:
        jobs = [(vc.run_on(st, ["gnt-instance", "remove", "--submit", "-f", n], check=False).stderr or " ").split()[-1]
                for n in names]
        _wait_jobs(vc, st, [j for j in jobs if j.isdigit()])


def _wait_jobs(vc: Any, st: Any, jobs: list[str]) -> None:
    while jobs:
        res = vc.run_on(st, ["gnt-job", "list", "--no-headers", "--separator=|", "-o", "id,status", *jobs])
        if not [line for line in res.stdout.splitlines()
                if line.split("|")[1] in ("queued", "waiting", "running", "canceling")]:
            return
        time.sleep(0.5)


def _layout(vc: Any, st: Any) -> dict[str, str]:
    res = vc.run_on(st, ["gnt-instance", "list", "--no-headers", "--separator=|", "-o", "name,pnode,oper_state"])
    return {line.split("|")[0]: line.split("|")[1] for line in res.stdout.splitlines() if line.endswith("|Y")}


def _per_node(layout: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in layout.values():
        out[node] = out.get(node, 0) + 1
    return dict(sorted(out.items()))


def herd_rebalance(inventory: Path, count: int = COUNT) -> dict[str, Any]:
    """On herd's virtual cluster: the same layout through the instances module, then the
    rebalance task (execute) timed; the instances removed at the end."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import ansible_run

    specs = [{"name": f"rebal{i}", "state": "running", "hypervisor": "fake", "disk_template": "sharedfile",
              "disks": ["64M"], "memory": "128M", "vcpus": 1, "primary_node": "node1"} for i in range(count)]
    ansible_run.module(inventory, "node1", "cluster", {"name": "herd-vcluster", "ipolicy": {"vcpu-ratio": 32}})
    created = ansible_run.module(inventory, "node1", "instances", {"instances": specs})
    if created.get("failed"):
        raise RuntimeError(f"rebalance layout: {created.get('msg')}")
    try:
        result = ansible_run.module(inventory, "node1", "rebalance", {"execute": True}, timeout=3600)
        if result.get("failed"):
            raise RuntimeError(f"rebalance failed: {result.get('msg')}")
        info = ansible_run.module(inventory, "node1", "instance_info", {})
        after: dict[str, int] = {}
        for row in info.get("instances", []):
            after[row["primary_node"]] = after.get(row["primary_node"], 0) + 1
        return {"count": count, "seconds": round(result["duration"]["end"] - result["duration"]["start"], 3),
                "planned_moves": len(result.get("moves", [])), "moved": len(result.get("executed", [])),
                "after": dict(sorted(after.items()))}
    finally:
        absent = [{"name": s["name"], "state": "absent"} for s in specs]
        ansible_run.module(inventory, "node1", "instances", {"instances": absent})
