"""scripts/vcluster's pure parts (no root): address range choice and refusal,
cluster names, the generated inventory."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import ipaddress
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "vcluster"


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("herd_vcluster_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look the module up
    loader.exec_module(module)
    return module


vc = load_script()

UPLINK_ADDR = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"
               "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\ valid_lft\n")
UPLINK_ROUTES = ("default via 192.0.2.1 dev eth0\n"
                 "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n"
                 "local 192.0.2.2 dev eth0 table local proto kernel scope host src 192.0.2.2\n")


def fake_ip(monkeypatch: pytest.MonkeyPatch, addrs: str, routes: str,
            remote: tuple[tuple[str, str], ...] = ()) -> None:
    """The machine's `ip` output, and the addresses of the hosts it must keep reaching."""
    def run(argv, check=True, input=None):
        out = addrs if "addr" in argv else routes
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(vc, "run", run)
    monkeypatch.setattr(vc, "used_remote_addresses", lambda: [
        vc.LocalNet(ipaddress.ip_network(a), f"{a}, the address of {h}") for a, h in remote])


def test_preferred_documentation_ranges_are_chosen_when_free(monkeypatch) -> None:
    fake_ip(monkeypatch, UPLINK_ADDR, UPLINK_ROUTES)
    primary, secondary = vc.choose_networks(3, None, None)
    assert (str(primary), str(secondary)) == ("198.51.100.0/24", "203.0.113.0/24")


def test_ranges_in_use_are_skipped_for_benchmark_subnets(monkeypatch) -> None:
    addrs = UPLINK_ADDR + ("9: herdvc-pri    inet 198.51.100.1/24 scope global herdvc-pri\n"
                           "10: herdvc-sec    inet 203.0.113.1/24 scope global herdvc-sec\n")
    fake_ip(monkeypatch, addrs, UPLINK_ROUTES)
    primary, secondary = vc.choose_networks(3, None, None)
    assert primary.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
    assert secondary.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
    assert not primary.overlaps(secondary)


def test_a_route_through_the_uplink_makes_a_range_unavailable(monkeypatch) -> None:
    routes = UPLINK_ROUTES + "198.51.100.0/23 via 192.0.2.1 dev eth0\n"
    fake_ip(monkeypatch, UPLINK_ADDR, routes)
    primary, _secondary = vc.choose_networks(3, None, None)
    assert str(primary) != "198.51.100.0/24"


def test_a_range_holding_a_registry_address_is_skipped(monkeypatch) -> None:
    fake_ip(monkeypatch, UPLINK_ADDR, UPLINK_ROUTES,
            remote=(("203.0.113.80", "deb.debian.org"),))
    _primary, secondary = vc.choose_networks(3, None, None)
    assert not secondary.overlaps(ipaddress.ip_network("203.0.113.80/32"))


def test_an_explicit_range_holding_a_registry_address_is_refused(monkeypatch) -> None:
    fake_ip(monkeypatch, UPLINK_ADDR, UPLINK_ROUTES,
            remote=(("203.0.113.80", "deb.debian.org"),))
    with pytest.raises(vc.VClusterError, match="deb.debian.org"):
        vc.choose_networks(3, None, "203.0.113.0/24")


def test_the_default_route_is_not_a_conflict(monkeypatch) -> None:
    fake_ip(monkeypatch, UPLINK_ADDR, UPLINK_ROUTES)
    assert vc.conflicts(ipaddress.ip_network("198.51.100.0/24"), vc.local_networks()) == []


def test_an_explicit_range_overlapping_the_uplink_is_refused_naming_it(monkeypatch) -> None:
    fake_ip(monkeypatch, UPLINK_ADDR, UPLINK_ROUTES)
    with pytest.raises(vc.VClusterError) as err:
        vc.choose_networks(3, "192.0.2.0/25", None)
    message = str(err.value)
    assert "refusing to start" in message
    assert "192.0.2.2/24 on eth0" in message
    assert "192.0.2.0/24 dev eth0" in message


def test_primary_and_secondary_must_not_overlap(monkeypatch) -> None:
    fake_ip(monkeypatch, UPLINK_ADDR, UPLINK_ROUTES)
    with pytest.raises(vc.VClusterError, match="overlaps the primary network"):
        vc.choose_networks(3, "198.18.5.0/24", "198.18.5.0/25")


def test_a_range_too_small_for_the_nodes_is_refused(monkeypatch) -> None:
    fake_ip(monkeypatch, UPLINK_ADDR, UPLINK_ROUTES)
    with pytest.raises(vc.VClusterError, match="too small"):
        vc.choose_networks(20, "198.18.5.0/28", None)


@pytest.mark.parametrize("name", ["", "Herd", "1herd", "herd-vc", "abcdefghijk", "a b"])
def test_cluster_names_that_cannot_prefix_interface_names_are_refused(name: str) -> None:
    with pytest.raises(vc.VClusterError):
        vc.validate_name(name)


def test_interface_names_fit_the_kernel_limit_for_the_longest_name() -> None:
    name = vc.validate_name("abcdefghij")
    names = [*vc.bridge_names(name), *vc.host_veth_names(name, vc.MAX_NODES)]
    assert max(len(n) for n in names) <= 15


def make_state(nodes: int = 3):
    return vc.ClusterState(
        name="herdvc", state_dir="/var/lib/herd-vcluster/herdvc",
        primary_network="198.51.100.0/24", secondary_network="203.0.113.0/24",
        primary_bridge="herdvc-pri", secondary_bridge="herdvc-sec",
        private_key="/k/id_ed25519", known_hosts="/k/known_hosts", shared_dir="/k/shared",
        inventories=[], disk_size=1,
        nodes=[vc.NodeState(name=f"node{i}", index=i, netns=f"herdvc-node{i}",
                            primary_ip=f"198.51.100.{10 + i}",
                            secondary_ip=f"203.0.113.{10 + i}",
                            host_veth_primary=f"herdvc-{i}p",
                            host_veth_secondary=f"herdvc-{i}s",
                            disk_file=f"/k/node{i}.img", spare_disk=f"/dev/loop{i}")
               for i in range(1, nodes + 1)])


def test_inventory_has_the_groups_and_connection_settings() -> None:
    inv = yaml.safe_load(vc.inventory_text(make_state()))
    groups = inv["all"]["children"]
    assert list(groups["herd_nodes"]["hosts"]) == ["node1", "node2", "node3"]
    assert list(groups["herd_master_candidates"]["hosts"]) == ["node1", "node2", "node3"]
    assert list(groups["herd_master"]["hosts"]) == ["node1"]
    node2 = groups["herd_nodes"]["hosts"]["node2"]
    assert node2["ansible_host"] == node2["herd_primary_ip"] == "198.51.100.12"
    assert node2["herd_secondary_ip"] == "203.0.113.12"
    assert node2["herd_vcluster_spare_disk"] == "/dev/loop2"
    common = groups["herd_nodes"]["vars"]["ansible_ssh_common_args"]
    assert "-o UserKnownHostsFile=/k/known_hosts" in common
    assert "-o StrictHostKeyChecking=yes" in common


def test_inventory_reuses_ssh_connections_through_sockets_of_this_cluster_only() -> None:
    # ssh keeps the first value of an option; Ansible puts ssh_args before ssh_common_args
    state = make_state()
    inv = yaml.safe_load(vc.inventory_text(state))
    args = inv["all"]["children"]["herd_nodes"]["vars"]["ansible_ssh_args"].split()
    options = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-o")
    assert options["ControlMaster"] == "auto" and options["ControlPersist"] == "60s"
    assert options["ControlPath"] == f"{state.state_dir}/cp/%C"
    # a master whose node stopped answering (link-down) ends instead of hanging every task
    assert int(options["ServerAliveInterval"]) * int(options["ServerAliveCountMax"]) <= 15


def test_hosts_file_lists_every_node_at_its_primary_address() -> None:
    state = make_state()
    text = vc.hosts_file(state, state.nodes[0])
    entries = {line.split()[1]: line.split()[0] for line in text.splitlines()
               if line.startswith("198.51.100.")}
    assert entries == {"node1": "198.51.100.11", "node2": "198.51.100.12",
                       "node3": "198.51.100.13"}
