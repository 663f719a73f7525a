"""Python API over scripts/vcluster for the integration tests.

    cluster = VCluster.up("herdtest", nodes=3)
    cluster.exec("node1", ["hostname"]).stdout      # runs inside node1's namespaces
    cluster.ssh_client("node2")                      # paramiko, host key checked
    cluster.inventory, cluster.known_hosts, cluster.private_key
    cluster.down()

Every root operation goes through the script (run with /usr/bin/python3);
`exec` enters the node's namespaces directly with nsenter, using the sshd pid
recorded in the cluster's state file (re-read on each call, so it follows
`restart_node`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "vcluster"
PYTHON = "/usr/bin/python3"
STATE_ROOT = Path("/var/lib/herd-vcluster")
# names of clusters owned by a test session: "it" + the pid of that session
# (+ one letter for the extra clusters a test brings up itself)
SESSION_NAME_RE = re.compile(r"^it([0-9]{1,7})[a-z]?$")


class VClusterCommandError(RuntimeError):
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{' '.join(map(str, proc.args))} failed with rc {proc.returncode}:\n"
                         f"{proc.stdout}{proc.stderr}")
        self.proc = proc


def run_script(*args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run scripts/vcluster with args; raise VClusterCommandError on failure if check."""
    proc = subprocess.run([PYTHON, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise VClusterCommandError(proc)
    return proc


@dataclasses.dataclass(frozen=True)
class Node:
    name: str
    index: int
    netns: str
    primary_ip: str
    secondary_ip: str
    spare_disk: str  # the node's loop device ("spare partition" for LVM)
    disk_file: str  # its sparse backing file
    host_veth_primary: str
    host_veth_secondary: str


@dataclasses.dataclass(frozen=True)
class VCluster:
    name: str
    state_dir: Path
    inventory: Path
    known_hosts: Path
    private_key: Path
    primary_network: str
    secondary_network: str
    primary_bridge: str
    secondary_bridge: str
    shared_dir: Path  # host path of what every node sees at /srv/herd-shared
    nodes: tuple[Node, ...]

    # ---- construction

    @classmethod
    def up(cls, name: str, nodes: int = 3, inventory: Path | str | None = None,
           state_dir: Path | str | None = None, extra_args: Sequence[str] = ()) -> VCluster:
        """Bring the cluster up (or find it up) and return it."""
        args = ["up", "--name", name, "--nodes", str(nodes)]
        if inventory is not None:
            args += ["--inventory", str(inventory)]
        if state_dir is not None:
            args += ["--state-dir", str(state_dir)]
        run_script(*args, *extra_args)
        return cls.load(name, state_dir=state_dir, inventory=inventory)

    @classmethod
    def load(cls, name: str, state_dir: Path | str | None = None,
             inventory: Path | str | None = None) -> VCluster:
        data = read_state(name, state_dir)
        inv = Path(inventory).resolve() if inventory is not None else Path(data["inventories"][-1])
        return cls(
            name=data["name"], state_dir=Path(data["state_dir"]), inventory=inv,
            known_hosts=Path(data["known_hosts"]), private_key=Path(data["private_key"]),
            primary_network=data["primary_network"],
            secondary_network=data["secondary_network"],
            primary_bridge=data["primary_bridge"], secondary_bridge=data["secondary_bridge"],
            shared_dir=Path(data["shared_dir"]),
            nodes=tuple(Node(name=n["name"], index=n["index"], netns=n["netns"],
                             primary_ip=n["primary_ip"], secondary_ip=n["secondary_ip"],
                             spare_disk=n["spare_disk"], disk_file=n["disk_file"],
                             host_veth_primary=n["host_veth_primary"],
                             host_veth_secondary=n["host_veth_secondary"])
                        for n in data["nodes"]))

    # ---- lookups

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def master(self) -> str:
        return self.nodes[0].name

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"cluster {self.name} has no node {name!r}")

    def primary_ip(self, name: str) -> str:
        return self.node(name).primary_ip

    def secondary_ip(self, name: str) -> str:
        return self.node(name).secondary_ip

    def sshd_pid(self, name: str) -> int:
        for n in read_state(self.name, self.state_dir)["nodes"]:
            if n["name"] == name:
                return int(n["sshd_pid"])
        raise KeyError(f"cluster {self.name} has no node {name!r}")

    # ---- actions

    def exec(self, node: str, argv: Sequence[str], *, check: bool = False,
             input: str | bytes | None = None, timeout: float | None = 120,
             text: bool = True, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[Any]:
        """Run argv inside the node (its network, mount and UTS namespaces)."""
        pid = self.sshd_pid(node)
        cmd = ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", *argv]
        return subprocess.run(cmd, input=input, capture_output=True, text=text,
                              timeout=timeout, check=check, env=env)

    def ssh_argv(self, node: str, argv: Sequence[str] = ()) -> list[str]:
        """An ssh command line reaching node as root, host key strictly checked."""
        return ["ssh", "-i", str(self.private_key),
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", "ControlMaster=no", "-o", "ConnectTimeout=10",
                f"root@{self.primary_ip(node)}", "--", *argv]

    def ssh_client(self, node: str, timeout: float = 10.0) -> Any:
        """A connected paramiko SSHClient (RejectPolicy: unknown host keys fail)."""
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(self.primary_ip(node), username="root",
                       key_filename=str(self.private_key), timeout=timeout,
                       allow_agent=False, look_for_keys=False)
        return client

    def status(self) -> dict[str, Any]:
        proc = run_script("status", "--name", self.name, "--state-dir", str(self.state_dir),
                          "--json", check=False)
        return json.loads(proc.stdout)

    def restart_node(self, node: str) -> subprocess.CompletedProcess[str]:
        return run_script("restart-node", "--name", self.name,
                          "--state-dir", str(self.state_dir), node)

    def link_down(self, node: str) -> subprocess.CompletedProcess[str]:
        return run_script("link-down", "--name", self.name,
                          "--state-dir", str(self.state_dir), node)

    def link_up(self, node: str) -> subprocess.CompletedProcess[str]:
        return run_script("link-up", "--name", self.name,
                          "--state-dir", str(self.state_dir), node)

    def down(self, keep_state: bool = False) -> subprocess.CompletedProcess[str]:
        args = ["down", "--name", self.name, "--state-dir", str(self.state_dir)]
        if keep_state:
            args.append("--keep-state")
        return run_script(*args)


def read_state(name: str, state_dir: Path | str | None = None) -> dict[str, Any]:
    if state_dir is None:
        pointer = STATE_ROOT / f"{name}.path"
        state_dir = pointer.read_text().strip() if pointer.exists() else STATE_ROOT / name
    return json.loads((Path(state_dir) / "state.json").read_text())


def session_cluster_name(suffix: str = "") -> str:
    """A name unique to this test session: "it" + pid (+ suffix, one letter)."""
    return f"it{os.getpid()}{suffix}"


def stale_session_clusters() -> list[str]:
    """Clusters of earlier test sessions whose process is gone."""
    stale = []
    if not STATE_ROOT.is_dir():
        return stale
    for entry in sorted(STATE_ROOT.iterdir()):
        m = SESSION_NAME_RE.match(entry.name)
        if m and entry.is_dir() and not Path(f"/proc/{m.group(1)}").exists():
            stale.append(entry.name)
    return stale
