"""Auto-repair in the spirit of Ganeti's harep: repair what the operator opted into, by tag.

Opt-in tags, on an instance, its primary node's group, or the cluster::

    herd:autorepair:fix-storage   replace a broken DRBD secondary, bring its disks up again
    herd:autorepair:migrate       also live-migrate away from a primary whose disk failed
    herd:autorepair:failover      also fail over from a primary marked offline
    herd:autorepair:suspend       no repairs here (herd:autorepair:suspend:<unix time>: until then)

Each level includes the ones before it. As in harep: on one object the least
destructive tag wins; across objects the nearest (instance, then group, then
cluster) wins; a suspend tag also stops repairs an outer object enabled.
Like harep, herd detects no hardware failure itself: a dead node is one the
operator marked offline.

What is broken, and the repair it needs (``diagnose``):

    drbd, both nodes offline               reinstall: herd has none, reported only
    drbd, primary offline                  failover to the secondary    (instance_failover)
    drbd, secondary offline                fix-storage: replace-disks to a node the allocator chooses
    drbd, secondary's disk Diskless        fix-storage: replace-disks, as above
    drbd, primary's disk Diskless          migrate to the secondary (running), failover (stopped)
    drbd, a device down or StandAlone      fix-storage: activate the disks (instance_disks)
    drbd, StandAlone on both nodes         never: a split brain needs the operator's choice
    plain, primary offline                 reinstall: reported only

Each repair is the manual operation itself, with its checks and rollback. The
state of a repair is kept in the instance's tags, as harep keeps it, so that
it is visible with the instance and survives the master::

    herd:autorepair:pending:<type>:<job>:<time>          written before the repair runs
    herd:autorepair:result:<type>:<job>:<time>:success   after it succeeded
    herd:autorepair:result:<type>:<job>:<time>:failure   after it failed, or was interrupted

A failure is never retried: the instance is left alone until the operator,
having looked at the job (``herd.cluster.job_info``), runs autorepair with
``reset`` for it. Declaring an instance's tags (``herd.cluster.instance``)
keeps these state tags.
A pending tag whose job is no longer running means the run that wrote it was
killed half-way: that counts as a failure too.
"""

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import names
from ..config import Config, Instance, now
from ..errors import HerdError, PrerequisiteError, RpcError, ValidationError
from ..jobs import _alive
from . import activate_disks, migrate, replace_disks
from .common import Context
from .views import drbd_proc
from . import repair_tags
from .repair_tags import Record, policy, record_tag, records

OPCODE = "autorepair"
SUPPORTED = ("fix-storage", "migrate", "failover")  # reinstall: herd cannot recreate disks


# --------------------------------------------------------------------------- diagnosis

@dataclass
class Diagnosis:
    needed: Optional[str]     # a repair type, or None
    action: str               # what would be done (or why nothing can be)
    reason: str               # what is broken
    run: Optional[Callable[[Context, Dict[str, Any]], Dict[str, Any]]] = None
    manual: bool = False      # broken, but never repaired automatically


def _disk_state(inst: Instance, proc: Dict[str, Any], node: str, index: int) -> Optional[Dict[str, Any]]:
    answer = proc.get(node) or {}
    minor = (inst.disks[index].logical_id.get("minors") or {}).get(node)
    status = (answer.get("minors") or {}).get(str(minor))
    return None if not status or status.get("cs") in (None, "Unconfigured") else status


def diagnose(config: Config, inst: Instance, proc: Dict[str, Any]) -> Optional[Diagnosis]:
    """What is broken with ``inst`` and the repair it needs; None when healthy (or when this
    cannot be told: a node that did not answer, which other checks report)."""
    primary, secondary = inst.primary_node, inst.secondary_node
    p_off = config.nodes[primary].offline
    if inst.disk_template == "plain":
        if p_off:
            return Diagnosis("reinstall", "none: herd cannot recreate disks and reinstall", f"primary {primary} is "
                             "offline and holds the only copy of the disks", manual=True)
        return None
    if inst.disk_template != "drbd" or not secondary:
        return None
    s_off = config.nodes[secondary].offline
    name = inst.name
    if p_off and s_off:
        return Diagnosis("reinstall", "none: herd cannot recreate disks and reinstall",
                         f"both nodes, {primary} and {secondary}, are offline", manual=True)
    if p_off:
        return Diagnosis("failover", f"fail over to the secondary {secondary}", f"primary {primary} is offline",
                         lambda ctx, opts: migrate.failover(ctx, {"name": name}))
    replace = Diagnosis("fix-storage", f"replace the secondary {secondary} (the allocator chooses the new one)", "",
                        lambda ctx, opts: replace_disks.replace(ctx, {"name": name,
                                                                      "wait_for_sync": opts["wait_for_sync"]}))
    if s_off:
        replace.reason = f"secondary {secondary} is offline"
        return replace
    if proc.get(primary) is None or proc.get(secondary) is None:
        return None
    states = [(index, _disk_state(inst, proc, primary, index), _disk_state(inst, proc, secondary, index))
              for index in range(len(inst.disks))]
    for index, p, s in states:
        if p and s and p.get("cs") == "StandAlone" and s.get("cs") == "StandAlone":
            return Diagnosis(None, "none: resolve it with herd.cluster.instance_replace_disks and "
                             "split_brain_survivor", f"disk {index} is StandAlone on both nodes (split brain)",
                             manual=True)
    for index, p, _s in states:
        if p and p.get("disk") == "Diskless":
            if inst.admin_state == "up":
                return Diagnosis("migrate", f"live-migrate to the secondary {secondary}",
                                 f"disk {index} is Diskless on the primary {primary} (its backing volume failed)",
                                 lambda ctx, opts: migrate.migrate(ctx, {"name": name, "mode": "live"}))
            return Diagnosis("failover", f"fail over to the secondary {secondary}",
                             f"disk {index} is Diskless on the primary {primary} (its backing volume failed)",
                             lambda ctx, opts: migrate.failover(ctx, {"name": name}))
    for index, _p, s in states:
        if s and s.get("disk") == "Diskless":
            replace.reason = f"disk {index} is Diskless on the secondary {secondary} (its backing volume failed)"
            return replace
    if inst.admin_state == "up":
        for index, p, s in states:
            down = [n for n, st in ((primary, p), (secondary, s)) if st is None or st.get("cs") == "StandAlone"]
            if down:
                return Diagnosis("fix-storage", f"activate the disks on {', '.join(down)}",
                                 f"disk {index} is not active or not connected on {', '.join(down)}",
                                 lambda ctx, opts: activate_disks.activate(ctx, {"name": name, "promote": False}))
    return None


# --------------------------------------------------------------------------- the run

def _set_tags(ctx: Context, name: str, add: List[str], remove: List[str]) -> None:
    locks = ctx.locks(f"{OPCODE} {name}")
    # the instance lock for this moment only: the repair operation takes it itself
    with locks.instance(name), locks.cluster():
        fresh = ctx.store.load()
        inst = fresh.instances.get(name)
        if inst is None:
            raise PrerequisiteError(f"instance {name} was removed while it was being repaired")
        inst.tags = sorted((set(inst.tags) - set(remove)) | set(add))
        inst.mtime = now()
        ctx.commit(fresh)


def _settle_pending(ctx: Context, inst: Instance, recs: List[Record]) -> Tuple[List[Record], Optional[str]]:
    """A pending record whose job is not running any more: the run that wrote it stopped
    half-way. It becomes a failure, so that it is not retried. -> (records, note)"""
    pending = [r for r in recs if r.kind == "pending"]
    if not pending:
        return recs, None
    last = pending[-1]
    try:
        job = ctx.journal.get(last.job)
    except HerdError:
        job = {}
    if job.get("status") in ("running", "queued") and _alive(job.get("pid")):
        return recs, f"a {last.type} repair is running (job {last.job})"
    outcome = "success" if job.get("status") == "success" else "failure"
    tag = record_tag(outcome, last.type, last.job, time.time())
    if not ctx.check_mode:
        _set_tags(ctx, inst.name, [tag], [r.tag for r in pending])
    settled = [r for r in recs if r.kind != "pending"] + [Record(tag, outcome, last.type, last.job, time.time())]
    return settled, None


def check_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    selected = spec.get("instances")
    if selected is not None:
        if not isinstance(selected, list):
            raise ValidationError(f"instances {selected!r} must be a list of instance names")
        selected = [names.check_instance_name(n) for n in selected]
    reset = spec.get("reset") or []
    if not isinstance(reset, list):
        raise ValidationError(f"reset {reset!r} must be a list of instance names")
    reset = [names.check_instance_name(n) for n in reset]
    wait = spec.get("wait_for_sync", True)
    if not isinstance(wait, bool):
        raise ValidationError(f"wait_for_sync {wait!r} must be true or false")
    return {"instances": selected, "reset": reset, "wait_for_sync": wait}


def autorepair(ctx: Context, spec: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One harep round over the instances (or the ``instances`` given): for each, its
    policy, its repair state and what is broken; the repair it needs when the policy allows
    it and no earlier repair of it failed. -> {"changed", "instances": [...], "repaired",
    "failures", "msg"}"""
    opts = check_spec(spec or {})
    config = ctx.load_master_config()
    missing = sorted(set(opts["instances"] or []) - set(config.instances) | set(opts["reset"]) - set(config.instances))
    if missing:
        raise PrerequisiteError(f"instance(s) {', '.join(missing)} do not exist")
    cleared = _reset(ctx, config, opts["reset"])
    if cleared and not ctx.check_mode:
        config = ctx.load_master_config()
    for name in cleared if ctx.check_mode else []:
        # what the round would see after the reset (this copy of the config is never saved)
        config.instances[name].tags = [t for t in config.instances[name].tags if not repair_tags.is_state(t)]
    wanted = [config.instances[n] for n in sorted(opts["instances"] or config.instances)]
    proc = drbd_proc(ctx, config, wanted)
    rows: List[Dict[str, Any]] = []
    failures: List[Dict[str, str]] = []
    for inst in wanted:
        row = _one(ctx, config, inst, proc, opts, failures)
        if row is not None:
            rows.append(row)
    repaired = [r["instance"] for r in rows if r["state"] == "repaired"]
    planned = [r["instance"] for r in rows if r["state"] == "would-repair"]
    changed = bool(repaired or planned or failures or cleared)
    if ctx.check_mode:
        msg = f"would repair {', '.join(planned)}" if planned else "nothing to repair"
    else:
        msg = (f"repaired {', '.join(repaired)}" if repaired else "nothing repaired") + \
            (f"; failed: {', '.join(f['instance'] for f in failures)}" if failures else "")
    if cleared:
        msg = f"{'would clear' if ctx.check_mode else 'cleared'} the repair state of {', '.join(cleared)}; {msg}"
    return {"changed": changed, "instances": rows, "repaired": repaired, "failures": failures, "reset": cleared,
            "msg": msg}


def _reset(ctx: Context, config: Config, selected: List[str]) -> List[str]:
    """Forget the recorded repairs of ``selected`` (the operator looked at a failed one): the
    next round may repair them again."""
    cleared = []
    for name in selected:
        state = [r.tag for r in records(config.instances[name])]
        if state:
            cleared.append(name)
            if not ctx.check_mode:
                _set_tags(ctx, name, [], state)
    return cleared


def _one(ctx: Context, config: Config, inst: Instance, proc: Dict[str, Any], opts: Dict[str, Any],
         failures: List[Dict[str, str]]) -> Optional[Dict[str, Any]]:
    recs, running = _settle_pending(ctx, inst, records(inst))
    found = diagnose(config, inst, proc)
    pol = policy(config, inst)
    failed = [r for r in recs if r.kind == "failure"]
    if found is None and not failed and running is None:
        return None
    row: Dict[str, Any] = {"instance": inst.name, "problem": found.reason if found else None,
                           "needed": found.needed if found else None, "action": found.action if found else None,
                           "policy": pol.text(), "job": None}
    if running is not None:
        return dict(row, state="pending", msg=running)
    if failed:
        last = failed[-1]
        return dict(row, state="failed", job=last.job,
                    msg=f"an earlier {last.type} repair failed (job {last.job}, herd.cluster.job_info): not retried "
                        f"until herd.cluster.autorepair runs with reset: [{inst.name}]")
    if found is None:  # nothing wrong now, and no repair recorded above
        return None
    if found.manual or found.needed not in SUPPORTED or found.run is None:
        return dict(row, state="manual", msg=f"{found.reason}: needs the operator ({found.action})")
    if not pol.allows(found.needed):
        return dict(row, state="not-allowed",
                    msg=f"{found.reason}: needs a {found.needed} repair; autorepair is {pol.text()}")
    if ctx.check_mode:
        return dict(row, state="would-repair", msg=f"{found.reason}: would {found.action}")
    return _execute(ctx, inst, found, opts, row, failures)


def _execute(ctx: Context, inst: Instance, found: Diagnosis, opts: Dict[str, Any], row: Dict[str, Any],
             failures: List[Dict[str, str]]) -> Dict[str, Any]:
    rtype = found.needed or ""
    job = ctx.journal.open(OPCODE, {"name": inst.name, "type": rtype, "problem": found.reason,
                                    "action": found.action})
    job.start()
    pending = record_tag("pending", rtype, job.id, time.time())
    old = [r.tag for r in records(inst)]
    try:
        _set_tags(ctx, inst.name, [pending], old)
    except HerdError as exc:
        job.fail(f"could not record the pending repair: {exc}")
        failures.append({"instance": inst.name, "reason": f"could not record the pending repair: {exc}"})
        return dict(row, state="repair-failed", job=job.id, msg=str(exc))
    try:
        with job.step(found.action):
            outcome = found.run(ctx, opts) if found.run else {}
    except (HerdError, RpcError) as exc:
        job.fail(str(exc))
        _set_tags(ctx, inst.name, [record_tag("failure", rtype, job.id, time.time())], [pending])
        failures.append({"instance": inst.name, "reason": f"{rtype} repair ({found.action}) failed: {exc}"})
        return dict(row, state="repair-failed", job=job.id,
                    msg=f"{found.reason}: {found.action} failed: {exc}; not retried until herd.cluster.autorepair "
                        f"runs with reset: [{inst.name}]")
    job.finish({"msg": outcome.get("msg")})
    _set_tags(ctx, inst.name, [record_tag("success", rtype, job.id, time.time())], [pending])
    return dict(row, state="repaired", job=job.id, msg=f"{found.reason}: {outcome.get('msg') or found.action}")
