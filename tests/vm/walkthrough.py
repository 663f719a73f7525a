"""README's walk-through "From three Debian machines to a running cluster", run as written.

The ```sh blocks of the section between `<!-- BEGIN walk-through` and
`<!-- END walk-through -->` run in order, one command per line, from a copy of
the checkout (cwd: its top directory), in the environment of an operator who
has just cloned it (no ANSIBLE_* variables).  The test does only what the
text tells the operator to do by hand: edit the copied inventory (names,
addresses, the group_vars of the table for these machines), replace the
example addresses in the commands by the nodes' own, compare the scanned
host keys with the nodes' (made on the host by scripts/vmcluster) before
trusting them, declare instances for step 5.  The operator's ~/.ssh is a
private directory (HOME) and ssh reads its known_hosts from there.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent
EXAMPLE_NAMES = ["ganeti01", "ganeti02", "ganeti03"]
EXAMPLE_IPS = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
INVENTORY = "inventories/mycluster"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Step:
    number: int
    commands: list[str]


@dataclass
class Command:
    step: int
    line: str
    rc: int
    stdout: str
    stderr: str
    seconds: float

    def __repr__(self) -> str:
        return (f"step {self.step}: {self.line!r} rc {self.rc} in {self.seconds:.0f} s\n"
                f"{self.stdout[-6000:]}\n{self.stderr[-3000:]}")


@dataclass
class Log:
    commands: list[Command] = field(default_factory=list)

    def durations(self) -> str:
        return "\n".join(f"  step {c.step} {c.seconds:6.0f} s  {c.line}" for c in self.commands)


def section(text: str) -> str:
    start = text.index("<!-- BEGIN walk-through")
    end = text.index("<!-- END walk-through -->", start)
    return text[start:end]


def steps(text: str) -> list[Step]:
    """The sh blocks of the walk-through, grouped by the numbered step they belong to."""
    out: list[Step] = []
    number = 0
    lines = section(text).splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\d+)\. ", lines[i])
        if m:
            number = int(m.group(1))
        if re.match(r"^\s*```sh\s*$", lines[i]):
            body = []
            i += 1
            while not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i])
                i += 1
            commands = [c for c in textwrap.dedent("\n".join(body)).splitlines()
                        if c.strip() and not c.lstrip().startswith("#")]
            out.append(Step(number, commands))
        i += 1
    return out


def copy_checkout(dest: Path) -> Path:
    """The checkout's files (tracked and untracked-but-not-ignored) as a fresh clone has them,
    plus the committed collection link."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    dest.mkdir(parents=True, mode=0o700)
    for rel in filter(None, listed):
        src = REPO / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    return dest


def operator_env(home: Path, private_key: str) -> dict[str, str]:
    """A shell of an operator: no ANSIBLE_* settings; their SSH key; ~/.ssh/known_hosts in home.

    ssh takes ~ from the password database, not HOME, so the known_hosts file is named
    through ANSIBLE_SSH_ARGS (with Ansible's default multiplexing options)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    known_hosts = home / ".ssh" / "known_hosts"
    env.update({
        "HOME": str(home),
        "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        "ANSIBLE_SSH_ARGS": (f"-C -o ControlMaster=auto -o ControlPersist=60s "
                             f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"),
        "ANSIBLE_PRIVATE_KEY_FILE": private_key,
        "ANSIBLE_NOCOLOR": "1",
    })
    return env


def fingerprints(path: Path | str) -> dict[str, str]:
    """{host: SHA256 fingerprint} of a known_hosts or public key file (ssh-keygen -lf)."""
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        _bits, fp, host, *_rest = line.split()
        for name in host.split(","):
            result[name] = fp
    return result


def recap(stdout: str) -> dict[str, dict[str, int]]:
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                         "failed": int(m.group(5))} for m in RECAP.finditer(stdout)}


def changed_tasks(stdout: str) -> list[str]:
    """The task headers and "changed:" lines of an ansible-playbook run, for a failure message."""
    found: list[str] = []
    task = ""
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task = line.rstrip("* ")
        elif line.startswith("changed:"):
            found.append(f"{task}: {line.strip()}")
    return found


def free_address(network: str, used: list[str]) -> str:
    """The highest host address of network that no node or the host's bridge uses."""
    net = ipaddress.ip_network(network)
    for host in reversed(list(net.hosts())):
        if str(host) not in used:
            return str(host)
    raise AssertionError(f"no free address in {network}")


class Walkthrough:
    def __init__(self, state: dict[str, Any], workdir: Path) -> None:
        self.state = state
        self.workdir = workdir
        self.checkout = workdir / "checkout"
        self.home = workdir / "home"
        self.log = Log()
        self.results: dict[int, list[Command]] = {}
        self.instances: list[dict[str, Any]] = []
        self.nodes = state["nodes"]
        self.addresses = dict(zip(EXAMPLE_IPS, [n["primary_ip"] for n in self.nodes], strict=True))
        self.names = dict(zip(EXAMPLE_NAMES, [n["name"] for n in self.nodes], strict=True))

    # --------------------------------------------------------------- the operator's hands
    def type(self, step: int, line: str, timeout: float = 2400) -> Command:
        """Run one command line as written, the example addresses replaced by the nodes'."""
        for example, real in self.addresses.items():
            line = re.sub(rf"(?<![\d.]){re.escape(example)}(?![\d.])", real, line)
        assert "192.0.2." not in line, f"an example address is left in {line!r}"
        t0 = time.monotonic()
        try:
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", line], cwd=self.checkout,
                                  env=operator_env(self.home, self.state["private_key"]), capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            raise AssertionError(f"step {step}: {line!r} did not end in {timeout:.0f} s:\n{out[-6000:]}") from None
        cmd = Command(step, line, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
        self.log.commands.append(cmd)
        print(f"walk-through step {step}: {line} -> rc {cmd.rc} in {cmd.seconds:.0f} s", flush=True)
        assert cmd.rc == 0, repr(cmd)
        return cmd

    def edit_inventory(self, group_vars: dict[str, Any]) -> None:
        """Step 1's edits: hosts.yml's names and addresses, group_vars/herd_nodes.yml's values."""
        inv = self.checkout / INVENTORY
        hosts_file = inv / "hosts.yml"
        hosts = yaml.safe_load(hosts_file.read_text())
        children = hosts["all"]["children"]
        by_example = dict(zip(EXAMPLE_NAMES, self.nodes, strict=True))
        assert sorted(children["herd_nodes"]["hosts"]) == EXAMPLE_NAMES, children
        children["herd_nodes"]["hosts"] = {
            by_example[name]["name"]: {**values, "ansible_host": by_example[name]["primary_ip"],
                                       "herd_primary_ip": by_example[name]["primary_ip"],
                                       "herd_secondary_ip": by_example[name]["secondary_ip"]}
            for name, values in children["herd_nodes"]["hosts"].items()}
        for group in ("herd_master", "herd_master_candidates"):
            children[group]["hosts"] = {self.names[name]: value
                                        for name, value in children[group]["hosts"].items()}
        hosts_file.write_text(yaml.safe_dump(hosts, sort_keys=False))
        vars_file = inv / "group_vars" / "herd_nodes.yml"
        values = yaml.safe_load(vars_file.read_text())
        for key, value in group_vars.items():
            assert key in values, f"{key} is not in the example's group_vars/herd_nodes.yml"
            if isinstance(value, dict) and isinstance(values[key], dict):
                values[key].update(value)
            else:
                values[key] = value
        vars_file.write_text(yaml.safe_dump(values, sort_keys=False))

    def declare_instances(self, instances: list[dict[str, Any]]) -> None:
        vars_file = self.checkout / INVENTORY / "group_vars" / "herd_nodes.yml"
        values = yaml.safe_load(vars_file.read_text())
        values["herd_instances"] = instances
        vars_file.write_text(yaml.safe_dump(values, sort_keys=False))

    def check_scanned_keys(self) -> None:
        """Step 2: the scanned fingerprints are the ones the nodes' consoles would show."""
        scanned = fingerprints(self.home / ".ssh" / "known_hosts")
        for node in self.nodes:
            pub = Path(node["dir"]) / "ssh_host_ed25519_key.pub"
            expected = next(iter(fingerprints(pub).values()))
            assert scanned.get(node["primary_ip"]) == expected, \
                f"{node['name']}: scanned {scanned.get(node['primary_ip'])}, its host key is {expected}"
        assert set(scanned) == {n["primary_ip"] for n in self.nodes}, scanned

    def setup(self) -> None:
        copy_checkout(self.checkout)
        (self.home / ".ssh").mkdir(parents=True, mode=0o700)


def yaml_blocks(text: str) -> list[Any]:
    """The ```yaml blocks of the walk-through, parsed."""
    return [yaml.safe_load(textwrap.dedent(m.group(1)))
            for m in re.finditer(r"^\s*```yaml\n(.*?)^\s*```\s*$", section(text), re.S | re.M)]


def test_bed_group_vars(vm: Any) -> dict[str, Any]:
    """The values of step 1's table for these machines (the keys the operator edits)."""
    state = vm.state
    used = [n["primary_ip"] for n in state["nodes"]] + [str(next(ipaddress.ip_network(
        state["primary_network"]).hosts()))]
    return {
        "herd_cluster_name": f"{state['name']}.example.org",
        "herd_cluster": {
            "master_ip": free_address(state["primary_network"], used),
            "master_netdev": "br0",
            # no /dev/kvm in TCG nodes: the instances use the fake hypervisor (their disks are real)
            "enabled_hypervisors": ["fake"],
            # no shared filesystem between these machines
            "enabled_disk_templates": ["drbd", "plain"],
            "volume_group": "gnt",
            # small disks on small nodes: Ganeti's default policy wants 1 GiB at least
            "ipolicy": {
                "minmax": [{
                    "min": {"memory-size": 64, "cpu-count": 1, "disk-count": 0, "disk-size": 16,
                            "nic-count": 0, "spindle-use": 0},
                    "max": {"memory-size": 65536, "cpu-count": 8, "disk-count": 16,
                            "disk-size": 1048576, "nic-count": 8, "spindle-use": 12}}],
                "std": {"memory-size": 128, "cpu-count": 1, "disk-count": 1, "disk-size": 256,
                        "nic-count": 1, "spindle-use": 1},
                "vcpu-ratio": 64.0, "spindle-ratio": 64.0},
        },
        "herd_bridge_name": "br0",
        "herd_bridge_port": "eth0",
        "herd_secondary_interface": "eth1",
        "herd_secondary_prefix": int(state["secondary_network"].split("/")[1]),
        "herd_vg_devices": ["/dev/vdb"],
    }


def small(instance: dict[str, Any]) -> dict[str, Any]:
    """A README instance declaration sized for 1 GiB nodes with a 4 GiB spare disk."""
    out = dict(instance, memory="128M", vcpus=1)
    out["disks"] = ["256M"] * len(instance.get("disks", []))
    return out


def run_walkthrough(vm: Any, workdir: Path) -> Walkthrough:
    text = README.read_text()
    walk = Walkthrough(vm.state, workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    walk.setup()
    plan = steps(text)
    assert [s.number for s in plan] == [1, 2, 3, 4, 5], [(s.number, s.commands) for s in plan]
    declared = [block["herd_instances"] for block in yaml_blocks(text)
                if isinstance(block, dict) and "herd_instances" in block]
    assert len(declared) == 1, "step 5 shows one herd_instances declaration"
    instances = walk.instances = [small(i) for i in declared[0]]
    for step in plan:
        if step.number == 5:
            walk.declare_instances(instances)
        done = walk.results.setdefault(step.number, [])
        for line in step.commands:
            done.append(walk.type(step.number, line))
            if "ssh-keyscan" in line:
                walk.check_scanned_keys()
        if step.number == 1:
            walk.edit_inventory(test_bed_group_vars(vm))
        if step.number == 3:
            (first,) = done
            table = first.stdout[first.stdout.rindex("Nodes (gnt-node list)"):]
            for node in walk.nodes:
                assert node["name"] in table, f"{node['name']} not in the node table:\n{table[:3000]}"
            again = walk.type(3, step.commands[0])
            counts = recap(again.stdout)
            assert set(counts) == {n["name"] for n in walk.nodes}, again
            changed = {host: c["changed"] for host, c in counts.items() if c["changed"]}
            assert not changed, (f"the second site.yml run changed {changed}:\n"
                                 + "\n".join(changed_tasks(again.stdout)) + f"\n{again!r}")
            done.append(again)
    check, real = walk.results[5]
    assert "--check" in check.line and "--check" not in real.line
    printed = " ".join(check.stdout.split())  # the callback may wrap long lines
    for inst in instances:
        name = re.escape(inst["name"])
        m = re.search(rf"{name}: instance {name} would be created on \S+ on (\w[\w.-]*)(?: / (\w[\w.-]*))?",
                      printed)
        assert m, f"no placement of {inst['name']} in the check run:\n{check!r}"
        nodes = [n for n in m.groups() if n]
        assert len(nodes) == (2 if inst["disk_template"] == "drbd" else 1), m.group(0)
        assert set(nodes) <= {n["name"] for n in walk.nodes}, m.group(0)
    return walk
