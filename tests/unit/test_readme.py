"""README, the operator's doc: its walk-through parses into the steps the VM test runs,
and every repository path it names exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "vm"))

from walkthrough import EXAMPLE_IPS, INVENTORY, steps, yaml_blocks  # noqa: E402

README = (REPO / "README.md").read_text()
# top-level entries of the repository a path in the text may start with
TOP = ("docs/", "playbooks/", "scripts/", "roles/", "inventories/", "files/", "plugins/", "tests/",
       "bench/", "changelogs/", "meta/", "extensions/")
# what the text says a command writes
GENERATED = {"inventories/vcluster/hosts.yml"}  # scripts/vcluster up


def test_walkthrough_has_the_steps_the_vm_test_runs():
    plan = {s.number: s.commands for s in steps(README)}
    assert sorted(plan) == [1, 2, 3, 4, 5]
    assert plan[1] == [f"cp -r inventories/example {INVENTORY}"]
    assert any(line.startswith("ssh-keyscan") and all(ip in line for ip in EXAMPLE_IPS) for line in plan[2])
    for number in (3, 4, 5):
        assert all(line.startswith(f"ansible-playbook -i {INVENTORY} playbooks/") for line in plan[number])
    assert [("--check" in line) for line in plan[5]] == [True, False]
    declared = [b for b in yaml_blocks(README) if isinstance(b, dict) and "herd_instances" in b]
    assert len(declared) == 1 and {i["disk_template"] for i in declared[0]["herd_instances"]} == {"drbd", "plain"}


def test_every_path_the_readme_names_exists():
    named = set()
    for token in re.findall(r"[`(\s]((?:\.?[\w.-]+/)*[\w.*-]+\.(?:md|yml|yaml|py|sh|cfg|txt|j2))\b", README):
        if token.startswith(TOP) or "/" not in token:
            named.add(token)
    tops = "|".join(map(re.escape, TOP))
    for token in re.findall(rf"[`(\s]((?:{tops})[\w./-]*)", README):
        named.add(token.rstrip("."))
    missing = []
    for path in sorted(named):
        if "*" in path or path.startswith(INVENTORY) or path in GENERATED:
            continue
        if path.startswith(TOP) and not (REPO / path).exists():
            missing.append(path)
    assert not missing, f"README names paths that are not in the repository: {missing}"
