"""What the nodes' storage says about each instance's disks: one set of rules for
cluster_verify (findings) and instance_info (a disk health word).

Input is what the node agent reports (``storage_list``: LVs classified by
``storage/lvm.classify`` and /proc/drbd parsed by ``storage/drbd.parse_proc_drbd``;
``drbd_status`` with no disk: every minor), never a second reading of the node.
Each problem names the node, the disk and the DRBD resource/minor, as Ganeti's
EINSTANCEFAULTYDISK does.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..config import Config, Instance

# connection states in which the peer is not there (drbd 8.4 drbd_conns)
DISCONNECTED = ("WFConnection", "WFReportParams", "Unconnected", "Timeout", "BrokenPipe", "NetworkFailure",
                "ProtocolError", "TearDown", "Disconnecting")
RESYNCING = ("SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
             "StartingSyncS", "StartingSyncT")
SPLIT_BRAIN_HINT = ("choose the node whose data survives and run herd.cluster.instance_replace_disks with "
                    "split_brain_survivor: <node> (docs/storage.md, 'Split brain')")


@dataclass
class Problem:
    severity: str  # "error" | "warning"
    node: str
    disk: int
    message: str

    def text(self) -> str:
        return f"{self.node}: {self.message}"


def _minor_status(answer: Dict[str, Any], minor: Any) -> Optional[Dict[str, Any]]:
    minors = answer.get("minors") or {}
    status = minors.get(str(minor), minors.get(minor)) if minor is not None else None
    if not status or status.get("cs") in (None, "Unconfigured"):
        return None
    return status


def drbd_problems(inst: Instance, proc: Dict[str, Optional[Dict[str, Any]]]) -> List[Problem]:
    """Problems of a drbd instance's disks. ``proc``: per node, {"loaded", "minors": {minor:
    status}} as the agent reports it, or None when the node could not be asked (offline,
    unreachable: reported by other checks)."""
    problems: List[Problem] = []
    if inst.disk_template != "drbd":
        return problems
    for index, disk in enumerate(inst.disks):
        minors = disk.logical_id.get("minors") or {}
        resource = disk.logical_id.get("resource") or f"herd-{disk.uuid}"
        seen: Dict[str, Optional[Dict[str, Any]]] = {}
        for node in inst.nodes():
            answer = proc.get(node)
            if answer is None:
                continue
            role = "primary" if node == inst.primary_node else "secondary"
            where = f"disk {index} ({resource}, minor {minors.get(node)}, {role})"
            if not answer.get("loaded"):
                problems.append(Problem("error", node, index, f"{where}: the DRBD kernel module is not loaded"))
                continue
            status = _minor_status(answer, minors.get(node))
            seen[node] = status
            if status is None:
                # a stopped instance's devices may be down on both nodes (after a reboot), as
                # Ganeti checks disks only where they should be active
                if inst.admin_state == "up":
                    missing = "the secondary is missing" if role == "secondary" else "the primary's device is down"
                    problems.append(Problem("error", node, index, f"{where}: not active ({missing}); "
                                            "herd.cluster.instance_activate_disks brings it up"))
                continue
            problems += _state_problems(inst, node, index, where, status)
        both = [seen.get(n) for n in inst.nodes()]
        if len(both) == 2 and all(s is not None and s.get("cs") == "StandAlone" for s in both):
            problems.append(Problem("error", inst.primary_node, index,
                                    f"disk {index} ({resource}): StandAlone on both nodes: a split brain, or a "
                                    f"disconnect nobody undid; {SPLIT_BRAIN_HINT}"))
    return problems


def _state_problems(inst: Instance, node: str, index: int, where: str, s: Dict[str, Any]) -> List[Problem]:
    out: List[Problem] = []
    cs, role, ds, peer_ds = s.get("cs"), s.get("role"), s.get("disk"), s.get("peer_disk")
    peer = inst.secondary_node if node == inst.primary_node else inst.primary_node
    state = f"cs:{cs} ro:{role}/{s.get('peer_role')} ds:{ds}/{peer_ds}"
    if cs == "StandAlone":
        out.append(Problem("error", node, index, f"{where}: StandAlone ({state}): not connected to {peer} and "
                           "not trying to; after a split brain DRBD leaves both sides StandAlone"))
    elif cs in DISCONNECTED:
        out.append(Problem("error", node, index, f"{where}: disconnected from {peer} ({state}): degraded, "
                           "nothing is replicated until it reconnects"))
    elif cs in RESYNCING or s.get("in_resync"):
        done = s.get("sync_percent")
        out.append(Problem("warning", node, index, f"{where}: resyncing ({state}"
                           f"{f', {done:g}% done' if isinstance(done, (int, float)) else ''})"))
    elif cs == "Connected":
        if ds != "UpToDate" or peer_ds not in (None, "UpToDate"):
            out.append(Problem("error", node, index, f"{where}: degraded ({state})"))
        elif isinstance(s.get("oos"), int) and s["oos"] > 0:
            out.append(Problem("error", node, index, f"{where}: {s['oos']} KiB out of sync with {peer} ({state}); "
                               "disconnect and connect the resource to resync them"))
    if ds == "Diskless":
        out.append(Problem("error", node, index, f"{where}: Diskless: the backing volume is detached"))
    if role == "Primary" and node != inst.primary_node:
        out.append(Problem("error", node, index, f"{where}: Primary on a node that is not the instance's primary "
                           f"({inst.primary_node}); a demote failed, e.g. at the end of a migration; "
                           "herd.cluster.instance_migrate with cleanup: true demotes it"))
    return out


def health_word(problems: List[Problem], asked: bool = True) -> str:
    """One word for instance_info: ok, resyncing, degraded, or unknown (no node answered)."""
    if not asked:
        return "unknown"
    if any(p.severity == "error" for p in problems):
        return "degraded"
    if problems:
        return "resyncing"
    return "ok"


# ----------------------------------------------------------------- node-wide (verify only)

def expected_volumes(config: Config) -> Dict[str, Dict[Tuple[str, str], str]]:
    """{node: {(vg, lv): instance}} every LV the config says exists on each node."""
    out: Dict[str, Dict[Tuple[str, str], str]] = {}
    default_vg = config.cluster.volume_group
    for inst in config.instances.values():
        for index, disk in enumerate(inst.disks):
            lid = disk.logical_id
            vg = lid.get("vg") or disk.vg or default_vg
            if inst.disk_template == "plain":
                out.setdefault(inst.primary_node, {})[(vg, lid.get("lv") or f"{disk.uuid}.disk{index}")] = inst.name
            elif inst.disk_template == "drbd":
                meta_vg = lid.get("meta_vg") or vg
                for node in inst.nodes():
                    volumes = out.setdefault(node, {})
                    volumes[(vg, lid.get("data_lv") or f"{disk.uuid}.disk{index}_data")] = inst.name
                    volumes[(meta_vg, lid.get("meta_lv") or f"{disk.uuid}.disk{index}_meta")] = inst.name
    return out


def config_minors(config: Config) -> Dict[str, Dict[int, str]]:
    """{node: {minor: instance}} of every DRBD minor the config allocates."""
    out: Dict[str, Dict[int, str]] = {}
    for inst in config.instances.values():
        for disk in inst.disks:
            for node, minor in (disk.logical_id.get("minors") or {}).items():
                if isinstance(minor, int):
                    out.setdefault(node, {})[minor] = inst.name
    return out


def node_problems(config: Config, node: str, listing: Dict[str, Any]) -> List[Tuple[str, str, str, str]]:
    """(severity, code, object, message) for one node's ``storage_list`` answer: herd volumes
    no instance owns (ENODEORPHANLV, the node), volumes the config expects that are missing
    (EINSTANCEFAULTYDISK, the instance), DRBD minors in use the config does not know
    (ENODEDRBD, the node)."""
    out: List[Tuple[str, str, str, str]] = []
    expected = expected_volumes(config).get(node, {})
    present = {(lv["vg"], lv["lv"]): lv for lv in listing.get("lvs") or []}
    for key, lv in sorted(present.items()):
        if lv.get("herd") and key not in expected:
            owner = f" (tagged for instance {lv['instance']})" if lv.get("instance") else ""
            out.append(("warning", "ENODEORPHANLV", node, f"volume {key[0]}/{key[1]}{owner} belongs to no instance on "
                        "this node; remove it with lvremove once nothing needs it"))
    listed_vgs = {lv["vg"] for lv in listing.get("lvs") or []}
    failed = " ".join(listing.get("errors") or [])
    for (vg, name), instance in sorted(expected.items()):
        if (vg, name) not in present and (vg in listed_vgs or not failed):
            out.append(("error", "EINSTANCEFAULTYDISK", instance, f"{node}: volume {vg}/{name} is missing"))
    proc = (listing.get("drbd") or {}).get("proc")
    known = config_minors(config).get(node, {})
    for minor, status in sorted(((proc or {}).get("minors") or {}).items(), key=lambda kv: int(kv[0])):
        if status.get("cs") not in (None, "Unconfigured") and int(minor) not in known:
            out.append(("error", "ENODEDRBD", node, f"DRBD minor {minor} is in use (cs:{status.get('cs')}) but no "
                        "instance in the config has it on this node"))
    return out


def proc_from_listing(listing: Any) -> Optional[Dict[str, Any]]:
    """A ``storage_list`` answer's /proc/drbd in ``drbd_status`` shape (or None)."""
    if not isinstance(listing, dict):
        return None
    proc = (listing.get("drbd") or {}).get("proc")
    if proc is None:
        return {"loaded": False, "minors": {}}
    return {"loaded": True, "minors": {str(k): v for k, v in (proc.get("minors") or {}).items()}}
