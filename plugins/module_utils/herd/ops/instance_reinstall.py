"""gnt-instance reinstall: run the OS provider again on a stopped instance's disk 0.

An action, like ``state: restarted``: ``reinstall: true`` reinstalls on every
run that declares it, so it belongs in a one-off task, never in the standing
declaration of an instance. It is the only way the OS of an existing
instance changes (``os`` and ``osparams`` declared with it replace the
instance's, as ``gnt-instance reinstall -o -O`` does). Without it, a declared
``os`` that differs is refused, and nothing on disk 0 is ever overwritten.

What is destroyed is said before anything is touched, in check mode too:
``image`` (and ``cloud_init`` with an image) writes the image over disk 0;
``cloud_init`` without an image writes a new seed only and keeps disk 0.
``noop`` installs nothing, so reinstalling it is refused rather than doing
nothing silently. Like Ganeti the instance must be stopped: a running one is
refused unless the same run stops it (``state: stopped``).
"""

from typing import Any, Dict, Optional

from ..config import Config, Instance
from ..errors import PrerequisiteError
from . import nodecalls
from .common import Context
from .instance_spec import check_osparams


def plan(inst: Instance, spec: Dict[str, Any], running: bool, want: str) -> Optional[Dict[str, Any]]:
    """What a declared ``reinstall: true`` does: {"os", "osparams", "destroys": [...], "action"};
    None when no reinstall is declared. Touches nothing."""
    if not spec.get("reinstall"):
        return None
    os_type = spec.get("os") or inst.os
    osparams = spec["osparams"] if spec.get("osparams") else dict(inst.osparams)
    if spec.get("os") and spec["os"] != inst.os and not spec.get("osparams"):
        osparams = {}
    check_osparams(os_type, osparams)  # the same validation as at create, for the OS it will run
    if os_type == "noop":
        raise PrerequisiteError(f"instance {inst.name}: reinstall runs the OS provider again, and os noop installs "
                                "nothing; declare os: image or cloud_init (with osparams) to reinstall")
    if inst.disk_template == "diskless" or not inst.disks:
        raise PrerequisiteError(f"instance {inst.name} has no disk 0 to reinstall")
    if running and want != "down":
        raise PrerequisiteError(f"instance {inst.name} is running: reinstall needs it stopped (like gnt-instance "
                                "reinstall). Declare state: stopped with reinstall: true (herd stops it first), or "
                                "stop it beforehand")
    disk = inst.disks[0]
    destroys = []
    if osparams.get("image"):
        destroys.append(f"disk 0 ({disk.uuid}, {disk.size} MiB{', ' + disk.name if disk.name else ''}) of "
                        f"{inst.name}: overwritten with {osparams['image']}")
    what = (f"reinstall os {os_type}: " + ("destroys the data of " + destroys[0] if destroys
                                           else "writes a new cloud-init seed; disk 0 is kept"))
    return {"os": os_type, "osparams": osparams, "destroys": destroys, "action": what}


def execute(ctx: Context, job: Any, config: Config, target: Instance) -> None:
    """Run the OS provider on ``target`` (the instance with its new os/osparams), which is stopped."""
    with job.step("reinstall OS", os=target.os):
        nodecalls.os_install(ctx, config, target)
