"""plain (LVM) disks: the commands herd runs, against an in-memory volume group.

tests/integration/test_storage_lvm.py runs the same code against real LVM.
"""

import uuid

import pytest

from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.storage import base
from plugins.module_utils.herd.storage.base import DiskRequest, NodeSettings, StorageError
from plugins.module_utils.herd.storage.lvm import LVM, classify, instance_tag

from .storage_fakes import FakeVolumeGroups, RecordingRunner

DISK = "0b7e3c1e-1111-4222-8333-444455556666"


def request(size=100, index=0, vg=None, disk_uuid=DISK, **disk):
    return DiskRequest.from_args({
        "template": "plain", "instance": "web1.example.org", "index": index,
        "disk": {"uuid": disk_uuid, "size": size, "vg": vg, **disk}, "node": "node1",
        "storage": {"vg": "gnt"}})


def setup(driverloaded=True, vg_size=1024):
    runner = RecordingRunner()
    vgs = FakeVolumeGroups(runner, {"gnt": vg_size})
    plain = base.get("plain", runner, NodeSettings(lvm_driverloaded=driverloaded))
    return runner, vgs, plain


def test_create_runs_lvcreate_with_ganeti_name_size_and_tags():
    runner, vgs, plain = setup()
    result = plain.create(request(size=100))
    assert runner.without_queries() == [[
        "lvcreate", "-Wn", "-L", "100m", "-n", f"{DISK}.disk0", "--addtag", "herd",
        "--addtag", "originstname+web1.example.org", "gnt"]]
    assert result["logical_id"] == {"vg": "gnt", "lv": f"{DISK}.disk0"}
    assert result["path"] == f"/dev/gnt/{DISK}.disk0"


def test_without_device_mapper_lvm_commands_get_driverloaded_n_and_no_zeroing():
    runner, vgs, plain = setup(driverloaded=False)
    req = request(size=100)
    plain.create(req)
    plain.grow(req, 200)
    plain.remove(req)
    changes = runner.without_queries()
    assert [c[0] for c in changes] == ["lvcreate", "lvextend", "lvremove"]
    for argv in changes:
        i = argv.index("--driverloaded")
        assert argv[i + 1] == "n"
    assert "-Zn" in changes[0]


def test_lvm_commands_suppress_fd_warnings():
    runner, vgs, plain = setup()
    plain.create(request())
    assert all(env.get("LVM_SUPPRESS_FD_WARNINGS") == "1" for env in runner.envs)


def test_the_disk_vg_wins_over_the_cluster_vg():
    runner = RecordingRunner()
    FakeVolumeGroups(runner, {"gnt": 1024, "fast": 1024})
    plain = base.get("plain", runner, NodeSettings())
    assert plain.create(request(vg="fast"))["logical_id"]["vg"] == "fast"


def test_create_when_the_lv_exists_with_that_size_changes_nothing():
    runner, vgs, plain = setup()
    plain.create(request())
    result = plain.create(request())
    assert result["changed"] is False
    assert [c[0] for c in runner.without_queries()] == ["lvcreate"]


def test_create_fails_clearly_when_the_vg_lacks_space():
    runner, vgs, plain = setup(vg_size=512)
    with pytest.raises(StorageError, match="volume group gnt on this node has 512 MiB free; .* needs 1024 MiB"):
        plain.create(request(size=1024))
    assert runner.without_queries() == []


def test_create_in_a_missing_vg_names_the_vg():
    runner, vgs, plain = setup()
    with pytest.raises(StorageError, match="volume group other is not available on this node"):
        plain.create(request(vg="other"))


def test_grow_runs_lvextend_to_the_new_size():
    runner, vgs, plain = setup()
    req = request(size=100)
    plain.create(req)
    result = plain.grow(req, 300)
    assert runner.without_queries()[-1] == ["lvextend", "-L", "300m", f"gnt/{DISK}.disk0"]
    assert result["changed"] is True
    assert vgs.lvs[("gnt", f"{DISK}.disk0")]["size"] == 300


def test_grow_never_shrinks():
    runner, vgs, plain = setup()
    req = request(size=100)
    plain.create(req)
    with pytest.raises(StorageError, match="is 100 MiB, requested 50 MiB: disks never shrink"):
        plain.grow(req, 50)
    assert [c[0] for c in runner.without_queries()] == ["lvcreate"]


def test_grow_within_the_extent_rounding_changes_nothing():
    runner, vgs, plain = setup()
    req = request(size=101)  # LV is 104 MiB with 4 MiB extents
    plain.create(req)
    assert plain.grow(req, 103)["changed"] is False


def test_grow_beyond_free_space_fails_naming_what_is_missing():
    runner, vgs, plain = setup(vg_size=512)
    req = request(size=400)
    plain.create(req)
    with pytest.raises(StorageError, match="has 112 MiB free; growing .* to 800 MiB needs 400 MiB more"):
        plain.grow(req, 800)


def test_remove_runs_lvremove_once_and_then_nothing():
    runner, vgs, plain = setup()
    req = request()
    plain.create(req)
    assert plain.remove(req)["changed"] is True
    assert plain.remove(req) == {"changed": False, "removed": []}
    assert [c[0] for c in runner.without_queries()] == ["lvcreate", "lvremove"]
    assert runner.without_queries()[-1] == ["lvremove", "-f", f"gnt/{DISK}.disk0"]


def test_assemble_without_device_mapper_reports_the_missing_device_instead_of_failing():
    runner, vgs, plain = setup(driverloaded=False)
    req = request()
    plain.create(req)
    result = plain.assemble(req)
    assert result["path"] == f"/dev/gnt/{DISK}.disk0"
    assert result["device_present"] is False
    assert "lvchange" not in runner.programs()


def test_assemble_with_device_mapper_activates_the_lv():
    runner, vgs, plain = setup(driverloaded=True)
    req = request()
    plain.create(req)
    with pytest.raises(StorageError, match="succeeded but /dev/gnt/.* does not exist"):
        plain.assemble(req)  # the fake lvchange makes no device node
    assert runner.without_queries()[-1] == ["lvchange", "-ay", f"gnt/{DISK}.disk0"]


def test_list_classifies_herd_plain_and_drbd_volumes_and_foreign_ones():
    runner, vgs, plain = setup()
    plain.create(request())
    vgs.lvs[("gnt", "root")] = {"size": 8, "tags": []}
    vgs.lvs[("gnt", f"{DISK}.disk1_meta")] = {"size": 128, "tags": ["herd", "originstname+db1"]}
    found = {lv["lv"]: lv for lv in plain.list(request().storage)}
    assert found[f"{DISK}.disk0"]["template"] == "plain"
    assert found[f"{DISK}.disk0"]["instance"] == "web1.example.org"
    assert found[f"{DISK}.disk1_meta"]["template"] == "drbd"
    assert found[f"{DISK}.disk1_meta"]["role"] == "meta"
    assert found["root"]["herd"] is False


def test_instance_tag_is_sanitised_and_cut_like_ganeti():
    assert instance_tag("web1.example.org") == "originstname+web1.example.org"
    assert instance_tag("a" * 200) == ("originstname+" + "a" * 200)[:128]


def test_classify_takes_uuid_and_index_from_the_name():
    from plugins.module_utils.herd.storage.lvm import LogicalVolume
    info = classify(LogicalVolume("gnt", f"{DISK}.disk3", 64, ["herd"]))
    assert (info["uuid"], info["index"]) == (DISK, 3)


def test_lvs_and_vgs_ask_for_json_in_mib():
    lvm = LVM(RecordingRunner(), NodeSettings())
    assert lvm.lvs_argv("gnt")[:6] == ["lvs", "--reportformat", "json", "--units", "m", "--nosuffix"]
    assert lvm.vgs_argv("gnt")[-1] == "gnt"


@pytest.mark.parametrize("lv", ["-rf", "a/b", "x y", ""])
def test_bad_stored_lv_names_are_rejected(lv):
    runner, vgs, plain = setup()
    with pytest.raises(ValidationError):
        plain.create(request(logical_id={"vg": "gnt", "lv": lv} if lv else {"vg": "bad/vg"}))
    assert runner.calls == []


def test_a_plain_disk_cannot_be_qcow2():
    with pytest.raises(ValidationError, match="only for file and sharedfile"):
        request(format="qcow2")


def test_a_random_disk_uuid_names_a_distinct_lv():
    runner, vgs, plain = setup()
    other = str(uuid.uuid4())
    plain.create(request(disk_uuid=other))
    assert ("gnt", f"{other}.disk0") in vgs.lvs
