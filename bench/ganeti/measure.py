#!/usr/bin/python3
"""Time Ganeti's instance operations on its virtual cluster (fake hypervisor).

    measure.py [--reps 5] [--dir DIR] [--keep-up] [--iallocator]

Per repetition, on one fresh instance (diskless, fake hypervisor, noop OS):

* ``add``      gnt-instance add -t diskless --no-install ... -n node1
* ``startup``  gnt-instance startup (``--no-install`` makes Ganeti skip the
               start at add time; ``add_to_running`` = add + startup per
               repetition, the time from nothing to a running instance)
* ``migrate``  gnt-instance migrate -f [-n node2]   (live, node1 -> node2)
* ``failover`` gnt-instance failover -f [-n node3]  (node2 -> node3)
* ``remove``   gnt-instance remove -f

Targets are explicit by default; ``--iallocator`` leaves the choice to the
cluster's default iallocator (hail) instead.  Prints JSON with median/min/max
seconds per operation (and every sample).  The cluster is brought up if it
is not up and, in that case, torn down again unless ``--keep-up``.

Importable: ``measure_ganeti(reps) -> dict`` (same dict as the JSON).
Run as root (Python 3 standard library only).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from collections.abc import Iterator

OPERATIONS = ("add", "startup", "migrate", "failover", "remove")
INSTANCE = "instance1"  # in the virtual cluster's hosts file


def _load_vcluster() -> ModuleType:
    name = "herd_bench_ganeti_vcluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("vcluster.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


vcluster = _load_vcluster()


def _commands(nodes: list[str], use_iallocator: bool) -> dict[str, list[str]]:
    primary, mig_target, fo_target = nodes[0], nodes[1], nodes[2]
    add = ["gnt-instance", "add", "-t", "diskless", "--no-install", "-o", "noop+default",
           "--no-name-check", "--no-ip-check", "-B", "memory=128,vcpus=1",
           "--net", f"0:link={vcluster.BRIDGE}", "-n", primary, INSTANCE]
    migrate = ["gnt-instance", "migrate", "-f"]
    failover = ["gnt-instance", "failover", "-f"]
    if not use_iallocator:
        migrate += ["-n", mig_target]
        failover += ["-n", fo_target]
    return {
        "add": add,
        "startup": ["gnt-instance", "startup", INSTANCE],
        "migrate": migrate + [INSTANCE],
        "failover": failover + [INSTANCE],
        "remove": ["gnt-instance", "remove", "-f", INSTANCE],
    }


def _summary(samples: list[float]) -> dict[str, object]:
    return {
        "median": round(statistics.median(samples), 3),
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
        "samples": [round(s, 3) for s in samples],
    }


def _instance_exists(st: object) -> bool:
    res = vcluster.run_on(st, ["gnt-instance", "list", "--no-headers", "-o", "name"],
                          check=False)
    return INSTANCE in res.stdout.split()


def _placement(st: object) -> tuple[str, str]:
    """(primary node, oper_state) of the measured instance."""
    res = vcluster.run_on(st, ["gnt-instance", "list", "--no-headers", "--separator=|",
                               "-o", "pnode,oper_state", INSTANCE])
    pnode, running = res.stdout.strip().split("|")
    return pnode, running


def _check(st: object, op: str, before: str, expected: str | None) -> None:
    """The operation really happened: the instance runs where it should."""
    if op not in ("startup", "migrate", "failover"):
        return
    pnode, running = _placement(st)
    if running != "Y":
        raise vcluster.VClusterError(f"after {op}: {INSTANCE} is not running")
    if op != "startup" and (pnode == before or (expected and pnode != expected)):
        raise vcluster.VClusterError(
            f"after {op}: {INSTANCE} is on {pnode} (was {before}, expected {expected})")


def _ganeti_version() -> str:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "ganeti"],
                         capture_output=True, text=True, check=False)
    return res.stdout.strip() or "unknown"


def measure_ganeti(reps: int = 5, vc_dir: Path | None = None, keep_up: bool = False,
                   use_iallocator: bool = False) -> dict[str, object]:
    """Time add/migrate/failover/remove ``reps`` times on Ganeti's virtual cluster.

    Returns ``{"tool": "ganeti", ..., "operations": {op: {"median", "min",
    "max", "samples"}}}`` with seconds of wall time per command.
    """
    if reps < 1:
        raise ValueError("reps must be at least 1")
    vc_dir = (vc_dir or vcluster.DEFAULT_DIR).resolve()
    started_here = not vcluster.is_up(vc_dir)
    st = vcluster.up(vc_dir)
    try:
        if len(st.nodes) < 3:
            raise vcluster.VClusterError("measure needs a cluster of at least 3 nodes")
        if _instance_exists(st):  # left over from an interrupted run
            vcluster.run_on(st, ["gnt-instance", "remove", "-f", INSTANCE])
        cmds = _commands(st.nodes, use_iallocator)
        expected = {"add": st.nodes[0], "startup": st.nodes[0],
                    "migrate": None if use_iallocator else st.nodes[1],
                    "failover": None if use_iallocator else st.nodes[2]}
        where = st.nodes[0]
        samples: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        load_before = os.getloadavg()
        for rep in range(reps):
            for op in OPERATIONS:
                t0 = time.monotonic()
                vcluster.run_on(st, cmds[op])
                samples[op].append(time.monotonic() - t0)
                _check(st, op, where, expected.get(op))  # not timed
                if op in ("migrate", "failover"):
                    where = _placement(st)[0]
            vcluster._log(f"rep {rep + 1}/{reps}: " + ", ".join(
                f"{op} {samples[op][-1]:.2f} s" for op in OPERATIONS))
        return {
            "tool": "ganeti",
            "version": _ganeti_version(),
            "cluster": {"nodes": len(st.nodes), "hypervisor": "fake",
                        "disk_template": "diskless", "prefix": f"{st.prefix}.0/24",
                        "bring_up_seconds": st.timings},
            "targets": "iallocator" if use_iallocator else "explicit",
            "reps": reps,
            "load_average_1m": {"before": round(load_before[0], 2),
                                "after": round(os.getloadavg()[0], 2),
                                "cpus": os.cpu_count()},
            "commands": cmds,
            "operations": {op: _summary(samples[op]) for op in OPERATIONS}
            | {"add_to_running": _summary([a + s for a, s in
                                           zip(samples["add"], samples["startup"])])},
        }
    finally:
        if started_here and not keep_up:
            vcluster.down(vc_dir)


def _jobs_pending(st: object, job_ids: list[str]) -> list[str]:
    res = vcluster.run_on(st, ["gnt-job", "list", "--no-headers", "--separator=|", "-o", "id,status", *job_ids])
    return [line for line in res.stdout.splitlines()
            if line.split("|")[1] in ("queued", "waiting", "running", "canceling")]


@contextlib.contextmanager
def _cluster_with(names: list[str], vc_dir: Path | None, keep_up: bool) -> Iterator[object]:
    """The virtual cluster (brought up if needed); ``names`` removed again at the end, and the
    cluster torn down if it was brought up here and not asked to stay."""
    vc_dir = (vc_dir or vcluster.DEFAULT_DIR).resolve()
    started_here = not vcluster.is_up(vc_dir)
    st = vcluster.up(vc_dir)
    # a fake node counts as 2 CPUs: at the default 4 vCPUs per CPU three nodes take 24
    # one-vCPU instances, fewer than the fleet and evacuation cases need (herd's side alike)
    vcluster.run_on(st, ["gnt-cluster", "modify", "--ipolicy-vcpu-ratio=32"])
    try:
        yield st
    finally:
        for name in names:
            vcluster.run_on(st, ["gnt-instance", "remove", "-f", name], check=False)
        if started_here and not keep_up:
            vcluster.down(vc_dir)


def measure_fleet(count: int = 50, vc_dir: Path | None = None, keep_up: bool = False) -> dict[str, object]:
    """Create ``count`` running instances at once: one ``gnt-instance add --submit -I hail`` per
    instance, every job submitted before the first is waited for, so Ganeti runs them in
    parallel as its job queue allows. Seconds from the first submit to the last job's end;
    then every instance is checked running (not timed) and removed."""
    names = [f"instance{i + 1}" for i in range(count)]
    with _cluster_with(names, vc_dir, keep_up) as st:
        t0 = time.monotonic()
        _add_all(st, names, None)
        seconds = time.monotonic() - t0
        missing = sorted(set(names) - set(_primaries(st)))
        if missing:
            raise vcluster.VClusterError(f"fleet: not running after their jobs ended: {missing}")
        return {"count": count, "seconds": round(seconds, 3)}


def _add_all(st: object, names: list[str], node: str | None) -> list[str]:
    """Submit one add per name (all before waiting), wait for every job; their job ids."""
    job_ids = []
    where = ["-n", node] if node else ["-I", "hail"]
    for name in names:
        res = vcluster.run_on(st, ["gnt-instance", "add", "--submit", "-t", "diskless", "-o", "noop+default",
                                   "--no-name-check", "--no-ip-check", "-B", "memory=128,vcpus=1",
                                   "--net", f"0:link={vcluster.BRIDGE}", *where, name])
        job_ids.append((res.stdout + res.stderr).split()[-1])  # "JobID: N", on stderr
    while _jobs_pending(st, job_ids):
        time.sleep(0.2)
    return job_ids


def _primaries(st: object) -> dict[str, str]:
    res = vcluster.run_on(st, ["gnt-instance", "list", "--no-headers", "--separator=|", "-o", "name,pnode,oper_state"])
    return {line.split("|")[0]: line.split("|")[1] for line in res.stdout.splitlines() if line.endswith("|Y")}


def measure_evacuate(count: int = 20, vc_dir: Path | None = None, keep_up: bool = False) -> dict[str, object]:
    """``count`` running instances on node2, then ``gnt-node evacuate -f -p -I hail node2`` (timed:
    hail plans, the migrations run as Ganeti's jobs); every instance checked running elsewhere."""
    names = [f"instance{i + 1}" for i in range(count)]
    with _cluster_with(names, vc_dir, keep_up) as st:
        _add_all(st, names, st.nodes[1])
        t0 = time.monotonic()
        vcluster.run_on(st, ["gnt-node", "evacuate", "-f", "-p", "-I", "hail", st.nodes[1]])
        seconds = time.monotonic() - t0
        where = _primaries(st)
        stayed = sorted(n for n in names if where.get(n, st.nodes[1]) == st.nodes[1])
        if stayed:
            raise vcluster.VClusterError(f"evacuate: still on {st.nodes[1]} or not running: {stayed}")
        return {"count": count, "seconds": round(seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep-up", action="store_true",
                    help="leave a cluster this run brought up running")
    ap.add_argument("--iallocator", action="store_true",
                    help="let the default iallocator choose migrate/failover targets")
    args = ap.parse_args(argv)
    try:
        result = measure_ganeti(args.reps, args.dir, args.keep_up, args.iallocator)
    except (vcluster.VClusterError, ValueError) as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
