"""The VM test bed seen from the tests: scripts/vmcluster, the operator-style
inventory and what real LVM and DRBD on a node say."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "vmcluster"
PYTHON = "/usr/bin/python3"
sys.path.insert(0, str(REPO / "tests" / "integration"))

import ansible_run  # noqa: E402

REQUIRED_TOOLS = ["ip", "ssh", "ssh-keygen", "qemu-system-x86_64", "qemu-img", "mkfs.ext4",
                  "debootstrap"]
VG = "gnt"


def vm_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return ("VM-node tests need root: they create bridges, taps and QEMU guests "
                "(run the test command as root)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"the VM test bed needs {', '.join(missing)} (install them with scripts/setup.sh)"
    return None


def script(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PYTHON, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"vmcluster {' '.join(args)} failed (rc {proc.returncode}):\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc


class VMCluster:
    """The running VM nodes: commands over SSH, cables, the operator-style inventory."""

    def __init__(self, name: str, state: dict[str, Any], inventory: Path) -> None:
        self.name = name
        self.state = state
        self.inventory = inventory
        self.node_names = [n["name"] for n in state["nodes"]]

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.state["nodes"] if n["name"] == name)

    def sh(self, node: str, command: str, check: bool = True,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a shell command on node over SSH (host key checked)."""
        proc = subprocess.run(
            ["ssh", "-i", self.state["private_key"],
             "-o", f"UserKnownHostsFile={self.state['known_hosts']}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
             "-o", "LogLevel=ERROR", f"root@{self.node(node)['primary_ip']}", command],
            capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{node}: {command!r} failed (rc {proc.returncode}):\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def link(self, node: str, up: bool) -> None:
        script("link-up" if up else "link-down", "--name", self.name, node)

    def restart(self, node: str) -> None:
        """Power-cycle node (no clean shutdown); returns once its SSH answers again on its
        primary address, which after the reboot is on the bridge only the stanzas made."""
        script("restart-node", "--name", self.name, node, timeout=900)

    def module(self, name: str, args: dict[str, Any], host: str = "node1",
               timeout: float = 1200) -> dict[str, Any]:
        return ansible_run.module(self.inventory, host, name, args, timeout=timeout)


def test_inventory(vm: VMCluster, operator: Path, dest: Path) -> Path:
    """The walk-through's inventory with this test bed's SSH key and known_hosts (the operator's
    shell gave them through the environment) and without its declared instances, for the tests
    that run modules and playbooks on the cluster it made."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(operator, dest)
    values = yaml.safe_load((dest / "group_vars" / "herd_nodes.yml").read_text())
    values.pop("herd_instances", None)
    (dest / "group_vars" / "herd_nodes.yml").write_text(yaml.safe_dump(values, sort_keys=False))
    access = {"ansible_ssh_private_key_file": vm.state["private_key"],
              "ansible_ssh_common_args": (f"-o UserKnownHostsFile={vm.state['known_hosts']} "
                                          "-o StrictHostKeyChecking=yes"),
              "ansible_python_interpreter": "/usr/bin/python3"}
    (dest / "group_vars" / "all.yml").write_text(yaml.safe_dump(access))
    return dest / "hosts.yml"


# --------------------------------------------------------------------------
# reading real storage state on a node

# a StandAlone resource shows no protocol letter ("ds:UpToDate/DUnknown   r-----")
DRBD_LINE = re.compile(r"^\s*(\d+): cs:(\S+) ro:(\S+) ds:(\S+)(?: ([ABC]) )?")


def proc_drbd(vm: VMCluster, node: str) -> dict[int, dict[str, str]]:
    """Configured minors of /proc/drbd: minor -> cs, ro, ds, protocol."""
    text = vm.sh(node, "cat /proc/drbd").stdout
    out = {}
    for line in text.splitlines():
        m = DRBD_LINE.match(line)
        if m:
            out[int(m.group(1))] = {"cs": m.group(2), "ro": m.group(3), "ds": m.group(4),
                                    "protocol": m.group(5)}
    return out


def wait_drbd(vm: VMCluster, node: str, minor: int, cs: str, ds: str,
              timeout: float = 600) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        last = proc_drbd(vm, node).get(minor, {})
        if last.get("cs") == cs and last.get("ds") == ds:
            return last
        time.sleep(3)
    raise AssertionError(f"{node}: drbd minor {minor} did not reach cs:{cs} ds:{ds} in "
                         f"{timeout:.0f} s; last {last}\n{vm.sh(node, 'cat /proc/drbd').stdout}")


def lvs(vm: VMCluster, node: str) -> list[dict[str, str]]:
    out = vm.sh(node, f"lvs --reportformat json --units m --nosuffix "
                      f"-o lv_name,lv_size,lv_tags,lv_attr {VG}").stdout
    return json.loads(out)["report"][0]["lv"]


def instance_lvs(vm: VMCluster, node: str, instance: str) -> list[dict[str, str]]:
    return [lv for lv in lvs(vm, node) if f"originstname+{instance}" in lv["lv_tags"].split(",")]


def drbd_resource_files(vm: VMCluster, node: str) -> list[str]:
    return vm.sh(node, "ls /etc/herd/drbd/ 2>/dev/null | grep '\\.res$' || true").stdout.split()


DRBDSETUP = "/lib/drbd/drbdsetup-84"


def data_lv(vm: VMCluster, node: str, instance: str) -> str:
    """/dev/VG/LV of the instance's (only) drbd data LV on node."""
    names = [lv["lv_name"] for lv in instance_lvs(vm, node, instance) if lv["lv_name"].endswith("_data")]
    assert len(names) == 1, f"{node}: data LVs of {instance}: {names}"
    return f"/dev/{VG}/{names[0]}"


def drbd_minor_of(vm: VMCluster, node: str) -> int:
    """The minor of the only herd resource on node (from its resource file)."""
    files = drbd_resource_files(vm, node)
    assert len(files) == 1, f"{node}: expected one resource file, found {files}"
    text = vm.sh(node, f"cat /etc/herd/drbd/{shlex.quote(files[0])}").stdout
    minors = set(re.findall(r"/dev/drbd(\d+)", text))
    mine = vm.sh(node, "uname -n").stdout.strip()
    section = re.search(rf"on {re.escape(mine)}\s*\{{(.*?)\}}", text, re.S)
    if section:
        minors = set(re.findall(r"/dev/drbd(\d+)", section.group(1))) or minors
    assert len(minors) == 1, f"{node}: cannot tell the minor from {files[0]}:\n{text}"
    return int(minors.pop())
