"""Adoption of existing logical volumes into a new ``plain`` instance, Ganeti's
``gnt-instance add --disk N:adopt=LV``: ``disks: [{adopt: LV, vg: VG}]``.

The LV is the operator's until the instance exists: its name and data are kept, its size is
read from LVM on the primary, herd's tags are added at creation. Refused, before anything is
touched, when it does not exist, is open (in use), carries another instance's tag or is
already a disk of an instance in the config. A failed create gives it back untagged and
never deletes it; once the instance exists it is one of its disks like any other (removed
with the instance, as Ganeti does).
"""

from typing import Any, Callable, Dict, List

from ..config import Config, Disk, Instance, new_uuid
from ..errors import PrerequisiteError, RpcError, ValidationError
from . import nodecalls
from .common import Context


def new_disks(config: Config, declared: List[Dict[str, Any]]) -> List[Disk]:
    """The Disk entries of a new instance; an adopted one names its LV (size read later)."""
    out = []
    for d in declared:
        disk = Disk(uuid=new_uuid(), size=d["size"] or 0, name=d["name"], vg=d["vg"])
        if d.get("adopt"):
            disk.vg = d["vg"] or config.cluster.volume_group
            disk.logical_id = {"vg": disk.vg, "lv": d["adopt"], "adopted": True}
        out.append(disk)
    return out


def is_adopted(disk: Disk) -> bool:
    return bool(disk.logical_id.get("adopted"))


def _call(ctx: Context, config: Config, inst: Instance, disk: Disk, **extra: Any) -> Dict[str, Any]:
    args = {"instance": inst.name, "vg": disk.logical_id["vg"], "lv": disk.logical_id["lv"],
            "storage": nodecalls.storage_context(config), **extra}
    return nodecalls.call(ctx, config, inst.primary_node, "lv_adopt", args)


def prepare(ctx: Context, config: Config, inst: Instance, primary: Any) -> None:
    """Check every adopted LV on the primary (read only) and take its size."""
    adopted = [d for d in inst.disks if is_adopted(d)]
    if not adopted:
        return
    if len(adopted) != len(inst.disks):
        raise ValidationError(f"instance {inst.name}: either every disk adopts an LV or none does")
    if inst.disk_template != "plain":
        raise ValidationError(f"instance {inst.name}: only plain disks adopt LVs, not {inst.disk_template}")
    if not primary:
        raise ValidationError(f"instance {inst.name}: adopting LVs needs primary_node, the node that holds them")
    inst.primary_node = primary
    wanted = [(d.logical_id["vg"], d.logical_id["lv"]) for d in adopted]
    if len(set(wanted)) != len(wanted):
        raise ValidationError(f"instance {inst.name}: an LV is adopted twice ({wanted})")
    for other in config.instances.values():
        if primary in other.nodes():
            for disk in other.disks:
                if (disk.logical_id.get("vg") or disk.vg, disk.logical_id.get("lv")) in wanted:
                    raise PrerequisiteError(f"cannot adopt {disk.logical_id['vg']}/{disk.logical_id['lv']}: it is "
                                            f"a disk of instance {other.name}")
    for index, disk in enumerate(inst.disks):
        try:
            answer = _call(ctx, config, inst, disk, dry_run=True)
        except RpcError as exc:
            raise PrerequisiteError(f"instance {inst.name}: disks[{index}] on {primary}: {exc}") from None
        disk.size = int(answer["size"])


def release(ctx: Context, config: Config, inst: Instance, index: int) -> Callable[[], Any]:
    """Undo of an adoption at a failed create: herd's tags go, the LV and its data stay."""
    return lambda: _call(ctx, config, inst, inst.disks[index], release=True)
