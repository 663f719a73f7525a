"""OS providers with the real qemu-img and genisoimage: images onto disk 0,
refusal of files that are not images, and the cloud-init NoCloud seed."""

import json
import os
import shutil
import stat
import subprocess

import pytest

from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.storage import osprov
from plugins.module_utils.herd.storage.base import Runner, StorageContext, StorageError

from .storage_fakes import RecordingRunner

MIB = 1024 * 1024
needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
needs_genisoimage = pytest.mark.skipif(shutil.which("genisoimage") is None or shutil.which("isoinfo") is None,
                                       reason="genisoimage/isoinfo are not installed")


def raw_with_mbr(path, size_mib=4, payload=b"herd-image-payload"):
    with open(path, "wb") as handle:
        handle.truncate(size_mib * MIB)
        handle.seek(510)
        handle.write(b"\x55\xaa")
        handle.seek(MIB)
        handle.write(payload)
    return str(path)


def qcow2_from(raw, path):
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, str(path)], check=True)
    return str(path)


def empty_disk(path, size_mib):
    with open(path, "wb") as handle:
        handle.truncate(size_mib * MIB)
    return str(path)


@needs_qemu_img
def test_a_qcow2_image_is_converted_onto_a_raw_disk(tmp_path):
    raw = raw_with_mbr(tmp_path / "src.raw")
    image = qcow2_from(raw, tmp_path / "img.qcow2")
    disk = empty_disk(tmp_path / "disk0", 16)
    result = osprov.install_image(Runner(), image, disk)
    assert result["image_format"] == "qcow2"
    with open(disk, "rb") as handle:
        handle.seek(MIB)
        assert handle.read(18) == b"herd-image-payload"
    assert os.path.getsize(disk) == 16 * MIB  # the disk keeps its size


@needs_qemu_img
def test_a_raw_image_with_a_partition_table_is_accepted(tmp_path):
    image = raw_with_mbr(tmp_path / "img.raw")
    info = osprov.check_image(Runner(), image)
    assert info["format"] == "raw" and info["signature"] == "MBR/boot sector"


@needs_qemu_img
def test_a_text_file_is_not_an_image_and_the_error_names_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a disk\n" * 100)
    with pytest.raises(StorageError, match=f"image {path} is not a disk image: qemu-img info reads it only as raw"):
        osprov.check_image(Runner(), str(path))


@needs_qemu_img
def test_a_damaged_qcow2_reports_what_qemu_img_said(tmp_path):
    path = tmp_path / "broken.qcow2"
    path.write_bytes(b"QFI\xfb" + b"\x00\x00\x00\x03" + b"\xff" * 100)
    with pytest.raises(StorageError, match=f"image {path} is not a disk image: qemu-img info says: .*qemu-img"):
        osprov.check_image(Runner(), str(path))


@needs_qemu_img
def test_an_explicit_raw_format_accepts_a_raw_file_without_signature(tmp_path):
    path = tmp_path / "blob.raw"
    path.write_bytes(b"\x01" * MIB)
    assert osprov.check_image(Runner(), str(path), image_format="raw")["format"] == "raw"


@needs_qemu_img
def test_an_image_larger_than_disk_0_is_refused_before_writing(tmp_path):
    image = raw_with_mbr(tmp_path / "img.raw", size_mib=32)
    disk = empty_disk(tmp_path / "disk0", 16)
    runner = RecordingRunner()
    runner.handlers["qemu-img"] = lambda argv: Runner().run(argv)
    with pytest.raises(StorageError, match="is 32 MiB .*larger than disk 0 \\(16 MiB\\)"):
        osprov.install_image(runner, image, disk)
    assert all(c[1] != "convert" for c in runner.calls)


def test_a_missing_image_is_named(tmp_path):
    with pytest.raises(StorageError, match=f"image {tmp_path}/nope.img does not exist on this node"):
        osprov.check_image(Runner(), str(tmp_path / "nope.img"))


def test_convert_writes_into_the_existing_disk():
    assert osprov.convert_argv("/i.qcow2", "qcow2", "/dev/gnt/x", "raw") == [
        "qemu-img", "convert", "-q", "-n", "-f", "qcow2", "-O", "raw", "/i.qcow2", "/dev/gnt/x"]


# ------------------------------------------------------------------ cloud-init

def test_seed_lives_with_the_instance_and_with_sharedfile_disks_in_the_shared_dir():
    ctx = StorageContext(file_storage_dir="/srv/f", shared_file_storage_dir="/srv/s")
    assert osprov.seed_path(ctx, "web1", "file") == "/srv/f/web1/cloud-init-seed.iso"
    assert osprov.seed_path(ctx, "web1", "sharedfile") == "/srv/s/web1/cloud-init-seed.iso"
    assert osprov.seed_path(ctx, "web1", "drbd") == "/srv/f/web1/cloud-init-seed.iso"


def test_meta_data_has_instance_id_and_local_hostname():
    files = osprov.seed_files("web1.example.org", "uuid-1", {})
    meta = json.loads(files["meta-data"])
    assert meta == {"instance-id": "uuid-1", "local-hostname": "web1.example.org"}
    assert "network-config" not in files


def test_user_data_carries_hostname_keys_and_password():
    files = osprov.seed_files("web1", "i", {"hostname": "www.example.org", "ssh_authorized_keys": ["ssh-ed25519 AAA k"],
                                            "password": "s3cret"})
    assert files["user-data"].startswith("#cloud-config\n")
    data = json.loads(files["user-data"].split("\n", 1)[1])
    assert data["hostname"] == "www" and data["fqdn"] == "www.example.org"
    assert data["ssh_authorized_keys"] == ["ssh-ed25519 AAA k"]
    assert data["password"] == "s3cret" and data["chpasswd"] == {"expire": False}


def test_user_data_text_is_used_verbatim_and_network_config_mapping_as_json():
    files = osprov.seed_files("web1", "i", {"user_data": "#!/bin/sh\necho hi", "network_config": {"version": 2}})
    assert files["user-data"] == "#!/bin/sh\necho hi\n"
    assert json.loads(files["network-config"]) == {"version": 2}


@pytest.mark.parametrize("osparams,message", [
    ({"hostname": "bad name"}, "invalid cloud-init hostname"),
    ({"ssh_authorized_keys": ["a\nb"]}, "single-line public keys"),
    ({"password": ""}, "non-empty string"),
    ({"network_config": 5}, "network_config must be"),
])
def test_bad_cloud_init_params_are_rejected(osparams, message):
    with pytest.raises(ValidationError, match=message):
        osprov.seed_files("web1", "i", osparams)


def isoinfo(iso, *args):
    return subprocess.run(["isoinfo", "-i", iso, *args], capture_output=True, text=True, check=True).stdout


@needs_genisoimage
def test_seed_iso_is_a_private_cidata_volume_with_the_nocloud_files(tmp_path):
    (tmp_path / "fs").mkdir()
    path = str(tmp_path / "fs" / "web1" / osprov.SEED_NAME)
    files = osprov.seed_files("web1", "i-1", {"password": "pw", "network_config": {"version": 2}})
    result = osprov.create_seed(Runner(), path, files)
    assert result == {"changed": True, "path": path}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "Volume id: cidata" in isoinfo(path, "-d")
    listing = isoinfo(path, "-R", "-f")
    assert {"/user-data", "/meta-data", "/network-config"} <= set(listing.split())
    assert json.loads(isoinfo(path, "-R", "-x", "/meta-data"))["instance-id"] == "i-1"


@needs_genisoimage
def test_seed_from_the_same_content_is_not_rebuilt_and_new_content_is(tmp_path):
    (tmp_path / "fs").mkdir()
    path = str(tmp_path / "fs" / "web1" / osprov.SEED_NAME)
    files = osprov.seed_files("web1", "i-1", {})
    osprov.create_seed(Runner(), path, files)
    assert osprov.create_seed(Runner(), path, files)["changed"] is False
    changed = osprov.seed_files("web1", "i-1", {"hostname": "other"})
    assert osprov.create_seed(Runner(), path, changed)["changed"] is True


def test_seed_remove_deletes_iso_and_stamp(tmp_path):
    directory = tmp_path / "web1"
    directory.mkdir()
    (directory / osprov.SEED_NAME).write_bytes(b"x")
    (directory / (osprov.SEED_NAME + ".sha256")).write_text("y")
    result = osprov.remove_seed(str(directory / osprov.SEED_NAME))
    assert result["changed"] is True
    assert not directory.exists()
    assert osprov.remove_seed(str(directory / osprov.SEED_NAME))["changed"] is False


@needs_qemu_img
def test_an_image_with_a_backing_file_is_refused(tmp_path):
    base = qcow2_from(raw_with_mbr(tmp_path / "base.raw"), tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, str(overlay)], check=True)
    with pytest.raises(StorageError, match=f"has a backing file \\({base}\\)"):
        osprov.check_image(Runner(), str(overlay))


@needs_qemu_img
def test_item2_a_qcow2_with_an_external_data_file_is_refused(tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + b"x" * 4000)
    crafted = tmp_path / "crafted.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={secret},data_file_raw=on",
                    str(crafted), "1M"], check=True)
    disk = empty_disk(tmp_path / "disk0", 4)
    with pytest.raises(StorageError, match=f"external data file \\({secret}\\)"):
        osprov.install_image(Runner(), str(crafted), disk)
    with open(disk, "rb") as handle:
        assert handle.read(4096) == b"\0" * 4096  # nothing of the key reached the disk


@needs_qemu_img
def test_item2_a_vmdk_whose_extent_is_another_file_is_refused(tmp_path):
    descriptor = tmp_path / "flat.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat",
                    str(descriptor), "1M"], check=True)
    with pytest.raises(StorageError, match="refers to other files"):
        osprov.check_image(Runner(), str(descriptor))


@needs_qemu_img
def test_item2_a_single_file_vmdk_is_self_contained(tmp_path):
    image = tmp_path / "one.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw_with_mbr(tmp_path / "src.raw"),
                    str(image)], check=True)
    assert osprov.check_image(Runner(), str(image))["format"] == "vmdk"


@pytest.mark.parametrize("info", [
    {"format": "qcow2", "children": [{"name": "data-file", "info": {"filename": "/etc/shadow"}}]},
    {"format": "qed", "full-backing-filename": "/dev/vg/other"},
])
def test_item2_any_other_file_qemu_img_reports_is_refused(info):
    with pytest.raises(StorageError, match="/etc/shadow|/dev/vg/other"):
        osprov.check_self_contained(info, "/srv/images/img")
