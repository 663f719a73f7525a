"""node_facts: what the master needs to know about a node (stdlib only)."""

import fcntl
import json
import os
import platform
import re
import shutil
import socket
import subprocess
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import node_state_dir, read_json, write_json_atomic
from ..errors import ConfigError
from ..names import check_abs_path, check_vg
from ..version import VERSION
from .verbs import verb

NODE_SETTINGS = "/etc/herd/node.json"
KVM_GET_API_VERSION = 0xAE00


def node_settings() -> Dict[str, Any]:
    """Node-local settings written by the roles (e.g. lvm_driverloaded, kvm_usable)."""
    try:
        with open(NODE_SETTINGS, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def meminfo() -> Dict[str, int]:
    values = {}
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            key, _sep, rest = line.partition(":")
            values[key] = int(rest.split()[0]) // 1024  # kB -> MiB
    return values


def kvm_device_status() -> Dict[str, Any]:
    """Whether /dev/kvm exists and answers KVM_GET_API_VERSION (12). The one place for that
    check: the node_hypervisor role's probe (herd.cluster.hypervisor_facts) builds on it."""
    if not os.path.exists("/dev/kvm"):
        return {"usable": False, "reason": "/dev/kvm does not exist (no hardware virtualisation or kvm module)"}
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as exc:
        return {"usable": False, "reason": f"/dev/kvm cannot be opened: {exc.strerror}"}
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return {"usable": False, "reason": f"/dev/kvm does not answer: {exc.strerror}"}
    finally:
        os.close(fd)
    return {"usable": version == 12, "reason": "" if version == 12 else f"unexpected KVM API version {version}"}


def kvm_status() -> Dict[str, Any]:
    """The device check, overridden by the node_hypervisor role's verdict when it tried a
    guest and found KVM broken (as on nested hosts)."""
    status = kvm_device_status()
    settings = node_settings()
    if status["usable"] and settings.get("kvm_usable") is False:
        return {"usable": False, "reason": settings.get("kvm_reason", "marked unusable by the node_hypervisor role")}
    return status


QEMU_BINARY = "qemu-system-x86_64"
QEMU_VERSION_CACHE = "qemu-version.json"


def _binary_identity(path: str) -> Optional[List[Any]]:
    """What changes whenever the binary does: a package upgrade renames a new file into place
    (device, inode), a rewrite in place changes size, mtime or ctime (ctime cannot be set back)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def parse_cpu_models(help_text: str) -> List[str]:
    """The CPU model names of ``qemu-system-x86_64 -cpu help`` (its "x86 NAME ..." lines)."""
    return sorted({m.group(1) for m in re.finditer(r"^x86\s+(\S+)", help_text, re.M)})


def _ask_qemu_cpu_models(path: str) -> Optional[List[str]]:
    try:
        done = subprocess.run([path, "-cpu", "help"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_cpu_models(done.stdout) if done.returncode == 0 else None


def _ask_qemu_version(path: str) -> Optional[str]:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\S+)", out.splitlines()[0] if out else "")
    return match.group(1) if match else None


def _qemu_answer(binary: str, field: str, kind: type, ask: Callable[[str], Any]) -> Any:
    """What QEMU answers (its version, its CPU models) does not change while the binary does not.
    Starting QEMU to ask costs tens of milliseconds on every node_facts, create check and start,
    so answers are kept in the agent's state directory, keyed by the binary's real path and
    identity; a changed binary is asked again."""
    path = binary if os.sep in binary else shutil.which(binary)
    if not path:
        return None
    path = os.path.realpath(path)
    identity = _binary_identity(path)
    if identity is None:
        return None
    cache_path = os.path.join(node_state_dir(), QEMU_VERSION_CACHE)
    try:
        cache = read_json(cache_path, "QEMU answers cache")
    except (ConfigError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    entry = cache.get(path)
    entry = entry if isinstance(entry, dict) and entry.get("identity") == identity else {"identity": identity}
    if isinstance(entry.get(field), kind):
        return entry[field]
    value = ask(path)
    if value is None:
        return None
    # the binary may have changed while it answered: only an identity that held throughout is kept
    # the state directory is the node's (made by node_base): none means no cache, never a new one
    if _binary_identity(path) == identity and os.path.isdir(node_state_dir()):
        # entries of binaries gone or changed are dropped, so the file never grows
        kept = {p: e for p, e in cache.items() if isinstance(e, dict) and e.get("identity") == _binary_identity(p)}
        kept[path] = {**entry, field: value}
        try:
            write_json_atomic(cache_path, kept, 0o644)
        except OSError:
            pass  # a read-only state directory only costs the next call another question
    return value


def qemu_cpu_models(binary: str = QEMU_BINARY) -> Optional[List[str]]:
    """The CPU models this node's QEMU knows (``-cpu help``); None when QEMU cannot be asked."""
    models = _qemu_answer(binary, "cpu_models", list, _ask_qemu_cpu_models)
    return [str(m) for m in models] if models is not None else None


def qemu_version(binary: str = QEMU_BINARY) -> Optional[str]:
    """QEMU's version ("7.2.19")."""
    version = _qemu_answer(binary, "version", str, _ask_qemu_version)
    return str(version) if version is not None else None


class _Started:
    """A command started now and read later, so that node_facts' commands run side by side."""

    def __init__(self, argv: List[str], timeout: float, env: Optional[Dict[str, str]] = None):
        self.timeout = timeout
        self.error: Optional[OSError] = None
        self.proc: Optional["subprocess.Popen[str]"] = None
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        except OSError as exc:
            self.error = exc

    def result(self) -> Tuple[int, str, str]:
        """(returncode, stdout, stderr); OSError if it could not start, TimeoutExpired (the
        command killed) if it ran too long."""
        if self.proc is None:
            raise self.error or OSError("not started")
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode, out, err

    def close(self) -> None:
        """Kill it if it still runs (node_facts failed before reading it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def bridges() -> List[str]:
    base = "/sys/class/net"
    try:
        return sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n, "bridge")))
    except OSError:
        return []


def _addresses_command() -> _Started:
    return _Started(["ip", "-j", "-4", "addr", "show"], 10)


def addresses(started: Optional[_Started] = None) -> List[str]:
    try:
        _rc, out, _err = (started or _addresses_command()).result()
        data = json.loads(out or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return sorted(a["local"] for link in data for a in link.get("addr_info", []) if "local" in a)


def _volume_group_command(vg: str) -> _Started:
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    return _Started(["vgs", "--noheadings", "--units", "m", "--nosuffix", "-o", "vg_size,vg_free", vg], 30, env)


def volume_group(vg: str, started: Optional[_Started] = None) -> Dict[str, Any]:
    try:
        returncode, out, err = (started or _volume_group_command(vg)).result()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"name": vg, "present": False, "error": str(exc)}
    if returncode != 0:
        return {"name": vg, "present": False, "error": err.strip()[-300:]}
    size, free = (float(x) for x in out.split())
    return {"name": vg, "present": True, "size": int(size), "free": int(free)}


def directory_space(path: str) -> Dict[str, Any]:
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    stat = os.statvfs(probe)
    return {"path": path, "exists": os.path.isdir(path),
            "total": stat.f_blocks * stat.f_frsize // 2**20, "free": stat.f_bavail * stat.f_frsize // 2**20}


def cpu_info() -> Dict[str, Any]:
    """The first CPU's vendor, model name and (sorted) flags from /proc/cpuinfo."""
    vendor, model, flags = "", "", []  # type: str, str, List[str]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _sep, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = sorted(set(value.split()))
    except OSError:
        pass
    return {"vendor": vendor, "model": model, "flags": flags}


def drbd_module() -> Dict[str, Any]:
    """Whether the drbd kernel module is loaded (its /proc file, where node.json may point
    elsewhere), and whether the node_drbd role was told to allow it missing."""
    settings = node_settings()
    path = settings.get("proc_drbd") or "/proc/drbd"
    return {"loaded": os.path.exists(path),
            "missing_allowed": bool(settings.get("drbd_module_missing_allowed"))}


@verb("node_facts")
def node_facts(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"vg": "gnt" (optional), "drbd": true (optional),
    "file_dirs": ["/srv/herd/file-storage", ...]}"""
    vg = check_vg(args["vg"]) if args.get("vg") else None
    file_dirs = [check_abs_path(p, "file storage directory") for p in args.get("file_dirs", [])]
    # the commands first, so they run while the rest is read from /proc and /sys
    vgs = _volume_group_command(vg) if vg else None
    ips = _addresses_command()
    try:
        mem = meminfo()
        facts: Dict[str, Any] = {
            "agent_version": VERSION,
            "hostname": socket.gethostname(),
            "kernel": platform.release(),
            "memory_total": mem.get("MemTotal", 0),
            "memory_free": mem.get("MemAvailable", mem.get("MemFree", 0)),
            "cpu_count": os.cpu_count() or 1,
            "cpu": cpu_info(),
            "qemu_version": qemu_version(),
            "kvm": kvm_status(),
            "bridges": bridges(),
            "addresses": addresses(ips),
            "settings": node_settings(),
        }
        if not args.get("cpu_flags"):
            facts["cpu"].pop("flags")
        if vg and vgs:
            facts["volume_group"] = volume_group(vg, vgs)
        if args.get("drbd"):
            facts["drbd"] = drbd_module()
        facts["file_storage"] = [directory_space(p) for p in file_dirs]
        return facts
    finally:
        for started in (vgs, ips):
            if started is not None:
                started.close()
