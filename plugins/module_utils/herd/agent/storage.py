"""Storage and OS-provider verbs of the node agent.

Disk verbs take a *disk request* (``ops/nodecalls.disk_args``)::

    {"template": "file"|"sharedfile"|"plain"|"drbd"|"diskless",
     "instance": "web1.example.org", "index": 0,
     "disk": {"uuid": "…", "size": 1024, "name": null, "vg": "gnt", "format": "raw",
              "logical_id": {...}},
     "node": "node1.example.org",
     "storage": {"vg": "gnt", "file_storage_dir": "…", "shared_file_storage_dir": "…",
                 "lvm_driverloaded": null},          # optional override of /etc/herd/node.json
     "drbd": {"local", "primary", "nodes": {node: {"address", "minor"}}, "port", "secret",
              "params": {...}}}                       # drbd only (storage/drbd.py)

Sizes are MiB integers. Every verb is idempotent and answers ``changed``.
Node settings (``/etc/herd/node.json``): ``lvm_driverloaded`` (false on machines
without device-mapper), ``drbd_config_dir``, ``drbdadm``, ``proc_drbd``.
"""

import os
from typing import Any, Dict, List, Tuple

from .. import names
from ..errors import ValidationError
from ..storage import base, osprov
from ..storage.base import DiskRequest, NodeSettings, Runner, StorageContext
from ..storage.drbd import Drbd, DrbdDisk, parse_proc_drbd
from ..storage.lvm import LVM
from ..units import parse_size_mib
from .facts import node_settings
from .verbs import AgentError, verb


def settings(args: Dict[str, Any]) -> NodeSettings:
    storage = args["storage"] if isinstance(args.get("storage"), dict) else {}
    return NodeSettings.from_dict(node_settings(), {"lvm_driverloaded": storage.get("lvm_driverloaded")})


def template_for(args: Dict[str, Any], template: str) -> base.Template:
    return base.get(template, Runner(), settings(args))


def _request(args: Dict[str, Any]) -> DiskRequest:
    return DiskRequest.from_args(args)


def _drbd(args: Dict[str, Any]) -> Tuple[Drbd, DiskRequest]:
    req = _request(args)
    if req.template != "drbd":
        raise ValidationError(f"disk {req.index} of {req.instance} is {req.template}, not drbd")
    return _drbd_driver(args), req


def _drbd_driver(args: Dict[str, Any]) -> Drbd:
    return Drbd(Runner(), settings(args))


@verb("disk_create")
def disk_create(args: Dict[str, Any]) -> Dict[str, Any]:
    """Create one disk on this node (drbd: LVs, resource file, create-md, up, primary --force on the
    primary). args: disk request -> {"changed", "path", "logical_id": {identifiers the master keeps}}.
    file/sharedfile logical_id: {"path", "format"}; plain: {"vg", "lv"}; drbd: {"vg", "data_lv",
    "meta_vg", "meta_lv", "resource"}. Unchanged when the disk exists with the same size."""
    req = _request(args)
    return template_for(args, req.template).create(req)


@verb("disk_remove")
def disk_remove(args: Dict[str, Any]) -> Dict[str, Any]:
    """Remove one disk (drbd: down, resource file, both LVs); a missing disk is fine.
    args: disk request -> {"changed", "removed": [what was removed]}"""
    req = _request(args)
    return template_for(args, req.template).remove(req)


@verb("disk_grow")
def disk_grow(args: Dict[str, Any]) -> Dict[str, Any]:
    """Grow one disk, never shrink (a smaller size fails naming both sizes).
    args: disk request + {"new_size": MiB or "20G", "phase": null|"backing"|"resize" (drbd)}
    -> {"changed", "old_size", "size", "path"}. drbd without phase: the data LV on every node,
    plus ``drbdadm resize`` on the secondary (call the primary first, then the secondary)."""
    req = _request(args)
    new_size = base.check_size(parse_size_mib(args.get("new_size"), "new_size"), "new disk size")
    driver = template_for(args, req.template)
    if isinstance(driver, Drbd):
        return driver.grow(req, new_size, phase=args.get("phase"))
    return driver.grow(req, new_size)


@verb("disk_assemble")
def disk_assemble(args: Dict[str, Any]) -> Dict[str, Any]:
    """Make a disk usable and return what the hypervisor opens.
    args: disk request (+ drbd: "promote": bool, default true on the instance's primary)
    -> {"path", "format", "changed"} (+ plain: "device_present"; drbd: "status")."""
    req = _request(args)
    driver = template_for(args, req.template)
    if isinstance(driver, Drbd):
        promote = args.get("promote")
        return driver.assemble(req, promote=None if promote is None else bool(promote))
    return driver.assemble(req)


@verb("disk_shutdown")
def disk_shutdown(args: Dict[str, Any]) -> Dict[str, Any]:
    """Stop using a disk on this node (drbd: drbdadm down; other templates: nothing).
    args: disk request -> {"changed"}"""
    req = _request(args)
    driver = template_for(args, req.template)
    if isinstance(driver, Drbd):
        return driver.shutdown(req)
    return {"changed": False}


@verb("disk_info")
def disk_info(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: disk request -> {"exists", "path", "size" (MiB or null), ...template details}"""
    req = _request(args)
    return template_for(args, req.template).info(req)


@verb("storage_list")
def storage_list(args: Dict[str, Any]) -> Dict[str, Any]:
    """Everything herd-shaped on this node, for orphan detection by cluster_verify.
    args: {"storage": {...}, "vgs": [extra VG names]}
    -> {"files": [{"template", "instance", "uuid", "index", "path", "format", "size"}],
        "lvs": [{"vg", "lv", "path", "size", "tags", "instance", "herd", "uuid"?, "index"?,
                 "template"?: "plain"|"drbd", "role"?: "disk"|"data"|"meta"}],
        "drbd": {"configs": [{"uuid", "config"}], "proc": parsed /proc/drbd or null},
        "seeds": [{"instance", "path"}], "errors": [...]}"""
    ctx = StorageContext.from_dict(args.get("storage"))
    extra = args.get("vgs") or []
    if not isinstance(extra, list):
        raise ValidationError("vgs must be a list of volume group names")
    out: Dict[str, Any] = {"files": [], "lvs": [], "drbd": {"configs": [], "proc": None}, "seeds": [], "errors": []}
    for template in ("file", "sharedfile"):
        out["files"] += template_for(args, template).list(ctx)
    plain = template_for(args, "plain")
    for vg in sorted({v for v in [ctx.vg, *extra] if v}):
        try:
            out["lvs"] += plain.list(StorageContext(vg=names.check_vg(vg)))
        except base.StorageError as exc:
            out["errors"].append(str(exc))
    drbd = _drbd_driver(args)
    out["drbd"]["configs"] = drbd.list(ctx)
    out["drbd"]["proc"] = drbd.proc()
    for directory in (ctx.file_storage_dir, ctx.shared_file_storage_dir):
        out["seeds"] += _seeds(directory)
    return out


def _seeds(directory: Any) -> List[Dict[str, Any]]:
    found = []
    if directory and os.path.isdir(directory):
        for instance in sorted(os.listdir(directory)):
            path = os.path.join(directory, instance, osprov.SEED_NAME)
            if os.path.isfile(path):
                found.append({"instance": instance, "path": path})
    return found


@verb("os_install")
def os_install(args: Dict[str, Any]) -> Dict[str, Any]:
    """Install the OS provider onto a new instance's disks (on its primary node).
    args: {"instance", "uuid"?, "os": "noop"|"image"|"cloud_init", "osparams": {...},
           "disk_path": disk 0 as assembled (or null), "disk_format": "raw"|"qcow2",
           "storage": {...}, "template"}
    osparams: image: {"image": "/path", "image_format"?}; cloud_init: {"image"?, "hostname"?,
    "ssh_authorized_keys"?, "user_data"?, "network_config"?, "password"?}
    -> {"changed", "os", "image"?: {...}, "cdrom"?: seed ISO path}"""
    instance = names.check_instance_name(args.get("instance"))
    os_type = args.get("os") or "noop"
    if os_type not in osprov.OS_TYPES:
        raise ValidationError(f"os {os_type!r} is not one of {list(osprov.OS_TYPES)}")
    osparams = args.get("osparams") or {}
    if not isinstance(osparams, dict):
        raise ValidationError("osparams must be a mapping")
    out: Dict[str, Any] = {"changed": False, "os": os_type}
    if os_type == "noop":
        return out
    image = osparams.get("image")
    if os_type == "image" and not image:
        raise ValidationError(f"instance {instance}: os image needs osparams.image, an image file on the node")
    if image:
        disk_path = args.get("disk_path")
        if not disk_path:
            raise ValidationError(f"instance {instance} has no disk 0 to write image {image} onto")
        disk_format = args.get("disk_format") or "raw"
        if disk_format not in base.DISK_FORMATS:
            raise ValidationError(f"disk_format {disk_format!r} is not one of {list(base.DISK_FORMATS)}")
        image_format = osparams.get("image_format")
        out["image"] = osprov.install_image(Runner(), names.check_abs_path(image, "osparams.image"),
                                            names.check_abs_path(disk_path, "disk_path"), disk_format,
                                            image_format)
        out["changed"] = True
    if os_type == "cloud_init":
        seed = cloud_init_seed_create(args)
        out["cdrom"] = seed["path"]
        out["changed"] = out["changed"] or seed["changed"]
    return out


@verb("cloud_init_seed_create")
def cloud_init_seed_create(args: Dict[str, Any]) -> Dict[str, Any]:
    """Write the instance's NoCloud seed ISO (0600). Idempotent: unchanged when built from the
    same content. Call it on every node that may run the instance (drbd: both; sharedfile: once).
    args: {"instance", "uuid"?, "osparams": {...}, "storage": {...}, "template"}
    -> {"changed", "path"}"""
    instance = names.check_instance_name(args.get("instance"))
    ctx = StorageContext.from_dict(args.get("storage"))
    instance_id = names.check_uuid(args["uuid"]) if args.get("uuid") else instance
    files = osprov.seed_files(instance, instance_id, args.get("osparams") or {})
    return osprov.create_seed(Runner(), osprov.seed_path(ctx, instance, args.get("template") or "file"), files)


@verb("cloud_init_seed_remove")
def cloud_init_seed_remove(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"instance", "storage", "template"} -> {"changed", "removed"}"""
    instance = names.check_instance_name(args.get("instance"))
    ctx = StorageContext.from_dict(args.get("storage"))
    return osprov.remove_seed(osprov.seed_path(ctx, instance, args.get("template") or "file"))


@verb("instance_dir_rename")
def instance_dir_rename(args: Dict[str, Any]) -> Dict[str, Any]:
    """Rename an instance's directory on this node (its file disks, seed). The instance is stopped.
    args: {"old", "new", "storage", "template"} -> {"changed", "from", "to"}"""
    old = names.check_instance_name(args.get("old"))
    new = names.check_instance_name(args.get("new"))
    return osprov.rename_instance_dir(StorageContext.from_dict(args.get("storage")), old, new,
                                      args.get("template") or "file")


# ----------------------------------------------------------------- drbd

@verb("drbd_create")
def drbd_create(args: Dict[str, Any]) -> Dict[str, Any]:
    """disk_create for a drbd disk (template must be drbd). With {"standalone": true} (a new
    secondary during replace-disks): LVs, resource file, create-md, then new-resource, new-minor
    and attach without network and without promoting; drbd_connect connects it later."""
    driver, req = _drbd(args)
    return driver.create(req, standalone=bool(args.get("standalone")))


@verb("drbd_remove")
def drbd_remove(args: Dict[str, Any]) -> Dict[str, Any]:
    """disk_remove for a drbd disk (template must be drbd)."""
    driver, req = _drbd(args)
    return driver.remove(req)


@verb("drbd_attach")
def drbd_attach(args: Dict[str, Any]) -> Dict[str, Any]:
    """Bring the resource up (attach + connect) without promoting. args: drbd disk request
    -> {"changed", "path", "status"}"""
    driver, req = _drbd(args)
    return driver.assemble(req, promote=False)


@verb("drbd_connect")
def drbd_connect(args: Dict[str, Any]) -> Dict[str, Any]:
    """Reconnect a StandAlone resource. args: drbd disk request + {"dual_primary": bool,
    "timeout": seconds to wait until Connected/SyncSource/SyncTarget (0: do not wait; call the
    first node with 0 and the second with a timeout), "discard_my_data": bool (this node is the
    split-brain victim the operator chose: its changes are overwritten by the peer's)}
    -> {"changed", "steps", "status"}; fails naming the state when the connection does not hold."""
    driver, req = _drbd(args)
    timeout = args.get("timeout", 0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 <= timeout <= 3600:
        raise ValidationError(f"timeout {timeout!r} must be a number of seconds from 0 to 3600")
    discard = args.get("discard_my_data", False)
    if not isinstance(discard, bool):
        raise ValidationError(f"discard_my_data {discard!r} must be true or false")
    return driver.connect(req, dual_primary=bool(args.get("dual_primary")), timeout=float(timeout),
                          discard_my_data=discard)


@verb("drbd_replace_local")
def drbd_replace_local(args: Dict[str, Any]) -> Dict[str, Any]:
    """Replace this node's data and meta LVs under the resource (replace-disks on the same
    nodes): the old ones are renamed <lv>_replaced-<stamp>, fresh ones attached and synced
    from the peer. args: drbd disk request + {"stamp": int} -> {"changed", "replaced", "status"}"""
    driver, req = _drbd(args)
    return driver.replace_local(req, _stamp(args))


@verb("drbd_remove_replaced")
def drbd_remove_replaced(args: Dict[str, Any]) -> Dict[str, Any]:
    """Remove the LVs drbd_replace_local set aside. args: drbd disk request + {"stamp": int}
    -> {"changed", "removed"}"""
    driver, req = _drbd(args)
    return driver.remove_replaced(req, _stamp(args))


def _stamp(args: Dict[str, Any]) -> int:
    """The replace-disks stamp in the set-aside LVs' names: a plain non-negative integer."""
    stamp = args.get("stamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp < 0:
        raise ValidationError(f"stamp {stamp!r} is not a non-negative integer")
    return stamp


@verb("drbd_disconnect")
def drbd_disconnect(args: Dict[str, Any]) -> Dict[str, Any]:
    """Go StandAlone. args: drbd disk request -> {"changed", "status"}"""
    driver, req = _drbd(args)
    return driver.disconnect(req)


@verb("drbd_primary")
def drbd_primary(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: drbd disk request + {"force": bool} -> {"changed", "status"}"""
    driver, req = _drbd(args)
    return driver.role(req, "primary", force=bool(args.get("force")))


@verb("drbd_secondary")
def drbd_secondary(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: drbd disk request -> {"changed", "status"}"""
    driver, req = _drbd(args)
    return driver.role(req, "secondary")


@verb("drbd_set_mode")
def drbd_set_mode(args: Dict[str, Any]) -> Dict[str, Any]:
    """Migration/failover step on one node: role and whether two primaries are allowed.
    args: drbd disk request + {"role": "primary"|"secondary", "dual_primary": bool, "force": bool,
    "timeout": seconds to wait for Connected+UpToDate before a second primary (60),
    "connect_timeout": seconds a StandAlone resource it reconnects gets to reach Connected (0: no wait)}
    -> {"changed", "steps": [...], "status", "path"}.
    Dual: call the current primary first, then the target. Back to single: call the node that
    stays primary first, then the one becoming secondary (it also forbids two primaries)."""
    driver, req = _drbd(args)
    timeout = args.get("timeout", 60)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 <= timeout <= 3600:
        raise ValidationError(f"timeout {timeout!r} must be a number of seconds from 0 to 3600")
    connect_timeout = args.get("connect_timeout", 0)
    if not isinstance(connect_timeout, (int, float)) or isinstance(connect_timeout, bool) \
            or not 0 <= connect_timeout <= 3600:
        raise ValidationError(f"connect_timeout {connect_timeout!r} must be a number of seconds from 0 to 3600")
    return driver.set_mode(req, role=args.get("role") or "secondary", dual_primary=bool(args.get("dual_primary")),
                           force=bool(args.get("force")), timeout=float(timeout),
                           connect_timeout=float(connect_timeout))


@verb("drbd_status")
def drbd_status(args: Dict[str, Any]) -> Dict[str, Any]:
    """Parsed /proc/drbd. args: {} for every minor, or a drbd disk request for one
    -> {"loaded": bool, "version", "minors": {minor: status}} or {"loaded", "status": status|null}.
    A status: cs, role, peer_role, disk, peer_disk, sync_percent, eta_seconds, connected,
    primary, peer_primary, disk_uptodate, peer_uptodate, in_resync, degraded, ..."""
    if args.get("template"):
        driver, req = _drbd(args)
        disk = DrbdDisk.from_request(req)
        return {"loaded": driver.proc() is not None, "status": driver.status(disk), "minor": disk.local.minor}
    path = settings(args).proc_drbd
    try:
        with open(path, encoding="utf-8") as handle:
            parsed = parse_proc_drbd(handle.read())
    except FileNotFoundError:
        return {"loaded": False, "version": None, "minors": {}}
    return {"loaded": True, "version": parsed["version"],
            "minors": {str(k): v for k, v in parsed["minors"].items()}}


# --------------------------------------------------------------------------- disk template conversion, adoption

def _lv_args(args: Dict[str, Any], *keys: str) -> Tuple[Any, ...]:
    instance = names.check_instance_name(args.get("instance"))
    return (instance, names.check_vg(args.get("vg"))) + tuple(names.check_vg(args.get(k)) for k in keys)


@verb("lv_rename")
def lv_rename(args: Dict[str, Any]) -> Dict[str, Any]:
    """Rename one of ``instance``'s LVs (a disk template conversion: the plain LV becomes DRBD's
    data LV and back). Idempotent: done when ``old`` is gone and ``new`` exists.
    args: {"instance", "vg", "old", "new", "storage"} -> {"changed"}"""
    instance, vg, old, new = _lv_args(args, "old", "new")
    lvm = LVM(Runner(), settings(args))
    if lvm.find(vg, old) is None and lvm.find(vg, new) is not None:
        return {"changed": False}
    if lvm.find(vg, new) is not None:
        raise AgentError(f"cannot rename {vg}/{old} to {new}: {vg}/{new} exists already")
    lvm.rename(vg, old, new, instance)
    return {"changed": True}


@verb("lv_adopt")
def lv_adopt(args: Dict[str, Any]) -> Dict[str, Any]:
    """Take an existing LV as a disk of ``instance`` (LVM.adopt); ``dry_run``: only the checks
    and its size; ``release``: give it back (herd's tags off, a failed create's undo).
    args: {"instance", "vg", "lv", "dry_run", "storage"} -> {"changed", "size", "path", "tags"}"""
    instance, vg, lv = _lv_args(args, "lv")
    lvm = LVM(Runner(), settings(args))
    if args.get("release"):
        return lvm.release(vg, lv, instance)
    return lvm.adopt(vg, lv, instance, dry_run=bool(args.get("dry_run")))
