"""What the nodes report, and the allocator's view of it: live node facts, the same facts in
the allocator's terms, and the allocator's cluster model built from the config plus those facts.
Every operation that needs facts or a model gets them here; the allocator never imports ``ops``."""

from typing import Any, Dict, List, Optional

from ..allocator.config_model import from_herd_config
from ..allocator.model import Cluster as AllocatorCluster
from ..config import Config
from ..errors import RpcError
from .common import Context


def live_facts(ctx: Context, config: Config, nodes: Optional[List[str]] = None) -> Dict[str, Any]:
    """node_facts from every online node, in parallel: {node: facts or {"error": ...}}."""
    selected = [config.nodes[n] for n in (nodes or sorted(config.nodes))]
    calls = [(ctx.endpoint(n, config), "node_facts",
              {"vg": config.cluster.volume_group,
               "file_dirs": [config.cluster.file_storage_dir, config.cluster.shared_file_storage_dir]})
             for n in selected if not n.offline]
    answers = ctx.rpc.call_many(calls, timeout=30)
    out: Dict[str, Any] = {}
    for node in selected:
        if node.offline:
            out[node.name] = {"error": "offline"}
            continue
        answer = answers.get(node.name)
        out[node.name] = {"error": str(answer)} if isinstance(answer, RpcError) else answer
    return out


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
            space: Dict[str, Any] = next((s for s in fact.get("file_storage", []) if s.get("path") == wanted), {})
            disk_total, disk_free = space.get("total", 0), space.get("free", 0)
        else:
            disk_total = disk_free = 0
        out[name] = dict(fact, memory_free=max(free, 0), memory_dom0=max(total - fact["memory_free"] - real_mem, 0),
                         cpu_dom0=0, disk_total=disk_total, disk_free=disk_free)
    return out


def allocator_cluster(ctx: Context, config: Config, legacy_n1: bool = False) -> AllocatorCluster:
    """The allocator's model of this cluster: the config plus every node's live facts."""
    facts = allocator_facts(config, live_facts(ctx, config))
    return from_herd_config(config.to_dict(), facts, legacy_n1=legacy_n1)


def load_allocator_cluster(params: Dict[str, Any], ctx: Optional[Context] = None) -> AllocatorCluster:
    """The allocator's model for the rebalance and capacity_info modules when they run on the
    master without a cluster_file (the ``live`` loader of ``allocator.plans``)."""
    ctx = ctx or Context.on_this_node(check_mode=True)
    return allocator_cluster(ctx, ctx.load_master_config(), legacy_n1=bool(params.get("legacy_n1", False)))
