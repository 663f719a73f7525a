"""Tests on real storage: three Debian 12 QEMU guests as nodes (scripts/vmcluster).

The session fixture `vm` boots three VM nodes once per session (the base image
is built on first use and cached under /var/cache/herd-vm) and tears
everything down at the end.  `site` runs README's walk-through "From three
Debian machines to a running cluster" on them, as written (tests/vm/walkthrough.py):
the cluster it makes is the one every test here uses.

Every test here is marked `vm` and is skipped, with the reason, when not run
as root or when the base image cannot be built.

Environment:
  HERD_VMCLUSTER_NAME   use this cluster name (e.g. one already up:
                        `scripts/vmcluster up --name dev`); with
  HERD_VMCLUSTER_KEEP=1 the cluster is left up after the session;
  HERD_VMCLUSTER_SITE_DONE=1 (with a kept cluster that already ran the
                        walk-through in an earlier session) skips it, to
                        iterate on one test.
  HERD_VMCLUSTER_NODES  number of nodes (default 3, what the README's
                        walk-through, the session's cluster, is written for).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmnodes import REPO, VMCluster, script, test_inventory, vm_skip_reason  # noqa: E402
from walkthrough import INVENTORY, Walkthrough, run_walkthrough  # noqa: E402


@pytest.fixture(autouse=True)
def _vm_prerequisites() -> None:
    reason = vm_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def vm() -> Iterator[VMCluster]:
    reason = vm_skip_reason()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    built = script("build-image", timeout=3600, check=False)
    if built.returncode != 0:
        pytest.skip(f"the VM base image cannot be built here: {built.stderr.strip()[-1500:]}")
    print(f"\nvm: base image ready in {time.monotonic() - t0:.0f} s", flush=True)
    name = os.environ.get("HERD_VMCLUSTER_NAME") or f"vm{os.getpid() % 10**7}"
    keep = os.environ.get("HERD_VMCLUSTER_KEEP") == "1"
    inv_dir = REPO / ".build" / f"vm-inventory-{name}"
    t1 = time.monotonic()
    nodes = os.environ.get("HERD_VMCLUSTER_NODES", "3")
    try:
        # a third empty disk each (/dev/vdc) for test_conversion's second volume group
        up = script("up", "--name", name, "--nodes", nodes, "--extra-disk",
                    "--inventory", str(inv_dir / "generated.yml"), timeout=1800)
        print(f"vm: {nodes} nodes booted in {time.monotonic() - t1:.0f} s\n{up.stdout}", flush=True)
        state = json.loads(script("status", "--name", name, "--json").stdout)
        yield VMCluster(name, state, inv_dir / "generated.yml")
    finally:
        if not keep:
            script("down", "--name", name, check=False)
            shutil.rmtree(inv_dir, ignore_errors=True)
            shutil.rmtree(REPO / ".build" / f"vm-walk-{name}", ignore_errors=True)


@pytest.fixture(scope="session")
def site(vm: VMCluster) -> Walkthrough | None:
    """README's walk-through, run as written on the VM nodes; the other tests then use the
    cluster it made, through a copy of its inventory with this test bed's SSH settings."""
    operator = REPO / ".build" / f"vm-inventory-{vm.name}" / "operator"
    if os.environ.get("HERD_VMCLUSTER_SITE_DONE") == "1" and os.environ.get("HERD_VMCLUSTER_NAME") \
            and (operator / "hosts.yml").exists():
        vm.inventory = operator / "hosts.yml"
        return None
    t0 = time.monotonic()
    walk = run_walkthrough(vm, REPO / ".build" / f"vm-walk-{vm.name}")
    print(f"\nvm: walk-through {time.monotonic() - t0:.0f} s\n{walk.log.durations()}", flush=True)
    vm.inventory = test_inventory(vm, walk.checkout / INVENTORY, operator)
    # step 5's real run created what was declared; the other tests start from an empty cluster
    names = sorted(i["name"] for i in walk.instances)
    info = {i["name"]: i for i in vm.module("instance_info", {})["instances"]}
    assert sorted(info) == names, f"declared {names}, the cluster has {sorted(info)}"
    for inst in walk.instances:
        got = info[inst["name"]]
        assert got["disk_template"] == inst["disk_template"] and got["status"] == "running", got
    for name in names:
        removed = vm.module("instance", {"name": name, "state": "absent", "shutdown_timeout": 5})
        assert removed["changed"] and not removed.get("failed"), removed
    return walk
