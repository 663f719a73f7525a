#!/usr/bin/env python
"""Orchestration benchmark: herd beside Ganeti, in one run, as ratios.

Run as root from the repository (after scripts/setup.sh):

    /opt/herd/venv/bin/python bench/orchestration/run.py [--reps 5] [--skip-ganeti] [--skip-kvm]

What it measures (issues 4 and 6):
  * instance create, from task start to a running guest process:
    herd `instance` with the fake and the kvm hypervisor; Ganeti
    `gnt-instance add` on its virtual cluster with its fake hypervisor;
  * `instance_migrate` and `instance_failover` (fake hypervisor) beside
    `gnt-instance migrate` / `failover` (fake);
  * live migration of a kvm guest with N MiB of dirty memory against the
    physical limit N / migration_bandwidth, and the downtime QEMU reports
    against the requested migration_downtime; over TLS with the cluster's
    certificates (the default) and, for two of the cases, over plain TCP
    (the nodes' certificate directories moved aside for those runs);
  * evacuation of a node with 6 kvm guests, max_parallel 1 versus 6;
  * a rebalance of 45 fake sharedfile instances placed on one node of three
    beside Ganeti's `hbal -L -X` on the same layout (bench/orchestration/rebalance.py).

HERD_VCLUSTER_NAME names herd's benchmark cluster (default herdbench).

herd's times are the module task's duration as Ansible records it (task
start to task end on the master; the task ends once the QEMU process runs
or the migration is finalized). Ganeti's are the wall time of the gnt-*
command. Results: a markdown table on stdout and in bench/orchestration/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import ansible_run  # noqa: E402
from vcluster import VCluster  # noqa: E402

# HERD_VCLUSTER_NAME: so that runs from several checkouts on one machine do not collide
CLUSTER = os.environ.get("HERD_VCLUSTER_NAME", "herdbench")


def task_seconds(inventory: Path, module: str, args: dict[str, Any]) -> float:
    """Run one herd.cluster module on node1; the task's duration in seconds."""
    result = ansible_run.module(inventory, "node1", module, args)
    if result.get("failed"):
        raise RuntimeError(f"{module} {args.get('name', '')} failed: {result.get('msg')}")
    return result["duration"]["end"] - result["duration"]["start"]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def guest_paths() -> dict[str, str]:
    out = subprocess.run(["/usr/bin/python3", str(REPO / "tests" / "guest" / "build.py")], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def kvm_args(guest: dict[str, str], name: str, memory: str = "128M", kernel_args: str = "", **extra: Any
             ) -> dict[str, Any]:
    args = {"name": name, "state": "running", "hypervisor": "kvm", "disk_template": "sharedfile",
            "disks": ["64M"], "memory": memory, "vcpus": 1, "nics": [{"link": "br0"}],
            "hvparams": {"kernel_path": guest["kernel"], "initrd_path": guest["initrd"], "accel": "tcg",
                         "kernel_args": f"console=ttyS0 quiet {kernel_args}".strip()}}
    args.update(extra)
    return args


def herd_fake(inventory: Path, reps: int) -> dict[str, Any]:
    create, migrate, failover = [], [], []
    for i in range(reps):
        name = f"bfake{i}"
        create.append(task_seconds(inventory, "instance", {"name": name, "state": "running", "hypervisor": "fake",
                                                           "disk_template": "sharedfile", "disks": ["64M"],
                                                           "memory": "128M"}))
        migrate.append(task_seconds(inventory, "instance_migrate", {"name": name}))
        failover.append(task_seconds(inventory, "instance_failover", {"name": name}))
    for i in range(reps):
        ansible_run.module(inventory, "node1", "instance", {"name": f"bfake{i}", "state": "absent"})
    return {"add": summary(create), "migrate": summary(migrate), "failover": summary(failover)}


FLEET = 50
EVACUATE = 20


def fleet_specs(count: int, prefix: str, state: str = "running") -> list[dict[str, Any]]:
    return [{"name": f"{prefix}{i}", "state": state, "hypervisor": "fake", "disk_template": "diskless",
             "memory": "128M", "vcpus": 1} for i in range(count)]


def herd_fleet(inventory: Path, count: int = FLEET) -> dict[str, float]:
    """Converge ``count`` declared instances: the instances role (one herd.cluster.instances task),
    and, for comparison, one herd.cluster.instance task per instance as the role did before."""
    out: dict[str, float] = {}
    # as on Ganeti's side (bench/ganeti/measure.py): 32 vCPUs per CPU, so 50 one-vCPU instances fit
    ansible_run.module(inventory, "node1", "cluster", {"name": "herd-vcluster", "ipolicy": {"vcpu-ratio": 32}})
    playbook = REPO / "tests" / "integration" / "playbooks" / "instances.yml"
    t0 = time.monotonic()
    run = ansible_run.playbook(inventory, playbook, {"herd_instances": fleet_specs(count, "fleet")}, timeout=3600)
    out["role_playbook_s"] = time.monotonic() - t0
    if run.rc != 0:
        raise RuntimeError(f"instances role failed: {run!r}")
    task = run.result("Converge declared instances", "node1")
    if task.get("failures") or len(task["instances"]) != count:
        raise RuntimeError(f"fleet converge incomplete: {task.get('msg')}")
    out["bulk_task_s"] = task["duration"]["end"] - task["duration"]["start"]
    ansible_run.module(inventory, "node1", "instances", {"instances": fleet_specs(count, "fleet", "absent")})
    play = [{"hosts": "node1", "gather_facts": False, "tasks": [
        {"name": "one task per instance", "herd.cluster.instance": "{{ item }}",
         "loop": fleet_specs(count, "seq")}]}]
    path = REPO / ".build" / "bench-fleet-sequential.yml"
    path.write_text(json.dumps(play))
    t0 = time.monotonic()
    run = ansible_run.playbook(inventory, path, timeout=3600)
    out["sequential_tasks_s"] = time.monotonic() - t0
    path.unlink()
    if run.rc != 0:
        raise RuntimeError(f"sequential fleet failed: {run!r}")
    ansible_run.module(inventory, "node1", "instances", {"instances": fleet_specs(count, "seq", "absent")})
    return out


def herd_evacuate(inventory: Path, count: int = EVACUATE) -> dict[str, float]:
    """``count`` running fake instances (sharedfile, so they can migrate; Ganeti's diskless ones
    can) on node2, then herd.cluster.node_evacuate of node2's primaries, sequential and 8 at once."""
    out: dict[str, float] = {}
    for parallel in (1, 8):
        specs = [dict(spec, disk_template="sharedfile", disks=["64M"], primary_node="node2")
                 for spec in fleet_specs(count, f"evac{parallel}-")]
        ansible_run.module(inventory, "node1", "instances", {"instances": specs})
        out[f"max_parallel={parallel}"] = task_seconds(inventory, "node_evacuate", {
            "node": "node2", "mode": "primary", "max_parallel": parallel})
        absent = fleet_specs(count, f"evac{parallel}-", "absent")
        ansible_run.module(inventory, "node1", "instances", {"instances": absent})
    return out


def herd_kvm_create(inventory: Path, guest: dict[str, str], reps: int) -> dict[str, Any]:
    times = []
    for i in range(reps):
        times.append(task_seconds(inventory, "instance", kvm_args(guest, f"bkvm{i}")))
        remove = {"name": f"bkvm{i}", "state": "absent", "shutdown_timeout": 5}
        ansible_run.module(inventory, "node1", "instance", remove)
    return {"add": summary(times)}


def wait_dirty(vcluster: VCluster, node: str, name: str, timeout: float = 300) -> None:
    """Until the guest says it dirtied its memory (serial console log on the node)."""
    code = ("import socket,sys,time\n"
            f"s=socket.socket(socket.AF_UNIX); s.connect('/run/herd/kvm/{name}.serial'); s.settimeout(5)\n"
            "buf=b''\nend=time.time()+%d\n"
            "while time.time()<end and b'herd-counter' not in buf:\n"
            "    try: buf+=s.recv(4096)\n"
            "    except OSError: pass\n"
            "print('ok' if b'herd-counter' in buf else 'timeout')\n") % int(timeout)
    out = vcluster.exec(node, ["python3", "-c", code], timeout=timeout + 30).stdout.strip()
    if out != "ok":
        raise RuntimeError(f"{name} did not finish dirtying its memory")


CRYPTO_DIR = "/var/lib/herd/crypto"


def set_plain_tcp(vcluster: VCluster, plain: bool) -> None:
    """A node without certificates migrates over plain TCP: move them aside on every node, or back."""
    src, dst = (CRYPTO_DIR, CRYPTO_DIR + ".bench-off") if plain else (CRYPTO_DIR + ".bench-off", CRYPTO_DIR)
    for node in vcluster.node_names:
        vcluster.exec(node, ["mv", "-T", src, dst], check=True)


def herd_kvm_migration(inventory: Path, vcluster: VCluster, guest: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    bandwidth = 128  # MiB/s
    cases = [(0, 30, "tls"), (128, 30, "tls"), (384, 30, "tls"), (384, 300, "tls"),
             (0, 30, "plain"), (384, 30, "plain")]
    for dirty, downtime, transport in cases:
        name = f"bmig{dirty}-{downtime}-{transport}"
        args = kvm_args(guest, name, memory="512M", kernel_args=f"herd.dirty={dirty}" if dirty else "")
        args["hvparams"].update({"migration_bandwidth": bandwidth, "migration_downtime": downtime})
        result = ansible_run.module(inventory, "node1", "instance", args)
        node = result["instance"]["primary_node"]
        wait_dirty(vcluster, node, name)
        if transport == "plain":
            set_plain_tcp(vcluster, True)
        try:
            migrated = ansible_run.module(inventory, "node1", "instance_migrate", {"name": name})
        finally:
            if transport == "plain":
                set_plain_tcp(vcluster, False)
        stats = migrated.get("migration", {})
        seconds = migrated["duration"]["end"] - migrated["duration"]["start"]
        limit = max(dirty, 1) / bandwidth
        rows.append({"dirty_mib": dirty, "bandwidth": bandwidth, "requested_downtime_ms": downtime,
                     "task_s": seconds, "qemu_total_ms": stats.get("total_time_ms"),
                     "downtime_ms": stats.get("downtime_ms"), "transferred_mib": (stats.get("transferred") or 0) / 2**20,
                     "limit_s": limit, "transport": transport})
        ansible_run.module(inventory, "node1", "instance", {"name": name, "state": "absent", "shutdown_timeout": 5})
    return rows


def herd_evacuation(inventory: Path, guest: dict[str, str]) -> dict[str, float]:
    out = {}
    for parallel in (1, 6):
        names = [f"bev{parallel}-{i}" for i in range(6)]
        for name in names:
            ansible_run.module(inventory, "node1", "instance", kvm_args(guest, name, primary_node="node2"))
        out[f"max_parallel={parallel}"] = task_seconds(inventory, "node_evacuate",
                                                       {"node": "node2", "mode": "primary",
                                                        "max_parallel": parallel})
        for name in names:
            remove = {"name": name, "state": "absent", "shutdown_timeout": 5}
            ansible_run.module(inventory, "node1", "instance", remove)
    return out


def breakdown_rows(reps: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "bench" / "orchestration"))
    import breakdown  # bench/orchestration/breakdown.py

    return breakdown.collect(CLUSTER, reps)


def ganeti(reps: int, fleet: bool) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "bench" / "ganeti"))
    import measure  # bench/ganeti/measure.py

    out = measure.measure_ganeti(reps, keep_up=fleet)
    if fleet:
        try:
            out["evacuate"] = measure.measure_evacuate(EVACUATE, keep_up=True)
            out["fleet"] = measure.measure_fleet(FLEET, keep_up=True)
        finally:
            measure.vcluster.down(measure.vcluster.DEFAULT_DIR)  # measure_ganeti brought it up
    return out


def ganeti_rebalance() -> dict[str, Any]:
    """hbal -L -X on Ganeti's virtual cluster (brought up here and down again)."""
    sys.path.insert(0, str(REPO / "bench" / "orchestration"))
    import rebalance  # bench/orchestration/rebalance.py

    vc = rebalance._vcluster()
    started = not vc.is_up(vc.DEFAULT_DIR)
    try:
        return rebalance.ganeti_rebalance()
    finally:
        if started:
            vc.down(vc.DEFAULT_DIR)


def herd_rebalance(inventory: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "bench" / "orchestration"))
    import rebalance  # bench/orchestration/rebalance.py

    return rebalance.herd_rebalance(inventory)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(results: dict[str, Any]) -> str:
    lines = ["# Orchestration benchmark", "", f"Run {time.strftime('%Y-%m-%d %H:%M')} UTC on this machine "
             "(2 cores; QEMU under TCG; herd through ansible-playbook on its virtual cluster).", ""]
    g = (results.get("ganeti") or {}).get("operations")  # measure_ganeti's per-operation summaries
    f = results["herd_fake"]
    lines += ["## herd (fake hypervisor) beside Ganeti (fake hypervisor), median seconds", "",
              "| operation | herd | Ganeti | herd/Ganeti |", "|---|---|---|---|"]
    # herd's add ends with the guest running; Ganeti's --no-install add does not start it, so the
    # comparison is with its add + startup (measure.py's add_to_running)
    ganeti_key = {"add": "add_to_running", "migrate": "migrate", "failover": "failover"}
    for op in ("add", "migrate", "failover"):
        gm = g[ganeti_key[op]]["median"] if g and ganeti_key[op] in g else None
        lines.append(f"| {op} | {f[op]['median']:.2f} | {gm if gm is None else f'{gm:.2f}'} | "
                     f"{ratio(f[op]['median'], gm) if gm else 'n/a'} |")
    lines += ["", "herd: the module task's duration as Ansible records it (module shipped to and run on the "
              "master, its RPCs to the nodes over SSH); Ganeti: the wall time of the gnt-* command on its master."]
    if "fleet" in results:
        fl = results["fleet"]
        gf = ((results.get("ganeti") or {}).get("fleet") or {}).get("seconds")
        lines += ["", f"## Converging {FLEET} declared instances (fake hypervisor, diskless, running)", "",
                  "| way | seconds | herd/Ganeti |", "|---|---|---|",
                  f"| Ganeti: {FLEET} x `gnt-instance add --submit -I hail`, first submit to last job end | "
                  f"{gf if gf is None else f'{gf:.1f}'} | |",
                  f"| herd: instances role, the one herd.cluster.instances task | {fl['bulk_task_s']:.1f} | "
                  f"{ratio(fl['bulk_task_s'], gf) if gf else 'n/a'} |",
                  f"| herd: instances role, whole playbook (with the instance table) | {fl['role_playbook_s']:.1f} | "
                  f"{ratio(fl['role_playbook_s'], gf) if gf else 'n/a'} |",
                  f"| herd: {FLEET} herd.cluster.instance tasks (the role before the bulk path) | "
                  f"{fl['sequential_tasks_s']:.1f} | {ratio(fl['sequential_tasks_s'], gf) if gf else 'n/a'} |"]
    if "evacuate" in results:
        ev = results["evacuate"]
        ge = ((results.get("ganeti") or {}).get("evacuate") or {}).get("seconds")
        lines += ["", f"## Evacuating the primaries of a node with {EVACUATE} running fake instances", "",
                  "| way | seconds | herd/Ganeti |", "|---|---|---|",
                  f"| Ganeti: `gnt-node evacuate -f -p -I hail` | {ge if ge is None else f'{ge:.1f}'} | |"]
        for key, seconds in sorted(ev.items()):
            lines.append(f"| herd: node_evacuate mode=primary {key} | {seconds:.1f} | "
                         f"{ratio(seconds, ge) if ge else 'n/a'} |")
    if "herd_kvm" in results:
        k = results["herd_kvm"]["add"]["median"]
        gm = g["add_to_running"]["median"] if g else None
        lines += ["", f"herd `instance` with kvm (task start to a running QEMU): median {k:.2f} s"
                  + (f", {ratio(k, gm)} x Ganeti's fake-hypervisor add" if gm else "")]
    if "migration" in results:
        # the physical limit is what QEMU really sent over the link at the capped bandwidth; the guest
        # cannot dirty all it was asked to (its 512 MiB also hold the kernel and the initramfs)
        lines += ["", "## Live migration of a 512 MiB kvm guest with dirty memory", "",
                  "| transport | dirty MiB asked | MiB sent | bandwidth MiB/s | limit s (sent/bandwidth) | QEMU total s "
                  "| total/limit | task s | requested downtime ms | downtime ms |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["migration"]:
            total = (r["qemu_total_ms"] or 0) / 1000
            sent = r.get("transferred_mib") or 0
            limit = sent / r["bandwidth"]
            lines.append(f"| {r.get('transport', 'plain')} | {r['dirty_mib']} | {sent:.0f} | {r['bandwidth']} | {limit:.2f} | {total:.2f} | "
                         f"{ratio(total, limit)} | {r['task_s']:.2f} | {r['requested_downtime_ms']} | "
                         f"{r['downtime_ms']} |")
    if "evacuation" in results:
        e = results["evacuation"]
        lines += ["", "## Evacuation of a node with 6 kvm guests", "",
                  f"max_parallel=1: {e['max_parallel=1']:.1f} s; max_parallel=6: {e['max_parallel=6']:.1f} s; "
                  f"sequential/parallel = {ratio(e['max_parallel=1'], e['max_parallel=6'])}"]
    if "rebalance" in results:
        hr = results["rebalance"]
        gr = (results.get("ganeti") or {}).get("rebalance") or {}
        lines += ["", f"## Rebalancing {hr['count']} running fake sharedfile instances placed on one node of three", "",
                  "| way | planned moves | instances moved | seconds | herd/Ganeti |", "|---|---|---|---|---|"]
        if gr:
            lines.append(f"| Ganeti: `hbal -L -X` (after: {gr['after']}) | {gr['planned_moves']} | {gr['moved']} | "
                         f"{gr['seconds']:.1f} | |")
        lines.append(f"| herd: rebalance execute=true (after: {hr['after']}) | {hr['planned_moves']} | {hr['moved']} | "
                     f"{hr['seconds']:.1f} | {ratio(hr['seconds'], gr['seconds']) if gr else 'n/a'} |")
    if "breakdown" in results:
        sys.path.insert(0, str(REPO / "bench" / "orchestration"))
        import breakdown  # bench/orchestration/breakdown.py

        lines += ["", breakdown.report(results["breakdown"])]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--skip-ganeti", action="store_true")
    parser.add_argument("--skip-kvm", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--skip-breakdown", action="store_true")
    parser.add_argument("--skip-rebalance", action="store_true")
    parser.add_argument("--only-herd-fleet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="leave the benchmark cluster up")
    options = parser.parse_args()
    results: dict[str, Any] = {}
    if not options.skip_ganeti:
        results["ganeti"] = ganeti(options.reps, not options.skip_fleet)
        if not options.skip_rebalance:
            results["ganeti"]["rebalance"] = ganeti_rebalance()
    inventory = REPO / "inventories" / "vcluster" / f"hosts-{CLUSTER}.yml"
    vcluster = VCluster.up(CLUSTER, nodes=3, inventory=inventory)
    try:
        site = ansible_run.playbook(inventory, REPO / "playbooks" / "site.yml")
        if site.rc != 0:
            raise RuntimeError(f"site.yml failed: {site!r}")
        steps: list[Callable[[], None]] = [lambda: results.__setitem__("herd_fake", herd_fake(inventory, options.reps))]
        if not options.skip_fleet:
            steps.append(lambda: results.__setitem__("fleet", herd_fleet(inventory)))
            steps.append(lambda: results.__setitem__("evacuate", herd_evacuate(inventory)))
        if not options.skip_rebalance:
            steps.append(lambda: results.__setitem__("rebalance", herd_rebalance(inventory)))
        if not options.skip_kvm:
            guest = guest_paths()
            steps += [lambda: results.__setitem__("herd_kvm", herd_kvm_create(inventory, guest, min(options.reps, 3))),
                      lambda: results.__setitem__("migration", herd_kvm_migration(inventory, vcluster, guest)),
                      lambda: results.__setitem__("evacuation", herd_evacuation(inventory, guest))]
        if not options.skip_breakdown:
            steps.append(lambda: results.__setitem__("breakdown", breakdown_rows(min(options.reps, 3))))
        for step in steps:
            step()
    finally:
        if not options.keep:
            vcluster.down()
    # raw numbers first, so a report bug never loses a run
    (REPO / "bench" / "orchestration" / "results.json").write_text(json.dumps(results, indent=1))
    text = report(results)
    (REPO / "bench" / "orchestration" / "RESULTS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
