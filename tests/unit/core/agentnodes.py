"""The cluster's nodes for the op tests: the real herd-node agent run in process.

Each request goes, as JSON, through ``agent.main.handle`` and back through
``rpc.decode_answer``, inside the node's own world: its state and runtime
directories (``HERD_STATE_DIR``/``HERD_RUN_DIR``), its node settings, a
recording storage runner with an in-memory volume group, and private
``/srv/herd`` directories (a bind mount on a real node; here a prefix mapped
both ways), with ``/srv/herd-shared`` common to every node. The ``fake``
hypervisor stands in for KVM (which cannot run here) for every instance.

What stays simulated, and only that: the transport (reachability, host keys,
the agent's version, and the TCP probe of master voting), the hardware facts
``node_facts`` reports (memory, bridges, volume group), the node's kernel
addresses that the master IP verbs add and remove with ``ip``, the node's Open vSwitch
(``ovs_bridges``, None when it is not installed, behind ``ovs-vsctl``), and the DRBD kernel module (``DrbdSim``, answering the
drbd template's disk verbs, since drbdsetup cannot run here). The agent reads
what the simulated module holds where it reads the real one: each request
first writes the node's /proc/drbd from ``DrbdSim``, and the drbd data/meta
LVs live in the node's fake volume group.
``SIMULATED_VERBS`` names every verb answered outside the agent; the contract
test checks each is a verb the agent serves.
"""

import base64
import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from plugins.module_utils.herd import crypto
from plugins.module_utils.herd import rpc as rpc_mod
from plugins.module_utils.herd.agent import facts, main, masterip
from plugins.module_utils.herd.agent import storage as agent_storage
from plugins.module_utils.herd.config import CONFIG_NAME, DRBD_META_SIZE_MIB, SSCONF_NAME, write_json_atomic
from plugins.module_utils.herd.errors import RpcError
from plugins.module_utils.herd.hypervisor import base as hv_base
from plugins.module_utils.herd.hypervisor import fake as fake_hv
from plugins.module_utils.herd.hypervisor import tap as tap_mod
from plugins.module_utils.herd.storage.lvm import HERD_TAG, INSTANCE_TAG_PREFIX, instance_tag
from plugins.module_utils.herd.version import VERSION

from ..storage_fakes import FakeVolumeGroups, RecordingRunner

# The node's world is process-wide (environment, module settings): one request at a time, as
# operations such as evacuation call nodes from several threads.
WORLD_LOCK = threading.RLock()
PRIVATE_ROOT = "/srv/herd/"
SHARED_ROOT = "/srv/herd-shared/"
DRBD_DISK_VERBS = ("disk_create", "disk_remove", "disk_shutdown", "disk_info", "disk_assemble", "disk_grow")
SIMULATED_VERBS = ("node_facts", "drbd_create", "drbd_remove", "drbd_attach", "drbd_connect", "drbd_disconnect",
                   "drbd_status", "drbd_set_mode", "drbd_replace_local", "drbd_remove_replaced") + DRBD_DISK_VERBS


def fake_host_key(seed: int) -> str:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([seed % 256]) * 32
    return base64.b64encode(blob).decode()


def _map(value: Any, pairs: list[tuple[str, str]]) -> Any:
    """Rewrite path prefixes in a JSON value (the node's mount table, applied one way)."""
    if isinstance(value, str):
        for old, new in pairs:
            if value.startswith(old):
                return new + value[len(old):]
        return value
    if isinstance(value, list):
        return [_map(v, pairs) for v in value]
    if isinstance(value, dict):
        return {k: _map(v, pairs) for k, v in value.items()}
    return value


class AgentNode:
    """One node: its identity, its private directories, and what it holds (read from them)."""

    def __init__(self, name: str, primary_ip: str, secondary_ip: str, index: int, root: Path, shared: Path):
        self.name = name
        self.addresses = [primary_ip, secondary_ip]
        self.hostname = name
        self.host_key = fake_host_key(index)
        self.reachable = True
        self.agent_version = VERSION
        self.memory_total = 4096
        self.memory_free = 2048
        self.bridges = ["br0"]  # the bridges node_facts reports
        self.root = root
        self.state_dir = str(root / "state")
        self.run_dir = str(root / "run")
        self.mounts = [(PRIVATE_ROOT, str(root / "srv" / "herd") + "/"),
                       (SHARED_ROOT, str(shared / "srv" / "herd-shared") + "/")]
        for _virtual, real in self.mounts:
            os.makedirs(real + "file-storage", exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)
        self.settings = str(root / "node.json")
        self.proc_drbd = str(root / "proc_drbd")
        Path(self.settings).write_text(json.dumps({"lvm_driverloaded": False, "drbd_config_dir": str(root / "drbd"),
                                                   "proc_drbd": self.proc_drbd}))
        self.runner = RecordingRunner()
        self.volumes = FakeVolumeGroups(self.runner, {"gnt": 20480})
        self.calls: list[str] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, str] = {}            # verb -> error the node answers instead
        self.answers: dict[str, dict[str, Any]] = {}  # verb -> what the hardware reports instead
        self.drbd = DrbdSim(self)
        self.drbd_module = True   # False: no drbd kernel module (no /proc/drbd)
        self.master_ips: set = set()   # addresses `ip addr` shows on this node's master netdev
        self.still_sees: set = set()   # unreachable nodes this one still reaches (a partition)
        self.peers: dict[str, AgentNode] = {}  # primary IP -> node, set by AgentRpc
        self.ovs_bridges: set | None = None  # Open vSwitch bridges (None: Open vSwitch not installed)
        self.ovs_calls: list[list[str]] = []   # every ovs-vsctl argument list the agent ran

    # --------------------------------------------------------------- the node's world
    @contextlib.contextmanager
    def world(self) -> Iterator[None]:
        """Run agent code as on this node (one agent process per request there)."""
        saved_env = {k: os.environ.get(k) for k in ("HERD_STATE_DIR", "HERD_RUN_DIR")}
        saved = [(facts, "NODE_SETTINGS", facts.NODE_SETTINGS), (agent_storage, "Runner", agent_storage.Runner),
                 (hv_base, "registry", hv_base.registry), (masterip, "_run", masterip._run),
                 (masterip, "tcp_reachable", masterip.tcp_reachable), (tap_mod, "_ovs", tap_mod._ovs),
                 (tap_mod, "ovs_installed", tap_mod.ovs_installed), (tap_mod, "node_name", tap_mod.node_name)]
        os.environ["HERD_STATE_DIR"] = self.state_dir
        os.environ["HERD_RUN_DIR"] = self.run_dir
        facts.NODE_SETTINGS = self.settings
        agent_storage.Runner = lambda: self.runner  # type: ignore[assignment,misc]
        hv_base.registry = lambda: {"kvm": fake_hv.Fake, "fake": fake_hv.Fake}  # no hardware KVM here
        masterip._run = self._ip  # type: ignore[assignment]
        masterip.tcp_reachable = self._reaches  # type: ignore[assignment]
        tap_mod._ovs = self._ovs  # type: ignore[assignment]
        tap_mod.ovs_installed = lambda: self.ovs_bridges is not None
        tap_mod.node_name = lambda: self.hostname
        try:
            yield
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            for module, attr, value in saved:
                setattr(module, attr, value)

    def handle(self, verb: str, args: dict[str, Any]) -> dict[str, Any]:
        """The agent's answer to one request, decoded as the master's rpc decodes it."""
        if self.agent_version != VERSION:  # an agent of another version refuses this master
            answer = {"ok": False, "version": self.agent_version, "kind": "version_mismatch",
                      "error": f"agent is {self.agent_version}, master is {VERSION!r}"}
        elif verb in self.answers:
            answer = {"ok": True, "version": VERSION, "result": self.answers[verb]}
        else:
            request = json.loads(json.dumps({"version": VERSION, "verb": verb, "args": _map(args, self.mounts)}))
            simulated = self.drbd.answer(verb, request["args"]) if self.drbd.handles(verb, request["args"]) else None
            if simulated is not None:
                answer = {"ok": True, "version": VERSION, "result": simulated}
            else:
                if self.drbd_module:
                    Path(self.proc_drbd).write_text(self.drbd.proc_text())
                else:
                    Path(self.proc_drbd).unlink(missing_ok=True)
                with self.world():
                    answer = main.handle(request)
                if answer.get("ok") and verb == "node_facts":
                    answer["result"].update(self.hardware(request["args"]))
        back = [(real, virtual) for virtual, real in self.mounts]
        raw = json.dumps(_map(answer, back)).encode()
        return rpc_mod.decode_answer(self.name, verb, raw, b"", 0)

    def _ip(self, argv: list[str], check: bool = True) -> tuple[int, str]:
        """`ip` and `arping` as the master IP verbs use them, on this node's addresses."""
        if argv[:2] == ["ip", "addr"] and argv[2] in ("add", "del"):
            address = argv[3].split("/")[0]
            (self.master_ips.add if argv[2] == "add" else self.master_ips.discard)(address)
            return 0, ""
        if argv[0] == "ip" and "addr" in argv and "show" in argv:
            return 0, "".join(f"3: {argv[-1]}    inet {a}/32 scope global {argv[-1]}\n" for a in sorted(self.master_ips))
        return 0, ""  # `ip link show dev br0` (the netdev exists), arping

    def _ovs(self, args: list[str], what: str, check: bool = True) -> tuple[int, str]:
        """ovs-vsctl on this node's simulated switch: br-exists answers from ``ovs_bridges``."""
        self.ovs_calls.append(list(args))
        if args[:1] == ["br-exists"]:
            return (0 if args[1] in (self.ovs_bridges or set()) else 2), ""
        return 0, ""

    def _reaches(self, address: Any, port: Any, timeout: float = 3.0) -> bool:
        """Whether this node reaches address's SSH port: the node there is up, or a partition
        leaves this node on its side."""
        probed = self.peers.get(str(address))
        return probed is not None and (probed.reachable or probed.name in self.still_sees)

    def hardware(self, args: dict[str, Any]) -> dict[str, Any]:
        """node_facts values that describe this machine rather than the simulated node."""
        found = {"hostname": self.hostname, "addresses": list(self.addresses), "memory_total": self.memory_total,
                 "memory_free": self.memory_free, "cpu_count": 2, "qemu_version": "7.2.0",
                 "kvm": {"usable": False, "reason": "no hardware KVM in the unit tests"}, "bridges": list(self.bridges)}
        if args.get("vg"):
            vg = args["vg"]
            present = vg in self.volumes.vgs
            found["volume_group"] = {"name": vg, "present": present, "size": self.volumes.vgs.get(vg, 0),
                                     "free": self.volumes.free(vg) if present else 0}
        return found

    # --------------------------------------------------------------- what the node holds
    def _hv_states(self) -> dict[str, dict[str, Any]]:
        directory = os.path.join(self.state_dir, "fake")
        out = {}
        if os.path.isdir(directory):
            for entry in sorted(os.listdir(directory)):
                if entry.endswith(".json"):
                    out[entry[:-5]] = json.loads(Path(directory, entry).read_text())
        return out

    def _in_state(self, status: str) -> dict[str, dict[str, Any]]:
        return {name: data["spec"] for name, data in self._hv_states().items() if data.get("status") == status}

    @property
    def running(self) -> dict[str, dict[str, Any]]:
        """{instance: runtime spec} of the guests running here."""
        return self._in_state("running")

    @property
    def incoming(self) -> dict[str, dict[str, Any]]:
        return self._in_state("incoming")

    @property
    def migrated(self) -> dict[str, dict[str, Any]]:
        return self._in_state("postmigrate")

    @property
    def runtime_files(self) -> set:
        return set(self._hv_states())

    def hv_state(self, name: str) -> dict[str, Any] | None:
        return self._hv_states().get(name)

    def put(self, name: str, spec: dict[str, Any], status: str = "running") -> None:
        """Leave a guest in ``status`` here (what a crash or an interrupted migration leaves)."""
        path = os.path.join(self.state_dir, "fake", f"{name}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        migration = {"status": "completed"} if status == "postmigrate" else None
        Path(path).write_text(json.dumps({"spec": spec, "status": status, "started": 0, "migration": migration}))

    def drop(self, name: str) -> None:
        """The guest's process died and left nothing."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.state_dir, "fake", f"{name}.json"))

    @property
    def aborted(self) -> list[str]:
        return [args.get("name") for verb, args in self.requests if verb == "migration_abort"]

    @property
    def disks(self) -> dict[str, int]:
        """{"<instance>/<disk uuid>": MiB} of every disk this node holds or sees (shared storage too)."""
        found: dict[str, int] = {}
        for _virtual, real in self.mounts:
            directory = Path(real, "file-storage")
            for path in sorted(directory.glob("*/*.disk*")):
                found[f"{path.parent.name}/{path.name.split('.')[0]}"] = path.stat().st_size // 2**20
        for (_vg, lv), volume in self.volumes.lvs.items():
            if lv.endswith("_meta"):  # a drbd disk counts once, by its data LV
                continue
            instance = next((t[len(INSTANCE_TAG_PREFIX):] for t in volume["tags"]
                             if t.startswith(INSTANCE_TAG_PREFIX)), "?")
            found[f"{instance}/{lv.split('.')[0]}"] = volume["size"]
        return found

    def _file(self, name: str) -> Path:
        return Path(self.state_dir, name)

    @property
    def config(self) -> dict[str, Any] | None:
        path = self._file(CONFIG_NAME)
        return json.loads(path.read_text()) if path.exists() else None

    @config.setter
    def config(self, data: dict[str, Any] | None) -> None:
        if data is None:  # the node holds no copy (not a master candidate, or never had one)
            self._file(CONFIG_NAME).unlink(missing_ok=True)
        else:
            write_json_atomic(str(self._file(CONFIG_NAME)), data)

    @property
    def ssconf(self) -> dict[str, Any] | None:
        path = self._file(SSCONF_NAME)
        return json.loads(path.read_text()) if path.exists() else None

    @ssconf.setter
    def ssconf(self, data: dict[str, Any]) -> None:
        write_json_atomic(str(self._file(SSCONF_NAME)), data, mode=0o644)


class AgentRpc:
    """call/call_many like rpc.Rpc, delivering each request to the addressed node's agent."""

    def __init__(self, nodes: list[AgentNode], local: AgentNode):
        self.by_ip = {n.addresses[0]: n for n in nodes}
        self.by_name = {n.name: n for n in nodes}
        self.local = local
        for node in nodes:
            node.drbd.peers = {n.name: n.drbd for n in nodes}
            node.peers = dict(self.by_ip)
        self.log: list[Any] = []  # (node, verb, disk index or None), in call order across nodes

    def node_for(self, endpoint: Any) -> AgentNode:
        node = self.by_ip.get(endpoint.address)
        if node is None or not node.reachable:
            raise RpcError(endpoint.name, "connect", f"cannot reach {endpoint.address}:22: No route to host")
        if endpoint.name != self.local.name and endpoint.host_keys.get("ssh-ed25519") != node.host_key:
            raise RpcError(endpoint.name, "connect", "host key mismatch")
        return node

    def call(self, endpoint: Any, verb: str, args: dict[str, Any] | None = None,
             timeout: Any = None) -> dict[str, Any]:
        node = self.node_for(endpoint)
        args = args or {}
        node.calls.append(verb)
        node.requests.append((verb, args))
        self.log.append((node.name, verb, args.get("index")))
        if verb in node.fail:
            raise RpcError(endpoint.name, verb, node.fail[verb])
        with WORLD_LOCK:
            return node.handle(verb, args)

    def call_many(self, calls: list[Any], timeout: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for endpoint, verb, args in calls:
            try:
                out[endpoint.name] = self.call(endpoint, verb, args)
            except RpcError as exc:
                out[endpoint.name] = exc
        return out

    def close(self) -> None:
        pass

    def crypto_dir(self, node: AgentNode) -> str:
        """Where that node's agent keeps its certificates (crypto.crypto_dir as seen on the node)."""
        with node.world():
            return crypto.crypto_dir()


class DrbdSim:
    """The DRBD kernel module and drbd-utils of one node, as the drbd template's verbs see them.

    Connected only when both sides are up and point at each other; a connected
    UpToDate side syncs an Inconsistent peer in ``sync_polls`` status polls.
    A disk's backing store is its data and meta LVs in the node's volume group,
    named and tagged as the drbd template creates them.
    """

    sync_polls = 2
    vg = "gnt"

    def __init__(self, node: AgentNode):
        self.node = node
        self.state: dict[str, dict[str, Any]] = {}  # key -> {"minor", "peer", "cs", "role", "disk", "oos", "polls"}
        self.modes: list[Any] = []
        self.peers: dict[str, DrbdSim] = {}       # filled by the fixture: node name -> its DrbdSim

    def __contains__(self, key: str) -> bool:
        return key in self.state

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self.state[key]

    def __eq__(self, other: Any) -> bool:
        return self.state == other

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------- the backing LVs, in the node's volume group
    def _lvs(self, key: str) -> dict[str, tuple[str, str]]:
        """{"data"|"meta": (vg, lv)} of the disk ``key`` ("<instance>/<disk uuid>") present here."""
        instance, uuid = key.split("/", 1)
        tag = instance_tag(instance)
        found = {}
        for (vg, lv), volume in self.node.volumes.lvs.items():
            if lv.startswith(f"{uuid}.disk") and tag in volume["tags"]:
                for role in ("data", "meta"):
                    if lv.endswith(f"_{role}"):
                        found[role] = (vg, lv)
        return found

    @property
    def disks(self) -> dict[str, int]:
        """{"<instance>/<disk uuid>": MiB of the data LV} of every drbd disk whose data LV is here."""
        out = {}
        for (_vg, lv), volume in self.node.volumes.lvs.items():
            instance = next((t[len(INSTANCE_TAG_PREFIX):] for t in volume["tags"]
                             if t.startswith(INSTANCE_TAG_PREFIX)), None)
            if instance is not None and lv.endswith("_data"):
                out[f"{instance}/{lv.split('.')[0]}"] = volume["size"]
        return out

    def volumes(self, key: str, size: int, index: int = 0) -> None:
        """Create the disk's data and meta LVs (what drbd_create's lvcreate leaves)."""
        instance, uuid = key.split("/", 1)
        tags = [HERD_TAG, instance_tag(instance)]
        group = self.node.volumes
        for suffix, mib in (("_data", size), ("_meta", DRBD_META_SIZE_MIB)):
            group.lvs.setdefault((self.vg, f"{uuid}.disk{index}{suffix}"),
                                 {"size": group._round(mib), "tags": list(tags)})

    def remove_volumes(self, key: str) -> None:
        for name in self._lvs(key).values():
            del self.node.volumes.lvs[name]

    # ------------------------------------------------- states the tests put the kernel in
    def leftover(self, key: str, minor: int = 0, peer: str = "node4") -> None:
        """A resource the kernel runs that the cluster config does not know (e.g. removed while offline)."""
        self.state[key] = {"minor": minor, "peer": peer, "cs": "StandAlone", "role": "Secondary",
                           "disk": "UpToDate", "oos": 0, "polls": 0}

    def standalone(self, key: str) -> None:
        """The resource dropped its connection (split brain): StandAlone, up if it was down."""
        self.state.setdefault(key, {"minor": 0, "peer": "", "cs": "StandAlone", "role": "Secondary",
                                    "disk": "UpToDate", "oos": 0, "polls": 0})
        self.state[key]["cs"] = "StandAlone"

    def set_role(self, key: str, role: str) -> None:
        """What a demote or promote that failed half-way left behind."""
        self.state[key]["role"] = role

    def down(self, key: str) -> None:
        """The device is not configured (drbdsetup down, a reboot); its LVs stay."""
        del self.state[key]

    def out_of_sync(self, key: str, kib: int) -> None:
        """Blocks DRBD knows differ from the peer's (the oos counter of /proc/drbd, in KiB)."""
        self.state[key]["oos"] = kib

    def handles(self, verb: str, args: dict[str, Any]) -> bool:
        # drbd_status without a disk reads /proc/drbd in the agent itself
        return args.get("template") == "drbd" and (verb.startswith("drbd_") or verb in DRBD_DISK_VERBS)

    def _peer(self, args: dict[str, Any]) -> str:
        return next(n for n in args["drbd"]["nodes"] if n != self.node.name)

    def _up(self, key: str, args: dict[str, Any], cs: str = "Connected", disk: str = "UpToDate") -> None:
        spec = args["drbd"]
        self.state[key] = {"minor": spec["nodes"][self.node.name]["minor"], "peer": self._peer(args), "cs": cs,
                           "role": "Primary" if spec["primary"] == self.node.name and cs == "Connected"
                           else "Secondary", "disk": disk, "oos": 0, "polls": 0}

    def status(self, key: str, advance: bool = True) -> dict[str, Any] | None:
        """The resource's state as drbd_status reports it; ``advance``: a poll moves a resync on."""
        state = self.state.get(key)
        if state is None:
            return None
        peer_sim = self.peers.get(state["peer"])
        peer = peer_sim.state.get(key) if peer_sim is not None else None
        connected = (state["cs"] == "Connected" and peer is not None and peer["cs"] == "Connected"
                     and peer["peer"] == self.node.name and peer_sim.node.reachable)
        cs = "StandAlone" if state["cs"] == "StandAlone" else "WFConnection"
        peer_disk = "DUnknown"
        peer_role = "Unknown"
        in_resync = False
        percent = None
        if connected:
            cs = "Connected"
            peer_disk = peer["disk"]
            peer_role = peer["role"]
            if state["disk"] == "UpToDate" and peer["disk"] == "Inconsistent":
                polls = state["polls"] + 1
                if advance:
                    state["polls"] = polls
                if polls > self.sync_polls:
                    if advance:
                        peer["disk"] = "UpToDate"
                        state["polls"] = 0  # the next resync from this side starts from zero
                    peer_disk = "UpToDate"
                else:
                    cs, in_resync, percent = "SyncSource", True, 100.0 * (polls - 1) / self.sync_polls
            elif state["disk"] == "Inconsistent" and peer["disk"] == "UpToDate":
                # this side's storage was replaced: it syncs from the peer
                polls = state["polls"] + 1
                if advance:
                    state["polls"] = polls
                if polls > self.sync_polls:
                    if advance:
                        state["disk"] = "UpToDate"
                        state["polls"] = 0
                else:
                    cs, in_resync, percent = "SyncTarget", True, 100.0 * (polls - 1) / self.sync_polls
        return {"minor": state["minor"], "cs": cs, "role": state["role"], "peer_role": peer_role,
                "disk": state["disk"], "peer_disk": peer_disk, "connected": cs == "Connected",
                "standalone": cs == "StandAlone", "in_resync": in_resync, "sync_percent": percent,
                "eta_seconds": 3 if in_resync else None, "primary": state["role"] == "Primary",
                "disk_uptodate": state["disk"] == "UpToDate", "peer_uptodate": peer_disk == "UpToDate",
                "oos": state.get("oos", 0)}

    def proc_text(self) -> str:
        """/proc/drbd of this node (DRBD 8.4), read-only: writing it does not move a resync on."""
        lines = ["version: 8.4.11 (api:1/proto:86-101)", "srcversion: 0"]
        rows = sorted(((st["minor"], self.status(key, advance=False)) for key, st in self.state.items()),
                      key=lambda row: row[0])
        for minor, st in rows:
            assert st is not None
            lines.append(f" {minor}: cs:{st['cs']} ro:{st['role']}/{st['peer_role']} "
                         f"ds:{st['disk']}/{st['peer_disk']} C r-----")
            lines.append(f"    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:{st['oos']}")
            if st["in_resync"]:
                lines.append(f"\t[=>..................] sync'ed: {st['sync_percent']:.1f}% (0/0)K")
                lines.append("\tfinish: 0:00:03 speed: 1,024 (1,024) K/sec")
        return "\n".join(lines) + "\n"

    def answer(self, verb: str, args: dict[str, Any]) -> dict[str, Any]:
        key = f"{args['instance']}/{args['disk']['uuid']}"
        uuid, index = args["disk"]["uuid"], args["index"]
        logical_id = {"vg": self.vg, "data_lv": f"{uuid}.disk{index}_data", "meta_vg": self.vg,
                      "meta_lv": f"{uuid}.disk{index}_meta", "resource": f"herd-{uuid}"}
        lvs = self._lvs(key)
        if verb in ("disk_create", "drbd_create"):
            self.volumes(key, args["disk"]["size"], index)
            if args.get("standalone"):
                self._up(key, args, cs="StandAlone", disk="Inconsistent")
            else:
                # a new resource: the primary's data is the sync source, the peer syncs from it
                self._up(key, args, disk="UpToDate" if args["drbd"]["primary"] == self.node.name else "Inconsistent")
            return {"changed": True, "path": f"/dev/drbd{self.state[key]['minor']}", "logical_id": logical_id}
        if verb in ("disk_remove", "drbd_remove"):
            self.state.pop(key, None)
            self.remove_volumes(key)
            return {"changed": True}
        if verb == "disk_shutdown":
            return {"changed": self.state.pop(key, None) is not None}
        if verb == "disk_info":
            return {"exists": "data" in lvs, "data_lv": "data" in lvs, "meta_lv": "meta" in lvs,
                    "config": key in self.state, "status": self.status(key)}
        if verb == "disk_grow":
            volume = self.node.volumes.lvs[lvs["data"]]
            assert args["new_size"] >= volume["size"]
            volume["size"] = args["new_size"]
            return {"changed": True}
        if verb == "disk_assemble":
            assert "data" in lvs, f"disk {key} missing on {self.node.name}"
            minor = args["drbd"]["nodes"][self.node.name]["minor"]
            # an explicit promote of a configured device (activate-disks); None is the start's default
            promoted = bool(args.get("promote")) and key in self.state and self.state[key]["role"] != "Primary"
            if promoted:
                self.state[key]["role"] = "Primary"
            return {"changed": promoted, "path": f"/dev/drbd{minor}", "format": "raw"}
        if verb == "drbd_attach":
            assert "data" in lvs, f"disk {key} missing on {self.node.name}"
            changed = key not in self.state
            if changed:
                self._up(key, args)
                self.state[key]["role"] = "Secondary"
            return {"changed": changed, "path": f"/dev/drbd{self.state[key]['minor']}"}
        if verb == "drbd_disconnect":
            self.state[key]["cs"] = "StandAlone"
            return {"changed": True}
        if verb == "drbd_connect":
            state = self.state[key]
            changed = state["cs"] == "StandAlone"
            state.update(cs="Connected", peer=self._peer(args), minor=args["drbd"]["nodes"][self.node.name]["minor"])
            return {"changed": changed}
        if verb == "drbd_replace_local":
            stamp = args["stamp"]
            for vg, lv in lvs.values():
                self.node.volumes.lvs[(vg, f"{lv}_replaced-{stamp}")] = self.node.volumes.lvs.pop((vg, lv))
            self.volumes(key, args["disk"]["size"], index)
            self.state[key].update(disk="Inconsistent", polls=0)
            return {"changed": True, "replaced": [f"{vg}/{lv}_replaced-{stamp}" for vg, lv in lvs.values()]}
        if verb == "drbd_remove_replaced":
            gone = [name for name in self.node.volumes.lvs if name[1].endswith(f"_replaced-{args['stamp']}")
                    and name[1].startswith(args["disk"]["uuid"])]
            for name in gone:
                del self.node.volumes.lvs[name]
            return {"changed": bool(gone)}
        if verb == "drbd_status":
            return {"loaded": True, "status": self.status(key), "minor": self.state.get(key, {}).get("minor")}
        if verb == "drbd_set_mode":
            self.modes.append((args["instance"], args["role"], args["dual_primary"]))
            return {"changed": True}
        raise AssertionError(f"DrbdSim has no answer for {verb}")
