"""Integration tests run against a real virtual cluster (scripts/vcluster).

The session fixture `vcluster` brings up a 3-node cluster once per test session
under a name of its own ("it" + the pytest pid, so two sessions on one machine
do not collide), writes its inventory next to the committed group_vars
(inventories/vcluster/hosts-<name>.yml) and tears everything down at the end.

Environment:
  HERD_VCLUSTER_NAME   use this cluster name instead (e.g. one already up:
                       `scripts/vcluster up --name dev`); with
  HERD_VCLUSTER_KEEP=1 the cluster is left up after the session.

Every test in this directory is skipped, with the reason, when not run as root
or when a tool the virtual cluster needs is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vcluster import REPO, VCluster, run_script, session_cluster_name, stale_session_clusters  # noqa: E402

REQUIRED_TOOLS = ["ip", "unshare", "nsenter", "losetup", "ssh", "ssh-keygen", "lvm",
                  "mount"]


def integration_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return ("integration tests need root: they build a virtual cluster of network "
                "namespaces, bridges and loop devices (run the test command as root)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if not os.path.exists("/usr/sbin/sshd"):
        missing.append("/usr/sbin/sshd")
    if not os.path.exists("/usr/bin/python3"):
        missing.append("/usr/bin/python3")
    if missing:
        return (f"the virtual cluster needs {', '.join(missing)} "
                "(install them with scripts/setup.sh)")
    return None


@pytest.fixture(autouse=True)
def _integration_prerequisites() -> None:
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)


def inventory_path(name: str) -> Path:
    return REPO / "inventories" / "vcluster" / f"hosts-{name}.yml"


@contextlib.contextmanager
def own_cluster(suffix: str, nodes: int) -> Iterator[VCluster]:
    """A virtual cluster for one test module alone (named after the session plus suffix, one
    letter), its inventory beside the committed group_vars; down and its inventory gone after."""
    name = session_cluster_name(suffix)
    cluster = VCluster.up(name, nodes=nodes, inventory=inventory_path(name))
    try:
        yield cluster
    finally:
        cluster.down()
        inventory_path(name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def vcluster() -> Iterator[VCluster]:
    """A 3-node virtual cluster shared by the whole session.

    Exposes node_names, nodes (name, primary_ip, secondary_ip, spare_disk, netns),
    inventory, known_hosts, private_key, exec(node, argv) -> CompletedProcess,
    ssh_client(node) (paramiko), ssh_argv(node, argv), restart_node, link_down/up.
    """
    reason = integration_skip_reason()
    if reason:
        pytest.skip(reason)
    for stale in stale_session_clusters():
        run_script("down", "--name", stale, check=False)
    name = os.environ.get("HERD_VCLUSTER_NAME") or session_cluster_name()
    keep = os.environ.get("HERD_VCLUSTER_KEEP") == "1"
    cluster = VCluster.up(name, nodes=3, inventory=inventory_path(name))
    try:
        yield cluster
    finally:
        if not keep:
            cluster.down()


@pytest.fixture(scope="session")
def inventory(vcluster: VCluster) -> Path:
    return vcluster.inventory


@pytest.fixture(scope="session")
def site(vcluster: VCluster, inventory: Path):
    """playbooks/site.yml run once on the session's cluster: nodes bootstrapped, cluster
    initialised, nodes added. Tests that change the cluster put it back as they found it."""
    import ansible_run

    run = ansible_run.playbook(inventory, REPO / "playbooks" / "site.yml")
    assert run.rc == 0, run
    return run


@pytest.fixture(scope="session")
def guest() -> dict:
    """The test guest's kernel and initramfs (tests/guest/build.py, cached)."""
    import json
    import subprocess

    out = subprocess.run(["/usr/bin/python3", str(REPO / "tests" / "guest" / "build.py")], check=True,
                         capture_output=True, text=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])
