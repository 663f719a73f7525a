"""A fake set of nodes answering the agent verbs the ops use, in process."""

import base64
import copy
from typing import Any

from plugins.module_utils.herd.errors import RpcError
from plugins.module_utils.herd.version import VERSION


def fake_host_key(seed: int) -> str:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([seed % 256]) * 32
    return base64.b64encode(blob).decode()


class FakeNode:
    def __init__(self, name: str, primary_ip: str, secondary_ip: str, index: int):
        self.name = name
        self.addresses = [primary_ip, secondary_ip]
        self.hostname = name
        self.host_key = fake_host_key(index)
        self.ssconf: dict[str, Any] | None = None
        self.config: dict[str, Any] | None = None
        self.reachable = True
        self.agent_version = VERSION
        self.memory_total = 4096
        self.calls: list[str] = []
        self.disks: dict[str, int] = {}        # "<instance>/<disk uuid>" -> MiB
        self.running: dict[str, dict[str, Any]] = {}  # instance -> runtime spec
        self.runtime_files: set = set()
        self.fail: dict[str, str] = {}         # verb -> error message to raise
        self.incoming: dict[str, Any] = {}
        self.migrating: dict[str, Any] = {}
        self.migration_status: dict[str, Any] | None = None
        self.aborted: list[str] = []
        self.migrated: set = set()
        self.drbd_modes: list[Any] = []
        # "<instance>/<disk uuid>" -> {"minor", "peer", "cs": Connected|StandAlone, "role", "disk", "polls"}
        self.drbd: dict[str, dict[str, Any]] = {}
        self.master_ips: set = set()
        self.still_sees: set = set()  # unreachable nodes this one still reaches (a partition)


class FakeRpc:
    """Implements call/call_many like rpc.Rpc over FakeNodes keyed by primary IP."""

    def __init__(self, nodes: list[FakeNode], local: FakeNode, store: Any):
        self.by_ip = {n.addresses[0]: n for n in nodes}
        self.by_name = {n.name: n for n in nodes}
        self.local = local
        self.store = store  # the master's ConfigStore: the local node's files
        self.shared_disks: dict[str, int] = {}
        self.log: list[Any] = []  # (node, verb, disk index or None), in call order across nodes
        self.sync_polls = 2       # drbd_status polls a resync towards an Inconsistent peer takes

    def node_for(self, endpoint: Any) -> FakeNode:
        node = self.by_ip.get(endpoint.address)
        if node is None or not node.reachable:
            raise RpcError(endpoint.name, "connect", f"cannot reach {endpoint.address}:22: No route to host")
        if endpoint.name != self.local.name and endpoint.host_keys.get("ssh-ed25519") != node.host_key:
            raise RpcError(endpoint.name, "connect", "host key mismatch")
        return node

    def call(self, endpoint: Any, verb: str, args: dict[str, Any] | None = None, timeout: Any = None) -> dict[str, Any]:
        node = self.node_for(endpoint)
        node.calls.append(verb)
        self.log.append((node.name, verb, (args or {}).get("index")))
        if node.agent_version != VERSION:
            raise RpcError(endpoint.name, verb, f"the agent there is version {node.agent_version!r} but this master is {VERSION}")
        args = args or {}
        if verb in node.fail:
            raise RpcError(endpoint.name, verb, node.fail[verb])
        instance_answer = self.instance_verb(node, verb, args)
        if instance_answer is not None:
            return instance_answer
        if verb == "node_facts":
            return {"hostname": node.hostname, "addresses": list(node.addresses), "memory_total": node.memory_total,
                    "memory_free": 2048, "cpu_count": 2, "qemu_version": "7.2.0", "agent_version": VERSION,
                    "kvm": {"usable": False, "reason": "test"}, "bridges": ["br0"],
                    "volume_group": {"name": args.get("vg"), "present": True, "size": 2048, "free": 2048},
                    "file_storage": [{"path": p, "exists": True, "total": 1000, "free": 1000}
                                     for p in args.get("file_dirs", [])]}
        if verb == "cluster_membership":
            if node is self.local:
                ssconf = self.store.load_ssconf()
                data = self.store.load().to_dict() if self.store.exists() else None
            else:
                ssconf, data = copy.deepcopy(node.ssconf), node.config
            answer = {"ssconf": ssconf, "config_serial": data["serial_no"] if data else None,
                      "config_epoch": data["cluster"].get("master_epoch", 0) if data else None}
            if args.get("probe"):
                probed = self.by_ip.get(args["probe"]["address"])
                answer["probe_reachable"] = probed is not None and (probed.reachable or probed.name in node.still_sees)
            return answer
        if verb == "config_read":
            data = self.store.load().to_dict() if node is self.local else node.config
            if data is None:
                raise RpcError(endpoint.name, verb, "this node holds no copy of the cluster config")
            return {"config": copy.deepcopy(data)}
        if verb in ("master_ip_add", "master_ip_remove"):
            had = args["ip"] in node.master_ips
            if verb == "master_ip_add":
                node.master_ips.add(args["ip"])
            else:
                node.master_ips.discard(args["ip"])
            return {"changed": had != (verb == "master_ip_add")}
        if verb == "ssconf_write":
            node.ssconf = copy.deepcopy(args["ssconf"])
            return {"changed": True}
        if verb == "config_write":
            node.config = copy.deepcopy(args["config"])
            from plugins.module_utils.herd.config import Config
            node.ssconf = Config.from_dict(node.config).ssconf()
            return {"changed": True, "serial_no": node.config["serial_no"]}
        if verb == "storage_list":
            return self.storage_list(node)
        if verb == "cluster_leave":
            node.ssconf = None
            node.config = None
            return {"changed": True}
        if verb == "crypto_install":
            from plugins.module_utils.herd import crypto
            return crypto.install(args.get("ca_cert"), args.get("cert"), args.get("key"), args.get("ca_key"),
                                  directory=self.crypto_dir(node))
        raise RpcError(endpoint.name, verb, "unknown verb in fake")

    def storage_list(self, node: FakeNode) -> dict[str, Any]:
        """The agent's storage_list for the LVM-backed disks this node holds (names as the
        real templates make them, tagged herd) and its DRBD minors."""
        config = self.store.load() if self.store.exists() else None
        lvs = []
        for key in sorted(node.disks):
            name, uuid = key.split("/")
            inst = config.instances.get(name) if config else None
            if inst is None or inst.disk_template not in ("plain", "drbd"):
                continue
            index = next(i for i, d in enumerate(inst.disks) if d.uuid == uuid)
            suffixes = ["_data", "_meta"] if inst.disk_template == "drbd" else [""]
            lvs += [{"vg": config.cluster.volume_group, "lv": f"{uuid}.disk{index}{suffix}", "herd": True,
                     "instance": name, "tags": ["herd"]} for suffix in suffixes]
        minors = {str(state["minor"]): self.drbd_status(node, key) for key, state in node.drbd.items()}
        return {"lvs": lvs, "files": [], "seeds": [], "errors": [], "drbd": {"configs": [], "proc": {"minors": minors}}}

    def crypto_dir(self, node: FakeNode) -> str:
        """Each node's certificate directory: the master's is beside its config, as on a real node."""
        import os
        if node is self.local:
            return os.path.join(self.store.state_dir, "crypto")
        return os.path.join(os.path.dirname(self.store.state_dir), "nodes", node.name, "crypto")

    # ---------------------------------------------------------------- drbd
    def _peer(self, node: FakeNode, args: dict[str, Any]) -> str:
        return next(n for n in args["drbd"]["nodes"] if n != node.name)

    def _drbd_up(self, node: FakeNode, key: str, args: dict[str, Any], cs: str = "Connected",
                 disk: str = "UpToDate") -> None:
        spec = args["drbd"]
        node.drbd[key] = {"minor": spec["nodes"][node.name]["minor"], "peer": self._peer(node, args), "cs": cs,
                          "role": "Primary" if spec["primary"] == node.name and cs == "Connected" else "Secondary",
                          "disk": disk, "polls": 0}

    def drbd_status(self, node: FakeNode, key: str) -> dict[str, Any] | None:
        """What /proc/drbd would say: Connected only when both sides are up and point at each other;
        a connected UpToDate side syncs an Inconsistent peer in ``sync_polls`` polls."""
        state = node.drbd.get(key)
        if state is None:
            return None
        peer_node = self.by_name.get(state["peer"])
        peer = peer_node.drbd.get(key) if peer_node is not None else None
        connected = (state["cs"] == "Connected" and peer is not None and peer["cs"] == "Connected"
                     and peer["peer"] == node.name and peer_node.reachable)
        cs = "StandAlone" if state["cs"] == "StandAlone" else "WFConnection"
        peer_disk = "DUnknown"
        in_resync = False
        percent = None
        if connected:
            cs = "Connected"
            peer_disk = peer["disk"]
            if state["disk"] == "UpToDate" and peer["disk"] == "Inconsistent":
                state["polls"] += 1
                if state["polls"] > self.sync_polls:
                    peer["disk"] = peer_disk = "UpToDate"
                else:
                    cs, in_resync, percent = "SyncSource", True, 100.0 * (state["polls"] - 1) / self.sync_polls
        return {"minor": state["minor"], "cs": cs, "role": state["role"], "disk": state["disk"],
                "peer_disk": peer_disk, "connected": cs == "Connected", "standalone": cs == "StandAlone",
                "in_resync": in_resync, "sync_percent": percent, "eta_seconds": 3 if in_resync else None,
                "primary": state["role"] == "Primary", "disk_uptodate": state["disk"] == "UpToDate",
                "peer_uptodate": peer_disk == "UpToDate"}

    def drbd_verb(self, node: FakeNode, verb: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if verb == "drbd_status" and not args.get("template"):
            return {"loaded": True, "minors": {str(st["minor"]): self.drbd_status(node, key)
                                               for key, st in node.drbd.items()}}
        if args.get("template") != "drbd" or not (verb.startswith("drbd_") or verb in (
                "disk_create", "disk_remove", "disk_shutdown", "disk_info")):
            return None
        key = f"{args['instance']}/{args['disk']['uuid']}"
        uuid, index = args["disk"]["uuid"], args["index"]
        if verb == "disk_create":  # the generic disk bookkeeping follows in instance_verb
            self._drbd_up(node, key, args)
            return None
        if verb == "drbd_create":
            node.disks.setdefault(key, args["disk"]["size"])
            if args.get("standalone"):
                self._drbd_up(node, key, args, cs="StandAlone", disk="Inconsistent")
            else:
                self._drbd_up(node, key, args)
            return {"changed": True, "path": f"/dev/drbd{node.drbd[key]['minor']}",
                    "logical_id": {"vg": "gnt", "data_lv": f"{uuid}.disk{index}_data", "meta_vg": "gnt",
                                   "meta_lv": f"{uuid}.disk{index}_meta", "resource": f"herd-{uuid}"}}
        if verb in ("disk_remove", "drbd_remove"):
            node.drbd.pop(key, None)
            node.disks.pop(key, None)
            return {"changed": True}
        if verb == "disk_shutdown":
            return {"changed": node.drbd.pop(key, None) is not None}
        if verb == "disk_info":
            return {"exists": key in node.disks, "data_lv": key in node.disks, "meta_lv": key in node.disks,
                    "config": key in node.drbd, "status": self.drbd_status(node, key)}
        if verb == "drbd_attach":
            assert key in node.disks, f"disk {key} missing on {node.name}"
            if key not in node.drbd:
                self._drbd_up(node, key, args)
                node.drbd[key]["role"] = "Secondary"
                return {"changed": True, "path": "/dev/drbd"}
            return {"changed": False, "path": "/dev/drbd"}
        if verb == "drbd_disconnect":
            node.drbd[key]["cs"] = "StandAlone"
            return {"changed": True}
        if verb == "drbd_connect":
            state = node.drbd[key]
            changed = state["cs"] == "StandAlone"
            state.update(cs="Connected", peer=self._peer(node, args),
                         minor=args["drbd"]["nodes"][node.name]["minor"])
            return {"changed": changed}
        if verb == "drbd_status":
            return {"loaded": True, "status": self.drbd_status(node, key), "minor": node.drbd.get(key, {}).get("minor")}
        return None

    def instance_verb(self, node: FakeNode, verb: str, args: dict[str, Any]) -> dict[str, Any] | None:
        drbd_answer = self.drbd_verb(node, verb, args)
        if drbd_answer is not None:
            return drbd_answer
        if verb.startswith("disk_"):
            key = f"{args['instance']}/{args['disk']['uuid']}"
            if args["template"] == "sharedfile":  # one directory seen by every node
                for other in self.by_ip.values():
                    other.disks = self.shared_disks
            if verb == "disk_create":
                node.disks.setdefault(key, args["disk"]["size"])
                return {"logical_id": {"path": f"/fake/{key}"}, "changed": True}
            if verb == "disk_remove":
                node.disks.pop(key, None)
                return {"changed": True}
            if verb == "disk_grow":
                assert args["new_size"] >= node.disks[key]
                node.disks[key] = args["new_size"]
                return {"changed": True}
            if verb == "disk_assemble":
                assert key in node.disks, f"disk {key} missing on {node.name}"
                return {"path": f"/fake/{key}", "format": "raw"}
        if verb in ("os_install", "cloud_init_seed_create", "cloud_init_seed_remove"):
            return {"changed": True}
        if verb == "instance_start":
            spec = args["instance"]
            node.running[spec["name"]] = spec
            node.runtime_files.add(spec["name"])
            return {"changed": True}
        if verb == "instance_stop":
            node.running.pop(args["name"], None)
            return {"changed": True}
        if verb == "instance_cleanup":
            node.runtime_files.discard(args["name"])
            return {"changed": True}
        if verb == "instance_list":
            listed = {name: {"memory": spec["memory"], "status": "running"} for name, spec in node.running.items()}
            if args.get("all"):
                listed.update({name: {"status": "incoming"} for name in node.incoming})
                listed.update({name: {"status": "migrated"} for name in node.migrated})
            return {"instances": listed}
        if verb == "instance_disk_grown":
            return {"changed": True}
        if verb == "migration_info":
            return {"runtime": dict(node.running[args["name"]])}
        if verb == "migration_accept":
            node.incoming[args["name"]] = args["runtime"]
            return {"port": 8102}
        if verb == "migration_start":
            node.migrating[args["name"]] = args
            return {"changed": True}
        if verb == "migration_status":
            return node.migration_status or {"status": "completed", "total_time_ms": 700, "downtime_ms": 20,
                                             "transferred": 1, "total": 1, "remaining": 0}
        if verb == "migration_finalize":
            name = args["name"]
            if args["role"] == "target":
                spec = node.incoming.pop(name, None)
                if args["success"] and spec is not None:
                    node.running[name] = spec
            else:
                node.running.pop(name, None)
                node.migrating.pop(name, None)
                node.migrated.discard(name)
            return {"changed": True}
        if verb == "migration_abort":
            node.migrating.pop(args["name"], None)
            node.aborted.append(args["name"])
            return {"changed": True}
        if verb == "drbd_set_mode":
            node.drbd_modes.append((args["instance"], args["role"], args["dual_primary"]))
            return {"changed": True}
        return None

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
