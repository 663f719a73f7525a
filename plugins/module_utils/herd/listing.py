"""Field selection and filters for node_info and instance_info, like
``gnt-node list -o FIELDS`` and ``gnt-instance list -o FIELDS``.

Rows are what ops.views returns; a field is a name (Ganeti's where it has one)
mapped to a getter. Sizes are MiB in the data and human-readable in tables."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .errors import HerdError
from .ops.views import format_table

Getter = Callable[[Dict[str, Any]], Any]

# field -> (table header, getter, value is a size in MiB)
NODE_FIELDS: Dict[str, Tuple[str, Getter, bool]] = {
    "name": ("Node", lambda r: r["name"], False),
    "role": ("Role", lambda r: r["role"], False),
    "group": ("Group", lambda r: r["group"], False),
    "pip": ("PrimaryIP", lambda r: r["primary_ip"], False),
    "sip": ("SecondaryIP", lambda r: r["secondary_ip"], False),
    "dtotal": ("DTotal", lambda r: r["disk_total"], True),
    "dfree": ("DFree", lambda r: r["disk_free"], True),
    "mtotal": ("MTotal", lambda r: r["memory_total"], True),
    "mfree": ("MFree", lambda r: r["memory_free"], True),
    "ctotal": ("CTotal", lambda r: r["cpu_count"], False),
    "pinst_cnt": ("Pinst", lambda r: len(r["primary_instances"]), False),
    "sinst_cnt": ("Sinst", lambda r: len(r["secondary_instances"]), False),
    "pinst_list": ("PriInstances", lambda r: r["primary_instances"], False),
    "sinst_list": ("SecInstances", lambda r: r["secondary_instances"], False),
    "tags": ("Tags", lambda r: (r.get("config") or {}).get("tags", []), False),
    "master_candidate": ("MasterC", lambda r: r["flags"].get("master_candidate"), False),
    "drained": ("Drained", lambda r: r["flags"].get("drained"), False),
    "offline": ("Offline", lambda r: r["flags"].get("offline"), False),
    "vm_capable": ("VMCapable", lambda r: r["flags"].get("vm_capable"), False),
    # N+1: the node can take the instances of any one failed node it is secondary for (htools' FailN1)
    "n1": ("N+1", lambda r: None if r.get("n1_fail") is None else not r["n1_fail"], False),
}
VG_FREE_PREFIX = "vg_free/"

INSTANCE_FIELDS: Dict[str, Tuple[str, Getter, bool]] = {
    "name": ("Instance", lambda r: r["name"], False),
    "pnode": ("Primary_node", lambda r: r["primary_node"], False),
    "snodes": ("Secondary_Nodes", lambda r: [r["secondary_node"]] if r.get("secondary_node") else [], False),
    "status": ("Status", lambda r: r.get("status"), False),
    "admin_state": ("Admin_state", lambda r: r["admin_state"], False),
    "disk_template": ("Disk_template", lambda r: r["disk_template"], False),
    "hypervisor": ("Hypervisor", lambda r: r["hypervisor"], False),
    "os": ("OS", lambda r: r["os"], False),
    "be/vcpus": ("ConfigVCPUs", lambda r: r.get("vcpus"), False),
    "be/memory": ("ConfigMaxMem", lambda r: r.get("memory"), True),
    "be/maxmem": ("ConfigMaxMem", lambda r: r.get("memory"), True),
    "be/minmem": ("ConfigMinMem", lambda r: r.get("minmem"), True),
    "disk.count": ("Disks", lambda r: len(r["disks"]), False),
    "disk.sizes": ("Disk_sizes", lambda r: [d["size"] for d in r["disks"]], True),
    "disk_usage": ("DiskUsage", lambda r: sum(d["size"] for d in r["disks"]), True),
    "nic.count": ("NICs", lambda r: len(r["nics"]), False),
    "nic.ips": ("NIC_IPs", lambda r: [n.get("ip") for n in r["nics"]], False),
    "nic.macs": ("NIC_MACs", lambda r: [n["mac"] for n in r["nics"]], False),
    "nic.links": ("NIC_links", lambda r: [n.get("link") for n in r["nics"]], False),
    "network_port": ("Network_port", lambda r: r.get("network_port"), False),
    "tags": ("Tags", lambda r: r.get("tags", []), False),
    "uuid": ("UUID", lambda r: r["uuid"], False),
}


def _field(table: Dict[str, Tuple[str, Getter, bool]], name: str, kind: str) -> Tuple[str, Getter, bool]:
    if name in table:
        return table[name]
    if kind == "node" and name.startswith(VG_FREE_PREFIX) and len(name) > len(VG_FREE_PREFIX):
        vg = name[len(VG_FREE_PREFIX):]
        return ("VGFree(%s)" % vg, lambda r: (r.get("vg_free") or {}).get(vg), True)
    valid = sorted(table) + (["vg_free/<volume group>"] if kind == "node" else [])
    raise HerdError(f"unknown {kind} field {name!r}; valid fields: {', '.join(valid)}")


def check_fields(fields: Sequence[str], kind: str) -> None:
    """Fail on an unknown field before anything is read."""
    table = NODE_FIELDS if kind == "node" else INSTANCE_FIELDS
    for name in fields:
        _field(table, name, kind)


def human_mib(mib: int) -> str:
    """MiB as gnt-* list prints sizes with -h: 512M, 1.5G, 2.0T."""
    if mib < 1024:
        return "%dM" % mib
    if mib < 1024 * 1024:
        return "%.1fG" % (mib / 1024.0)
    return "%.1fT" % (mib / (1024.0 * 1024.0))


def cell(value: Any, size: bool, human: bool) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, list):
        return ",".join(cell(v, size, human) for v in value) or "-"
    if size and human:
        return human_mib(int(value))
    return str(value)


def select(rows: List[Dict[str, Any]], fields: Sequence[str], kind: str,
           human: bool = True) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(one dict per row with the chosen fields' values, table lines with a header)."""
    table = NODE_FIELDS if kind == "node" else INSTANCE_FIELDS
    chosen = [(name,) + _field(table, name, kind) for name in fields]
    values = [{name: getter(row) for name, _header, getter, _size in chosen} for row in rows]
    header = [h for _name, h, _getter, _size in chosen]
    body = [[cell(v[name], size, human) for name, _h, _g, size in chosen] for v in values]
    return values, format_table(header, body)


def filter_rows(rows: List[Dict[str, Any]], kind: str, nodes: Optional[Sequence[str]] = None,
                tags: Optional[Sequence[str]] = None,
                statuses: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Rows on any of nodes (an instance's primary or secondary; a node itself), carrying every tag in tags,
    with a status (instances: Ganeti's status word; nodes: their role letter) among statuses."""
    out = []
    for row in rows:
        if kind == "node":
            where = {row["name"]}
            row_tags = set((row.get("config") or {}).get("tags", []))
            status = row["role"]
        else:
            where = {row["primary_node"], row.get("secondary_node")}
            row_tags = set(row.get("tags", []))
            status = row.get("status")
        if nodes and not where & set(nodes):
            continue
        if tags and not set(tags) <= row_tags:
            continue
        if statuses and status not in statuses:
            continue
        out.append(row)
    return out


def list_nodes(ctx: Any, spec: Dict[str, Any]) -> Dict[str, Any]:
    """node_info with filters (tags, roles) and, with fields, a table of those fields."""
    from .ops import views

    fields = spec.get("fields") or []
    check_fields(fields, "node")
    result = views.node_info(ctx, spec.get("names") or [], spec.get("live", True), n1="n1" in fields)
    result["nodes"] = filter_rows(result["nodes"], "node", tags=spec.get("tags"), statuses=spec.get("roles"))
    if fields:
        result["selected"], result["table"] = select(result["nodes"], fields, "node", spec.get("human", True))
    else:
        result["table"] = views.node_table(result["nodes"])
    return result


def list_instances(ctx: Any, spec: Dict[str, Any]) -> Dict[str, Any]:
    """instance_info with filters (nodes, tags, status) and, with fields, a table of those fields."""
    from .ops import views

    fields = spec.get("fields") or []
    check_fields(fields, "instance")
    result = views.instance_info(ctx, spec.get("names") or [], spec.get("live", True))
    result["instances"] = filter_rows(result["instances"], "instance", nodes=spec.get("nodes"),
                                      tags=spec.get("tags"), statuses=spec.get("status"))
    if fields:
        result["selected"], result["table"] = select(result["instances"], fields, "instance",
                                                     spec.get("human", True))
    else:
        result["table"] = views.instance_table(result["instances"])
    return result
