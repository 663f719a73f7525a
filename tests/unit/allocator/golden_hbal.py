"""Read the recorded hbal runs in ganeti-data/golden (shared by tests and bench)."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DATA = os.environ.get("HERD_GANETI_DATA",
                      os.path.join(os.path.dirname(REPO), "shared", "reference", "ganeti-data"))
GOLDEN = os.path.join(DATA, "golden")
HTOOLS = os.path.join(DATA, "htools")


@dataclass
class HbalCase:
    name: str
    data: str
    args: list[str]
    rc: int
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
    for v in vals:
        if v is not None:
            return v
    return None


def hbal_cases() -> list[HbalCase]:
    out = []
    if not os.path.isdir(GOLDEN):
        return out
    for fn in sorted(os.listdir(GOLDEN)):
        if not (fn.startswith("hbal__") and fn.endswith(".cmd")):
            continue
        base = fn[:-4]
        with open(os.path.join(GOLDEN, fn), encoding="utf-8") as fh:
            cmd_lines = fh.read().splitlines()
        argv = shlex.split(cmd_lines[0].lstrip("$ "))[1:]
        rc = int(cmd_lines[-1].split("=")[1])
        with open(os.path.join(GOLDEN, base + ".stdout"), encoding="utf-8") as fh:
            so = fh.read()
        case = HbalCase(base[len("hbal__"):], "", argv, rc, None, None, 0)
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
                    case.data = os.path.join(HTOOLS, val)
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
        out.append(case)
    return out
