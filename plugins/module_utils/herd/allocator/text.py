"""htools text backend (``hbal -t FILE``): read and write.

Format (``Backend/Text.hs``): sections separated by empty lines, in the order
groups | nodes | instances | cluster tags | ipolicies (the ipolicy section may be
absent).  Fields are separated by ``|``, lists by ``,``; trailing fields may be
omitted (defaults as htools).  The reader is as tolerant as htools (extra
fields ignored, a single blank line before the policies makes them cluster
tags, unknown node roles mean "online") and as strict (wrong field counts,
unknown groups/nodes, bad numbers, Y/N flags).  Errors are ``TextFormatError``
naming the line number and what was expected.
"""

from __future__ import annotations

import math

from .model import (DISK_TEMPLATES, INSTANCE_STATUSES, NO_NODE, Cluster, IPolicy, ISpec,
                    ALLOC_POLICIES)


class TextFormatError(ValueError):
    """A malformed htools text file; the message names the line."""


def _int(v: str, lineno: int, what: str) -> int:
    try:
        return int(v.strip())
    except ValueError:
        raise TextFormatError(f"line {lineno}: {what}: expected an integer, got {v!r}") from None


def _float(v: str, lineno: int, what: str) -> float:
    try:
        x = float(v.strip())
    except ValueError:
        raise TextFormatError(f"line {lineno}: {what}: expected a number, got {v!r}") from None
    if math.isnan(x):
        raise TextFormatError(f"line {lineno}: {what}: expected a number, got {v!r}")
    return x


def _yn(v: str, lineno: int, what: str) -> bool:
    if v == "Y":
        return True
    if v == "N":
        return False
    raise TextFormatError(f"line {lineno}: {what}: expected Y or N, got {v!r}")


def _list(v: str) -> list[str]:
    return [x for x in v.split(",") if x != ""]


def _sections(text: str) -> list[list[tuple[int, str]]]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # Haskell `lines` drops the final newline
    sections: list[list[tuple[int, str]]] = [[]]
    for i, line in enumerate(lines, 1):
        if line.endswith("\r"):
            line = line[:-1]
        if line == "":
            sections.append([])
        else:
            sections[-1].append((i, line))
    return sections


def _ispec(s: str, lineno: int, owner: str) -> ISpec:
    parts = s.split(",")
    if len(parts) < 6:
        raise TextFormatError(f"line {lineno}: invalid ispec for {owner or 'cluster'}: "
                              f"expected 6 comma-separated numbers "
                              "(mem,cpu,disk_size,disk_count,nic_count,spindle_use), "
                              f"got {s!r}")
    names = ("memsize", "cpucount", "disksize", "diskcount", "niccount", "spindleuse")
    vals = [_int(p, lineno, f"{owner}/{n}") for p, n in zip(parts, names)]
    return ISpec(*vals)


def parse_text(text: str) -> Cluster:
    """Parse htools text data into an (unfinalized) ``Cluster``."""
    secs = _sections(text)
    if len(secs) < 4:
        raise TextFormatError(f"invalid format of the input file: {len(secs)} sections "
                              "instead of 4 or more (groups, nodes, instances, cluster "
                              "tags[, policies]) separated by empty lines")
    gsec, nsec, isec, tsec = secs[:4]
    psec = secs[4] if len(secs) > 4 else []
    c = Cluster()
    for lineno, line in gsec:
        f = line.split("|")
        if len(f) < 4:
            raise TextFormatError(f"line {lineno}: invalid/incomplete group data: expected "
                                  f"name|uuid|alloc_policy|tags[|networks], got {line!r}")
        name, uuid, apol, tags = f[:4]
        nets = f[4] if len(f) > 4 else ""
        if apol not in ALLOC_POLICIES:
            raise TextFormatError(f"line {lineno}: group {name}: invalid alloc_policy "
                                  f"{apol!r} (expected {', '.join(ALLOC_POLICIES)})")
        if uuid in c.group_by_uuid:
            raise TextFormatError(f"line {lineno}: duplicate group uuid {uuid!r}")
        c.add_group(name, uuid, apol, _list(nets), _list(tags))
    for lineno, line in nsec:
        f = line.split("|")
        if len(f) < 9:
            raise TextFormatError(
                f"line {lineno}: invalid/incomplete node data: expected at least 9 fields "
                "name|t_mem|n_mem|f_mem|t_disk|f_disk|t_cpu|role|group_uuid"
                f"[|spindles|tags|excl_stor|free_spindles|nos_cpu|cpu_speed], got {line!r}")
        defaults = ["1", "", "N", "0", "1", "1.0"]
        f = f[:15] + defaults[len(f) - 9:] if len(f) < 15 else f[:15]
        (name, tm, nm, fm, td, fd, tc, role, gu, spindles, tags, excl, fsp, ncpu, speed) = f
        if gu not in c.group_by_uuid:
            raise TextFormatError(f"line {lineno}: unknown group {gu!r} for node {name}")
        gdx = c.group_by_uuid[gu]
        if name in c.node_by_name:
            raise TextFormatError(f"line {lineno}: duplicate node {name!r}")
        if "?" in (tm, nm, fm, td, fd, tc):
            c.add_node(name, 0, 0, 0, 0, 0, 0, 0, True, gdx, 0, 0, False,
                       offline_reason="resources unknown ('?' in the text data)")
            continue
        c.add_node(
            name, _float(tm, lineno, f"node {name} t_mem"), _int(nm, lineno, f"node {name} n_mem"),
            _int(fm, lineno, f"node {name} f_mem"), _float(td, lineno, f"node {name} t_disk"),
            _int(fd, lineno, f"node {name} f_disk"), _float(tc, lineno, f"node {name} t_cpu"),
            _int(ncpu, lineno, f"node {name} nos_cpu"), role == "Y", gdx,
            _int(spindles, lineno, f"node {name} spindles"), _int(fsp, lineno,
                                                                  f"node {name} free_spindles"),
            _yn(excl, lineno, f"node {name} exclusive_storage"),
            _float(speed, lineno, f"node {name} cpu_speed"), _list(tags), role == "M",
            offline_reason="marked offline" if role == "Y" else "")
    for lineno, line in isec:
        f = line.split("|")
        if len(f) < 10:
            raise TextFormatError(
                f"line {lineno}: invalid/incomplete instance data: expected at least 10 fields "
                "name|mem|disk|vcpus|status|auto_balance|pnode|snode|disk_template|tags"
                f"[|spindle_use|disk_spindles|forthcoming], got {line!r}")
        defaults = ["1", "-", "N"]
        f = f[:13] + defaults[len(f) - 10:] if len(f) < 13 else f[:13]
        name, mem, dsk, vcpus, status, ab, pn, sn, dt, tags, su, spn, forth = f
        if pn not in c.node_by_name:
            raise TextFormatError(f"line {lineno}: unknown node {pn!r} for instance {name}")
        pdx = c.node_by_name[pn]
        if sn == "":
            sdx = NO_NODE
        elif sn not in c.node_by_name:
            raise TextFormatError(f"line {lineno}: unknown node {sn!r} for instance {name}")
        else:
            sdx = c.node_by_name[sn]
        vmem = _int(mem, lineno, f"instance {name} memory")
        vdsk = _int(dsk, lineno, f"instance {name} disk")
        vcpu = _int(vcpus, lineno, f"instance {name} vcpus")
        if status not in INSTANCE_STATUSES:
            raise TextFormatError(f"line {lineno}: instance {name}: invalid status {status!r} "
                                  f"(expected one of {', '.join(INSTANCE_STATUSES)})")
        if ab not in ("Y", "N"):
            raise TextFormatError(f"line {lineno}: invalid auto_balance value {ab!r} for "
                                  f"instance {name} (expected Y or N)")
        if dt not in DISK_TEMPLATES:
            raise TextFormatError(f"line {lineno}: instance {name}: invalid disk template "
                                  f"{dt!r} (expected one of {', '.join(DISK_TEMPLATES)})")
        vsu = _int(su, lineno, f"instance {name} spindle_use")
        vsp = None if spn == "-" else _int(spn, lineno, f"instance {name} disk spindles")
        if forth not in ("Y", "N"):
            raise TextFormatError(f"line {lineno}: invalid forthcoming value {forth!r} for "
                                  f"instance {name} (expected Y or N)")
        if dt == "drbd" and sdx == pdx:
            raise TextFormatError(f"line {lineno}: instance {name} has same primary and "
                                  f"secondary node - {pn}")
        c.add_instance(name, vmem, vdsk, vcpu, status, pdx, sdx, dt, _list(tags), vsu,
                       [(vdsk, vsp)], ab == "Y", forth == "Y")
    c.cluster_tags = [line for _lineno, line in tsec]
    for lineno, line in psec:
        f = line.split("|")
        if len(f) < 6:
            raise TextFormatError(
                f"line {lineno}: invalid ipolicy data: expected owner|std|min;max[;min;max...]|"
                f"disk_templates|vcpu_ratio|spindle_ratio, got {line!r}")
        owner, std, mm, dts, vr, sr = f[:6]
        stdspec = _ispec(std, lineno, f"{owner}/stdspec")
        specs = mm.split(";")
        if len(specs) % 2:
            raise TextFormatError(f"line {lineno}: odd number of min/max specs for "
                                  f"{owner or 'cluster'}")
        minmax = tuple((_ispec(specs[i], lineno, f"{owner}/minspec"),
                        _ispec(specs[i + 1], lineno, f"{owner}/maxspec"))
                       for i in range(0, len(specs) if mm else 0, 2))
        tmpl = tuple(x for x in dts.split(",") if x != "") if dts else ()
        for t in tmpl:
            if t not in DISK_TEMPLATES:
                raise TextFormatError(f"line {lineno}: invalid disk template {t!r} in policy")
        pol = IPolicy(minmax, stdspec, tmpl, _float(vr, lineno, f"{owner}/vcpu_ratio"),
                      _float(sr, lineno, f"{owner}/spindle_ratio"))
        if owner == "":
            c.ipolicy = pol
        else:
            if owner not in c.group_by_name:
                raise TextFormatError(f"line {lineno}: policy for unknown group {owner!r}")
            c.groups[c.group_by_name[owner]].ipolicy = pol
    return c


def load_text(text: str, legacy_n1: bool = False, ignore_dynu: bool = False,
              offline_nodes: tuple[str, ...] | list[str] = (),
              exclusion_tags: tuple[str, ...] | list[str] = ()) -> Cluster:
    """Parse and finalize.  ``offline_nodes`` is hbal's ``-O``."""
    c = parse_text(text)
    for name in offline_nodes:
        if name not in c.node_by_name:
            raise TextFormatError(f"unknown node {name!r} given as offline")
        n = c.nodes[c.node_by_name[name]]
        n.offline = True
        n.offline_reason = "marked offline by request"
    return c.finalize(legacy_n1=legacy_n1, ignore_dynu=ignore_dynu,
                      exclusion_tags=exclusion_tags)


def load_file(path: str, **kw: object) -> Cluster:
    with open(path, encoding="utf-8") as fh:
        return load_text(fh.read(), **kw)  # type: ignore[arg-type]


def _fmt_float(x: float) -> str:
    r = repr(float(x))
    return r


def _spec(s: ISpec) -> str:
    return ",".join(str(v) for v in (s.memory_size, s.cpu_count, s.disk_size, s.disk_count,
                                     s.nic_count, s.spindle_use))


def _policy_line(owner: str, p: IPolicy) -> str:
    mm = ";".join(f"{_spec(a)};{_spec(b)}" for a, b in p.minmax)
    return "|".join([owner, _spec(p.std), mm, ",".join(p.disk_templates),
                     _fmt_float(p.vcpu_ratio), _fmt_float(p.spindle_ratio)])


def write_text(c: Cluster) -> str:
    """Serialize like htools ``serializeCluster`` (the state after any moves)."""
    g = "".join(f"{gr.name}|{gr.uuid}|{gr.alloc_policy}|{','.join(gr.tags)}|"
                f"{','.join(gr.networks)}\n" for gr in c.groups)
    nl = []
    for n in c.nodes:
        role = "Y" if n.offline else ("M" if n.master else "N")
        f_mem = int(n.t_mem) - n.n_mem - n.i_mem - n.x_mem
        nl.append(f"{n.name}|{n.t_mem:.0f}|{n.n_mem}|{f_mem}|{n.t_dsk:.0f}|{n.f_dsk}|"
                  f"{n.t_cpu:.0f}|{role}|{c.groups[n.group].uuid}|{n.t_spindles}|"
                  f"{','.join(n.tags)}|{'Y' if n.excl_stor else 'N'}|{n.f_spindles}|"
                  f"{n.n_cpu}|{n.cpu_speed:f}\n")
    il = []
    for i in c.instances:
        if i.pnode == NO_NODE:
            continue
        sn = "" if i.snode == NO_NODE else c.nodes[i.snode].name
        sp = i.total_spindles()
        il.append(f"{i.name}|{i.mem}|{i.dsk}|{i.vcpus}|{i.status}|"
                  f"{'Y' if i.auto_balance else 'N'}|{c.nodes[i.pnode].name}|{sn}|{i.template}|"
                  f"{','.join(i.tags)}|{i.spindle_use}|{'-' if sp is None else sp}|"
                  f"{'Y' if i.forthcoming else 'N'}\n")
    tags = "".join(t + "\n" for t in c.cluster_tags)
    pol = _policy_line("", c.ipolicy) + "\n" + "".join(
        _policy_line(gr.name, gr.ipolicy) + "\n" for gr in c.groups)
    return "\n".join([g, "".join(nl), "".join(il), tags, pol])
