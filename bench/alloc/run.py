#!/usr/bin/env python
"""Side-by-side benchmark: herd's allocator vs Ganeti htools (hbal, hspace).

One run, every case:

* generated clusters (bench/alloc/gen.py): 4, 20, 100 and 400 nodes with
  mixed node sizes, mixed drbd/plain instances, exclusion tags and an
  unbalanced start; the 100-node cluster is balanced twice, with 20 moves
  (``-l 20``) and completely;
* Ganeti's own data (Debian's ganeti-testsuite, unpacked by scripts/setup.sh):
  every hbal case of tests/unit/allocator/htools_live.py (same options) and
  the hspace cases.

Per case: final score of herd and hbal, both re-scored by herd's score
function after loading each final state with the same loader options, the
number of moves, the standard and tiered capacity (herd vs hspace, both with
``--no-capacity-checks``; generated clusters also ``--accept-existing``
because they start N+1-unhealthy on purpose) and wall time.  htools gets
``--timeout`` seconds per case; the table says ``timeout`` when it does not
finish.  Output: markdown on stdout and in bench/alloc/results.md.

    /opt/herd/venv/bin/python bench/alloc/run.py [--timeout 120] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "unit", "allocator"))
sys.path.insert(0, HERE)

from gen import generate  # noqa: E402
from htools_live import HSPACE_DATA, HTOOLS, hbal_cases  # noqa: E402

from gen import iallocator_message  # noqa: E402

from plugins.module_utils.herd.allocator import iallocator  # noqa: E402
from plugins.module_utils.herd.allocator import score as hscore  # noqa: E402
from plugins.module_utils.herd.allocator.balance import BalanceOptions, balance  # noqa: E402
from plugins.module_utils.herd.allocator.capacity import capacity  # noqa: E402
from plugins.module_utils.herd.allocator.model import NO_NODE  # noqa: E402
from plugins.module_utils.herd.allocator.text import load_text, parse_text  # noqa: E402

HBAL = "/usr/bin/hbal"
HSPACE = "/usr/bin/hspace"

GENERATED = [
    # name, nodes, instances, max moves (-1 = complete)
    ("gen-4", 4, 40, -1),
    ("gen-20", 20, 200, -1),
    ("gen-100-l20", 100, 1500, 20),
    ("gen-100", 100, 1500, -1),
    ("gen-400", 400, 6000, -1),
    ("gen-400-l0", 400, 6000, 0),       # score only (hbal -l 0)
]
# two node groups (hbal -G group1) and two offline nodes, three seeds
GENERATED_GROUPS = [(f"gen-12-g2-off2-s{seed}", 12, 100, seed, -1) for seed in (1, 2, 3)]
# the same shape at 40 nodes with a move limit (hbal -l 20): groups big enough
# for the pruned candidate search
GENERATED_GROUPS += [(f"gen-40-g2-off2-s{seed}-l20", 40, 400, seed, 20) for seed in (1, 2, 3)]
# capacity (hspace) is compared on these; at 400 nodes neither finishes in a useful time here
CAPACITY_CASES = {"gen-4", "gen-20", "gen-100"}
# IAllocator node-evacuate (all mode) of every instance on one node, beside hail
EVACUATIONS = [
    # name, generated cluster (nodes, instances), node evacuated
    ("evac-20-node001", 20, 200, "node001"),
    ("evac-100-node001", 100, 1500, "node001"),
    ("evac-100-node050", 100, 1500, "node050"),
]
HAIL = "/usr/lib/ganeti/iallocators/hail"


class Case:
    def __init__(self, name: str, path: str, kind: str, group: str | None = None,
                 offline: list[str] | None = None, ignore_dynu: bool = False,
                 ignore_soft: bool = False, evac: bool = False, restricted: bool = False,
                 excl: list[str] | None = None, max_moves: int = -1, legacy_n1: bool = False,
                 hspace: bool = False, hbal: bool = True, accept_existing: bool = False):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def load_kw(self) -> dict:
        return dict(legacy_n1=self.legacy_n1, ignore_dynu=self.ignore_dynu,
                    offline_nodes=self.offline or [], exclusion_tags=self.excl or [])

    def hbal_args(self) -> list[str]:
        a = ["-t", self.path]
        if self.group:
            a += ["-G", self.group]
        for o in self.offline or []:
            a += ["-O", o]
        if self.ignore_dynu:
            a.append("--ignore-dynu")
        if self.ignore_soft:
            a.append("--ignore-soft-errors")
        if self.evac:
            a.append("--evac-mode")
        if self.restricted:
            a.append("--restricted-migration")
        if self.excl:
            a += ["--exclusion-tags", ",".join(self.excl)]
        if self.max_moves >= 0:
            a += ["-l", str(self.max_moves)]
        return a


def replay_score(case: Case, placements: dict[str, tuple[str, str]],
                 group_nodes: list[str]) -> float:
    """Score of the original cluster with the instances put where a tool left
    them.  Only placements are taken from the tool's output (hbal's saved file
    keeps the node free-memory fields of the start), so both tools' results are
    measured by one ruler: herd's score over the same freshly loaded model."""
    with open(case.path, encoding="utf-8") as fh:
        c = load_text(fh.read(), **case.load_kw())
    moved = []
    for name, (p, s) in placements.items():
        if name not in c.inst_by_name:
            continue
        inst = c.instances[c.inst_by_name[name]]
        pdx = c.node_by_name[p]
        sdx = c.node_by_name[s] if s else NO_NODE
        if (pdx, sdx) != (inst.pnode, inst.snode):
            moved.append((inst, pdx, sdx))
    for inst, _new_p, _new_s in moved:
        if inst.snode != NO_NODE:
            c.remove_sec(inst.snode, inst)
        c.remove_pri(inst.pnode, inst)
    for inst, pdx, sdx in moved:
        c.set_inst_nodes(inst, pdx, sdx)
        fail = c.add_pri(pdx, inst, True)
        if fail is None and sdx != NO_NODE:
            fail = c.add_sec(sdx, inst, pdx, True)
        if fail is not None:
            raise RuntimeError(f"replaying {inst.name}: {fail}")
    idx = [c.node_by_name[n] for n in group_nodes if n in c.node_by_name]
    return hscore.score(c, idx)


def placements_of_text(text: str) -> dict[str, tuple[str, str]]:
    c = parse_text(text)
    return {i.name: (c.nodes[i.pnode].name,
                     c.nodes[i.snode].name if i.snode != NO_NODE else "")
            for i in c.instances}


def placements_of_model(c: object) -> dict[str, tuple[str, str]]:
    return {i.name: (c.nodes[i.pnode].name,  # type: ignore[attr-defined]
                     c.nodes[i.snode].name if i.snode != NO_NODE else "")  # type: ignore
            for i in c.instances}  # type: ignore[attr-defined]


def run_herd_balance(case: Case, time_limit: float | None = None) -> dict:
    with open(case.path, encoding="utf-8") as fh:
        text = fh.read()
    t0 = time.monotonic()
    c0 = time.process_time()
    c = load_text(text, **case.load_kw())
    opts = BalanceOptions(group=case.group, ignore_soft_errors=case.ignore_soft,
                          evac_mode=case.evac, restricted_migration=case.restricted,
                          max_moves=case.max_moves, time_limit=time_limit)
    if case.group is None and len({n.group for n in c.nodes}) > 1:
        return {"error": "several groups"}
    res = balance(c, opts)
    wall = time.monotonic() - t0
    cpu = time.process_time() - c0
    r = res[0] if res else None
    gnodes = [n.name for n in c.nodes if r and c.groups[n.group].name == r.group]
    return {"score": replay_score(case, placements_of_model(c), gnodes),
            "stop": r.stop_reason if r else "",
            "moves": len(r.moves) if r else 0,
            "time": cpu, "wall": wall, "nodes": gnodes, "initial": r.initial_score if r else None}


def run_tool(argv: list[str], cpu_limit: float) -> tuple[subprocess.CompletedProcess | None, float,
                                                         float]:
    """Run an htools binary with ``cpu_limit`` CPU seconds (RLIMIT_CPU; a wall
    limit of 10x guards against a stalled child).  Returns (process or None on
    timeout, wall seconds, CPU seconds).  CPU time is what the table compares:
    the benchmark host may be shared, and CPU seconds do not depend on load."""
    lim = max(1, int(cpu_limit))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (lim, lim + 5))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=cpu_limit * 10,
                           check=False, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        p = None
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p is not None and p.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        p = None
    return p, wall, cpu


MOVE_LINE = re.compile(r"^\s*\d+\.\s+(\S+)\s+(\S+)\s+=>\s+(\S+)\s+[0-9.]+\s+a=", re.M)


def run_hbal(case: Case, timeout: float, gnodes: list[str]) -> dict:
    """Run hbal; its final placement is read from the printed move lines
    (``inst old_p:old_s => new_p:new_s score a=...``)."""
    p, wall, cpu = run_tool([HBAL] + case.hbal_args(), timeout)
    if p is None:
        return {"timeout": True, "time": cpu, "wall": wall}
    if p.returncode != 0:
        return {"error": f"rc={p.returncode}", "time": cpu, "wall": wall}
    with open(case.path, encoding="utf-8") as fh:
        placements = placements_of_text(fh.read())
    moves = 0
    for inst, _old, new in MOVE_LINE.findall(p.stdout):
        pn, _sep, sn = new.partition(":")
        placements[inst] = (pn, sn)
        moves += 1
    return {"score": replay_score(case, placements, gnodes), "moves": moves, "time": cpu,
            "wall": wall}


def run_herd_capacity(case: Case) -> dict:
    with open(case.path, encoding="utf-8") as fh:
        text = fh.read()
    t0 = time.monotonic()
    c0 = time.process_time()
    c = load_text(text, **case.load_kw())
    rep = capacity(c, capacity_checks=False, accept_existing=case.accept_existing)
    return {"std": rep.standard.count, "tiered": rep.tiered.count,
            "time": time.process_time() - c0, "wall": time.monotonic() - t0}


def run_hspace(case: Case, timeout: float) -> dict:
    args = [HSPACE, "-t", case.path, "--machine-readable", "--no-capacity-checks"]
    if case.accept_existing:
        args.append("--accept-existing")
    p, wall, cpu = run_tool(args, timeout)
    if p is None:
        return {"timeout": True, "time": cpu, "wall": wall}
    if p.returncode != 0:
        return {"error": f"rc={p.returncode}", "time": cpu, "wall": wall}
    std = re.search(r"HTS_ALLOC_INSTANCES=(\d+)", p.stdout)
    ts = re.search(r"HTS_TSPEC='([^']*)'", p.stdout)
    tiered = sum(int(x.split("=")[1]) for x in ts.group(1).split()) if ts else 0
    return {"std": int(std.group(1)) if std else 0, "tiered": tiered, "time": cpu, "wall": wall}


def run_evacuation(workdir: str, name: str, nodes: int, insts: int, node: str,
                   timeout: float) -> str:
    """One node-evacuate request answered by herd's IAllocator in-process and
    by hail; a markdown row (CPU seconds, and whether the answers are equal)."""
    path = os.path.join(workdir, f"gen-{nodes}.data")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(generate(nodes, insts))
    with open(path, encoding="utf-8") as fh:
        c = load_text(fh.read())
    ndx = c.node_by_name[node]
    names = [i.name for i in c.instances if ndx in (i.pnode, i.snode)]
    msg = iallocator_message(c, {"type": "node-evacuate", "evac_mode": "all",
                                 "instances": names})
    req = os.path.join(workdir, f"{name}.json")
    with open(req, "w", encoding="utf-8") as fh:
        json.dump(msg, fh)
    c0 = time.process_time()
    ours = iallocator.run(iallocator.parse_request(msg))
    cpu = time.process_time() - c0
    p, _wall, hcpu = run_tool([HAIL, req], timeout)
    if p is None or p.returncode != 0:
        theirs, same = "timeout" if p is None else f"rc={p.returncode}", "-"
    else:
        theirs = f"{hcpu:.2f}"
        same = "yes" if json.loads(p.stdout)["result"] == ours["result"] else "no"
    moved, failed = len(ours["result"][0]), len(ours["result"][1])
    return (f"| {name} | {len(names)} | {moved}/{failed} | {cpu:.2f} | {theirs} | "
            f"{ratio(cpu, hcpu) if theirs[0].isdigit() else '-'} | {same} |")


EVAC_HEAD = ("| node-evacuate case | instances | moved/failed | herd cpu s | hail cpu s | ratio | "
             "same answer |\n|---|---|---|---|---|---|---|")


def cases(workdir: str) -> list[Case]:
    out = []
    for name, nodes, insts, lim in GENERATED:
        path = os.path.join(workdir, f"gen-{nodes}.data")
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(generate(nodes, insts))
        # htools 3.0.2's N+1 initialisation, as the hbal/hspace beside it
        out.append(Case(name, path, "generated", max_moves=lim, hspace=name in CAPACITY_CASES,
                        accept_existing=True, legacy_n1=True))
    for name, nodes, insts, seed, lim in GENERATED_GROUPS:
        base = name[:-len("-l20")] if lim == 20 else name
        path = os.path.join(workdir, f"{base}.data")
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(generate(nodes, insts, seed=seed, groups=2, offline=2))
        out.append(Case(name, path, "generated", group="group1", hspace=lim < 0,
                        accept_existing=True, legacy_n1=True, max_moves=lim))
    for k in hbal_cases():
        if k.rc != 0 or k.final is None or not k.data:
            continue
        out.append(Case("ganeti:" + k.name, k.data, "ganeti", k.group, k.offline,
                        k.ignore_dynu, k.ignore_soft, k.evac_mode, k.restricted,
                        k.exclusion_tags, legacy_n1=True))
    for base in HSPACE_DATA:
        out.append(Case("ganeti-hspace:" + base, os.path.join(HTOOLS, base + ".data"),
                        "ganeti", legacy_n1=True, hspace=True, hbal=False))
    return out


def fmt(x: object, nd: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if b == 0:
        return "1.00" if a == 0 else "inf"
    return f"{a / b:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="CPU seconds per htools run (default 120)")
    ap.add_argument("--only", default="",
                    help="comma-separated case names; a trailing * matches a prefix")
    ap.add_argument("--herd-time-limit", type=float, default=300.0,
                    help="wall seconds for one herd rebalance (it stops and reports the moves "
                         "found; default 300)")
    ap.add_argument("--capacity-only", action="store_true",
                    help="skip the balancing runs (herd and hbal); capacity and evacuation only")
    ap.add_argument("--workdir", default=os.path.join(HERE, "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    only = [x for x in args.only.split(",") if x]
    rows = []
    head = ("| case | herd score | hbal score | score ratio | herd moves | hbal moves | "
            "herd cpu s | hbal cpu s | herd std/tiered | hspace std/tiered | capacity ratio | "
            "herd cap cpu s | hspace cpu s |")
    sep = "|" + "---|" * 13
    print(head)
    print(sep, flush=True)
    for case in cases(args.workdir):
        if only and not any(case.name == o or (o.endswith("*") and case.name.startswith(o[:-1]))
                            for o in only):
            continue
        hb = hh = hc = hs = None
        if case.hbal and not args.capacity_only:
            hb = run_herd_balance(case, args.herd_time_limit)
            if "error" not in hb:
                hh = run_hbal(case, args.timeout, hb["nodes"])
        if case.hspace:
            hc = run_herd_capacity(case)
            hs = run_hspace(case, args.timeout)

        def cell(d: dict | None, key: str, nd: int = 4) -> str:
            if d is None:
                return "-"
            if d.get("timeout"):
                return "timeout"
            if "error" in d:
                return d["error"]
            return fmt(d.get(key), nd)
        score_ratio = "-"
        if hb and hh and "score" in hb and "score" in hh:
            score_ratio = ratio(hb["score"], hh["score"])
        cap_cells = ["-", "-", "-", "-", "-"]
        if hc:
            cap_cells[0] = f"{hc['std']}/{hc['tiered']}"
            cap_cells[3] = fmt(hc["time"], 2)
        if hs:
            if hs.get("timeout"):
                cap_cells[1] = "timeout"
            elif "error" in hs:
                cap_cells[1] = hs["error"]
            else:
                cap_cells[1] = f"{hs['std']}/{hs['tiered']}"
                tot_h = hc["std"] + hc["tiered"]
                tot_s = hs["std"] + hs["tiered"]
                cap_cells[2] = ratio(float(tot_h), float(tot_s))
            cap_cells[4] = "timeout" if hs.get("timeout") else fmt(hs["time"], 2)
        herd_moves = cell(hb, "moves")
        if hb and hb.get("stop") == "time limit reached":
            herd_moves += " (time limit)"
        row = (f"| {case.name} | {cell(hb, 'score')} | {cell(hh, 'score')} | {score_ratio} | "
               f"{herd_moves} | {cell(hh, 'moves')} | {cell(hb, 'time', 2)} | "
               f"{cell(hh, 'time', 2)} | {cap_cells[0]} | {cap_cells[1]} | {cap_cells[2]} | "
               f"{cap_cells[3]} | {cap_cells[4]} |")
        rows.append(row)
        print(row, flush=True)
    evac_rows = []
    for name, nodes, insts, node in EVACUATIONS:
        if only and not any(name == o or (o.endswith("*") and name.startswith(o[:-1]))
                            for o in only):
            continue
        if not evac_rows:
            print("\n" + EVAC_HEAD)
        evac_rows.append(run_evacuation(args.workdir, name, nodes, insts, node, args.timeout))
        print(evac_rows[-1], flush=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("# herd allocator vs Ganeti htools 3.0.2\n\n")
        fh.write(f"Command: `/opt/herd/venv/bin/python bench/alloc/run.py --timeout "
                 f"{args.timeout:g}`  \n")
        fh.write(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
                 f"{os.cpu_count()} CPUs (load average at the end: "
                 f"{os.getloadavg()[0]:.1f}).  Times are CPU seconds of the one process "
                 "(herd in-process, htools via getrusage of the child); htools gets "
                 "`--timeout` CPU seconds (RLIMIT_CPU).  Scores: both final states re-scored by herd's "
                 "score function; ratio = herd/htools (<= 1 is herd as good or better).  "
                 "Capacity: standard/tiered instance counts (`--no-capacity-checks`; generated "
                 "clusters also `--accept-existing`); ratio = herd/hspace of the sum "
                 "(>= 1 is herd as good or better).\n\n")
        fh.write(head + "\n" + sep + "\n" + "\n".join(rows) + "\n")
        if evac_rows:
            fh.write("\n" + EVAC_HEAD + "\n" + "\n".join(evac_rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
