"""Choosing nodes for a new instance, and checking operator-chosen nodes.

The allocator (``allocator/``) decides when no node is given, with hail's
semantics and one line per rejected node. When nodes are given, the same
checks run for those nodes only, so an operator's choice that cannot work
fails with the same reasons before anything is created.
"""

from typing import Any, Dict, List, Optional, Tuple

from ..allocator import placement as allocator_placement
from ..config import Config, Instance
from ..errors import PrerequisiteError
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
    }


def place(ctx: Context, config: Config, inst: Instance, primary: Optional[str], secondary: Optional[str]
          ) -> Dict[str, Any]:
    """Return {"primary", "secondary", "reasons": [...], "score": ...} or raise with per-node reasons."""
    facts = allocator_facts(config, live_facts(ctx, config))
    request = request_for(config, inst)
    answer = allocator_placement.place(config.to_dict(), facts, request, primary=primary, secondary=secondary)
    if not answer["success"]:
        lines = "; ".join(answer.get("reasons", [])) or answer.get("info", "no node fits")
        raise PrerequisiteError(f"cannot place instance {inst.name} ({request['memory']} MiB, "
                                f"{sum(d['size'] for d in request['disks'])} MiB disk, {inst.disk_template}): "
                                f"{lines}")
    return answer


def place_many(ctx: Context, config: Config, wanted: List[Tuple[Instance, Optional[str], Optional[str]]]
               ) -> List[Dict[str, Any]]:
    """Nodes for several new instances (instance, primary, secondary), judged together on one
    round of live facts: each placement counts the ones before it. All or nothing: if any
    cannot be placed, the error names each such instance with its per-node reasons."""
    facts = allocator_facts(config, live_facts(ctx, config))
    requests = [dict(request_for(config, inst), primary=primary, secondary=secondary)
                for inst, primary, secondary in wanted]
    answers = allocator_placement.place_many(config.to_dict(), facts, requests)
    failed = [(inst, request, answer) for (inst, _p, _s), request, answer in zip(wanted, requests, answers)
              if not answer["success"]]
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
