"""reinstall (gnt-instance reinstall): the OS provider runs again on disk 0 of a stopped instance,
only with an explicit reinstall: true, and check mode names what would be destroyed. The image
is written by the real qemu-img through the node's runner."""

import glob
import os
import shutil
import subprocess

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.storage.base import CommandResult

from .test_ops_instance import spec

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")

MARK = b"operator data on disk 0 "


@pytest.fixture
def image(tmp_path, nodes):
    """A 1 MiB raw image with a recognisable first sector, and qemu-img run for real on node1."""
    path = tmp_path / "images" / "debian.raw"
    path.parent.mkdir()
    path.write_bytes(b"IMAGE-CONTENT" + b"\0" * (2 ** 20 - 13))

    def qemu_img(argv):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return CommandResult(argv, done.returncode, done.stdout, done.stderr)

    nodes[0].runner.handlers["qemu-img"] = qemu_img
    return str(path)


def os_image(path, **extra):
    return spec(state="stopped", os="image", osparams={"image": path, "image_format": "raw"}, **extra)


def disk0(nodes):
    found = glob.glob(os.path.join(nodes[0].root, "**", "web1", "*.disk0"), recursive=True)
    assert len(found) == 1, found
    return found[0]


def test_reinstall_writes_the_image_over_disk_0(cluster, nodes, image):
    instance_op.ensure(cluster, spec(state="stopped"))  # os noop: disk 0 as the operator filled it
    with open(disk0(nodes), "r+b") as handle:
        handle.write(MARK)
    result = instance_op.ensure(cluster, os_image(image, reinstall=True))
    assert result["changed"] and result["destroys"][0].startswith("disk 0 (")
    with open(disk0(nodes), "rb") as handle:
        assert handle.read(13) == b"IMAGE-CONTENT"
    inst = cluster.store.load().instances["web1"]
    assert inst.os == "image" and inst.osparams["image"] == image and inst.admin_state == "down"


def test_without_reinstall_a_different_os_is_refused_and_disk_0_is_kept(cluster, nodes, image):
    instance_op.ensure(cluster, spec(state="stopped"))
    with open(disk0(nodes), "r+b") as handle:
        handle.write(MARK)
    with pytest.raises(PrerequisiteError, match="os is noop, declared image"):
        instance_op.ensure(cluster, os_image(image))
    with open(disk0(nodes), "rb") as handle:
        assert handle.read(len(MARK)) == MARK


def test_check_mode_names_what_would_be_destroyed_and_touches_nothing(cluster, nodes, image):
    instance_op.ensure(cluster, spec(state="stopped"))
    with open(disk0(nodes), "r+b") as handle:
        handle.write(MARK)
    cluster.check_mode = True
    result = instance_op.ensure(cluster, os_image(image, reinstall=True))
    inst = cluster.store.load().instances["web1"]
    assert result["destroys"] == [f"disk 0 ({inst.disks[0].uuid}, 1024 MiB) of web1: overwritten with {image}"]
    assert any(a.startswith("reinstall os image: destroys the data of disk 0") for a in result["actions"])
    with open(disk0(nodes), "rb") as handle:
        assert handle.read(len(MARK)) == MARK
    assert inst.os == "noop"


def test_a_running_instance_is_not_reinstalled_unless_the_run_stops_it(cluster, nodes, image):
    instance_op.ensure(cluster, spec(os="image", osparams={"image": image, "image_format": "raw"}))
    with pytest.raises(PrerequisiteError, match="is running: reinstall needs it stopped"):
        instance_op.ensure(cluster, dict(os_image(image, reinstall=True), state="present"))
    assert "web1" in nodes[0].running
    result = instance_op.ensure(cluster, os_image(image, reinstall=True))
    assert result["actions"][:2] == ["stop", f"reinstall os image: destroys the data of {result['destroys'][0]}"]
    assert "web1" not in nodes[0].running


def test_reinstall_with_a_running_state_is_refused_before_anything_is_touched(cluster):
    with pytest.raises(ValidationError, match="reinstall needs the instance stopped"):
        instance_op.ensure(cluster, spec(state="running", reinstall=True))
    with pytest.raises(ValidationError, match="reinstall 'yes' must be true or false"):
        instance_op.ensure(cluster, spec(state="stopped", reinstall="yes"))


def test_reinstalling_noop_is_refused(cluster):
    instance_op.ensure(cluster, spec(state="stopped"))
    with pytest.raises(PrerequisiteError, match="os noop installs nothing"):
        instance_op.ensure(cluster, spec(state="stopped", reinstall=True))


def test_reinstall_is_an_action_done_on_every_run_that_declares_it(cluster, nodes, image):
    instance_op.ensure(cluster, os_image(image))
    for _run in range(2):
        with open(disk0(nodes), "r+b") as handle:
            handle.write(MARK)
        assert instance_op.ensure(cluster, os_image(image, reinstall=True))["changed"] is True
        with open(disk0(nodes), "rb") as handle:
            assert handle.read(13) == b"IMAGE-CONTENT"
    assert instance_op.ensure(cluster, os_image(image))["changed"] is False
