"""LVM volumes and the ``plain`` template (one logical volume per disk).

LV name (as Ganeti): ``<disk uuid>.disk<index>``, tagged ``herd`` and
``originstname+<instance>`` so orphans can be traced to an instance.

Nodes without device-mapper (kernels without the dm module) set
``"lvm_driverloaded": false`` in /etc/herd/node.json: then every LVM command
that would touch the kernel gets ``--driverloaded n`` (metadata only; LVs are
created, extended, tagged and removed in the VG metadata) and activation is
skipped, with the result saying ``"device_present": false``. On real hardware
the setting is absent (true) and LVs are activated normally.
"""

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .. import names
from .base import DiskRequest, NodeSettings, Runner, StorageContext, StorageError, Template, check_grow, register

LVM_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1"}
HERD_TAG = "herd"
INSTANCE_TAG_PREFIX = "originstname+"
LV_FIELDS = "vg_name,lv_name,lv_size,lv_tags,lv_attr"
_HERD_LV = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.disk([0-9]+)(_data|_meta)?(_replaced-[0-9]{1,12})?$")
_TAG_SAFE = re.compile(r"[^-A-Za-z0-9_+.]")


@dataclass
class LogicalVolume:
    vg: str
    name: str
    size: int  # MiB
    tags: List[str] = field(default_factory=list)
    attr: str = ""

    @property
    def path(self) -> str:
        return f"/dev/{self.vg}/{self.name}"


def instance_tag(instance: str) -> str:
    """Ganeti's originstname tag: sanitised to [-A-Za-z0-9_+.], at most 128 characters."""
    return (INSTANCE_TAG_PREFIX + _TAG_SAFE.sub("_", instance))[:128]


class LVM:
    """The LVM commands herd runs, as argument lists (pure) and executed."""

    def __init__(self, runner: Runner, settings: NodeSettings):
        self.runner = runner
        self.settings = settings

    # ----- argument lists (pure) -----
    def flags(self) -> List[str]:
        return [] if self.settings.lvm_driverloaded else ["--driverloaded", "n"]

    def lvcreate_argv(self, vg: str, lv: str, size: int, tags: List[str]) -> List[str]:
        argv = ["lvcreate", "-Wn"]
        if not self.settings.lvm_driverloaded:
            argv += ["-Zn"]  # zeroing needs the device
        argv += ["-L", f"{size}m", "-n", lv]
        for tag in tags:
            argv += ["--addtag", tag]
        return argv + self.flags() + [vg]

    def lvremove_argv(self, vg: str, lv: str) -> List[str]:
        return ["lvremove", "-f"] + self.flags() + [f"{vg}/{lv}"]

    def lvextend_argv(self, vg: str, lv: str, size: int) -> List[str]:
        return ["lvextend", "-L", f"{size}m"] + self.flags() + [f"{vg}/{lv}"]

    def lvrename_argv(self, vg: str, old: str, new: str) -> List[str]:
        return ["lvrename"] + self.flags() + [vg, old, new]

    def lvchange_addtag_argv(self, vg: str, lv: str, tags: List[str]) -> List[str]:
        argv = ["lvchange"]
        for tag in tags:
            argv += ["--addtag", tag]
        return argv + self.flags() + [f"{vg}/{lv}"]

    def lvchange_deltag_argv(self, vg: str, lv: str, tags: List[str]) -> List[str]:
        argv = ["lvchange"]
        for tag in tags:
            argv += ["--deltag", tag]
        return argv + self.flags() + [f"{vg}/{lv}"]

    def lvchange_activate_argv(self, vg: str, lv: str) -> List[str]:
        return ["lvchange", "-ay", f"{vg}/{lv}"]

    def lvs_argv(self, vg: Optional[str] = None) -> List[str]:
        return ["lvs", "--reportformat", "json", "--units", "m", "--nosuffix", "-o", LV_FIELDS] + ([vg] if vg else [])

    def vgs_argv(self, vg: Optional[str] = None) -> List[str]:
        return (["vgs", "--reportformat", "json", "--units", "m", "--nosuffix", "-o",
                 "vg_name,vg_size,vg_free,vg_extent_size"] + ([vg] if vg else []))

    # ----- queries -----
    def _run(self, argv: List[str], check: bool = True) -> Any:
        return self.runner.run(argv, check=check, env=LVM_ENV)

    def vg_info(self, vg: str) -> Dict[str, int]:
        """{"size", "free", "extent"} in MiB; a clear error when the VG does not exist."""
        result = self._run(self.vgs_argv(vg), check=False)
        if result.rc != 0:
            raise StorageError(f"volume group {vg} is not available on this node: "
                               f"{_last_error(result.stderr) or 'vgs failed'}")
        rows = _report(result.stdout, "vg")
        if not rows:
            raise StorageError(f"volume group {vg} is not available on this node")
        row = rows[0]
        return {"size": _mib(row["vg_size"]), "free": _mib(row["vg_free"]), "extent": _mib(row["vg_extent_size"])}

    def list_lvs(self, vg: Optional[str] = None) -> List[LogicalVolume]:
        result = self._run(self.lvs_argv(vg), check=False)
        if result.rc != 0:
            if vg:
                raise StorageError(f"volume group {vg} is not available on this node: "
                                   f"{_last_error(result.stderr) or 'lvs failed'}")
            raise StorageError(f"lvs failed: {_last_error(result.stderr)}")
        return [LogicalVolume(vg=row["vg_name"], name=row["lv_name"], size=_mib(row["lv_size"]),
                              tags=[t for t in row.get("lv_tags", "").split(",") if t], attr=row.get("lv_attr", ""))
                for row in _report(result.stdout, "lv")]

    def find(self, vg: str, lv: str) -> Optional[LogicalVolume]:
        for volume in self.list_lvs(vg):
            if volume.name == lv:
                return volume
        return None

    # ----- actions -----
    def create(self, vg: str, lv: str, size: int, tags: List[str]) -> Dict[str, Any]:
        """Create ``vg/lv`` of ``size`` MiB; unchanged when it exists with that size (rounded to extents)."""
        info = self.vg_info(vg)
        existing = self.find(vg, lv)
        rounded = math.ceil(size / info["extent"]) * info["extent"]
        if existing is not None:
            if not size <= existing.size <= rounded:
                raise StorageError(f"logical volume {vg}/{lv} already exists with {existing.size} MiB, "
                                   f"not the requested {size} MiB")
            return {"changed": False, "path": existing.path, "size": existing.size}
        if info["free"] < rounded:
            raise StorageError(f"volume group {vg} on this node has {info['free']} MiB free; "
                               f"{lv} needs {rounded} MiB")
        self._run(self.lvcreate_argv(vg, lv, size, tags))
        return {"changed": True, "path": f"/dev/{vg}/{lv}", "size": rounded}

    def remove(self, vg: str, lv: str, instance: Optional[str] = None) -> bool:
        """Remove ``vg/lv`` if it exists; only an LV herd made (its tag and its name pattern) or
        one adopted by ``instance``: a request naming any other volume (a node's root LV, an
        operator's data) is refused."""
        volume = self.find(vg, lv)
        if volume is None:
            return False
        check_owned(volume, instance)
        self._run(self.lvremove_argv(vg, lv))
        return True

    def rename(self, vg: str, old: str, new: str, instance: Optional[str] = None) -> None:
        volume = self.find(vg, old)
        if volume is None:
            raise StorageError(f"logical volume {vg}/{old} does not exist on this node")
        check_owned(volume, instance)
        self._run(self.lvrename_argv(vg, old, new))

    def release(self, vg: str, lv: str, instance: str) -> Dict[str, Any]:
        """Undo an adoption (a create that failed): herd's tags off, the LV and its data kept."""
        volume = self.find(vg, lv)
        tags = [t for t in (HERD_TAG, instance_tag(instance)) if volume is not None and t in volume.tags]
        if tags:
            self._run(self.lvchange_deltag_argv(vg, lv, tags))
        return {"changed": bool(tags)}

    def adopt(self, vg: str, lv: str, instance: str, dry_run: bool = False) -> Dict[str, Any]:
        """Take an operator's LV as a disk of ``instance`` (Ganeti's ``--disk N:adopt=LV``): its
        name and data kept, herd's tags added. Refused when it does not exist, is open (in use:
        mounted, a running guest, a holder such as DRBD) or belongs to another instance.
        -> {"changed", "size", "path", "tags"}"""
        volume = self.find(vg, lv)
        if volume is None:
            raise StorageError(f"cannot adopt {vg}/{lv}: no such logical volume on this node")
        if len(volume.attr) > 5 and volume.attr[5] == "o":
            raise StorageError(f"cannot adopt {vg}/{lv}: it is open (in use: lv_attr {volume.attr}); stop what "
                               "uses it first (a mount, a running guest, a DRBD device)")
        mine = instance_tag(instance)
        others = [t[len(INSTANCE_TAG_PREFIX):] for t in volume.tags if t.startswith(INSTANCE_TAG_PREFIX) and t != mine]
        if others:
            raise StorageError(f"cannot adopt {vg}/{lv}: it belongs to instance {others[0]} (tag "
                               f"{INSTANCE_TAG_PREFIX}{others[0]})")
        missing = [t for t in (HERD_TAG, mine) if t not in volume.tags]
        if missing and not dry_run:
            self._run(self.lvchange_addtag_argv(vg, lv, missing))
        return {"changed": bool(missing), "size": volume.size, "path": volume.path,
                "tags": sorted(set(volume.tags) | set(missing))}

    def extend(self, vg: str, lv: str, size: int) -> None:
        volume = self.find(vg, lv)
        if volume is None:
            raise StorageError(f"logical volume {vg}/{lv} does not exist on this node")
        info = self.vg_info(vg)
        needed = math.ceil(size / info["extent"]) * info["extent"] - volume.size
        if needed > info["free"]:
            raise StorageError(f"volume group {vg} on this node has {info['free']} MiB free; growing {lv} "
                               f"to {size} MiB needs {needed} MiB more")
        self._run(self.lvextend_argv(vg, lv, size))

    def activate(self, vg: str, lv: str) -> Dict[str, Any]:
        """Make /dev/VG/LV exist. Without device-mapper that cannot happen: reported, not an error."""
        path = f"/dev/{vg}/{lv}"
        if not self.settings.lvm_driverloaded:
            return {"changed": False, "path": path, "device_present": os.path.exists(path)}
        if os.path.exists(path):
            return {"changed": False, "path": path, "device_present": True}
        self._run(self.lvchange_activate_argv(vg, lv))
        if not os.path.exists(path):
            raise StorageError(f"lvchange -ay {vg}/{lv} succeeded but {path} does not exist")
        return {"changed": True, "path": path, "device_present": True}


def _report(stdout: str, kind: str) -> List[Dict[str, str]]:
    try:
        data = json.loads(stdout)
    except ValueError:
        raise StorageError(f"cannot parse LVM JSON report: {stdout[:200]!r}") from None
    rows: List[Dict[str, str]] = []
    for section in data.get("report", []):
        rows.extend(section.get(kind, []))
    return rows


def _mib(value: str) -> int:
    return int(math.floor(float(value)))


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and "WARNING" not in line and "Fix duplicate VG names" not in line]
    return lines[-1] if lines else ""


def check_owned(volume: LogicalVolume, instance: Optional[str] = None) -> None:
    """Refuse to destroy a volume that does not carry herd's tag and LV name pattern. An adopted
    LV keeps its operator-given name: it is herd's when it carries herd's tag and the tag of
    ``instance``, the instance the request is about."""
    problems = []
    if HERD_TAG not in volume.tags:
        problems.append(f"it has no {HERD_TAG!r} tag (tags: {','.join(volume.tags) or 'none'})")
    adopted = instance is not None and instance_tag(instance) in volume.tags
    if not _HERD_LV.match(volume.name) and not adopted:
        problems.append("its name is not herd's <disk uuid>.disk<N>[_data|_meta][_replaced-<time>]")
    if problems:
        raise StorageError(f"refusing to remove logical volume {volume.vg}/{volume.name}: herd only removes "
                           f"volumes it created, and {' and '.join(problems)}")


def classify(volume: LogicalVolume) -> Dict[str, Any]:
    """What storage_list reports for one LV: herd ownership, template, instance, disk uuid."""
    match = _HERD_LV.match(volume.name)
    instance = next((t[len(INSTANCE_TAG_PREFIX):] for t in volume.tags if t.startswith(INSTANCE_TAG_PREFIX)), None)
    out: Dict[str, Any] = {"vg": volume.vg, "lv": volume.name, "path": volume.path, "size": volume.size,
                           "tags": volume.tags, "instance": instance,
                           "herd": HERD_TAG in volume.tags or match is not None}
    if match:
        out.update({"uuid": match.group(1), "index": int(match.group(2)),
                    "template": "drbd" if match.group(3) else "plain",
                    "role": (match.group(3) or "_disk")[1:]})
    return out


@register
class Plain(Template):
    name = "plain"

    def __init__(self, runner: Runner, settings: NodeSettings):
        super().__init__(runner, settings)
        self.lvm = LVM(runner, settings)

    def names(self, req: DiskRequest) -> Dict[str, str]:
        vg = req.logical_id.get("vg") or req.need_vg()
        lv = req.logical_id.get("lv") or f"{req.uuid}.disk{req.index}"
        return {"vg": names.check_vg(vg), "lv": names.check_vg(lv)}

    def create(self, req: DiskRequest) -> Dict[str, Any]:
        ids = self.names(req)
        if req.logical_id.get("adopted"):  # the operator's LV: tagged, never created
            adopted = self.lvm.adopt(ids["vg"], ids["lv"], req.instance)
            return {"changed": adopted["changed"], "path": adopted["path"], "logical_id": dict(ids, adopted=True),
                    "device_present": self.settings.lvm_driverloaded}
        result = self.lvm.create(ids["vg"], ids["lv"], req.size, [HERD_TAG, instance_tag(req.instance)])
        return {"changed": result["changed"], "path": result["path"], "logical_id": ids,
                "device_present": self.settings.lvm_driverloaded}

    def remove(self, req: DiskRequest) -> Dict[str, Any]:
        ids = self.names(req)
        removed = self.lvm.remove(ids["vg"], ids["lv"], req.instance)
        return {"changed": removed, "removed": [f"{ids['vg']}/{ids['lv']}"] if removed else []}

    def grow(self, req: DiskRequest, new_size: int) -> Dict[str, Any]:
        ids = self.names(req)
        volume = self.lvm.find(ids["vg"], ids["lv"])
        if volume is None:
            raise StorageError(f"disk {req.index} of {req.instance}: {ids['vg']}/{ids['lv']} does not exist "
                               "on this node")
        # the recorded size is the disk's size; the LV may be a little larger (extent rounding)
        check_grow(req, min(req.size, volume.size), new_size)
        if volume.size >= new_size:
            return {"changed": False, "old_size": volume.size, "size": volume.size, "path": volume.path}
        self.lvm.extend(ids["vg"], ids["lv"], new_size)
        return {"changed": True, "old_size": volume.size, "size": new_size, "path": volume.path}

    def assemble(self, req: DiskRequest) -> Dict[str, Any]:
        ids = self.names(req)
        if self.lvm.find(ids["vg"], ids["lv"]) is None:
            raise StorageError(f"disk {req.index} of {req.instance}: {ids['vg']}/{ids['lv']} does not exist "
                               "on this node")
        result = self.lvm.activate(ids["vg"], ids["lv"])
        result["format"] = "raw"
        return result

    def info(self, req: DiskRequest) -> Dict[str, Any]:
        ids = self.names(req)
        volume = self.lvm.find(ids["vg"], ids["lv"])
        return {"exists": volume is not None, "path": f"/dev/{ids['vg']}/{ids['lv']}",
                "size": volume.size if volume else None, "tags": volume.tags if volume else [],
                "device_present": os.path.exists(f"/dev/{ids['vg']}/{ids['lv']}"),
                # without device-mapper no LV can be active: activate-disks has nothing to do then
                "activatable": bool(self.settings.lvm_driverloaded)}

    def list(self, ctx: StorageContext) -> List[Dict[str, Any]]:
        return [classify(v) for v in self.lvm.list_lvs(ctx.vg)]
