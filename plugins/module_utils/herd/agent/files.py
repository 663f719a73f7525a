"""Verbs that write the cluster's files on a node: config copy, ssconf, leave."""

import os
from typing import Any, Dict

from ..config import CONFIG_NAME, SSCONF_NAME, Config, node_state_dir, read_json, write_json_atomic
from ..errors import ConfigError
from .verbs import AgentError, verb


@verb("config_write")
def config_write(args: Dict[str, Any]) -> Dict[str, Any]:
    """Store the master's config if it is newer than ours. args: {"config": {...}}"""
    data = args.get("config")
    config = Config.from_dict(data, source="config from master")  # validates before writing
    path = os.path.join(node_state_dir(), CONFIG_NAME)
    current = _serial(path)
    if current is not None and current > config.serial_no:
        raise AgentError(f"refusing to replace config serial {current} with older serial {config.serial_no}")
    changed = current != config.serial_no
    if changed:
        write_json_atomic(path, data)
        _write_ssconf(config.ssconf())  # a candidate's ssconf follows its config copy
    return {"serial_no": config.serial_no, "changed": changed}


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
    return {"ssconf": ssconf, "config_serial": _serial(os.path.join(directory, CONFIG_NAME))}


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
    removed = []
    for filename in (CONFIG_NAME, SSCONF_NAME):
        path = os.path.join(directory, filename)
        if os.path.exists(path):
            os.unlink(path)
            removed.append(path)
    return {"removed": removed, "changed": bool(removed)}


def _serial(path: str) -> Any:
    if not os.path.exists(path):
        return None
    try:
        data = read_json(path, "config")
    except ConfigError:
        return -1
    return data.get("serial_no") if isinstance(data, dict) else -1
