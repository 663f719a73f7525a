"""Read-only views: cluster_info, node_info (gnt-node list), job_info."""

import re
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import names
from ..config import Config
from ..errors import HerdError, RpcError, ValidationError
from ..units import format_mib
from . import disk_health, nodecalls
from .cluster import cluster_view
from .console import console
from .common import Context
from .facts import allocator_facts, live_facts
from .instance_spec import instance_view
from .node import FLAGS as FLAG_NAMES
from .node import node_view


SEARCH_TAGS_MAX = 256


def search_tags(config: Config, pattern: str) -> List[Dict[str, str]]:
    """gnt-cluster search-tags: every tag of the cluster, node groups, nodes, instances and networks
    that the regular expression matches (anywhere in the tag, as Ganeti's re.search), as
    {"path": "/instances/web1", "tag": "..."} sorted by path then tag."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > SEARCH_TAGS_MAX:
        raise ValidationError(f"search_tags must be a regular expression of 1 to {SEARCH_TAGS_MAX} characters")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValidationError(f"search_tags {pattern!r} is not a valid regular expression: {exc}") from None
    owners: List[Tuple[str, List[str]]] = [("/cluster", config.cluster.tags)]
    for kind, objects in (("nodegroups", config.nodegroups), ("nodes", config.nodes),
                          ("instances", config.instances), ("networks", config.networks)):
        owners += [(f"/{kind}/{name}", obj.tags) for name, obj in objects.items()]
    return sorted(({"path": path, "tag": tag} for path, tags in owners for tag in tags if regex.search(tag)),
                  key=lambda m: (m["path"], m["tag"]))


def cluster_info(ctx: Context, search: Optional[str] = None) -> Dict[str, Any]:
    config = ctx.load_master_config()
    if search is not None:
        return {"tags": search_tags(config, search), **_cluster_info(config)}
    return _cluster_info(config)


def _cluster_info(config: Config) -> Dict[str, Any]:
    return {
        "cluster": cluster_view(config),
        "serial_no": config.serial_no,
        "nodes": sorted(config.nodes),
        "master_candidates": config.master_candidates(),
        "nodegroups": sorted(config.nodegroups),
        "instances": sorted(config.instances),
        "networks": sorted(config.networks),
    }


def node_role(config: Config, name: str) -> str:
    """Ganeti's one-letter roles: M master, C candidate, D drained, O offline, R regular."""
    node = config.nodes[name]
    if name == config.cluster.master_node:
        return "M"
    if node.offline:
        return "O"
    if node.drained:
        return "D"
    if node.master_candidate:
        return "C"
    return "R"


def node_info(ctx: Context, selected: Optional[List[str]] = None, live: bool = True,
              n1: bool = False) -> Dict[str, Any]:
    """gnt-node list; with n1 (and live) each row also says whether the node fails N+1 (n1_fail)."""
    config = ctx.load_master_config()
    for name in selected or []:
        names.check_hostname(name)
    wanted = [n for n in sorted(config.nodes) if not selected or n in selected]
    # N+1 of one node depends on the instances of every other node: all facts then
    facts = live_facts(ctx, config, None if n1 else wanted) if live else {}
    n1_fail = n1_failures(config, facts) if live and n1 else {}
    rows = []
    for name in wanted:
        node = config.nodes[name]
        fact = facts.get(name, {})
        vg = fact.get("volume_group") or {}
        row = {
            "name": name,
            "role": node_role(config, name),
            "group": node.group,
            "primary_ip": node.primary_ip,
            "secondary_ip": node.secondary_ip,
            "flags": {k: getattr(node, k) for k in FLAG_NAMES},
            "memory_total": fact.get("memory_total"),
            "memory_free": fact.get("memory_free"),
            "disk_total": vg.get("size"),
            "disk_free": vg.get("free"),
            "vg_free": {config.cluster.volume_group: vg.get("free")} if vg else {},
            "cpu_count": fact.get("cpu_count"),
            "kvm_usable": (fact.get("kvm") or {}).get("usable"),
            "agent_version": fact.get("agent_version"),
            "primary_instances": sorted(i.name for i in config.instances.values() if i.primary_node == name),
            "secondary_instances": sorted(i.name for i in config.instances.values() if i.secondary_node == name),
            "error": fact.get("error"),
            "config": node_view(node),
            "n1_fail": n1_fail.get(name),
        }
        rows.append(row)
    return {"nodes": rows, "table": node_table(rows)}


def n1_failures(config: Config, facts: Dict[str, Any]) -> Dict[str, bool]:
    """{node: True when it fails N+1} from the allocator's model of the cluster (htools' FailN1)."""
    from ..allocator.config_model import from_herd_config

    model = from_herd_config(config.to_dict(), allocator_facts(config, facts))
    return {n.name: bool(n.fail_n1) for n in model.nodes}


def _cell(value: Any) -> str:
    return "?" if value is None else str(value)


def node_table(rows: List[Dict[str, Any]]) -> List[str]:
    """Lines like `gnt-node list`: Node Role DTotal DFree MTotal MFree CPUs Pinst Sinst."""
    header = ["Node", "Role", "DTotal", "DFree", "MTotal", "MFree", "CPUs", "Pinst", "Sinst"]
    body = [[r["name"], r["role"], _cell(r["disk_total"]), _cell(r["disk_free"]), _cell(r["memory_total"]),
             _cell(r["memory_free"]), _cell(r["cpu_count"]), str(len(r["primary_instances"])),
             str(len(r["secondary_instances"]))] for r in rows]
    return format_table(header, body)


def format_table(header: List[str], body: List[List[str]]) -> List[str]:
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    lines = []
    for row in [header] + body:
        cells = []
        for i, value in enumerate(row):
            text = str(value)
            cells.append(text.ljust(widths[i]) if i == 0 or not text.replace(".", "").isdigit()
                         else text.rjust(widths[i]))
        lines.append(" ".join(cells).rstrip())
    return lines


FOLLOW_INTERVAL = 1.0  # seconds between two reads of a followed job


def job_info(ctx: Context, job_id: Optional[int] = None, status: Optional[str] = None,
             opcode: Optional[str] = None, limit: Optional[int] = None, follow: bool = False,
             follow_timeout: float = 3600.0) -> Dict[str, Any]:
    """gnt-job list / gnt-job info (``job_id``); with ``follow``, gnt-job watch: wait until the job
    has ended (or ``follow_timeout`` passed) and show it with every step and progress line."""
    ctx.load_master_config()
    if follow and job_id is None:
        raise HerdError("follow needs the id of the job to follow")
    if job_id is not None:
        job = ctx.journal.get(job_id)
        deadline = time.monotonic() + follow_timeout
        while follow and job.get("status") in ("queued", "running"):
            if time.monotonic() >= deadline:
                ctx.warnings.append(f"job {job_id} is still {job['status']} after {follow_timeout:g} s of following")
                break
            time.sleep(FOLLOW_INTERVAL)
            job = ctx.journal.get(job_id)
        return {"jobs": [job], "table": job_detail(job), "log": ctx.journal.log_path(job_id)}
    jobs = ctx.journal.list(status=status, opcode=opcode, limit=limit)
    return {"jobs": jobs, "table": job_table(jobs), "interrupted": [j["id"] for j in ctx.journal.interrupted()]}


def clock(ts: Any) -> str:
    """A journal timestamp as local time, or '-' when it has none yet."""
    if not isinstance(ts, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def duration(start: Any, end: Any) -> str:
    """Seconds between two timestamps, human-readable ('2 min 05 s'); '-' before the start; the
    time so far when there is no end yet."""
    if not isinstance(start, (int, float)):
        return "-"
    seconds = max(0.0, (end if isinstance(end, (int, float)) else time.time()) - start)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def job_table(jobs: List[Dict[str, Any]]) -> List[str]:
    """Lines like `gnt-job list`: ID Status Opcode Received Duration Last message."""
    body = [[str(j.get("id")), str(j.get("status")), str(j.get("opcode")), clock(j.get("received_ts")),
             duration(j.get("start_ts"), j.get("end_ts")), str(j.get("last_message") or "")] for j in jobs]
    return format_table(["ID", "Status", "Opcode", "Received", "Duration", "Last message"], body)


def job_detail(job: Dict[str, Any]) -> List[str]:
    """Lines like `gnt-job info`: the job, then each step with its times, status and message,
    and under it every progress line it logged."""
    lines = [f"job {job.get('id')} {job.get('opcode')}: {job.get('status')}, received {clock(job.get('received_ts'))}, "
             f"started {clock(job.get('start_ts'))}, ended {clock(job.get('end_ts'))}, "
             f"duration {duration(job.get('start_ts'), job.get('end_ts'))} (pid {job.get('pid')} on {job.get('host')})"]
    body = []
    for step in job.get("steps", []):
        body.append([clock(step.get("start_ts")), duration(step.get("start_ts"), step.get("end_ts")),
                     str(step.get("status")), str(step.get("name")),
                     "" if step.get("progress") else str(step.get("message") or "")])
        body.extend(["", "", "", "", f"{clock(line.get('ts'))[11:]} {line.get('message')}"]
                    for line in step.get("progress", []))
    lines += ["  " + line for line in format_table(["Started", "Duration", "Status", "Step", "Message"], body)]
    if job.get("status") == "error":
        lines.append(f"error: {job.get('last_message')}")
    return lines


def instance_info(ctx: Context, selected: Optional[List[str]] = None, live: bool = True) -> Dict[str, Any]:
    """gnt-instance list: one row per instance with its real status."""
    config = ctx.load_master_config()
    for name in selected or []:
        names.check_instance_name(name)
    wanted = [n for n in sorted(config.instances) if not selected or n in selected]
    running: Dict[str, Any] = {}
    if live and wanted:
        vm_nodes = [n for n in sorted(config.nodes) if config.nodes[n].vm_capable]
        running = nodecalls.running_on(ctx, config, vm_nodes)
    proc = drbd_proc(ctx, config, [config.instances[n] for n in wanted]) if live else {}
    rows = []
    for name in wanted:
        inst = config.instances[name]
        view = instance_view(inst)
        view["console"] = console(config, inst)
        if live:
            where = [n for n, r in running.items() if not isinstance(r, RpcError) and name in r]
            view["status"] = status_word(config, inst, where, running)
            view["running_on"] = where
            if inst.disk_template == "drbd":
                problems = disk_health.drbd_problems(inst, proc)
                asked = any(proc.get(n) is not None for n in inst.nodes())
                view["disk_health"] = disk_health.health_word(problems, asked)
                view["disk_problems"] = [p.text() for p in problems]
            else:
                view["disk_health"] = None
                view["disk_problems"] = []
        else:
            view["status"] = None
            view["disk_health"] = None
            view["disk_problems"] = []
        rows.append(view)
    return {"instances": rows, "table": instance_table(rows)}


def drbd_proc(ctx: Context, config: Config, instances: List[Any]) -> Dict[str, Optional[Dict[str, Any]]]:
    """Every DRBD minor of the nodes holding a drbd instance's disks (None: node not asked)."""
    nodes = sorted({n for inst in instances if inst.disk_template == "drbd" for n in inst.nodes()
                    if n in config.nodes and not config.nodes[n].offline})
    if not nodes:
        return {}
    answers = ctx.rpc.call_many([(ctx.endpoint(config.nodes[n], config), "drbd_status", {}) for n in nodes],
                                timeout=30)
    return {n: (None if isinstance(a, (RpcError, HerdError)) else a) for n, a in answers.items()}


def instance_table(rows: List[Dict[str, Any]]) -> List[str]:
    header = ["Instance", "Hypervisor", "OS", "Primary_node", "Status", "Memory", "Template"]
    body = [[r["name"], r["hypervisor"], r["os"], r["primary_node"], _cell(r["status"]),
             format_mib_cell(r["memory"]), r["disk_template"]] for r in rows]
    return format_table(header, body)


def format_mib_cell(mib: Any) -> str:
    return "?" if mib is None else format_mib(int(mib))


def status_word(config: Config, inst: Any, where: List[str], answers: Dict[str, Any]) -> str:
    """Ganeti's instance status from where it runs and what it should do."""
    if config.nodes[inst.primary_node].offline:
        return "ERROR_nodeoffline"
    if isinstance(answers.get(inst.primary_node), RpcError):
        return "ERROR_nodedown"
    if any(n != inst.primary_node for n in where):
        return "ERROR_wrongnode"
    if inst.primary_node in where:
        return "running" if inst.admin_state == "up" else "ERROR_up"
    return "ERROR_down" if inst.admin_state == "up" else "ADMIN_down"
