"""Choosing nodes for a new instance, and checking operator-chosen nodes.

The allocator (``allocator/``) decides when no node is given, with hail's
semantics and one line per rejected node. When nodes are given, the same
checks run for those nodes only, so an operator's choice that cannot work
fails with the same reasons before anything is created.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..allocator import placement as allocator_placement
from ..config import Config, Instance
from ..errors import PrerequisiteError
from . import instance_disks
from .common import Context
from .facts import allocator_facts, live_facts


def request_for(config: Config, inst: Instance) -> Dict[str, Any]:
    return {
        "name": inst.name,
        "disk_template": inst.disk_template,
        "memory": inst.beparams["maxmem"],
        "vcpus": inst.beparams["vcpus"],
        "disks": [{"size": d.size, "spindles": d.spindles} for d in inst.disks],
        "nics": len(inst.nics),
        "tags": list(inst.tags),
        "spindle_use": inst.beparams.get("spindle_use", 1),
        "required_nodes": 2 if inst.disk_template == "drbd" else 1,
        "disk_space": _disk_space(config, inst),
    }


def _disk_space(config: Config, inst: Instance) -> Optional[int]:
    """MiB the new instance takes in the storage the allocator counts (the cluster's volume group
    for plain and drbd): an adopted LV takes none, a disk in another volume group is checked
    there (``instance_disks.check_other_vgs``). None: the allocator's own sum of the sizes."""
    if inst.disk_template not in ("plain", "drbd"):
        return None
    return instance_disks.new_space(config, inst).get(config.cluster.volume_group, 0)


def place(ctx: Context, config: Config, inst: Instance, primary: Optional[str], secondary: Optional[str]
          ) -> Dict[str, Any]:
    """Return {"primary", "secondary", "reasons": [...], "score": ...} or raise with per-node reasons."""
    raw = live_facts(ctx, config)
    facts = allocator_facts(config, raw)
    request = request_for(config, inst)
    answer = allocator_placement.place(config.to_dict(), facts, request, primary=primary, secondary=secondary)
    if not answer["success"]:
        lines = "; ".join(answer.get("reasons", [])) or answer.get("info", "no node fits")
        raise PrerequisiteError(f"cannot place instance {inst.name} ({request['memory']} MiB, "
                                f"{sum(d['size'] for d in request['disks'])} MiB disk, {inst.disk_template}): "
                                f"{lines}")
    answer["node_facts"] = raw  # for the bridge check once the NICs' links are known (check_nic_bridges)
    return answer


def place_many(ctx: Context, config: Config, wanted: List[Tuple[Instance, Optional[str], Optional[str]]]
               ) -> List[Dict[str, Any]]:
    """Nodes for several new instances (instance, primary, secondary), judged together on one
    round of live facts: each placement counts the ones before it. All or nothing: if any
    cannot be placed, the error names each such instance with its per-node reasons."""
    raw = live_facts(ctx, config)
    facts = allocator_facts(config, raw)
    requests = [dict(request_for(config, inst), primary=primary, secondary=secondary)
                for inst, primary, secondary in wanted]
    answers = allocator_placement.place_many(config.to_dict(), facts, requests)
    failed = [(inst, request, answer) for (inst, _p, _s), request, answer in zip(wanted, requests, answers)
              if not answer["success"]]

    for answer in answers:
        answer["node_facts"] = raw
    if failed:
        raise PrerequisiteError(
            f"cannot place {len(failed)} of {len(wanted)} instances (each counted after the ones before it): "
            + " | ".join(f"{inst.name} ({request['memory']} MiB, {sum(d['size'] for d in request['disks'])} MiB "
                         f"disk, {inst.disk_template}): "
                         + ("; ".join(answer.get("reasons", [])) or answer.get("info", "no node fits"))
                         for inst, request, answer in failed))
    return answers


def check_nodes_usable(config: Config, nodes: List[str], purpose: str) -> None:
    for name in nodes:
        if name not in config.nodes:
            raise PrerequisiteError(f"{purpose}: node {name} is not in the cluster (nodes: {sorted(config.nodes)})")
        node = config.nodes[name]
        for flag in ("offline", "drained"):
            if getattr(node, flag):
                raise PrerequisiteError(f"{purpose}: node {name} is {flag}")
        if not node.vm_capable:
            raise PrerequisiteError(f"{purpose}: node {name} is not vm_capable")


def check_bridges(instance: str, links: Sequence[Optional[str]], nodes: Sequence[Optional[str]],
                  raw_facts: Dict[str, Any]) -> None:
    """Every NIC's bridge exists on every node the instance will run on (what node_facts
    reports), before anything is created: an instance without its bridge on a node starts
    nowhere there, and migration and failover refuse such a node later."""
    wanted = sorted({link for link in links if link})
    problems = []
    for node in [n for n in nodes if n]:
        facts = raw_facts.get(node) or {}
        if not isinstance(facts, dict) or facts.get("error") or "bridges" not in facts:
            continue  # an unreachable node fails the placement with its own reason
        missing = [link for link in wanted if link not in facts["bridges"]]
        if missing:
            problems.append(f"bridge {', '.join(missing)} does not exist on node {node} (bridges there: "
                            f"{', '.join(facts['bridges']) or 'none'})")
    if problems:
        raise PrerequisiteError(f"instance {instance}: " + "; ".join(problems) + "; create the bridge on the node "
                                "(the herd.cluster.node_network role) or give the NIC another link")


def check_nic_bridges(inst: Instance, raw_facts: Dict[str, Any]) -> None:
    """check_bridges for a placed instance whose NICs have their mode and link (reserve_nics)."""
    check_bridges(inst.name, [n.link for n in inst.nics if (n.mode or "bridged") == "bridged"], inst.nodes(),
                  raw_facts)


def check_bridges_live(ctx: Context, config: Config, instance: str, links: List[Optional[str]],
                       nodes: List[str]) -> None:
    """check_bridges with a fresh round of node facts from ``nodes`` (a NIC change)."""
    check_bridges(instance, links, list(nodes), live_facts(ctx, config, [n for n in nodes if n in config.nodes]))
