"""Ganeti IAllocator protocol (version 2): request parsing, responses, ``main``.

``main(argv)`` behaves like hail: ``herd-iallocator [options] REQUEST.json`` (or
``-`` for stdin) prints one JSON response on stdout and exits 0, also when the
request cannot be satisfied (``"success": false``).  A malformed request prints
``Error: ...`` (naming the offending key) on stderr and exits 1.

Options (hail's): ``--ignore-soft-errors``, ``--no-capacity-checks``,
``--restrict-allocation-to=a,b``, ``--static-kvm-node-memory=N`` (default 4096),
``-t FILE`` (replace the cluster data by an htools text file), ``-v``.
Herd extra: ``--explain`` adds ``"reasons"`` (one line per node not chosen) to the
response object; Ganeti ignores unknown response keys.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from . import allocate as al
from .model import DISK_TEMPLATES, NO_NODE, Cluster, Instance, IPolicy
from .text import TextFormatError, parse_text


class RequestError(ValueError):
    """Malformed IAllocator input; the message names the key."""


_MISSING = object()


def _get(obj: Any, key: str, ctx: str, typ: Any, default: Any = _MISSING) -> Any:
    if not isinstance(obj, dict):
        raise RequestError(f"{ctx}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj or (obj[key] is None and default is not _MISSING):
        if default is not _MISSING:
            return default
        raise RequestError(f"{ctx}: key '{key}' is missing")
    v = obj[key]
    names = {str: "String", int: "Int", float: "Double", bool: "Bool", list: "list",
             dict: "object"}
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if typ is int and isinstance(v, float) and v.is_integer():
        return int(v)
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise RequestError(f"{ctx}: key '{key}': Unable to read {names.get(typ, typ)} "
                           f"(got {json.dumps(v)[:60]})")
    return v


def _str_list(v: Any, ctx: str, key: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise RequestError(f"{ctx}: key '{key}': expected a list of strings")
    return v


@dataclass
class Request:
    type: str
    cluster: Cluster
    raw: dict[str, Any]
    instance: Instance | None = None
    required_nodes: int = 1
    group_name: str | None = None
    restrict: list[str] | None = None
    multi: list[tuple[Instance, int, str | None]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    relocate_from: list[str] = field(default_factory=list)
    evac_mode: str = ""
    target_groups: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _base_instance(c: Cluster, name: str, d: dict[str, Any], ctx: str,
                   register: bool = True) -> dict[str, Any]:
    dst = _get(d, "disk_space_total", ctx, int)
    disks_raw = _get(d, "disks", ctx, list)
    disks = []
    for k, dd in enumerate(disks_raw):
        dctx = f"{ctx}: disks[{k}]"
        size = _get(dd, "size", dctx, int)
        sp = _get(dd, "spindles", dctx, int, None)
        disks.append((size, sp))
    mem = _get(d, "memory", ctx, int)
    vcpus = _get(d, "vcpus", ctx, int)
    tags = _str_list(_get(d, "tags", ctx, list), ctx, "tags")
    dt = _get(d, "disk_template", ctx, str)
    if dt not in DISK_TEMPLATES:
        raise RequestError(f"{ctx}: key 'disk_template': unknown template {dt!r} "
                           f"(expected one of {', '.join(DISK_TEMPLATES)})")
    su = _get(d, "spindle_use", ctx, int)
    nics = _get(d, "nics", ctx, list)
    for k, nic in enumerate(nics):
        if not isinstance(nic, dict):
            raise RequestError(f"{ctx}: nics[{k}]: expected an object")
    st = _get(d, "admin_state", ctx, str, "up")
    status = {"up": "running", "down": "ADMIN_down", "offline": "ADMIN_offline"}.get(st)
    if status is None:
        raise RequestError(f"{ctx}: key 'admin_state': expected up, down or offline, got {st!r}")
    forth = _get(d, "forthcoming", ctx, bool, False)
    return {"name": name, "mem": mem, "dsk": dst, "vcpus": vcpus, "status": status,
            "template": dt, "tags": tags, "spindle_use": su, "disks": disks, "nics": nics,
            "forthcoming": forth}


def build_cluster(data: dict[str, Any], static_kvm_mem: int = 4096,
                  text_data: str | None = None) -> tuple[Cluster, list[str]]:
    """The cluster part of an IAllocator message (hail ``parseData``)."""
    if text_data is not None:
        c = parse_text(text_data)
        c.finalize()
        return c, list(c.warnings)
    ctx = "invalid iallocator message"
    c = Cluster()
    c.name = data.get("cluster_name", "") if isinstance(data, dict) else ""
    groups = _get(data, "nodegroups", ctx, dict)
    for uuid, g in groups.items():
        gctx = f"invalid data for group '{uuid}'"
        name = _get(g, "name", gctx, str)
        apol = _get(g, "alloc_policy", gctx, str)
        nets = _str_list(_get(g, "networks", gctx, list), gctx, "networks")
        try:
            ipol = IPolicy.from_dict(_get(g, "ipolicy", gctx, dict))
        except (ValueError, TypeError) as exc:
            raise RequestError(f"{gctx}: key 'ipolicy': {exc}") from None
        tags = _str_list(_get(g, "tags", gctx, list), gctx, "tags")
        try:
            c.add_group(name, uuid, apol, nets, tags, ipol)
        except ValueError as exc:
            raise RequestError(f"{gctx}: key 'alloc_policy': {exc}") from None
    nodes = _get(data, "nodes", ctx, dict)
    hvs = _get(data, "enabled_hypervisors", ctx, list)
    for name, nd in nodes.items():
        nctx = f"invalid data for node '{name}'"
        offline = _get(nd, "offline", nctx, bool)
        drained = _get(nd, "drained", nctx, bool)
        guuid = _get(nd, "group", nctx, str)
        vm_cap = _get(nd, "vm_capable", nctx, bool, True)
        if guuid not in c.group_by_uuid:
            raise RequestError(f"{nctx}: unknown group '{guuid}' for node {name}")
        ndp = _get(nd, "ndparams", nctx, dict)
        tags = _str_list(_get(nd, "tags", nctx, list, []), nctx, "tags")
        excl = _get(ndp, "exclusive_storage", nctx + " ndparams", bool)
        live = (not offline) and vm_cap

        def lv(key: str, typ: Any, dflt: Any) -> Any:
            return _get(nd, key, nctx, typ) if live else dflt  # noqa: B023 - called in this iteration only
        sptotal = lv("total_spindles", int, 0) if excl else \
            _get(ndp, "spindle_count", nctx + " ndparams", int)
        spfree = lv("free_spindles", int, 0)
        reason = ""
        if offline:
            reason = "node is offline"
        elif not vm_cap:
            reason = "node is not vm_capable"
        elif drained:
            reason = "node is drained"
        n = c.add_node(name, lv("total_memory", float, 0.0), lv("reserved_memory", int, 0),
                       lv("free_memory", int, 0), lv("total_disk", float, 0.0),
                       lv("free_disk", int, 0), lv("total_cpus", float, 0.0),
                       lv("reserved_cpus", int, 0), (not live) or drained,
                       c.group_by_uuid[guuid], sptotal, spfree, excl, 1.0, tags,
                       False, reason)
        if hvs:
            n.hypervisor = hvs[0]
    insts = _get(data, "instances", ctx, dict)
    for name, idata in insts.items():
        ictx = f"invalid data for instance '{name}'"
        b = _base_instance(c, name, idata, ictx)
        nl = _get(idata, "nodes", ictx, list)
        if not nl:
            raise RequestError(f"{ictx}: empty node list for instance {name}")
        for x in nl:
            if not isinstance(x, str):
                raise RequestError(f"{ictx}: key 'nodes': expected node names")
            if x not in c.node_by_name:
                raise RequestError(f"{ictx}: Unknown node '{x}' for instance {name}")
        pdx = c.node_by_name[nl[0]]
        sdx = c.node_by_name[nl[1]] if len(nl) > 1 else NO_NODE
        c.add_instance(name, b["mem"], b["dsk"], b["vcpus"], b["status"], pdx, sdx,
                       b["template"], b["tags"], b["spindle_use"], b["disks"], True,
                       b["forthcoming"], b["nics"])
    c.cluster_tags = _str_list(_get(data, "cluster_tags", ctx, list), ctx, "cluster_tags")
    c.finalize(static_kvm_mem=static_kvm_mem)
    return c, list(c.warnings)


def parse_request(data: dict[str, Any], static_kvm_mem: int = 4096,
                  text_data: str | None = None) -> Request:
    """Parse a full IAllocator message (dict from JSON)."""
    if not isinstance(data, dict):
        raise RequestError("invalid iallocator message: expected a JSON object")
    req = _get(data, "request", "invalid iallocator message", dict)
    c, warnings = build_cluster(data, static_kvm_mem, text_data)
    ctx = "invalid request dict"
    rtype = _get(req, "type", ctx, str)
    r = Request(rtype, c, data, warnings=warnings)
    if rtype == "allocate":
        name = _get(req, "name", ctx, str)
        r.group_name = _get(req, "group_name", ctx, str, None)
        rest = _get(req, "restrict-to-nodes", ctx, list, None)
        r.restrict = _str_list(rest, ctx, "restrict-to-nodes") if rest is not None else None
        r.required_nodes = _get(req, "required_nodes", ctx, int)
        b = _base_instance(c, name, req, ctx)
        r.instance = _new(c, b)
    elif rtype == "multi-allocate":
        arr = _get(req, "instances", ctx, list)
        gname = _get(req, "group_name", ctx, str, None)
        for k, one in enumerate(arr):
            ictx = f"{ctx}: instances[{k}]"
            name = _get(one, "name", ictx, str)
            rn = _get(one, "required_nodes", ictx, int)
            b = _base_instance(c, name, one, ictx)
            r.multi.append((_new(c, b), rn, gname))
    elif rtype == "relocate":
        r.names = [_get(req, "name", ctx, str)]
        if r.names[0] not in c.inst_by_name:
            raise RequestError(f"{ctx}: key 'name': Unknown instance '{r.names[0]}'")
        r.required_nodes = _get(req, "required_nodes", ctx, int)
        r.relocate_from = _str_list(_get(req, "relocate_from", ctx, list), ctx,
                                    "relocate_from")
        for nm in r.relocate_from:
            if nm not in c.node_by_name:
                raise RequestError(f"{ctx}: key 'relocate_from': Unknown node '{nm}'")
    elif rtype in ("node-evacuate", "change-group"):
        r.names = _str_list(_get(req, "instances", ctx, list), ctx, "instances")
        for nm in r.names:
            if nm not in c.inst_by_name:
                raise RequestError(f"{ctx}: key 'instances': Unknown instance '{nm}'")
        if rtype == "node-evacuate":
            r.evac_mode = _get(req, "evac_mode", ctx, str)
            if r.evac_mode not in al.EVAC_MODES:
                raise RequestError(f"{ctx}: key 'evac_mode': expected one of "
                                   f"{', '.join(al.EVAC_MODES)}, got {r.evac_mode!r}")
        else:
            r.target_groups = _str_list(_get(req, "target_groups", ctx, list), ctx,
                                        "target_groups")
            for g in r.target_groups:
                if g not in c.group_by_uuid and g not in c.group_by_name:
                    raise RequestError(f"{ctx}: key 'target_groups': Unknown group '{g}'")
    elif rtype == "allocate-secondary":
        r.names = [_get(req, "name", ctx, str)]
        if r.names[0] not in c.inst_by_name:
            raise RequestError(f"{ctx}: key 'name': Unknown instance '{r.names[0]}'")
    else:
        raise RequestError(f"{ctx}: key 'type': Invalid request type '{rtype}'")
    return r


def _new(c: Cluster, b: dict[str, Any]) -> Instance:
    inst = c.new_instance(b["name"], b["mem"], b["disks"], b["vcpus"], b["template"],
                          b["tags"], b["spindle_use"], b["nics"], b["dsk"], b["status"])
    return inst


def load_request(path: str, **kw: Any) -> Request:
    try:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise RequestError(f"Parsing input IAllocator message: line {exc.lineno} column "
                           f"{exc.colno}: {exc.msg}") from None
    return parse_request(data, **kw)


# ----------------------------------------------------------------- running

def response(success: bool, info: str, result: Any, reasons: list[str] | None = None
             ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "success": success,
        "info": ("Request successful: " if success else "Request failed: ") + info,
        "result": result if success else [],
    }
    if reasons is not None:
        out["reasons"] = reasons
    return out


def run(r: Request, ignore_soft: bool = False, capacity: bool = True,
        restrict: list[str] | None = None, explain: bool = False) -> dict[str, Any]:
    """Answer a parsed request with a hail-shaped response dict."""
    c = r.cluster
    why: list[str] | None = [] if explain else None
    try:
        if r.type == "allocate":
            # hail: the operator's --restrict-allocation-to wins over the request's
            rs = restrict if restrict is not None else r.restrict
            if r.instance is None:
                raise RequestError("allocate request without an instance")
            res = al.allocate(c, r.instance, r.required_nodes, r.group_name, rs, ignore_soft,
                              capacity)
            if why is not None:
                why.extend(res.reason_lines())
            return response(res.success, res.info, res.nodes, why)
        if r.type == "multi-allocate":
            ok, failed, results = al.multi_allocate(c, r.multi, ignore_soft, capacity,
                                                    restrict)
            if why is not None:
                for (inst, _required_nodes, _group), res in zip(r.multi, results):
                    why.extend(f"{inst.name}: {line}" for line in res.reason_lines())
            info = (f"{len(failed)} instances failed to allocate and {len(ok)} were allocated "
                    "successfully")
            if failed:
                info += "; " + "; ".join(f"{n}: {m}" for n, m in failed)
            # Ganeti validates the failed list as plain instance names
            return response(True, info, [[[n, nodes] for n, nodes in ok],
                                         [n for n, _msg in failed]], why)
        if r.type == "relocate":
            try:
                nodes, lines = al.relocate(c, r.names[0], r.relocate_from, r.required_nodes,
                                           ignore_soft)
            except al.AllocError as exc:
                if why is not None:
                    why.extend(getattr(exc, "reasons", []))
                return response(False, str(exc), [], why)
            return response(True, "success", nodes, why)
        if r.type in ("node-evacuate", "change-group"):
            if r.type == "node-evacuate":
                ev = al.node_evacuate(c, r.names, r.evac_mode, ignore_soft)
            else:
                ev = al.change_group(c, r.names, r.target_groups, ignore_soft, capacity)
            if why is not None:
                for k, v in ev.reasons.items():
                    why.extend(f"{k}: {line}" for line in v)
            return response(True, ev.info, [[[i, g, n] for i, g, n in ev.moved],
                                            [[i, m] for i, m in ev.failed], ev.jobs], why)
        if r.type == "allocate-secondary":
            res = al.allocate_secondary(c, r.names[0], ignore_soft)
            if why is not None:
                why.extend(res.reason_lines())
            return response(res.success, res.info, res.nodes[1] if res.success else [], why)
    except al.AllocError as exc:
        return response(False, str(exc), [], why)
    return response(False, f"Invalid request type '{r.type}'", [], why)


USAGE = ("usage: herd-iallocator [--ignore-soft-errors] [--no-capacity-checks] "
         "[--restrict-allocation-to=NODES] [--static-kvm-node-memory=N] [-t FILE] "
         "[--explain] [-v] REQUEST.json|-")


def main(argv: list[str] | None = None) -> int:
    """hail-compatible entry point; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    ignore_soft = False
    capacity = True
    restrict: list[str] | None = None
    static_mem = 4096
    text_file = None
    explain = False
    verbose = 0
    path = None
    i = 0
    try:
        while i < len(args):
            a = args[i]
            if a == "--ignore-soft-errors":
                ignore_soft = True
            elif a == "--no-capacity-checks":
                capacity = False
            elif a.startswith("--restrict-allocation-to"):
                v = a.split("=", 1)[1] if "=" in a else args[i + 1]
                i += 0 if "=" in a else 1
                restrict = [x for x in v.split(",") if x]
            elif a.startswith("--static-kvm-node-memory"):
                v = a.split("=", 1)[1] if "=" in a else args[i + 1]
                i += 0 if "=" in a else 1
                static_mem = int(v)
            elif a == "-t" or a.startswith("--text-data"):
                if "=" in a:
                    text_file = a.split("=", 1)[1]
                else:
                    text_file = args[i + 1]
                    i += 1
            elif a.startswith("-t") and len(a) > 2:
                text_file = a[2:]
            elif a == "--explain":
                explain = True
            elif a == "-v" or a == "--verbose":
                verbose += 1
            elif a in ("-h", "--help"):
                sys.stdout.write(USAGE + "\n")
                return 0
            elif a.startswith("--") and a != "-":
                # Ganeti passes default_iallocator_params as --k=v; ignore unknown ones
                pass
            else:
                if path is not None:
                    raise RequestError("only one request file may be given")
                path = a
            i += 1
    except (IndexError, ValueError) as exc:
        sys.stderr.write(f"Error: bad command line: {exc}\n{USAGE}" + "\n")
        return 1
    if path is None:
        sys.stderr.write(f"Error: no request file given\n{USAGE}" + "\n")
        return 1
    try:
        text_data = None
        if text_file is not None:
            with open(text_file, encoding="utf-8") as fh:
                text_data = fh.read()
        req = load_request(path, static_kvm_mem=static_mem, text_data=text_data)
    except (RequestError, TextFormatError, OSError) as exc:
        sys.stderr.write(f"Error: {exc}" + "\n")
        return 1
    if req.warnings:
        sys.stderr.write("Warning: cluster has inconsistent data:" + "\n")
        for w in req.warnings:
            sys.stderr.write(f"  - {w}" + "\n")
    out = run(req, ignore_soft, capacity, restrict, explain)
    if verbose:
        sys.stderr.write(out["info"] + "\n")
    sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
    return 0
