"""gnt-instance add / modify / grow-disk / startup / shutdown / reboot / remove
as one declarative op: ``ensure(ctx, spec)`` makes one instance match its spec.

Each of create, modify and remove is a ``phases.Operation``: check the
arguments, lock the instance (create: and the node-allocation lock), repair
an interrupted job on the instance, check the prerequisites against the
locked config (what check mode returns), then execute in a job whose steps
register their undo, committing through ``phases.commit``.

Create: validate, place (allocator or the operator's nodes, checked the same
way), allocate UUID, MACs, VNC port and disk ids once, create disks (each
with an undo step), install the OS, commit the config, start if asked. A
failure rolls back what was created; the job journal records each step, so a
killed run is found and cleaned by the next one.
"""

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, ContextManager, Dict, List, Optional, Type

from .. import validate as node_checks
from ..config import Config, Disk, Instance, Nic, new_uuid, now
from ..errors import HerdError, PrerequisiteError, RpcError, ValidationError
from ..jobs import Job, Locks
from . import instance_adopt, instance_convert, instance_disks, instance_reinstall, nodecalls, placement, repair_tags
from .common import Context, diff_dict
from .views import status_word
from . import network as network_ops
from .phases import LockDecl, Operation, allocation_lock, check_still_there, commit, node_locks
from .recovery import nodes_gone, recover_interrupted, repairs
from .instance_spec import IMMUTABLE, SYNC_TIMEOUT, generate_mac, instance_view, is_mirrored, validate


def ensure(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    spec = validate(spec)
    for _attempt in range(3):
        try:
            return operation_for(ctx, spec)(ctx, spec, checked=True).run()
        except InstanceMoved:
            continue  # created or removed by another job while this one waited for its lock
    raise PrerequisiteError(f"instance {spec['name']} kept being created and removed by other jobs while this "
                            "run waited for its lock; run again")


def operation_for(ctx: Context, spec: Dict[str, Any]) -> Type["InstanceOperation"]:
    """The operation that converges ``spec``. The config is read here without a lock (a file
    read, no node asked); the operation confirms the choice under the instance lock."""
    if spec["state"] == "absent":
        return InstanceRemove
    inst = ctx.store.load().instances.get(spec["name"]) if ctx.store.exists() else None
    if inst is None:
        return InstanceCreate
    return InstanceModify


class InstanceMoved(Exception):
    """The instance appeared or went between choosing the operation and taking its lock."""


class InstanceOperation(Operation):
    """What create, modify and remove share: the instance's lock, and any interrupted job on the
    instance repaired before the prerequisites are checked (``locked_config``)."""

    # True: the operation needs the instance in the config (modify); False: absent (create)
    expects_instance: Optional[bool] = None

    def __init__(self, ctx: Context, spec: Dict[str, Any], checked: bool = False, repair: bool = True):
        super().__init__(ctx, spec)
        self.checked = checked  # ``spec`` is already the output of ``validate``
        self.repair = repair

    def check_arguments(self) -> None:
        if not self.checked:
            self.spec = validate(self.spec)
        self.name = self.spec["name"]
        self.locks = self.ctx.locks(f"instance op on {self.name}")

    def declare_locks(self, config: Config) -> LockDecl:
        return LockDecl(instances=[self.name])

    def locked_config(self, config: Config) -> Config:
        """``config`` after the interrupted jobs on the instance are repaired (reloaded if they
        changed anything); ``InstanceMoved`` when the instance is not where the operation expects."""
        if self.repair and recover_interrupted(self.ctx, self.name, self.locks, config):
            config = self.ctx.load_master_config()
        if self.expects_instance is not None and (self.name in config.instances) != self.expects_instance:
            raise InstanceMoved(self.name)
        self.config = config  # what execute works from (``run`` hands it the config before the repair)
        return config


# --------------------------------------------------------------------------- create

def build_instance(ctx: Context, config: Config, spec: Dict[str, Any]) -> Instance:
    cluster = config.cluster
    template = spec["disk_template"]
    if template is None:
        raise ValidationError(f"instance {spec['name']}: disk_template is required to create it")
    if template not in cluster.enabled_disk_templates:
        raise PrerequisiteError(f"disk template {template} is not enabled in the cluster "
                                f"(enabled: {cluster.enabled_disk_templates})")
    hypervisor = spec["hypervisor"] or cluster.enabled_hypervisors[0]
    if hypervisor not in cluster.enabled_hypervisors:
        raise PrerequisiteError(f"hypervisor {hypervisor} is not enabled (enabled: {cluster.enabled_hypervisors})")
    disks_spec = spec["disks"] or []
    if template == "diskless" and disks_spec:
        raise ValidationError("a diskless instance cannot have disks")
    if template != "diskless" and not disks_spec:
        raise ValidationError(f"a {template} instance needs at least one disk")
    beparams = dict(cluster.beparams)
    if spec["memory"] is not None:
        beparams["maxmem"] = spec["memory"]
        beparams["minmem"] = spec["minmem"] if spec["minmem"] is not None else spec["memory"]
    elif spec["minmem"] is not None:
        beparams["minmem"] = spec["minmem"]
    if spec["vcpus"] is not None:
        beparams["vcpus"] = spec["vcpus"]
    macs: set = set()
    nics = []
    for nic in spec["nics"] if spec["nics"] is not None else [{}]:
        mac = nic.get("mac") or generate_mac(config, macs)
        if any(mac == n.mac for i in config.instances.values() for n in i.nics):
            raise PrerequisiteError(f"MAC {mac} is already used by another instance")
        macs.add(mac)
        nics.append(Nic(mac=mac, link=nic.get("link") or cluster.nicparams.get("link", "br0"),
                        vlan=nic.get("vlan"), ip=nic.get("ip"), network=nic.get("network"), name=nic.get("name")))
    disks = instance_adopt.new_disks(config, disks_spec)
    stamp = now()
    inst = Instance(name=spec["name"], uuid=new_uuid(), primary_node=spec["primary_node"] or "",
                    secondary_node=spec["secondary_node"], hypervisor=hypervisor, disk_template=template,
                    os=spec["os"] or "noop", osparams=spec["osparams"], admin_state="down", beparams=beparams,
                    hvparams=spec["hvparams"], nics=nics, disks=disks, tags=spec["tags"] or [],
                    vnc_password=spec.get("vnc_password") or None, ctime=stamp, mtime=stamp)
    if hypervisor == "kvm" and (spec["hvparams"].get("vnc_bind_address", cluster.hvparams.get("kvm", {}).get(
            "vnc_bind_address", "127.0.0.1")) not in ("", "none")):
        inst.network_port = config.allocate_port()
    instance_adopt.prepare(ctx, config, inst, spec["primary_node"])  # adopted LVs: checked, sized
    node_checks.new_instance(config, inst)  # what the nodes will check, before any disk exists
    return inst


class InstanceCreate(InstanceOperation):
    """gnt-instance add. The node-allocation lock is declared with the instance's lock: the
    placement counts what is free, and no other create may take it until this instance is
    committed (Ganeti's node-allocation lock). Its nodes, learnt at placement, are locked
    (shared) while its disks are made, so none of them can be removed meanwhile."""

    opcode = "instance_create"
    expects_instance = False

    def declare_locks(self, config: Config) -> LockDecl:
        return LockDecl(instances=[self.name], node_alloc=True)

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        config = self.locked_config(config)
        self.planned = plan_create(self.ctx, config, self.spec)
        self.spec = create_job_params(self.planned)  # the job records the UUID it creates
        return self.planned.result

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        execute_create(self.ctx, self.locks, self.planned, job)


def plan_create(ctx: Context, config: Config, spec: Dict[str, Any]) -> "PlannedCreate":
    """Build, check and place one new instance (the bulk path places many at once: fleet)."""
    inst = build_instance(ctx, config, spec)
    check_requested_nodes(config, inst, spec)
    answer = placement.place(ctx, config, inst, spec["primary_node"], spec["secondary_node"])
    return finish_plan(ctx, config, spec, inst, answer)


@dataclass
class PlannedCreate:
    """A new instance with its nodes, DRBD minors and ports and NIC addresses chosen, and the
    result that create returns (in check mode as it is)."""
    spec: Dict[str, Any]
    inst: Instance
    requested_nics: List[Dict[str, Any]]
    result: Dict[str, Any]


def check_requested_nodes(config: Any, inst: Instance, spec: Dict[str, Any]) -> None:
    if spec["secondary_node"] and not is_mirrored(inst.disk_template):
        raise ValidationError(f"secondary_node is only for mirrored templates (drbd), not {inst.disk_template}")
    given = [n for n in (spec["primary_node"], spec["secondary_node"]) if n]
    placement.check_nodes_usable(config, given, f"instance {inst.name}")


def finish_plan(ctx: Context, config: Any, spec: Dict[str, Any], inst: Instance, answer: Dict[str, Any]
                ) -> PlannedCreate:
    """Put the placement's answer on the instance and allocate what depends on its nodes."""
    inst.primary_node = answer["primary"]
    inst.secondary_node = answer.get("secondary") if is_mirrored(inst.disk_template) else None
    instance_disks.check_other_vgs(ctx, config, inst)
    if inst.disk_template == "drbd":
        instance_disks.allocate_drbd(ctx, config, inst, 0)
    requested_nics = spec["nics"] if spec["nics"] is not None else [{}]
    network_ops.reserve_nics(config, inst, requested_nics)  # NIC params, pool addresses (planned)
    placement.check_nic_bridges(inst, answer.get("node_facts") or {})  # before anything is created
    nodecalls.check_nodes_run(ctx, config, inst)  # on the chosen nodes, before any disk exists
    after = instance_view(inst)
    after["admin_state"] = "up" if spec["state"] in ("running", "restarted") else "down"
    result: Dict[str, Any] = {"changed": True, "instance": after, "diff": diff_dict(None, after),
                              "placement": {"primary": inst.primary_node, "secondary": inst.secondary_node,
                                            "reasons": answer.get("reasons", [])},
                              "msg": f"instance {inst.name} would be created on {inst.primary_node}"}
    return PlannedCreate(spec=spec, inst=inst, requested_nics=requested_nics, result=result)


def create_job_params(planned: "PlannedCreate") -> Dict[str, Any]:
    return {**planned.spec, "uuid": planned.inst.uuid}


def run_create(ctx: Context, locks: Locks, planned: "PlannedCreate") -> Dict[str, Any]:
    """The execute phase of a planned create in its own job (the bulk path runs several at once)."""
    with ctx.job("instance_create", create_job_params(planned)) as job:
        return execute_create(ctx, locks, planned, job)


def execute_create(ctx: Context, locks: Locks, planned: "PlannedCreate", job: Job) -> Dict[str, Any]:
    """Disks, OS, commit, start: each step undone if a later one fails. The caller holds the
    allocation lock, so what the plan counted on is still free."""
    spec, inst, result = planned.spec, planned.inst, planned.result
    config = ctx.store.load()
    want_running = spec["state"] in ("running", "restarted")
    with node_locks(locks, inst.nodes(), shared=True):
        check_still_there(config, inst.nodes(), what=f"instance {inst.name}")
        for node in inst.nodes():
            locks_node_guard(config, node)
        with job.step("create disks", nodes=inst.nodes()):
            for index in range(len(inst.disks)):
                if instance_adopt.is_adopted(inst.disks[index]):  # the operator's LV: given back, never removed
                    job.on_undo(f"give back the adopted LV of disk {index}",
                                instance_adopt.release(ctx, config, inst, index))
                else:
                    job.on_undo(f"remove disk {index}", _undo_disk(ctx, config, inst, index))
                    job.record_created({"kind": "disk", "index": index, "instance": created_record(inst)})
                nodecalls.disk_create(ctx, config, inst, index)
        if inst.disk_template == "drbd" and spec.get("wait_for_sync", True):
            with job.step("wait for the disks to sync"):
                instance_disks.wait_for_sync(ctx, job, config, inst, list(range(len(inst.disks))),
                                             spec.get("sync_timeout", SYNC_TIMEOUT))
        with job.step("install OS", os=inst.os):
            job.on_undo("remove OS provider files", lambda: nodecalls.os_remove(ctx, config, inst))
            job.record_created({"kind": "os", "instance": created_record(inst)})
            nodecalls.os_install(ctx, config, inst)

        def add(fresh: Config) -> None:
            if inst.name in fresh.instances:
                raise PrerequisiteError(f"instance {inst.name} was created meanwhile by another job")
            _recheck_unique(fresh, inst)
            network_ops.reserve_nics(fresh, inst, planned.requested_nics)  # under the cluster lock
            # Marked up before it starts, as Ganeti does: one commit, and a start that fails
            # is undone with the rest (the config entry goes with it).
            inst.admin_state = "up" if want_running else "down"
            fresh.instances[inst.name] = inst

        with job.step("commit config"):
            config = commit(ctx, locks, add, nodes=inst.nodes(), what=f"instance {inst.name}")
        job.on_undo("remove the instance from the config", _undo_config(ctx, locks, inst.name))
        job.on_undo("remove runtime files", lambda: nodecalls.instance_cleanup(ctx, config, inst, inst.primary_node))
        if want_running:
            with job.step("start instance", node=inst.primary_node):
                nodecalls.instance_start(ctx, config, inst)
            job.on_undo("stop instance", lambda: nodecalls.instance_stop(ctx, config, inst, force=True))
        job.finish({"primary": inst.primary_node, "secondary": inst.secondary_node})
    result["instance"] = instance_view(ctx.store.load().instances[inst.name])
    result["diff"]["after"] = result["instance"]
    result["msg"] = f"instance {inst.name} created on {inst.primary_node}"
    return result


def created_record(inst: Instance) -> Dict[str, Any]:
    """What removing a created instance's resources needs, without the config (which never
    saw the instance): its identity, nodes and disks. The DRBD secret stays out of the
    journal (removal does not need it)."""
    return {"name": inst.name, "uuid": inst.uuid, "disk_template": inst.disk_template,
            "hypervisor": inst.hypervisor, "os": inst.os, "primary_node": inst.primary_node,
            "secondary_node": inst.secondary_node,
            "disks": [{"uuid": d.uuid, "size": d.size, "name": d.name, "vg": d.vg,
                       "logical_id": {k: v for k, v in d.logical_id.items() if k != "secret"}}
                      for d in inst.disks]}


@repairs("instance_create")
def _repair_create(ctx: Context, locks: Locks, config: Config, inst: Optional[Instance], job: Dict[str, Any]) -> List[str]:
    """An interrupted create: what it recorded as created goes, unless it had committed."""
    removed = remove_created(ctx, config, job)
    ctx.warnings.extend(removed)
    return removed


def remove_created(ctx: Context, config: Config, job: Dict[str, Any]) -> List[str]:
    """Remove exactly what an interrupted create recorded (``Job.record_created``), unless the
    create got as far as committing the instance (then the config owns them). Returns what
    was done and what could not be, one line each."""
    import secrets

    lines: List[str] = []
    for entry in reversed(job.get("created") or []):
        record = entry.get("instance") or {}
        held = config.instances.get(str(record.get("name")))
        if held is not None and held.uuid == record.get("uuid"):
            continue  # committed: the instance owns these resources now
        gone = nodes_gone(config, record)
        if gone:
            lines.append(f"job {job['id']}: {entry['kind']} of {record.get('name')} left on {gone} (node gone or "
                         "offline; cluster_verify reports it)")
            continue
        inst = Instance(name=record["name"], uuid=record["uuid"], primary_node=record["primary_node"],
                        secondary_node=record.get("secondary_node"), hypervisor=record["hypervisor"],
                        disk_template=record["disk_template"], os=record.get("os") or "noop",
                        disks=[Disk(uuid=d["uuid"], size=d["size"], name=d.get("name"), vg=d.get("vg"),
                                    # drbdadm down needs a resource file; the secret in it plays no part
                                    logical_id=dict(d.get("logical_id") or {}, secret=secrets.token_hex(16)))
                               for d in record.get("disks") or []])
        try:
            if entry["kind"] == "disk":
                nodecalls.disk_remove(ctx, config, inst, entry["index"])
                lines.append(f"removed disk {entry['index']} of {inst.name} left by job {job['id']}")
            elif entry["kind"] == "os":
                nodecalls.os_remove(ctx, config, inst)
        except (RpcError, HerdError) as exc:
            lines.append(f"job {job['id']}: could not remove {entry['kind']} of {inst.name}: {exc}")
    return lines


def locks_node_guard(config: Config, node: str) -> None:
    if config.nodes[node].offline:
        raise PrerequisiteError(f"node {node} went offline")


def _recheck_unique(config: Any, inst: Instance) -> None:
    if inst.network_port and inst.network_port in config.used_ports():
        inst.network_port = config.allocate_port()
    macs = {n.mac for i in config.instances.values() for n in i.nics}
    for nic in inst.nics:
        if nic.mac in macs:
            raise PrerequisiteError(f"MAC {nic.mac} was taken meanwhile by another instance; run again")


def _undo_disk(ctx: Context, config: Config, inst: Instance, index: int) -> Any:
    return lambda: nodecalls.disk_remove(ctx, config, inst, index)


def _undo_config(ctx: Context, locks: Locks, name: str) -> Any:
    def undo() -> None:
        with locks.cluster():
            fresh = ctx.store.load()
            if name in fresh.instances:
                del fresh.instances[name]
                network_ops.release(fresh, name)
                ctx.commit(fresh)
    return undo


# --------------------------------------------------------------------------- modify

def plan_modify(config: Config, inst: Instance, spec: Dict[str, Any]) -> Dict[str, Any]:
    """What differs between the declared spec and the instance: a dict of changes."""
    changes: Dict[str, Any] = {}
    for key, why in IMMUTABLE.items():
        if key == "os" and spec.get("reinstall"):
            continue  # a reinstall may change the OS (instance_reinstall)
        declared = spec.get(key)
        current = getattr(inst, key)
        if declared is not None and declared != current:
            raise PrerequisiteError(f"instance {inst.name}: {key} is {current}, declared {declared}: {why}")
    if spec["primary_node"] and spec["primary_node"] != inst.primary_node:
        raise PrerequisiteError(f"instance {inst.name} runs on {inst.primary_node}, declared primary_node "
                                f"{spec['primary_node']}: move it with herd.cluster.instance_migrate or "
                                "instance_failover")
    if spec["secondary_node"] and spec["secondary_node"] != inst.secondary_node:
        raise PrerequisiteError(f"instance {inst.name} has secondary {inst.secondary_node}, declared "
                                f"{spec['secondary_node']}: use herd.cluster.instance_replace_disks")
    be = {}
    if spec["memory"] is not None and spec["memory"] != inst.beparams.get("maxmem"):
        be["maxmem"] = spec["memory"]
    if spec["minmem"] is not None and spec["minmem"] != inst.beparams.get("minmem"):
        be["minmem"] = spec["minmem"]
    elif spec["memory"] is not None and spec["minmem"] is None and inst.beparams.get("minmem", 0) > spec["memory"]:
        be["minmem"] = spec["memory"]
    if spec["vcpus"] is not None and spec["vcpus"] != inst.beparams.get("vcpus"):
        be["vcpus"] = spec["vcpus"]
    if be:
        changes["beparams"] = be
    hv = {k: v for k, v in spec["hvparams"].items() if inst.hvparams.get(k) != v}
    if hv:
        node_checks.instance_hvparams(config.cluster, inst.hypervisor, {**inst.hvparams, **hv}, inst.name)
        changes["hvparams"] = hv
    changes.update(instance_disks.plan(inst, spec))
    if spec["nics"] is not None:
        nics = []
        for index, declared in enumerate(spec["nics"]):
            current = inst.nics[index] if index < len(inst.nics) else None
            mac = declared["mac"] or (current.mac if current else None)
            nics.append({"mac": mac, "mode": declared["mode"] or (current.mode if current else None),
                         "link": declared["link"] or (current.link if current else None),
                         "vlan": declared["vlan"] if declared["vlan"] is not None else (
                             current.vlan if current else None), "ip": network_ops.declared_ip(declared, current),
                         "network": declared["network"],
                         "name": declared["name"]})
        now_nics = [{"mac": n.mac, "mode": n.mode, "link": n.link, "vlan": n.vlan, "ip": n.ip, "network": n.network,
                     "name": n.name} for n in inst.nics]
        if nics != now_nics:
            changes["nics"] = nics
    if spec["tags"] is not None:
        # the repair state autorepair keeps in the tags is not the operator's to declare: kept as it is
        kept = [t for t in inst.tags if repair_tags.is_state(t)]
        if sorted(set(spec["tags"]) | set(kept)) != sorted(inst.tags):
            changes["tags"] = sorted(set(spec["tags"]) | set(kept))
    password = spec.get("vnc_password")
    if password is not None and (password or None) != inst.vnc_password:
        changes["vnc_password"] = password or None
    if changes.get("vnc_password") or ("hvparams" in changes and inst.vnc_password):
        target = copy.copy(inst)
        target.hvparams = {**inst.hvparams, **changes.get("hvparams", {})}
        target.vnc_password = changes.get("vnc_password", inst.vnc_password)
        node_checks.vnc_password(config.cluster, target)
    return changes


def apply_changes(config: Config, inst: Instance, changes: Dict[str, Any]) -> None:
    inst.beparams.update(changes.get("beparams", {}))
    inst.hvparams.update(changes.get("hvparams", {}))
    for index, size in changes.get("grow", []):
        inst.disks[index].size = size
    if "nics" in changes:
        taken: set = set()
        new = []
        for nic in changes["nics"]:
            mac = nic["mac"] or generate_mac(config, taken)
            taken.add(mac)
            new.append(Nic(mac=mac, link=nic["link"] or config.cluster.nicparams.get("link", "br0"),
                           vlan=nic["vlan"], ip=nic["ip"], network=nic["network"], name=nic["name"]))
        inst.nics = new
        network_ops.release(config, inst.name)
        network_ops.reserve_nics(config, inst, changes["nics"])
    if "tags" in changes:
        inst.tags = changes["tags"]
    if "vnc_password" in changes:
        inst.vnc_password = changes["vnc_password"]


NEEDS_RESTART = ("beparams", "hvparams", "nics", "add_disks", "remove_disks", "vnc_password")


def adds_drbd_disks(inst: Instance, spec: Dict[str, Any]) -> bool:
    """New drbd disks take minors and ports: the modify holds the node-allocation lock, so that
    a create does not take the same."""
    return inst.disk_template == "drbd" and len(spec.get("disks") or []) > len(inst.disks)


class InstanceModify(InstanceOperation):
    """gnt-instance modify / grow-disk / startup / shutdown / reboot / reinstall: what differs
    between the declared spec and the instance, and the power state asked for."""

    opcode = "instance_modify"
    expects_instance = True

    def declare_locks(self, config: Config) -> LockDecl:
        inst = config.instances.get(self.name)
        self.decl = LockDecl(instances=[self.name], node_alloc=inst is not None and adds_drbd_disks(inst, self.spec))
        return self.decl

    def open_job(self) -> ContextManager[Any]:
        return contextlib.nullcontext() if self.converting else super().open_job()

    def _rest(self, ctx: Context, locks: Locks, spec: Dict[str, Any]) -> Dict[str, Any]:
        return InstanceModify(ctx, spec, checked=True, repair=False).run_within(self)

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        config = self.locked_config(config)
        spec = self.spec
        inst = self.inst = config.instances[self.name]
        self.converting = instance_convert.requested(inst, spec)
        if self.converting:
            # gnt-instance modify -t: the conversion plans and runs its own jobs (instance_convert),
            # then the rest of the declaration is a modify under the same locks
            self.status = instance_status(self.ctx, config, inst)
            if self.ctx.check_mode:
                return instance_convert.convert(self.ctx, self.locks, spec, then=self._rest, status=self.status)
            return {"changed": True}
        changes = self.changes = plan_modify(config, inst, spec)
        self.status = status = instance_status(self.ctx, config, inst)
        self.running = running = status["running"]
        want = {"running": "up", "restarted": "up", "stopped": "down"}.get(spec["state"], inst.admin_state)
        self.reinstall = instance_reinstall.plan(inst, spec, running, want)
        restart_needed = running and (any(k in changes for k in NEEDS_RESTART) or inst.pending_restart)
        restart_now = running and want == "up" and (spec["state"] == "restarted"
                                                    or restart_needed and spec["restart_on_change"])
        self.target = self.plan_target(config, want, restart_needed, restart_now)
        self.stop = running and (want == "down" or restart_now)
        self.start = want == "up" and (not running or restart_now)
        if status.get("error") and want == "up" and not running:
            self.start = True
        return self.planned_result(restart_needed and not restart_now and want == "up")

    def plan_target(self, config: Config, want: str, restart_needed: bool, restart_now: bool) -> Instance:
        """The instance as it will be: ``target`` holds every disk (old and new) until the
        commit; ``committed`` (what the commit stores) drops the removed ones."""
        inst, changes = self.inst, self.changes
        target = copy.deepcopy(inst)
        apply_changes(config, target, changes)
        if "nics" in changes:  # the new NICs' bridges on the instance's nodes, before anything is touched
            placement.check_bridges_live(self.ctx, config, inst.name, [n.link for n in target.nics
                                                                       if (n.mode or "bridged") == "bridged"],
                                         inst.nodes())
            nodecalls.check_ovs_links(self.ctx, config, target)
        target.disks += instance_disks.new_disks(target, changes.get("add_disks", []))
        self.added = list(range(len(inst.disks), len(target.disks)))
        self.removed = changes.get("remove_disks", [])
        instance_disks.check_running(inst, changes, self.running, want == "down" or restart_now)
        instance_disks.check_add(self.ctx, config, target, self.added)
        if self.reinstall:
            target.os, target.osparams = self.reinstall["os"], self.reinstall["osparams"]
        target.admin_state = want
        target.pending_restart = bool(inst.pending_restart or restart_needed) and not restart_now and want == "up"
        if want == "down" or (self.running and restart_now) or (not self.running and want == "up"):
            target.pending_restart = False
        self.committed = copy.copy(target)
        self.committed.disks = [d for i, d in enumerate(target.disks) if i not in self.removed]
        return target

    def planned_result(self, deferred: bool) -> Dict[str, Any]:
        inst, changes, target, reinstall = self.inst, self.changes, self.target, self.reinstall
        before, after = instance_view(inst), instance_view(self.committed)
        self.actions = actions = (
            [f"grow disk {i} to {s} MiB" for i, s in changes.get("grow", [])]
            + [f"add disk {i} of {target.disks[i].size} MiB" for i in self.added]
            + (["set the VNC password" if changes["vnc_password"] else "remove the VNC password"]
               if "vnc_password" in changes else [])
            + (["stop"] if self.stop else [])
            + [f"remove disk {i} ({inst.disks[i].size} MiB) with its data" for i in self.removed]
            + ([reinstall["action"]] if reinstall else [])
            + (["start"] if self.start else []))
        if deferred:
            actions.append("changes apply at the next restart (restart_on_change is false)")
        if self.added and self.running and not self.stop:
            actions.append("the new disks are attached at the next start (herd does not hot-plug disks)")
        # the view says only whether a password is set: a new password is a change the view cannot show
        changed = before != after or self.stop or self.start or bool(reinstall) or "vnc_password" in changes
        result: Dict[str, Any] = {"changed": bool(changed), "instance": after, "diff": diff_dict(before, after),
                                  "actions": actions, "status": self.status,
                                  "msg": f"instance {inst.name} " + (
                                      "would change: " + ", ".join(actions) if changed else "already matches")}
        if reinstall:
            result["destroys"] = reinstall["destroys"]
        return result

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        if self.converting:
            result.clear()
            result.update(instance_convert.convert(self.ctx, self.locks, self.spec, then=self._rest,
                                                   status=self.status))
            return
        ctx, spec, inst, target, committed = self.ctx, self.spec, self.inst, self.target, self.committed
        config = self.config
        # a drbd disk add the unlocked read did not foresee takes the allocation lock now (after
        # the instance's, in the order of the levels)
        late = self.added and inst.disk_template == "drbd" and not self.decl.node_alloc
        with allocation_lock(ctx, self.locks) if late else contextlib.nullcontext():
            for index, size in self.changes.get("grow", []):
                with job.step(f"grow disk {index}", size=size):
                    nodecalls.disk_grow(ctx, config, inst, index, size)
                    if self.running and not self.stop:
                        _notify_grow(ctx, config, inst, index, size)
            if self.added:
                instance_disks.allocate_drbd(ctx, ctx.store.load(), target, len(inst.disks))
                instance_disks.create(ctx, job, config, target, self.added, spec["wait_for_sync"],
                                      spec["sync_timeout"])
            if self.stop:
                with job.step("stop instance"):
                    nodecalls.instance_stop(ctx, config, inst, timeout=spec["shutdown_timeout"])
            if self.reinstall:
                instance_reinstall.execute(ctx, job, config, target)
            instance_disks.record_removal(job, target, self.removed)
            with job.step("commit config"):
                config = commit(ctx, self.locks, self.store_committed, instances=[inst.name],
                                what=f"instance {inst.name}")
        job.no_more_undo()  # committed: the new disks belong to the instance now
        ctx.warnings.extend(instance_disks.remove_volumes(ctx, job, config, target, self.removed))
        if self.start:
            attach_secondary(ctx, config, target)
            with job.step("start instance"):
                nodecalls.instance_start(ctx, config, committed)
        result["instance"] = instance_view(ctx.store.load().instances[inst.name])
        result["diff"]["after"] = result["instance"]
        result["msg"] = f"instance {inst.name} changed: " + ", ".join(self.actions) if self.actions else \
            f"instance {inst.name} changed"

    def store_committed(self, fresh: Config) -> None:
        committed = self.committed
        committed.network_port = fresh.instances[self.name].network_port
        committed.mtime = now()
        if "nics" in self.changes:  # addresses: the old NICs' freed, the new NICs' taken, under the lock
            network_ops.release(fresh, self.name)
            network_ops.reserve_nics(fresh, committed, self.changes["nics"])
        fresh.instances[self.name] = committed


def attach_secondary(ctx: Context, config: Config, inst: Instance) -> None:
    """Before a start, bring the drbd secondary's devices up too (as Ganeti's start assembles
    the disks on every node): after a reboot of both nodes nothing else would, and the
    instance would run without a replica. Not reachable: a warning, the start goes on."""
    node = inst.secondary_node
    if inst.disk_template != "drbd" or not node or node not in config.nodes or config.nodes[node].offline:
        return
    for index, disk in enumerate(inst.disks):
        try:
            nodecalls.call(ctx, config, node, "drbd_attach", nodecalls.disk_args(config, inst, disk, index, node))
        except HerdError as exc:
            ctx.warnings.append(f"disk {index} of {inst.name} could not be activated on its secondary {node}: "
                                f"{exc}; the instance runs without a replica until "
                                "herd.cluster.instance_activate_disks succeeds")
            return


def _notify_grow(ctx: Context, config: Config, inst: Instance, index: int, size: int) -> None:
    try:
        nodecalls.instance_disk_grown(ctx, config, inst, index, size)
    except RpcError as exc:
        ctx.warnings.append(f"disk {index} of {inst.name} grew, but the running guest was not told: {exc}; "
                            "it sees the new size after a restart")


# --------------------------------------------------------------------------- status

def instance_status(ctx: Context, config: Config, inst: Instance) -> Dict[str, Any]:
    """Where the instance really runs, and Ganeti's status word."""
    nodes = [n for n in sorted(config.nodes) if config.nodes[n].vm_capable]
    answers = nodecalls.running_on(ctx, config, nodes, inst.hypervisor)
    where = [n for n, running in answers.items() if not isinstance(running, RpcError) and inst.name in running]
    unreachable = {n: str(a) for n, a in answers.items() if isinstance(a, RpcError)}
    running = inst.primary_node in where
    word = status_word(config, inst, where, answers)
    return {"status": word, "running": running, "running_on": where, "unreachable": unreachable,
            "error": word.startswith("ERROR")}


# --------------------------------------------------------------------------- remove

class InstanceRemove(InstanceOperation):
    """gnt-instance remove: stopped wherever it runs, its disks, OS files and runtime files
    removed (what an offline node holds is reported, not waited for), then the config."""

    opcode = "instance_remove"

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        config = self.locked_config(config)
        name = self.name
        inst = config.instances.get(name)
        if inst is None:
            return {"changed": False, "instance": None, "diff": diff_dict(None, None),
                    "msg": f"instance {name} is absent"}
        self.inst = inst
        return {"changed": True, "instance": None, "diff": diff_dict(instance_view(inst), None),
                "msg": f"instance {name} would be stopped and removed with its disks"}

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        ctx, inst, name, config = self.ctx, self.inst, self.name, self.config
        problems: List[str] = []
        status = instance_status(ctx, config, inst)
        for node in status["running_on"]:
            with job.step("stop instance", node=node):
                nodecalls.instance_stop(ctx, config, inst, node=node, timeout=self.spec["shutdown_timeout"])
        with job.step("remove disks"):
            for index in range(len(inst.disks)):
                problems += nodecalls.disk_remove(ctx, config, inst, index, ignore_offline=True)
        with job.step("remove OS provider files"):
            problems += nodecalls.os_remove(ctx, config, inst)
        with job.step("remove runtime files"):
            for node in inst.nodes():
                if config.nodes[node].offline:
                    problems.append(f"{node} is offline: the runtime files of {name} stay there (cluster_verify "
                                    "reports them as an unknown instance once the node is back)")
                    continue
                try:
                    nodecalls.instance_cleanup(ctx, config, inst, node, purge=True)
                except (RpcError, HerdError) as exc:
                    problems.append(str(exc))

        def drop(fresh: Config) -> None:
            fresh.instances.pop(name, None)
            network_ops.release(fresh, name)

        with job.step("commit config"):
            commit(ctx, self.locks, drop, what=f"instance {name} removal")
        ctx.warnings.extend(problems)
        result["msg"] = f"instance {name} removed"


def remove_for_destroy(ctx: Context, name: str) -> None:
    """Used by cluster destroy with force (the operator asked for every instance's removal)."""
    InstanceRemove(ctx, {"name": name, "state": "absent"}, repair=False).run()
