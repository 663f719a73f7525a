"""The fake hypervisor: state files only, no processes (Ganeti's fake hypervisor, for scale tests).

One JSON file per instance under ``/var/lib/herd/fake/`` (``$HERD_STATE_DIR/fake``)::

    {"spec": {...}, "status": "running" | "incoming" | "postmigrate",
     "started": 1700000000.0, "migration": {...} | null}

The file exists while the instance "runs" on this node; stop removes it.
Migration is simulated: accept writes the target's file as ``incoming``,
start records the migration on the source, status reports it ``completed``
once ``HERD_FAKE_MIGRATION_SECONDS`` (default 0) have passed, finalize
removes the source file and marks the target ``running``.
"""

import json
import os
import time
from typing import Any, Dict, List, Optional

from .. import names
from ..errors import ValidationError
from .base import Hypervisor, HypervisorError, InstanceSpec, state_dir


def fake_dir() -> str:
    return os.path.join(state_dir(), "fake")


def _path(name: str) -> str:
    return os.path.join(fake_dir(), names.check_instance_name(name) + ".json")


def _read(name: str) -> Optional[Dict[str, Any]]:
    try:
        with open(_path(name), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"status": "error", "detail": f"unreadable state file: {exc}", "spec": {}}
    return data if isinstance(data, dict) else {"status": "error", "detail": "state file is not an object",
                                                "spec": {}}


def _write(name: str, data: Dict[str, Any]) -> None:
    os.makedirs(fake_dir(), mode=0o750, exist_ok=True)
    path = _path(name)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(path + ".tmp", path)


def _remove(name: str) -> bool:
    try:
        os.unlink(_path(name))
        return True
    except FileNotFoundError:
        return False


def _migration_seconds() -> float:
    try:
        return float(os.environ.get("HERD_FAKE_MIGRATION_SECONDS", "0"))
    except ValueError:
        return 0.0


class Fake(Hypervisor):
    name = "fake"

    def check(self, spec: InstanceSpec) -> List[str]:
        return []

    def start(self, spec: InstanceSpec) -> Dict[str, Any]:
        current = _read(spec.name)
        if current and current.get("status") in ("incoming", "postmigrate"):
            raise HypervisorError(f"fake instance {spec.name} is in a migration here ({current['status']}); "
                                  "finalize or abort it first")
        if current and current.get("status") == "running":
            return {"name": spec.name, "changed": False, "status": "running", "pid": None,
                    "runtime_differs": current.get("spec") != spec.to_dict()}
        _write(spec.name, {"spec": spec.to_dict(), "status": "running", "started": time.time(), "migration": None})
        return {"name": spec.name, "changed": True, "status": "running", "pid": None}

    def stop(self, name: str, timeout: float = 120, force: bool = False) -> Dict[str, Any]:
        current = _read(name)
        removed = _remove(name)
        was_running = bool(current and current.get("status") == "running")
        return {"name": name, "changed": removed, "was_running": was_running,
                "method": "acpi" if was_running else None, "cleaned": []}

    def reboot(self, name: str, spec: Optional[InstanceSpec] = None, timeout: float = 120,
               kind: str = "hard") -> Dict[str, Any]:
        if kind not in ("hard", "reset"):
            raise ValidationError(f"reboot type {kind!r} is not one of ['hard', 'reset']")
        current = _read(name)
        if spec is None:
            if not current or not current.get("spec"):
                raise HypervisorError(f"fake instance {name} is not running here; give the spec to start it")
            spec = InstanceSpec.from_dict(current["spec"])
        _write(name, {"spec": spec.to_dict(), "status": "running", "started": time.time(), "migration": None})
        return {"name": name, "changed": True, "kind": kind}

    def status(self, name: str) -> Dict[str, Any]:
        current = _read(name)
        if current is None:
            return {"name": name, "status": "stopped", "pid": None, "qemu_status": None}
        state = current.get("status")
        if state in ("running", "incoming", "postmigrate"):
            result = {"name": name, "status": {"incoming": "incoming", "postmigrate": "migrated"}.get(state, state),
                      "pid": None, "qemu_status": {"incoming": "inmigrate"}.get(state, state)}
            if state == "incoming":
                result["detail"] = "waiting for an incoming migration"
            elif state == "postmigrate":
                result["detail"] = "the guest migrated away; waiting for migration_finalize"
            return result
        return {"name": name, "status": "error", "pid": None, "qemu_status": None,
                "detail": current.get("detail") or f"state {state!r}"}

    def list_instances(self) -> Dict[str, Dict[str, Any]]:
        result = {}
        try:
            entries = sorted(os.listdir(fake_dir()))
        except OSError:
            return {}
        for entry in entries:
            if not entry.endswith(".json"):
                continue
            name = entry[:-len(".json")]
            try:
                names.check_instance_name(name)
            except ValidationError:
                continue
            info = self.status(name)
            spec = (_read(name) or {}).get("spec") or {}
            info.update({"memory": spec.get("memory", 0), "vcpus": spec.get("vcpus", 0), "hypervisor": "fake"})
            result[name] = info
        return result

    def info(self, name: str) -> Dict[str, Any]:
        result = self.status(name)
        result["runtime"] = _read(name)
        return result

    def cleanup(self, name: str) -> Dict[str, Any]:
        current = _read(name)
        if current and current.get("status") == "running":
            raise HypervisorError(f"fake instance {name} is running; stop it instead")
        removed = _remove(name)
        return {"name": name, "changed": removed, "cleaned": [_path(name)] if removed else []}

    def disk_grown(self, name: str, index: int, size: int) -> Dict[str, Any]:
        """Records the new size under "grown" in the state file, as block_resize would tell the guest."""
        current = self._running(name)
        current.setdefault("grown", {})[str(index)] = size
        _write(name, current)
        return {"name": name, "changed": True, "index": index, "size": size}

    # --- migration ---------------------------------------------------------------

    def _running(self, name: str) -> Dict[str, Any]:
        current = _read(name)
        if not current or current.get("status") not in ("running", "postmigrate"):
            raise HypervisorError(f"fake instance {name} is not running on this node")
        return current

    def migration_info(self, name: str) -> Dict[str, Any]:
        current = self._running(name)
        return {"name": name, "runtime": {"spec": current["spec"], "hypervisor": "fake"}}

    def migration_accept(self, runtime: Dict[str, Any], address: str, port: Optional[int]) -> Dict[str, Any]:
        if not isinstance(runtime, dict) or not isinstance(runtime.get("spec"), dict):
            raise ValidationError("migration_accept needs the source's runtime (migration_info) with its spec")
        spec = InstanceSpec.from_dict(runtime["spec"])
        current = _read(spec.name)
        if current and current.get("status") in ("running", "incoming"):
            raise HypervisorError(f"fake instance {spec.name} already runs on this node; refusing to accept "
                                  "a migration")
        port = int(port) if port else 8102
        _write(spec.name, {"spec": spec.to_dict(), "status": "incoming", "started": time.time(),
                           "migration": {"address": address, "port": port}})
        return {"name": spec.name, "changed": True, "pid": None, "address": address, "port": port,
                "taps": [], "warnings": []}

    def migration_start(self, name: str, address: str, port: int, live: bool = True,
                        bandwidth: Optional[int] = None, downtime: Optional[int] = None) -> Dict[str, Any]:
        current = self._running(name)
        migration = current.get("migration") or {}
        if migration.get("status") == "active":
            raise HypervisorError(f"a migration of {name} is already in progress (active)")
        hv = current["spec"].get("hvparams") or {}
        current["migration"] = {"status": "active", "started": time.time(), "address": address, "port": int(port),
                                "live": live, "bandwidth": bandwidth or hv.get("migration_bandwidth", 32),
                                "downtime": downtime or hv.get("migration_downtime", 30)}
        _write(name, current)
        return {"name": name, "changed": True, "status": "active", "live": live,
                "bandwidth": current["migration"]["bandwidth"], "downtime": current["migration"]["downtime"]}

    def migration_status(self, name: str) -> Dict[str, Any]:
        current = _read(name)
        if not current:
            return {"name": name, "status": "failed", "error": f"fake instance {name} is not here",
                    "process": False}
        migration = current.get("migration") or {}
        status = migration.get("status", "none")
        total = int(current["spec"].get("memory", 0)) * 2**20
        if status == "active" and time.time() - migration.get("started", 0) >= _migration_seconds():
            status = migration["status"] = "completed"
            current["status"] = "postmigrate"
            _write(name, current)
        done = total if status == "completed" else total // 2 if status == "active" else 0
        return {"name": name, "status": status, "process": True, "qemu_status": current.get("status"),
                "transferred": done, "total": total, "remaining": total - done, "total_time_ms": None,
                "downtime_ms": None, "expected_downtime_ms": None, "dirty_sync_count": None, "error": None}

    def migration_abort(self, name: str, role: str, resume_completed: bool = False) -> Dict[str, Any]:
        if role == "target":
            removed = _remove(name)
            return {"name": name, "role": role, "changed": removed, "killed": removed}
        if role != "source":
            raise ValidationError(f"role {role!r} is not one of ['source', 'target']")
        current = self._running(name)
        migration = current.get("migration") or {}
        before = migration.get("status")
        if before == "active":
            migration["status"] = "cancelled"
        resumed = current.get("status") == "postmigrate" and (migration.get("status") != "completed"
                                                              or resume_completed)
        if resumed:
            current["status"] = "running"
        if before == "active" or resumed:
            current["migration"] = migration
            _write(name, current)
        return {"name": name, "role": role, "changed": before == "active" or resumed,
                "status": migration.get("status", "none"), "resumed": resumed, "qemu_status": current.get("status")}

    def migration_finalize(self, name: str, role: str, success: bool) -> Dict[str, Any]:
        current = _read(name)
        if role == "target":
            if not success:
                return self.migration_abort(name, "target")
            if not current or current.get("status") not in ("incoming", "running"):
                raise HypervisorError(f"migrated fake instance {name} is not here")
            current.update({"status": "running", "migration": None})
            _write(name, current)
            return {"name": name, "role": role, "changed": True, "pid": None, "qemu_status": "running"}
        if role != "source":
            raise ValidationError(f"role {role!r} is not one of ['source', 'target']")
        if success:
            if current and (current.get("migration") or {}).get("status") not in ("completed", None) \
                    and current.get("status") != "postmigrate":
                raise HypervisorError(f"refusing to remove {name}: its migration is "
                                      f"{current['migration'].get('status')}")
            removed = _remove(name)
            return {"name": name, "role": role, "changed": removed, "killed": removed}
        if not current:
            return {"name": name, "role": role, "changed": False, "resumed": False, "status": "error",
                    "detail": "the source instance is gone too", "cleaned": []}
        resumed = current.get("status") != "running"
        current.update({"status": "running", "migration": None})
        _write(name, current)
        return {"name": name, "role": role, "changed": resumed, "resumed": resumed, "qemu_status": "running"}
