"""Tap devices for instance NICs (standard library only; uses ip and bridge from iproute2).

Tap names are deterministic: "hv" + the first 11 hex digits of the instance's
UUID + the NIC index ("hv1a2b3c4d5e60", at most 15 bytes), so a migration
target uses the same names as the source. UUIDs are unique in the cluster,
names derived from them need no hash of a name that anyone can choose.

Each tap carries its owner in the link's alias ("herd <uuid> <name>"): a tap
that exists with another owner is never taken over (create refuses it) nor
deleted by the cleanup of another instance (remove leaves it), so even a
collision of the 11 digits cannot hurt another instance's network.
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


def tap_name(instance_uuid: str, index: int) -> str:
    names.check_uuid(instance_uuid)
    if not isinstance(index, int) or not 0 <= index <= 99:
        raise HypervisorError(f"NIC index {index!r} must be 0 to 99")
    return f"{TAP_PREFIX}{instance_uuid.replace('-', '')[:11]}{index}"


def owner_alias(instance_uuid: str, instance: str) -> str:
    """The alias a tap of ``instance`` carries (IFALIASZ allows 255 bytes)."""
    return f"herd {instance_uuid} {instance}"[:255]


def legacy_tap_name(instance: str, index: int) -> str:
    """The name taps had before they were derived from the UUID (sha1 of the name), so a
    node upgraded with instances running still cleans their taps up."""
    return f"{TAP_PREFIX}{hashlib.sha1(instance.encode('utf-8')).hexdigest()[:8]}{index}"


def owner_of(tap: str) -> str:
    """The alias of ``tap`` ("" when it has none)."""
    return _read(os.path.join(SYS_NET, tap, "ifalias")) or ""


def owned_by(tap: str, instance: str) -> bool:
    """Whether ``tap`` is one of ``instance``'s taps (by its alias, or the legacy name)."""
    alias = owner_of(tap)
    if not alias:
        return re.fullmatch(re.escape(legacy_tap_name(instance, 0)[:-1]) + r"\d{1,2}", tap) is not None
    parts = alias.split(" ", 2)
    return len(parts) == 3 and parts[0] == "herd" and alias == owner_alias(parts[1], instance)


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
    try:
        candidates = os.listdir(SYS_NET)
    except OSError:
        return []
    return sorted(n for n in candidates if n.startswith(TAP_PREFIX) and owned_by(n, instance))


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


def create(tap: str, bridge: str, vlan: Optional[int], what: str, instance_uuid: str, instance: str) -> None:
    """Create ``tap`` (mode tap, vnet_hdr) for ``instance``, attach it to ``bridge`` with the
    bridge's MTU, up. A tap of that name that belongs to anything else is refused."""
    names.check_ifname(tap, "tap")
    owner = owner_alias(names.check_uuid(instance_uuid), names.check_instance_name(instance))
    problem = check_bridge(bridge, vlan, what)
    if problem:
        raise HypervisorError(problem)
    if exists(tap):
        current = owner_of(tap)
        if current != owner:
            raise HypervisorError(f"{what}: tap {tap} already exists on node {socket.gethostname()} and belongs "
                                  f"to {current or 'something that is not a herd instance'}; refusing to take "
                                  "it over")
        remove(tap, instance)  # our own, left by a crash
    _ip(["ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"], what)
    try:
        _ip(["ip", "link", "set", "dev", tap, "alias", owner], what)
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
        remove(tap, instance)
        raise


def remove(tap: str, instance: Optional[str] = None) -> bool:
    """Delete ``tap`` if it exists (and, when ``instance`` is given, only if it is that
    instance's); True when something was removed."""
    names.check_ifname(tap, "tap")
    if not exists(tap):
        return False
    if instance is not None and not owned_by(tap, instance):
        return False  # another instance's tap: never ours to delete
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
