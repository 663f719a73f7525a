"""Choosing nodes for a new instance, and checking operator-chosen nodes.

The allocator (``allocator/``) decides when no node is given, with hail's
semantics and one line per rejected node. When nodes are given, the same
checks run for those nodes only, so an operator's choice that cannot work
fails with the same reasons before anything is created.
"""

from typing import Any, Dict, List, Optional

from ..config import Config, Instance
from ..errors import PrerequisiteError
from .common import Context
from .info import live_facts


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


def allocator_facts(config: Config, raw: Dict[str, Any]) -> Dict[str, Any]:
    """Node facts in the allocator's terms (Ganeti's IAllocator node fields), one place for the mapping.

    memory_free is what the node reports, less the memory of running ``fake``
    instances (they use none for real but must count, as Ganeti's fake
    hypervisor counts them); memory_dom0 is what is neither free nor used by
    instances, so the allocator sees no unaccounted memory. Disk is the storage
    of the cluster's first enabled disk template (as Ganeti reports one
    storage unit to htools).
    """
    out: Dict[str, Any] = {}
    first = config.cluster.enabled_disk_templates[0]
    for name, fact in raw.items():
        if not isinstance(fact, dict) or fact.get("error") or "memory_total" not in fact:
            out[name] = fact
            continue
        running = [i for i in config.instances.values() if i.primary_node == name and i.admin_state == "up"]
        fake_mem = sum(i.beparams.get("maxmem", 0) for i in running if i.hypervisor == "fake")
        real_mem = sum(i.beparams.get("maxmem", 0) for i in running if i.hypervisor != "fake")
        free = fact["memory_free"] - fake_mem
        total = fact["memory_total"]
        if first in ("plain", "drbd"):
            vg = fact.get("volume_group") or {}
            disk_total, disk_free = vg.get("size", 0), vg.get("free", 0)
        elif first in ("file", "sharedfile"):
            wanted = config.cluster.file_storage_dir if first == "file" else config.cluster.shared_file_storage_dir
            space = next((s for s in fact.get("file_storage", []) if s.get("path") == wanted), {})
            disk_total, disk_free = space.get("total", 0), space.get("free", 0)
        else:
            disk_total = disk_free = 0
        out[name] = dict(fact, memory_free=max(free, 0), memory_dom0=max(total - fact["memory_free"] - real_mem, 0),
                         cpu_dom0=0, disk_total=disk_total, disk_free=disk_free)
    return out


def place(ctx: Context, config: Config, inst: Instance, primary: Optional[str], secondary: Optional[str]
          ) -> Dict[str, Any]:
    """Return {"primary", "secondary", "reasons": [...], "score": ...} or raise with per-node reasons."""
    from ..allocator import placement as allocator_placement

    facts = allocator_facts(config, live_facts(ctx, config))
    request = request_for(config, inst)
    answer = allocator_placement.place(config.to_dict(), facts, request, primary=primary, secondary=secondary)
    if not answer["success"]:
        lines = "; ".join(answer.get("reasons", [])) or answer.get("info", "no node fits")
        raise PrerequisiteError(f"cannot place instance {inst.name} ({request['memory']} MiB, "
                                f"{sum(d['size'] for d in request['disks'])} MiB disk, {inst.disk_template}): "
                                f"{lines}")
    return answer


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
