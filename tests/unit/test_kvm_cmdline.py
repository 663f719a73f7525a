"""The QEMU command line is a pure function of the instance spec (hypervisor/kvm.py)."""

import json
import os
import stat
import uuid as uuidlib

import pytest

from plugins.module_utils.herd.agent import facts
from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.hypervisor import base, kvm, tap
from plugins.module_utils.herd.hypervisor.base import InstanceSpec

UUID = "0b7a1f0e-5d2c-4e8b-9a61-3f2d7c4b8e10"
RUN = "/run/herd/kvm"


def make_spec(**overrides):
    data = {
        "name": "web1.example.org", "uuid": UUID, "memory": 512, "vcpus": 2, "network_port": 11000,
        "hvparams": {"accel": "tcg"},
        "disks": [{"path": "/srv/herd/file-storage/web1/disk0"}],
        "nics": [{"mac": "aa:00:00:12:34:56", "link": "br0"}],
    }
    hvparams = dict(data["hvparams"])
    hvparams.update(overrides.pop("hvparams", {}))
    data.update(overrides)
    data["hvparams"] = hvparams
    return InstanceSpec.from_dict(data)


def build(spec=None, **kwargs):
    spec = spec or make_spec()
    return kvm.build_command(spec, kvm.Paths(spec.name, RUN), **kwargs)


def value_after(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


# --- machine, accelerator, CPU, memory ----------------------------------------

def test_pc_machine_type_by_default():
    assert value_after(build(), "-machine") == ["pc"]


def test_q35_machine_type():
    assert value_after(build(make_spec(hvparams={"machine_type": "q35"})), "-machine") == ["q35"]


def test_resolved_machine_type_replaces_the_alias():
    assert value_after(build(machine="pc-i440fx-7.2"), "-machine") == ["pc-i440fx-7.2"]


def test_machine_resolved_at_start_travels_in_the_spec():
    spec = make_spec(machine="pc-q35-7.2", hvparams={"machine_type": "q35"})
    assert value_after(build(spec), "-machine") == ["pc-q35-7.2"]


def test_tcg_accel():
    assert value_after(build(), "-accel") == ["tcg"]


def test_kvm_accel_is_the_default():
    spec = InstanceSpec.from_dict({"name": "a", "uuid": UUID, "memory": 128})
    assert value_after(build(spec), "-accel") == ["kvm"]


def test_unknown_accel_is_rejected():
    with pytest.raises(ValidationError, match="accel"):
        make_spec(hvparams={"accel": "xen"})


def test_memory_and_vcpus():
    argv = build()
    assert value_after(argv, "-m") == ["512"]
    assert value_after(argv, "-smp") == ["2"]


def test_cpu_type():
    assert value_after(build(make_spec(hvparams={"cpu_type": "host,+vmx"})), "-cpu") == ["host,+vmx"]


def test_cpu_type_with_spaces_is_rejected():
    with pytest.raises(ValidationError, match="cpu_type"):
        make_spec(hvparams={"cpu_type": "host -device x"})


def test_name_and_uuid():
    argv = build()
    assert value_after(argv, "-name") == ["web1.example.org"]
    assert value_after(argv, "-uuid") == [UUID]


def test_no_default_devices():
    assert "-nodefaults" in build()


# --- runtime files, sockets, daemon -------------------------------------------

def test_pidfile_in_the_runtime_dir_and_qemu_in_the_foreground():
    argv = build()
    # the sandbox's spawn=deny forbids the fork of -daemonize
    assert (value_after(argv, "-pidfile"), "-daemonize" in argv) == ([f"{RUN}/web1.example.org.pid"], False)


# --- confinement (issue 11 item 8) ------------------------------------------------

def test_item8_root_qemu_runs_in_the_full_seccomp_sandbox():
    argv = build()
    assert (value_after(argv, "-sandbox"), value_after(argv, "-runas")) == \
        (["on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"], [])


def test_item8_qemu_with_a_user_runs_as_it_in_the_sandbox_that_lets_runas_drop_root():
    argv = build(runas="herd-vm00")
    assert (value_after(argv, "-runas"), value_after(argv, "-sandbox")) == \
        (["herd-vm00"], ["on,obsolete=deny,spawn=deny,resourcecontrol=deny"])


def test_qmp_on_a_unix_socket():
    assert value_after(build(), "-qmp") == [f"unix:{RUN}/web1.example.org.qmp,server=on,wait=off"]


def test_serial_console_on_a_unix_socket():
    assert value_after(build(), "-serial") == [f"unix:{RUN}/web1.example.org.serial,server=on,wait=off"]


def test_serial_console_off():
    assert value_after(build(make_spec(hvparams={"serial_console": False})), "-serial") == ["none"]


def test_paths_follow_the_run_dir(monkeypatch):
    monkeypatch.setenv("HERD_RUN_DIR", "/tmp/node2-run")
    assert kvm.Paths("web1").qmp == "/tmp/node2-run/kvm/web1.qmp"


# --- VNC ------------------------------------------------------------------------

def test_vnc_binds_loopback_by_default_on_the_allocated_port():
    assert value_after(build(), "-vnc") == ["127.0.0.1:5100"]  # 11000 - 5900


def test_vnc_bind_address():
    argv = build(make_spec(network_port=11007, hvparams={"vnc_bind_address": "198.51.100.10"}))
    assert value_after(argv, "-vnc") == ["198.51.100.10:5107"]


def test_vnc_ipv6_bind_address_in_brackets():
    assert value_after(build(make_spec(hvparams={"vnc_bind_address": "::1"})), "-vnc") == ["[::1]:5100"]


def test_vnc_off_when_bind_address_is_none():
    argv = build(make_spec(hvparams={"vnc_bind_address": "none"}))
    assert "-vnc" not in argv
    assert value_after(argv, "-display") == ["none"]


def test_vnc_off_without_a_port():
    assert "-vnc" not in build(make_spec(network_port=None))


def test_vnc_bind_address_must_be_an_ip():
    with pytest.raises(ValidationError, match="vnc_bind_address"):
        make_spec(hvparams={"vnc_bind_address": "example.org"})


# --- firmware and boot ----------------------------------------------------------

def test_bios_has_no_pflash():
    assert not any("pflash" in a for a in build())


def test_uefi_uses_readonly_ovmf_code_and_the_instances_vars():
    spec = make_spec(hvparams={"firmware": "uefi", "machine_type": "q35"},
                     uefi_vars="/srv/herd/file-storage/web1/OVMF_VARS.fd")
    drives = value_after(build(spec), "-drive")
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={kvm.OVMF_CODE}" in drives
    assert "if=pflash,format=raw,unit=1,file=/srv/herd/file-storage/web1/OVMF_VARS.fd" in drives


def test_uefi_without_a_vars_file_is_rejected():
    with pytest.raises(ValidationError, match="uefi_vars"):
        make_spec(hvparams={"firmware": "uefi"})


def test_direct_kernel_boot_adds_the_serial_console():
    spec = make_spec(hvparams={"kernel_path": "/boot/vmlinuz", "initrd_path": "/boot/initrd.img",
                               "kernel_args": "quiet"})
    argv = build(spec)
    assert value_after(argv, "-kernel") == ["/boot/vmlinuz"]
    assert value_after(argv, "-initrd") == ["/boot/initrd.img"]
    assert value_after(argv, "-append") == ["quiet console=ttyS0"]


def test_kernel_args_console_is_kept():
    spec = make_spec(hvparams={"kernel_path": "/boot/vmlinuz", "kernel_args": "console=ttyS0,115200"})
    assert value_after(build(spec), "-append") == ["console=ttyS0,115200"]


def test_relative_kernel_path_is_rejected():
    with pytest.raises(ValidationError, match="kernel_path"):
        make_spec(hvparams={"kernel_path": "boot/vmlinuz"})


def test_without_kernel_the_first_disk_boots():
    argv = build()
    assert "-kernel" not in argv
    assert "virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=1" in value_after(argv, "-device")


# --- disks -----------------------------------------------------------------------

def test_disks_are_virtio_with_cache_and_aio():
    spec = make_spec(disks=[{"path": "/srv/d0"}, {"path": "/dev/gnt/d1", "format": "raw"}],
                     hvparams={"disk_cache": "writethrough", "disk_aio": "io_uring"})
    argv = build(spec)
    drives = value_after(argv, "-drive")
    assert drives == ["file=/srv/d0,format=raw,if=none,id=disk0,cache=writethrough,aio=io_uring,discard=unmap,"
                      "auto-read-only=off",
                      "file=/dev/gnt/d1,format=raw,if=none,id=disk1,cache=writethrough,aio=io_uring,discard=unmap,"
                      "auto-read-only=off"]
    assert "virtio-blk-pci,drive=disk1,id=virtio-disk1" in value_after(argv, "-device")


def test_qcow2_disk_format():
    spec = make_spec(disks=[{"path": "/srv/d0.qcow2", "format": "qcow2"}])
    assert "format=qcow2" in value_after(build(spec), "-drive")[0]


def test_disk_cache_default_means_writeback():
    assert "cache=writeback" in value_after(build(make_spec(hvparams={"disk_cache": "default"})), "-drive")[0]


def test_native_aio_needs_direct_io():
    with pytest.raises(ValidationError, match="native"):
        make_spec(hvparams={"disk_cache": "writeback", "disk_aio": "native"})


def test_disk_path_with_a_comma_is_rejected():
    with pytest.raises(ValidationError, match="','"):
        make_spec(disks=[{"path": "/srv/a,file=/etc/shadow"}])


def test_disk_path_with_dotdot_is_rejected():
    with pytest.raises(ValidationError):
        make_spec(disks=[{"path": "/srv/../etc/shadow"}])


def test_cdrom_is_an_ide_cd():
    argv = build(make_spec(cdrom="/srv/herd/file-storage/web1/seed.iso"))
    assert "file=/srv/herd/file-storage/web1/seed.iso,format=raw,if=none,id=cdrom0,media=cdrom,readonly=on" \
        in value_after(argv, "-drive")
    assert "ide-cd,drive=cdrom0,id=ide-cd0" in value_after(argv, "-device")


# --- NICs --------------------------------------------------------------------------

def test_nic_is_a_tap_with_virtio_net_and_the_mac():
    argv = build()
    name = tap.tap_name(UUID, 0)
    assert value_after(argv, "-netdev") == [f"tap,id=net0,ifname={name},script=no,downscript=no"]
    assert "virtio-net-pci,netdev=net0,id=virtio-net0,mac=aa:00:00:12:34:56" in value_after(argv, "-device")


def test_no_nics_no_netdev():
    assert "-netdev" not in build(make_spec(nics=[]))


def test_item13_tap_names_come_from_the_instance_uuid_and_the_nic_index():
    uuids = [str(uuidlib.uuid4()) for _i in range(50)]
    names = {tap.tap_name(u, n) for u in uuids for n in range(8)}
    assert len(names) == 400
    assert all(len(n) <= 15 and n.startswith("hv") for n in names)
    assert tap.tap_name(UUID, 1) == tap.tap_name(UUID, 1) == "hv" + UUID.replace("-", "")[:11] + "1"
    # the name of an instance plays no part: a new instance of an old name gets other taps
    assert tap.tap_name(str(uuidlib.uuid4()), 0) != tap.tap_name(UUID, 0)


def test_item13_a_tap_name_needs_a_uuid():
    with pytest.raises(ValidationError, match="invalid UUID"):
        tap.tap_name("web1.example.org", 0)


def test_invalid_mac_is_rejected():
    with pytest.raises(ValidationError, match="MAC"):
        make_spec(nics=[{"mac": "aa:00:00:12:34", "link": "br0"}])


def test_invalid_bridge_name_is_rejected():
    with pytest.raises(ValidationError, match="bridge"):
        make_spec(nics=[{"mac": "aa:00:00:12:34:56", "link": "br0; reboot"}])


def test_vlan_out_of_range_is_rejected():
    with pytest.raises(ValidationError, match="vlan"):
        make_spec(nics=[{"mac": "aa:00:00:12:34:56", "link": "br0", "vlan": 4095}])


# --- migration target -------------------------------------------------------------

def test_incoming_is_appended_for_a_migration_target():
    argv = build(incoming="tcp:203.0.113.2:8102")
    assert argv[-2:] == ["-incoming", "tcp:203.0.113.2:8102"]


def test_target_command_differs_from_the_source_only_by_incoming():
    spec = make_spec(machine="pc-i440fx-7.2")
    assert build(spec, incoming="tcp:203.0.113.2:0")[:-2] == build(spec)


def test_item7_tls_target_defers_incoming_and_loads_server_credentials_and_authz():
    tls = kvm.IncomingTLS("/var/lib/herd/crypto", ["O=herd cluster x,CN=node1", "O=herd cluster x,CN=node2"])
    argv = build(incoming="tcp:203.0.113.2:0", tls=tls)
    objects = value_after(argv, "-object")
    authz = json.loads(objects[1])
    assert (argv[-2:], objects[0]) == (["-incoming", "defer"],
                                       "tls-creds-x509,id=herd-mig-tls,dir=/var/lib/herd/crypto,endpoint=server,"
                                       "verify-peer=on")
    assert (authz["qom-type"], authz["policy"], [(r["match"], r["policy"], r["format"]) for r in authz["rules"]]) == \
        ("authz-list", "deny", [("O=herd cluster x,CN=node1", "allow", "exact"),
                                ("O=herd cluster x,CN=node2", "allow", "exact")])


def test_item7_tls_objects_only_on_a_migration_target():
    tls = kvm.IncomingTLS("/var/lib/herd/crypto", ["O=herd cluster x,CN=node1"])
    assert value_after(build(tls=tls), "-object") == []


def test_build_command_is_pure():
    spec = make_spec()
    assert build(spec) == build(spec)
    assert all(isinstance(a, str) for a in build(spec))


# --- name validation ---------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", "Web1", "-web1", "web_1", "a b", "../etc", "web1/x", "x" * 254, None, 7])
def test_bad_instance_names_are_rejected(bad):
    with pytest.raises(ValidationError, match="instance name"):
        make_spec(name=bad)


@pytest.mark.parametrize("bad", ["../x", "web1/..", "a b"])
def test_bad_names_never_become_paths(bad):
    with pytest.raises(ValidationError):
        kvm.Paths(bad)


def test_bad_uuid_is_rejected():
    with pytest.raises(ValidationError, match="UUID"):
        make_spec(uuid="not-a-uuid")


def test_memory_must_be_an_integer():
    with pytest.raises(ValidationError, match="memory"):
        make_spec(memory="512M")


def test_unknown_hypervisor_is_rejected():
    with pytest.raises(ValidationError, match="unknown hypervisor"):
        base.get("xen")


# --- node probes -------------------------------------------------------------------

def test_machine_alias_resolved_from_qemu_help(tmp_path, monkeypatch):
    fake_qemu = tmp_path / "qemu-system-x86_64"
    fake_qemu.write_text("#!/bin/sh\n"
                         "echo 'Supported machines are:'\n"
                         "echo 'pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-9.9)'\n"
                         "echo 'pc-i440fx-9.9        Standard PC (i440FX + PIIX, 1996) (default)'\n"
                         "echo 'q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-9.9)'\n")
    fake_qemu.chmod(fake_qemu.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(kvm, "_machine_cache", {})
    assert kvm.resolve_machine("q35", str(fake_qemu)) == "pc-q35-9.9"
    assert kvm.resolve_machine("pc", str(fake_qemu)) == "pc-i440fx-9.9"


def test_check_reports_missing_kernel_disk_and_bridge(tmp_path, monkeypatch):
    monkeypatch.setattr(tap, "SYS_NET", str(tmp_path / "sys-class-net"))
    os.makedirs(tmp_path / "sys-class-net")
    spec = make_spec(hvparams={"kernel_path": str(tmp_path / "no-kernel")},
                     disks=[{"path": str(tmp_path / "no-disk")}],
                     nics=[{"mac": "aa:00:00:12:34:56", "link": "brmissing"}])
    problems = " | ".join(kvm.KVM().check(spec))
    assert f"kernel_path {tmp_path}/no-kernel does not exist on node" in problems
    assert f"disk 0 of web1.example.org: {tmp_path}/no-disk does not exist" in problems
    assert "bridge brmissing does not exist on node" in problems


def test_check_reports_vlan_on_a_bridge_that_is_not_vlan_aware(tmp_path, monkeypatch):
    sysnet = tmp_path / "sys-class-net"
    os.makedirs(sysnet / "br0" / "bridge")
    (sysnet / "br0" / "bridge" / "vlan_filtering").write_text("0\n")
    monkeypatch.setattr(tap, "SYS_NET", str(sysnet))
    spec = make_spec(nics=[{"mac": "aa:00:00:12:34:56", "link": "br0", "vlan": 100}])
    assert any("vlan 100 needs a VLAN-aware bridge" in p for p in kvm.KVM().check(spec))


def test_check_reports_unusable_kvm(monkeypatch):
    monkeypatch.setattr(kvm, "kvm_usable", lambda: {"usable": False, "reason": "/dev/kvm does not exist"})
    spec = make_spec(hvparams={"accel": "kvm"}, disks=[], nics=[])
    problems = kvm.KVM().check(spec)
    assert any("accel kvm is not usable" in p and "/dev/kvm does not exist" in p and "accel: tcg" in p
               for p in problems)


def fake_qemu_with_models(tmp_path, *models):
    """A qemu-system-x86_64 whose ``-cpu help`` lists ``models`` (and --version 7.2.19)."""
    qemu = tmp_path / "qemu-system-x86_64"
    lines = "".join(f"echo 'x86 {m:<20} some CPU'\n" for m in models)
    qemu.write_text("#!/bin/sh\n"
                    "if [ \"$1\" = --version ]; then echo 'QEMU emulator version 7.2.19'; exit 0; fi\n"
                    "echo 'Available CPUs:'\n" + lines + "echo ''\necho 'Recognized CPUID flags:'\n")
    qemu.chmod(qemu.stat().st_mode | stat.S_IXUSR)
    return str(qemu)


def test_check_node_reports_a_cpu_model_this_qemu_lacks(tmp_path, monkeypatch):
    qemu = fake_qemu_with_models(tmp_path, "qemu64", "Nehalem", "host")
    monkeypatch.setattr(facts, "NODE_SETTINGS", str(tmp_path / "node.json"))
    (tmp_path / "node.json").write_text('{"cpu_type_cluster": "Nehalem"}')
    monkeypatch.setattr(facts, "node_state_dir", lambda: str(tmp_path / "absent"))
    hv = base.check_hvparams({"cpu_type": "x86-64-v2-AES", "accel": "tcg"})
    problems = kvm.KVM(qemu=qemu).check_node(hv)
    assert len(problems) == 1, problems
    assert "hvparams.cpu_type 'x86-64-v2-AES'" in problems[0]
    assert "no CPU model 'x86-64-v2-AES'" in problems[0]
    assert "node_hypervisor chose Nehalem" in problems[0]
    for known in ("Nehalem,+aes", "host", "qemu64"):
        assert kvm.KVM(qemu=qemu).check_node(base.check_hvparams({"cpu_type": known, "accel": "tcg"})) == []


def test_cpu_models_parsed_from_qemu_help():
    text = ("Available CPUs:\nx86 486                   (alias configured by machine type)\n"
            "x86 Nehalem-v1            Intel Core i7 9xx (Nehalem Class Core i7)\n\n"
            "Recognized CPUID flags:\n  3dnow 3dnowext\n")
    assert facts.parse_cpu_models(text) == ["486", "Nehalem-v1"]


# --- taps ----------------------------------------------------------------------------

def fake_sysnet(tmp_path, vlan_filtering):
    sysnet = tmp_path / "sys-class-net"
    os.makedirs(sysnet / "br0" / "bridge")
    (sysnet / "br0" / "bridge" / "vlan_filtering").write_text(f"{vlan_filtering}\n")
    (sysnet / "br0" / "bridge" / "default_pvid").write_text("1\n")
    (sysnet / "br0" / "mtu").write_text("9000\n")
    return sysnet


def test_tap_creation_commands_on_a_vlan_aware_bridge(tmp_path, monkeypatch):
    monkeypatch.setattr(tap, "SYS_NET", str(fake_sysnet(tmp_path, 1)))
    commands = []
    monkeypatch.setattr(tap, "_ip", lambda args, what: commands.append(" ".join(args)))
    tap.create("hv12345678", "br0", 100, "NIC 0 of web1", UUID, "web1")
    assert commands == ["ip tuntap add dev hv12345678 mode tap vnet_hdr",
                        f"ip link set dev hv12345678 alias herd {UUID} web1",
                        "ip link set dev hv12345678 mtu 9000",
                        "ip link set dev hv12345678 master br0",
                        "bridge vlan del dev hv12345678 vid 1",
                        "bridge vlan add dev hv12345678 vid 100 pvid untagged",
                        "ip link set dev hv12345678 up"]


def test_tap_without_vlan_gets_no_bridge_vlan_commands(tmp_path, monkeypatch):
    monkeypatch.setattr(tap, "SYS_NET", str(fake_sysnet(tmp_path, 1)))
    commands = []
    monkeypatch.setattr(tap, "_ip", lambda args, what: commands.append(" ".join(args)))
    tap.create("hv12345678", "br0", None, "NIC 0 of web1", UUID, "web1")
    assert not [c for c in commands if c.startswith("bridge")]


def test_tap_with_vlan_on_a_plain_bridge_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tap, "SYS_NET", str(fake_sysnet(tmp_path, 0)))
    monkeypatch.setattr(tap, "_ip", lambda args, what: pytest.fail(f"ran {args}"))
    with pytest.raises(base.HypervisorError, match="vlan 100 needs a VLAN-aware bridge"):
        tap.create("hv12345678", "br0", 100, "NIC 0 of web1", UUID, "web1")


# --- VNC password ---------------------------------------------------------------

def test_vnc_password_is_a_secret_object_never_on_the_command_line():
    spec = make_spec(vnc_password="s3cr#tPw", hvparams={"vnc_bind_address": "0.0.0.0"})
    argv = build(spec)
    assert "s3cr#tPw" not in " ".join(argv)
    assert value_after(argv, "-object") == [f"secret,id=herd-vnc-secret,format=raw,file={RUN}/web1.example.org.vnc-secret"]
    assert value_after(argv, "-vnc") == ["0.0.0.0:5100,password-secret=herd-vnc-secret"]


def test_vnc_password_is_not_used_on_a_loopback_console():
    argv = build(make_spec(vnc_password="s3cr#tPw"))
    assert value_after(argv, "-vnc") == ["127.0.0.1:5100"] and "-object" not in argv


def test_vnc_secret_file_is_0600_from_its_creation(tmp_path):
    path = str(tmp_path / "web1.vnc-secret")
    kvm.write_secret(path, "s3cr#tPw")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "s3cr#tPw"


def test_node_refuses_an_unusable_vnc_password():
    with pytest.raises(ValidationError, match="1 to 8"):
        make_spec(vnc_password="123456789", hvparams={"vnc_bind_address": "0.0.0.0"})


# --- boot from an ISO, discard, disk type, vhost-net, extra arguments -----------------

ISO = "/srv/images/debian-12-netinst.iso"


def device_values(argv):
    return value_after(argv, "-device")


def test_cdrom_image_is_a_second_cd_next_to_the_seed():
    argv = build(make_spec(cdrom="/srv/herd/file-storage/web1/seed.iso", hvparams={"cdrom_image_path": ISO}))
    drives = value_after(argv, "-drive")
    assert f"file={ISO},format=raw,if=none,id=cdrom1,media=cdrom,readonly=on" in drives
    assert "ide-cd,drive=cdrom1,id=ide-cd1" in device_values(argv)
    assert "ide-cd,drive=cdrom0,id=ide-cd0" in device_values(argv)


def test_boot_order_cdrom_boots_the_iso_first_then_disk0():
    argv = build(make_spec(hvparams={"cdrom_image_path": ISO, "boot_order": "cdrom"}))
    assert value_after(argv, "-boot") == ["order=d"]
    assert "ide-cd,drive=cdrom1,id=ide-cd1,bootindex=1" in device_values(argv)
    assert "virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=2" in device_values(argv)


def test_boot_order_network_boots_nic0_first():
    argv = build(make_spec(hvparams={"boot_order": "network"}))
    assert value_after(argv, "-boot") == ["order=n"]
    assert any(d.startswith("virtio-net-pci,netdev=net0,") and d.endswith(",bootindex=1") for d in device_values(argv))


def test_boot_order_cdrom_without_an_iso_is_refused():
    with pytest.raises(ValidationError, match="boot_order cdrom needs hvparams.cdrom_image_path"):
        make_spec(hvparams={"boot_order": "cdrom"})


@pytest.mark.parametrize("path", ["images/x.iso", "/srv/a,b.iso"])
def test_bad_cdrom_image_path_is_refused(path):
    with pytest.raises(ValidationError, match="cdrom_image_path"):
        make_spec(hvparams={"cdrom_image_path": path})


@pytest.mark.parametrize("discard", ["ignore", "unmap"])
def test_disk_discard(discard):
    drive = value_after(build(make_spec(hvparams={"disk_discard": discard})), "-drive")[0]
    assert f",discard={discard}," in drive


def test_disk_discard_choices():
    with pytest.raises(ValidationError, match=r"disk_discard 'on' is not one of \['ignore', 'unmap'\]"):
        make_spec(hvparams={"disk_discard": "on"})


def test_scsi_hd_disks_sit_on_one_virtio_scsi_controller():
    spec = make_spec(hvparams={"disk_type": "scsi-hd"},
                     disks=[{"path": "/srv/herd/file-storage/web1/disk0"}, {"path": "/srv/herd/file-storage/web1/disk1"}])
    devices = device_values(build(spec))
    assert devices.count("virtio-scsi-pci,id=scsi0") == 1
    assert "scsi-hd,drive=disk0,id=scsi-disk0,bus=scsi0.0,bootindex=1" in devices
    assert "scsi-hd,drive=disk1,id=scsi-disk1,bus=scsi0.0" in devices
    assert not any(d.startswith("virtio-blk-pci") for d in devices)


def test_vhost_net_on_the_tap_netdev():
    netdev = value_after(build(make_spec(hvparams={"vhost_net": True})), "-netdev")[0]
    assert netdev.endswith(",vhost=on")
    assert not value_after(build(), "-netdev")[0].endswith(",vhost=on")


def test_kvm_extra_string_is_split_into_arguments_without_a_shell():
    argv = build(make_spec(hvparams={"kvm_extra": "-device 'virtio-rng-pci,id=rng0' -rtc base=utc;reboot"}))
    tail = argv[argv.index("virtio-balloon-pci,id=balloon0") + 1:]
    assert tail == ["-device", "virtio-rng-pci,id=rng0", "-rtc", "base=utc;reboot"]


def test_kvm_extra_list_is_taken_as_it_stands():
    argv = build(make_spec(hvparams={"kvm_extra": ["-rtc", "base=localtime"]}))
    assert argv[argv.index("virtio-balloon-pci,id=balloon0") + 1:] == ["-rtc", "base=localtime"]


@pytest.mark.parametrize("extra", ["-runas nobody", "-sandbox off", "--pidfile /tmp/x", "-qmp unix:/tmp/q",
                                   "-serial stdio", "-incoming tcp:0:4444", "-machine q35", "-m 4096"])
def test_kvm_extra_refuses_options_herd_manages(extra):
    with pytest.raises(ValidationError, match="is managed by herd"):
        make_spec(hvparams={"kvm_extra": extra})


@pytest.mark.parametrize("extra", ["-device virtio-blk-pci,drive=x,id=virtio-disk0",
                                   "-chardev socket,id=serial0,path=/tmp/s", "-object secret,id=herd-vnc-secret,data=x",
                                   "-netdev user,id=net0"])
def test_kvm_extra_refuses_ids_of_herds_own_devices(extra):
    with pytest.raises(ValidationError, match="herd uses for its own devices"):
        make_spec(hvparams={"kvm_extra": extra})


@pytest.mark.parametrize("extra", ["-rtc 'base=utc", ["-rtc", "a\nb"], {"rtc": "utc"}, [1]])
def test_kvm_extra_malformed_is_refused(extra):
    with pytest.raises(ValidationError, match="kvm_extra"):
        make_spec(hvparams={"kvm_extra": extra})


def test_migration_defaults_are_cluster_hvparams_checked_on_the_node():
    with pytest.raises(ValidationError, match="migration_bandwidth"):
        make_spec(hvparams={"migration_bandwidth": 0})
