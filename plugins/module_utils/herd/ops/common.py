"""What every operation shares: the context it runs in and the master checks.

An op is a function ``op(ctx, spec) -> dict`` that reads like a Ganeti logical
unit: validate the spec, take locks, load the config and check
prerequisites, plan, then (unless ``ctx.check_mode``) execute with rollback and
commit the config. The returned dict has ``changed``, ``diff`` (before/after)
and op-specific keys; the Ansible module passes it through.
"""

import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..config import STATE_DIR, Config, ConfigStore, Node, config_rank
from ..errors import ConfigError, PrerequisiteError, RpcError
from ..jobs import Job, Journal, Locks
from ..rpc import Endpoint, Rpc

KNOWN_HOSTS = "/root/.ssh/known_hosts"


@dataclass
class Context:
    store: ConfigStore
    journal: Journal
    rpc: Any  # Rpc, or a test double with the same call/call_many
    local_node: str
    check_mode: bool = False
    lock_timeout: float = 60.0
    known_hosts: str = KNOWN_HOSTS
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def on_this_node(cls, check_mode: bool = False, state_dir: str = STATE_DIR, lock_timeout: float = 60.0,
                     key_file: Optional[str] = None, rpc_timeout: float = 120.0) -> "Context":
        local = socket.gethostname()
        store = ConfigStore(state_dir)
        if key_file is None:
            key_file = "/root/.ssh/id_herd_cluster"
            if store.exists():
                try:
                    key_file = store.load().cluster.ssh_key_file
                except ConfigError:
                    pass
        return cls(store=store, journal=Journal(state_dir),
                   rpc=Rpc(key_file=key_file, local_node=local, timeout=rpc_timeout),
                   local_node=local, check_mode=check_mode, lock_timeout=lock_timeout)

    def locks(self, holder: str) -> Locks:
        return Locks(self.store.state_dir, holder, timeout=self.lock_timeout)

    def endpoint(self, node: Node, config: Optional[Config] = None) -> Endpoint:
        port = int(node.ndparams.get("ssh_port") or (config.cluster.ndparams.get("ssh_port", 22) if config else 22))
        return Endpoint(name=node.name, address=node.primary_ip, port=port, host_keys=dict(node.ssh_host_keys))

    def load_master_config(self, ask_candidates: bool = True) -> Config:
        """The config, if this node is the master; otherwise a clear error naming the master.
        ``ask_candidates`` false: the operation asked them a moment ago (``phases.Operation``)."""
        if not self.store.exists():
            ssconf = self.store.load_ssconf()
            if ssconf and ssconf.get("master_node") and ssconf.get("master_node") != self.local_node:
                raise PrerequisiteError(
                    f"{self.local_node} is not the master of cluster {ssconf.get('cluster_name')!r}: "
                    f"run this on the master, {ssconf['master_node']}")
            raise PrerequisiteError(f"no cluster is initialised on {self.local_node} "
                                    "(run herd.cluster.cluster with state=present first)")
        config = self.store.load()
        if config.cluster.master_node != self.local_node:
            raise PrerequisiteError(f"{self.local_node} holds a copy of the config of cluster "
                                    f"{config.cluster.name!r} but is not its master: run this on the master, "
                                    f"{config.cluster.master_node}")
        # A master that was cut off and replaced still names itself: the newest ssconf of the
        # other candidates decides.
        replaced = newer_master(self, config) if ask_candidates else None
        if replaced is not None:
            raise PrerequisiteError(
                f"{self.local_node} is no longer the master of cluster {config.cluster.name!r}: {replaced[0]} holds "
                f"a newer config naming {replaced[1]} as master. Run this on {replaced[1]}; running "
                f"herd.cluster.master_failover there re-synchronises this node")
        return config

    @contextmanager
    def job(self, opcode: str, params: Dict[str, Any]) -> Iterator[Job]:
        """A journal entry for a state-changing op; rolled back and marked error on failure."""
        job = self.journal.open(opcode, params)
        job.start()
        try:
            yield job
        except BaseException as exc:
            problems = job.rollback()
            message = str(exc) or type(exc).__name__
            if problems:
                message += "; rollback problems: " + "; ".join(problems)
            job.fail(message)
            raise
        if job.data["status"] == "running":
            job.finish()

    def replicate(self, config: Config, ssconf_changed: bool = True) -> Dict[str, str]:
        """Push the config to every master candidate (their ssconf follows it) and, when
        the ssconf changed, the ssconf to every other online node. One parallel round.

        Returns {node: error} for the nodes that could not be updated; those
        show in cluster_verify until the next successful push.
        """
        failures: Dict[str, str] = {}
        candidates = set(config.master_candidates())
        calls = []
        data = config.to_dict()
        ssconf = config.ssconf()
        for node in sorted(config.nodes.values(), key=lambda n: n.name):
            if node.offline or node.name == config.cluster.master_node:
                continue  # the master wrote its own files in ConfigStore.save
            if node.name in candidates:
                calls.append((self.endpoint(node, config), "config_write", {"config": data}))
            elif ssconf_changed:
                calls.append((self.endpoint(node, config), "ssconf_write", {"ssconf": ssconf}))
        for name, result in self.rpc.call_many(calls).items():
            if isinstance(result, RpcError):
                failures[name] = str(result)
                self.warnings.append(f"could not update {name}: {result}")
        return failures

    def commit(self, config: Config) -> None:
        """Save (serial+1) and replicate: call with the cluster lock held."""
        self.replicate(config, self.store.save(config))


def diff_dict(before: Any, after: Any) -> Dict[str, Any]:
    return {"before": before, "after": after}


def require(condition: bool, message: str) -> None:
    if not condition:
        raise PrerequisiteError(message)


def newer_master(ctx: Context, config: Config) -> Optional[Tuple[str, str]]:
    """(node, master it names) of a master candidate holding a newer config that names another
    master: this node was master once and has been replaced while it was away."""
    # The master's own agent is asked too (its answer is not needed): its session then starts
    # in this parallel round instead of at the operation's first local call.
    calls: List[Tuple[Endpoint, str, Dict[str, Any]]] = [
        (ctx.endpoint(node, config), "cluster_membership", {})
        for node in sorted(config.nodes.values(), key=lambda n: n.name)
        if node.name == ctx.local_node or (node.master_candidate and not node.offline)]
    rank = config_rank(config.to_dict())
    for name, result in sorted(ctx.rpc.call_many(calls).items()):
        if isinstance(result, RpcError) or name == ctx.local_node:
            continue
        serial, epoch = result.get("config_serial"), result.get("config_epoch")
        ssconf = result.get("ssconf") if isinstance(result.get("ssconf"), dict) else {}
        master = ssconf.get("master_node")
        if isinstance(serial, int) and (epoch or 0, serial) > rank and master and master != ctx.local_node:
            return name, master
    return None
