"""gnt-cluster verify: structured findings, each with a severity, a code and the object.

Codes follow Ganeti's where one exists (ECLUSTERCFG, ENODESSH, ENODEVERSION,
ENODEHV, ENODELVM, ENODENET, ...). Checks are plain functions over a
``VerifyState`` so later areas (instances, storage, N+1) add their own by
appending to ``CHECKS``.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

from ..config import MIRRORED_TEMPLATES, Config
from ..errors import HerdError, RpcError
from . import disk_health
from .common import Context
from .facts import allocator_facts


@dataclass
class Finding:
    severity: str  # "error" | "warning"
    code: str
    object: str
    message: str

    def line(self) -> str:
        return f"{self.severity.upper()}: {self.code}: {self.object}: {self.message}"


@dataclass
class VerifyState:
    ctx: Context
    config: Config
    facts: Dict[str, Dict[str, Any]] = field(default_factory=dict)       # reachable nodes only
    membership: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # reachable nodes only
    storage: Dict[str, Dict[str, Any]] = field(default_factory=dict)     # storage_list per answering node
    findings: List[Finding] = field(default_factory=list)

    def error(self, code: str, obj: str, message: str) -> None:
        self.findings.append(Finding("error", code, obj, message))

    def warning(self, code: str, obj: str, message: str) -> None:
        self.findings.append(Finding("warning", code, obj, message))


def check_config(state: VerifyState) -> None:
    config = state.config
    master = config.cluster.master_node
    if master not in config.nodes:
        state.error("ECLUSTERCFG", "cluster", f"master {master} is not in the node list")
    elif not config.nodes[master].master_candidate or config.nodes[master].offline:
        state.error("ECLUSTERCFG", master, "the master must be an online master candidate")
    for node in config.nodes.values():
        if node.group not in config.nodegroups:
            state.error("ECLUSTERCFG", node.name, f"node group {node.group} does not exist")
    for inst in config.instances.values():
        for role, node_name in (("primary", inst.primary_node), ("secondary", inst.secondary_node)):
            if node_name and node_name not in config.nodes:
                state.error("ECLUSTERCFG", inst.name, f"{role} node {node_name} does not exist")
        if inst.secondary_node and inst.secondary_node == inst.primary_node:
            state.error("ECLUSTERCFG", inst.name, "primary and secondary node are the same")
        if inst.disk_template in MIRRORED_TEMPLATES and not inst.secondary_node:
            state.error("ECLUSTERCFG", inst.name, f"{inst.disk_template} instance without a secondary node")
        if inst.disk_template not in config.cluster.enabled_disk_templates:
            state.error("ECLUSTERCFG", inst.name, f"disk template {inst.disk_template} is not enabled")
    for port, count in Counter(config.used_ports()).items():
        if count > 1:
            state.error("ECLUSTERCFG", "cluster", f"port {port} is allocated {count} times")
    macs = Counter(nic.mac for inst in config.instances.values() for nic in inst.nics)
    for mac, count in macs.items():
        if count > 1:
            state.error("ECLUSTERCFG", "cluster", f"MAC {mac} is used by {count} NICs")
    eligible = [n for n in config.nodes.values() if n.master_capable and not n.offline and not n.drained]
    wanted = min(config.cluster.candidate_pool_size, len(eligible))
    have = len(config.master_candidates())
    if have < wanted:
        state.warning("ECLUSTERCFG", "cluster", f"{have} master candidates, the pool size asks for {wanted}; "
                      "promote nodes with herd.cluster.node master_candidate: true")


def gather(state: VerifyState) -> None:
    ctx, config = state.ctx, state.config
    online = [n for n in sorted(config.nodes.values(), key=lambda n: n.name) if not n.offline]
    args = {"vg": config.cluster.volume_group,
            "file_dirs": [config.cluster.file_storage_dir, config.cluster.shared_file_storage_dir]}
    facts = ctx.rpc.call_many([(ctx.endpoint(n, config), "node_facts", args) for n in online], timeout=60)
    for name, answer in facts.items():
        if isinstance(answer, RpcError):
            code = "ENODEVERSION" if "version" in str(answer) else "ENODESSH"
            state.error(code, name, str(answer))
        else:
            state.facts[name] = answer
    reachable = [n for n in online if n.name in state.facts]
    members = ctx.rpc.call_many([(ctx.endpoint(n, config), "cluster_membership", {}) for n in reachable])
    for name, answer in members.items():
        if isinstance(answer, RpcError):
            state.error("ENODESSH", name, str(answer))
        else:
            state.membership[name] = answer


def check_replication(state: VerifyState) -> None:
    config = state.config
    want = config.ssconf()
    candidates = set(config.master_candidates())
    for name, member in state.membership.items():
        serial = member.get("config_serial")
        if name in candidates and serial != config.serial_no:
            state.error("ECLUSTERCFG", name, f"master candidate has config serial {serial}, the master has "
                        f"{config.serial_no}; the next config change (or node modify) pushes it again")
        ssconf = member.get("ssconf") or {}
        for key in ("cluster_name", "master_node", "nodes"):
            if ssconf.get(key) != want[key]:
                state.error("ECLUSTERCFG", name, f"ssconf {key} is {ssconf.get(key)!r}, expected {want[key]!r}")


def check_node_facts(state: VerifyState) -> None:
    cluster = state.config.cluster
    for name, facts in state.facts.items():
        node = state.config.nodes[name]
        hostname = facts.get("hostname", "")
        if hostname.split(".")[0] != name.split(".")[0]:
            state.error("ENODENET", name, f"the node calls itself {hostname!r}")
        addresses = facts.get("addresses", [])
        for label, ip in (("primary", node.primary_ip), ("secondary", node.secondary_ip)):
            if ip not in addresses:
                state.error("ENODENET", name, f"{label} IP {ip} is not configured (has {addresses})")
        if not facts.get("memory_total") or facts.get("memory_total", 0) <= 0:
            state.error("ENODEHV", name, "reports no memory")
        if facts.get("memory_free", 0) > facts.get("memory_total", 0):
            state.error("ENODEHV", name, "reports more free memory than total")
        if "kvm" in cluster.enabled_hypervisors and node.vm_capable:
            if not facts.get("qemu_version"):
                state.error("ENODEHV", name, "kvm is enabled but qemu-system-x86_64 is not installed")
            accel = cluster.hvparams.get("kvm", {}).get("accel", "kvm")
            kvm = facts.get("kvm") or {}
            if accel == "kvm" and not kvm.get("usable"):
                state.warning("ENODEHV", name, f"hvparams accel=kvm but KVM is unusable here: {kvm.get('reason')}; "
                              "instances need accel: tcg on this node")
        if {"plain", "drbd"} & set(cluster.enabled_disk_templates) and node.vm_capable:
            vg = facts.get("volume_group") or {}
            if not vg.get("present"):
                state.error("ENODELVM", name, f"volume group {cluster.volume_group} is missing: {vg.get('error', '')}")
        for space in facts.get("file_storage", []):
            template = "file" if space["path"] == cluster.file_storage_dir else "sharedfile"
            if template in cluster.enabled_disk_templates and not space.get("exists") and node.vm_capable:
                state.error("ENODEFILESTORAGE", name, f"{template} storage directory {space['path']} is missing")


def check_instances(state: VerifyState) -> None:
    """Where instances really run: stale copies (a node came back after a failover), instances
    down that should run, and processes of instances the config does not know."""
    from . import nodecalls

    config = state.config
    nodes = [n for n in sorted(state.facts) if config.nodes[n].vm_capable]
    answers = nodecalls.running_on(state.ctx, config, nodes)
    running = {n: a for n, a in answers.items() if not isinstance(a, RpcError)}
    for name, inst in sorted(config.instances.items()):
        where = sorted(n for n, listed in running.items() if name in listed)
        for node in where:
            if node != inst.primary_node:
                state.error("EINSTANCEWRONGNODE", name,
                            f"runs on {node} but its primary is {inst.primary_node} (a stale copy, e.g. from before "
                            "a failover); herd.cluster.instance_migrate with cleanup: true stops it")
        if inst.admin_state == "up" and inst.primary_node in running and inst.primary_node not in where:
            state.error("EINSTANCEDOWN", name, f"should run on {inst.primary_node} but does not")
        if inst.admin_state == "down" and inst.primary_node in where:
            state.warning("EINSTANCEUP", name, f"runs on {inst.primary_node} but is marked down")
    for node, listed in sorted(running.items()):
        for name in sorted(set(listed) - set(config.instances)):
            state.error("ENODEORPHANINSTANCE", node, f"runs instance {name}, which the cluster does not know")


def check_storage(state: VerifyState) -> None:
    """Storage as the nodes see it (``storage_list``): orphan and missing volumes, DRBD minors
    the config does not know, and every drbd disk's state on both nodes (degraded,
    disconnected, StandAlone, split brain, out of sync, secondary missing, a stale Primary)."""
    from . import nodecalls

    config = state.config
    uses_storage = {"plain", "drbd"} & ({i.disk_template for i in config.instances.values()}
                                        | set(config.cluster.enabled_disk_templates))
    nodes = [n for n in sorted(state.facts) if config.nodes[n].vm_capable]
    if not uses_storage or not nodes:
        return
    calls = []
    for name in nodes:
        vgs = sorted({v for inst in config.instances.values() if name in inst.nodes() for d in inst.disks
                      for v in (d.vg, d.logical_id.get("vg"), d.logical_id.get("meta_vg")) if v})
        calls.append((state.ctx.endpoint(config.nodes[name], config), "storage_list",
                      {"storage": nodecalls.storage_context(config), "vgs": vgs}))
    for name, answer in state.ctx.rpc.call_many(calls, timeout=60).items():
        if isinstance(answer, (RpcError, HerdError)):
            state.error("ENODESTORAGE", name, f"cannot list the node's storage: {answer}")
        else:
            state.storage[name] = answer
    for name, listing in sorted(state.storage.items()):
        for severity, code, obj, message in disk_health.node_problems(config, name, listing):
            state.findings.append(Finding(severity, code, obj, message))
    proc = {name: disk_health.proc_from_listing(listing) for name, listing in state.storage.items()}
    for name, inst in sorted(config.instances.items()):
        for problem in disk_health.drbd_problems(inst, proc):
            state.findings.append(Finding(problem.severity, "EINSTANCEFAULTYDISK", name, problem.text()))


def check_n1(state: VerifyState) -> None:
    """Ganeti's N+1 memory check through the allocator's own rules: a node that could not
    start the instances it is secondary for if their primary failed."""
    from ..allocator.config_model import from_herd_config

    config = state.config
    if not any(inst.disk_template in MIRRORED_TEMPLATES for inst in config.instances.values()):
        return
    try:
        model = from_herd_config(config.to_dict(), allocator_facts(config, dict(state.facts)))
    except (HerdError, ValueError, KeyError) as exc:
        state.warning("ENODEN1", "cluster", f"cannot build the allocator's model for the N+1 check: {exc}")
        return
    by_index = {n.idx: n for n in model.nodes}
    for node in model.nodes:
        if node.name not in state.facts or node.r_mem <= 0 or not node.fail_n1:
            continue
        worst = max(node.peers, key=lambda pdx: node.peers[pdx])
        failing = by_index[worst].name if worst in by_index else str(worst)
        state.error("ENODEN1", node.name, f"not enough memory to accommodate instance failovers should node "
                    f"{failing} fail ({node.peers[worst]} MiB needed, {node.unallocated_mem()} MiB available)")


def check_jobs(state: VerifyState) -> None:
    for job in state.ctx.journal.interrupted():
        state.warning("EJOBINTERRUPTED", f"job {job['id']}",
                      f"{job['opcode']} was interrupted during {job.get('last_message')!r}; the next operation on "
                      "the same object recovers it")


Check = Callable[[VerifyState], None]
CHECKS: List[Check] = [check_config, gather, check_replication, check_node_facts, check_instances, check_storage,
                       check_n1, check_jobs]


def verify(ctx: Context) -> Dict[str, Any]:
    config = ctx.load_master_config()
    state = VerifyState(ctx=ctx, config=config)
    for check in CHECKS:
        check(state)
    errors = [f for f in state.findings if f.severity == "error"]
    return {
        "ok": not errors,
        "findings": [f.__dict__ for f in state.findings],
        "lines": [f.line() for f in state.findings],
        # not "warnings": Ansible reserves that key for its own warning messages
        "error_count": len(errors),
        "warning_count": len(state.findings) - len(errors),
        "serial_no": config.serial_no,
    }
