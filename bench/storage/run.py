#!/usr/bin/env python
"""Real storage on Debian VM nodes (scripts/vmcluster): what DRBD costs, in one run.

    /opt/herd/venv/bin/python bench/storage/run.py                 # 2 VM nodes, up and down again
    /opt/herd/venv/bin/python bench/storage/run.py --name bs --keep
    /opt/herd/venv/bin/python bench/storage/run.py --name bs --reuse   # a kept cluster, site.yml done

On two VM nodes that run real LVM and real DRBD 8.4 (herd's node roles, its
cluster init and node add, a shared directory mounted on both nodes for
``sharedfile``), side by side:

* initial sync: a new drbd instance's disk synced from its primary to its
  secondary (``wait_for_sync: false``; the secondary's received bytes and the
  time until UpToDate/UpToDate, read from /proc/drbd on the node itself)
  against raw write throughput of an LV of the same size in the same volume
  group on the same node (``dd oflag=direct``) — ratio sync / raw;
* resync after a disconnect: the primary disconnected, N MiB written at
  spread offsets, reconnected; the bytes the secondary received during the
  resync against the bytes dirtied (and DRBD's own out-of-sync count);
* migration and failover (fake hypervisor, as Ganeti's virtual cluster
  benchmark: what is timed is the orchestration and the storage steps, DRBD's
  dual-primary promote and demote against nothing for sharedfile), each an
  ``ansible-playbook`` task as the operator runs it, median of ``--reps``.

The VM nodes are TCG guests whose disks are qcow2 files on the host with
``cache=unsafe`` and whose network is virtio over host bridges: absolute
throughputs say little about hardware, the ratios are the result. Results go to
stdout and to bench/storage/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "vm"))

from vmnodes import VMCluster, drbd_minor_of, script, vm_skip_reason  # noqa: E402

import ansible_run  # noqa: E402  (tests/integration, on the path through vmnodes)

SHARED = "/srv/herd/shared-file-storage"
VG = "gnt"
NODES = ("node1", "node2")

# Read on the node itself, so that SSH round trips do not blur the timings: the
# minor's line of /proc/drbd and its counters every 50 ms until UpToDate/UpToDate
# on both sides; prints JSON {first, last, nr_first, nr_last, oos_first, samples}.
WATCH_SYNC = r"""
import json, re, sys, time
minor, timeout = sys.argv[1], float(sys.argv[2])  # minor: a number or a pattern
line = re.compile(r"^\s*" + minor + r": cs:(\S+) ro:\S+ ds:(\S+)")
def sample():
    text = open("/proc/drbd").read().splitlines()
    for i, row in enumerate(text):
        m = line.match(row)
        if m and i + 1 < len(text):
            counters = dict(kv.split(":", 1) for kv in text[i + 1].split() if ":" in kv)
            return m.group(1), m.group(2), int(counters.get("nr", 0)), int(counters.get("oos", 0))
    return None
out, deadline = {"samples": 0}, time.monotonic() + timeout
while time.monotonic() < deadline:
    s = sample()
    now = time.monotonic()
    if s:
        cs, ds, nr, oos = s
        out["samples"] += 1
        if "first" not in out:
            out.update(first=now, nr_first=nr, oos_first=oos, cs_first=cs)
        out.update(last=now, nr_last=nr, cs=cs, ds=ds)
        if cs == "Connected" and ds == "UpToDate/UpToDate":
            break
    time.sleep(0.05)
print(json.dumps(out))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, vm: VMCluster, inventory: Path) -> None:
        self.vm = vm
        self.inventory = inventory

    def module(self, name: str, args: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        t0 = time.monotonic()
        result = ansible_run.module(self.inventory, "node1", name, args, timeout=1800)
        elapsed = time.monotonic() - t0
        if result.get("failed"):
            raise SystemExit(f"{name} {args.get('name')}: {result.get('msg') or result}")
        return elapsed, result

    def sh(self, node: str, command: str, timeout: float = 900) -> str:
        return self.vm.sh(node, command, timeout=timeout).stdout

    def instance(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.module("instance", {"name": name, "state": "running", "hypervisor": "fake",
                                        "memory": "128M", "vcpus": 1, "primary_node": "node1", **spec})[1]

    def remove(self, name: str) -> None:
        self.module("instance", {"name": name, "state": "absent", "shutdown_timeout": 5})

    def raw_write(self, node: str, size_mib: int) -> float:
        """MiB/s of one direct sequential write of an LV of size_mib in the cluster's VG."""
        self.sh(node, f"lvcreate -q -y -L {size_mib}m -n benchraw {VG} >/dev/null")
        try:
            out = self.sh(node, f"dd if=/dev/zero of=/dev/{VG}/benchraw bs=1M count={size_mib} "
                                "oflag=direct conv=fsync 2>&1")
        finally:
            self.sh(node, f"lvremove -q -y {VG}/benchraw >/dev/null")
        seconds = float(re.search(r"copied, ([0-9.]+) s", out).group(1))
        return size_mib / seconds

    def watch(self, node: str, minor: int | str, timeout: float = 1800) -> subprocess.Popen[str]:
        """Start WATCH_SYNC on node (``minor``: a number, or a pattern); returns the running ssh process."""
        return subprocess.Popen(
            ["ssh", "-i", self.vm.state["private_key"], "-o", f"UserKnownHostsFile={self.vm.state['known_hosts']}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{self.vm.node(node)['primary_ip']}",
             "python3", "-c", shlex.quote(WATCH_SYNC), shlex.quote(str(minor)), str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def initial_sync(self, size_mib: int) -> dict[str, Any]:
        name = "sync1.bench"
        # watching from before the create: the first minor that appears is the new disk's
        proc = self.watch("node2", r"\d+")
        try:
            self.instance(name, disk_template="drbd", disks=[f"{size_mib}M"], secondary_node="node2",
                          wait_for_sync=False)
            seen = json.loads(proc.communicate(timeout=1900)[0])
            if seen.get("ds") != "UpToDate/UpToDate":
                raise SystemExit(f"initial sync did not finish: {seen}")
            mib = (seen["nr_last"] - seen["nr_first"]) / 1024
            seconds = seen["last"] - seen["first"]
            return {"size_mib": size_mib, "watched_mib": round(mib), "seconds": round(seconds, 1),
                    "mib_s": mib / seconds if seconds else float("nan"), "first_state": seen["cs_first"]}
        finally:
            if proc.poll() is None:
                proc.kill()
            self.remove(name)

    def resync(self, size_mib: int, dirty_mib: int) -> dict[str, Any]:
        name = "resync1.bench"
        self.instance(name, disk_template="drbd", disks=[f"{size_mib}M"], secondary_node="node2")
        try:
            minor1, minor2 = drbd_minor_of(self.vm, "node1"), drbd_minor_of(self.vm, "node2")
            (resfile,) = self.sh("node1", "ls /etc/herd/drbd/ | grep '\\.res$'").split()
            resource = resfile[:-len(".res")]
            self.sh("node1", f"drbdadm disconnect {resource}")
            stride = size_mib // dirty_mib
            self.sh("node1", "head -c 1M /dev/urandom > /tmp/bench-chunk && for i in $(seq 0 "
                             f"{dirty_mib - 1}); do dd if=/tmp/bench-chunk of=/dev/drbd{minor1} bs=1M count=1 "
                             f"seek=$((i * {stride})) oflag=direct conv=notrunc status=none; done; "
                             "rm -f /tmp/bench-chunk")
            oos_kib = int(re.search(rf"^\s*{minor1}: .*\n.*oos:(\d+)", self.sh("node1", "cat /proc/drbd"),
                                    re.M).group(1))
            proc = self.watch("node2", minor2)
            time.sleep(0.5)
            t0 = time.monotonic()
            self.sh("node1", f"drbdadm connect {resource}")
            seen = json.loads(proc.communicate(timeout=1900)[0])
            wall = time.monotonic() - t0
            if seen.get("ds") != "UpToDate/UpToDate":
                raise SystemExit(f"resync did not finish: {seen}")
            return {"size_mib": size_mib, "dirtied_mib": dirty_mib, "oos_mib": oos_kib / 1024,
                    "resynced_mib": (seen["nr_last"] - seen["nr_first"]) / 1024, "seconds": round(wall, 1)}
        finally:
            self.remove(name)

    def moves(self, reps: int) -> dict[str, dict[str, list[float]]]:
        """Migration and failover times of a drbd and a sharedfile instance, interleaved."""
        names = {"drbd": "mig-drbd.bench", "sharedfile": "mig-shared.bench"}
        self.instance(names["drbd"], disk_template="drbd", disks=["256M"], secondary_node="node2")
        self.instance(names["sharedfile"], disk_template="sharedfile", disks=["256M"])
        times: dict[str, dict[str, list[float]]] = {t: {"migrate": [], "failover": []} for t in names}
        try:
            for rep in range(reps):
                for template, name in names.items():
                    # there and back: node1 -> node2 by migration, node2 -> node1 by failover
                    there: dict[str, Any] = {"name": name}
                    back: dict[str, Any] = {"name": name}
                    if template == "sharedfile":  # no secondary: the target is named
                        there["target_node"], back["target_node"] = "node2", "node1"
                    times[template]["migrate"].append(self.module("instance_migrate", there)[0])
                    times[template]["failover"].append(self.module("instance_failover", back)[0])
                log(f"moves rep {rep + 1}/{reps}: " + ", ".join(
                    f"{t} migrate {v['migrate'][-1]:.1f} s failover {v['failover'][-1]:.1f} s"
                    for t, v in times.items()))
        finally:
            for name in names.values():
                self.remove(name)
        return times


def write_inventory(dest: Path) -> Path:
    """The VM test bed's group_vars with sharedfile enabled on the shared directory."""
    group_vars = dest / "group_vars"
    if group_vars.exists():
        shutil.rmtree(group_vars)
    shutil.copytree(REPO / "inventories" / "vmcluster" / "group_vars", group_vars)
    values = yaml.safe_load((group_vars / "herd_nodes.yml").read_text())
    values["herd_cluster"]["enabled_disk_templates"].append("sharedfile")
    values["herd_cluster"]["shared_file_storage_dir"] = SHARED
    (group_vars / "herd_nodes.yml").write_text(yaml.safe_dump(values, sort_keys=False))
    return dest / "hosts.yml"


def report(raw: dict[str, float], sync: dict[str, Any], resync: dict[str, Any],
           moves: dict[str, dict[str, list[float]]], reps: int, load: tuple[float, float, float]) -> str:
    med = {t: {op: statistics.median(v) for op, v in ops.items()} for t, ops in moves.items()}
    lines = [
        f"# Real storage on VM nodes ({time.strftime('%Y-%m-%d %H:%M')}, `bench/storage/run.py`, host load "
        f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)",
        "",
        "Two TCG VM nodes, DRBD 8.4, herd's node_drbd defaults (c-plan-ahead 20, c-min-rate 100M, "
        "c-max-rate 1G); disks are qcow2 files with cache=unsafe on the host, so only the ratios mean "
        "something.",
        "",
        "| measure | herd / drbd | reference | ratio |",
        "|---|---|---|---|",
        f"| initial sync of {sync['size_mib']} MiB (node1 → node2), MiB/s | {sync['mib_s']:.1f} "
        f"({sync['watched_mib']} MiB watched in {sync['seconds']} s) | raw direct write of an LV on node2: "
        f"{raw['node2']:.1f} (node1: {raw['node1']:.1f}) | {sync['mib_s'] / raw['node2']:.2f} |",
        f"| resync after a disconnect, MiB sent | {resync['resynced_mib']:.1f} in {resync['seconds']} s "
        f"(DRBD's out-of-sync count {resync['oos_mib']:.1f}) | {resync['dirtied_mib']} MiB dirtied at spread "
        f"offsets of a {resync['size_mib']} MiB disk | {resync['resynced_mib'] / resync['dirtied_mib']:.2f} |",
    ]
    for op in ("migrate", "failover"):
        lines.append(f"| {op} (fake hypervisor, median of {reps}), s | {med['drbd'][op]:.1f} | sharedfile: "
                     f"{med['sharedfile'][op]:.1f} | {med['drbd'][op] / med['sharedfile'][op]:.2f} |")
    lines += ["", "Every time: " + json.dumps({t: {op: [round(x, 1) for x in v] for op, v in ops.items()}
                                               for t, ops in moves.items()}), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--name", default="bstor", help="VM cluster name (default bstor)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    parser.add_argument("--reuse", action="store_true", help="use a kept cluster on which site.yml ran")
    parser.add_argument("--size", type=int, default=1024, help="MiB of the synced disk (default 1024)")
    parser.add_argument("--dirty", type=int, default=64, help="MiB dirtied while disconnected (default 64)")
    parser.add_argument("--reps", type=int, default=5, help="migrations and failovers of each (default 5)")
    args = parser.parse_args()
    reason = vm_skip_reason()
    if reason:
        raise SystemExit(reason)
    inv_dir = REPO / ".build" / f"bench-storage-{args.name}"
    inventory = write_inventory(inv_dir)
    try:
        if not args.reuse:
            script("build-image", timeout=3600)
            t0 = time.monotonic()
            script("up", "--name", args.name, "--nodes", str(len(NODES)), "--shared-dir", SHARED,
                   "--inventory", str(inventory), timeout=1800)
            log(f"{len(NODES)} VM nodes up in {time.monotonic() - t0:.0f} s")
            t0 = time.monotonic()
            site = ansible_run.playbook(inventory, REPO / "playbooks" / "site.yml", timeout=3600)
            if site.rc != 0:
                raise SystemExit(f"site.yml failed: {site!r}\n{site.proc.stdout[-4000:]}")
            log(f"site.yml in {time.monotonic() - t0:.0f} s")
        state = json.loads(script("status", "--name", args.name, "--json").stdout)
        bench = Bench(VMCluster(args.name, state, inventory), inventory)
        load = os.getloadavg()
        raw = {node: bench.raw_write(node, args.size) for node in NODES}
        log(f"raw write MiB/s: {raw}")
        sync = bench.initial_sync(args.size)
        log(f"initial sync: {sync}")
        resync = bench.resync(args.size, args.dirty)
        log(f"resync: {resync}")
        moves = bench.moves(args.reps)
        text = report(raw, sync, resync, moves, args.reps, load)
        print(text)
        (REPO / "bench" / "storage" / "RESULTS.md").write_text(text)
    finally:
        if not args.keep:
            script("down", "--name", args.name, check=False)
            shutil.rmtree(inv_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
