"""The drbd template: DRBD 8.4 over two LVs (data + 128 MiB external meta) per node.

Layout as Ganeti (reference/ganeti.md §4a): data LV ``<uuid>.disk<i>_data``
(the disk's size), meta LV ``<uuid>.disk<i>_meta`` (128 MiB, flexible external
meta-data), one TCP port and a shared secret per disk, one minor per node,
endpoints on the nodes' secondary IPs, protocol C,
``after-sb-0pri discard-zero-changes``, ``after-sb-1pri consensus``,
``cram-hmac-alg`` + ``shared-secret``.

Unlike Ganeti (which drives ``drbdsetup`` directly) herd writes one resource
file per disk (``<drbd_config_dir>/herd-<uuid>.res``, 0600 in a 0700
directory: it holds the secret) and drives ``drbdadm -c FILE``. ``drbdadm``
matches ``on <host>`` against the herd node name through ``__DRBD_NODE__``,
so the node's ``uname -n`` does not have to equal its herd name. The
drbdsetup commands it runs are the ones Ganeti runs (new-resource, new-minor,
apply-al, attach, connect ...); ``tests/unit/test_storage_drbd.py`` checks
them with the real ``drbdadm -d``.

The master sends, next to the disk request (storage/base.py)::

    "drbd": {"local": "node1", "primary": "node1",
             "nodes": {"node1": {"address": "203.0.113.1", "minor": 0},
                       "node2": {"address": "203.0.113.2", "minor": 3}},
             "port": 11000, "secret": "<hex>",
             "params": {"resync-rate": 61440, "dynamic-resync": false, ...}}   # cluster diskparams drbd

Every step is a pure function returning argument lists (unit-tested against
Ganeti's sequence) plus an executor (``Drbd``) that runs them.
"""

import ipaddress
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .. import names
from ..config import DRBD_META_SIZE_MIB
from ..errors import ValidationError
from .base import DiskRequest, NodeSettings, Runner, StorageContext, StorageError, Template, check_grow, register
from .lvm import HERD_TAG, LVM, instance_tag

MAX_MINOR = (1 << 20) - 1
_SECRET = re.compile(r"^[0-9a-f]{16,64}$")
DEFAULT_PARAMS: Dict[str, Any] = {
    # Ganeti's drbd diskparams defaults (constants.DISK_DT_DEFAULTS)
    "protocol": "C",
    "cram-hmac-alg": "md5",
    "resync-rate": 61440,      # KiB/s
    "dynamic-resync": False,
    "c-plan-ahead": 20,        # 0.1 s
    "c-fill-target": 0,        # sectors
    "c-delay-target": 1,       # 0.1 s
    "c-max-rate": 61440,       # KiB/s
    "c-min-rate": 4096,        # KiB/s
    "metavg": None,
}
_INT_PARAMS = ("resync-rate", "c-plan-ahead", "c-fill-target", "c-delay-target", "c-max-rate", "c-min-rate")
_HMAC_ALGS = ("md5", "sha1", "sha256", "sha512", "crc32c")


def check_params(params: Any) -> Dict[str, Any]:
    """Effective DRBD tuning parameters (Ganeti's diskparams names, with '-' or '_')."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError("drbd params must be a mapping")
    out = dict(DEFAULT_PARAMS)
    for key, value in params.items():
        key = key.replace("_", "-")
        if key not in DEFAULT_PARAMS:
            raise ValidationError(f"unknown drbd parameter {key!r}; valid: {sorted(DEFAULT_PARAMS)}")
        out[key] = value
    if out["protocol"] not in ("A", "B", "C"):
        raise ValidationError(f"drbd protocol {out['protocol']!r} must be A, B or C")
    if out["cram-hmac-alg"] not in _HMAC_ALGS:
        raise ValidationError(f"drbd cram-hmac-alg {out['cram-hmac-alg']!r} must be one of {list(_HMAC_ALGS)}")
    if not isinstance(out["dynamic-resync"], bool):
        raise ValidationError("drbd dynamic-resync must be true or false")
    for key in _INT_PARAMS:
        if not isinstance(out[key], int) or isinstance(out[key], bool) or not 0 <= out[key] <= 4 * 1024 * 1024:
            raise ValidationError(f"drbd {key} {out[key]!r} must be a non-negative integer")
    if out["metavg"] is not None:
        names.check_vg(out["metavg"])
    return out


# The node_drbd role's tuning that herd writes into every resource: node-local hardware
# properties (buffers, barriers, flushes). The protocol and the resync controller come from
# the cluster's drbd diskparams (``check_params``): those must be equal on both peers.
_TUNING_INT = {"max_buffers": (32, 131072), "max_epoch_size": (1, 20000)}
_TUNING_BOOL = ("disk_barrier", "disk_flushes", "md_flushes")
# role keys that are the cluster diskparams' business here (recorded by the role, not applied)
_TUNING_CLUSTER = ("protocol", "c_plan_ahead", "c_min_rate", "c_max_rate")


def check_tuning(tuning: Any) -> Dict[str, Any]:
    """The node's DRBD tuning from node.json, validated (the values reach a config file)."""
    if not isinstance(tuning, dict):
        raise ValidationError("drbd_tuning must be a mapping")
    out: Dict[str, Any] = {}
    for key, value in tuning.items():
        if key in _TUNING_INT:
            low, high = _TUNING_INT[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValidationError(f"drbd_tuning {key} {value!r} must be an integer from {low} to {high}")
            out[key] = value
        elif key in _TUNING_BOOL:
            if not isinstance(value, bool):
                raise ValidationError(f"drbd_tuning {key} {value!r} must be true or false")
            out[key] = value
        elif key not in _TUNING_CLUSTER:
            raise ValidationError(f"unknown drbd_tuning key {key!r}; valid: "
                                  f"{sorted([*_TUNING_INT, *_TUNING_BOOL, *_TUNING_CLUSTER])}")
    return out


@dataclass
class Endpoint:
    node: str
    address: str
    minor: int

    @property
    def device(self) -> str:
        return f"/dev/drbd{self.minor}"

    def address_text(self, port: int) -> str:
        if ipaddress.ip_address(self.address).version == 6:
            return f"ipv6 [{self.address}]:{port}"
        return f"ipv4 {self.address}:{port}"


@dataclass
class DrbdDisk:
    """Everything one node needs to know about one DRBD disk."""

    instance: str
    uuid: str
    index: int
    size: int
    vg: str
    meta_vg: str
    data_lv: str
    meta_lv: str
    local: Endpoint
    peer: Endpoint
    port: int
    secret: str
    primary: str
    params: Dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))

    @property
    def resource(self) -> str:
        return f"herd-{self.uuid}"

    @property
    def device(self) -> str:
        return self.local.device

    @property
    def data_path(self) -> str:
        return f"/dev/{self.vg}/{self.data_lv}"

    @property
    def meta_path(self) -> str:
        return f"/dev/{self.meta_vg}/{self.meta_lv}"

    @property
    def is_primary(self) -> bool:
        return self.local.node == self.primary

    def logical_id(self) -> Dict[str, Any]:
        return {"vg": self.vg, "data_lv": self.data_lv, "meta_vg": self.meta_vg, "meta_lv": self.meta_lv,
                "resource": self.resource}

    @classmethod
    def from_request(cls, req: DiskRequest) -> "DrbdDisk":
        spec = req.drbd
        if not isinstance(spec, dict):
            raise ValidationError(f"disk {req.index} of {req.instance} is drbd: the request needs a drbd mapping")
        lid = req.logical_id
        local = names.check_hostname(spec.get("local") or req.node)
        nodes = spec.get("nodes")
        if not isinstance(nodes, dict) or len(nodes) != 2 or local not in nodes:
            raise ValidationError(f"drbd nodes must name exactly two nodes including this one ({local}), "
                                  f"got {sorted(nodes) if isinstance(nodes, dict) else nodes!r}")
        minors = lid.get("minors") or {}
        endpoints = {}
        for node, data in nodes.items():
            names.check_hostname(node)
            if not isinstance(data, dict):
                raise ValidationError(f"drbd nodes.{node} must be a mapping with address and minor")
            try:
                address = str(ipaddress.ip_address(str(data.get("address"))))
            except ValueError:
                raise ValidationError(f"drbd nodes.{node}.address {data.get('address')!r} is not an IP address") \
                    from None
            minor = data.get("minor", minors.get(node))
            if not isinstance(minor, int) or isinstance(minor, bool) or not 0 <= minor <= MAX_MINOR:
                raise ValidationError(f"drbd minor {minor!r} of {node} must be an integer from 0 to {MAX_MINOR}")
            endpoints[node] = Endpoint(node, address, minor)
        peer = next(n for n in endpoints if n != local)
        if ipaddress.ip_address(endpoints[local].address).version != \
                ipaddress.ip_address(endpoints[peer].address).version:
            raise ValidationError("drbd endpoints must both be IPv4 or both IPv6")
        port = spec.get("port", lid.get("port"))
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValidationError(f"drbd port {port!r} must be an integer from 1 to 65535")
        secret = spec.get("secret", lid.get("secret"))
        if not isinstance(secret, str) or not _SECRET.match(secret):
            raise ValidationError("drbd secret must be 16 to 64 lowercase hex characters")
        primary = names.check_hostname(spec.get("primary") or "")
        if primary not in endpoints:
            raise ValidationError(f"drbd primary {primary} is not one of the disk's nodes {sorted(endpoints)}")
        params = check_params(spec.get("params"))
        vg = names.check_vg(lid.get("vg") or req.need_vg())
        meta_vg = names.check_vg(lid.get("meta_vg") or params["metavg"] or vg)
        base = f"{req.uuid}.disk{req.index}"
        return cls(instance=req.instance, uuid=req.uuid, index=req.index, size=req.size, vg=vg, meta_vg=meta_vg,
                   data_lv=names.check_vg(lid.get("data_lv") or f"{base}_data"),
                   meta_lv=names.check_vg(lid.get("meta_lv") or f"{base}_meta"),
                   local=endpoints[local], peer=endpoints[peer], port=port, secret=secret, primary=primary,
                   params=params)


# ----------------------------------------------------------------- config (pure)

def render_config(disk: DrbdDisk, dual_primary: bool = False, tuning: Optional[Dict[str, Any]] = None) -> str:
    """The DRBD 8.4 resource file for ``disk`` (both hosts; drbdadm picks the local one), with
    the cluster's drbd diskparams and this node's tuning (``check_tuning``)."""
    p = disk.params
    tuning = tuning or {}
    disk_opts = ["on-io-error detach;"]
    for key in _TUNING_BOOL:
        if key in tuning:
            disk_opts.append(f"{key.replace('_', '-')} {'yes' if tuning[key] else 'no'};")
    net_tuning = [f"        {key.replace('_', '-')} {tuning[key]};" for key in _TUNING_INT if key in tuning]
    if p["dynamic-resync"]:
        disk_opts += [f"c-plan-ahead {p['c-plan-ahead']};", f"c-fill-target {p['c-fill-target']}s;",
                      f"c-delay-target {p['c-delay-target']};", f"c-max-rate {p['c-max-rate']}k;",
                      f"c-min-rate {p['c-min-rate']}k;", f"resync-rate {p['resync-rate']}k;"]
    else:
        # as Ganeti without dynamic resync: a fixed rate, the controller off
        disk_opts += ["c-plan-ahead 0;", f"resync-rate {p['resync-rate']}k;"]
    hosts = sorted([disk.local, disk.peer], key=lambda e: e.node)
    lines = [
        f"# herd: disk {disk.index} of {disk.instance} (disk {disk.uuid}); written by the herd node agent",
        f"resource {disk.resource} {{",
        "    net {",
        f"        protocol {p['protocol']};",
        f"        cram-hmac-alg \"{p['cram-hmac-alg']}\";",
        f"        shared-secret \"{disk.secret}\";",
        "        after-sb-0pri discard-zero-changes;",
        "        after-sb-1pri consensus;",
        "        after-sb-2pri disconnect;",
        f"        allow-two-primaries {'yes' if dual_primary else 'no'};",
        *net_tuning,
        "    }",
        "    disk {",
        *(f"        {opt}" for opt in disk_opts),
        "    }",
    ]
    for host in hosts:
        lines += [
            f"    on {host.node} {{",
            f"        device {host.device} minor {host.minor};",
            f"        disk /dev/{disk.vg}/{disk.data_lv};",
            f"        meta-disk /dev/{disk.meta_vg}/{disk.meta_lv};",
            f"        address {host.address_text(disk.port)};",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def config_path(settings: NodeSettings, disk: DrbdDisk) -> str:
    return os.path.join(settings.drbd_config_dir, f"{disk.resource}.res")


# ----------------------------------------------------------------- commands (pure)

class Commands:
    """Argument lists for every DRBD step, for one disk on one node."""

    def __init__(self, disk: DrbdDisk, drbdadm: str, conf: str):
        self.disk = disk
        self.drbdadm = drbdadm
        self.conf = conf

    @property
    def env(self) -> Dict[str, str]:
        return {"__DRBD_NODE__": self.disk.local.node}

    def adm(self, command: str, *options: str) -> List[str]:
        return [self.drbdadm, "-c", self.conf, command, *options, self.disk.resource]

    def wipe_meta(self) -> List[str]:
        return ["dd", "if=/dev/zero", f"of={self.disk.meta_path}", "bs=1M", f"count={DRBD_META_SIZE_MIB}",
                "oflag=direct", "status=none"]

    def create_md(self) -> List[str]:
        return self.adm("create-md", "--force")

    def up(self) -> List[str]:
        return self.adm("up")

    def new_resource(self) -> List[str]:
        return self.adm("new-resource")

    def new_minor(self) -> List[str]:
        return self.adm("new-minor")

    def attach(self) -> List[str]:
        return self.adm("attach")

    def adjust(self) -> List[str]:
        return self.adm("adjust")

    def down(self) -> List[str]:
        return self.adm("down")

    def connect(self, discard_my_data: bool = False) -> List[str]:
        return self.adm("connect", "--discard-my-data") if discard_my_data else self.adm("connect")

    def disconnect(self) -> List[str]:
        return self.adm("disconnect")

    def two_primaries(self, allow: bool) -> List[str]:
        return self.adm("net-options", f"--allow-two-primaries={'yes' if allow else 'no'}")

    def primary(self, force: bool = False) -> List[str]:
        return self.adm("primary", "--force") if force else self.adm("primary")

    def secondary(self) -> List[str]:
        return self.adm("secondary")

    def resize(self) -> List[str]:
        return self.adm("resize")


# ----------------------------------------------------------------- /proc/drbd

_PROC_VERSION = re.compile(r"^version:\s*(\S+)\s*\(api:(\S+?)/proto:(\S+?)\)")
_PROC_MINOR = re.compile(r"^\s*(\d+):\s*cs:(\S+)(?:\s+(?:ro|st):(\S+?)/(\S+))?(?:\s+ds:(\S+?)/(\S+))?"
                         r"(?:\s+([ABC]))?(?:\s+(\S+))?\s*$")
_PROC_SYNC = re.compile(r"sync'ed:\s*([\d.]+)%")
_PROC_FINISH = re.compile(r"finish:\s*(\d+):(\d+):(\d+)")
_PROC_SPEED = re.compile(r"speed:\s*([\d,]+)")
_PROC_STAT = re.compile(r"(\w+):(\S+)")


def parse_proc_drbd(text: str) -> Dict[str, Any]:
    """Parse /proc/drbd (8.3 and 8.4 formats) -> {"version", "api", "proto", "minors": {minor: status}}.

    A status has the raw fields (cs, role, peer_role, disk, peer_disk, protocol,
    flags, counters such as oos in KiB) and Ganeti's derived flags: connected,
    standalone, wfconnection, primary, peer_primary, disk_uptodate,
    peer_uptodate, in_resync, sync_percent, eta_seconds, speed_kib,
    degraded (anything short of Connected with both sides UpToDate)."""
    out: Dict[str, Any] = {"version": None, "api": None, "proto": None, "minors": {}}
    current: Optional[Dict[str, Any]] = None
    for line in text.splitlines():
        match = _PROC_VERSION.match(line)
        if match:
            out["version"], out["api"], out["proto"] = match.groups()
            continue
        match = _PROC_MINOR.match(line)
        if match:
            minor, cs, role, peer_role, ds, peer_ds, protocol, flags = match.groups()
            current = {"minor": int(minor), "cs": cs, "role": role, "peer_role": peer_role, "disk": ds,
                       "peer_disk": peer_ds, "protocol": protocol, "flags": flags, "sync_percent": None,
                       "eta_seconds": None, "speed_kib": None}
            out["minors"][int(minor)] = current
            continue
        if current is None:
            continue
        sync = _PROC_SYNC.search(line)
        if sync:
            current["sync_percent"] = float(sync.group(1))
            continue
        finish = _PROC_FINISH.search(line)
        if finish:
            h, m, s = (int(x) for x in finish.groups())
            current["eta_seconds"] = h * 3600 + m * 60 + s
            speed = _PROC_SPEED.search(line)
            if speed:
                current["speed_kib"] = int(speed.group(1).replace(",", ""))
            continue
        if "ns:" in line:
            for key, value in _PROC_STAT.findall(line):
                current[key] = int(value) if value.isdigit() else value
    for status in out["minors"].values():
        _derive(status)
    return out


def _derive(s: Dict[str, Any]) -> None:
    cs = s["cs"]
    s["unconfigured"] = cs == "Unconfigured"
    s["connected"] = cs == "Connected"
    s["standalone"] = cs == "StandAlone"
    s["wfconnection"] = cs == "WFConnection"
    s["in_resync"] = cs in ("SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "WFBitMapS", "WFBitMapT",
                            "WFSyncUUID")
    s["primary"] = s["role"] == "Primary"
    s["secondary"] = s["role"] == "Secondary"
    s["peer_primary"] = s["peer_role"] == "Primary"
    s["disk_uptodate"] = s["disk"] == "UpToDate"
    s["diskless"] = s["disk"] == "Diskless"
    s["peer_uptodate"] = s["peer_disk"] == "UpToDate"
    s["degraded"] = not (s["connected"] and s["disk_uptodate"] and s["peer_uptodate"])


# ----------------------------------------------------------------- drbdsetup show

_SHOW_RESOURCE = re.compile(r"^resource\s+(\S+)\s*\{")
_SHOW_MINOR = re.compile(r"^\s*device\s+(?:minor\s+(\d+)|\"?/dev/drbd(\d+)\"?(?:\s+minor\s+(\d+))?)\s*;")


def parse_drbdsetup_show(text: str) -> Dict[int, str]:
    """Which resource each configured minor belongs to, from ``drbdsetup show`` (8.4:
    ``resource NAME { ... _this_host { volume 0 { device minor N; ...``) -> {minor: resource}."""
    owners: Dict[int, str] = {}
    resource: Optional[str] = None
    for line in text.splitlines():
        match = _SHOW_RESOURCE.match(line)
        if match:
            resource = match.group(1).strip('"')
            continue
        match = _SHOW_MINOR.match(line)
        if match and resource is not None:
            minor = next(g for g in (match.group(3), match.group(1), match.group(2)) if g is not None)
            owners[int(minor)] = resource
    return owners


# ----------------------------------------------------------------- executor

@register
class Drbd(Template):
    name = "drbd"

    def __init__(self, runner: Runner, settings: NodeSettings,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        super().__init__(runner, settings)
        self.lvm = LVM(runner, settings)
        self.sleep = sleep
        self.clock = clock

    # --- helpers
    def proc(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.settings.proc_drbd, encoding="utf-8") as handle:
                return parse_proc_drbd(handle.read())
        except FileNotFoundError:
            return None

    def drbdadm(self) -> str:
        if self.settings.drbdadm:
            return self.settings.drbdadm
        proc = self.proc()
        if proc and str(proc.get("version") or "").startswith("9"):
            return "drbdadm"
        return "/lib/drbd/drbdadm-84" if os.path.exists("/lib/drbd/drbdadm-84") else "drbdadm"

    def drbdsetup(self) -> str:
        adm = self.drbdadm()
        if adm.endswith("drbdadm-84"):
            return adm[:-len("drbdadm-84")] + "drbdsetup-84"
        return "drbdsetup"

    def minor_owners(self) -> Dict[int, str]:
        """{minor: resource} of every minor configured in the kernel (``drbdsetup show``)."""
        result = self.runner.run([self.drbdsetup(), "show"], check=False)
        if result.rc != 0:
            raise StorageError(f"cannot tell which resources use which DRBD minors: {self.drbdsetup()} show "
                               f"failed (exit {result.rc}): {(result.stderr or result.stdout).strip()[-500:]}")
        return parse_drbdsetup_show(result.stdout)

    def check_minor_free(self, disk: DrbdDisk) -> bool:
        """Refuse a minor that is configured for anything but ``disk``'s resource.
        -> True when the minor already carries this very resource (an earlier create)."""
        if self.status(disk) is None:
            return False
        owner = self.minor_owners().get(disk.local.minor)
        if owner == disk.resource:
            return True
        raise StorageError(f"disk {disk.index} of {disk.instance}: minor {disk.local.minor} ({disk.device}) on "
                           f"{disk.local.node} is already in use by "
                           f"{'resource ' + owner if owner else 'a DRBD device drbdsetup cannot name'}, not "
                           f"{disk.resource}; refusing to take it over (the master allocates another minor "
                           "when asked again; cluster_verify lists minors the config does not know)")

    def commands(self, disk: DrbdDisk) -> Commands:
        self.runner.register_secret(disk.secret)
        return Commands(disk, self.drbdadm(), config_path(self.settings, disk))

    def status(self, disk: DrbdDisk) -> Optional[Dict[str, Any]]:
        """The minor's /proc/drbd status; None when the module is absent or the minor unconfigured."""
        proc = self.proc()
        if proc is None:
            return None
        status = proc["minors"].get(disk.local.minor)
        if status is None or status["unconfigured"]:
            return None
        return status

    def _need_module(self) -> None:
        if self.proc() is None:
            raise StorageError(f"the DRBD kernel module is not loaded on this node ({self.settings.proc_drbd} "
                               "is missing): load it with 'modprobe drbd' (the storage role does)")

    def _adm(self, cmds: Commands, argv: List[str], what: str) -> None:
        result = self.runner.run(argv, check=False, env=cmds.env)
        if result.rc != 0:
            detail = "\n".join(line for line in (result.stderr or result.stdout).splitlines()
                               if "__DRBD_NODE__" not in line and "PRETENDING" not in line).strip()
            raise StorageError(f"drbd {what} of disk {cmds.disk.index} of {cmds.disk.instance} "
                               f"({cmds.disk.resource}, {cmds.disk.device}) failed (exit {result.rc}): "
                               f"{detail[-2000:] or 'no output'}")

    def write_config(self, disk: DrbdDisk, dual_primary: bool = False) -> bool:
        """Write the resource file (0600) when its content differs. -> changed"""
        path = config_path(self.settings, disk)
        text = render_config(disk, dual_primary, self.settings.drbd_tuning)
        try:
            with open(path, encoding="utf-8") as handle:
                if handle.read() == text:
                    return False
        except FileNotFoundError:
            pass
        os.makedirs(self.settings.drbd_config_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True

    def current_dual(self, disk: DrbdDisk) -> bool:
        try:
            with open(config_path(self.settings, disk), encoding="utf-8") as handle:
                return "allow-two-primaries yes;" in handle.read()
        except FileNotFoundError:
            return False

    # --- template interface
    def create(self, req: DiskRequest, standalone: bool = False) -> Dict[str, Any]:
        """LVs, resource file, create-md, up; ``standalone``: attach without network and
        never promote (a new secondary during replace-disks, Ganeti's _ExecDrbd8Secondary)."""
        disk = DrbdDisk.from_request(req)
        if standalone and disk.is_primary:
            raise ValidationError(f"disk {req.index} of {req.instance}: a standalone create is for a new secondary, "
                                  f"but {disk.local.node} is the primary")
        cmds = self.commands(disk)
        # before anything is touched: a minor configured for another resource is not ours
        running = self.check_minor_free(disk)
        tags = [HERD_TAG, instance_tag(disk.instance)]
        data = self.lvm.create(disk.vg, disk.data_lv, disk.size, tags)
        meta = self.lvm.create(disk.meta_vg, disk.meta_lv, DRBD_META_SIZE_MIB, tags)
        changed = data["changed"] or meta["changed"]
        fresh = meta["changed"]
        if fresh and self.settings.lvm_driverloaded:
            self.runner.run(cmds.wipe_meta())
        changed = self.write_config(disk) or changed
        if not running:
            self._need_module()
            if fresh:
                self._adm(cmds, cmds.create_md(), "create-md")
            if standalone:
                self._adm(cmds, cmds.new_resource(), "new-resource")
                self._adm(cmds, cmds.new_minor(), "new-minor")
                self._adm(cmds, cmds.attach(), "attach")
                return {"changed": True, "path": disk.device, "logical_id": disk.logical_id(),
                        "resource": disk.resource, "config": config_path(self.settings, disk)}
            self._adm(cmds, cmds.up(), "up")
            changed = True
            if fresh and disk.is_primary:
                # the first primary: its (empty) data is declared good; the secondary syncs from it
                self._adm(cmds, cmds.primary(force=True), "initial primary --force")
        return {"changed": changed, "path": disk.device, "logical_id": disk.logical_id(),
                "resource": disk.resource, "config": config_path(self.settings, disk)}

    def remove(self, req: DiskRequest) -> Dict[str, Any]:
        disk = DrbdDisk.from_request(req)
        cmds = self.commands(disk)
        removed = []
        conf = config_path(self.settings, disk)
        if self.status(disk) is not None:
            self.write_config(disk, self.current_dual(disk))  # drbdadm down needs the file
            self._adm(cmds, cmds.down(), "down")
            removed.append(disk.device)
        if os.path.exists(conf):
            os.unlink(conf)
            removed.append(conf)
        for vg, lv in ((disk.vg, disk.data_lv), (disk.meta_vg, disk.meta_lv)):
            if self.lvm.remove(vg, lv):
                removed.append(f"{vg}/{lv}")
        return {"changed": bool(removed), "removed": removed}

    def grow(self, req: DiskRequest, new_size: int, phase: Optional[str] = None) -> Dict[str, Any]:
        """Grow in two phases, as Ganeti: ``backing`` (the data LV, on both nodes), then
        ``resize`` (``drbdadm resize`` on one connected node, after both LVs grew). Without a
        phase: the backing LV, plus the resize when this node is the secondary (the master
        calls the primary first, then the secondary)."""
        disk = DrbdDisk.from_request(req)
        if phase not in (None, "backing", "resize"):
            raise ValidationError(f"drbd grow phase {phase!r} must be backing or resize")
        volume = self.lvm.find(disk.vg, disk.data_lv)
        if volume is None:
            raise StorageError(f"disk {req.index} of {req.instance}: {disk.vg}/{disk.data_lv} does not exist on "
                               "this node")
        check_grow(req, min(req.size, volume.size), new_size)
        changed = False
        if phase in (None, "backing") and volume.size < new_size:
            self.lvm.extend(disk.vg, disk.data_lv, new_size)
            changed = True
        resized = False
        if phase == "resize" or (phase is None and not disk.is_primary):
            cmds = self.commands(disk)
            self._need_module()
            if self.status(disk) is None:
                raise StorageError(f"disk {req.index} of {req.instance}: {disk.device} is not configured on this "
                                   "node; assemble it before resizing")
            self._adm(cmds, cmds.resize(), "resize")
            resized = changed = True
        return {"changed": changed, "old_size": volume.size, "size": max(volume.size, new_size),
                "path": disk.device, "resized": resized}

    def assemble(self, req: DiskRequest, promote: Optional[bool] = None) -> Dict[str, Any]:
        """Activate the LVs, bring the resource up (attach + connect) if it is not, and on
        the instance's primary node make it Primary. -> {"path": "/dev/drbdN", ...}"""
        disk = DrbdDisk.from_request(req)
        cmds = self.commands(disk)
        changed = False
        for vg, lv in ((disk.vg, disk.data_lv), (disk.meta_vg, disk.meta_lv)):
            if self.lvm.find(vg, lv) is None:
                raise StorageError(f"disk {req.index} of {req.instance}: {vg}/{lv} does not exist on this node")
            changed = self.lvm.activate(vg, lv)["changed"] or changed
        rewritten = self.write_config(disk, self.current_dual(disk))
        self._need_module()
        status = self.status(disk)
        if status is None or rewritten:
            # not up (after a reboot), or the peers changed (replace-disks): apply the file
            self._adm(cmds, cmds.adjust(), "adjust (attach and connect)")
            changed = True
            status = self.status(disk)
        if promote is None:
            promote = disk.is_primary
        if promote and not (status or {}).get("primary"):
            self._adm(cmds, cmds.primary(), "primary")
            changed = True
        return {"changed": changed, "path": disk.device, "format": "raw", "status": self.status(disk)}

    def info(self, req: DiskRequest) -> Dict[str, Any]:
        disk = DrbdDisk.from_request(req)
        data = self.lvm.find(disk.vg, disk.data_lv)
        meta = self.lvm.find(disk.meta_vg, disk.meta_lv)
        return {"exists": data is not None and meta is not None, "path": disk.device,
                "size": data.size if data else None, "data_lv": data is not None, "meta_lv": meta is not None,
                "config": os.path.exists(config_path(self.settings, disk)), "status": self.status(disk)}

    def list(self, ctx: StorageContext) -> List[Dict[str, Any]]:
        """Resource files herd wrote on this node (the LVs are listed by the plain template)."""
        found = []
        directory = self.settings.drbd_config_dir
        if os.path.isdir(directory):
            for entry in sorted(os.listdir(directory)):
                match = re.match(r"^herd-([0-9a-f-]{36})\.res$", entry)
                if match:
                    found.append({"template": "drbd", "uuid": match.group(1), "config": os.path.join(directory, entry)})
        return found

    # --- roles and network modes
    def wait(self, disk: DrbdDisk, condition: Callable[[Dict[str, Any]], bool], what: str, timeout: float
             ) -> Dict[str, Any]:
        deadline = self.clock() + timeout
        while True:
            status = self.status(disk) or {}
            if status and condition(status):
                return status
            if self.clock() >= deadline:
                raise StorageError(f"disk {disk.index} of {disk.instance} ({disk.device}) did not reach {what} "
                                   f"within {timeout:g} s; it is cs:{status.get('cs', 'Unconfigured')} "
                                   f"ro:{status.get('role')}/{status.get('peer_role')} "
                                   f"ds:{status.get('disk')}/{status.get('peer_disk')}")
            self.sleep(0.5)

    def set_mode(self, req: DiskRequest, role: str, dual_primary: bool, force: bool = False,
                 timeout: float = 60, connect_timeout: float = 0) -> Dict[str, Any]:
        """Put this node's side into ``role`` with two primaries allowed or not.

        Dual: allow two primaries (net-options on the live connection), then, for
        role primary, wait until Connected with both disks UpToDate before promoting
        (never two disconnected primaries: that is a split brain).
        Single: demote first when role is secondary, then forbid two primaries; a node
        that stays primary while its peer is still primary leaves that step to the
        peer's call (DRBD refuses it while both are primary). ``force`` promotes a node
        whose disk is not UpToDate (failover with ignore_consistency). ``connect_timeout`` > 0
        (the second node of a pair): wait until the connection holds, failing clearly when a
        StandAlone resource does not reconnect (a split brain)."""
        if role not in ("primary", "secondary"):
            raise ValidationError(f"drbd role {role!r} must be primary or secondary")
        disk = DrbdDisk.from_request(req)
        cmds = self.commands(disk)
        steps: List[str] = []
        self.write_config(disk, dual_primary)
        self.assemble(req, promote=False)
        status = self.status(disk) or {}
        if role == "secondary" and status.get("primary"):
            self._adm(cmds, cmds.secondary(), "secondary")
            steps.append("secondary")
            status = self.status(disk) or {}
        if status.get("standalone"):
            self._adm(cmds, cmds.connect(), "connect")
            steps.append("connect")
            if connect_timeout > 0:
                self.wait_connected(disk, connect_timeout)
        elif dual_primary or not (status.get("primary") and status.get("peer_primary")):
            self._adm(cmds, cmds.two_primaries(dual_primary), "net-options")
            steps.append(f"allow-two-primaries {'yes' if dual_primary else 'no'}")
        else:
            steps.append("allow-two-primaries no: left to the peer, still primary")
        if role == "primary" and not status.get("primary"):
            if dual_primary:
                self.wait(disk, lambda s: s["connected"] and s["disk_uptodate"] and s["peer_uptodate"],
                          "Connected and UpToDate/UpToDate (needed before a second primary)", timeout)
                self._adm(cmds, cmds.primary(), "primary")
            else:
                needs_force = not (self.status(disk) or {}).get("disk_uptodate")
                if needs_force and not force:
                    raise StorageError(f"disk {req.index} of {req.instance} on this node is "
                                       f"{(self.status(disk) or {}).get('disk')}, not UpToDate: refusing to make it "
                                       "primary (ignore_consistency forces it and may lose data)")
                self._adm(cmds, cmds.primary(force=needs_force), "primary")
            steps.append("primary")
        return {"changed": bool(steps), "steps": steps, "status": self.status(disk), "path": disk.device}

    def connect(self, req: DiskRequest, dual_primary: bool = False, timeout: float = 0,
                discard_my_data: bool = False) -> Dict[str, Any]:
        """Connect a StandAlone resource; with ``timeout`` > 0 wait until the connection
        really holds (Connected or resyncing) and fail clearly when it does not: DRBD drops a
        connection it finds split-brained back to StandAlone, which ``drbdadm connect``'s
        exit code never shows. The first node of a pair connects with timeout 0 (its peer
        is not listening yet), the second waits.

        ``discard_my_data``: this node is the split-brain victim chosen by the operator:
        demote, then connect with ``--discard-my-data`` so the peer's data overwrites this
        node's changes. Never implied: only an explicit request discards data."""
        disk = DrbdDisk.from_request(req)
        cmds = self.commands(disk)
        self.write_config(disk, dual_primary)
        self._need_module()
        status = self.status(disk)
        if status is None:
            raise StorageError(f"disk {req.index} of {req.instance}: {disk.device} is not configured; assemble it")
        steps: List[str] = []
        if discard_my_data:
            if not status["standalone"]:
                self._adm(cmds, cmds.disconnect(), "disconnect (before discarding this node's data)")
                steps.append("disconnect")
            if (self.status(disk) or {}).get("primary"):
                self._adm(cmds, cmds.secondary(), "secondary (before discarding this node's data)")
                steps.append("secondary")
            self._adm(cmds, cmds.connect(discard_my_data=True), "connect --discard-my-data")
            steps.append("connect --discard-my-data")
        elif status["standalone"]:
            self._adm(cmds, cmds.connect(), "connect")
            steps.append("connect")
        if timeout > 0:
            status = self.wait_connected(disk, timeout, just_connected=bool(steps))
        return {"changed": bool(steps), "steps": steps, "status": self.status(disk) if timeout <= 0 else status}

    def wait_connected(self, disk: DrbdDisk, timeout: float, just_connected: bool = True) -> Dict[str, Any]:
        """Wait for Connected/SyncSource/SyncTarget. StandAlone after a connect means DRBD
        dropped the connection (split brain, or the peer refused it): fail at once."""
        deadline = self.clock() + timeout
        while True:
            status = self.status(disk) or {}
            if status.get("connected") or status.get("in_resync"):
                return status
            if status.get("standalone") and just_connected:
                raise StorageError(
                    f"disk {disk.index} of {disk.instance} ({disk.resource}, {disk.device}) on {disk.local.node} "
                    f"went back to StandAlone after connecting to {disk.peer.node}: DRBD refused the connection, "
                    "most likely a split brain (both sides changed the data). Nothing was discarded. Choose the "
                    "node whose data survives and run herd.cluster.instance_replace_disks with "
                    "split_brain_survivor: <node> (docs/storage.md, 'Split brain')")
            if self.clock() >= deadline:
                raise StorageError(
                    f"disk {disk.index} of {disk.instance} ({disk.resource}, {disk.device}) on {disk.local.node} "
                    f"did not connect to {disk.peer.node} within {timeout:g} s; it is "
                    f"cs:{status.get('cs', 'Unconfigured')} ro:{status.get('role')}/{status.get('peer_role')} "
                    f"ds:{status.get('disk')}/{status.get('peer_disk')} (WFConnection: the peer is not listening "
                    "or the replication network between the secondary IPs is cut)")
            self.sleep(0.5)

    def disconnect(self, req: DiskRequest) -> Dict[str, Any]:
        disk = DrbdDisk.from_request(req)
        cmds = self.commands(disk)
        status = self.status(disk)
        if status is None or status["standalone"]:
            return {"changed": False, "status": status}
        self.write_config(disk, self.current_dual(disk))
        self._adm(cmds, cmds.disconnect(), "disconnect")
        return {"changed": True, "status": self.status(disk)}

    def role(self, req: DiskRequest, role: str, force: bool = False) -> Dict[str, Any]:
        disk = DrbdDisk.from_request(req)
        cmds = self.commands(disk)
        self._need_module()
        status = self.status(disk)
        if status is None:
            raise StorageError(f"disk {req.index} of {req.instance}: {disk.device} is not configured; assemble it")
        if status["primary"] == (role == "primary"):
            return {"changed": False, "status": status}
        self.write_config(disk, self.current_dual(disk))
        argv = cmds.primary(force=force) if role == "primary" else cmds.secondary()
        self._adm(cmds, argv, role)
        return {"changed": True, "status": self.status(disk)}

    def shutdown(self, req: DiskRequest) -> Dict[str, Any]:
        disk = DrbdDisk.from_request(req)
        if self.status(disk) is None:
            return {"changed": False}
        cmds = self.commands(disk)
        self.write_config(disk, self.current_dual(disk))
        self._adm(cmds, cmds.down(), "down")
        return {"changed": True}
