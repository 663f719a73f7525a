"""Migration verbs of the node agent (ganeti.md §4b), in the order the master calls them.

1. source  migration_info      {"hypervisor", "name"} -> {"runtime": {...}}
2. target  migration_accept    {"hypervisor", "runtime", "address": target secondary IP, "port": int|null,
                                "disk_paths": [...] (optional: the target's paths, e.g. its DRBD minors)}
                               -> {"pid", "address", "port" (the one QEMU listens on), "taps", "warnings"}
3. source  migration_start     {"hypervisor", "name", "address", "port", "live": true,
                                "bandwidth": MiB/s, "downtime": ms} -> {"status"}
4. source  migration_status    {"hypervisor", "name"} -> {"status": setup|active|completed|failed|cancelled|...,
                                "transferred", "total", "remaining" (bytes), "error", "qemu_status"}
5. both    migration_finalize  {"hypervisor", "name", "role": "source"|"target", "success": bool}
   abort:  migration_abort     {"hypervisor", "name", "role": "source" (default) | "target"}
           source: migrate_cancel, then resume the guest if the migration left it paused
           (after a completed migration only with "resume_completed": true, which the master
           sends when it knows the target does not run the guest); target: kill QEMU, remove
           taps and files.

Rollback order (as Ganeti's _AbortMigration): kill the target first
(finalize target success=false, or abort role=target), then abort the source
(cancel + resume). Resuming the source while the target may already run the
guest would run it twice. finalize(source, success=false) also resumes.
"""

from typing import Any, Dict

from .. import names
from ..errors import ValidationError
from ..hypervisor.base import instance_lock
from .instance import driver
from .verbs import verb


def _name(args: Dict[str, Any]) -> str:
    return names.check_instance_name(args.get("name"))


def _role(args: Dict[str, Any]) -> str:
    role = args.get("role") or "source"
    if role not in ("source", "target"):
        raise ValidationError(f"role {role!r} is not one of ['source', 'target']")
    return role


def _positive(args: Dict[str, Any], key: str) -> Any:
    value = args.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationError(f"{key} {value!r} must be a positive integer")
    return value


@verb("migration_info")
def migration_info(args: Dict[str, Any]) -> Dict[str, Any]:
    return driver(args).migration_info(_name(args))


@verb("migration_accept")
def migration_accept(args: Dict[str, Any]) -> Dict[str, Any]:
    port = args.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535):
        raise ValidationError(f"port {port!r} must be an integer from 0 to 65535")
    runtime = args.get("runtime") or {}
    spec = runtime.get("spec") if isinstance(runtime, dict) else None
    if not isinstance(spec, dict):
        raise ValidationError("runtime.spec must be the instance's runtime spec (a mapping)")
    name = names.check_instance_name(spec.get("name"))
    disk_paths = args.get("disk_paths")
    if disk_paths:
        # the target's own paths of the same disks (DRBD minors differ per node)
        disks = spec.get("disks") or []
        if not isinstance(disk_paths, list) or len(disk_paths) != len(disks):
            raise ValidationError(f"disk_paths must list one path for each of the {len(disks)} disks")
        spec = dict(spec, disks=[dict(d, path=p) if isinstance(d, dict) else {"path": p}
                                 for d, p in zip(disks, disk_paths)])
        runtime = dict(runtime, spec=spec)
    with instance_lock(name, "migration_accept"):
        return driver(args).migration_accept(runtime, str(args.get("address") or ""), port)


@verb("migration_start")
def migration_start(args: Dict[str, Any]) -> Dict[str, Any]:
    port = args.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValidationError(f"port {port!r} must be an integer from 1 to 65535")
    name = _name(args)
    with instance_lock(name, "migration_start"):
        return driver(args).migration_start(name, str(args.get("address") or ""), port,
                                            live=bool(args.get("live", True)),
                                            bandwidth=_positive(args, "bandwidth"),
                                            downtime=_positive(args, "downtime"))


@verb("migration_status")
def migration_status(args: Dict[str, Any]) -> Dict[str, Any]:
    return driver(args).migration_status(_name(args))


@verb("migration_abort")
def migration_abort(args: Dict[str, Any]) -> Dict[str, Any]:
    name = _name(args)
    with instance_lock(name, "migration_abort"):
        return driver(args).migration_abort(name, _role(args), resume_completed=bool(args.get("resume_completed")))


@verb("migration_finalize")
def migration_finalize(args: Dict[str, Any]) -> Dict[str, Any]:
    name = _name(args)
    with instance_lock(name, "migration_finalize"):
        return driver(args).migration_finalize(name, _role(args), bool(args.get("success")))
