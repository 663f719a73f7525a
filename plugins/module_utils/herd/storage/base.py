"""Node-side disk storage: the interface every disk template implements, the
request it takes, the command runner, and the template registry.

Runs on nodes (standard library only). The master sends, per disk, what
``ops/nodecalls.disk_args`` builds::

    {"template": "plain", "instance": "web1.example.org", "index": 0,
     "disk": {"uuid": "…", "size": 10240, "name": null, "vg": "gnt", "format": "raw",
              "logical_id": {...}},           # what an earlier create returned, kept by the master
     "node": "node1.example.org",             # the node this call runs on
     "storage": {"vg": "gnt", "file_storage_dir": "/srv/herd/file-storage",
                 "shared_file_storage_dir": "/srv/herd-shared/file-storage",
                 "lvm_driverloaded": true},   # optional override of the node setting
     "drbd": {...}}                           # drbd only, see storage/drbd.py

``DiskRequest.from_args`` validates every value that can reach a command line
or a path before anything is touched. Names stored in ``logical_id`` win over
names computed from uuid and index, so a disk keeps its volume when disks
before it are removed.
"""

import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from .. import names
from ..errors import HerdError, ValidationError

TEMPLATES = ("diskless", "file", "sharedfile", "plain", "drbd")
DISK_FORMATS = ("raw", "qcow2")
MAX_DISK_MIB = 64 * 1024 * 1024  # 64 TiB


class StorageError(HerdError):
    """A storage operation failed; the message is for the operator as it stands."""


@dataclass
class CommandResult:
    argv: List[str]
    rc: int
    stdout: str
    stderr: str


class Runner:
    """Runs argument lists. Tests replace it with a recorder (``tests/unit/storage_fakes.py``).

    Every captured stdout/stderr goes through ``redact_text`` before anyone sees it: drbdadm
    prints the drbdsetup command line it ran, shared secret included, when that command fails,
    and that text would otherwise reach error messages, the job journal and Ansible output."""

    def __init__(self, env: Optional[Dict[str, str]] = None):
        self.env = dict(env or {})
        self.secrets: set = set()

    def register_secret(self, secret: str) -> None:
        """A value to hide wherever it appears in captured output (besides the known patterns)."""
        if secret:
            self.secrets.add(secret)

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 600,
            input_text: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> CommandResult:
        full_env = dict(os.environ)
        full_env.update(self.env)
        full_env.update(env or {})
        full_env.setdefault("LC_ALL", "C")
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  input=input_text, env=full_env, check=False)
        except FileNotFoundError:
            raise StorageError(f"{argv[0]} is not installed on this node") from None
        except subprocess.TimeoutExpired:
            raise StorageError(f"{' '.join(argv)} did not finish within {timeout:g} s") from None
        result = CommandResult(list(argv), proc.returncode, redact_text(proc.stdout, self.secrets),
                               redact_text(proc.stderr, self.secrets))
        if check and proc.returncode != 0:
            raise command_error(result)
        return result


def command_error(result: CommandResult, what: str = "") -> StorageError:
    detail = (result.stderr.strip() or result.stdout.strip() or "no output")[-2000:]
    prefix = f"{what}: " if what else ""
    return StorageError(f"{prefix}{' '.join(redact(result.argv))} failed (exit {result.rc}): {detail}")


REDACTED = "***"
# secrets as the tools print them: drbdsetup options (--shared-secret=X, --shared-secret X),
# drbd.conf syntax (shared-secret "X";) as drbdadm dump/drbdsetup show print it
_SECRET_PATTERNS = (
    re.compile(r"(--shared-secret[= ])(\"[^\"]*\"|'[^']*'|[^\s'\"]+)"),
    re.compile(r"(\bshared-secret\s+)(\"[^\"]*\"|[^\s;]+)"),
)


def redact_text(text: Optional[str], secrets: Iterable[str] = ()) -> str:
    """``text`` with every DRBD shared secret (and every value in ``secrets``) replaced by ***."""
    if not text:
        return text or ""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redact(argv: Sequence[str]) -> List[str]:
    """Hide a DRBD shared secret in messages that quote a command line."""
    out: List[str] = []
    for arg in argv:
        out.append(REDACTED if out and out[-1] == "--shared-secret" else redact_text(arg))
    return out


@dataclass
class NodeSettings:
    """Node-local storage settings (``/etc/herd/node.json``, written by the roles)."""

    # False on machines without device-mapper: LVM works on metadata only
    # (``--driverloaded n``) and no /dev/VG/LV device appears. Real hardware: True.
    lvm_driverloaded: bool = True
    # where DRBD resource files live (0700 directory, files 0600: they hold the secret)
    drbd_config_dir: str = "/etc/herd/drbd"
    # drbdadm to use; empty: /lib/drbd/drbdadm-84 when present (our configs are 8.4 syntax), else drbdadm
    drbdadm: str = ""
    proc_drbd: str = "/proc/drbd"
    # the node_drbd role's tuning (``drbd_tuning`` in node.json): max_buffers, max_epoch_size,
    # disk_barrier, disk_flushes, md_flushes; storage/drbd.py writes it into every resource file
    drbd_tuning: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]], override: Optional[Dict[str, Any]] = None
                  ) -> "NodeSettings":
        merged = dict(data or {})
        merged.update({k: v for k, v in (override or {}).items() if v is not None})
        settings = cls()
        if "lvm_driverloaded" in merged:
            value = merged["lvm_driverloaded"]
            if not isinstance(value, bool):
                raise ValidationError(f"lvm_driverloaded {value!r} must be true or false")
            settings.lvm_driverloaded = value
        for key in ("drbd_config_dir", "drbdadm", "proc_drbd"):
            if merged.get(key):
                setattr(settings, key, names.check_abs_path(merged[key], key))
        if merged.get("drbd_tuning") is not None:
            from .drbd import check_tuning  # drbd imports this module
            settings.drbd_tuning = check_tuning(merged["drbd_tuning"])
        return settings


@dataclass
class StorageContext:
    vg: Optional[str] = None
    file_storage_dir: Optional[str] = None
    shared_file_storage_dir: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Any) -> "StorageContext":
        data = data or {}
        if not isinstance(data, dict):
            raise ValidationError(f"storage must be a mapping, got {type(data).__name__}")
        return cls(
            vg=names.check_vg(data["vg"]) if data.get("vg") else None,
            file_storage_dir=_dir(data.get("file_storage_dir"), "file_storage_dir"),
            shared_file_storage_dir=_dir(data.get("shared_file_storage_dir"), "shared_file_storage_dir"))


def _dir(value: Any, what: str) -> Optional[str]:
    if not value:
        return None
    path = names.check_abs_path(value, what).rstrip("/")
    if not path:
        raise ValidationError(f"{what} may not be /")
    return path


def check_size(value: Any, what: str = "disk size") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DISK_MIB:
        raise ValidationError(f"{what} {value!r} must be a whole number of MiB from 1 to {MAX_DISK_MIB}")
    return value


@dataclass
class DiskRequest:
    template: str
    instance: str
    index: int
    uuid: str
    size: int  # MiB
    storage: StorageContext
    node: Optional[str] = None
    name: Optional[str] = None
    vg: Optional[str] = None
    format: str = "raw"
    logical_id: Dict[str, Any] = field(default_factory=dict)
    drbd: Optional[Dict[str, Any]] = None  # validated by storage/drbd.py

    @classmethod
    def from_args(cls, args: Any) -> "DiskRequest":
        if not isinstance(args, dict):
            raise ValidationError(f"disk request must be a mapping, got {type(args).__name__}")
        template = args.get("template")
        if template not in TEMPLATES:
            raise ValidationError(f"disk template {template!r} is not one of {list(TEMPLATES)}")
        index = args.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64:
            raise ValidationError(f"disk index {index!r} must be an integer from 0 to 63")
        disk = args.get("disk")
        if not isinstance(disk, dict):
            raise ValidationError("disk must be a mapping with uuid and size")
        fmt = disk.get("format") or (disk.get("logical_id") or {}).get("format") or "raw"
        if fmt not in DISK_FORMATS:
            raise ValidationError(f"disk format {fmt!r} is not one of {list(DISK_FORMATS)}")
        if fmt != "raw" and template not in ("file", "sharedfile"):
            raise ValidationError(f"disk format {fmt} is only for file and sharedfile disks, not {template}")
        logical_id = disk.get("logical_id") or {}
        if not isinstance(logical_id, dict):
            raise ValidationError("disk logical_id must be a mapping")
        storage = StorageContext.from_dict(args.get("storage"))
        vg = names.check_vg(disk["vg"]) if disk.get("vg") else storage.vg
        return cls(
            template=template,
            instance=names.check_instance_name(args.get("instance")),
            index=index,
            uuid=names.check_uuid(disk.get("uuid")),
            size=check_size(disk.get("size")),
            storage=storage,
            node=names.check_hostname(args["node"]) if args.get("node") else None,
            name=names.check_simple(disk["name"], "disk name") if disk.get("name") else None,
            vg=vg,
            format=fmt,
            logical_id=dict(logical_id),
            drbd=args.get("drbd"),
        )

    def need_vg(self) -> str:
        if not self.vg:
            raise ValidationError(f"disk {self.index} of {self.instance}: no volume group (disk vg or cluster vg)")
        return self.vg


class Template:
    """One disk template on one node. Every method is idempotent."""

    name = ""

    def __init__(self, runner: Runner, settings: NodeSettings):
        self.runner = runner
        self.settings = settings

    def create(self, req: DiskRequest) -> Dict[str, Any]:
        """Create the disk. -> {"changed", "path", "logical_id": {...identifiers to keep}}"""
        raise NotImplementedError

    def remove(self, req: DiskRequest) -> Dict[str, Any]:
        """Remove the disk; a missing disk is not an error. -> {"changed", "removed": [...]}"""
        raise NotImplementedError

    def grow(self, req: DiskRequest, new_size: int) -> Dict[str, Any]:
        """Grow to ``new_size`` MiB; never shrink. -> {"changed", "old_size", "size"}"""
        raise NotImplementedError

    def assemble(self, req: DiskRequest) -> Dict[str, Any]:
        """Make the disk usable by the hypervisor. -> {"path", "format", "changed", ...}"""
        raise NotImplementedError

    def info(self, req: DiskRequest) -> Dict[str, Any]:
        """-> {"exists", "path", "size" (MiB or null), ...}"""
        raise NotImplementedError

    def exists(self, req: DiskRequest) -> bool:
        return bool(self.info(req)["exists"])

    def list(self, ctx: StorageContext) -> List[Dict[str, Any]]:
        """Every herd volume or file of this template on the node (for orphan detection)."""
        return []


def check_grow(req: DiskRequest, current: int, new_size: int) -> bool:
    """True when growing is needed; raises when ``new_size`` would shrink the disk."""
    check_size(new_size, "new disk size")
    if new_size < current:
        raise StorageError(f"disk {req.index} of {req.instance} is {current} MiB, requested {new_size} MiB: "
                           "disks never shrink")
    return new_size > current


REGISTRY: Dict[str, Callable[[Runner, NodeSettings], Template]] = {}


def register(cls: Any) -> Any:
    REGISTRY[cls.name] = cls
    return cls


def get(template: str, runner: Optional[Runner] = None, settings: Optional[NodeSettings] = None) -> Template:
    # import here so each template module registers itself
    from . import diskless, drbd, filestore, lvm  # noqa: F401

    if template not in REGISTRY:
        raise ValidationError(f"disk template {template!r} is not one of {sorted(REGISTRY)}")
    return REGISTRY[template](runner or Runner(), settings or NodeSettings())
