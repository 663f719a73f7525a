"""Hypervisor verbs of the node agent: start, stop, reboot, status, list, info, cleanup, check.

Every verb takes ``hypervisor`` ("kvm", the default, or "fake"). Instance
specs are described in ``hypervisor/base.py``; names are validated before
use. Failures the operator should read raise HerdError subclasses (the
agent answers ``{"ok": false, "error": ...}`` with QEMU's own message where
QEMU produced one).
"""

import base64
import hashlib
import os
from typing import Any, Dict

from .. import names
from ..errors import ValidationError
from ..hypervisor import base
from ..hypervisor import tap
from ..hypervisor.base import InstanceSpec, NicSpec
from .verbs import verb

HYPERVISORS = ("kvm", "fake")


def driver(args: Dict[str, Any]) -> base.Hypervisor:
    spec = args.get("spec") or args.get("instance")
    inner = spec.get("hypervisor") if isinstance(spec, dict) else None
    return base.get(args.get("hypervisor") or inner or "kvm")


def spec_from_args(args: Dict[str, Any], key: str = "spec") -> InstanceSpec:
    """The instance spec of a request (under "spec", or "instance" as ops.nodecalls sends it)."""
    data = args.get(key) if args.get(key) is not None else args.get("instance")
    if not isinstance(data, dict):
        raise ValidationError("the request has no instance spec (\"spec\")")
    return InstanceSpec.from_dict(with_node_defaults(data))


def with_node_defaults(data: Dict[str, Any]) -> Dict[str, Any]:
    """Fill what the node decides when the master did not: the UEFI variables file.

    Default: /var/lib/herd/uefi/<uuid>.OVMF_VARS.fd (node-local, keyed by UUID). The
    master passes ``uefi_vars`` on shared storage for sharedfile instances, and carries
    a node-local file to the new node on migration and failover (``uefi_vars_get/put``).
    """
    hv = data.get("hvparams") or {}
    if hv.get("firmware") == "uefi" and not data.get("uefi_vars"):
        data = dict(data, uefi_vars=base.default_uefi_vars(names.check_uuid(data.get("uuid"))))
    return data


def _name(args: Dict[str, Any]) -> str:
    return names.check_instance_name(args.get("name"))


def _timeout(args: Dict[str, Any], default: float = 120) -> float:
    value = args.get("timeout", default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 3600:
        raise ValidationError(f"timeout {value!r} must be a number of seconds from 0 to 3600")
    return float(value)


@verb("instance_start")
def instance_start(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "spec": {...}} -> {"name", "changed", "pid", "status", "qmp", "serial", "vnc",
    "runtime_differs" (when it was already running), ...}"""
    spec = spec_from_args(args)
    with base.instance_lock(spec.name, "instance_start"):
        return driver(args).start(spec)


@verb("instance_stop")
def instance_stop(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name", "timeout": 120, "force": false}
    -> {"name", "changed", "was_running", "method": "acpi"|"kill"|null, "cleaned": [...]}"""
    name = _name(args)
    with base.instance_lock(name, "instance_stop"):
        return driver(args).stop(name, timeout=_timeout(args), force=bool(args.get("force")))


@verb("instance_reboot")
def instance_reboot(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name", "type": "hard"|"reset", "spec": {...} (optional), "timeout"}"""
    spec = spec_from_args(args) if args.get("spec") or args.get("instance") else None
    name = _name(args)
    if spec is not None and spec.name != name:
        raise ValidationError(f"spec is for {spec.name}, not {name}")
    with base.instance_lock(name, "instance_reboot"):
        return driver(args).reboot(name, spec=spec, timeout=_timeout(args), kind=args.get("type") or "hard")


@verb("instance_status")
def instance_status(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name"} -> {"name", "status": "running"|"stopped"|"error", "pid", "qemu_status",
    "detail"?}"""
    return driver(args).status(_name(args))


@verb("instance_list")
def instance_list(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisors": ["kvm", "fake"], "all": false} -> {"instances": {name: {"status", "pid",
    "qemu_status", "memory", "vcpus", "hypervisor", "detail"?}}}

    Lists the instances whose guest runs on this node (status "running", as
    Ganeti's ListInstances). ``all: true`` adds every other state a node can
    hold, for cleanup and cluster_verify: "incoming" (a migration target still
    receiving the guest), "migrated" (a source whose guest moved away, QEMU
    still alive until migration_finalize) and "error" (dead process, files or
    taps left behind).
    """
    wanted = args.get("hypervisors") or list(HYPERVISORS)
    instances: Dict[str, Any] = {}
    for hv in wanted:
        for name, info in base.get(hv).list_instances().items():
            if args.get("all") or info["status"] == "running":
                instances[name] = info
    return {"instances": instances}


@verb("instance_info")
def instance_info(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name"} -> status plus runtime (spec, argv), taps, paths, live memory"""
    return driver(args).info(_name(args))


@verb("instance_cleanup")
def instance_cleanup(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name", "uuid"?, "purge": false, "uefi_vars": path (optional)}

    Removes what a stopped or dead instance left on this node (pidfile,
    sockets, taps, runtime file). ``purge: true`` (instance removal) also
    removes its UEFI variables file: ``uefi_vars`` or the node default of its
    UUID (and a file of the name from before they were keyed by UUID).
    Refused while the instance runs here.
    """
    name = _name(args)
    with base.instance_lock(name, "instance_cleanup"):
        result = driver(args).cleanup(name)
        if args.get("purge"):
            paths = [base.legacy_uefi_vars(name)]
            if args.get("uuid"):
                paths.append(base.default_uefi_vars(names.check_uuid(args["uuid"])))
            if args.get("uefi_vars"):
                paths.append(base.check_uefi_vars_path(args["uefi_vars"]))
            for path in paths:
                try:
                    os.unlink(path)
                    result["cleaned"].append(path)
                    result["changed"] = True
                except FileNotFoundError:
                    pass
        return result


def _uefi_vars_path(args: Dict[str, Any]) -> str:
    if args.get("uefi_vars"):
        return base.check_uefi_vars_path(args["uefi_vars"])
    return base.default_uefi_vars(names.check_uuid(args.get("uuid")))


@verb("uefi_vars_get")
def uefi_vars_get(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"name", "uuid", "uefi_vars"?} -> {"exists", "data" (base64) or None, "sha256"}

    The instance's UEFI variables, for the master to carry them to the node the
    instance moves to (migration, failover)."""
    _name(args)
    path = _uefi_vars_path(args)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {"exists": False, "data": None, "sha256": None, "path": path}
    return {"exists": True, "data": base64.b64encode(data).decode("ascii"),
            "sha256": hashlib.sha256(data).hexdigest(), "path": path}


@verb("uefi_vars_put")
def uefi_vars_put(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name", "uuid", "uefi_vars"?, "data" (base64), "sha256"}

    Writes the instance's UEFI variables here (0600, atomically); refused while
    the instance has a process on this node (its QEMU owns the file then)."""
    name = _name(args)
    path = _uefi_vars_path(args)
    try:
        data = base64.b64decode(str(args.get("data") or ""), validate=True)
    except ValueError:
        raise ValidationError("uefi_vars_put: data is not base64") from None
    if not data or hashlib.sha256(data).hexdigest() != args.get("sha256"):
        raise ValidationError("uefi_vars_put: the data does not match its sha256 (damaged in transfer)")
    with base.instance_lock(name, "uefi_vars_put"):
        status = driver(args).status(name)["status"]
        if status != "stopped":
            raise ValidationError(f"instance {name} is {status} on this node: its UEFI variables are not "
                                  "replaced under a running QEMU")
        try:
            with open(path, "rb") as handle:
                if handle.read() == data:
                    return {"changed": False, "path": path}
        except FileNotFoundError:
            pass
        base.write_uefi_vars(path, data)
    return {"changed": True, "path": path}


@verb("instance_check")
def instance_check(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "spec"} -> {"problems": [...]}: what would stop the spec starting here."""
    return {"problems": driver(args).check(spec_from_args(args))}


@verb("hypervisor_check")
def hypervisor_check(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "hvparams"} -> {"problems": [...]}: what on this node would stop any
    instance with these hvparams from starting (asked before an instance's disks are made)."""
    return {"problems": driver(args).check_node(base.check_hvparams(args.get("hvparams") or {}))}


@verb("nic_check")
def nic_check(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"name": instance, "nics": [{"mac", "mode", "link", "vlan", "index"}]} -> {"problems": [...]}:
    the NICs whose link this node lacks (no such bridge, not an Open vSwitch bridge for mode
    openvswitch, no VLAN filtering for a vlan on a Linux bridge), checked as the start checks them."""
    name = _name(args)
    raw = args.get("nics")
    if not isinstance(raw, list) or len(raw) > base.MAX_NICS:
        raise ValidationError(f"nics must be a list of at most {base.MAX_NICS}")
    problems = []
    for position, data in enumerate(raw):
        index = data.get("index", position) if isinstance(data, dict) else position
        nic = NicSpec.from_dict(data, index)
        problem = tap.check_link(nic.link, nic.mode, nic.vlan, f"NIC {index} of {name}")
        if problem:
            problems.append(problem)
    return {"problems": problems}


@verb("instance_disk_grown")
def instance_disk_grown(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name", "index": disk index, "size": new size in MiB}
    -> {"name", "changed", "index", "size"}: the running guest is told that the disk grew."""
    name = _name(args)
    index = args.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < base.MAX_DISKS:
        raise ValidationError(f"index {index!r} must be a disk index from 0 to {base.MAX_DISKS - 1}")
    size = args.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValidationError(f"size {size!r} must be a positive number of MiB")
    with base.instance_lock(name, "instance_disk_grown"):
        return driver(args).disk_grown(name, index, size)
