"""Reboot groups for a rolling reboot: Ganeti hroller's idea over herd's config.

The cluster's online nodes are split into groups that can be rebooted at the
same time. While a group reboots, its running instances live elsewhere (drbd:
on their secondary; sharedfile and diskless: on any other node of their node
group), so a group must never hold both nodes of an instance. Following
hroller 3.x, when the instances are running (not ``offline_maintenance``) two
nodes whose primary instances fail over to the same secondary are not rebooted
together either, so one secondary does not take the load of two nodes at once.

On top of hroller's graph rule, every group must leave somewhere to go: the
running sharedfile/diskless instances of a group need at least one online,
undrained, vm-capable node of their node group outside the group, and, when
free memory per node is known (``node_memory``, from node facts), the group's
running instances must fit into the free memory of their targets (drbd onto
its secondary; shared ones first-fit-decreasing onto the node with the most
free memory). The check is made for each group against the cluster as it is
when the plan is made, like hroller; rebalance after the roll.

Non-redundant instances (file, plain, or drbd without a usable secondary)
cannot move: by default they are reported in ``downtime`` (they are down while
their node reboots); with ``skip_non_redundant`` their nodes are left out
(hroller ``--skip-non-redundant``).

Groups are coloured greedily with several vertex orders (largest degree
first, DSATUR, name order; hroller tries LF, Dsatur and Dcolor) and the
smallest colouring wins. The output is deterministic: groups sorted by size
(largest first), then by their first node name, the master's group last and
the master last in it (hroller's masterLast). Offline nodes are skipped.

Input is the dict of ``Config.to_dict()``; only the standard library is used.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

MIRRORED = ("drbd",)
SHARED = ("sharedfile", "diskless")
DEFAULT_MEMORY = 128


class RollerError(ValueError):
    """The config cannot be planned (e.g. no master, unknown node group)."""


@dataclass
class RollerOptions:
    node_group: Optional[str] = None           # only the nodes of this node group (hroller -G)
    node_tags: List[str] = field(default_factory=list)  # only nodes with one of these tags (--node-tags)
    skip_non_redundant: bool = False          # leave out nodes with running non-movable instances
    offline_maintenance: bool = False         # instances are shut down for the roll: no migration load
    max_group_size: Optional[int] = None      # at most this many nodes per group


@dataclass
class RebootPlan:
    groups: List[List[str]]
    master: str
    offline: List[str] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)
    downtime: List[Dict[str, str]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    algorithm: str = ""
    edges: List[Tuple[str, str]] = field(default_factory=list)

    def lines(self) -> List[str]:
        """hroller's output: a header and one comma-separated line per group."""
        return ["'Node Reboot Groups'"] + [",".join(group) for group in self.groups]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "groups": [list(g) for g in self.groups],
            "master": self.master,
            "offline": list(self.offline),
            "skipped": [dict(s) for s in self.skipped],
            "downtime": [dict(d) for d in self.downtime],
            # not "warnings": Ansible takes that key of a module result for itself
            "cannot_empty": list(self.warnings),
            "algorithm": self.algorithm,
            "edges": [list(e) for e in self.edges],
            "lines": self.lines(),
        }


# ----------------------------------------------------------------------- model

@dataclass(frozen=True)
class _Inst:
    name: str
    primary: str
    secondary: Optional[str]
    template: str
    running: bool
    memory: int


@dataclass
class _Cluster:
    master: str
    nodes: Dict[str, Dict[str, Any]]
    instances: List[_Inst]

    def group_of(self, node: str) -> str:
        return str(self.nodes[node].get("group") or "default")

    def is_target(self, node: str) -> bool:
        """Can receive instances during the roll (as migrate's target check requires)."""
        info = self.nodes[node]
        return not info.get("offline") and not info.get("drained") and info.get("vm_capable", True)


def _memory(inst: Mapping[str, Any], cluster_be: Mapping[str, Any]) -> int:
    for source in (inst.get("beparams") or {}, cluster_be):
        value = source.get("maxmem")
        if value is not None:
            return int(value)
    return DEFAULT_MEMORY


def _load(config: Mapping[str, Any]) -> _Cluster:
    nodes = dict(config.get("nodes") or {})
    cluster = config.get("cluster") or {}
    master = cluster.get("master_node")
    if not master:
        raise RollerError("no master node found in the config (cluster.master_node is empty)")
    if master not in nodes:
        raise RollerError(f"the master {master} is not one of the config's nodes")
    be = cluster.get("beparams") or {}
    insts = []
    for name in sorted(config.get("instances") or {}):
        data = config["instances"][name]
        primary = data.get("primary_node")
        secondary = data.get("secondary_node") or None
        for node in (primary, secondary):
            if node is not None and node not in nodes:
                raise RollerError(f"instance {name} refers to unknown node {node}")
        insts.append(_Inst(name=name, primary=primary, secondary=secondary,
                           template=str(data.get("disk_template") or "diskless"),
                           running=data.get("admin_state") == "up", memory=_memory(data, be)))
    return _Cluster(master=master, nodes=nodes, instances=insts)


# ----------------------------------------------------------------------- rules

def _movable_kind(c: _Cluster, inst: _Inst) -> Tuple[str, str]:
    """("mirror"|"shared"|"stuck", reason) for a running instance leaving its primary."""
    if inst.template in MIRRORED:
        if inst.secondary is None:
            return "stuck", "drbd instance without a secondary"
        if not c.is_target(inst.secondary):
            return "stuck", f"its secondary {inst.secondary} is offline, drained or not vm-capable"
        return "mirror", ""
    if inst.template in SHARED:
        return "shared", ""
    return "stuck", f"{inst.template} disks live on {inst.primary} only"


def _edges(c: _Cluster, vertices: Set[str], offline_maintenance: bool) -> Set[FrozenSet[str]]:
    edges: Set[FrozenSet[str]] = set()
    for inst in c.instances:
        if inst.secondary and inst.primary in vertices and inst.secondary in vertices \
                and inst.primary != inst.secondary:
            edges.add(frozenset((inst.primary, inst.secondary)))
    if not offline_maintenance:
        # hroller: primaries of running instances that share a secondary are not rebooted together.
        by_secondary: Dict[str, Set[str]] = {}
        for inst in c.instances:
            if inst.running and inst.secondary and inst.template in MIRRORED and inst.primary in vertices:
                by_secondary.setdefault(inst.secondary, set()).add(inst.primary)
        for primaries in by_secondary.values():
            ordered = sorted(primaries)
            for i, a in enumerate(ordered):
                for b in ordered[i + 1:]:
                    edges.add(frozenset((a, b)))
    return edges


class _Capacity:
    """Whether a candidate group's running instances have somewhere to go."""

    def __init__(self, c: _Cluster, node_memory: Optional[Mapping[str, Any]], offline_maintenance: bool):
        self.c = c
        self.memory = None if node_memory is None else {
            n: int(v) for n, v in node_memory.items() if v is not None and n in c.nodes}
        self.offline_maintenance = offline_maintenance
        self.by_primary: Dict[str, List[_Inst]] = {}
        for inst in c.instances:
            if inst.running:
                self.by_primary.setdefault(inst.primary, []).append(inst)

    def problem(self, group: Iterable[str]) -> Optional[str]:
        """None when the group can be emptied of its running instances, else why not."""
        if self.offline_maintenance:
            return None
        members = set(group)
        free = dict(self.memory) if self.memory is not None else None
        shared: List[_Inst] = []
        for node in sorted(members):
            for inst in self.by_primary.get(node, []):
                kind, _reason = _movable_kind(self.c, inst)
                if kind == "mirror":
                    if inst.secondary in members:
                        return f"{inst.name} would lose both its nodes"
                    if free is not None and inst.secondary in free:
                        free[inst.secondary] -= inst.memory
                        if free[inst.secondary] < 0:
                            return (f"{inst.secondary} has not enough free memory for the drbd instances "
                                    f"failing over to it (short by {-free[inst.secondary]} MiB at {inst.name})")
                elif kind == "shared":
                    shared.append(inst)
        for inst in sorted(shared, key=lambda i: (-i.memory, i.name)):
            group_name = self.c.group_of(inst.primary)
            targets = [n for n in sorted(self.c.nodes) if n not in members and self.c.is_target(n)
                       and self.c.group_of(n) == group_name]
            if not targets:
                return (f"{inst.name} has nowhere to go: no online, undrained, vm-capable node of node group "
                        f"{group_name} would be left")
            if free is None:
                continue
            known = [n for n in targets if n in free]
            if not known:
                continue  # no memory facts for these targets: the existence check above is all we can do
            best = min(known, key=lambda n: (-free[n], n))
            if free[best] < inst.memory:
                return (f"not enough free memory outside the group for {inst.name} ({inst.memory} MiB; "
                        f"the most any node has left is {free[best]} MiB on {best})")
            free[best] -= inst.memory
        return None


# -------------------------------------------------------------------- colouring

Order = Callable[[List[str], Dict[str, Set[str]], Dict[str, int]], str]


def _pick_lf(pending: List[str], adj: Dict[str, Set[str]], colour: Dict[str, int]) -> str:
    return min(pending, key=lambda n: (-len(adj[n]), n))


def _pick_dsatur(pending: List[str], adj: Dict[str, Set[str]], colour: Dict[str, int]) -> str:
    def key(n: str) -> Tuple[int, int, str]:
        saturation = len({colour[m] for m in adj[n] if m in colour})
        return (-saturation, -len(adj[n]), n)
    return min(pending, key=key)


def _pick_dcolor(pending: List[str], adj: Dict[str, Set[str]], colour: Dict[str, int]) -> str:
    # Ganeti's Dcolor: most already-coloured neighbours first.
    return min(pending, key=lambda n: (-sum(1 for m in adj[n] if m in colour), -len(adj[n]), n))


def _pick_name(pending: List[str], adj: Dict[str, Set[str]], colour: Dict[str, int]) -> str:
    return min(pending)


ALGORITHMS: List[Tuple[str, Order]] = [("LF", _pick_lf), ("Dsatur", _pick_dsatur),
                                       ("Dcolor", _pick_dcolor), ("Name", _pick_name)]


def _colour(vertices: List[str], adj: Dict[str, Set[str]], capacity: _Capacity, pick: Order,
            max_size: Optional[int]) -> Tuple[List[List[str]], List[str]]:
    groups: List[List[str]] = []
    colour: Dict[str, int] = {}
    lonely: List[str] = []
    pending = list(vertices)
    while pending:
        node = pick(pending, adj, colour)
        pending.remove(node)
        for idx, group in enumerate(groups):
            if any(m in adj[node] for m in group):
                continue
            if max_size is not None and len(group) >= max_size:
                continue
            if capacity.problem(group + [node]) is not None:
                continue
            group.append(node)
            colour[node] = idx
            break
        else:
            problem = capacity.problem([node])
            if problem is not None:
                lonely.append(f"{node} cannot be emptied even alone: {problem}")
            colour[node] = len(groups)
            groups.append([node])
    return groups, lonely


def _order_output(groups: List[List[str]], master: str) -> List[List[str]]:
    ordered = sorted((sorted(g) for g in groups), key=lambda g: (-len(g), g))
    with_master = [g for g in ordered if master in g]
    out = [g for g in ordered if master not in g]
    for g in with_master:
        out.append([n for n in g if n != master] + [master])
    return out


# ------------------------------------------------------------------------- main

def reboot_groups(config: Mapping[str, Any], node_memory: Optional[Mapping[str, Any]] = None,
                  options: Optional[RollerOptions] = None) -> RebootPlan:
    """Plan the reboot groups of ``config`` (``Config.to_dict()`` shape).

    ``node_memory`` maps node name to free memory in MiB (node facts'
    ``memory_free``); without it only the structural rules apply.
    """
    opts = options or RollerOptions()
    if opts.max_group_size is not None and opts.max_group_size < 1:
        raise RollerError(f"max_group_size {opts.max_group_size} must be at least 1")
    c = _load(config)
    if opts.node_group is not None and not any(c.group_of(n) == opts.node_group for n in c.nodes):
        raise RollerError(f"node group {opts.node_group} has no nodes")
    offline = sorted(n for n, info in c.nodes.items() if info.get("offline"))
    selected = [n for n in sorted(c.nodes) if n not in offline
                and (opts.node_group is None or c.group_of(n) == opts.node_group)
                and (not opts.node_tags or set(c.nodes[n].get("tags") or []) & set(opts.node_tags))]

    downtime: List[Dict[str, str]] = []
    stuck_nodes: Dict[str, List[str]] = {}
    for inst in c.instances:
        if not inst.running or inst.primary not in selected:
            continue
        kind, reason = ("shared", "") if opts.offline_maintenance else _movable_kind(c, inst)
        if kind == "stuck":
            downtime.append({"instance": inst.name, "node": inst.primary, "reason": reason})
            stuck_nodes.setdefault(inst.primary, []).append(inst.name)
    skipped: List[Dict[str, str]] = []
    if opts.skip_non_redundant:
        for node in sorted(stuck_nodes):
            skipped.append({"node": node, "reason": "hosts non-redundant running instances: "
                            + ", ".join(stuck_nodes[node])})
        selected = [n for n in selected if n not in stuck_nodes]
        downtime = [d for d in downtime if d["node"] not in stuck_nodes]

    vertex_set = set(selected)
    edges = _edges(c, vertex_set, opts.offline_maintenance)
    adj: Dict[str, Set[str]] = {n: set() for n in selected}
    for edge in edges:
        a, b = sorted(edge)
        adj[a].add(b)
        adj[b].add(a)
    capacity = _Capacity(c, node_memory, opts.offline_maintenance)

    best: Optional[Tuple[str, List[List[str]], List[str]]] = None
    for algo, pick in ALGORITHMS:
        groups, lonely = _colour(selected, adj, capacity, pick, opts.max_group_size)
        if best is None or len(groups) < len(best[1]):
            best = (algo, groups, lonely)
    if best is None:
        raise RollerError("no grouping algorithm is defined")
    algo, groups, lonely = best
    return RebootPlan(groups=_order_output(groups, c.master), master=c.master, offline=offline,
                      skipped=skipped, downtime=downtime, warnings=sorted(lonely), algorithm=algo,
                      edges=sorted(tuple(sorted(e)) for e in edges))  # type: ignore[misc]
