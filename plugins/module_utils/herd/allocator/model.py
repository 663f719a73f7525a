"""Cluster model for herd's allocator (htools-compatible semantics).

Nodes, instances and groups are indexed by integers (their position in
``Cluster.nodes`` / ``Cluster.instances`` / ``Cluster.groups``).  Every per-node
aggregate htools keeps (unallocated memory, rMem and the peer map for N+1, used
vCPUs, spindles, exclusion-tag counts, location scores, dynamic load) is kept
up to date by four primitive operations:

* ``Cluster.add_pri(ndx, idx, force)`` / ``Cluster.remove_pri(ndx, idx)``
* ``Cluster.add_sec(ndx, idx, pdx, force)`` / ``Cluster.remove_sec(ndx, idx)``

Each primitive touches only the node it names and updates the score
statistics (see ``score.py``) for that node in O(1), so a candidate move
costs a handful of primitive calls.  ``checkpoint()``/``rollback()`` undo any
sequence of primitives and instance node changes exactly, which is how
candidate moves are evaluated without copying the cluster.

The semantics follow Ganeti htools (``Node.hs``, ``Loader.hs``): the memory
model (``unallocatedMem``), the forthcoming-instance bookkeeping and the
hard/soft check order of ``addPriEx``/``addSecExEx``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import rules
from .score import Stats, node_vector

NO_NODE = -1

# Disk templates (Ganeti raw names).
DISK_TEMPLATES = (
    "diskless", "file", "sharedfile", "plain", "blockdev", "drbd", "rbd", "ext", "gluster",
)
LOCAL_STORAGE = frozenset({"drbd", "plain"})
MOVABLE_TEMPLATES = frozenset({"drbd", "blockdev", "sharedfile", "gluster", "rbd", "ext"})
# Ganeti.Types.diskTemplateMovable: templates that can be "evacuated" by failover-to-any.
SHARED_MOVABLE = frozenset({"diskless", "sharedfile", "rbd", "ext", "gluster"})
MIRROR_INTERNAL = frozenset({"drbd"})
MIRROR_EXTERNAL = frozenset({"diskless", "sharedfile", "blockdev", "rbd", "ext", "gluster"})

INSTANCE_STATUSES = (
    "running", "ADMIN_down", "ADMIN_offline", "ERROR_up", "ERROR_down",
    "ERROR_nodedown", "ERROR_nodeoffline", "USER_down", "ERROR_wrongnode",
)
_USES_MEMORY = frozenset({"running", "ERROR_up", "ERROR_nodedown", "ERROR_nodeoffline",
                          "ERROR_wrongnode"})
ALLOC_POLICIES = ("preferred", "last_resort", "unallocable")

EXTAGS_PREFIX = "htools:iextags:"
MIGRATION_PREFIX = "htools:migration:"
ALLOW_MIGRATION_PREFIX = "htools:allowmigration:"
LOCATION_PREFIX = "htools:nlocation:"
DESIRED_LOCATION_PREFIX = "htools:desiredlocation:"


def mirror_type(template: str) -> str:
    """Return "internal", "external" or "none" (Ganeti templateMirrorType)."""
    if template in MIRROR_INTERNAL:
        return "internal"
    if template in MIRROR_EXTERNAL:
        return "external"
    return "none"


def required_nodes(template: str) -> int:
    return 2 if template == "drbd" else 1


def disk_space_total(template: str, sizes: Iterable[int]) -> int:
    """Ganeti ComputeDiskSize: drbd adds its metadata volume per disk."""
    sizes = list(sizes)
    if template == "drbd":
        # imported here: herd's config module (and its imports) is most of
        # the allocator's start-up, and only new drbd instances need it
        from ..config import DRBD_META_SIZE_MIB
        return sum(s + DRBD_META_SIZE_MIB for s in sizes)
    if template in ("diskless", "blockdev"):
        return 0
    return sum(sizes)


# --------------------------------------------------------------------------- policy

@dataclass(frozen=True)
class ISpec:
    memory_size: int = 128
    cpu_count: int = 1
    disk_size: int = 1024
    disk_count: int = 1
    nic_count: int = 1
    spindle_use: int = 1

    KEYS = ("memory-size", "cpu-count", "disk-size", "disk-count", "nic-count", "spindle-use")

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.KEYS, (self.memory_size, self.cpu_count, self.disk_size,
                                    self.disk_count, self.nic_count, self.spindle_use)))

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: "ISpec | None" = None) -> "ISpec":
        base = base or cls()
        vals = dict(zip(cls.KEYS, (base.memory_size, base.cpu_count, base.disk_size,
                                   base.disk_count, base.nic_count, base.spindle_use)))
        for k, v in d.items():
            if k not in vals:
                raise ValueError(f"unknown ipolicy spec key {k!r} (expected one of "
                                 f"{', '.join(cls.KEYS)})")
            vals[k] = int(v)
        return cls(*(vals[k] for k in cls.KEYS))


DEFAULT_MIN = ISpec(128, 1, 1024, 1, 1, 1)
DEFAULT_MAX = ISpec(32768, 8, 1048576, 16, 8, 12)
DEFAULT_STD = ISpec(128, 1, 1024, 1, 1, 1)
# htools' defIPolicy lists every template in this order.
DEFAULT_TEMPLATES = ("diskless", "file", "sharedfile", "plain", "blockdev", "drbd", "rbd", "ext",
                     "gluster")


@dataclass(frozen=True)
class IPolicy:
    minmax: tuple[tuple[ISpec, ISpec], ...] = ((DEFAULT_MIN, DEFAULT_MAX),)
    std: ISpec = DEFAULT_STD
    disk_templates: tuple[str, ...] = DEFAULT_TEMPLATES
    vcpu_ratio: float = 4.0
    spindle_ratio: float = 32.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "minmax": [{"min": a.as_dict(), "max": b.as_dict()} for a, b in self.minmax],
            "std": self.std.as_dict(),
            "disk-templates": list(self.disk_templates),
            "vcpu-ratio": self.vcpu_ratio,
            "spindle-ratio": self.spindle_ratio,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, base: "IPolicy | None" = None) -> "IPolicy":
        """Build from a Ganeti-style ipolicy dict; missing keys come from ``base``."""
        base = base or cls()
        if not d:
            return base
        if not isinstance(d, dict):
            raise ValueError(f"ipolicy: expected an object, got {type(d).__name__}")
        minmax = base.minmax
        if "minmax" in d:
            mm = []
            for i, pair in enumerate(d["minmax"]):
                try:
                    mm.append((ISpec.from_dict(pair["min"]), ISpec.from_dict(pair["max"])))
                except KeyError as exc:
                    raise ValueError(f"ipolicy: minmax[{i}] lacks key {exc}") from None
            minmax = tuple(mm)
        std = ISpec.from_dict(d["std"], base.std) if "std" in d else base.std
        dts = tuple(d["disk-templates"]) if "disk-templates" in d else base.disk_templates
        for t in dts:
            if t not in DISK_TEMPLATES:
                raise ValueError(f"ipolicy: unknown disk template {t!r}")
        return cls(minmax, std, dts, float(d.get("vcpu-ratio", base.vcpu_ratio)),
                   float(d.get("spindle-ratio", base.spindle_ratio)))


# --------------------------------------------------------------------------- entities

@dataclass
class Group:
    idx: int
    name: str
    uuid: str
    alloc_policy: str = "preferred"
    networks: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    ipolicy: IPolicy = field(default_factory=IPolicy)

    @property
    def allocable(self) -> bool:
        return self.alloc_policy != "unallocable"


@dataclass(eq=False)
class Node:
    """One node.  Static fields first, then the incrementally kept state."""

    idx: int
    name: str
    t_mem: float
    n_mem: int
    f_mem: int
    t_dsk: float
    f_dsk: int
    t_cpu: float
    n_cpu: int
    offline: bool
    group: int
    t_spindles: int = 1
    f_spindles: int = 0
    excl_stor: bool = False
    cpu_speed: float = 1.0
    tags: list[str] = field(default_factory=list)
    master: bool = False
    hypervisor: str | None = None
    # why the node is offline for allocation purposes (free text, "" if online)
    offline_reason: str = ""
    # derived from policy (set by Cluster.finalize / set_policy)
    hi_cpu: int = 0
    hi_spindles: float = 0.0
    lo_dsk: int = 0
    vcpu_ratio: float = 4.0
    loc_tags: frozenset[str] = frozenset()
    mig_tags: frozenset[str] = frozenset()
    rmig_tags: frozenset[str] = frozenset()
    # incremental state
    i_mem: int = 0
    x_mem: int = 0
    f_mem_forth: int = 0
    f_dsk_forth: int = 0
    u_cpu: int = 0
    u_cpu_forth: int = 0
    inst_sp: float = 0.0
    inst_sp_forth: float = 0.0
    f_sp_forth: int = 0
    r_mem: int = 0
    fail_n1: bool = True
    loc_score: int = 0
    load_c: float = 0.0
    load_m: float = 0.0
    load_d: float = 0.0
    load_n: float = 0.0
    plist: set[int] = field(default_factory=set)
    slist: set[int] = field(default_factory=set)
    plist_forth: set[int] = field(default_factory=set)
    slist_forth: set[int] = field(default_factory=set)
    peers: dict[int, int] = field(default_factory=dict)
    p_tags: dict[str, int] = field(default_factory=dict)
    instance_map: dict[tuple[str, str], int] = field(default_factory=dict)
    # cached score vector (see score.node_vector)
    vec: tuple[float, ...] = ()

    # ---- derived values (htools names)
    def unallocated_mem(self) -> int:
        """htools unallocatedMem: recorded free memory minus missing memory."""
        return int(self.t_mem) - self.n_mem - self.i_mem - max(0, self.x_mem)

    @property
    def online(self) -> bool:
        return not self.offline


@dataclass(eq=False)
class Instance:
    idx: int
    name: str
    mem: int
    dsk: int
    vcpus: int
    status: str = "running"
    pnode: int = NO_NODE
    snode: int = NO_NODE
    template: str = "drbd"
    tags: list[str] = field(default_factory=list)
    spindle_use: int = 1
    disks: list[tuple[int, int | None]] = field(default_factory=list)
    auto_balance: bool = True
    forthcoming: bool = False
    nics: list[dict[str, Any]] = field(default_factory=list)
    movable: bool = True
    util: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    excl_tags: list[str] = field(default_factory=list)
    dsrd_loc_tags: frozenset[str] = frozenset()
    location_score: int = 0

    @property
    def uses_memory(self) -> bool:
        return (not self.forthcoming) and self.status in _USES_MEMORY

    @property
    def offline(self) -> bool:
        return self.status == "ADMIN_offline"

    @property
    def uses_sec_mem(self) -> bool:
        return (not self.offline) and self.auto_balance

    @property
    def uses_local_storage(self) -> bool:
        return self.template in LOCAL_STORAGE

    @property
    def has_secondary(self) -> bool:
        return self.template == "drbd"

    @property
    def running(self) -> bool:
        return self.status in ("running", "ERROR_up")

    def total_spindles(self) -> int | None:
        total = 0
        for _size, sp in self.disks:
            if sp is None:
                return None
            total += sp
        return total

    def networks(self) -> list[str]:
        return [n["network"] for n in self.nics if n.get("network")]


# --------------------------------------------------------------------------- cluster

_NODE_SCALARS = ("i_mem", "f_dsk", "f_spindles", "f_mem_forth", "f_dsk_forth", "u_cpu",
                 "u_cpu_forth", "inst_sp", "inst_sp_forth", "f_sp_forth", "r_mem", "fail_n1",
                 "loc_score", "load_c", "load_m", "load_d", "load_n")
_SCALARS_OF = operator.itemgetter(*_NODE_SCALARS)


class Cluster:
    """The cluster model: groups, nodes, instances, cluster tags and policy."""

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self.nodes: list[Node] = []
        self.instances: list[Instance] = []
        self.cluster_tags: list[str] = []
        self.ipolicy: IPolicy = IPolicy()
        self.name: str = ""
        self.node_by_name: dict[str, int] = {}
        self.inst_by_name: dict[str, int] = {}
        self.group_by_name: dict[str, int] = {}
        self.group_by_uuid: dict[str, int] = {}
        self.ex_tag_prefixes: list[str] = []
        self.dsrd_loc_prefixes: list[str] = []
        self.warnings: list[str] = []
        self.ignore_dynu = False
        self.stats: dict[int, Stats] = {}
        self.all_stats = Stats()
        self._journal: list[Callable[[], None]] | None = None
        # deferred statistics (``defer_stats``): node idx -> (score vector and
        # location/exclusion map the statistics hold for it)
        self._defer: dict[int, list[Any]] | None = None
        self._finalized = False

    # ---------------------------------------------------------------- building
    def add_group(self, name: str, uuid: str, alloc_policy: str = "preferred",
                  networks: Iterable[str] = (), tags: Iterable[str] = (),
                  ipolicy: IPolicy | None = None) -> Group:
        if alloc_policy not in ALLOC_POLICIES:
            raise ValueError(f"group {name}: invalid alloc_policy {alloc_policy!r} "
                             f"(expected one of {', '.join(ALLOC_POLICIES)})")
        g = Group(len(self.groups), name, uuid, alloc_policy, list(networks), list(tags),
                  ipolicy or IPolicy())
        self.groups.append(g)
        self.group_by_name[name] = g.idx
        self.group_by_uuid[uuid] = g.idx
        return g

    def add_node(self, name: str, t_mem: float, n_mem: int, f_mem: int, t_dsk: float,
                 f_dsk: int, t_cpu: float, n_cpu: int, offline: bool, group: int,
                 t_spindles: int = 1, f_spindles: int = 0, excl_stor: bool = False,
                 cpu_speed: float = 1.0, tags: Iterable[str] = (), master: bool = False,
                 offline_reason: str = "") -> Node:
        if name in self.node_by_name:
            raise ValueError(f"duplicate node name {name!r}")
        n = Node(len(self.nodes), name, float(t_mem), int(n_mem), int(f_mem), float(t_dsk),
                 int(f_dsk), float(t_cpu), int(n_cpu), bool(offline), group,
                 int(t_spindles), int(f_spindles), bool(excl_stor), float(cpu_speed),
                 list(tags), master, None, offline_reason)
        self.nodes.append(n)
        self.node_by_name[name] = n.idx
        return n

    def add_instance(self, name: str, mem: int, dsk: int, vcpus: int, status: str,
                     pnode: int, snode: int, template: str, tags: Iterable[str] = (),
                     spindle_use: int = 1, disks: list[tuple[int, int | None]] | None = None,
                     auto_balance: bool = True, forthcoming: bool = False,
                     nics: list[dict[str, Any]] | None = None) -> Instance:
        if name in self.inst_by_name:
            # htools tolerates duplicate names (the last one wins in lookups)
            self.warnings.append(f"duplicate instance name {name!r}")
        if template not in DISK_TEMPLATES:
            raise ValueError(f"instance {name}: unknown disk template {template!r}")
        if status not in INSTANCE_STATUSES:
            raise ValueError(f"instance {name}: unknown status {status!r}")
        inst = Instance(len(self.instances), name, int(mem), int(dsk), int(vcpus), status,
                        pnode, snode, template, list(tags), int(spindle_use),
                        disks if disks is not None else [(int(dsk), None)], auto_balance,
                        forthcoming, nics or [])
        inst.movable = template in MOVABLE_TEMPLATES
        self.instances.append(inst)
        self.inst_by_name[name] = inst.idx
        return inst

    def finalize(self, legacy_n1: bool = False, ignore_dynu: bool = False,
                 static_kvm_mem: int = 0, exclusion_tags: Iterable[str] = ()) -> "Cluster":
        """Compute every derived value (htools ``mergeData`` + ``updateMissing``).

        ``legacy_n1`` reproduces htools <= 3.0.x where the initial N+1 flag was
        ``fMem < rMem`` instead of 3.1's ``unallocatedMem <= rMem``.
        """
        self.ignore_dynu = ignore_dynu
        ctags = self.cluster_tags
        self.ex_tag_prefixes = list(exclusion_tags) + [t[len(EXTAGS_PREFIX):] for t in ctags
                                                       if t.startswith(EXTAGS_PREFIX) and len(t) > len(EXTAGS_PREFIX)]
        self.dsrd_loc_prefixes = [t[len(DESIRED_LOCATION_PREFIX):] for t in ctags
                                  if t.startswith(DESIRED_LOCATION_PREFIX)
                                  and len(t) > len(DESIRED_LOCATION_PREFIX)]
        loc_p = [t[len(LOCATION_PREFIX):] for t in ctags if t.startswith(LOCATION_PREFIX)]
        mig_p = [t[len(MIGRATION_PREFIX):] for t in ctags if t.startswith(MIGRATION_PREFIX)]
        allow = []
        for t in ctags:
            if t.startswith(ALLOW_MIGRATION_PREFIX):
                rest = t[len(ALLOW_MIGRATION_PREFIX):]
                if rest.count("::") == 1:
                    a, b = rest.split("::")
                    allow.append((a, b))
        for n in self.nodes:
            if static_kvm_mem > 0 and n.hypervisor == "kvm":
                n.n_mem = static_kvm_mem
            n.loc_tags = frozenset(t for t in n.tags for p in loc_p if t.startswith(p + ":"))
            mig = frozenset(t for t in n.tags for p in mig_p if t.startswith(p + ":"))
            n.mig_tags = mig
            n.rmig_tags = frozenset(list(mig) + [a for t in mig for a, b in allow if b == t])
            self._set_policy(n)
            n.u_cpu = n.u_cpu_forth = n.n_cpu
            n.f_mem_forth = n.f_mem
            n.f_dsk_forth = n.f_dsk
            n.f_sp_forth = n.f_spindles
            n.plist, n.slist, n.plist_forth, n.slist_forth = set(), set(), set(), set()
            n.peers, n.p_tags, n.instance_map = {}, {}, {}
            n.i_mem = n.x_mem = n.r_mem = n.loc_score = 0
            n.inst_sp = n.inst_sp_forth = 0.0
            n.load_c = n.load_m = n.load_d = n.load_n = 0.0
        for inst in self.instances:
            self._refresh_instance_tags(inst)
            if ignore_dynu:
                inst.util = (0.0, 0.0, 0.0, 0.0)
        for inst in self.instances:
            if inst.pnode == NO_NODE:
                continue
            self._set_location_score(inst)
            self._load_pri(self.nodes[inst.pnode], inst)
            if inst.snode != NO_NODE:
                self._load_sec(self.nodes[inst.snode], inst)
        for n in self.nodes:
            # buildPeers
            peers: dict[int, int] = {}
            for i in n.slist:
                inst = self.instances[i]
                mem = inst.mem if (inst.uses_sec_mem and not inst.forthcoming) else 0
                peers[inst.pnode] = peers.get(inst.pnode, 0) + mem
            n.peers = {k: v for k, v in peers.items() if v > 0}
            n.r_mem = max(n.peers.values(), default=0)
            # updateMemStat
            n.i_mem = sum(self.instances[i].mem for i in n.plist if self.instances[i].uses_memory)
            n.x_mem = (int(n.t_mem) - n.n_mem - n.i_mem) - n.f_mem
            if legacy_n1:
                n.fail_n1 = n.f_mem < n.r_mem
            else:
                n.fail_n1 = n.unallocated_mem() <= n.r_mem
            delta_dsk = int(n.t_dsk) - n.f_dsk - sum(
                self.instances[i].dsk for i in list(n.plist) + list(n.slist))
            if n.x_mem > 512 or delta_dsk > 1024:
                self.warnings.append(f"node {n.name} is missing {n.x_mem} MB ram and "
                                     f"{delta_dsk // 1024} GB disk")
        for inst in self.instances:
            if inst.pnode == NO_NODE:
                continue
            # disableSplitMoves
            if inst.snode != NO_NODE and \
                    self.nodes[inst.pnode].group != self.nodes[inst.snode].group:
                inst.movable = False
        self._finalized = True
        self.rebuild_stats()
        return self

    def _set_policy(self, n: Node) -> None:
        pol = self.groups[n.group].ipolicy if 0 <= n.group < len(self.groups) else self.ipolicy
        n.vcpu_ratio = pol.vcpu_ratio
        n.hi_cpu = int(pol.vcpu_ratio * n.t_cpu)
        n.hi_spindles = pol.spindle_ratio * n.t_spindles
        n.lo_dsk = 0

    def node_policy(self, n: Node) -> IPolicy:
        return self.groups[n.group].ipolicy

    def _refresh_instance_tags(self, inst: Instance) -> None:
        inst.excl_tags = [t for t in inst.tags if any(t.startswith(p) for p in
                                                      self.ex_tag_prefixes)]
        inst.dsrd_loc_tags = frozenset(t for t in inst.tags if any(
            t.startswith(p) for p in self.dsrd_loc_prefixes))

    def _set_location_score(self, inst: Instance) -> None:
        if inst.snode == NO_NODE or inst.pnode == NO_NODE:
            inst.location_score = 0
        else:
            inst.location_score = len(self.nodes[inst.pnode].loc_tags
                                      & self.nodes[inst.snode].loc_tags)

    def location_score_for(self, inst: Instance, pdx: int, sdx: int) -> int:
        if sdx == NO_NODE:
            return 0
        return len(self.nodes[pdx].loc_tags & self.nodes[sdx].loc_tags)

    # ------------------------------------------------------------- load-time set
    def _load_pri(self, n: Node, inst: Instance) -> None:
        """htools Node.setPri (used while loading; no checks)."""
        uses_disk = inst.uses_local_storage
        if not inst.forthcoming:
            n.plist.add(inst.idx)
            if not inst.offline:
                n.u_cpu += inst.vcpus
            u = inst.util
            n.load_c += u[0]
            n.load_m += u[1]
            n.load_d += u[2]
            n.load_n += u[3]
            n.inst_sp += self._spindle_delta(n, inst)
            n.loc_score += inst.location_score + self._dsrd_score(n, inst)
            for key in self._loc_excl_pairs(n, inst):
                n.instance_map[key] = n.instance_map.get(key, 0) + 1
        else:
            if uses_disk:
                n.f_dsk_forth -= inst.dsk
            sp = self._free_sp_delta(n, inst)
            if sp is not None:
                n.f_sp_forth -= sp
        for t in inst.excl_tags:
            n.p_tags[t] = n.p_tags.get(t, 0) + 1
        n.plist_forth.add(inst.idx)
        if not inst.offline:
            n.u_cpu_forth += inst.vcpus
        if not inst.uses_memory:
            n.f_mem_forth -= inst.mem
        n.inst_sp_forth += self._spindle_delta(n, inst)

    def _load_sec(self, n: Node, inst: Instance) -> None:
        """htools Node.setSec (used while loading; no checks)."""
        if not inst.forthcoming:
            n.slist.add(inst.idx)
            n.load_d += inst.util[2]
            n.inst_sp += self._spindle_delta(n, inst)
        else:
            if inst.uses_local_storage:
                n.f_dsk_forth -= inst.dsk
            sp = self._free_sp_delta(n, inst)
            if sp is not None:
                n.f_sp_forth -= sp
        n.slist_forth.add(inst.idx)
        n.inst_sp_forth += self._spindle_delta(n, inst)

    @staticmethod
    def _spindle_delta(n: Node, inst: Instance) -> float:
        if n.excl_stor or not inst.uses_local_storage:
            return 0.0
        return float(inst.spindle_use)

    @staticmethod
    def _free_sp_delta(n: Node, inst: Instance) -> int | None:
        """Spindles an instance takes from a node's free spindles (exclusive storage)."""
        if not n.excl_stor:
            return 0
        return inst.total_spindles()

    @staticmethod
    def _dsrd_score(n: Node, inst: Instance) -> int:
        if not inst.dsrd_loc_tags:
            return 0
        return len(inst.dsrd_loc_tags) - len(inst.dsrd_loc_tags & n.loc_tags)

    @staticmethod
    def _loc_excl_pairs(n: Node, inst: Instance) -> list[tuple[str, str]]:
        if not n.loc_tags or not inst.excl_tags:
            return []
        return [(loc, ex) for loc in sorted(n.loc_tags) for ex in inst.excl_tags]

    # ---------------------------------------------------------------- stats
    def rebuild_stats(self) -> None:
        """Recompute every node vector and the per-group and global statistics."""
        self.stats = {g.idx: Stats() for g in self.groups}
        self.all_stats = Stats()
        for n in self.nodes:
            n.vec = node_vector(n)
            self.stats.setdefault(n.group, Stats()).add(n)
            self.all_stats.add(n)

    def _unstat(self, n: Node) -> None:
        d = self._defer
        if d is not None:
            e = d.get(n.idx)
            if e is None:
                # [vector and map the sums hold, journal length (a rollback below
                # it undoes this node's changes), the node's current vector or None]
                d[n.idx] = [n.vec, dict(n.instance_map) if n.instance_map or n.loc_tags else None,
                            len(self._journal) if self._journal is not None else 0, None]
            else:
                e[3] = None
            return
        self.stats[n.group].remove(n)
        self.all_stats.remove(n)

    def _restat(self, n: Node) -> None:
        if self._defer is not None:
            return
        n.vec = node_vector(n)
        self.stats[n.group].add(n)
        self.all_stats.add(n)

    def defer_stats(self, on: bool) -> bool:
        """Deferred statistics, for scoring candidate moves that are rolled
        back: while on, primitives change node state but not the statistics
        (nor ``Node.vec``); ``score`` adds the changed nodes' new vectors to
        the statistics without storing them, and ``rollback`` leaves nothing
        to undo in them.  A candidate then costs one statistics update instead
        of two per primitive and undo.  Only valid between a checkpoint and the
        rollback to it; turning it off needs the journal rolled back.  Returns
        whether it was on (callers that nest pass that back)."""
        was = self._defer is not None
        if on != was:
            self._defer = {} if on else None
        return was

    def score(self, group: int | None = None) -> float:
        """The htools cluster score of one group (or of all nodes), in O(1)."""
        st = self.all_stats if group is None else self.stats[group]
        d = self._defer
        if d:
            nodes = self.nodes
            changes = []
            for i, e in d.items():
                nd = nodes[i]
                if group is not None and nd.group != group:
                    continue
                new = e[3]
                if new is None:
                    # unchanged since the last score: the vector is kept
                    new = e[3] = node_vector(nd)
                changes.append((nd, e[0], new, e[1]))
            return st.value_with(changes)
        return st.value()

    # ---------------------------------------------------------------- journal
    def checkpoint(self) -> int:
        """Start (or continue) recording; return a mark for ``rollback``."""
        if self._journal is None:
            self._journal = []
        return len(self._journal)

    def rollback(self, mark: int) -> None:
        """Undo every change recorded after ``mark``.

        Node and instance state is restored exactly; the running score sums may
        keep a rounding residue of the order of 1e-16 (``rebuild_stats`` clears it).
        """
        j = self._journal
        if j is None:
            return
        while len(j) > mark:
            j.pop()()
        d = self._defer
        if d:
            # nodes first changed after ``mark`` are back to what the statistics hold
            while d:
                last = next(reversed(d))
                if d[last][2] < mark:
                    break
                del d[last]

    def commit(self) -> None:
        """Stop recording and forget the journal (changes stay)."""
        self._journal = None

    def _snap(self, n: Node) -> tuple | None:
        """The node's state before a primitive changes it (None when not
        recording); ``_log_node`` turns it into the primitive's undo."""
        if self._journal is None:
            return None
        return _SCALARS_OF(n.__dict__), n.vec

    def _log_node(self, n: Node, snap: tuple | None, inst: Instance, primary: bool,
                  removed: bool = False, pdx: int = NO_NODE,
                  peer_old: int | None = None) -> None:
        """Record the undo of one primitive on ``n``: the collections are put
        back by ``_revert_collections(n, inst, primary, removed, pdx, peer_old)``;
        the scalars and the score vector come from ``snap`` (the vector is not
        recomputed: it is the one the statistics held)."""
        if snap is None:
            return
        vals, vec = snap

        def undo() -> None:
            d = self._defer
            if d is not None:
                self._revert_collections(n, inst, primary, removed, pdx, peer_old)
                n.__dict__.update(zip(_NODE_SCALARS, vals))
                e = d.get(n.idx)
                if e is not None:
                    e[3] = None
                return
            self._unstat(n)
            self._revert_collections(n, inst, primary, removed, pdx, peer_old)
            n.__dict__.update(zip(_NODE_SCALARS, vals))
            n.vec = vec
            self.stats[n.group].add(n)
            self.all_stats.add(n)
        self._journal.append(undo)  # type: ignore[union-attr]

    def _log(self, fn: Callable[[], None]) -> None:
        if self._journal is not None:
            self._journal.append(fn)

    def set_inst_nodes(self, inst: Instance, pdx: int, sdx: int) -> None:
        """Change an instance's nodes (and its location score), journaled."""
        old = (inst.pnode, inst.snode, inst.location_score)

        def undo() -> None:
            inst.pnode, inst.snode, inst.location_score = old
        self._log(undo)
        inst.pnode, inst.snode = pdx, sdx
        inst.location_score = self.location_score_for(inst, pdx, sdx) if pdx != NO_NODE else 0

    # ---------------------------------------------------------------- primitives
    def _pri_collections(self, n: Node, inst: Instance, sign: int) -> None:
        idx = inst.idx
        if sign > 0:
            n.plist_forth.add(idx)
            if not inst.forthcoming:
                n.plist.add(idx)
        else:
            n.plist_forth.discard(idx)
            if not inst.forthcoming:
                n.plist.discard(idx)
        for t in inst.excl_tags:
            c = n.p_tags.get(t, 0) + sign
            if c > 0:
                n.p_tags[t] = c
            else:
                n.p_tags.pop(t, None)
        if not inst.forthcoming and n.loc_tags and inst.excl_tags:
            for key in self._loc_excl_pairs(n, inst):
                c = n.instance_map.get(key, 0) + sign
                if c > 0:
                    n.instance_map[key] = c
                else:
                    n.instance_map.pop(key, None)

    def add_pri(self, ndx: int, inst: Instance, force: bool = False,
                checked: bool = False) -> rules.Reason | None:
        """htools ``addPriEx``: try to add ``inst`` as primary of node ``ndx``.

        Returns ``None`` on success (node state updated) or the failure reason
        (node untouched).  ``force`` skips the soft checks.
        """
        n = self.nodes[ndx]
        # ``checked``: the caller has just had ``rules.pri_failure`` say None
        # for this node, instance and force, and the node has not changed since
        fail = None if checked else rules.pri_failure(n, inst, force, self.node_name)
        if fail is not None:
            return fail
        snap = self._snap(n)
        self._unstat(n)
        self._pri_collections(n, inst, 1)
        uses_disk = inst.template in LOCAL_STORAGE
        offline = inst.status == "ADMIN_offline"
        excl = n.excl_stor
        # _free_sp_delta and _spindle_delta, inlined (hot in candidate scoring)
        sp = inst.total_spindles() if excl else 0
        spd = 0.0 if (excl or not uses_disk) else float(inst.spindle_use)
        # forthcoming fields (updated for every instance)
        n.f_mem_forth -= inst.mem
        if uses_disk:
            n.f_dsk_forth -= inst.dsk
        n.f_sp_forth = -1 if sp is None else n.f_sp_forth - sp
        n.inst_sp_forth += spd
        if not offline:
            n.u_cpu_forth += inst.vcpus
        if not inst.forthcoming:
            if inst.uses_memory:
                n.i_mem += inst.mem
            n.fail_n1 = (int(n.t_mem) - n.n_mem - n.i_mem - max(0, n.x_mem)) <= n.r_mem
            if uses_disk:
                n.f_dsk -= inst.dsk
            n.f_spindles = -1 if sp is None else n.f_spindles - sp
            n.inst_sp += spd
            if not offline:
                n.u_cpu += inst.vcpus
            u = inst.util
            n.load_c += u[0]
            n.load_m += u[1]
            n.load_d += u[2]
            n.load_n += u[3]
            n.loc_score += inst.location_score + (self._dsrd_score(n, inst)
                                                  if inst.dsrd_loc_tags else 0)
        self._restat(n)
        self._log_node(n, snap, inst, True)
        return None

    def remove_pri(self, ndx: int, inst: Instance) -> None:
        """htools ``removePri``."""
        n = self.nodes[ndx]
        snap = self._snap(n)
        self._unstat(n)
        self._pri_collections(n, inst, -1)
        uses_disk = inst.template in LOCAL_STORAGE
        offline = inst.status == "ADMIN_offline"
        excl = n.excl_stor
        sp = inst.total_spindles() if excl else 0
        spd = 0.0 if (excl or not uses_disk) else float(inst.spindle_use)
        n.f_mem_forth += inst.mem
        if uses_disk:
            n.f_dsk_forth += inst.dsk
        if sp is not None:
            n.f_sp_forth += sp
        n.inst_sp_forth -= spd
        if not offline:
            n.u_cpu_forth -= inst.vcpus
        if not inst.forthcoming:
            if inst.uses_memory:
                n.i_mem -= inst.mem
            n.fail_n1 = (int(n.t_mem) - n.n_mem - n.i_mem - max(0, n.x_mem)) <= n.r_mem
            if uses_disk:
                n.f_dsk += inst.dsk
            if sp is not None:
                n.f_spindles += sp
            n.inst_sp -= spd
            if not offline:
                n.u_cpu -= inst.vcpus
            u = inst.util
            n.load_c -= u[0]
            n.load_m -= u[1]
            n.load_d -= u[2]
            n.load_n -= u[3]
            n.loc_score -= inst.location_score + (self._dsrd_score(n, inst)
                                                  if inst.dsrd_loc_tags else 0)
        self._restat(n)
        self._log_node(n, snap, inst, True, removed=True)

    def _revert_collections(self, n: Node, inst: Instance, primary: bool,
                            removed: bool = False, pdx: int = NO_NODE,
                            peer_old: int | None = None) -> None:
        # part of a primitive's undo (``_log_node``): reverse its collection change
        sign = 1 if removed else -1
        if primary:
            self._pri_collections(n, inst, sign)
        else:
            idx = inst.idx
            if sign > 0:
                n.slist_forth.add(idx)
                if not inst.forthcoming:
                    n.slist.add(idx)
            else:
                n.slist_forth.discard(idx)
                if not inst.forthcoming:
                    n.slist.discard(idx)
            if peer_old is not None:
                if peer_old > 0:
                    n.peers[pdx] = peer_old
                else:
                    n.peers.pop(pdx, None)

    def add_sec(self, ndx: int, inst: Instance, pdx: int, force: bool = False,
                ignore_disks: bool = False, checked: bool = False) -> rules.Reason | None:
        """htools ``addSecExEx``: try to add ``inst`` as secondary of ``ndx``
        (its primary being ``pdx``)."""
        n = self.nodes[ndx]
        # ``checked``: as in ``add_pri``, with ``rules.sec_failure``
        fail = None if checked else rules.sec_failure(n, inst, pdx, force, ignore_disks,
                                                      self.node_name)
        if fail is not None:
            return fail
        snap = self._snap(n)
        self._unstat(n)
        idx = inst.idx
        n.slist_forth.add(idx)
        excl = n.excl_stor
        sp = inst.total_spindles() if excl else 0
        spd = 0.0 if (excl or inst.template not in LOCAL_STORAGE) else float(inst.spindle_use)
        n.f_dsk_forth -= inst.dsk
        n.f_sp_forth = -1 if sp is None else n.f_sp_forth - sp
        n.inst_sp_forth += spd
        peer_old = None
        if not inst.forthcoming:
            n.slist.add(idx)
            need = inst.mem if inst.uses_sec_mem else 0
            peer_old = n.peers.get(pdx, 0)
            new_peem = peer_old + need
            if new_peem > 0:
                n.peers[pdx] = new_peem
            r_mem = n.r_mem
            if new_peem > r_mem:
                n.r_mem = r_mem = new_peem
            n.fail_n1 = (int(n.t_mem) - n.n_mem - n.i_mem - max(0, n.x_mem)) <= r_mem
            n.f_dsk -= inst.dsk
            n.f_spindles = -1 if sp is None else n.f_spindles - sp
            n.inst_sp += spd
            n.load_d += inst.util[2]
        self._restat(n)
        self._log_node(n, snap, inst, False, pdx=pdx, peer_old=peer_old)
        return None

    def remove_sec(self, ndx: int, inst: Instance) -> None:
        """htools ``removeSec``."""
        n = self.nodes[ndx]
        snap = self._snap(n)
        self._unstat(n)
        idx = inst.idx
        pdx = inst.pnode
        n.slist_forth.discard(idx)
        uses_disk = inst.uses_local_storage
        if uses_disk:
            n.f_dsk_forth += inst.dsk
        sp = self._free_sp_delta(n, inst)
        if sp is not None:
            n.f_sp_forth += sp
        n.inst_sp_forth -= self._spindle_delta(n, inst)
        peer_old = None
        if not inst.forthcoming:
            n.slist.discard(idx)
            if uses_disk:
                n.f_dsk += inst.dsk
            if sp is not None:
                n.f_spindles += sp
            n.inst_sp -= self._spindle_delta(n, inst)
            peer_old = n.peers.get(pdx, 0)
            new_peem = peer_old - (inst.mem if inst.uses_sec_mem else 0)
            if new_peem > 0:
                n.peers[pdx] = new_peem
            else:
                n.peers.pop(pdx, None)
            if peer_old >= n.r_mem:
                n.r_mem = max(n.peers.values(), default=0)
            n.fail_n1 = n.unallocated_mem() <= n.r_mem
            n.load_d -= inst.util[2]
        self._restat(n)
        self._log_node(n, snap, inst, False, removed=True, pdx=pdx, peer_old=peer_old)

    # ---------------------------------------------------------------- helpers
    def node_name(self, ndx: int) -> str:
        return self.nodes[ndx].name if 0 <= ndx < len(self.nodes) else "(none)"

    def group_nodes(self, gdx: int) -> list[int]:
        return [n.idx for n in self.nodes if n.group == gdx]

    def inst_group(self, inst: Instance) -> int:
        return self.nodes[inst.pnode].group

    def new_instance(self, name: str, mem: int, disks: list[tuple[int, int | None]],
                     vcpus: int, template: str, tags: Iterable[str] = (),
                     spindle_use: int = 1, nics: list[dict[str, Any]] | None = None,
                     dsk: int | None = None, status: str = "running",
                     auto_balance: bool = True) -> Instance:
        """Register an unplaced instance (pnode = snode = NO_NODE) for allocation."""
        if dsk is None:
            dsk = disk_space_total(template, (s for s, _spindles in disks))
        inst = self.add_instance(name, mem, dsk, vcpus, status, NO_NODE, NO_NODE, template,
                                 tags, spindle_use, list(disks), auto_balance, False, nics)
        self._refresh_instance_tags(inst)
        if self.ignore_dynu:
            inst.util = (0.0, 0.0, 0.0, 0.0)
        return inst

    def drop_last_instance(self, inst: Instance) -> None:
        """Forget an unplaced instance created by ``new_instance``."""
        if inst.pnode != NO_NODE or not self.instances or self.instances[-1] is not inst:
            raise ValueError(f"instance {inst.name} is not the last unplaced instance of the cluster")
        self.instances.pop()
        del self.inst_by_name[inst.name]

    def clone(self) -> "Cluster":
        """Deep copy (used by callers that want an independent what-if model).

        Field by field rather than ``copy.deepcopy`` (which was a sixth of a
        capacity run): containers are copied, immutable values shared, and
        anything else deep-copied."""
        import copy
        memo: dict[int, Any] = {}

        def dup(v: Any) -> Any:
            if v is None or isinstance(v, (str, int, float, bool, tuple, frozenset,
                                           IPolicy, ISpec)):
                return v
            if isinstance(v, (set, list)) and all(
                    isinstance(x, (str, int, float, tuple)) for x in v):
                return v.copy()
            if isinstance(v, dict) and all(
                    isinstance(x, (str, int, float, tuple)) for x in v.values()):
                return v.copy()
            return copy.deepcopy(v, memo)

        def dup_obj(o: Any) -> Any:
            n = copy.copy(o)
            n.__dict__ = {k: dup(v) for k, v in o.__dict__.items()}
            return n

        c = Cluster.__new__(Cluster)
        for k, v in self.__dict__.items():
            if k in ("nodes", "instances", "groups"):
                c.__dict__[k] = [dup_obj(x) for x in v]
            elif k in ("stats", "all_stats", "_journal", "_defer"):
                continue
            else:
                c.__dict__[k] = dup(v)
        c._journal = None
        c._defer = None
        c.stats = {}
        for g, st in self.stats.items():
            c.stats[g] = Stats()
            c.stats[g].restore(st.snapshot())
        c.all_stats = Stats()
        if isinstance(self.all_stats, Stats):
            c.all_stats.restore(self.all_stats.snapshot())
        return c
