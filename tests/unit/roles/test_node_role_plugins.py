"""The pure parts of the node bootstrap roles' plugins: address and VLAN
validation and ifupdown editing (node_network, module_utils/herd/netconfig.py), the fleet CPU model
(cpu_type filter), the KVM probe firmware (hypervisor_facts)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.herd.cluster.plugins.module_utils.herd.errors import ValidationError
from ansible_collections.herd.cluster.plugins.filter.cpu import cpu_type
from ansible_collections.herd.cluster.plugins.modules.hypervisor_facts import PROBE_RC, probe_bios
from ansible_collections.herd.cluster.plugins.module_utils.herd.netconfig import (
    Invalid,
    check_address,
    comment_out,
    parse_vlans,
    ranges,
    stanza_bridge,
    validate,
)

LINKS = {
    "lo": {"ifname": "lo"},
    "eth0": {"ifname": "eth0", "address": "52:54:00:00:00:01", "flags": ["UP"]},
    "eth1": {"ifname": "eth1", "flags": ["UP"]},
}


@pytest.mark.parametrize("text", ["198.51.100.11/24", "2001:db8::5/64", "203.0.113.1/31"])
def test_host_addresses_with_prefix_are_accepted(text: str) -> None:
    assert check_address(text, "a") == text


@pytest.mark.parametrize("text, why", [
    ("198.51.100.300/24", "is not an address"),
    ("not-an-address/24", "is not an address"),
    ("10.1/8", "is not an address"),
    ("198.51.100.11", "prefix length"),
    ("198.51.100.11/33", "invalid prefix length"),
    ("198.51.100.0/24", "network or broadcast"),
    ("198.51.100.255/24", "network or broadcast"),
])
def test_non_addresses_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(Invalid, match=why):
        check_address(text, "a")


def test_vlans_and_ranges_expand_and_compress() -> None:
    vids = parse_vlans([20, "10", "100-102"], "v")
    assert vids == {10, 20, 100, 101, 102}
    assert ranges(vids) == ["10", "20", "100-102"]


@pytest.mark.parametrize("vlan", [0, 4095, "4000-4095", "x", "10-5"])
def test_vlan_ids_outside_1_to_4094_or_malformed_are_refused(vlan: object) -> None:
    with pytest.raises(Invalid):
        parse_vlans([vlan], "v")


def test_validation_reports_every_problem_at_once() -> None:
    problems, _bridges, _secondary = validate({
        "bridges": [{"name": "br0", "port": "eth9"}, {"name": "br1", "port": "eth1", "vlan_aware": True,
                                                      "vlans": [5000]}],
        "secondary": {"interface": "eth1", "address": "1.2.3/24"},
    }, LINKS)
    assert any("port eth9 does not exist" in p and "eth0, eth1, lo" in p for p in problems)
    assert any("out of range (1-4094)" in p for p in problems)
    assert any("secondary address" in p for p in problems)


def test_vlans_without_vlan_aware_are_refused() -> None:
    problems, _b, _s = validate({"bridges": [{"name": "br0", "port": "eth0", "vlans": [10]}], "secondary": None},
                                LINKS)
    assert problems == ["bridge br0: vlans are given but vlan_aware is false"]


def test_port_stanzas_are_commented_out_and_others_kept() -> None:
    text = ("source /etc/network/interfaces.d/*\n\nauto lo eth0\niface lo inet loopback\n\n"
            "iface eth0 inet static\n\taddress 198.51.100.11/24\n\tgateway 198.51.100.1\n\n"
            "auto eth3\niface eth3 inet dhcp\n")
    fixed, changed = comment_out(text, ["eth0"])
    assert changed
    assert "#herd# iface eth0 inet static\n#herd# \taddress 198.51.100.11/24\n#herd# \tgateway" in fixed
    assert "#herd# auto lo eth0\nauto lo\n" in fixed
    assert "iface lo inet loopback\n" in fixed and "\nauto eth3\niface eth3 inet dhcp\n" in fixed
    assert comment_out(fixed, ["eth0"]) == (fixed, False)


INTEL_HASWELL = [
    "fpu", "cx8", "cmov", "mmx", "fxsr", "sse", "sse2", "lm", "nx", "syscall", "sse4_1", "sse4_2",
    "ssse3", "popcnt", "cx16", "lahf_lm", "aes", "pclmulqdq", "avx", "xsave", "x2apic",
    "tsc_deadline_timer", "f16c", "rdrand", "fsgsbase", "erms", "smep", "avx2", "bmi1", "bmi2", "fma",
    "movbe", "invpcid", "abm", "pcid"
]
INTEL_BROADWELL = INTEL_HASWELL + ["adx", "rdseed", "smap", "3dnowprefetch"]


def test_the_oldest_cpu_of_the_fleet_decides() -> None:
    result = cpu_type([{"name": "a", "vendor": "GenuineIntel", "flags": INTEL_BROADWELL},
                       {"name": "b", "vendor": "GenuineIntel", "flags": INTEL_HASWELL}])
    assert result["per_node"] == {"a": "Broadwell-noTSX", "b": "Haswell-noTSX"}
    assert result["cpu_type"] == "Haswell-noTSX"
    assert result["limited_by"] == ["b"]


def test_a_model_this_qemu_does_not_know_is_not_chosen() -> None:
    result = cpu_type([{"name": "a", "vendor": "GenuineIntel", "flags": INTEL_BROADWELL,
                        "models": ["Haswell-noTSX", "qemu64"]}])
    assert result["cpu_type"] == "Haswell-noTSX"


def test_mixed_vendors_get_a_vendor_neutral_model() -> None:
    result = cpu_type([{"name": "a", "vendor": "GenuineIntel", "flags": INTEL_BROADWELL},
                       {"name": "b", "vendor": "AuthenticAMD", "flags": INTEL_BROADWELL}])
    assert result["cpu_type"] == "kvm64"
    assert "mix CPU vendors" in result["reason"]


def test_cpu_type_reads_registered_results_from_hostvars() -> None:
    hostvars = {"a": {"hv": {"cpu": {"vendor": "GenuineIntel", "flags": INTEL_HASWELL}, "qemu": {"models": []}}}}
    assert cpu_type(["a"], hostvars, "hv")["cpu_type"] == "Haswell-noTSX"
    with pytest.raises(AnsibleFilterError, match="b has no hv"):
        cpu_type(["b"], hostvars, "hv")


def test_kvm_probe_firmware_exits_through_isa_debug_exit() -> None:
    image = probe_bios()
    assert len(image) == 65536  # QEMU wants a multiple of 64 KiB
    # reset vector: mov al, 0x31; out 0xf4, al; hlt
    assert image[0xFFF0:0xFFF5] == bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4])
    assert PROBE_RC == (0x31 << 1) | 1


def test_item9_a_bridge_name_with_a_trailing_newline_is_refused() -> None:
    problems, _b, _s = validate({"bridges": [{"name": "br0\n", "port": "eth0"}], "secondary": None}, LINKS)
    assert any("bridge name 'br0\\n' is not a valid interface name" in p for p in problems)


def test_item16_node_base_writes_the_known_hosts_block_node_add_reads() -> None:
    import pathlib

    import yaml
    from ansible_collections.herd.cluster.plugins.module_utils.herd.rpc import MANAGED_BLOCK

    tasks = yaml.safe_load((pathlib.Path(__file__).resolve().parents[3] / "roles" / "node_base" / "tasks"
                            / "ssh.yml").read_text())
    markers = [t["ansible.builtin.blockinfile"]["marker"] for t in tasks if "ansible.builtin.blockinfile" in t
               and "known_hosts" in t["ansible.builtin.blockinfile"]["path"]]
    assert markers == [f"# {{mark}} {MANAGED_BLOCK}"]


class FakeIp:
    """`ip`/`bridge` JSON answers of a node with eth0 (198.51.100.11/24, default route) and eth1."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], data: str | None = None) -> tuple[int, str, str]:
        import json

        self.calls.append(args)
        if args[:4] == ["ip", "-d", "-j", "link"]:
            return 0, json.dumps([{"ifname": "lo"}, {"ifname": "eth0", "address": "52:54:00:00:00:01", "flags": ["UP"]},
                                  {"ifname": "eth1", "flags": []}]), ""
        if args[:3] == ["ip", "-j", "addr"] and args[-1] == "eth0":
            return 0, json.dumps([{"addr_info": [{"scope": "global", "local": "198.51.100.11", "prefixlen": 24}]}]), ""
        if args[:2] == ["ip", "-4"] and args[-1] == "eth0":
            return 0, json.dumps([{"dst": "default", "gateway": "198.51.100.1"}]), ""
        return 0, "[]", ""


def test_a_bridge_takes_over_its_ports_mac_address_and_default_route(tmp_path) -> None:
    from ansible_collections.herd.cluster.plugins.module_utils.herd.netconfig import Net, configure

    (tmp_path / "interfaces").write_text("source /etc/network/interfaces.d/*\nauto eth0\niface eth0 inet dhcp\n")
    ip = FakeIp()
    bridge = {"name": "br0", "port": "eth0", "addresses": [], "gateway": None, "instance_only": False,
              "vlan_aware": False, "vlans": [], "mtu": None}
    result, warnings = configure({"bridges": [bridge], "secondary": None, "persist": True,
                                  "persist_dir": str(tmp_path / "interfaces.d"), "disable_port_stanzas": True,
                                  "interfaces_file": str(tmp_path / "interfaces")}, Net(ip), check_mode=True)
    assert result["ip_batch"] == [
        "link add name br0 address 52:54:00:00:00:01 type bridge stp_state 0 forward_delay 0",
        "link set dev br0 up", "link set dev eth0 master br0", "address add 198.51.100.11/24 brd + dev br0",
        "route replace default via 198.51.100.1 dev br0", "address del 198.51.100.11/24 dev eth0"]
    assert result["files"] == [str(tmp_path / "interfaces.d" / "herd-br0"), str(tmp_path / "interfaces")]
    assert result["bridges"][0]["gateway"] == "198.51.100.1" and warnings == []
    assert not (tmp_path / "interfaces.d").exists()  # check mode
    assert not [c for c in ip.calls if "-batch" in c]


def lvm_runner(vgs: dict[str, list[str]]):
    """lvm's JSON reports for volume groups ``vgs`` (name: devices); blank devices for blkid."""
    import json

    def run(args: list[str], environ_update: dict[str, str] | None = None) -> tuple[int, str, str]:
        if args[0] == "vgs":
            rows = [{"vg_name": v, "lv_count": "3", "vg_size": "1000", "vg_free": "500"} for v in vgs]
            return 0, json.dumps({"report": [{"vg": rows}]}), ""
        if args[0] == "pvs" and "--select" in args:
            vg = args[args.index("--select") + 1].split("=")[1]
            return 0, json.dumps({"report": [{"pv": [{"pv_name": p, "vg_name": vg} for p in vgs.get(vg, [])]}]}), ""
        if args[0] == "blkid":
            return 2, "", ""
        return 1, "", "not here"
    return run


def test_a_volume_group_is_planned_in_check_mode_and_never_shrunk(monkeypatch) -> None:
    import stat

    from ansible_collections.herd.cluster.plugins.module_utils.herd import vgsetup

    monkeypatch.setattr(stat, "S_ISBLK", lambda mode: True)  # /dev/null and /dev/zero stand for disks
    result = vgsetup.ensure({"name": "gnt", "pvs": ["/dev/null"], "wipe": False}, lvm_runner({}), True)
    assert result["commands"] == [["pvcreate", "-y", "/dev/null"], ["vgcreate", "gnt", "/dev/null"]]
    assert result["changed"] and result["vg"]["pvs"] == ["/dev/null"]
    with pytest.raises(vgsetup.VgError, match="never shrinks a volume group"):
        vgsetup.ensure({"name": "gnt", "pvs": ["/dev/null"], "wipe": False},
                       lvm_runner({"gnt": ["/dev/null", "/dev/zero"]}), True)
    with pytest.raises(ValidationError, match="invalid volume group"):
        vgsetup.ensure({"name": "gnt\n", "pvs": ["/dev/null"], "wipe": False}, lvm_runner({}), True)


def test_the_bridge_stanza_needs_no_bridge_utils() -> None:
    """ifupdown without bridge-utils ignores bridge_* options and then cannot bring up the
    bridge at boot: the stanza creates it with iproute2 commands only."""
    text = stanza_bridge({"name": "br0", "vlan_aware": True, "vids": {1, 10, 20, 21, 22}, "mtu": 9000},
                         "eth0", ["198.51.100.11/24"], "198.51.100.1",
                         [{"dst": "192.0.2.0/24", "family": "-4", "gateway": None}])
    lines = [line.strip() for line in text.splitlines()]
    assert not [line for line in lines if line.startswith("bridge_")], text
    assert "auto br0" in lines and "iface br0 inet static" in lines and "address 198.51.100.11/24" in lines
    assert "pre-up ip link show dev br0 >/dev/null 2>&1 || ip link add name br0 address " \
           "$(cat /sys/class/net/eth0/address) type bridge stp_state 0 forward_delay 0 vlan_filtering 1" in lines
    # the port joins the bridge and comes up before the bridge gets its address
    assert lines.index("pre-up ip link set dev eth0 master br0") < lines.index("pre-up ip link set dev eth0 up")
    assert "pre-up bridge vlan add dev eth0 vid 10" in lines and "pre-up bridge vlan add dev eth0 vid 20-22" in lines
    assert "pre-up bridge vlan add dev eth0 vid 1" not in lines
    assert "pre-up ip link set dev eth0 mtu 9000" in lines and "mtu 9000" in lines
    assert "up ip -4 route replace 192.0.2.0/24 dev br0" in lines
    assert "post-down ip link del dev br0" in lines


def test_a_bridge_without_port_or_address_is_created_plainly() -> None:
    text = stanza_bridge({"name": "br9", "vlan_aware": False, "vids": set()}, None, [], None, [])
    lines = [line.strip() for line in text.splitlines()]
    assert "iface br9 inet manual" in lines
    assert "pre-up ip link show dev br9 >/dev/null 2>&1 || ip link add name br9 type bridge stp_state 0 " \
           "forward_delay 0" in lines
    assert not [line for line in lines if "master" in line or "bridge_" in line], text


class FakeIpWithMasterIp(FakeIp):
    """A node whose bridge br0 exists (eth0 its port) and also carries the cluster's master IP as /32."""

    def __call__(self, args: list[str], data: str | None = None) -> tuple[int, str, str]:
        import json

        self.calls.append(args)
        if args[:4] == ["ip", "-d", "-j", "link"]:
            links = [{"ifname": "lo"},
                     {"ifname": "eth0", "address": "52:54:00:00:00:01", "flags": ["UP"], "master": "br0"},
                     {"ifname": "br0", "address": "52:54:00:00:00:01", "flags": ["UP"],
                      "linkinfo": {"info_kind": "bridge"}}]
            return 0, json.dumps(links), ""
        if args[:3] == ["ip", "-j", "addr"] and args[-1] == "br0":
            return 0, json.dumps([{"addr_info": [{"scope": "global", "local": "198.51.100.11", "prefixlen": 24},
                                                 {"scope": "global", "local": "198.51.100.10", "prefixlen": 32}]}]), ""
        if args[:2] == ["ip", "-4"] and args[-1] == "br0":
            return 0, json.dumps([{"dst": "default", "gateway": "198.51.100.1"}]), ""
        return 0, "[]", ""


def test_the_floating_master_ip_on_the_bridge_is_neither_persisted_nor_touched(tmp_path) -> None:
    from ansible_collections.herd.cluster.plugins.module_utils.herd.netconfig import Net, configure

    bridge = {"name": "br0", "port": "eth0", "addresses": [], "gateway": None, "instance_only": False,
              "vlan_aware": False, "vlans": [], "mtu": None}
    params = {"bridges": [bridge], "secondary": None, "persist": True,
              "persist_dir": str(tmp_path / "interfaces.d"), "disable_port_stanzas": True,
              "interfaces_file": str(tmp_path / "interfaces")}
    result, _warnings = configure(params, Net(FakeIpWithMasterIp()), check_mode=True, floating_ip="198.51.100.10")
    assert result["bridges"][0]["addresses"] == ["198.51.100.11/24"]
    assert not [c for c in result["ip_batch"] if "198.51.100.10" in c]
    # a node's own /32 address (as some hosting providers assign) is kept: only the master IP is left out
    result, _warnings = configure(params, Net(FakeIpWithMasterIp()), check_mode=True, floating_ip="198.51.100.99")
    assert result["bridges"][0]["addresses"] == ["198.51.100.10/32", "198.51.100.11/24"]
