"""file and sharedfile disks, for real in a temporary directory."""

import os
import shutil
import stat
import uuid

import pytest

from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.storage import base
from plugins.module_utils.herd.storage.base import DiskRequest, NodeSettings, Runner, StorageError

MIB = 1024 * 1024


@pytest.fixture
def dirs(tmp_path):
    local, shared = tmp_path / "file-storage", tmp_path / "shared"
    local.mkdir()
    shared.mkdir()
    return {"file_storage_dir": str(local), "shared_file_storage_dir": str(shared)}


def request(dirs, template="file", size=64, index=0, disk_uuid=None, instance="web1.example.org", **disk):
    return DiskRequest.from_args({
        "template": template, "instance": instance, "index": index,
        "disk": {"uuid": disk_uuid or str(uuid.uuid4()), "size": size, **disk},
        "node": "node1", "storage": dirs})


def driver(template="file"):
    return base.get(template, Runner(), NodeSettings())


def test_file_disk_is_a_sparse_file_of_the_exact_size_under_the_instance_directory(dirs):
    req = request(dirs, size=100)
    result = driver().create(req)
    path = result["path"]
    assert path == os.path.join(dirs["file_storage_dir"], "web1.example.org", f"{req.uuid}.file.disk0")
    st = os.stat(path)
    assert st.st_size == 100 * MIB
    assert st.st_blocks * 512 < MIB  # sparse
    assert result["changed"] is True
    assert result["logical_id"] == {"path": path, "format": "raw"}


def test_file_disk_and_its_directory_are_private(dirs):
    path = driver().create(request(dirs))["path"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_creating_an_existing_disk_of_the_same_size_changes_nothing(dirs):
    req = request(dirs)
    first = driver().create(req)
    again = driver().create(req)
    assert again["changed"] is False
    assert again["path"] == first["path"]


def test_creating_over_an_existing_file_of_another_size_fails_naming_both_sizes(dirs):
    req = request(dirs, size=64)
    driver().create(req)
    bigger = request(dirs, size=128, disk_uuid=req.uuid)
    with pytest.raises(StorageError, match="already exists with 64 MiB, not the requested 128 MiB"):
        driver().create(bigger)


def test_missing_storage_directory_is_an_error_not_created(dirs, tmp_path):
    dirs = dict(dirs, file_storage_dir=str(tmp_path / "absent"))
    with pytest.raises(StorageError, match="does not exist on this node"):
        driver().create(request(dirs))
    assert not (tmp_path / "absent").exists()


def test_grow_extends_the_file(dirs):
    req = request(dirs, size=64)
    path = driver().create(req)["path"]
    result = driver().grow(req, 96)
    assert result == {"changed": True, "old_size": 64, "size": 96, "path": path}
    assert os.path.getsize(path) == 96 * MIB


def test_grow_to_the_current_size_changes_nothing(dirs):
    req = request(dirs, size=64)
    driver().create(req)
    assert driver().grow(req, 64)["changed"] is False


def test_grow_never_shrinks_and_names_current_and_requested_size(dirs):
    req = request(dirs, size=64)
    path = driver().create(req)["path"]
    with pytest.raises(StorageError, match="is 64 MiB, requested 32 MiB: disks never shrink"):
        driver().grow(req, 32)
    assert os.path.getsize(path) == 64 * MIB


def test_remove_deletes_the_file_and_the_empty_instance_directory(dirs):
    req = request(dirs)
    path = driver().create(req)["path"]
    result = driver().remove(req)
    assert result == {"changed": True, "removed": [path]}
    assert not os.path.exists(os.path.dirname(path))


def test_remove_keeps_the_instance_directory_while_other_files_remain(dirs):
    first, second = request(dirs, index=0), request(dirs, index=1)
    path = driver().create(first)["path"]
    driver().create(second)
    driver().remove(first)
    assert not os.path.exists(path)
    assert os.path.isdir(os.path.dirname(path))


def test_removing_a_missing_disk_changes_nothing(dirs):
    assert driver().remove(request(dirs)) == {"changed": False, "removed": []}


def test_assemble_returns_the_path_and_format(dirs):
    req = request(dirs)
    path = driver().create(req)["path"]
    assert driver().assemble(req) == {"changed": False, "path": path, "format": "raw"}


def test_assemble_of_a_missing_disk_fails_naming_the_path(dirs):
    req = request(dirs)
    with pytest.raises(StorageError, match="does not exist on this node"):
        driver().assemble(req)


def test_the_stored_path_wins_over_the_computed_one(dirs):
    req = request(dirs, index=1)
    path = driver().create(req)["path"]
    later = request(dirs, index=0, disk_uuid=req.uuid, logical_id={"path": path, "format": "raw"})
    assert driver().info(later)["path"] == path
    assert driver().info(later)["exists"] is True


def test_a_stored_path_outside_the_instance_directory_is_rejected(dirs):
    req = request(dirs, logical_id={"path": "/etc/passwd"})
    with pytest.raises(ValidationError, match="is not a file disk under"):
        driver().assemble(req)


def test_sharedfile_lives_in_the_shared_directory(dirs):
    req = request(dirs, template="sharedfile")
    path = driver("sharedfile").create(req)["path"]
    assert path.startswith(dirs["shared_file_storage_dir"] + "/web1.example.org/")
    assert path.endswith(".sharedfile.disk0")


def test_sharedfile_created_by_another_node_with_the_right_size_is_accepted(dirs):
    req = request(dirs, template="sharedfile")
    driver("sharedfile").create(req)  # "the other node"
    again = driver("sharedfile").create(req)
    assert again["changed"] is False


def test_list_reports_every_disk_file_with_instance_uuid_and_size(dirs):
    a = request(dirs, size=8)
    b = request(dirs, size=16, index=1, instance="db1")
    driver().create(a)
    driver().create(b)
    with open(os.path.join(dirs["file_storage_dir"], "db1", "notes.txt"), "w") as handle:
        handle.write("not a disk")
    found = driver().list(a.storage)
    assert sorted((f["instance"], f["uuid"], f["index"], f["size"]) for f in found) == sorted(
        [("web1.example.org", a.uuid, 0, 8), ("db1", b.uuid, 1, 16)])


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_qcow2_disk_has_the_requested_virtual_size_and_grows(dirs):
    req = request(dirs, size=64, format="qcow2")
    result = driver().create(req)
    assert result["path"].endswith(".qcow2")
    assert result["logical_id"]["format"] == "qcow2"
    assert driver().info(req)["size"] == 64
    driver().grow(req, 128)
    assert driver().info(req)["size"] == 128
    assert stat.S_IMODE(os.stat(result["path"]).st_mode) == 0o600


@pytest.mark.parametrize("field,value,message", [
    ("instance", "../etc", "invalid instance name"),
    ("instance", "web1;rm -rf", "invalid instance name"),
    ("uuid", "not-a-uuid", "invalid UUID"),
    ("size", 0, "must be a whole number of MiB"),
    ("size", "10G", "must be a whole number of MiB"),
    ("template", "zfs", "disk template"),
    ("vg", "-gnt", "invalid volume group"),
    ("file_storage_dir", "relative/dir", "expected an absolute path"),
    ("file_storage_dir", "/srv/../etc", "expected an absolute path"),
])
def test_bad_names_are_rejected_before_anything_is_touched(dirs, field, value, message):
    args = {"template": "file", "instance": "web1", "index": 0,
            "disk": {"uuid": str(uuid.uuid4()), "size": 64}, "storage": dict(dirs)}
    if field in ("uuid", "size", "vg"):
        args["disk"][field] = value
    elif field == "file_storage_dir":
        args["storage"][field] = value
    else:
        args[field] = value
    with pytest.raises(ValidationError, match=message):
        DiskRequest.from_args(args)
    assert os.listdir(dirs["file_storage_dir"]) == []
