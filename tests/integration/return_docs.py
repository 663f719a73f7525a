"""Compare what a herd.cluster module returned with its RETURN documentation.

Used on every result of tests/integration/ansible_run.module(): a key the
module returns must be documented (and, inside a documented C(contains), so
must the keys of its dicts), and a key documented as C(returned: always) must
be in every result that did not fail."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
# keys Ansible itself adds to every result, that every module may return by convention, or that the
# herd_json test callback adds (duration)
ANSIBLE_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations", "diff", "exception",
                "skipped", "skip_reason", "attempts", "item", "ansible_loop_var", "ansible_facts", "duration"}


def return_doc(module: str) -> dict[str, Any]:
    text = (REPO / "plugins" / "modules" / f"{module}.py").read_text()
    return yaml.safe_load(re.search(r"\nRETURN = r'''(.*?)'''", text, re.S).group(1)) or {}


def _undocumented(doc: dict[str, Any], value: Any, path: str) -> list[str]:
    """Keys in value (a dict, or the dicts of a list) that doc's contains does not name, recursively."""
    found: list[str] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        for key, sub in item.items():
            if key not in doc:
                found.append(f"{path}.{key}")
            elif "contains" in doc[key] and sub is not None:
                found.extend(_undocumented(doc[key]["contains"], sub, f"{path}.{key}"))
    return found


def mismatches(module: str, result: dict[str, Any]) -> list[str]:
    """Human-readable differences between result and module's RETURN; empty when they agree."""
    doc = return_doc(module)
    problems = []
    for key, value in result.items():
        if key.startswith("_ansible") or key in ANSIBLE_KEYS and key not in doc:
            continue
        if key not in doc:
            problems.append(f"{module} returns {key!r}, which RETURN does not document")
        elif "contains" in doc[key] and value is not None:
            problems.extend(f"{module} returns {p!r}, which RETURN does not document"
                            for p in _undocumented(doc[key]["contains"], value, key))
    if not result.get("failed"):
        for key, spec in doc.items():
            if str(spec.get("returned", "")).startswith("always") and key not in result:
                problems.append(f"{module} documents {key!r} as returned always, but did not return it")
    return problems
