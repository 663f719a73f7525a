"""Hypervisor verbs of the node agent: start, stop, reboot, status, list, info, cleanup, check.

Every verb takes ``hypervisor`` ("kvm", the default, or "fake"). Instance
specs are described in ``hypervisor/base.py``; names are validated before
use. Failures the operator should read raise HerdError subclasses (the
agent answers ``{"ok": false, "error": ...}`` with QEMU's own message where
QEMU produced one).
"""

from typing import Any, Dict

from .. import names
from ..errors import ValidationError
from ..hypervisor import base
from ..hypervisor.base import InstanceSpec
from .verbs import verb

HYPERVISORS = ("kvm", "fake")


def driver(args: Dict[str, Any]) -> base.Hypervisor:
    return base.get(args.get("hypervisor") or "kvm")


def _name(args: Dict[str, Any]) -> str:
    return names.check_instance_name(args.get("name"))


def _timeout(args: Dict[str, Any], default: float = 120) -> float:
    value = args.get("timeout", default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 3600:
        raise ValidationError(f"timeout {value!r} must be a number of seconds from 0 to 3600")
    return float(value)


@verb("instance_start")
def instance_start(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "spec": {...}} -> {"name", "changed", "pid", "status", "qmp", "serial", "vnc", ...}"""
    return driver(args).start(InstanceSpec.from_dict(args.get("spec")))


@verb("instance_stop")
def instance_stop(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name", "timeout": 120, "force": false}
    -> {"name", "changed", "was_running", "method": "acpi"|"kill"|null, "cleaned": [...]}"""
    return driver(args).stop(_name(args), timeout=_timeout(args), force=bool(args.get("force")))


@verb("instance_reboot")
def instance_reboot(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name", "type": "hard"|"reset", "spec": {...} (optional), "timeout"}"""
    spec = InstanceSpec.from_dict(args["spec"]) if args.get("spec") else None
    name = _name(args)
    if spec is not None and spec.name != name:
        raise ValidationError(f"spec is for {spec.name}, not {name}")
    return driver(args).reboot(name, spec=spec, timeout=_timeout(args), kind=args.get("type") or "hard")


@verb("instance_status")
def instance_status(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name"} -> {"name", "status": "running"|"stopped"|"error", "pid", "qemu_status",
    "detail"?}"""
    return driver(args).status(_name(args))


@verb("instance_list")
def instance_list(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisors": ["kvm", "fake"]} -> {"instances": {name: {"status", "pid", "qemu_status",
    "memory", "vcpus", "hypervisor", "detail"?}}}"""
    wanted = args.get("hypervisors") or list(HYPERVISORS)
    instances: Dict[str, Any] = {}
    for hv in wanted:
        instances.update(base.get(hv).list_instances())
    return {"instances": instances}


@verb("instance_info")
def instance_info(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name"} -> status plus runtime (spec, argv), taps, paths, live memory"""
    return driver(args).info(_name(args))


@verb("instance_cleanup")
def instance_cleanup(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "name"}: remove what a dead instance left (pidfile, sockets, taps, runtime)."""
    return driver(args).cleanup(_name(args))


@verb("instance_check")
def instance_check(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"hypervisor", "spec"} -> {"problems": [...]}: what would stop the spec starting here."""
    return {"problems": driver(args).check(InstanceSpec.from_dict(args.get("spec")))}
