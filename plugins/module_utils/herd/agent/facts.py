"""node_facts: what the master needs to know about a node (stdlib only)."""

import fcntl
import json
import os
import platform
import re
import shutil
import socket
import subprocess
from typing import Any, Dict, List, Optional

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


def qemu_version() -> Optional[str]:
    binary = shutil.which("qemu-system-x86_64")
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else None


def bridges() -> List[str]:
    base = "/sys/class/net"
    try:
        return sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n, "bridge")))
    except OSError:
        return []


def addresses() -> List[str]:
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
        data = json.loads(out or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return sorted(a["local"] for link in data for a in link.get("addr_info", []) if "local" in a)


def volume_group(vg: str) -> Dict[str, Any]:
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    try:
        proc = subprocess.run(["vgs", "--noheadings", "--units", "m", "--nosuffix", "-o", "vg_size,vg_free", vg],
                              capture_output=True, text=True, timeout=30, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"name": vg, "present": False, "error": str(exc)}
    if proc.returncode != 0:
        return {"name": vg, "present": False, "error": proc.stderr.strip()[-300:]}
    size, free = (float(x) for x in proc.stdout.split())
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
        "addresses": addresses(),
        "settings": node_settings(),
    }
    if not args.get("cpu_flags"):
        facts["cpu"].pop("flags")
    if args.get("vg"):
        facts["volume_group"] = volume_group(check_vg(args["vg"]))
    if args.get("drbd"):
        facts["drbd"] = drbd_module()
    facts["file_storage"] = [directory_space(check_abs_path(p, "file storage directory"))
                             for p in args.get("file_dirs", [])]
    return facts
