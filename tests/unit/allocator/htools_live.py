"""Ganeti's htools test data and the real htools' answers on it, produced live.

The data (``test/data/htools``) comes from Debian's ``ganeti-testsuite``
package, which scripts/setup.sh unpacks into /var/cache/herd/ganeti-testsuite
(``HERD_GANETI_TESTSUITE`` overrides); hail, hbal and hspace come from
``ganeti-htools-3.0``.  Every expected answer is the tool's own output on the
same input in this run, so nothing recorded can drift from the tool.  Where
the data or a tool is missing, the tests that need it skip and say which and
how to get it.  Used by the unit tests and by bench/alloc/run.py.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
# hand-written minimal IAllocator requests (part of this repository)
REQUESTS = os.path.join(HERE, "requests")
TESTSUITE = os.path.join(os.environ.get("HERD_GANETI_TESTSUITE",
                                        "/var/cache/herd/ganeti-testsuite"),
                         "usr", "share", "ganeti", "testsuite", "test")
HTOOLS = os.path.join(TESTSUITE, "data", "htools")
SHELLTESTS = os.path.join(TESTSUITE, "hs", "shelltests")

TOOLS = {"hail": "/usr/lib/ganeti/iallocators/hail", "hbal": shutil.which("hbal") or "/usr/bin/hbal",
         "hspace": shutil.which("hspace") or "/usr/bin/hspace"}


def data_missing() -> str | None:
    """Why Ganeti's test data cannot be read, or None when it can."""
    if os.path.isdir(HTOOLS):
        return None
    return (f"Ganeti's htools test data not found in {HTOOLS}: scripts/setup.sh unpacks "
            "Debian's ganeti-testsuite there (HERD_GANETI_TESTSUITE names another root)")


def tool_missing(tool: str) -> str | None:
    """Why ``tool`` (hail, hbal, hspace) cannot run, or None when it can."""
    if os.access(TOOLS[tool], os.X_OK):
        return None
    return f"{tool} not installed at {TOOLS[tool]}: scripts/setup.sh installs ganeti-htools-3.0"


def missing(*tools: str) -> str | None:
    return data_missing() or next((r for r in map(tool_missing, tools) if r), None)


def require(*tools: str) -> None:
    """Skip the calling test when the data or one of ``tools`` is missing."""
    import pytest
    reason = missing(*tools)
    if reason:
        pytest.skip(reason)


def params(cases: list, ids: list[str], *tools: str) -> list:
    """pytest parameters for ``cases``; one skipped parameter naming what is
    missing when there are none because the data or a tool is absent."""
    import pytest
    if cases:
        return [pytest.param(c, id=i) for c, i in zip(cases, ids)]
    reason = missing(*tools) or "no cases"
    return [pytest.param(None, id="unavailable", marks=pytest.mark.skip(reason=reason))]


def data_file(name: str) -> str:
    """Path of one of Ganeti's htools data files; skips the test when absent."""
    require()
    return os.path.join(HTOOLS, name)


def text_files() -> list[str]:
    return sorted(glob.glob(os.path.join(HTOOLS, "*.data")))


@dataclass(frozen=True)
class ToolRun:
    rc: int
    stdout: str
    stderr: str


@functools.cache
def run_tool(tool: str, args: tuple[str, ...]) -> ToolRun:
    """The real ``tool``'s answer to ``args`` (absolute paths); each htools run
    takes milliseconds, so one run per process is cached in memory only."""
    p = subprocess.run([TOOLS[tool], *args], capture_output=True, text=True, check=False,
                       cwd=HTOOLS if os.path.isdir(HTOOLS) else None, timeout=300)
    return ToolRun(p.returncode, p.stdout, p.stderr)


# -- hail --------------------------------------------------------------------

@dataclass
class HailCase:
    name: str
    args: list[str]

    def answer(self) -> dict | None:
        """hail's response, or None when hail refused the request (rc != 0)."""
        require("hail")
        r = run_tool("hail", tuple(self.args))
        return json.loads(r.stdout) if r.rc == 0 and r.stdout.strip() else None


def _h(name: str) -> str:
    return os.path.join(HTOOLS, name)


def hail_cases() -> list[HailCase]:
    """Every IAllocator request of Ganeti's data, the option variants of
    Ganeti's hail shelltests, and this repository's minimal requests."""
    out = [HailCase("example__" + os.path.basename(p)[:-5], [p])
           for p in sorted(glob.glob(os.path.join(REQUESTS, "*.json")))]
    if data_missing():
        return out
    out += [HailCase(os.path.basename(p)[:-5], [p])
            for p in sorted(glob.glob(os.path.join(HTOOLS, "*.json")))]
    nocap = "--no-capacity-checks"
    out += [
        HailCase("hail-alloc-twodisks__nocap", [_h("hail-alloc-twodisks.json"), nocap]),
        HailCase("hail-alloc-spindles__nocap", [_h("hail-alloc-spindles.json"), nocap]),
        HailCase("hail-alloc-plain-tags__ignsoft",
                 ["--ignore-soft-errors", _h("hail-alloc-plain-tags.json")]),
        HailCase("hail-reloc-drbd-crowded__ignsoft",
                 ["--ignore-soft-errors", _h("hail-reloc-drbd-crowded.json")]),
        HailCase("hail-change-group__nocap", [_h("hail-change-group.json"), nocap]),
    ]
    for data in ("shared-n1-restriction", "plain-n1-restriction"):
        base = ["-t", _h(data + ".data"), _h("hail-alloc-ext.json")]
        out += [HailCase(f"ext__{data}", base), HailCase(f"ext__{data}__nocap", base + [nocap])]
    drbd = ["-t", _h("partly-used.data")]
    restrict = ["--restrict-allocation-to", "node-01,node-02,node-03"]
    out += [
        HailCase("drbd__partly-used", drbd + [_h("hail-alloc-drbd.json")]),
        HailCase("drbd__partly-used__restrict123", drbd + restrict + [_h("hail-alloc-drbd.json")]),
        HailCase("drbd-restricted__partly-used", drbd + [_h("hail-alloc-drbd-restricted.json")]),
    ]
    # the command line wins over the request's restrict-to-nodes
    for nodes in ("node-01,node-02", "node-03,node-04"):
        out.append(HailCase(f"drbd-restricted__partly-used__restrict{nodes[5:7]}{nodes[-2:]}",
                            drbd + ["--restrict-allocation-to", nodes,
                                    _h("hail-alloc-drbd-restricted.json")]))
    return out


# -- hbal --------------------------------------------------------------------

@dataclass
class HbalCase:
    name: str
    data: str
    args: list[str]
    rc: int
    stdout: str
    initial: float | None
    final: float | None
    moves: int
    group: str | None = None
    offline: list[str] = field(default_factory=list)
    ignore_dynu: bool = False
    ignore_soft: bool = False
    evac_mode: bool = False
    restricted: bool = False
    exclusion_tags: list[str] = field(default_factory=list)


def _float(pat: str, text: str) -> float | None:
    m = re.search(pat, text)
    return float(m.group(1)) if m else None


def _first(*vals: float | None) -> float | None:
    return next((v for v in vals if v is not None), None)


def hbal_commands() -> list[tuple[str, list[str]]]:
    """(case name, hbal argv) for every data file and the option variants of
    Ganeti's hbal shelltests."""
    if data_missing():
        return []
    verbose = ["-C", "-p", "-v", "-v", "-v"]
    out = [(os.path.basename(f)[:-5], ["-t", f, *verbose]) for f in text_files()]
    out += [
        ("n1-failure__g1", ["-t", _h("n1-failure.data"), "-G", "group-01", *verbose]),
        ("hbal-dyn__ignoredynu", ["-t", _h("hbal-dyn.data"), "--ignore-dynu"]),
        ("hbal-cpu-speed__ignoredynu", ["-t", _h("hbal-cpu-speed.data"), "--ignore-dynu", "-C"]),
        ("hbal-soft-errors__ign", ["-t", _h("hbal-soft-errors.data"), "--ignore-soft-errors",
                                   "-C"]),
        ("hbal-soft-errors2__ign", ["-t", _h("hbal-soft-errors2.data"), "--ignore-soft-errors",
                                    "-C"]),
        ("hbal-excl-tags__cli", ["-t", _h("hbal-excl-tags.data"), "--exclusion-tags", "test",
                                 "-C"]),
        ("hbal-evac__evacmode", ["--evac-mode", "-t", _h("hbal-evac.data"), "-C"]),
        ("hbal-evac__evacmode_restricted", ["--evac-mode", "--restricted-migration", "-t",
                                            _h("hbal-evac.data"), "-C"]),
        ("shared-n1-failure__O_nodeA", ["-t", _h("shared-n1-failure.data"), "--ignore-dynu",
                                        "-pname,pcnt", "-O", "nodeA", "-C"]),
        ("shared-n1-failure__O_nodeC", ["-t", _h("shared-n1-failure.data"), "--ignore-dynu",
                                        "-O", "nodeC"]),
        ("hbal-split-insts__g1", ["-t", _h("hbal-split-insts.data"), "-G", "group-01", "-O",
                                  "node-01-001", "-v", "-C"]),
    ]
    return out


def parse_hbal(name: str, argv: list[str], run: ToolRun) -> HbalCase:
    so = run.stdout
    case = HbalCase(name, "", argv, run.rc, so, None, None, 0)
    takes_value = {"-t": "data", "-G": "group", "-O": "offline",
                   "--exclusion-tags": "exclusion_tags"}
    flags = {"--ignore-dynu": "ignore_dynu", "--ignore-soft-errors": "ignore_soft",
             "--evac-mode": "evac_mode", "--restricted-migration": "restricted"}
    it = iter(argv)
    for a in it:
        if a in takes_value:
            val = next(it)
            key = takes_value[a]
            if key == "data":
                case.data = val
            elif key == "offline":
                case.offline.append(val)
            elif key == "exclusion_tags":
                case.exclusion_tags = val.split(",")
            else:
                case.group = val
        elif a in flags:
            setattr(case, flags[a], True)
    case.initial = _first(_float(r"Initial score: ([0-9.]+)", so),
                          _float(r"Initial coefficients: overall ([0-9.]+)", so))
    fin = _first(_float(r"Cluster score improved from [0-9.]+ to ([0-9.]+)", so),
                 _float(r"Final coefficients:\s+overall ([0-9.]+)", so))
    if fin is None and ("No solution found" in so or "already well balanced" in so):
        fin = case.initial if case.initial is not None else _float(
            r"initial score ([0-9.e+-]+)", so)
    case.final = fin
    m = re.search(r"Solution length=(\d+)", so)
    case.moves = int(m.group(1)) if m else len(re.findall(r"^\s+\d+\. ", so, re.M))
    return case


def hbal_cases() -> list[HbalCase]:
    """Every hbal command of hbal_commands() with hbal's answer, run now;
    empty when the data or hbal is missing."""
    if missing("hbal"):
        return []
    return [parse_hbal(name, argv, run_tool("hbal", tuple(argv)))
            for name, argv in hbal_commands()]


# -- hspace ------------------------------------------------------------------

@dataclass
class HspaceCase:
    name: str
    data: str
    args: list[str]
    standard: int
    tiered: list[tuple[str, int]]
    fail_reason: str
    stdout: str


HSPACE_DATA = ("hspace-tiered", "hspace-tiered-ipolicy", "hspace-tiered-vcpu",
               "hspace-tiered-resourcetypes", "hspace-existing")


def parse_hspace(stdout: str) -> tuple[int, list[tuple[str, int]], str]:
    """(standard count, tiered [(spec, count)], standard failure reason) of
    ``hspace --machine-readable``."""
    std = int(re.search(r"HTS_ALLOC_INSTANCES=(\d+)", stdout).group(1))
    tspec = re.search(r"^HTS_TSPEC='?([^'\n]*)'?$", stdout, re.M).group(1)
    tiered = [(s.split("=")[0], int(s.split("=")[1])) for s in tspec.split()]
    reason = re.search(r"HTS_ALLOC_FAIL_REASON=(\w+)", stdout).group(1)
    return std, tiered, reason


def hspace_answer(data: str, *args: str) -> HspaceCase:
    """hspace's machine-readable answer on ``data`` with ``args``; skips the
    calling test when hspace or the data is missing."""
    require("hspace")
    argv = ["-t", data, "--machine-readable", *args]
    r = run_tool("hspace", tuple(argv))
    assert r.rc == 0, f"hspace {' '.join(argv)} failed: {r.stderr}"
    std, tiered, reason = parse_hspace(r.stdout)
    return HspaceCase(os.path.basename(data)[:-5], data, list(args), std, tiered, reason,
                      r.stdout)


def hspace_cases() -> list[HspaceCase]:
    """hspace on Ganeti's capacity data files (without capacity checks, as
    Ganeti's own hspace shelltests); empty when the data or hspace is missing."""
    if missing("hspace"):
        return []
    return [hspace_answer(_h(n + ".data"), "--no-capacity-checks") for n in HSPACE_DATA]
