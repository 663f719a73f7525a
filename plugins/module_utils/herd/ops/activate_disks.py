"""gnt-instance activate-disks: bring an instance's disks up on its nodes.

After a node reboot nothing sets up an instance's DRBD devices again on a
node where the instance does not run: the secondary stays down and the
primary waits for it (WFConnection), degraded. Ganeti's ``activate-disks``
(``AssembleInstanceDisks``) does it in two passes, as here: every node of
every disk attaches and connects as secondary first (so the pair can
handshake), then the primary is promoted and its device paths are returned.
The resync of what the primary wrote while the peer was away starts at the
handshake; ``wait_for_sync`` waits for it (Ganeti's ``--wait-for-sync``).

For ``plain`` and the file templates the primary's disks are activated
(``lvchange -ay``). Nothing is created or deleted: a disk whose volumes are
missing is an error that names them (replace-disks rebuilds those).
"""

from contextlib import ExitStack
from typing import Any, Dict, List

from .. import names
from ..errors import HerdError, PrerequisiteError, ValidationError
from . import nodecalls
from .common import Context
from .replace_disks import DEFAULT_SYNC_TIMEOUT, disk_call, in_sync, wait_for_sync

OPCODE = "instance_activate_disks"


def activate(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    name = names.check_instance_name(spec.get("name"))
    wait = spec.get("wait_for_sync", False)
    if not isinstance(wait, bool):
        raise ValidationError(f"wait_for_sync {wait!r} must be true or false")
    timeout = spec.get("sync_timeout") or DEFAULT_SYNC_TIMEOUT
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ValidationError(f"sync_timeout {timeout!r} must be a positive number of seconds")
    locks = ctx.locks(f"{OPCODE} {name}")
    with locks.instance(name):
        config = ctx.load_master_config()
        inst = config.instances.get(name)
        if inst is None:
            raise PrerequisiteError(f"instance {name} does not exist")
        primary = inst.primary_node
        if config.nodes[primary].offline:
            raise PrerequisiteError(f"the primary {primary} of {name} is offline: fail the instance over "
                                    "(herd.cluster.instance_failover) instead")
        drbd = inst.disk_template == "drbd"
        secondaries = [n for n in inst.nodes() if n != primary] if drbd else []
        offline = [n for n in secondaries if config.nodes[n].offline]
        for node in offline:
            ctx.warnings.append(f"the secondary {node} of {name} is offline: its disks stay down; the primary runs "
                                "degraded until it is back and this runs again (or replace-disks moves them)")
        secondaries = [n for n in secondaries if n not in offline]
        before = _states(ctx, config, inst, [primary, *secondaries]) if drbd else {}
        actions = [f"attach and connect disk(s) on {n} as secondary" for n in [*secondaries, primary] if drbd] + [
            f"activate disk(s) on the primary {primary}" + (" and make them Primary" if drbd else "")]
        if drbd and wait and not offline:
            actions.append("wait for the resync")
        result: Dict[str, Any] = {"changed": False, "instance": name, "primary_node": primary,
                                  "secondary_node": inst.secondary_node if drbd else None, "actions": actions,
                                  "disks": [], "synced": None}
        if drbd and all(in_sync(s) and s.get("primary") == (n == primary)
                        for (n, _i), s in before.items()) and not offline:
            # every disk up, connected, UpToDate on both sides and Primary on the primary: nothing to do
            result["disks"] = [{"index": i, "node": primary,
                                "path": f"/dev/drbd{(d.logical_id.get('minors') or {}).get(primary)}"}
                               for i, d in enumerate(inst.disks)]
            result["synced"] = True
            result["msg"] = f"the disks of {name} are active and in sync"
            return result
        if ctx.check_mode:
            result["changed"] = True
            result["msg"] = f"the disks of {name} would be activated"
            return result
        with ExitStack() as held:
            for node in sorted({primary, *secondaries}):
                held.enter_context(locks.node(node, shared=True))
            changed = False
            with ctx.job(OPCODE, {"name": name, "wait_for_sync": wait}) as job:
                if drbd:
                    for node in [*secondaries, primary]:
                        with job.step("attach and connect as secondary", node=node):
                            for index in range(len(inst.disks)):
                                changed = bool(disk_call(ctx, config, inst, index, node,
                                                         "drbd_attach").get("changed")) or changed
                paths: List[Dict[str, Any]] = []
                with job.step("activate on the primary", node=primary):
                    for index, disk in enumerate(inst.disks):
                        answer = nodecalls.call(ctx, config, primary, "disk_assemble",
                                                nodecalls.disk_args(config, inst, disk, index, primary))
                        changed = bool(answer.get("changed")) or changed
                        paths.append({"index": index, "node": primary, "path": answer["path"]})
                synced = None
                if drbd and wait and not offline:
                    with job.step("wait for the resync", node=primary):
                        synced = wait_for_sync(ctx, job, config, inst, float(timeout))
                job.finish({"changed": changed, "disks": paths, "synced": synced})
        result.update(changed=changed, disks=paths, synced=synced,
                      msg=f"the disks of {name} are active on {primary}"
                      + (f" and {', '.join(secondaries)}" if secondaries else "")
                      + ("" if synced or not drbd else "; a resync may still be running (cluster_verify shows it)"))
        return result


def _states(ctx: Context, config: Any, inst: Any, nodes: List[str]) -> Dict[Any, Dict[str, Any]]:
    out = {}
    for node in nodes:
        for index in range(len(inst.disks)):
            try:
                answer = disk_call(ctx, config, inst, index, node, "drbd_status")
            except HerdError as exc:
                raise PrerequisiteError(f"{node} does not answer for disk {index} of {inst.name}: {exc}") from None
            if not answer.get("loaded"):
                raise PrerequisiteError(f"the DRBD kernel module is not loaded on {node} (load it with the "
                                        "herd.cluster.node_drbd role, or modprobe drbd)")
            out[(node, index)] = answer.get("status") or {}
    return out
