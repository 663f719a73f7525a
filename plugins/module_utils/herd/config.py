"""The cluster config: schema, atomic load/save, serial numbers, ssconf.

The master holds the authoritative copy (``/var/lib/herd/config.json``, 0600).
Every write is atomic (temp file, fsync, rename, fsync of the directory) and
bumps ``serial_no``; the caller then pushes the new file to every master
candidate (see ``ops.common.replicate``). A corrupt or truncated file is never
replaced by defaults: loading fails with the file, the position and how to
recover.

Objects are keyed by name. Parameters that Ganeti keeps as free-form dicts
(hvparams, beparams, nicparams, diskparams, ipolicy, ndparams) stay dicts; the
ops that set them validate them.
"""

import copy
import dataclasses
import json
import os
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .errors import ConfigError

SCHEMA_VERSION = 1

# HERD_STATE_DIR lets tests run the engine and agent against a scratch directory.
STATE_DIR = os.environ.get("HERD_STATE_DIR", "/var/lib/herd")


def node_state_dir() -> str:
    """The agent's state directory, read at call time (one agent process per request on a node;
    in-process tests switch it per node)."""
    return os.environ.get("HERD_STATE_DIR", "/var/lib/herd")


CONFIG_NAME = "config.json"
SSCONF_NAME = "ssconf.json"

HYPERVISORS = ("kvm", "fake")
DISK_TEMPLATES = ("diskless", "file", "sharedfile", "plain", "drbd")
MIRRORED_TEMPLATES = ("drbd",)

# The port pool (VNC and DRBD) starts where Ganeti's does.
FIRST_PORT = 11000
LAST_PORT = 14999
MAX_DRBD_MINOR = (1 << 20) - 1  # DRBD 8.4's limit

DEFAULT_IPOLICY: Dict[str, Any] = {
    "minmax": [{
        "min": {"memory-size": 128, "cpu-count": 1, "disk-count": 1, "disk-size": 1024,
                "nic-count": 1, "spindle-use": 1},
        "max": {"memory-size": 32768, "cpu-count": 8, "disk-count": 16, "disk-size": 1048576,
                "nic-count": 8, "spindle-use": 12},
    }],
    "std": {"memory-size": 128, "cpu-count": 1, "disk-count": 1, "disk-size": 1024,
            "nic-count": 1, "spindle-use": 1},
    "disk-templates": list(DISK_TEMPLATES),
    "vcpu-ratio": 4.0,
    "spindle-ratio": 32.0,
}

# Ganeti's DRBD_META_SIZE: the external metadata volume of every drbd disk, on each of its nodes
DRBD_META_SIZE_MIB = 128
DEFAULT_BEPARAMS: Dict[str, Any] = {"maxmem": 128, "minmem": 128, "vcpus": 1,
                                    "auto_balance": True, "spindle_use": 1}
DEFAULT_NICPARAMS: Dict[str, Any] = {"mode": "bridged", "link": "br0", "vlan": None}
DEFAULT_HVPARAMS: Dict[str, Dict[str, Any]] = {
    "kvm": {"accel": "kvm", "machine_type": "pc", "firmware": "bios", "cpu_type": "qemu64",
            "disk_cache": "none", "disk_aio": "threads", "serial_console": True,
            "vnc_bind_address": "127.0.0.1", "kernel_path": "", "initrd_path": "",
            "kernel_args": "", "migration_bandwidth": 32, "migration_downtime": 30,
            "cdrom_image_path": "", "boot_order": "disk", "disk_discard": "unmap", "disk_type": "paravirtual",
            "vhost_net": False, "kvm_extra": "",
            # QEMU's user (hypervisor/confine.py); new clusters get "pool" (ops/cluster.py)
            "security_model": "none", "security_domain": ""},
    "fake": {"migration_bandwidth": 32, "migration_downtime": 30},
}
DEFAULT_NDPARAMS: Dict[str, Any] = {"spindle_count": 1, "exclusive_storage": False,
                                    "ssh_port": 22}


def now() -> float:
    return round(time.time(), 6)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


@dataclass
class Cluster:
    name: str
    uuid: str
    master_node: str
    master_ip: Optional[str] = None
    master_netdev: Optional[str] = None
    enabled_hypervisors: List[str] = field(default_factory=lambda: ["kvm"])
    enabled_disk_templates: List[str] = field(default_factory=lambda: ["plain", "drbd", "file", "sharedfile", "diskless"])
    volume_group: str = "gnt"
    file_storage_dir: str = "/srv/herd/file-storage"
    shared_file_storage_dir: str = "/srv/herd-shared/file-storage"
    mac_prefix: str = "aa:00:00"
    hvparams: Dict[str, Dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_HVPARAMS))
    beparams: Dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_BEPARAMS))
    nicparams: Dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NICPARAMS))
    diskparams: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    ndparams: Dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NDPARAMS))
    ipolicy: Dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_IPOLICY))
    candidate_pool_size: int = 10
    default_iallocator: str = "herd"
    tags: List[str] = field(default_factory=list)
    # Where the master's RPC reads its private key; node_base distributes it.
    ssh_key_file: str = "/root/.ssh/id_herd_cluster"
    # Bumped by every master failover: a config of a later master epoch is newer than any
    # config of an earlier one, whatever their serials (an isolated old master may have
    # kept committing locally).
    master_epoch: int = 0
    # Unix time until which the watcher does nothing (gnt-cluster watcher pause); None: not paused
    watcher_pause_until: Optional[float] = None
    ctime: float = 0.0
    mtime: float = 0.0


@dataclass
class NodeGroup:
    name: str
    uuid: str
    alloc_policy: str = "preferred"
    ndparams: Dict[str, Any] = field(default_factory=dict)
    ipolicy: Dict[str, Any] = field(default_factory=dict)
    networks: List[str] = field(default_factory=list)
    tags: List[str] = field(default_factory=list)


@dataclass
class Node:
    name: str
    uuid: str
    primary_ip: str
    secondary_ip: str
    group: str = "default"
    master_candidate: bool = True
    drained: bool = False
    offline: bool = False
    vm_capable: bool = True
    master_capable: bool = True
    tags: List[str] = field(default_factory=list)
    ndparams: Dict[str, Any] = field(default_factory=dict)
    # {"ssh-ed25519": "AAAA..."}: recorded at node add, the only keys accepted afterwards.
    ssh_host_keys: Dict[str, str] = field(default_factory=dict)
    ctime: float = 0.0
    mtime: float = 0.0


@dataclass
class Disk:
    uuid: str
    size: int  # MiB
    name: Optional[str] = None
    vg: Optional[str] = None
    spindles: Optional[int] = None
    # template-specific identifiers (LV names, file path, DRBD minors/port/secret)
    logical_id: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Nic:
    mac: str
    link: str = "br0"
    mode: str = "bridged"
    vlan: Optional[int] = None
    ip: Optional[str] = None
    network: Optional[str] = None
    name: Optional[str] = None


@dataclass
class Instance:
    name: str
    uuid: str
    primary_node: str
    hypervisor: str
    disk_template: str
    secondary_node: Optional[str] = None
    os: str = "noop"
    osparams: Dict[str, Any] = field(default_factory=dict)
    admin_state: str = "down"  # "up" | "down"
    beparams: Dict[str, Any] = field(default_factory=dict)
    hvparams: Dict[str, Any] = field(default_factory=dict)
    nics: List[Nic] = field(default_factory=list)
    disks: List[Disk] = field(default_factory=list)
    tags: List[str] = field(default_factory=list)
    network_port: Optional[int] = None
    # The VNC password (a secret: never in views, diffs or logs; given to QEMU as a 0600 file).
    vnc_password: Optional[str] = None
    # Changes accepted while running that take effect at the next restart.
    pending_restart: bool = False
    ctime: float = 0.0
    mtime: float = 0.0

    def nodes(self) -> List[str]:
        return [self.primary_node] + ([self.secondary_node] if self.secondary_node else [])


@dataclass
class Network:
    name: str
    uuid: str
    subnet: str
    gateway: Optional[str] = None
    reserved: List[str] = field(default_factory=list)
    # ip -> instance name (or "" for an external reservation)
    allocated: Dict[str, str] = field(default_factory=dict)
    tags: List[str] = field(default_factory=list)
    subnet6: Optional[str] = None
    gateway6: Optional[str] = None
    # node group -> NIC parameters (mode, link, vlan) of this network's NICs there (gnt-network connect)
    groups: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class Config:
    cluster: Cluster
    nodes: Dict[str, Node] = field(default_factory=dict)
    nodegroups: Dict[str, NodeGroup] = field(default_factory=dict)
    instances: Dict[str, Instance] = field(default_factory=dict)
    networks: Dict[str, Network] = field(default_factory=dict)
    serial_no: int = 0
    version: int = SCHEMA_VERSION
    ctime: float = 0.0
    mtime: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> "Config":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object at the top level")
        version = data.get("version")
        if version != SCHEMA_VERSION:
            raise ConfigError(f"{source}: schema version {version!r} is not supported "
                              f"(this herd reads version {SCHEMA_VERSION})")
        try:
            return cls(
                cluster=_build(Cluster, data.get("cluster"), f"{source}: cluster"),
                nodes=_build_map(Node, data.get("nodes", {}), f"{source}: nodes"),
                nodegroups=_build_map(NodeGroup, data.get("nodegroups", {}), f"{source}: nodegroups"),
                instances={name: _build_instance(value, f"{source}: instances.{name}")
                           for name, value in _mapping(data.get("instances", {}), f"{source}: instances").items()},
                networks=_build_map(Network, data.get("networks", {}), f"{source}: networks"),
                serial_no=_typed(data, "serial_no", int, source),
                version=version,
                ctime=float(data.get("ctime", 0.0)),
                mtime=float(data.get("mtime", 0.0)),
            )
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    def copy(self) -> "Config":
        return Config.from_dict(self.to_dict())

    def master_candidates(self) -> List[str]:
        return sorted(n.name for n in self.nodes.values() if n.master_candidate and not n.offline)

    def instances_on(self, node: str) -> List[str]:
        return sorted(i.name for i in self.instances.values() if node in i.nodes())

    def used_ports(self) -> List[int]:
        ports = [i.network_port for i in self.instances.values() if i.network_port]
        for inst in self.instances.values():
            for disk in inst.disks:
                port = disk.logical_id.get("port")
                if port:
                    ports.append(port)
        return sorted(ports)

    def allocate_port(self, reserved: Iterable[int] = ()) -> int:
        """The lowest free port of the pool (VNC and DRBD alike), also skipping ``reserved``
        (ports handed out earlier in the same operation)."""
        used = set(self.used_ports()) | set(reserved)
        for port in range(FIRST_PORT, LAST_PORT + 1):
            if port not in used:
                return port
        raise ConfigError(f"the cluster's port pool {FIRST_PORT}-{LAST_PORT} is exhausted: all "
                          f"{LAST_PORT - FIRST_PORT + 1} ports are allocated to instances (VNC consoles and DRBD "
                          "disks); remove instances or disks to free some")

    def used_minors(self, node: str) -> Set[int]:
        """DRBD minors the config allocates on ``node``."""
        return {minor for inst in self.instances.values() for disk in inst.disks
                for name, minor in (disk.logical_id.get("minors") or {}).items()
                if name == node and isinstance(minor, int)}

    def allocate_minors(self, node: str, count: int, in_use_on_node: Iterable[int] = ()) -> List[int]:
        """The ``count`` lowest DRBD minors on ``node`` that are free both in the config and on the
        node itself (``in_use_on_node``: what the node reports configured, which includes devices
        the config lost track of). The one allocator for create and replace-disks."""
        used = self.used_minors(node) | {int(m) for m in in_use_on_node}
        out: List[int] = []
        minor = 0
        while len(out) < count:
            if minor > MAX_DRBD_MINOR:
                raise ConfigError(f"no free DRBD minor on {node}: {len(used)} are in use")
            if minor not in used:
                out.append(minor)
            minor += 1
        return out

    def ssconf(self) -> Dict[str, Any]:
        return {
            "cluster_name": self.cluster.name,
            "cluster_uuid": self.cluster.uuid,
            "master_node": self.cluster.master_node,
            "master_ip": self.cluster.master_ip,
            "master_epoch": self.cluster.master_epoch,
            "nodes": sorted(self.nodes),
            "master_candidates": self.master_candidates(),
            "node_primary_ips": {n.name: n.primary_ip for n in self.nodes.values()},
            "node_secondary_ips": {n.name: n.secondary_ip for n in self.nodes.values()},
        }


def config_rank(data: Any) -> Tuple[int, int]:
    """(master epoch, serial) of a config dict: the larger is the newer config."""
    if not isinstance(data, dict):
        return (-1, -1)
    cluster = data["cluster"] if isinstance(data.get("cluster"), dict) else {}
    epoch, serial = cluster.get("master_epoch", 0), data.get("serial_no", -1)
    return (epoch if isinstance(epoch, int) else -1, serial if isinstance(serial, int) else -1)


def _mapping(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object keyed by name, got {type(value).__name__}")
    return value


def _typed(data: Dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{where}: missing keys {missing}")
    return cls(**data)


def _build_map(cls: type, data: Any, where: str) -> Dict[str, Any]:
    result = {}
    for name, value in _mapping(data, where).items():
        obj = _build(cls, value, f"{where}.{name}")
        if obj.name != name:
            raise ConfigError(f"{where}.{name}: name field {obj.name!r} differs from its key")
        result[name] = obj
    return result


def _build_instance(data: Any, where: str) -> Instance:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object")
    data = dict(data)
    data["nics"] = [_build(Nic, n, f"{where}.nics[{i}]") for i, n in enumerate(data.get("nics", []))]
    data["disks"] = [_build(Disk, d, f"{where}.disks[{i}]") for i, d in enumerate(data.get("disks", []))]
    return _build(Instance, data, where)


class ConfigStore:
    """Reads and writes one config file atomically.

    Callers hold the cluster lock (``jobs.Locks.cluster``) around
    load-modify-save; ``save`` itself is atomic, so readers never see a
    half-written file.
    """

    def __init__(self, state_dir: str = STATE_DIR):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, CONFIG_NAME)
        self.ssconf_path = os.path.join(state_dir, SSCONF_NAME)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def load(self) -> Config:
        return Config.from_dict(read_json(self.path, "cluster config"), source=self.path)

    def save(self, config: Config) -> bool:
        """Bump the serial number and write atomically.

        Returns whether the ssconf changed (node membership, master), which
        tells the caller whether non-candidate nodes need a new ssconf.
        """
        stamp = now()
        config.serial_no += 1
        config.mtime = stamp
        if not config.ctime:
            config.ctime = stamp
        write_json_atomic(self.path, config.to_dict())
        ssconf = config.ssconf()
        try:
            changed = self.load_ssconf() != ssconf
        except ConfigError:
            changed = True
        if changed:
            write_json_atomic(self.ssconf_path, ssconf, mode=0o644)
        return changed

    def load_ssconf(self) -> Optional[Dict[str, Any]]:
        if not os.path.exists(self.ssconf_path):
            return None
        return read_json(self.ssconf_path, "ssconf")


def read_json(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from exc
    if not raw.strip():
        raise ConfigError(f"{what} {path} is empty (truncated?); it was left as it is. "
                          "Restore it from a master candidate's copy of the same path.")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        position = f"line {exc.lineno} column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ConfigError(f"{what} {path} is corrupt ({position}); it was left as it is. "
                          "Restore it from a master candidate's copy of the same path.") from None


def write_json_atomic(path: str, data: Any, mode: int = 0o600) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode)


def write_text_atomic(path: str, text: str, mode: int = 0o600) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory."""
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_bytes_atomic(path: str, payload: bytes, mode: int = 0o600) -> None:
    """The one atomic writer: a temp file in the same directory with ``mode`` from its creation
    (files holding secrets are never readable for a moment), fsync, rename, fsync the directory."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
