"""The node agent never repeats a DRBD shared secret and never removes a volume herd did not
make (issue 11, items 3 and 12).

The redaction test runs the real ``drbdadm-84`` through the agent's real command runner: on
a machine without the DRBD module its drbdsetup call fails and drbdadm prints that command
line, secret included, which is exactly the text that used to reach the job journal."""

import os
from pathlib import Path

import pytest

from plugins.module_utils.herd.storage import base
from plugins.module_utils.herd.storage.base import DiskRequest, NodeSettings, Runner, StorageError, redact, redact_text
from plugins.module_utils.herd.storage.drbd import Drbd, DrbdDisk, render_config

from .storage_fakes import FakeVolumeGroups, RecordingRunner

DISK = "0b7e3c1e-1111-4222-8333-444455556666"
SECRET = "0123456789abcdef0123456789abcdef"
DRBDADM84 = "/lib/drbd/drbdadm-84"


def drbd_args(**over):
    spec = {"local": "node1", "primary": "node1", "port": 11000, "secret": SECRET,
            "nodes": {"node1": {"address": "127.0.0.1", "minor": 0},
                      "node2": {"address": "127.0.0.2", "minor": 3}}}
    spec.update(over)
    return {"template": "drbd", "instance": "web1.example.org", "index": 0,
            "disk": {"uuid": DISK, "size": 1024, "vg": "gnt"}, "node": "node1",
            "storage": {"vg": "gnt"}, "drbd": spec}


@pytest.mark.skipif(not os.path.exists(DRBDADM84), reason="drbd-utils (drbdadm-84) not installed")
@pytest.mark.skipif(os.path.exists("/proc/drbd"), reason="a loaded DRBD module would really connect")
def test_failing_drbdadm_with_shared_secret_never_shows_the_secret(tmp_path: Path) -> None:
    settings = NodeSettings(drbd_config_dir=str(tmp_path), drbdadm=DRBDADM84,
                            proc_drbd=str(tmp_path / "proc_drbd"))
    (tmp_path / "proc_drbd").write_text("version: 8.4.11 (api:1/proto:86-101)\n")
    driver = Drbd(Runner(), settings)
    disk = DrbdDisk.from_request(DiskRequest.from_args(drbd_args()))
    driver.write_config(disk)
    cmds = driver.commands(disk)
    result = driver.runner.run(cmds.connect(), check=False, env=cmds.env)
    assert result.rc != 0
    assert "--shared-secret=***" in result.stdout + result.stderr  # drbdadm really printed it
    assert SECRET not in result.stdout + result.stderr
    with pytest.raises(StorageError) as err:
        driver._adm(cmds, cmds.connect(), "connect")
    assert SECRET not in str(err.value)


def test_redaction_hides_every_form_drbd_tools_print() -> None:
    text = (f"drbdsetup connect r0 --shared-secret={SECRET} --protocol=C\n"
            f"drbdsetup connect r0 --shared-secret '{SECRET}'\n"
            f'    shared-secret       "{SECRET}";\n'
            f"    shared-secret {SECRET};\n")
    out = redact_text(text)
    assert SECRET not in out
    assert out.count("***") == 4


def test_redaction_hides_registered_secrets_anywhere() -> None:
    assert redact_text(f"peer said {SECRET}!", [SECRET]) == "peer said ***!"


def test_command_line_in_error_text_hides_a_separate_secret_argument() -> None:
    assert redact(["drbdsetup", "net-options", "--shared-secret", SECRET]) == \
        ["drbdsetup", "net-options", "--shared-secret", "***"]


def test_resource_file_secret_is_redacted_when_printed() -> None:
    disk = DrbdDisk.from_request(DiskRequest.from_args(drbd_args()))
    assert SECRET not in redact_text(render_config(disk))


# ------------------------------------------------------------------ LV ownership (issue 11 item 12)

def plain_request(lv=None, vg="gnt"):
    disk = {"uuid": DISK, "size": 100, "vg": vg}
    if lv:
        disk["logical_id"] = {"vg": vg, "lv": lv}
    return DiskRequest.from_args({"template": "plain", "instance": "web1.example.org", "index": 0,
                                  "disk": disk, "node": "node1", "storage": {"vg": "gnt"}})


def test_plain_remove_refuses_an_lv_without_herds_tag() -> None:
    runner = RecordingRunner()
    vgs = FakeVolumeGroups(runner, {"gnt": 4096})
    vgs.lvs[("gnt", "root")] = {"size": 100, "tags": []}
    plain = base.get("plain", runner, NodeSettings())
    with pytest.raises(StorageError, match="refusing to remove logical volume gnt/root"):
        plain.remove(plain_request(lv="root"))
    assert ("gnt", "root") in vgs.lvs
    assert "lvremove" not in runner.programs()


def test_plain_remove_refuses_a_tagged_lv_whose_name_is_not_herds() -> None:
    runner = RecordingRunner()
    vgs = FakeVolumeGroups(runner, {"gnt": 4096})
    vgs.lvs[("gnt", "data")] = {"size": 100, "tags": ["herd"]}
    plain = base.get("plain", runner, NodeSettings())
    with pytest.raises(StorageError, match="name is not herd's"):
        plain.remove(plain_request(lv="data"))
    assert ("gnt", "data") in vgs.lvs


def test_plain_remove_removes_its_own_lv() -> None:
    runner = RecordingRunner()
    vgs = FakeVolumeGroups(runner, {"gnt": 4096})
    plain = base.get("plain", runner, NodeSettings())
    plain.create(plain_request())
    assert plain.remove(plain_request())["changed"]
    assert vgs.lvs == {}


def test_drbd_remove_refuses_data_lv_herd_did_not_make(tmp_path: Path) -> None:
    runner = RecordingRunner()
    vgs = FakeVolumeGroups(runner, {"gnt": 4096})
    vgs.lvs[("gnt", "home")] = {"size": 1024, "tags": []}
    driver = Drbd(runner, NodeSettings(drbd_config_dir=str(tmp_path), proc_drbd=str(tmp_path / "none")))
    args = drbd_args()
    args["disk"]["logical_id"] = {"vg": "gnt", "data_lv": "home"}
    with pytest.raises(StorageError, match="gnt/home"):
        driver.remove(DiskRequest.from_args(args))
    assert ("gnt", "home") in vgs.lvs
