"""Hard and soft placement checks, exactly as htools separates them.

``pri_failure`` mirrors ``Node.addPriEx`` and ``sec_failure`` mirrors
``Node.addSecExEx``: the same checks in the same order, the same failure
mode (so counts match hail's "failure reasons"), plus a human sentence with
the numbers behind it.  "Soft" checks are skipped when ``force`` is true
(``--ignore-soft-errors``, or the old primary is offline); hard checks always
apply.

Hard (primary): FailMem (unallocated memory would reach 0), FailDisk (free
disk would reach 0, local storage only), FailSpindles (exclusive storage).
Soft (primary): FailDisk (below the reserved-disk floor; spindle use above
spindle-ratio x spindles), FailMem (node would newly fail N+1), FailCPU
(vCPU ratio), FailTags (exclusion tag already on the node), then the same
limits counting forthcoming instances.
Secondary: hard FailDisk (no secondary possible / disk), FailSpindles;
soft FailDisk (floor, spindles), FailMem (instance memory >= unallocated, or
newly failing N+1).

Policy (``policy_failure``): min/max specs -> FailMem/FailDisk/FailCPU/
FailSpindles/FailDiskCount, template not allowed -> FailDisk.
Migration tags (``migration_failure``) -> FailMig.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .model import Instance, IPolicy, Node

FAIL_MODES = ("FailMem", "FailDisk", "FailCPU", "FailN1", "FailTags", "FailMig",
              "FailDiskCount", "FailSpindles", "FailInternal")


@dataclass(frozen=True)
class Reason:
    """Why a node was rejected.  ``str(reason)`` is one human line."""

    mode: str            # one of FAIL_MODES (hail's failure mode)
    node: str            # node name ("" when not node-specific)
    text: str            # the explanation, without node and mode
    soft: bool = False   # True if --ignore-soft-errors would have allowed it

    def __str__(self) -> str:
        prefix = f"{self.node}: " if self.node else ""
        return f"{prefix}{self.mode} {self.text}".rstrip()

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "mode": self.mode, "reason": str(self), "soft": self.soft}


def _r(n: "Node", mode: str, text: str, soft: bool = False) -> Reason:
    return Reason(mode, n.name, text, soft)


def _worst_peer(n: "Node", extra_pdx: int = -1, extra: int = 0) -> tuple[int, int]:
    best_p, best = -1, 0
    for p, m in n.peers.items():
        if p == extra_pdx:
            m += extra
        if m > best:
            best_p, best = p, m
    if extra_pdx >= 0 and extra_pdx not in n.peers and extra > best:
        best_p, best = extra_pdx, extra
    return best_p, best


def pri_failure(n: "Node", inst: "Instance", force: bool,
                names: Any = None) -> Reason | None:
    """``addPriEx``: None if ``inst`` can become a primary on ``n``."""
    strict = not force
    uses_disk = inst.uses_local_storage
    vcpu_add = 0 if inst.offline else inst.vcpus
    # forthcoming-inclusive values
    new_mem_forth = n.f_mem_forth - inst.mem
    new_dsk_forth = n.f_dsk_forth - inst.dsk if uses_disk else n.f_dsk_forth
    if n.excl_stor:
        sp = inst.total_spindles()
        new_sp_forth = -1 if sp is None else n.f_sp_forth - sp
    else:
        sp = 0
        new_sp_forth = 0
    sp_use = 0.0 if (n.excl_stor or not uses_disk) else float(inst.spindle_use)
    new_isp_forth = n.inst_sp_forth + sp_use
    new_pcpu_forth = (n.u_cpu_forth + vcpu_add) / n.t_cpu if n.t_cpu else float("inf")
    l_cpu = n.vcpu_ratio

    def forth_violation() -> Reason | None:
        if new_mem_forth <= 0:
            return _r(n, "FailMem", f"needs {inst.mem} MiB, has {n.f_mem_forth} free counting "
                      "forthcoming instances", True)
        if uses_disk and new_dsk_forth <= 0:
            return _r(n, "FailDisk", f"needs {inst.dsk} MiB disk, has {n.f_dsk_forth} free "
                      "counting forthcoming instances", True)
        if uses_disk and new_dsk_forth < n.lo_dsk:
            return _r(n, "FailDisk", f"would go below the reserved disk ({n.lo_dsk} MiB) "
                      "counting forthcoming instances", True)
        if uses_disk and n.excl_stor and new_sp_forth < 0:
            return _r(n, "FailSpindles", "not enough free spindles counting forthcoming "
                      "instances", True)
        if uses_disk and new_isp_forth > n.hi_spindles:
            return _r(n, "FailDisk", f"spindle use {new_isp_forth:g} would exceed "
                      f"{n.hi_spindles:g} counting forthcoming instances", True)
        if l_cpu >= 0 and l_cpu < new_pcpu_forth:
            return _r(n, "FailCPU", f"vCPU ratio {new_pcpu_forth:.2f} would exceed "
                      f"{l_cpu:g} counting forthcoming instances", True)
        return None

    if inst.forthcoming:
        return forth_violation() if strict else None

    unalloc = n.unallocated_mem()
    new_free_mem = unalloc - (inst.mem if inst.uses_memory else 0)
    new_dsk = n.f_dsk - inst.dsk if uses_disk else n.f_dsk
    if n.excl_stor:
        new_free_sp = -1 if sp is None else n.f_spindles - sp
    else:
        new_free_sp = 0
    new_isp = n.inst_sp + sp_use
    new_pcpu = (n.u_cpu + vcpu_add) / n.t_cpu if n.t_cpu else float("inf")
    new_failn1 = new_free_mem <= n.r_mem
    if new_free_mem <= 0:
        return _r(n, "FailMem", f"needs {inst.mem} MiB, has {max(unalloc, 0)} free")
    if uses_disk and new_dsk <= 0:
        return _r(n, "FailDisk", f"needs {inst.dsk} MiB disk, has {max(n.f_dsk, 0)} free")
    if strict and uses_disk and new_dsk < n.lo_dsk:
        return _r(n, "FailDisk", f"would leave {new_dsk} MiB disk, below the reserved "
                  f"{n.lo_dsk} MiB", True)
    if uses_disk and n.excl_stor and new_free_sp < 0:
        need = "unknown" if sp is None else str(sp)
        return _r(n, "FailSpindles", f"needs {need} spindles, has {n.f_spindles} free")
    if strict and uses_disk and new_isp > n.hi_spindles:
        return _r(n, "FailDisk", f"spindle use would be {new_isp:g}, above the policy limit "
                  f"{n.hi_spindles:g}", True)
    if strict and new_failn1 and not n.fail_n1:
        pname = names(_worst_peer(n)[0]) if names and n.peers else "its peers"
        return _r(n, "FailMem", f"would fail N+1: {new_free_mem} MiB unallocated left, "
                  f"{n.r_mem} MiB must stay reserved to absorb {pname}'s failover", True)
    if strict and l_cpu >= 0 and l_cpu < new_pcpu:
        return _r(n, "FailCPU", f"vCPU ratio would be {new_pcpu:.2f}, above the policy "
                  f"limit {l_cpu:g}", True)
    if strict and inst.excl_tags:
        clash = [t for t in inst.excl_tags if t in n.p_tags]
        if clash:
            return _r(n, "FailTags", f"already runs an instance with exclusion tag "
                      f"{clash[0]}", True)
    if strict:
        return forth_violation()
    return None


def sec_failure(n: "Node", inst: "Instance", pdx: int, force: bool,
                ignore_disks: bool = False, names: Any = None) -> Reason | None:
    """``addSecExEx``: None if ``inst`` (primary ``pdx``) can get ``n`` as secondary."""
    strict = not force
    need_mem = inst.mem if inst.uses_sec_mem else 0
    new_peem = n.peers.get(pdx, 0) + need_mem
    new_dsk_forth = n.f_dsk_forth - inst.dsk
    if n.excl_stor:
        sp = inst.total_spindles()
        new_sp_forth = -1 if sp is None else n.f_sp_forth - sp
        new_free_sp = -1 if sp is None else n.f_spindles - sp
    else:
        sp = 0
        new_sp_forth = new_free_sp = 0
    sp_use = 0.0 if (n.excl_stor or not inst.uses_local_storage) else float(inst.spindle_use)
    pname = names(pdx) if names else f"node #{pdx}"

    def forth_violation() -> Reason | None:
        if not inst.has_secondary:
            return _r(n, "FailDisk", f"template {inst.template} has no secondary")
        if new_dsk_forth <= 0 or new_dsk_forth < n.lo_dsk:
            return _r(n, "FailDisk", f"needs {inst.dsk} MiB disk, has {n.f_dsk_forth} free "
                      "counting forthcoming instances", True)
        if n.excl_stor and new_sp_forth < 0:
            return _r(n, "FailSpindles", "not enough free spindles counting forthcoming "
                      "instances", True)
        if n.inst_sp_forth + sp_use > n.hi_spindles:
            return _r(n, "FailDisk", "spindle use would exceed the policy limit counting "
                      "forthcoming instances", True)
        if need_mem >= n.f_mem_forth:
            return _r(n, "FailMem", f"needs {need_mem} MiB reserve, has {n.f_mem_forth} free "
                      "counting forthcoming instances", True)
        return None

    if inst.forthcoming:
        return forth_violation() if strict else None
    old_mem = n.unallocated_mem()
    new_dsk = n.f_dsk - inst.dsk
    new_rmem = max(n.r_mem, new_peem)
    new_failn1 = old_mem <= new_rmem
    if not inst.has_secondary:
        return _r(n, "FailDisk", f"template {inst.template} has no secondary")
    if not ignore_disks and new_dsk <= 0:
        return _r(n, "FailDisk", f"needs {inst.dsk} MiB disk, has {max(n.f_dsk, 0)} free")
    if strict and new_dsk < n.lo_dsk:
        return _r(n, "FailDisk", f"would leave {new_dsk} MiB disk, below the reserved "
                  f"{n.lo_dsk} MiB", True)
    if n.excl_stor and new_free_sp < 0:
        need = "unknown" if sp is None else str(sp)
        return _r(n, "FailSpindles", f"needs {need} spindles, has {n.f_spindles} free")
    if strict and n.inst_sp + sp_use > n.hi_spindles:
        return _r(n, "FailDisk", f"spindle use would be {n.inst_sp + sp_use:g}, above the "
                  f"policy limit {n.hi_spindles:g}", True)
    if strict and need_mem >= old_mem:
        return _r(n, "FailMem", f"needs {need_mem} MiB to absorb a failover, has "
                  f"{max(old_mem, 0)} free", True)
    if strict and new_failn1 and not n.fail_n1:
        return _r(n, "FailMem", f"would fail N+1: unable to absorb {pname}'s failover "
                  f"({new_rmem} MiB needed, {old_mem} MiB unallocated)", True)
    if strict:
        return forth_violation()
    return None


def _spec_compare(inst: "Instance", spec: Any, below: bool, excl: bool) -> tuple[str, str] | None:
    """instCompareISpec: ``below`` checks inst <= max spec, else inst >= min spec."""
    def bad(v: int, lim: int) -> bool:
        return v > lim if below else v < lim
    word = "above the maximum" if below else "below the minimum"
    if bad(inst.mem, spec.memory_size):
        return "FailMem", f"memory {inst.mem} MiB is {word} {spec.memory_size} MiB of the policy"
    for size, _spindles in inst.disks:
        if bad(size, spec.disk_size):
            return "FailDisk", f"disk size {size} MiB is {word} {spec.disk_size} MiB of the policy"
    if bad(inst.vcpus, spec.cpu_count):
        return "FailCPU", f"{inst.vcpus} vCPUs is {word} {spec.cpu_count} of the policy"
    if excl:
        total = inst.total_spindles()
        if total is None or bad(total, spec.spindle_use):
            return "FailSpindles", f"spindles {total} is {word} {spec.spindle_use} of the policy"
    elif bad(inst.spindle_use, spec.spindle_use):
        return "FailSpindles", (f"spindle use {inst.spindle_use} is {word} "
                                f"{spec.spindle_use} of the policy")
    if inst.template != "diskless" and bad(len(inst.disks), spec.disk_count):
        return "FailDiskCount", f"{len(inst.disks)} disks is {word} {spec.disk_count} of the policy"
    return None


def policy_failure(n: "Node", inst: "Instance", pol: "IPolicy") -> Reason | None:
    """``instMatchesPolicy``: the instance must fit one min/max pair and use an
    allowed disk template."""
    first: tuple[str, str] | None = None
    ok = not pol.minmax
    for mn, mx in pol.minmax:
        res = _spec_compare(inst, mn, False, n.excl_stor) or \
            _spec_compare(inst, mx, True, n.excl_stor)
        if res is None:
            ok = True
            break
        if first is None:
            first = res
    if not ok and first is not None:
        return _r(n, first[0], first[1])
    if inst.template not in pol.disk_templates:
        return _r(n, "FailDisk", f"disk template {inst.template} is not allowed by the "
                  "group's instance policy")
    return None


def migration_failure(src: "Node", tgt: "Node") -> Reason | None:
    """``checkMigration``: migration tags of ``src`` must be receivable by ``tgt``."""
    if src.mig_tags <= tgt.rmig_tags:
        return None
    missing = sorted(src.mig_tags - tgt.rmig_tags)
    return _r(tgt, "FailMig", f"cannot receive migrations from {src.name} "
              f"(migration tags {', '.join(missing)})")


def n1_reason(node_name: str, failed_name: str, detail: str = "") -> Reason:
    """A global N+1 (capacity) failure, as hail counts FailN1."""
    text = f"would leave {failed_name} unable to absorb {node_name}'s failover"
    if failed_name == node_name:
        text = f"would leave the cluster unable to evacuate {node_name}"
    if detail:
        text += f" ({detail})"
    return Reason("FailN1", node_name, text)


def critical_values(n: "Node") -> tuple[list[float], list[float], list[float], list[float]]:
    """Where the answers of ``pri_failure``/``sec_failure`` on ``n`` may change
    as an instance's memory, disk, vCPUs and spindles grow, per dimension.

    Every check above compares one integer instance size with a value derived
    from the node: ``size >= t`` changes between t-1 and t (kept as t-0.5),
    ``size > t`` between t and t+1 (t+0.5).  Two sizes with no kept value
    between them get the same answer from every check, with the same failure
    mode.  Capacity planning uses this to answer a shrunk spec without running
    the checks again.  Keep in step with the two checks: a missing value here
    makes the tiered capacity walk skip a real change of outcome."""
    unalloc = n.unallocated_mem()
    # primary: free memory and N+1 (size >= unallocated - rMem), forthcoming
    # memory; secondary: the same plus N+1 with the primary's peer memory
    mem = [unalloc - 0.5, unalloc - n.r_mem - 0.5, n.f_mem_forth - 0.5]
    mem.extend(unalloc - m - 0.5 for m in n.peers.values())
    # size >= free disk, size > free disk - reserved floor (with and without
    # forthcoming instances)
    dsk = [n.f_dsk - 0.5, n.f_dsk - n.lo_dsk + 0.5, n.f_dsk_forth - 0.5,
           n.f_dsk_forth - n.lo_dsk + 0.5]
    cpu: list[float] = []
    if n.t_cpu and n.vcpu_ratio >= 0:
        for used in (n.u_cpu, n.u_cpu_forth):
            # (used + vcpus) / t_cpu > ratio is computed in floats: bracket the
            # exact threshold so rounding cannot move the change past a kept value
            lo = int((n.vcpu_ratio * n.t_cpu - used) // 1)
            cpu.extend((lo - 0.5, lo + 0.5, lo + 1.5))
    spn = [n.f_spindles + 0.5, n.f_sp_forth + 0.5]      # size > free spindles
    return mem, dsk, cpu, spn


def policy_critical_values(pol: "IPolicy") -> tuple[list[float], list[float], list[float],
                                                    list[float]]:
    """``critical_values`` of ``policy_failure``: below a minimum (size < t,
    t-0.5) or above a maximum (size > t, t+0.5)."""
    mem: list[float] = []
    dsk: list[float] = []
    cpu: list[float] = []
    spn: list[float] = []
    for mn, mx in pol.minmax:
        for s, off in ((mn, -0.5), (mx, 0.5)):
            mem.append(s.memory_size + off)
            dsk.append(s.disk_size + off)
            cpu.append(s.cpu_count + off)
            spn.append(s.spindle_use + off)
    return mem, dsk, cpu, spn
