"""Migration verbs of the node agent (ganeti.md §4b), in the order the master calls them.

1. source  migration_info      {"hypervisor", "name"} -> {"runtime": {...}}
2. target  migration_accept    {"hypervisor", "runtime", "address": target secondary IP, "port": int|null}
                               -> {"pid", "address", "port" (the one QEMU listens on), "taps", "warnings"}
3. source  migration_start     {"hypervisor", "name", "address", "port", "live": true,
                                "bandwidth": MiB/s, "downtime": ms} -> {"status"}
4. source  migration_status    {"hypervisor", "name"} -> {"status": setup|active|completed|failed|cancelled|...,
                                "transferred", "total", "remaining" (bytes), "error", "qemu_status"}
5. both    migration_finalize  {"hypervisor", "name", "role": "source"|"target", "success": bool}
   abort:  migration_abort     {"hypervisor", "name", "role"}: source cancels, target is killed and cleaned.

Rollback order (as Ganeti's _AbortMigration): abort(source), finalize(target, false),
finalize(source, false) (resumes a paused source).
"""

from typing import Any, Dict

from .. import names
from ..errors import ValidationError
from .instance import driver
from .verbs import verb


def _name(args: Dict[str, Any]) -> str:
    return names.check_instance_name(args.get("name"))


def _role(args: Dict[str, Any]) -> str:
    role = args.get("role")
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
    return driver(args).migration_accept(args.get("runtime") or {}, str(args.get("address") or ""), port)


@verb("migration_start")
def migration_start(args: Dict[str, Any]) -> Dict[str, Any]:
    port = args.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValidationError(f"port {port!r} must be an integer from 1 to 65535")
    return driver(args).migration_start(_name(args), str(args.get("address") or ""), port,
                                        live=bool(args.get("live", True)),
                                        bandwidth=_positive(args, "bandwidth"), downtime=_positive(args, "downtime"))


@verb("migration_status")
def migration_status(args: Dict[str, Any]) -> Dict[str, Any]:
    return driver(args).migration_status(_name(args))


@verb("migration_abort")
def migration_abort(args: Dict[str, Any]) -> Dict[str, Any]:
    return driver(args).migration_abort(_name(args), _role(args))


@verb("migration_finalize")
def migration_finalize(args: Dict[str, Any]) -> Dict[str, Any]:
    return driver(args).migration_finalize(_name(args), _role(args), bool(args.get("success")))
