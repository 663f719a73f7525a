"""Build the allocator model from herd's own cluster config and node facts.

``from_herd_config(config, facts)``: ``config`` is the config dict (or the
``config.Config`` object) keyed by name as in ``herd/config.py``; ``facts`` maps
node name to ``{"memory_total", "memory_free", "memory_dom0", "cpu_count",
"cpu_dom0", "disk_total", "disk_free", "spindles_total"}`` (MiB / counts), as
the agent's facts report them.

Mapping (the same as Ganeti's IAllocator input, ``lib/masterd/iallocator.py``):
node ``t_mem``/``n_mem``/``f_mem`` = memory_total/memory_dom0/memory_free;
``t_dsk``/``f_dsk`` = disk_total/disk_free; ``t_cpu``/``n_cpu`` =
cpu_count/cpu_dom0; spindles = ndparams ``spindle_count`` (``spindles_total``
with exclusive storage).  A node that is offline, drained, not vm_capable or
has no (or incomplete) facts is offline for placement, with the reason kept in
``Node.offline_reason``.  Instances: memory = beparams ``maxmem``, disk =
Ganeti's ``ComputeDiskSize`` (drbd adds 128 MiB per disk), status from
``admin_state``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import DEFAULT_BEPARAMS
from .model import DISK_TEMPLATES, NO_NODE, Cluster, IPolicy, disk_space_total

FACT_KEYS = ("memory_total", "memory_free", "memory_dom0", "cpu_count", "cpu_dom0",
             "disk_total", "disk_free")

_BE_DEFAULTS = DEFAULT_BEPARAMS
_ND_DEFAULTS = {"spindle_count": 1, "exclusive_storage": False}


class HerdConfigError(ValueError):
    """The config or facts cannot be turned into a model; names the key."""


def _as_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise HerdConfigError(f"config: expected a dict, got {type(config).__name__}")
    return config


def _num(d: dict[str, Any], key: str, where: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise HerdConfigError(f"{where}: key '{key}': expected a number, got {v!r}")
    return v


def from_herd_config(config: Any, facts: dict[str, dict[str, Any]] | None,
                     legacy_n1: bool = False) -> Cluster:
    """Return a finalized ``Cluster`` for herd's config and node facts."""
    cfg = _as_dict(config)
    facts = facts or {}
    cl = cfg.get("cluster") or {}
    if not isinstance(cl, dict):
        raise HerdConfigError("config: key 'cluster': expected an object")
    c = Cluster()
    c.name = cl.get("name", "")
    try:
        c.ipolicy = IPolicy.from_dict(cl.get("ipolicy") or {})
    except (ValueError, TypeError) as exc:
        raise HerdConfigError(f"cluster.ipolicy: {exc}") from None
    c.cluster_tags = list(cl.get("tags") or [])
    cl_nd = dict(_ND_DEFAULTS, **(cl.get("ndparams") or {}))
    cl_be = dict(_BE_DEFAULTS, **(cl.get("beparams") or {}))
    hvs = cl.get("enabled_hypervisors") or []
    groups = cfg.get("nodegroups") or {}
    if not isinstance(groups, dict):
        raise HerdConfigError("config: key 'nodegroups': expected an object keyed by name")
    g_nd: dict[int, dict[str, Any]] = {}
    for gname, g in groups.items():
        where = f"nodegroups.{gname}"
        if not isinstance(g, dict):
            raise HerdConfigError(f"{where}: expected an object")
        try:
            pol = IPolicy.from_dict(g.get("ipolicy") or {}, c.ipolicy)
            grp = c.add_group(_name(g, gname, where), g.get("uuid") or gname,
                              g.get("alloc_policy", "preferred"), g.get("networks") or [],
                              g.get("tags") or [], pol)
        except (ValueError, TypeError) as exc:
            raise HerdConfigError(f"{where}: {exc}") from None
        g_nd[grp.idx] = g.get("ndparams") or {}
    nodes = cfg.get("nodes") or {}
    if not isinstance(nodes, dict):
        raise HerdConfigError("config: key 'nodes': expected an object keyed by name")
    for nname, nd in nodes.items():
        where = f"nodes.{nname}"
        if not isinstance(nd, dict):
            raise HerdConfigError(f"{where}: expected an object")
        gref = nd.get("group", "default")
        if gref in c.group_by_name:
            gdx = c.group_by_name[gref]
        elif gref in c.group_by_uuid:
            gdx = c.group_by_uuid[gref]
        elif not groups and gref == "default":
            gdx = c.add_group("default", "default").idx
            g_nd[gdx] = {}
        else:
            raise HerdConfigError(f"{where}: key 'group': unknown node group {gref!r}")
        ndp = dict(cl_nd, **g_nd.get(gdx, {}), **(nd.get("ndparams") or {}))
        excl = bool(ndp.get("exclusive_storage", False))
        name = _name(nd, nname, where)
        f = facts.get(name)
        reason = ""
        if nd.get("offline"):
            reason = "node is offline"
        elif not nd.get("vm_capable", True):
            reason = "node is not vm_capable"
        elif nd.get("drained"):
            reason = "node is drained"
        elif f is None:
            reason = "no facts for this node (unreachable?)"
        else:
            missing = [k for k in FACT_KEYS if not isinstance(f.get(k), (int, float))
                       or isinstance(f.get(k), bool)]
            if missing:
                reason = f"incomplete facts (missing {', '.join(missing)})"
        live = not reason or reason == "node is drained"
        if live and f is not None:
            sp_total = int(f.get("spindles_total") or 0) if excl else \
                int(ndp.get("spindle_count", 1))
            n = c.add_node(name, _num(f, "memory_total", f"facts.{name}"),
                           int(_num(f, "memory_dom0", f"facts.{name}")),
                           int(_num(f, "memory_free", f"facts.{name}")),
                           _num(f, "disk_total", f"facts.{name}"),
                           int(_num(f, "disk_free", f"facts.{name}")),
                           _num(f, "cpu_count", f"facts.{name}"),
                           int(_num(f, "cpu_dom0", f"facts.{name}")), bool(reason), gdx,
                           sp_total, int(f.get("spindles_free") or sp_total if excl else 0),
                           excl, 1.0, nd.get("tags") or [], False, reason)
        else:
            n = c.add_node(name, 0, 0, 0, 0, 0, 0, 0, True, gdx,
                           0 if excl else int(ndp.get("spindle_count", 1)), 0, excl, 1.0,
                           nd.get("tags") or [], False, reason)
        if hvs:
            n.hypervisor = hvs[0]
    insts = cfg.get("instances") or {}
    if not isinstance(insts, dict):
        raise HerdConfigError("config: key 'instances': expected an object keyed by name")
    for iname, ins in insts.items():
        where = f"instances.{iname}"
        if not isinstance(ins, dict):
            raise HerdConfigError(f"{where}: expected an object")
        name = _name(ins, iname, where)
        pn = ins.get("primary_node")
        if pn not in c.node_by_name:
            raise HerdConfigError(f"{where}: key 'primary_node': unknown node {pn!r}")
        sn = ins.get("secondary_node")
        if sn and sn not in c.node_by_name:
            raise HerdConfigError(f"{where}: key 'secondary_node': unknown node {sn!r}")
        dt = ins.get("disk_template")
        if dt not in DISK_TEMPLATES:
            raise HerdConfigError(f"{where}: key 'disk_template': unknown template {dt!r}")
        if dt == "drbd" and (not sn or sn == pn):
            raise HerdConfigError(f"{where}: drbd instance needs a secondary node different "
                                  "from its primary")
        be = dict(cl_be, **(ins.get("beparams") or {}))
        disks = []
        for k, d in enumerate(ins.get("disks") or []):
            if not isinstance(d, dict) or not isinstance(d.get("size"), int):
                raise HerdConfigError(f"{where}: disks[{k}]: key 'size': expected MiB (int)")
            disks.append((d["size"], d.get("spindles")))
        st = ins.get("admin_state", "down")
        status = {"up": "running", "down": "ADMIN_down", "offline": "ADMIN_offline"}.get(st)
        if status is None:
            raise HerdConfigError(f"{where}: key 'admin_state': expected up, down or offline")
        nics = [n if isinstance(n, dict) else {} for n in (ins.get("nics") or [])]
        c.add_instance(name, int(be["maxmem"]), disk_space_total(dt, (s for s, _spindles in disks)),
                       int(be["vcpus"]), status, c.node_by_name[pn],
                       c.node_by_name[sn] if sn else NO_NODE, dt, ins.get("tags") or [],
                       int(be.get("spindle_use", 1)), disks, bool(be.get("auto_balance", True)),
                       False, nics)
    c.finalize(legacy_n1=legacy_n1)
    return c


def _name(entry: dict[str, Any], key: Any, where: str) -> str:
    """An entry's name: its ``name``, else the key it is filed under; a string either way."""
    name = entry.get("name", key)
    if not isinstance(name, str) or not name:
        raise HerdConfigError(f"{where}: key 'name': expected a non-empty string, not {name!r}")
    return name
