"""Taps of NICs of mode openvswitch: the exact ip and ovs-vsctl argument lists at creation, rollback
and removal (stale port records of a rebooted node included), and the start's check."""

import json
import os

import pytest

from plugins.module_utils.herd.hypervisor import base, kvm, tap

UUID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
TAP = tap.tap_name(UUID, 0)


class Switch:
    """ovs-vsctl on a node: records argument lists, answers br-exists and the owner of ports."""

    def __init__(self, bridges=("brovs",), owners=None):
        self.bridges = set(bridges)
        self.owners = dict(owners or {})
        self.calls = []
        self.fail = None

    def __call__(self, args, what, check=True):
        self.calls.append(list(args))
        if args[0] == "br-exists":
            return (0 if args[1] in self.bridges else 2), ""
        if args[:3] == ["--if-exists", "get", "Port"]:
            owner = self.owners.get(args[3])
            return 0, (json.dumps(owner) + "\n" if owner else "\n")
        if self.fail and self.fail in args:
            if check:
                raise base.HypervisorError(f"{what}: ovs-vsctl {' '.join(args)} failed: boom")
            return 1, ""
        return 0, ""


@pytest.fixture
def node(tmp_path, monkeypatch):
    sysnet = tmp_path / "sys-class-net"
    os.makedirs(sysnet / "brovs")
    (sysnet / "brovs" / "mtu").write_text("1500\n")
    monkeypatch.setattr(tap, "SYS_NET", str(sysnet))
    monkeypatch.setattr(tap, "ovs_installed", lambda: True)
    monkeypatch.setattr(tap, "node_name", lambda: "node1")
    switch = Switch()
    monkeypatch.setattr(tap, "_ovs", switch)
    ips = []

    def ip(args, what):
        ips.append(" ".join(args))
        if args[:3] == ["ip", "tuntap", "add"]:
            os.makedirs(sysnet / args[4])
        if args[:4] == ["ip", "link", "set", "dev"] and args[5] == "alias":
            (sysnet / args[4] / "ifalias").write_text(args[6] + "\n")
    monkeypatch.setattr(tap, "_ip", ip)

    real_run = tap.subprocess.run

    def run(argv, **kwargs):
        if argv[0] != "ip":  # QEMU asked for its CPU models, say
            return real_run(argv, **kwargs)
        ips.append(" ".join(argv))
        if argv[:3] == ["ip", "link", "del"]:
            for entry in (sysnet / argv[4]).iterdir():
                entry.unlink()
            (sysnet / argv[4]).rmdir()
    monkeypatch.setattr(tap.subprocess, "run", run)
    return sysnet, switch, ips


def test_openvswitch_tap_is_a_port_of_the_bridge_tagged_with_the_vlan(node):
    sysnet, switch, ips = node
    tap.create(TAP, "brovs", 4000, "NIC 0 of web1", UUID, "web1", mode="openvswitch")
    assert ips == [f"ip tuntap add dev {TAP} mode tap vnet_hdr",
                   f"ip link set dev {TAP} alias herd {UUID} web1",
                   f"ip link set dev {TAP} mtu 1500",
                   f"ip link set dev {TAP} up"]
    assert switch.calls == [["br-exists", "brovs"],
                            ["--if-exists", "del-port", TAP, "--", "--may-exist", "add-port", "brovs", TAP,
                             "tag=4000", "--", "set", "Port", TAP, 'external_ids:herd-instance="web1"']]
    assert not [c for c in ips if c.startswith("bridge") or " master " in c]


def test_openvswitch_tap_without_vlan_is_an_untagged_port(node):
    _sysnet, switch, _ips = node
    tap.create(TAP, "brovs", None, "NIC 0 of web1", UUID, "web1", mode="openvswitch")
    add = switch.calls[-1]
    assert add[:8] == ["--if-exists", "del-port", TAP, "--", "--may-exist", "add-port", "brovs", TAP]
    assert not [a for a in add if a.startswith("tag=")]


def test_missing_ovs_bridge_is_refused_before_any_tap_exists(node):
    sysnet, switch, ips = node
    with pytest.raises(base.HypervisorError, match="NIC 0 of web1: brother is not an Open vSwitch bridge on node node1"):
        tap.create(TAP, "brother", 4000, "NIC 0 of web1", UUID, "web1", mode="openvswitch")
    assert ips == [] and switch.calls == [["br-exists", "brother"]]


def test_a_failed_add_port_removes_the_new_tap(node):
    sysnet, switch, ips = node
    switch.fail = "add-port"
    with pytest.raises(base.HypervisorError, match="boom"):
        tap.create(TAP, "brovs", 4000, "NIC 0 of web1", UUID, "web1", mode="openvswitch")
    assert not (sysnet / TAP).exists()
    assert ips[-1] == f"ip link del dev {TAP}"


def test_removal_deletes_the_port_record_then_the_tap(node):
    sysnet, switch, ips = node
    tap.create(TAP, "brovs", 4000, "NIC 0 of web1", UUID, "web1", mode="openvswitch")
    (sysnet / "ovs-system").mkdir()
    os.symlink(sysnet / "ovs-system", sysnet / TAP / "master")
    switch.calls.clear()
    ips.clear()
    assert tap.remove(TAP, "web1")
    assert switch.calls == [["--if-exists", "del-port", TAP]]
    assert ips == [f"ip link del dev {TAP}"]


def test_another_instances_tap_and_port_are_left_alone(node):
    sysnet, switch, ips = node
    tap.create(TAP, "brovs", 4000, "NIC 0 of web1", UUID, "web1", mode="openvswitch")
    switch.calls.clear()
    ips.clear()
    assert tap.remove(TAP, "web2") is False
    assert switch.calls == [] and ips == []


def test_stale_port_record_of_a_gone_tap_is_deleted_only_for_its_owner(node):
    _sysnet, switch, _ips = node
    switch.owners[TAP] = "web1"
    assert tap.remove(TAP, "web2") is False
    assert ["--if-exists", "del-port", TAP] not in switch.calls
    assert tap.remove(TAP, "web1") is True
    assert switch.calls[-1] == ["--if-exists", "del-port", TAP]


def test_kvm_start_check_names_the_missing_ovs_bridge_and_node(node):
    spec = base.InstanceSpec.from_dict({
        "name": "web1", "uuid": UUID, "memory": 128, "vcpus": 1, "hvparams": {"accel": "tcg"},
        "nics": [{"mac": "aa:00:00:12:34:56", "mode": "openvswitch", "link": "brnone", "vlan": 4000}]})
    assert spec.nics[0].mode == "openvswitch"
    problems = kvm.KVM().check(spec)
    assert "NIC 0 of web1: brnone is not an Open vSwitch bridge on node node1 (ovs-vsctl br-exists brnone)" in problems


def test_node_without_open_vswitch_is_told_how_to_get_it(node, monkeypatch):
    monkeypatch.setattr(tap, "ovs_installed", lambda: False)
    problem = tap.check_link("brovs", "openvswitch", 4000, "NIC 0 of web1")
    assert problem and "needs Open vSwitch on node node1" in problem and "node_network_ovs_bridges" in problem


def test_routed_mode_is_refused_by_the_node_spec():
    with pytest.raises(base.ValidationError, match=r"mode 'routed' is not supported on nodes"):
        base.NicSpec.from_dict({"mac": "aa:00:00:12:34:56", "mode": "routed", "link": "br0"}, 0)


def test_info_of_an_openvswitch_tap_shows_its_bridge_and_tag(node, monkeypatch):
    sysnet, switch, _ips = node
    tap.create(TAP, "brovs", 4000, "NIC 0 of web1", UUID, "web1", mode="openvswitch")
    (sysnet / "ovs-system").mkdir()
    os.symlink(sysnet / "ovs-system", sysnet / TAP / "master")
    answers = {"port-to-br": (0, "brovs\n"), "get": (0, "4000\n")}
    monkeypatch.setattr(tap, "_ovs", lambda args, what, check=True: answers[args[0]])
    assert tap.info(TAP) == {"name": TAP, "bridge": "brovs", "vlans": [4000]}
