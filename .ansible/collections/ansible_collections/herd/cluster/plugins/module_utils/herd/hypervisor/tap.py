"""Tap devices for instance NICs (standard library only; uses ip and bridge from iproute2).

Tap names are deterministic: "hv" + 8 hex digits of the instance name's
SHA-1 + the NIC index ("hv1a2b3c4d0", at most 15 bytes), so a node can find
an instance's taps without any state, and a migration target uses the same
names as the source.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
from typing import List, Optional

from .. import names
from .base import HypervisorError

SYS_NET = "/sys/class/net"
TAP_PREFIX = "hv"


def tap_name(instance: str, index: int) -> str:
    digest = hashlib.sha1(instance.encode("utf-8")).hexdigest()[:8]
    return f"{TAP_PREFIX}{digest}{index}"


def tap_pattern(instance: str) -> "re.Pattern[str]":
    return re.compile("^" + re.escape(tap_name(instance, 0)[:-1]) + r"\d{1,2}$")


def exists(ifname: str) -> bool:
    return os.path.exists(os.path.join(SYS_NET, ifname))


def is_bridge(ifname: str) -> bool:
    return os.path.isdir(os.path.join(SYS_NET, ifname, "bridge"))


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def vlan_aware(bridge: str) -> bool:
    return _read(os.path.join(SYS_NET, bridge, "bridge", "vlan_filtering")) == "1"


def master_of(ifname: str) -> Optional[str]:
    link = os.path.join(SYS_NET, ifname, "master")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def instance_taps(instance: str) -> List[str]:
    """Taps of ``instance`` that exist on this node."""
    pattern = tap_pattern(instance)
    try:
        return sorted(n for n in os.listdir(SYS_NET) if pattern.match(n))
    except OSError:
        return []


def _ip(args: List[str], what: str) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HypervisorError(f"{what}: {' '.join(args)} failed: {exc}") from None
    if proc.returncode != 0:
        raise HypervisorError(f"{what}: {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")


def check_bridge(bridge: str, vlan: Optional[int], what: str) -> Optional[str]:
    """The problem with using ``bridge`` (and ``vlan``) on this node, or None."""
    names.check_bridge(bridge)
    node = socket.gethostname()
    if not exists(bridge):
        return f"{what}: bridge {bridge} does not exist on node {node}"
    if not is_bridge(bridge):
        return f"{what}: {bridge} on node {node} is not a bridge"
    if vlan is not None and not vlan_aware(bridge):
        return (f"{what}: vlan {vlan} needs a VLAN-aware bridge, but {bridge} on node {node} has "
                "vlan_filtering 0")
    return None


def create(tap: str, bridge: str, vlan: Optional[int], what: str) -> None:
    """Create ``tap`` (mode tap, vnet_hdr), attach it to ``bridge`` with the bridge's MTU, up."""
    names.check_ifname(tap, "tap")
    problem = check_bridge(bridge, vlan, what)
    if problem:
        raise HypervisorError(problem)
    if exists(tap):
        remove(tap)
    _ip(["ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"], what)
    try:
        mtu = _read(os.path.join(SYS_NET, bridge, "mtu"))
        if mtu and mtu.isdigit():
            _ip(["ip", "link", "set", "dev", tap, "mtu", mtu], what)
        _ip(["ip", "link", "set", "dev", tap, "master", bridge], what)
        if vlan is not None:
            pvid = _read(os.path.join(SYS_NET, bridge, "bridge", "default_pvid")) or "1"
            if pvid != "0":
                _ip(["bridge", "vlan", "del", "dev", tap, "vid", pvid], what)
            _ip(["bridge", "vlan", "add", "dev", tap, "vid", str(vlan), "pvid", "untagged"], what)
        _ip(["ip", "link", "set", "dev", tap, "up"], what)
    except HypervisorError:
        remove(tap)
        raise


def remove(tap: str) -> bool:
    """Delete ``tap`` if it exists; True when something was removed."""
    names.check_ifname(tap, "tap")
    if not exists(tap):
        return False
    subprocess.run(["ip", "link", "del", "dev", tap], capture_output=True, timeout=30, check=False)
    return not exists(tap)


def vlans_of(tap: str) -> List[int]:
    """VLANs configured on ``tap`` (bridge vlan show), for info and tests."""
    try:
        out = subprocess.run(["bridge", "-j", "vlan", "show", "dev", tap], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    try:
        data = json.loads(out or "[]")
    except ValueError:
        return []
    return sorted(v["vlan"] for entry in data for v in entry.get("vlans", []) if "vlan" in v)
