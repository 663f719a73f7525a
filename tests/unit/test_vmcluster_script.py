"""scripts/vmcluster's pure parts (no root): the image's package list and key,
the mirror, interface names, and an inventory with scripts/vcluster's keys."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look the module up
    loader.exec_module(module)
    return module


vm = load("herd_vmcluster_script", SCRIPTS / "vmcluster")
vc = vm.vc


def test_range_choice_is_scripts_vclusters_own_code() -> None:
    assert vm.vc.choose_networks.__code__.co_filename == str(SCRIPTS / "vcluster")
    assert "choose_networks" not in vm.__dict__


def test_image_has_every_package_the_roles_install() -> None:
    packages = vm.image_packages()
    roles = vm.role_packages()
    assert {"python3-paramiko", "drbd-utils", "qemu-system-x86", "qemu-utils", "ovmf"} <= set(roles)
    assert set(roles) <= set(packages)
    # debootstrap cannot resolve python3-paramiko's virtual dependency; package_facts needs python3-apt
    assert {"python3-cffi-backend", "python3-apt", "linux-image-amd64", "ifupdown", "lvm2"} <= set(packages)


def test_image_key_changes_with_the_package_list() -> None:
    packages = vm.image_packages()
    key = vm.image_key(packages, "http://deb.debian.org/debian")
    assert key == vm.image_key(list(packages), "http://deb.debian.org/debian")
    assert key != vm.image_key(packages + ["socat"], "http://deb.debian.org/debian")
    assert key != vm.image_key(packages, "http://mirror.example.net/debian")


def test_mirror_is_the_bookworm_entry_of_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\nURIs: http://security.example.net/debian-security\n"
                       "Suites: bookworm-security\n\n"
                       "Types: deb\nURIs: http://mirror.example.net/debian\nSuites: bookworm bookworm-updates\n")
    real_path = vm.Path

    def fake_path(p: str) -> Path:
        return sources if p == "/etc/apt/sources.list.d/debian.sources" else real_path(p)

    monkeypatch.setattr(vm, "Path", fake_path)
    assert vm.apt_mirror() == "http://mirror.example.net/debian"


def test_interface_names_fit_the_kernel_limit_and_differ_from_vclusters() -> None:
    name = vc.validate_name("abcdefghij")
    names = [*vm.bridge_names(name), *vm.tap_names(name, 50)]
    assert max(len(n) for n in names) <= 15
    assert not set(names) & {*vc.bridge_names(name), *vc.host_veth_names(name, 50)}


def make_state() -> object:
    return vm.ClusterState(
        name="herdvm", state_dir="/var/lib/herd-vmcluster/herdvm", image_dir="/var/cache/herd-vm/k",
        primary_network="198.51.100.0/24", secondary_network="198.19.0.0/24",
        primary_bridge="herdvm-vpri", secondary_bridge="herdvm-vsec", private_key="/k/id_ed25519",
        known_hosts="/k/known_hosts", inventories=[], disk_size=1, memory=1024, accel="tcg",
        nodes=[vm.NodeState(name=f"node{i}", index=i, primary_ip=f"198.51.100.{10 + i}",
                            secondary_ip=f"198.19.0.{10 + i}", tap_primary=f"herdvm-t{i}p",
                            tap_secondary=f"herdvm-t{i}s", dir=f"/k/node{i}")
               for i in (1, 2, 3)])


def test_inventory_has_the_keys_of_vclusters_inventory() -> None:
    inv = yaml.safe_load(vm.inventory_text(make_state()))
    groups = inv["all"]["children"]
    assert list(groups["herd_nodes"]["hosts"]) == ["node1", "node2", "node3"]
    assert list(groups["herd_master"]["hosts"]) == ["node1"]
    node2 = groups["herd_nodes"]["hosts"]["node2"]
    assert node2 == {"ansible_host": "198.51.100.12", "herd_primary_ip": "198.51.100.12",
                     "herd_secondary_ip": "198.19.0.12", "herd_vcluster_spare_disk": "/dev/vdb"}
    assert "-o StrictHostKeyChecking=yes" in groups["herd_nodes"]["vars"]["ansible_ssh_common_args"]
    assert inv["all"]["vars"]["herd_vcluster_secondary_network"] == "198.19.0.0/24"


def test_an_extra_disk_is_vdc_before_the_seed_disk_and_in_the_inventory() -> None:
    state = make_state()
    plain = vm.qemu_argv(state, state.nodes[0])
    state.nodes[0].extra_disk = "/dev/vdc"
    extra = vm.qemu_argv(state, state.nodes[0])
    drives = [a for a in extra if a.startswith("file=")]
    assert [d.split(",")[0].rsplit("/", 1)[1] for d in drives] == ["root.qcow2", "spare.qcow2", "extra.qcow2",
                                                                   "seed.img"]
    assert not any("extra.qcow2" in a for a in plain)
    inv = yaml.safe_load(vm.inventory_text(state))
    assert inv["all"]["children"]["herd_nodes"]["hosts"]["node1"]["herd_vcluster_extra_disk"] == "/dev/vdc"
    assert "herd_vcluster_extra_disk" not in inv["all"]["children"]["herd_nodes"]["hosts"]["node2"]


def test_a_shared_dir_is_one_host_directory_every_node_mounts() -> None:
    state = make_state()
    assert not any(a == "-virtfs" for a in vm.qemu_argv(state, state.nodes[0]))
    state.shared_mount = vm.shared_mount("/srv/herd/shared-file-storage")
    shares = {vm.qemu_argv(state, n)[vm.qemu_argv(state, n).index("-virtfs") + 1] for n in state.nodes}
    assert shares == {f"local,path={state.state_dir}/shared,mount_tag=herdshared,security_model=passthrough,"
                      "id=shared"}


@pytest.mark.parametrize("path", ["relative/dir", "/srv/a b", "/srv/$(id)", "/srv/x;y"])
def test_a_shared_dir_that_is_not_a_plain_absolute_path_is_refused(path: str) -> None:
    with pytest.raises(vm.VClusterError, match="--shared-dir .*an absolute path"):
        vm.shared_mount(path)


def test_each_node_has_its_own_macs() -> None:
    macs = {vm.mac("herdvm", i, nic) for i in (1, 2, 3) for nic in (0, 1)}
    assert len(macs) == 6


def test_guest_network_file_configures_both_interfaces() -> None:
    state = make_state()
    text = vm.interfaces_file(state, state.nodes[1])
    assert "iface eth0 inet static\n\taddress 198.51.100.12/24" in text
    assert "iface eth1 inet static\n\taddress 198.19.0.12/24" in text
    assert "source /etc/network/interfaces.d/*" in text
