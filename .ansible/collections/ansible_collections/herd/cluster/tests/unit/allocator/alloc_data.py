"""Locate Ganeti's test data and recorded htools outputs (for the allocator tests)."""

from __future__ import annotations

import glob
import json
import os
import shlex

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DATA = os.environ.get("HERD_GANETI_DATA",
                      os.path.join(os.path.dirname(REPO), "shared", "reference", "ganeti-data"))
GOLDEN = os.path.join(DATA, "golden")
HTOOLS = os.path.join(DATA, "htools")
EXAMPLES = os.path.join(DATA, "examples")


def hail_cases() -> list[tuple[str, list[str], dict | None]]:
    """(case name, argv with absolute paths, recorded response or None) for every
    recorded hail run and every hand-written example request."""
    out = []
    for cmdf in sorted(glob.glob(os.path.join(GOLDEN, "hail__*.cmd"))):
        with open(cmdf, encoding="utf-8") as fh:
            argv = shlex.split(fh.readline()[2:])[1:]
        args = [a if a.startswith("-") or not a.endswith((".json", ".data"))
                else os.path.join(HTOOLS, a) for a in argv]
        with open(cmdf[:-4] + ".stdout", encoding="utf-8") as fh:
            text = fh.read().strip()
        out.append((os.path.basename(cmdf)[:-4], args, json.loads(text) if text else None))
    for req in sorted(glob.glob(os.path.join(EXAMPLES, "*.json"))):
        if req.endswith(".response.json"):
            continue
        with open(req[:-5] + ".response.json", encoding="utf-8") as fh:
            out.append(("example__" + os.path.basename(req)[:-5], [req], json.load(fh)))
    return out


def text_files() -> list[str]:
    return sorted(glob.glob(os.path.join(HTOOLS, "*.data")))
