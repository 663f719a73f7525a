"""gnt-node add / modify / remove as one declarative op: three operations (phases.Operation)."""

from typing import Any, Dict, Optional

from .. import names
from ..config import Config, Node, NodeGroup, new_uuid, now
from ..errors import PrerequisiteError, RpcError, ValidationError
from ..jobs import Job
from ..rpc import Endpoint, known_host_keys
from . import storage_check
from .cluster import _ip, crypto_dir, install_node_crypto
from .common import Context, diff_dict, require
from .phases import LockDecl, Operation, commit

FLAGS = ("master_candidate", "drained", "offline", "vm_capable", "master_capable")


def validate_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(spec)
    names.check_hostname(spec.get("name"))
    for key in ("primary_ip", "secondary_ip"):
        if spec.get(key) is not None:
            out[key] = _ip(spec[key], key)
    for key in FLAGS:
        if spec.get(key) is not None and not isinstance(spec[key], bool):
            raise ValidationError(f"{key} must be true or false, got {spec[key]!r}")
    if spec.get("group") is not None:
        names.check_simple(spec["group"], "node group")
    if spec.get("tags") is not None:
        out["tags"] = sorted(set(names.check_tag(t) for t in spec["tags"]))
    if spec.get("ssh_port") is not None and (
            not isinstance(spec["ssh_port"], int) or not 0 < spec["ssh_port"] < 65536):
        raise ValidationError(f"ssh_port {spec['ssh_port']!r} must be a TCP port number")
    if spec.get("ssh_host_key") is not None:
        out["ssh_host_keys"] = parse_host_key(spec["ssh_host_key"])
    return out


def parse_host_key(text: Any) -> Dict[str, str]:
    """'ssh-ed25519 AAAA... [comment]' -> {'ssh-ed25519': 'AAAA...'}"""
    import base64

    parts = str(text).split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
        raise ValidationError(f"ssh_host_key {text!r} is not a public key line like 'ssh-ed25519 AAAA...'")
    try:
        base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValidationError(f"ssh_host_key: {parts[1][:20]!r}... is not base64") from None
    return {parts[0]: parts[1]}


def node_view(node: Optional[Node]) -> Optional[Dict[str, Any]]:
    if node is None:
        return None
    view = {k: v for k, v in node.__dict__.items() if k not in ("uuid", "ctime", "mtime", "ssh_host_keys")}
    view["ssh_host_key_types"] = sorted(node.ssh_host_keys)
    return view


def present(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    """gnt-node add, or gnt-node modify when the node is already a member."""
    spec = validate_spec(spec)
    op = NodeModify if spec["name"] in ctx.load_master_config().nodes else NodeAdd
    return op(ctx, spec).run()


class NodeOperation(Operation):
    """What node add and modify share: the validated spec, and the node's own lock, exclusive."""

    def check_arguments(self) -> None:
        self.spec = validate_spec(self.spec)
        self.name = self.spec["name"]
        self.locks = self.ctx.locks(f"node op on {self.name}")

    def declare_locks(self, config: Config) -> LockDecl:
        return LockDecl(nodes=[self.name])


class NodeAdd(NodeOperation):
    """gnt-node add: the new node's own lock, exclusive; the node is asked for its facts and
    membership before anything is written, and gets its migration certificate after the commit."""

    opcode = "node_add"

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        ctx, spec, name = self.ctx, self.spec, self.name
        if name in config.nodes:  # added by another job while this one waited for the node's lock
            view = node_view(config.nodes[name])
            return {"changed": False, "node": view, "diff": diff_dict(view, view),
                    "msg": f"node {name} was added meanwhile by another job"}
        primary_ip = spec.get("primary_ip") or ""
        require(bool(primary_ip), f"node add {name}: primary_ip is required")
        secondary_ip = spec.get("secondary_ip") or primary_ip
        _require_free_addresses(config, name, primary_ip, secondary_ip)
        port = spec.get("ssh_port") or config.cluster.ndparams.get("ssh_port", 22)
        host_keys = spec.get("ssh_host_keys") or known_host_keys(ctx.known_hosts, [name, primary_ip], port)
        require(bool(host_keys),
                f"node add {name}: no SSH host key is known for {name} or {primary_ip} in herd's managed block "
                f"of {ctx.known_hosts} (other lines of that file are not trusted); run the herd.cluster.node_base "
                "role on all nodes first (it writes that block) "
                "or pass ssh_host_key; herd never trusts a host key on first use")
        endpoint = Endpoint(name=name, address=primary_ip, port=port, host_keys=host_keys)
        try:
            facts = ctx.rpc.call(endpoint, "node_facts", storage_check.facts_args(config.cluster))
            membership = ctx.rpc.call(endpoint, "cluster_membership", {})
        except RpcError as exc:
            raise PrerequisiteError(f"node add {name}: {exc}; the config is unchanged") from None
        hostname = facts.get("hostname", "")
        require(hostname == name or hostname.split(".")[0] == name.split(".")[0],
                f"node add {name}: the host at {primary_ip} calls itself {hostname!r}, not {name!r}")
        require(secondary_ip in facts.get("addresses", []),
                f"node add {name}: secondary_ip {secondary_ip} is not configured on it "
                f"(it has {facts.get('addresses', [])})")
        if spec.get("vm_capable") is not False:  # a node that hosts no instance needs no disk storage
            storage_check.require_storage(f"node add {name}", name, config.cluster, facts, ctx.warnings)
        theirs = membership.get("ssconf") or {}
        if theirs.get("cluster_name") and theirs.get("cluster_uuid") != config.cluster.uuid:
            raise PrerequisiteError(f"node add {name}: it already belongs to cluster {theirs.get('cluster_name')!r} "
                                    f"(master {theirs.get('master_node')}); remove it from that cluster first")
        stamp = now()
        flags = {key: spec[key] for key in FLAGS if spec.get(key) is not None}
        if "master_candidate" not in flags:
            flags["master_candidate"] = (len(config.master_candidates()) < config.cluster.candidate_pool_size
                                         and flags.get("master_capable", True)
                                         and not flags.get("offline") and not flags.get("drained"))
        node = Node(name=name, uuid=new_uuid(), primary_ip=primary_ip, secondary_ip=secondary_ip,
                    group=spec.get("group") or "default", tags=spec.get("tags") or [], ssh_host_keys=host_keys,
                    ctime=stamp, mtime=stamp, **flags)
        _check_flags(config, node)
        if spec.get("ssh_port"):
            node.ndparams["ssh_port"] = spec["ssh_port"]
        self.node = node
        return {"changed": True, "node": node_view(node), "diff": diff_dict(None, node_view(node)),
                "facts": _summary(facts), "msg": f"node {name} would be added"}

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        node = self.node

        def add(fresh: Config) -> None:
            _require_free_addresses(fresh, node.name, node.primary_ip, node.secondary_ip)
            _check_flags(fresh, node)
            if node.group not in fresh.nodegroups:
                fresh.nodegroups[node.group] = NodeGroup(name=node.group, uuid=new_uuid())
            fresh.nodes[node.name] = node

        with job.step("commit config"):
            config = commit(self.ctx, self.locks, add, what=f"node add {node.name}")
        _install_crypto(self.ctx, config, node)
        result["msg"] = f"node {node.name} added"


def _require_free_addresses(config: Config, name: str, primary_ip: str, secondary_ip: str) -> None:
    for other in config.nodes.values():
        if other.name == name:
            continue
        for label, ip in (("primary_ip", primary_ip), ("secondary_ip", secondary_ip)):
            if ip in (other.primary_ip, other.secondary_ip):
                raise PrerequisiteError(f"node add {name}: {label} {ip} is already used by node {other.name}")


def _install_crypto(ctx: Context, config: Config, node: Node) -> None:
    """The new node's migration certificate, signed by the cluster CA the master holds."""
    from .. import crypto

    try:
        ca_key, ca_cert = crypto.read_ca(crypto_dir(ctx))
    except crypto.CryptoError as exc:
        ctx.warnings.append(f"node {node.name} got no migration certificate: {exc}")
        return
    failed = install_node_crypto(ctx, config, [node], ca_key, ca_cert)
    if failed:
        ctx.warnings.append(f"node {node.name} did not take its migration certificate ({failed[node.name]}); "
                            "migrations to and from it fail until renew_crypto runs")


def _summary(facts: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("hostname", "memory_total", "memory_free", "cpu_count", "kernel", "qemu_version", "kvm", "agent_version")
    return {k: facts.get(k) for k in keys}


def _check_flags(config: Config, node: Node) -> None:
    is_master = node.name == config.cluster.master_node
    if is_master:
        for flag, bad in (("offline", True), ("drained", True), ("master_candidate", False),
                          ("master_capable", False)):
            if getattr(node, flag) == bad:
                raise PrerequisiteError(f"{node.name} is the master: it cannot be {flag}={bad}; "
                                        "fail the master over to another node first")
    if node.master_candidate:
        for flag in ("offline", "drained"):
            if getattr(node, flag):
                raise PrerequisiteError(f"{node.name} cannot be a master candidate while {flag}")
        if not node.master_capable:
            raise PrerequisiteError(f"{node.name} cannot be a master candidate: it is not master_capable")
    if node.offline and node.drained:
        raise PrerequisiteError(f"{node.name}: offline and drained are exclusive (offline already implies no "
                                "new placements)")


class NodeModify(NodeOperation):
    """gnt-node modify: flags, tags, group. The node's own lock, exclusive, so instance
    operations using the node (shared) wait; the change is applied again to the newest config
    at the commit, its rules checked there once more."""

    opcode = "node_modify"

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        spec, name = self.spec, self.name
        node = config.nodes.get(name)
        if node is None:
            raise PrerequisiteError(f"node {name} was removed while this operation waited for its lock")
        before = node_view(node)
        for key in ("primary_ip", "secondary_ip"):
            if spec.get(key) is not None and spec[key] != getattr(node, key):
                raise PrerequisiteError(f"node {name}: changing {key} from {getattr(node, key)} to {spec[key]} "
                                        "is not supported; remove and re-add the node")
        self.declared = {key: spec[key] for key in FLAGS if spec.get(key) is not None}
        changed_node = self._changed(config)
        after = node_view(changed_node)
        if before == after:
            return {"changed": False, "node": before, "diff": diff_dict(before, after),
                    "msg": f"node {name} already matches"}
        if node.offline and not changed_node.offline:
            # Coming back: the node must answer with the right agent before we count on it.
            try:
                self.ctx.rpc.call(self.ctx.endpoint(changed_node, config), "node_facts", {})
            except RpcError as exc:
                raise PrerequisiteError(f"node {name} cannot be brought online: {exc}") from None
        return {"changed": True, "node": after, "diff": diff_dict(before, after),
                "msg": f"node {name} would be modified"}

    def _changed(self, config: Config) -> Node:
        """The node as declared, checked against ``config``'s rules."""
        node = config.nodes[self.name]
        changed_node = Node(**{**node.__dict__})
        changed_node.tags = list(node.tags)
        for key, value in self.declared.items():
            setattr(changed_node, key, value)
        # As Ganeti: going offline or drained demotes from candidate unless the operator said otherwise.
        if (changed_node.offline or changed_node.drained) and "master_candidate" not in self.declared:
            changed_node.master_candidate = False
        if self.spec.get("tags") is not None:
            changed_node.tags = self.spec["tags"]
        group = self.spec.get("group")
        if group and group != node.group:
            holding = config.instances_on(self.name)
            require(not holding, f"node {self.name} holds instances {holding}; move them before changing its group")
            changed_node.group = group
        _check_flags(config, changed_node)
        return changed_node

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        def modify(fresh: Config) -> None:
            changed_node = self._changed(fresh)
            changed_node.mtime = now()
            fresh.nodes[self.name] = changed_node
            if changed_node.group not in fresh.nodegroups:
                fresh.nodegroups[changed_node.group] = NodeGroup(name=changed_node.group, uuid=new_uuid())

        with job.step("commit config"):
            commit(self.ctx, self.locks, modify, nodes=[self.name], what=f"node modify {self.name}")
        result["msg"] = f"node {self.name} modified"


class NodeRemove(Operation):
    """gnt-node remove: the node-allocation lock (no instance is being placed on it) and the
    node's own lock, exclusive."""

    opcode = "node_remove"

    def check_arguments(self) -> None:
        self.name = names.check_hostname(self.spec.get("name"))
        self.locks = self.ctx.locks(f"node remove {self.name}")

    def declare_locks(self, config: Config) -> LockDecl:
        return LockDecl(node_alloc=True, nodes=[self.name])

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        name = self.name
        if name not in config.nodes:
            return {"changed": False, "node": None, "diff": diff_dict(None, None), "msg": f"node {name} is absent"}
        require(name != config.cluster.master_node,
                f"{name} is the master of cluster {config.cluster.name}; it cannot be removed "
                "(fail the master over first, or destroy the cluster)")
        self._require_empty(config)
        self.node = config.nodes[name]
        return {"changed": True, "node": None, "diff": diff_dict(node_view(self.node), None),
                "msg": f"node {name} would be removed"}

    def _require_empty(self, config: Config) -> None:
        holding = config.instances_on(self.name)
        require(not holding, f"node {self.name} still holds instances {holding} (as primary or secondary); "
                "evacuate it first (herd.cluster.node_evacuate)")

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        def remove(fresh: Config) -> None:
            self._require_empty(fresh)
            del fresh.nodes[self.name]

        with job.step("commit config"):
            config = commit(self.ctx, self.locks, remove, what=f"node remove {self.name}")
        if not self.node.offline:
            try:
                self.ctx.rpc.call(self.ctx.endpoint(self.node, config), "cluster_leave",
                                  {"cluster_name": config.cluster.name})
            except RpcError as exc:
                self.ctx.warnings.append(f"{self.name} was removed from the config but could not be told to "
                                         f"forget the cluster: {exc}")
        result["msg"] = f"node {self.name} removed"


def absent(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    return NodeRemove(ctx, spec).run()
