"""The node-side hypervisor interface, the instance spec it takes, and the registry.

Runs on nodes (standard library only). The master sends an instance spec to
the agent; ``InstanceSpec.from_dict`` validates every value that can reach a
command line or a path before anything is touched.

Spec (what the master sends, a JSON object)::

    {"name": "web1.example.org", "uuid": "…", "memory": 512, "vcpus": 2,
     "hvparams": {"accel": "kvm", "machine_type": "pc", ...},   # effective values
     "network_port": 11000,                                      # VNC port, or null
     "disks": [{"path": "/srv/herd/file-storage/web1/disk0", "format": "raw"}],
     "nics": [{"mac": "aa:00:00:12:34:56", "link": "br0", "vlan": null}],
     "cdrom": "/srv/herd/file-storage/web1/seed.iso",           # optional
     "uefi_vars": "/srv/herd/file-storage/web1/OVMF_VARS.fd"}   # needed for firmware uefi

Missing hvparams take ``config.DEFAULT_HVPARAMS``.
"""

import contextlib
import copy
import errno
import fcntl
import ipaddress
import os
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from .. import names
from ..config import DEFAULT_HVPARAMS, node_state_dir, write_bytes_atomic
from ..errors import HerdError, ValidationError

CHOICES = {
    "machine_type": ("pc", "q35"),
    "firmware": ("bios", "uefi"),
    "accel": ("kvm", "tcg"),
    "disk_cache": ("none", "writeback", "writethrough", "directsync", "unsafe", "default"),
    "disk_aio": ("threads", "native", "io_uring"),
    "security_model": ("none", "user", "pool"),
    "boot_order": ("disk", "cdrom", "network"),
    "disk_discard": ("ignore", "unmap"),
    # paravirtual: virtio-blk; scsi-hd: SCSI disks on one virtio-scsi controller
    "disk_type": ("paravirtual", "scsi-hd"),
}
# Options of kvm_extra that would override what herd sets up and relies on: identity, files it
# finds the process by, confinement, the machine, monitors, consoles, boot, migration.
KVM_EXTRA_REFUSED = frozenset((
    "name", "uuid", "pidfile", "runas", "run-with", "sandbox", "chroot", "daemonize", "qmp", "qmp-pretty",
    "monitor", "mon", "serial", "vnc", "display", "nographic", "vga", "nodefaults", "no-user-config",
    "readconfig", "writeconfig", "machine", "M", "accel", "enable-kvm", "m", "smp", "boot", "kernel", "initrd",
    "append", "incoming", "S", "loadvm", "bios", "cpu"))
# Object ids herd's own command line uses (hypervisor/kvm.py build_command)
_HERD_IDS = re.compile(r"(disk|virtio-disk|scsi-disk|cdrom|ide-cd|net|virtio-net|serial|compat_monitor)\d+|"
                       r"balloon0|scsi0|herd-.*")
DISK_FORMATS = ("raw", "qcow2")
# -cpu takes a model and optional ",+flag,-flag,prop=value"
_CPU_TYPE = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.+=-]+)*")
# a resolved machine type such as pc-i440fx-7.2 or pc-q35-7.2
_MACHINE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
VNC_BASE_PORT = 5900
MAX_NICS = 8
# NIC modes a node can set up: taps on a Linux bridge, or ports of an Open vSwitch bridge
# (the NIC's vlan is the port's tag). Ganeti's routed mode is not implemented.
NIC_MODES = ("bridged", "openvswitch")
MAX_DISKS = 16


class HypervisorError(HerdError):
    """A hypervisor operation failed; the message is for the operator as it stands."""


def _int(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(f"{what} {value!r} must be an integer from {low} to {high}")
    return value


@dataclass
class DiskSpec:
    path: str
    format: str = "raw"

    @classmethod
    def from_dict(cls, data: Any, index: int) -> "DiskSpec":
        if isinstance(data, str):
            data = {"path": data}
        if not isinstance(data, dict):
            raise ValidationError(f"disks[{index}] must be a mapping with path, got {data!r}")
        path = names.check_abs_path(data.get("path"), f"disks[{index}] path")
        fmt = data.get("format") or "raw"
        if fmt not in DISK_FORMATS:
            raise ValidationError(f"disks[{index}] format {fmt!r} is not one of {list(DISK_FORMATS)}")
        return cls(path=path, format=fmt)


@dataclass
class NicSpec:
    mac: str
    link: str = "br0"
    vlan: Optional[int] = None
    mode: str = "bridged"

    @classmethod
    def from_dict(cls, data: Any, index: int) -> "NicSpec":
        if not isinstance(data, dict):
            raise ValidationError(f"nics[{index}] must be a mapping with mac and link, got {data!r}")
        mode = data.get("mode") or "bridged"
        if mode not in NIC_MODES:
            raise ValidationError(f"nics[{index}] mode {mode!r} is not supported on nodes; valid: {list(NIC_MODES)}")
        vlan = data.get("vlan")
        if vlan is not None:
            vlan = _int(vlan, f"nics[{index}] vlan", 1, 4094)
        return cls(mac=names.check_mac(data.get("mac")), link=names.check_bridge(data.get("link") or "br0"),
                   vlan=vlan, mode=mode)


@dataclass
class InstanceSpec:
    name: str
    uuid: str
    memory: int  # MiB (beparams maxmem)
    vcpus: int
    hvparams: Dict[str, Any] = field(default_factory=dict)
    network_port: Optional[int] = None
    disks: List[DiskSpec] = field(default_factory=list)
    nics: List[NicSpec] = field(default_factory=list)
    cdrom: Optional[str] = None
    uefi_vars: Optional[str] = None
    # set at start from ``qemu -machine help`` (pc -> pc-i440fx-7.2) and kept in the
    # runtime file, so a migration target builds the very same machine
    machine: Optional[str] = None
    # VNC password (a secret: handed to QEMU in a 0600 file, never on its command line)
    vnc_password: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Any) -> "InstanceSpec":
        if not isinstance(data, dict):
            raise ValidationError(f"instance spec must be a mapping, got {type(data).__name__}")
        name = names.check_instance_name(data.get("name"))
        uuid = names.check_uuid(data.get("uuid"))
        memory = _int(data.get("memory"), "memory (MiB)", 16, 4 * 1024 * 1024)
        vcpus = _int(data.get("vcpus", 1), "vcpus", 1, 255)
        hv = check_hvparams(data.get("hvparams") or {})
        port = data.get("network_port")
        if port is not None:
            port = _int(port, "network_port", VNC_BASE_PORT, 65535)
        raw_disks = data.get("disks") or []
        raw_nics = data.get("nics") or []
        if not isinstance(raw_disks, list) or len(raw_disks) > MAX_DISKS:
            raise ValidationError(f"disks must be a list of at most {MAX_DISKS}")
        if not isinstance(raw_nics, list) or len(raw_nics) > MAX_NICS:
            raise ValidationError(f"nics must be a list of at most {MAX_NICS}")
        disks = [DiskSpec.from_dict(d, i) for i, d in enumerate(raw_disks)]
        nics = [NicSpec.from_dict(n, i) for i, n in enumerate(raw_nics)]
        cdrom = names.check_abs_path(data["cdrom"], "cdrom") if data.get("cdrom") else None
        uefi_vars = names.check_abs_path(data["uefi_vars"], "uefi_vars") if data.get("uefi_vars") else None
        if hv["firmware"] == "uefi" and not uefi_vars:
            raise ValidationError(f"instance {name}: firmware uefi needs uefi_vars, the path of the "
                                  "instance's own OVMF variables file")
        machine = data.get("machine")
        if machine is not None and (not isinstance(machine, str) or not _MACHINE.fullmatch(machine)):
            raise ValidationError(f"machine {machine!r} is not a QEMU machine type name")
        for what, path in [("cdrom", cdrom), ("uefi_vars", uefi_vars)] + [(f"disks[{i}]", d.path)
                                                                          for i, d in enumerate(disks)]:
            if path and "," in path:
                raise ValidationError(f"{what} path {path!r} must not contain ','")
        vnc_password = check_vnc_password(data.get("vnc_password")) if data.get("vnc_password") else None
        return cls(name=name, uuid=uuid, memory=memory, vcpus=vcpus, hvparams=hv, network_port=port,
                   disks=disks, nics=nics, cdrom=cdrom, uefi_vars=uefi_vars, machine=machine,
                   vnc_password=vnc_password)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @property
    def vnc_display(self) -> Optional[int]:
        """The VNC display number, or None when VNC is off for this instance."""
        if self.network_port is None or self.hvparams.get("vnc_bind_address") in ("", "none", None):
            return None
        return self.network_port - VNC_BASE_PORT

    @property
    def vnc_password_applies(self) -> bool:
        """QEMU asks for the password: one is set and VNC listens on a non-local address."""
        return bool(self.vnc_password) and self.vnc_display is not None and \
            vnc_bind_is_remote(self.hvparams.get("vnc_bind_address"))


VNC_PASSWORD_MAX = 8  # VNC authentication (DES) uses the first 8 characters only


def check_vnc_password(value: Any) -> str:
    """A VNC password: 1 to 8 printable ASCII characters. The message never echoes the value."""
    if not isinstance(value, str):
        raise ValidationError(f"vnc_password must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= VNC_PASSWORD_MAX:
        raise ValidationError(f"vnc_password has {len(value)} characters: VNC authentication takes 1 to "
                              f"{VNC_PASSWORD_MAX}")
    if not all(" " < c <= "~" for c in value):
        raise ValidationError("vnc_password must be printable ASCII without spaces (VNC authentication)")
    return value


def vnc_bind_is_remote(address: Any) -> bool:
    """VNC listens on an address other machines can reach (not loopback, not off)."""
    if address in ("", "none", None):
        return False
    try:
        return not ipaddress.ip_address(str(address)).is_loopback
    except ValueError:
        return False


def check_hvparams(params: Any) -> Dict[str, Any]:
    """Effective KVM hvparams: defaults filled in, every value checked."""
    if not isinstance(params, dict):
        raise ValidationError("hvparams must be a mapping")
    out = copy.deepcopy(DEFAULT_HVPARAMS["kvm"])
    out.update({k: v for k, v in params.items() if v is not None})
    for key, choices in CHOICES.items():
        if out.get(key) not in choices:
            raise ValidationError(f"hvparams.{key} {out.get(key)!r} is not one of {list(choices)}")
    if out["disk_aio"] == "native" and out["disk_cache"] not in ("none", "directsync"):
        raise ValidationError("hvparams.disk_aio native needs disk_cache none or directsync (O_DIRECT)")
    cpu = out.get("cpu_type") or ""
    if cpu and (not isinstance(cpu, str) or not _CPU_TYPE.fullmatch(cpu)):
        raise ValidationError(f"hvparams.cpu_type {cpu!r}: expected a CPU model such as qemu64 or host, "
                              "optionally with ,+flag / ,-flag")
    for key in ("kernel_path", "initrd_path"):
        if out.get(key):
            names.check_abs_path(out[key], f"hvparams.{key}")
    if out.get("initrd_path") and not out.get("kernel_path"):
        raise ValidationError("hvparams.initrd_path needs kernel_path")
    args = out.get("kernel_args") or ""
    if not isinstance(args, str) or "\x00" in args or "\n" in args:
        raise ValidationError("hvparams.kernel_args must be one line of text")
    vnc = out.get("vnc_bind_address")
    if vnc not in ("", "none", None):
        try:
            ipaddress.ip_address(str(vnc))
        except ValueError:
            raise ValidationError(f"hvparams.vnc_bind_address {vnc!r} is not an IP address "
                                  "(or 'none' to disable VNC)") from None
    if out["security_model"] == "user":
        from .confine import check_user_name

        check_user_name(out.get("security_domain"))
    out["serial_console"] = bool(out.get("serial_console", True))
    if out.get("cdrom_image_path"):
        path = names.check_abs_path(out["cdrom_image_path"], "hvparams.cdrom_image_path")
        if "," in path:
            raise ValidationError(f"hvparams.cdrom_image_path {path!r} must not contain ','")
    if out["boot_order"] == "cdrom" and not out.get("cdrom_image_path"):
        raise ValidationError("hvparams.boot_order cdrom needs hvparams.cdrom_image_path (the ISO to boot)")
    if not isinstance(out.get("vhost_net"), bool):
        raise ValidationError(f"hvparams.vhost_net {out.get('vhost_net')!r} must be true or false")
    out["kvm_extra"] = kvm_extra_args(out.get("kvm_extra"))
    for key, high in (("migration_bandwidth", 100000), ("migration_downtime", 600000)):
        out[key] = _int(out.get(key), f"hvparams.{key}", 1, high)
    return out


def kvm_extra_args(value: Any) -> List[str]:
    """hvparams.kvm_extra as QEMU arguments: a list of strings, or one string split like a shell
    would split words (quotes only: nothing is ever run by a shell). Options herd manages, and
    objects reusing the ids herd's own devices have, are refused."""
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            args = shlex.split(value)
        except ValueError as exc:
            raise ValidationError(f"hvparams.kvm_extra {value!r}: {exc}") from None
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        args = list(value)
    else:
        raise ValidationError("hvparams.kvm_extra must be a string of QEMU arguments or a list of them")
    for index, arg in enumerate(args):
        if not arg or any(c in arg for c in "\x00\n\r"):
            raise ValidationError(f"hvparams.kvm_extra argument {index} {arg!r} is empty or has a control "
                                  "character")
        if arg.startswith("-") and not arg.startswith("---"):
            option = arg.lstrip("-")
            if option in KVM_EXTRA_REFUSED:
                raise ValidationError(f"hvparams.kvm_extra: {arg} is managed by herd and cannot be given here "
                                      f"(refused: {', '.join('-' + o for o in sorted(KVM_EXTRA_REFUSED))})")
            if index + 1 < len(args) and option in ("device", "drive", "object", "netdev", "chardev", "blockdev"):
                for part in args[index + 1].split(","):
                    key, _sep, val = part.partition("=")
                    if key in ("id", "node-name") and _HERD_IDS.fullmatch(val):
                        raise ValidationError(f"hvparams.kvm_extra: {arg} {args[index + 1]}: id {val!r} is one "
                                              "herd uses for its own devices; choose another")
    return args


class Hypervisor:
    """What every hypervisor driver offers the agent. Names are validated by the caller."""

    name = "base"

    def start(self, spec: InstanceSpec) -> Dict[str, Any]:
        raise NotImplementedError

    def stop(self, name: str, timeout: float = 120, force: bool = False) -> Dict[str, Any]:
        raise NotImplementedError

    def reboot(self, name: str, spec: Optional[InstanceSpec] = None, timeout: float = 120,
               kind: str = "hard") -> Dict[str, Any]:
        raise NotImplementedError

    def status(self, name: str) -> Dict[str, Any]:
        """{"name", "status", "pid", "qemu_status", "detail"?}; status is one of
        running (the guest runs here; paused included), incoming (a migration target
        still receiving it), migrated (a source whose guest moved away, process still
        alive), error (a dead process left files or taps behind), stopped."""
        raise NotImplementedError

    def list_instances(self) -> Dict[str, Dict[str, Any]]:
        """Every instance this node knows of (running or left in error), by name."""
        raise NotImplementedError

    def info(self, name: str) -> Dict[str, Any]:
        raise NotImplementedError

    def cleanup(self, name: str) -> Dict[str, Any]:
        """Remove what a dead instance left behind (pidfile, sockets, taps, runtime)."""
        raise NotImplementedError

    def check(self, spec: InstanceSpec) -> List[str]:
        """Problems that would stop ``spec`` from starting on this node (empty: none)."""
        raise NotImplementedError

    def check_node(self, hvparams: Dict[str, Any]) -> List[str]:
        """Problems of this node that would stop any instance with ``hvparams`` (checked, defaults
        filled) from starting here: asked before an instance's disks are made."""
        return []

    # migration, in the order the master calls them (ganeti.md §4b)
    def migration_info(self, name: str) -> Dict[str, Any]:
        raise NotImplementedError

    def migration_accept(self, runtime: Dict[str, Any], address: str, port: Optional[int]) -> Dict[str, Any]:
        raise NotImplementedError

    def migration_start(self, name: str, address: str, port: int, live: bool = True,
                        bandwidth: Optional[int] = None, downtime: Optional[int] = None) -> Dict[str, Any]:
        raise NotImplementedError

    def migration_status(self, name: str) -> Dict[str, Any]:
        raise NotImplementedError

    def migration_abort(self, name: str, role: str, resume_completed: bool = False) -> Dict[str, Any]:
        raise NotImplementedError

    def migration_finalize(self, name: str, role: str, success: bool) -> Dict[str, Any]:
        raise NotImplementedError

    def disk_grown(self, name: str, index: int, size: int) -> Dict[str, Any]:
        """Tell the running guest that disk ``index`` is now ``size`` MiB."""
        raise NotImplementedError


def run_dir() -> str:
    """Runtime root on the node (/run/herd; HERD_RUN_DIR for tests), read at call time."""
    return os.environ.get("HERD_RUN_DIR", "/run/herd")


def flock_until(fd: int, deadline: float, busy: str) -> None:
    """Take an exclusive flock on ``fd``, polling until ``deadline`` (time.monotonic());
    past it, a HypervisorError with the ``busy`` message."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() > deadline:
                raise HypervisorError(busy) from None
            time.sleep(0.05)


@contextlib.contextmanager
def instance_lock(name: str, what: str, timeout: float = 180) -> Iterator[None]:
    """Serialise the verbs that change one instance on this node (flock on /run/herd/locks/<name>.lock).

    The lock file is removed on release, so nothing stays behind; a waiter that
    locked a file removed meanwhile notices (inode changed) and locks again.
    """
    names.check_instance_name(name)
    directory = os.path.join(run_dir(), "locks")
    os.makedirs(directory, mode=0o750, exist_ok=True)
    path = os.path.join(directory, f"{names.file_stem(name, 200)}.lock")
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            flock_until(fd, deadline, f"{what}: instance {name} is busy with another operation on this "
                                      f"node (lock {path} held for more than {timeout:g} s)")
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)


def state_dir() -> str:
    return node_state_dir()


UEFI_VARS_SUFFIX = "OVMF_VARS.fd"


def default_uefi_vars(instance_uuid: str) -> str:
    """Where an instance's OVMF variables live when the master names no path (node-local).
    Keyed by UUID: a new instance that reuses an old name never inherits its variables."""
    return os.path.join(state_dir(), "uefi", f"{names.check_uuid(instance_uuid)}.{UEFI_VARS_SUFFIX}")


def legacy_uefi_vars(name: str) -> str:
    """The node-local path the variables had when they were keyed by name (removed on purge)."""
    return os.path.join(state_dir(), "uefi", f"{names.check_instance_name(name)}.{UEFI_VARS_SUFFIX}")


def check_uefi_vars_path(path: Any) -> str:
    """An absolute path to an OVMF variables file (nothing else is ever written or removed)."""
    names.check_abs_path(path, "uefi_vars")
    if not os.path.basename(path).endswith(UEFI_VARS_SUFFIX):
        raise ValidationError(f"uefi_vars {path!r}: refusing a file whose name does not end in {UEFI_VARS_SUFFIX}")
    return path


def write_uefi_vars(path: str, data: bytes) -> None:
    """Write the variables file atomically, mode 0600 from its creation (it can hold secrets:
    Secure Boot keys, boot entries with credentials)."""
    check_uefi_vars_path(path)
    write_bytes_atomic(path, data, 0o600)


def ensure_uefi_vars(path: str, template: str) -> bool:
    """The instance's own variables file: copied once from ``template`` (0600), then kept;
    an existing file is left as it is, its mode tightened to 0600. True when created."""
    check_uefi_vars_path(path)
    if os.path.exists(path):
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
        return False
    with open(template, "rb") as handle:
        write_uefi_vars(path, handle.read())
    return True


def registry() -> Dict[str, type]:
    """{"kvm": KVM, "fake": Fake} (imported here: the drivers import this module)."""
    from .fake import Fake
    from .kvm import KVM

    return {"kvm": KVM, "fake": Fake}


def get(name: str) -> Hypervisor:
    """A driver instance for ``name`` (kvm, fake)."""
    drivers = registry()
    if name not in drivers:
        raise ValidationError(f"unknown hypervisor {name!r}; this node knows {sorted(drivers)}")
    return drivers[name]()
