"""plain (and the LVM half of drbd) against real LVM on a loop device.

The test owns everything it touches: a sparse file, a loop device on it, a
private LVM system directory (``LVM_SYSTEM_DIR``: its own lvm.conf and
devices file listing only that loop device, so the host's and the virtual
cluster's volume groups are invisible to it and it is invisible to them), one
PV and one VG with a per-session name. All of it is removed at the end.

Machines without device-mapper (the namespace test bed) get ``lvm_driverloaded: false``
in the node settings, exactly as the storage role writes it there: LVs are
created, grown, tagged and removed in the metadata only. Where device-mapper
works the same test runs with activation.
"""

import json
import os
import shutil
import subprocess
import uuid

import pytest

from plugins.module_utils.herd.agent import facts, main
from plugins.module_utils.herd.version import VERSION

pytestmark = pytest.mark.skipif(shutil.which("lvm") is None or shutil.which("losetup") is None,
                                reason="needs lvm2 and losetup")


def device_mapper_works() -> bool:
    if shutil.which("dmsetup") is None:
        return False
    return subprocess.run(["dmsetup", "version"], capture_output=True, check=False).returncode == 0


def lvm(*argv, env):
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, check=True)


@pytest.fixture
def vg(tmp_path, monkeypatch):
    system_dir = tmp_path / "lvm"
    (system_dir / "devices").mkdir(parents=True)
    (system_dir / "lvm.conf").write_text("devices {\n  use_devicesfile = 1\n}\n")
    env = dict(os.environ, LVM_SYSTEM_DIR=str(system_dir), LVM_SUPPRESS_FD_WARNINGS="1")
    image = tmp_path / "pv.img"
    with open(image, "wb") as handle:
        handle.truncate(600 * 1024 * 1024)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True,
                          check=True).stdout.strip()
    name = f"herdit{os.getpid()}"
    created_vg = False
    try:
        lvm("lvm", "lvmdevices", "--adddev", loop, "--yes", env=env)
        lvm("pvcreate", loop, env=env)
        lvm("vgcreate", name, loop, env=env)
        created_vg = True
        settings = tmp_path / "node.json"
        settings.write_text(json.dumps({"lvm_driverloaded": device_mapper_works(),
                                        "drbd_config_dir": str(tmp_path / "drbd"),
                                        "proc_drbd": str(tmp_path / "no-proc-drbd")}))
        monkeypatch.setattr(facts, "NODE_SETTINGS", str(settings))
        monkeypatch.setenv("LVM_SYSTEM_DIR", str(system_dir))
        yield {"name": name, "env": env, "loop": loop}
    finally:
        if created_vg:
            subprocess.run(["vgremove", "-f", name], env=env, capture_output=True, check=False)
        subprocess.run(["pvremove", "-y", loop], env=env, capture_output=True, check=False)
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)


def call(verb, args):
    answer = main.handle({"version": VERSION, "verb": verb, "args": args})
    return answer


def lvs(vg):
    out = lvm("lvs", "--reportformat", "json", "--units", "m", "--nosuffix", "-o", "lv_name,lv_size,lv_tags",
              vg["name"], env=vg["env"]).stdout
    return {row["lv_name"]: row for row in json.loads(out)["report"][0]["lv"]}


def plain_args(vg, size=100, disk_uuid=None):
    return {"template": "plain", "instance": "web1.example.org", "index": 0,
            "disk": {"uuid": disk_uuid or str(uuid.uuid4()), "size": size, "vg": vg["name"], "logical_id": {}},
            "node": "node1", "storage": {"vg": vg["name"]}}


def test_plain_disk_is_created_grown_and_removed_in_real_lvm(vg):
    args = plain_args(vg, size=100)
    lv = f"{args['disk']['uuid']}.disk0"

    created = call("disk_create", args)
    assert created["ok"], created
    assert created["result"]["logical_id"] == {"vg": vg["name"], "lv": lv}
    row = lvs(vg)[lv]
    assert float(row["lv_size"]) == 100
    assert set(row["lv_tags"].split(",")) == {"herd", "originstname+web1.example.org"}

    again = call("disk_create", args)
    assert again["ok"] and again["result"]["changed"] is False

    grown = call("disk_grow", dict(args, new_size="200M"))
    assert grown["ok"], grown
    assert float(lvs(vg)[lv]["lv_size"]) == 200

    args["disk"]["size"] = 200
    shrink = call("disk_grow", dict(args, new_size=100))
    assert shrink["ok"] is False and "disks never shrink" in shrink["error"]
    assert float(lvs(vg)[lv]["lv_size"]) == 200

    removed = call("disk_remove", args)
    assert removed["ok"] and removed["result"]["changed"] is True
    assert lv not in lvs(vg)


def test_a_disk_larger_than_the_vg_fails_naming_free_space(vg):
    answer = call("disk_create", plain_args(vg, size=4096))
    assert answer["ok"] is False
    assert f"volume group {vg['name']} on this node has" in answer["error"]


def test_storage_list_finds_the_herd_volume_for_orphan_checks(vg):
    args = plain_args(vg)
    call("disk_create", args)
    listed = call("storage_list", {"storage": {"vg": vg["name"]}})
    assert listed["ok"], listed
    found = [lv for lv in listed["result"]["lvs"] if lv["uuid"] == args["disk"]["uuid"]]
    assert found and found[0]["herd"] is True and found[0]["instance"] == "web1.example.org"


def test_assemble_reports_whether_the_block_device_exists(vg):
    args = plain_args(vg)
    call("disk_create", args)
    answer = call("disk_assemble", args)
    if device_mapper_works():
        assert answer["ok"] and answer["result"]["device_present"] is True
    else:
        assert answer["ok"], answer
        assert answer["result"]["device_present"] is False


def test_drbd_creates_data_and_meta_lvs_then_stops_without_the_kernel_module(vg):
    disk_uuid = str(uuid.uuid4())
    args = {"template": "drbd", "instance": "web1.example.org", "index": 0,
            "disk": {"uuid": disk_uuid, "size": 100, "vg": vg["name"], "logical_id": {}},
            "node": "node1", "storage": {"vg": vg["name"]},
            "drbd": {"local": "node1", "primary": "node1", "port": 11000, "secret": "ab" * 16,
                     "nodes": {"node1": {"address": "203.0.113.1", "minor": 0},
                               "node2": {"address": "203.0.113.2", "minor": 0}}}}
    answer = call("disk_create", args)
    if os.path.exists("/proc/drbd"):
        pytest.skip("this machine has DRBD: the end-to-end DRBD tests cover it")
    assert answer["ok"] is False and "DRBD kernel module is not loaded" in answer["error"]
    names = lvs(vg)
    assert float(names[f"{disk_uuid}.disk0_data"]["lv_size"]) == 100
    assert float(names[f"{disk_uuid}.disk0_meta"]["lv_size"]) == 128
    removed = call("disk_remove", args)
    assert removed["ok"], removed
    assert not any(name.startswith(disk_uuid) for name in lvs(vg))
