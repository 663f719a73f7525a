"""gnt-cluster master-failover: a master candidate takes over from a master that is gone.

The rule (``decide``) is a pure function over what the nodes answered:

- this node must be an online, master-capable master candidate;
- the newest config wins: the highest (master epoch, serial) among this node
  and the candidates that answer; when a peer is ahead, its copy is fetched
  and the takeover builds on it;
- the old master (named by that newest config) must not answer;
- unless ``no_voting``: a strict majority of the cluster's online nodes must
  answer (this node included), and no answering node may still reach the old
  master's SSH port (a node that does says the master is alive and only this
  node is cut off from it).

The takeover bumps the master epoch, so this config outranks whatever an
isolated old master committed on its own, then writes config and ssconf on
every reachable node and moves the floating master IP. Run on the master
itself, the same op re-synchronises the nodes that are behind (a returning old
master: config, ssconf, and the master IP taken off it), like
``gnt-cluster redist-conf``.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..config import Config, config_rank, now
from ..errors import PrerequisiteError, RpcError, ValidationError
from ..rpc import known_host_keys
from .common import Context, diff_dict

NO_VOTING_WARNING = ("no_voting: the takeover skipped the agreement of the other nodes. If the old master is "
                     "only cut off and comes back, it will find a newer master epoch and refuse to act as "
                     "master; make sure it is really down, and run herd.cluster.master_failover on this node "
                     "again once it is back to re-synchronise it.")
# How long a voter waits for the old master's SSH port before calling it gone.
PROBE_TIMEOUT = 3.0


@dataclass
class Answer:
    """What one node said when asked about its cluster membership (None fields: it did not answer)."""
    node: str
    answered: bool
    rank: Optional[Tuple[int, int]] = None  # (master epoch, serial) of its config copy
    master: Optional[str] = None  # the master its ssconf names
    sees_master: Optional[bool] = None  # whether it reached the old master's SSH port
    error: str = ""


@dataclass
class Decision:
    takeover: bool
    old_master: str
    newest_from: Optional[str] = None  # peer whose newer config the takeover builds on
    reasons: List[str] = field(default_factory=list)  # why the takeover is refused (empty: allowed)
    warnings: List[str] = field(default_factory=list)


def validate_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    no_voting = spec.get("no_voting", False)
    if not isinstance(no_voting, bool):
        raise ValidationError(f"no_voting must be true or false, got {no_voting!r}")
    return {"no_voting": no_voting}


def newest(local: str, local_rank: Tuple[int, int], answers: Dict[str, Answer]) -> Optional[str]:
    """The peer holding a config newer than this node's (the newest one), or None."""
    best, best_rank = None, local_rank
    for name in sorted(answers):
        answer = answers[name]
        if name != local and answer.answered and answer.rank is not None and answer.rank > best_rank:
            best, best_rank = name, answer.rank
    return best


def decide(config: Config, local: str, answers: Dict[str, Answer], no_voting: bool) -> Decision:
    """Whether ``local`` may take the master role, given the newest config and the answers."""
    old = config.cluster.master_node
    decision = Decision(takeover=False, old_master=old)
    node = config.nodes.get(local)
    if node is None:
        decision.reasons.append(f"{local} is not a node of cluster {config.cluster.name!r}")
        return decision
    if old == local:
        return decision  # already the master: nothing to take over
    if not node.master_candidate or node.offline or not node.master_capable:
        decision.reasons.append(f"{local} is not an online master candidate; promote it with herd.cluster.node "
                                "master_candidate: true first (on the master, or on another candidate)")
        return decision
    old_answer = answers.get(old)
    if old_answer is not None and old_answer.answered:
        decision.reasons.append(f"the master {old} still answers: master_failover takes over only from a master "
                                "that is gone")
        return decision
    if no_voting:
        decision.takeover = True
        decision.warnings.append(NO_VOTING_WARNING)
        return decision
    online = sorted(n.name for n in config.nodes.values() if not n.offline)
    answering = [n for n in online if n == local or (n in answers and answers[n].answered)]
    if len(answering) * 2 <= len(online):
        decision.reasons.append(
            f"only {len(answering)} of the {len(online)} online nodes answer ({', '.join(answering)}): no majority "
            "can agree that the master is gone; in a two-node cluster use no_voting: true once you know it is down")
    seeing = sorted(n for n in answering if n != local and answers[n].sees_master)
    if seeing:
        decision.reasons.append(f"{', '.join(seeing)} still reach the master {old}: it is alive and only this node "
                                "is cut off from it")
    decision.takeover = not decision.reasons
    return decision


def gather(ctx: Context, config: Config, probe_master: bool) -> Dict[str, Answer]:
    """Ask every other node of ``config`` for its membership (in one parallel round)."""
    old = config.nodes.get(config.cluster.master_node)
    probe = None
    if probe_master and old is not None:
        probe = {"address": old.primary_ip, "port": ctx.endpoint(old, config).port}
    calls = [(ctx.endpoint(node, config), "cluster_membership", {"probe": probe} if probe else {})
             for node in sorted(config.nodes.values(), key=lambda n: n.name)
             if node.name != ctx.local_node and not node.offline]
    answers: Dict[str, Answer] = {}
    for name, result in ctx.rpc.call_many(calls).items():
        if isinstance(result, RpcError):
            answers[name] = Answer(node=name, answered=False, error=str(result))
            continue
        ssconf = result.get("ssconf") if isinstance(result.get("ssconf"), dict) else {}
        serial, epoch = result.get("config_serial"), result.get("config_epoch")
        rank = (epoch or 0, serial) if isinstance(serial, int) else None
        answers[name] = Answer(node=name, answered=True, rank=rank, master=ssconf.get("master_node"),
                               sees_master=result.get("probe_reachable"))
    return answers


def _fetch(ctx: Context, config: Config, node: str) -> Config:
    try:
        data = ctx.rpc.call(ctx.endpoint(config.nodes[node], config), "config_read", {})["config"]
    except RpcError as exc:
        raise PrerequisiteError(f"{node} holds a newer config but it could not be fetched: {exc}") from None
    return Config.from_dict(data, source=f"config from {node}")


def _local_config(ctx: Context) -> Config:
    if not ctx.store.exists():
        ssconf = ctx.store.load_ssconf()
        if ssconf:
            raise PrerequisiteError(f"{ctx.local_node} holds no copy of the config of cluster "
                                    f"{ssconf.get('cluster_name')!r}: it is not a master candidate, so it cannot "
                                    f"take over (candidates: {', '.join(ssconf.get('master_candidates') or [])})")
        raise PrerequisiteError(f"no cluster is known on {ctx.local_node}")
    return ctx.store.load()


def _fill_host_keys(ctx: Context, config: Config) -> List[str]:
    """Record the SSH host keys of nodes that have none in the config (a master of a cluster
    initialised before the master's own key was recorded) from this node's known_hosts."""
    filled = []
    for node in config.nodes.values():
        if not node.ssh_host_keys:
            port = ctx.endpoint(node, config).port
            node.ssh_host_keys = known_host_keys(ctx.known_hosts, [node.name, node.primary_ip], port)
            if node.ssh_host_keys:
                filled.append(node.name)
    return filled


def failover(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    spec = validate_spec(spec)
    locks = ctx.locks("master_failover")
    with locks.cluster():
        config = _local_config(ctx)
        _fill_host_keys(ctx, config)
        answers = gather(ctx, config, probe_master=config.cluster.master_node != ctx.local_node)
        ahead = newest(ctx.local_node, config_rank(config.to_dict()), answers)
        if ahead is not None:
            config = _fetch(ctx, config, ahead)
            _fill_host_keys(ctx, config)
            if config.cluster.master_node != ctx.local_node and config.cluster.master_node not in answers:
                answers.update(gather(ctx, config, probe_master=True))
        decision = decide(config, ctx.local_node, answers, spec["no_voting"])
        decision.newest_from = ahead
        if decision.reasons:
            raise PrerequisiteError("master failover to " + ctx.local_node + " refused: " + "; ".join(decision.reasons))
        if config.cluster.master_node == ctx.local_node:
            return _resync(ctx, config, answers, ahead)
        return _takeover(ctx, config, answers, decision)


def _view(config: Config) -> Dict[str, Any]:
    return {"master_node": config.cluster.master_node, "master_epoch": config.cluster.master_epoch,
            "master_ip": config.cluster.master_ip, "master_netdev": config.cluster.master_netdev}


def _votes(answers: Dict[str, Answer]) -> List[Dict[str, Any]]:
    return [{"node": a.node, "answered": a.answered, "serial": a.rank[1] if a.rank else None,
             "master_epoch": a.rank[0] if a.rank else None, "master": a.master, "sees_master": a.sees_master,
             "error": a.error} for _name, a in sorted(answers.items())]


def _takeover(ctx: Context, config: Config, answers: Dict[str, Answer], decision: Decision) -> Dict[str, Any]:
    old = decision.old_master
    after = config.copy()
    after.cluster.master_node = ctx.local_node
    after.cluster.master_epoch += 1
    after.cluster.mtime = now()
    ctx.warnings.extend(decision.warnings)
    result: Dict[str, Any] = {
        "changed": True, "master_node": ctx.local_node, "old_master": old, "votes": _votes(answers),
        "fetched_config_from": decision.newest_from, "no_voting": bool(decision.warnings),
        "diff": diff_dict(_view(config), _view(after)),
        "msg": f"{ctx.local_node} would take over as master from {old}"}
    if ctx.check_mode:
        return result
    with ctx.job("master_failover", {"old_master": old, "new_master": ctx.local_node}):
        ctx.store.save(after)
        failures = ctx.replicate(after, ssconf_changed=True)
        _master_ip(ctx, after, ctx.local_node, add=True)
    result["serial_no"] = after.serial_no
    result["unreachable_nodes"] = sorted(failures)
    result["msg"] = f"{ctx.local_node} took over as master from {old} (master epoch {after.cluster.master_epoch})"
    return result


def _master_ip(ctx: Context, config: Config, node: str, add: bool) -> bool:
    """Add (on the master) or remove (elsewhere) the floating IP; whether it changed."""
    if not config.cluster.master_ip or not config.cluster.master_netdev:
        return False
    args = {"ip": config.cluster.master_ip, "netdev": config.cluster.master_netdev}
    verb = "master_ip_add" if add else "master_ip_remove"
    try:
        return bool(ctx.rpc.call(ctx.endpoint(config.nodes[node], config), verb, args).get("changed"))
    except RpcError as exc:
        if add:
            raise PrerequisiteError(f"the master IP {config.cluster.master_ip} could not be configured on "
                                    f"{node}: {exc}") from None
        ctx.warnings.append(f"the master IP could not be removed from {node}: {exc}")
        return False


def configure_master_ip(ctx: Context, before: Optional[Config], after: Config) -> bool:
    """Put the floating IP on the master, taking an old address off first when it changed
    (cluster init and modify call this)."""
    changed = False
    master = after.cluster.master_node
    if before is not None and (before.cluster.master_ip, before.cluster.master_netdev) != (
            after.cluster.master_ip, after.cluster.master_netdev):
        changed = _master_ip(ctx, before, master, add=False)
    return _master_ip(ctx, after, master, add=True) or changed


def _stale(config: Config, answers: Dict[str, Answer]) -> List[str]:
    """Answering nodes whose config copy or ssconf is behind this master's."""
    rank = config_rank(config.to_dict())
    candidates = set(config.master_candidates())
    stale = []
    for name, answer in sorted(answers.items()):
        if not answer.answered:
            continue
        if (name in candidates and answer.rank != rank) or answer.master != config.cluster.master_node:
            stale.append(name)
    return stale


def _resync(ctx: Context, config: Config, answers: Dict[str, Answer], ahead: Optional[str]) -> Dict[str, Any]:
    """On the master: push config and ssconf to the nodes that are behind; master IP here only."""
    stale = _stale(config, answers)
    unreachable = sorted(n for n, a in answers.items() if not a.answered)
    for name in unreachable:
        ctx.warnings.append(f"{name} does not answer; it is re-synchronised when this runs again after it is back")
    result: Dict[str, Any] = {"changed": bool(stale), "master_node": ctx.local_node, "old_master": None,
                              "votes": _votes(answers), "resynced": stale, "unreachable_nodes": unreachable,
                              "fetched_config_from": ahead, "no_voting": False,
                              "diff": diff_dict({"stale_nodes": stale}, {"stale_nodes": []})}
    if ctx.check_mode:
        result["msg"] = (f"{ctx.local_node} is the master; would re-synchronise {', '.join(stale)}" if stale
                         else f"{ctx.local_node} is already the master and every answering node agrees")
        return result
    ip_changed = False
    with ctx.job("master_resync", {"nodes": stale}):
        if stale:
            # Their copies rank below this one (an earlier master epoch), so they accept it.
            ctx.replicate(config, ssconf_changed=True)
            for name in stale:
                ip_changed = _master_ip(ctx, config, name, add=False) or ip_changed
        ip_changed = _master_ip(ctx, config, ctx.local_node, add=True) or ip_changed
    result["changed"] = bool(stale) or ip_changed
    result["serial_no"] = config.serial_no
    result["msg"] = (f"{ctx.local_node} is the master; re-synchronised {', '.join(stale)}" if stale
                     else f"{ctx.local_node} is already the master and every answering node agrees")
    return result
