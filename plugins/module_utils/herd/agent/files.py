"""Verbs that write the cluster's files on a node: config copy, ssconf, leave."""

import os
import socket
from typing import Any, Dict

from .. import crypto
from ..config import CONFIG_NAME, SSCONF_NAME, Config, config_rank, node_state_dir, read_json, write_json_atomic
from ..errors import ConfigError
from .verbs import AgentError, verb


@verb("config_write")
def config_write(args: Dict[str, Any]) -> Dict[str, Any]:
    """Store the master's config if it is newer than ours. args: {"config": {...}}"""
    data = args.get("config")
    config = Config.from_dict(data, source="config from master")  # validates before writing
    path = os.path.join(node_state_dir(), CONFIG_NAME)
    current = _rank(path)
    offered = config_rank(data)
    if current is not None and current > offered:
        raise AgentError(f"refusing to replace config (master epoch, serial) {current} with the older {offered}")
    changed = current != offered
    if changed:
        write_json_atomic(path, data)
        _write_ssconf(config.ssconf())  # a candidate's ssconf follows its config copy
    dropped = False
    if config.cluster.master_ip and config.cluster.master_netdev and config.cluster.master_node != socket.gethostname():
        # A returning old master still carries the floating IP: the newer config says it is not ours.
        from .masterip import master_ip_remove
        dropped = master_ip_remove({"ip": config.cluster.master_ip, "netdev": config.cluster.master_netdev})["changed"]
    return {"serial_no": config.serial_no, "changed": changed or dropped}


@verb("ssconf_write")
def ssconf_write(args: Dict[str, Any]) -> Dict[str, Any]:
    """args: {"ssconf": {...}}"""
    data = args.get("ssconf")
    if not isinstance(data, dict) or "cluster_name" not in data or "master_node" not in data:
        raise AgentError("ssconf must be an object with cluster_name and master_node")
    return {"changed": _write_ssconf(data)}


def _write_ssconf(data: Dict[str, Any]) -> bool:
    path = os.path.join(node_state_dir(), SSCONF_NAME)
    try:
        changed = read_json(path, "ssconf") != data
    except ConfigError:
        changed = True
    if changed:
        write_json_atomic(path, data, mode=0o644)
    return changed


@verb("crypto_install")
def crypto_install(args: Dict[str, Any]) -> Dict[str, Any]:
    """This node's migration certificates. args: {"ca_cert", "cert", "key" (PEM), "ca_key" (master candidates)}

    The answer names files and fingerprints, never a key.
    """
    pems = [args.get(k) for k in ("ca_cert", "cert", "key")]
    missing = [k for k, v in zip(("ca_cert", "cert", "key"), pems) if not isinstance(v, str) or not v]
    if missing:
        raise AgentError(f"crypto_install needs {', '.join(missing)} as PEM text")
    ca_cert, cert, key = (str(v) for v in pems)
    return crypto.install(ca_cert, cert, key, args.get("ca_key"))


@verb("cluster_membership")
def cluster_membership(args: Dict[str, Any]) -> Dict[str, Any]:
    """What this node believes about its cluster: ssconf and config serial."""
    directory = node_state_dir()
    ssconf_path = os.path.join(directory, SSCONF_NAME)
    ssconf = None
    if os.path.exists(ssconf_path):
        try:
            ssconf = read_json(ssconf_path, "ssconf")
        except ConfigError as exc:
            ssconf = {"error": str(exc)}
    rank = _rank(os.path.join(directory, CONFIG_NAME))
    answer: Dict[str, Any] = {"ssconf": ssconf, "config_serial": rank[1] if rank else None,
                              "config_epoch": rank[0] if rank else None}
    probe = args.get("probe")
    if probe:
        # The voters' view of the old master during a master failover: does its SSH port answer?
        from .masterip import tcp_reachable
        answer["probe_reachable"] = tcp_reachable(probe.get("address"), probe.get("port"))
    return answer


@verb("config_read")
def config_read(args: Dict[str, Any]) -> Dict[str, Any]:
    """This node's copy of the config (a master candidate's), for a new master that is behind."""
    path = os.path.join(node_state_dir(), CONFIG_NAME)
    if not os.path.exists(path):
        raise AgentError("this node holds no copy of the cluster config (not a master candidate)")
    data = read_json(path, "config")
    Config.from_dict(data, source=path)  # a corrupt copy is reported here, never handed out
    return {"config": data}


@verb("cluster_leave")
def cluster_leave(args: Dict[str, Any]) -> Dict[str, Any]:
    """Forget the cluster: remove config copy and ssconf. args: {"cluster_name": ...}"""
    directory = node_state_dir()
    ssconf_path = os.path.join(directory, SSCONF_NAME)
    if os.path.exists(ssconf_path):
        try:
            name = read_json(ssconf_path, "ssconf").get("cluster_name")
        except ConfigError:
            name = None
        if name not in (None, args.get("cluster_name")):
            raise AgentError(f"this node belongs to cluster {name!r}, not {args.get('cluster_name')!r}")
    removed = crypto.remove()
    for filename in (CONFIG_NAME, SSCONF_NAME):
        path = os.path.join(directory, filename)
        if os.path.exists(path):
            os.unlink(path)
            removed.append(path)
    return {"removed": removed, "changed": bool(removed)}


def _rank(path: str) -> Any:
    """(master epoch, serial) of the config copy at path; None without one, (-1, -1) if unreadable."""
    if not os.path.exists(path):
        return None
    try:
        data = read_json(path, "config")
    except ConfigError:
        return (-1, -1)
    return config_rank(data)
