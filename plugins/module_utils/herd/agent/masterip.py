"""The floating cluster IP on the master's netdev, and the reachability probe of master voting.

The address is added as a host route (/32, /128) the way Ganeti's default
master netmask does, so it never adds a second connected route next to the
node's own address on the same link.
"""

import ipaddress
import shutil
import socket
import subprocess
from typing import Any, Dict, List

from ..names import check_ifname
from .verbs import AgentError, verb


def _address(args: Dict[str, Any]) -> "ipaddress.IPv4Address | ipaddress.IPv6Address":
    try:
        return ipaddress.ip_address(str(args.get("ip")))
    except ValueError:
        raise AgentError(f"master_ip {args.get('ip')!r} is not an IP address") from None


def _netdev(args: Dict[str, Any]) -> str:
    netdev = check_ifname(args.get("netdev"), "master_netdev")
    if not _run(["ip", "-o", "link", "show", "dev", netdev], check=False)[0] == 0:
        raise AgentError(f"master_netdev {netdev!r} does not exist on this node")
    return netdev


def _run(argv: List[str], check: bool = True) -> "tuple[int, str]":
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise AgentError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.returncode, proc.stdout


def _configured(ip: Any, netdev: str) -> bool:
    family = "-6" if ip.version == 6 else "-4"
    _rc, out = _run(["ip", family, "-o", "addr", "show", "dev", netdev])
    return any(word.split("/")[0] == str(ip) for line in out.splitlines() for word in line.split())


@verb("master_ip_add")
def master_ip_add(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"ip": "192.0.2.10", "netdev": "br0"}. Idempotent."""
    ip = _address(args)
    netdev = _netdev(args)
    if _configured(ip, netdev):
        return {"changed": False}
    prefix = 32 if ip.version == 4 else 128
    _run(["ip", "addr", "add", f"{ip}/{prefix}", "dev", netdev])
    if ip.version == 4 and shutil.which("arping"):
        # Tell the segment the address moved; neighbours would otherwise keep the old master's MAC.
        _run(["arping", "-q", "-U", "-c", "2", "-I", netdev, str(ip)], check=False)
    return {"changed": True}


@verb("master_ip_remove")
def master_ip_remove(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"ip": ..., "netdev": ...}. Idempotent; a missing netdev means nothing to remove."""
    ip = _address(args)
    netdev = check_ifname(args.get("netdev"), "master_netdev")
    if _run(["ip", "-o", "link", "show", "dev", netdev], check=False)[0] != 0 or not _configured(ip, netdev):
        return {"changed": False}
    prefix = 32 if ip.version == 4 else 128
    _run(["ip", "addr", "del", f"{ip}/{prefix}", "dev", netdev])
    return {"changed": True}


def tcp_reachable(address: Any, port: Any, timeout: float = 3.0) -> bool:
    """Whether address:port accepts a TCP connection (the old master's sshd) within timeout."""
    try:
        ip = str(ipaddress.ip_address(str(address)))
        port = int(port)
    except (ValueError, TypeError):
        raise AgentError(f"probe needs an IP address and a port, got {address!r}:{port!r}") from None
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False
