"""The storage verbs through the agent's request handler, as the master calls them."""

import json
import os
import shutil
import subprocess
import uuid

import pytest

from plugins.module_utils.herd.agent import facts, main
from plugins.module_utils.herd.version import VERSION

MIB = 1024 * 1024
SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "drbd")


def call(verb, args):
    return main.handle({"version": VERSION, "verb": verb, "args": args})


@pytest.fixture
def node(tmp_path, monkeypatch):
    settings = tmp_path / "node.json"
    settings.write_text(json.dumps({"lvm_driverloaded": False, "drbd_config_dir": str(tmp_path / "drbd"),
                                    "proc_drbd": str(tmp_path / "proc_drbd")}))
    monkeypatch.setattr(facts, "NODE_SETTINGS", str(settings))
    (tmp_path / "fs").mkdir()
    (tmp_path / "shared").mkdir()
    return tmp_path


def disk_args(node, template="file", size=32, index=0, disk_uuid=None):
    return {"template": template, "instance": "web1.example.org", "index": index,
            "disk": {"uuid": disk_uuid or str(uuid.uuid4()), "size": size, "name": None, "vg": "gnt",
                     "logical_id": {}},
            "node": "node1", "storage": {"vg": "gnt", "file_storage_dir": str(node / "fs"),
                                         "shared_file_storage_dir": str(node / "shared")}}


def test_file_disk_lifecycle_through_the_verbs(node):
    args = disk_args(node)
    created = call("disk_create", args)
    assert created["ok"], created
    path = created["result"]["path"]
    args["disk"]["logical_id"] = created["result"]["logical_id"]
    assert call("disk_assemble", args)["result"]["path"] == path
    grown = call("disk_grow", dict(args, new_size="64M"))
    assert grown["result"]["size"] == 64 and os.path.getsize(path) == 64 * MIB
    assert call("disk_info", args)["result"]["size"] == 64
    assert call("disk_remove", args)["result"]["changed"] is True
    assert not os.path.exists(path)


def test_shrinking_through_the_verb_is_an_operator_error(node):
    args = disk_args(node, size=64)
    call("disk_create", args)
    answer = call("disk_grow", dict(args, new_size=32))
    assert answer["ok"] is False and answer["kind"] == "error"
    assert "is 64 MiB, requested 32 MiB: disks never shrink" in answer["error"]


def test_a_bad_instance_name_is_refused_with_the_reason(node):
    args = disk_args(node)
    args["instance"] = "../../etc"
    answer = call("disk_create", args)
    assert answer["ok"] is False
    assert "invalid instance name" in answer["error"]
    assert os.listdir(node / "fs") == []


def test_storage_list_reports_file_disks_and_seeds(node):
    args = disk_args(node)
    call("disk_create", args)
    (node / "fs" / "web1.example.org" / "cloud-init-seed.iso").write_bytes(b"x")
    listed = call("storage_list", {"storage": {"file_storage_dir": str(node / "fs"),
                                               "shared_file_storage_dir": str(node / "shared")}})
    assert listed["ok"], listed
    result = listed["result"]
    assert [f["uuid"] for f in result["files"]] == [args["disk"]["uuid"]]
    assert result["seeds"][0]["instance"] == "web1.example.org"
    assert result["drbd"]["proc"] is None


def test_drbd_status_without_the_module_says_not_loaded(node):
    assert call("drbd_status", {})["result"] == {"loaded": False, "version": None, "minors": {}}


def test_drbd_status_parses_proc_drbd(node):
    shutil.copy(os.path.join(SAMPLES, "proc_drbd84_sync.txt"), node / "proc_drbd")
    result = call("drbd_status", {})["result"]
    assert result["loaded"] is True and result["version"] == "8.4.2"
    assert result["minors"]["5"]["sync_percent"] == 68.5


def test_drbd_verbs_refuse_a_non_drbd_disk(node):
    answer = call("drbd_primary", disk_args(node))
    assert answer["ok"] is False and "is file, not drbd" in answer["error"]


def test_os_install_noop_changes_nothing(node):
    answer = call("os_install", {"instance": "web1", "os": "noop"})
    assert answer["result"] == {"changed": False, "os": "noop"}


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_os_install_image_writes_disk_0_and_refuses_a_non_image(node):
    args = disk_args(node, size=16)
    disk = call("disk_create", args)["result"]["path"]
    raw = node / "img.raw"
    with open(raw, "wb") as handle:
        handle.truncate(4 * MIB)
        handle.seek(510)
        handle.write(b"\x55\xaa")
    image = node / "img.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
    answer = call("os_install", {"instance": "web1.example.org", "os": "image", "osparams": {"image": str(image)},
                                 "disk_path": disk, "storage": args["storage"], "template": "file"})
    assert answer["ok"], answer
    assert answer["result"]["image"]["image_format"] == "qcow2"
    text = node / "readme.txt"
    text.write_text("not an image")
    bad = call("os_install", {"instance": "web1.example.org", "os": "image", "osparams": {"image": str(text)},
                              "disk_path": disk, "storage": args["storage"], "template": "file"})
    assert bad["ok"] is False and f"image {text} is not a disk image" in bad["error"]


@pytest.mark.skipif(shutil.which("genisoimage") is None, reason="genisoimage is not installed")
def test_cloud_init_seed_create_and_remove(node):
    storage = {"file_storage_dir": str(node / "fs")}
    created = call("cloud_init_seed_create", {"instance": "web1", "uuid": str(uuid.uuid4()),
                                              "osparams": {"hostname": "web1"}, "storage": storage})
    assert created["ok"], created
    path = created["result"]["path"]
    assert path == str(node / "fs" / "web1" / "cloud-init-seed.iso") and os.path.exists(path)
    removed = call("cloud_init_seed_remove", {"instance": "web1", "storage": storage})
    assert removed["result"]["changed"] is True and not os.path.exists(path)
