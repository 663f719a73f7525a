"""Tests on real storage: three Debian 12 QEMU guests as nodes (scripts/vmcluster).

The session fixture `vm` boots three VM nodes once per session (the base image
is built on first use and cached under /var/cache/herd-vm), writes an
inventory the way the README tells an operator to (the nodes' addresses and
the SSH key and host keys of this test bed, nothing else specific to the
tests) and tears everything down at the end.  `site` runs playbooks/site.yml
on it once.

Every test here is marked `vm` and is skipped, with the reason, when not run
as root or when the base image cannot be built.

Environment:
  HERD_VMCLUSTER_NAME   use this cluster name (e.g. one already up:
                        `scripts/vmcluster up --name dev`); with
  HERD_VMCLUSTER_KEEP=1 the cluster is left up after the session;
  HERD_VMCLUSTER_SITE_DONE=1 (with a kept cluster that already ran site.yml
                        in an earlier session) skips the site.yml run, to
                        iterate on one test.
  HERD_VMCLUSTER_NODES  number of nodes (default 3; the `vm_extra` tests of
                        tests/vm/test_conversion.py need 2).
  HERD_VMCLUSTER_EXTRA_DISK=1 gives every node a third empty disk /dev/vdc
                        (`vmcluster up --extra-disk`: a second volume group).
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

from vmnodes import REPO, VMCluster, ansible_run, script, vm_skip_reason, write_operator_inventory  # noqa: E402


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
    extra = ["--extra-disk"] if os.environ.get("HERD_VMCLUSTER_EXTRA_DISK") == "1" else []
    try:
        up = script("up", "--name", name, "--nodes", nodes, *extra,
                    "--inventory", str(inv_dir / "generated.yml"), timeout=1800)
        print(f"vm: {nodes} nodes booted in {time.monotonic() - t1:.0f} s\n{up.stdout}", flush=True)
        state = json.loads(script("status", "--name", name, "--json").stdout)
        inventory = write_operator_inventory(state, inv_dir / "operator")
        yield VMCluster(name, state, inventory)
    finally:
        if not keep:
            script("down", "--name", name, check=False)
            shutil.rmtree(inv_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def site(vm: VMCluster) -> ansible_run.Run:
    """playbooks/site.yml once on the VM nodes."""
    if os.environ.get("HERD_VMCLUSTER_SITE_DONE") == "1" and os.environ.get("HERD_VMCLUSTER_NAME"):
        return None  # type: ignore[return-value]
    t0 = time.monotonic()
    run = ansible_run.playbook(vm.inventory, REPO / "playbooks" / "site.yml", timeout=2400)
    print(f"\nvm: site.yml {time.monotonic() - t0:.0f} s", flush=True)
    assert run.rc == 0, f"{run!r}\n{run.proc.stdout[-5000:]}"
    return run
