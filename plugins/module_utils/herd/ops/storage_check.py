"""Whether a node has the storage of the cluster's enabled disk templates (cluster init, node add).

A cluster whose ``plain`` or ``drbd`` template is enabled on a node without its
volume group, or ``drbd`` without the kernel module, or ``sharedfile``
without its directory, accepts instances that then fail half-way on that
node; so init and node add refuse before the node joins, naming the node and
what is missing.
"""

from typing import Any, Dict, List

from ..config import Cluster
from ..errors import PrerequisiteError


def facts_args(cluster: Cluster) -> Dict[str, Any]:
    """The ``node_facts`` arguments that report the storage of ``cluster``'s templates."""
    return {"vg": cluster.volume_group, "drbd": True,
            "file_dirs": [cluster.file_storage_dir, cluster.shared_file_storage_dir]}


def missing(cluster: Cluster, facts: Dict[str, Any]) -> List[str]:
    """What the node of ``facts`` lacks for ``cluster``'s enabled disk templates."""
    enabled = set(cluster.enabled_disk_templates)
    out = []
    lvm = sorted(enabled & {"plain", "drbd"})
    vg = facts.get("volume_group") or {}
    if lvm and not vg.get("present"):
        why = f" ({vg['error']})" if vg.get("error") else ""
        out.append(f"volume group {cluster.volume_group!r} (for {', '.join(lvm)}){why}")
    drbd = facts.get("drbd") or {}
    if "drbd" in enabled and not drbd.get("loaded") and not drbd.get("missing_allowed"):
        out.append("the drbd kernel module (for drbd; /proc/drbd is missing)")
    if "sharedfile" in enabled:
        shared: Dict[str, Any] = next((d for d in facts.get("file_storage", [])
                                       if d.get("path") == cluster.shared_file_storage_dir), {})
        if not shared.get("exists"):
            out.append(f"directory {cluster.shared_file_storage_dir} (for sharedfile; the mount point of the "
                       "filesystem every node shares)")
    return out


def require_storage(what: str, node: str, cluster: Cluster, facts: Dict[str, Any], warnings: List[str]) -> None:
    """Refuse ``what`` (e.g. "cluster init") when ``node`` lacks storage of an enabled template."""
    lacking = missing(cluster, facts)
    if lacking:
        raise PrerequisiteError(
            f"{what}: node {node} lacks {'; '.join(lacking)}, and enabled_disk_templates is "
            f"{cluster.enabled_disk_templates}: set the storage up there (the herd.cluster.node role with "
            "herd_vg_devices, node_drbd) or leave those templates out of enabled_disk_templates")
    drbd = facts.get("drbd") or {}
    if "drbd" in cluster.enabled_disk_templates and not drbd.get("loaded"):
        warnings.append(f"{node}: drbd is enabled but the drbd kernel module is not loaded there "
                        "(allowed by node_drbd_allow_missing_module); drbd disks cannot be activated on it")
