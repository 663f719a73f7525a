"""gnt-cluster init / modify / destroy as one declarative op."""

import contextlib
import copy
import ipaddress
import os
from typing import Any, ContextManager, Dict, Iterable, Optional

from .. import crypto, names
from .. import validate as node_checks
from ..config import (DEFAULT_HVPARAMS, DISK_TEMPLATES, HYPERVISORS, Cluster, Config, Node, NodeGroup,
                      new_uuid, now)
from ..errors import PrerequisiteError, RpcError, ValidationError
from ..jobs import Job
from ..rpc import known_host_keys
from . import repair_tags, storage_check
from .common import Context, diff_dict, require
from .master import configure_master_ip
from .phases import LockDecl, Operation, commit

# Parameters an operator may declare; None means "not declared, keep".
MODIFIABLE = ("master_ip", "master_netdev", "enabled_hypervisors", "enabled_disk_templates", "volume_group",
              "file_storage_dir", "shared_file_storage_dir", "mac_prefix", "hvparams", "beparams", "nicparams",
              "diskparams", "ndparams", "ipolicy", "candidate_pool_size", "default_iallocator", "tags",
              "ssh_key_file")
DICT_PARAMS = ("hvparams", "beparams", "nicparams", "diskparams", "ndparams", "ipolicy")

BEPARAM_KEYS = {"maxmem", "minmem", "vcpus", "auto_balance", "spindle_use"}
NICPARAM_KEYS = {"mode", "link", "vlan"}
NDPARAM_KEYS = {"spindle_count", "exclusive_storage", "ssh_port"}
IPOLICY_KEYS = {"minmax", "std", "disk-templates", "vcpu-ratio", "spindle-ratio"}
ISPEC_KEYS = {"memory-size", "cpu-count", "disk-count", "disk-size", "nic-count", "spindle-use"}


def validate_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Check every declared parameter; return the normalised spec. Touches nothing."""
    out = dict(spec)
    names.check_hostname(spec.get("name"), "cluster name")
    if spec.get("renew_crypto") is not None and not isinstance(spec["renew_crypto"], bool):
        raise ValidationError(f"renew_crypto must be true or false, got {spec['renew_crypto']!r}")
    if spec.get("master_ip") is not None:
        out["master_ip"] = _ip(spec["master_ip"], "master_ip")
    if spec.get("master_netdev") is not None:
        names.check_ifname(spec["master_netdev"], "master_netdev")
    if out.get("master_ip") is not None and ipaddress.ip_address(out["master_ip"]).is_loopback:
        raise ValidationError(f"master_ip {out['master_ip']} is a loopback address; the floating cluster IP must "
                              "be reachable from the other nodes")
    for key, allowed in (("enabled_hypervisors", HYPERVISORS), ("enabled_disk_templates", DISK_TEMPLATES)):
        if spec.get(key) is not None:
            values = spec[key]
            if not isinstance(values, list) or not values:
                raise ValidationError(f"{key} must be a non-empty list, one or more of {list(allowed)}")
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValidationError(f"{key}: {bad} not supported; valid: {list(allowed)}")
            out[key] = list(dict.fromkeys(values))  # keep order (first = default), drop repeats
    if spec.get("volume_group") is not None:
        names.check_vg(spec["volume_group"])
    for key in ("file_storage_dir", "shared_file_storage_dir", "ssh_key_file"):
        if spec.get(key) is not None:
            names.check_abs_path(spec[key], key)
    if spec.get("mac_prefix") is not None:
        out["mac_prefix"] = names.check_mac_prefix(spec["mac_prefix"])
    if spec.get("candidate_pool_size") is not None and (
            not isinstance(spec["candidate_pool_size"], int) or spec["candidate_pool_size"] < 1):
        raise ValidationError(f"candidate_pool_size {spec['candidate_pool_size']!r} must be an integer >= 1")
    if spec.get("default_iallocator") is not None:
        names.check_simple(spec["default_iallocator"], "default_iallocator")
    if spec.get("tags") is not None:
        out["tags"] = sorted(set(names.check_tag(t) for t in spec["tags"]))
        repair_tags.check_tags(out["tags"])
    if spec.get("hvparams") is not None:
        hvparams = spec["hvparams"]
        if not isinstance(hvparams, dict):
            raise ValidationError("hvparams must be a mapping of hypervisor name to parameters")
        for hv, params in hvparams.items():
            if hv not in HYPERVISORS:
                raise ValidationError(f"hvparams: unknown hypervisor {hv!r}; valid: {list(HYPERVISORS)}")
            _keys(f"hvparams.{hv}", params, set(DEFAULT_HVPARAMS[hv]))
    for key, known in (("beparams", BEPARAM_KEYS), ("nicparams", NICPARAM_KEYS), ("ndparams", NDPARAM_KEYS)):
        if spec.get(key) is not None:
            _keys(key, spec[key], known)
    if spec.get("diskparams") is not None and (
            not isinstance(spec["diskparams"], dict) or any(t not in DISK_TEMPLATES for t in spec["diskparams"])):
        raise ValidationError(f"diskparams must be keyed by disk template, one of {list(DISK_TEMPLATES)}")
    if spec.get("ipolicy") is not None:
        _check_ipolicy(spec["ipolicy"])
    return out


def _ip(value: Any, key: str) -> str:
    import netaddr

    try:
        return str(netaddr.IPAddress(str(value), flags=netaddr.INET_PTON))
    except (netaddr.AddrFormatError, ValueError):
        raise ValidationError(f"{key} {value!r} is not an IP address") from None


def _keys(where: str, params: Any, allowed: Iterable[str]) -> None:
    if not isinstance(params, dict):
        raise ValidationError(f"{where} must be a mapping")
    allowed = set(allowed)
    bad = sorted(set(params) - allowed)
    if bad:
        raise ValidationError(f"{where}: unknown parameters {bad}; valid: {sorted(allowed)}")


def _check_ipolicy(ipolicy: Any) -> None:
    _keys("ipolicy", ipolicy, IPOLICY_KEYS)
    for i, pair in enumerate(ipolicy.get("minmax", [])):
        _keys(f"ipolicy.minmax[{i}]", pair, {"min", "max"})
        for bound in ("min", "max"):
            _keys(f"ipolicy.minmax[{i}].{bound}", pair.get(bound, {}), ISPEC_KEYS)
        for key in ISPEC_KEYS:
            low, high = pair.get("min", {}).get(key), pair.get("max", {}).get(key)
            if low is not None and high is not None and low > high:
                raise ValidationError(f"ipolicy.minmax[{i}]: min {key} {low} is above max {high}")
    if "std" in ipolicy:
        _keys("ipolicy.std", ipolicy["std"], ISPEC_KEYS)
    if "disk-templates" in ipolicy:
        bad = [t for t in ipolicy["disk-templates"] if t not in DISK_TEMPLATES]
        if bad:
            raise ValidationError(f"ipolicy.disk-templates: {bad} unknown; valid: {list(DISK_TEMPLATES)}")


def cluster_view(config: Optional[Config]) -> Optional[Dict[str, Any]]:
    """The cluster parameters as the module returns and diffs them."""
    if config is None:
        return None
    view = copy.deepcopy(config.to_dict()["cluster"])
    for key in ("uuid", "ctime", "mtime"):
        view.pop(key, None)
    return view


def merge_declared(cluster: Cluster, spec: Dict[str, Any]) -> None:
    """Apply declared parameters; dict parameters merge key by key (as gnt-cluster modify)."""
    for key in MODIFIABLE:
        value = spec.get(key)
        if value is None:
            continue
        if key in DICT_PARAMS:
            current = getattr(cluster, key)
            if key == "hvparams":
                for hv, params in value.items():
                    current.setdefault(hv, {}).update(params)
            elif key == "diskparams":
                for template, params in value.items():
                    current.setdefault(template, {}).update(params)
            else:
                current.update(value)
        else:
            setattr(cluster, key, value)


def present(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    spec = validate_spec(spec)
    locks = ctx.locks(f"cluster op on {spec['name']}")
    # init runs before any cluster (or lock level) exists: the cluster lock alone serialises two inits
    with locks.cluster():
        if not ctx.store.exists():
            return _init(ctx, spec)
        held = ctx.store.load()
        if held.cluster.master_node != ctx.local_node:
            raise PrerequisiteError(
                f"{ctx.local_node} already belongs to cluster {held.cluster.name!r} (master "
                f"{held.cluster.master_node}): modify that cluster on its master, or remove this node from "
                "it before initialising another cluster")
    return ClusterModify(ctx, spec).run()


def _init(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    master = spec.get("master_node") or ctx.local_node
    require(master == ctx.local_node,
            f"master_node {master!r} must be the node this runs on ({ctx.local_node}): "
            "delegate the task to the intended master")
    ssconf = ctx.store.load_ssconf()
    if ssconf:
        raise PrerequisiteError(
            f"{ctx.local_node} already belongs to cluster {ssconf.get('cluster_name')!r} "
            f"(master {ssconf.get('master_node')}); remove it from that cluster first")
    primary_ip = spec.get("primary_ip")
    require(bool(primary_ip), "primary_ip of the master node is required to initialise a cluster")
    primary_ip = _ip(primary_ip, "primary_ip")
    secondary_ip = _ip(spec.get("secondary_ip") or primary_ip, "secondary_ip")
    stamp = now()
    cluster = Cluster(name=spec["name"], uuid=new_uuid(), master_node=master, ctime=stamp, mtime=stamp)
    # a new cluster confines QEMU to the node's uid pool unless it declares otherwise
    cluster.hvparams["kvm"]["security_model"] = NEW_CLUSTER_SECURITY_MODEL
    merge_declared(cluster, spec)
    node_checks.cluster_values(Config(cluster=cluster))
    require(cluster.default_iallocator == "herd" or bool(cluster.default_iallocator), "default_iallocator is empty")
    node = Node(name=master, uuid=new_uuid(), primary_ip=primary_ip, secondary_ip=secondary_ip,
                master_candidate=True, ctime=stamp, mtime=stamp)
    # Recorded like any node's, so a candidate that takes over can still reach this one.
    node.ssh_host_keys = known_host_keys(ctx.known_hosts, [master, primary_ip])
    config = Config(cluster=cluster, nodes={master: node},
                    nodegroups={"default": NodeGroup(name="default", uuid=new_uuid())})
    endpoint = ctx.endpoint(node, config)
    # The master's own agent must answer (version check) and own the addresses.
    facts = _master_facts(ctx, endpoint, cluster)
    for label, ip in (("primary_ip", primary_ip), ("secondary_ip", secondary_ip)):
        require(ip in facts.get("addresses", []),
                f"{label} {ip} is not configured on {master} (it has {facts.get('addresses', [])})")
    storage_check.require_storage("cluster init", master, cluster, facts, ctx.warnings)
    if "kvm" in cluster.enabled_hypervisors and not facts.get("qemu_version"):
        ctx.warnings.append(f"{master}: kvm is enabled but qemu-system-x86_64 is not installed there")
    result: Dict[str, Any] = {"changed": True, "cluster": cluster_view(config),
                              "diff": diff_dict(None, cluster_view(config)),
                              "msg": f"cluster {cluster.name} would be initialised with master {master}"}
    if ctx.check_mode:
        return result
    with ctx.job("cluster_init", _public(spec)):
        # the CA first: a master that cannot hold the certificates gets no config either
        ca_key, ca_cert = crypto.new_ca(cluster.name, cluster.uuid)
        failed = install_node_crypto(ctx, config, [node], ca_key, ca_cert)
        if failed:
            raise PrerequisiteError(f"cannot install the cluster's migration certificates on {master}: "
                                    f"{failed[master]}")
        result["crypto"] = {"ca_fingerprint": crypto.fingerprint(ca_cert), "nodes": [master]}
        ctx.store.save(config)
        configure_master_ip(ctx, None, config)
    result["cluster"] = cluster_view(config)
    result["diff"]["after"] = result["cluster"]
    result["msg"] = f"cluster {cluster.name} initialised with master {master}"
    return result


NEW_CLUSTER_SECURITY_MODEL = "pool"


def _public(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The spec as the job journal records it (no actions)."""
    return {k: v for k, v in spec.items() if k != "renew_crypto"}


def crypto_dir(ctx: Context) -> str:
    """The master's certificate directory (its agent's ``crypto.crypto_dir()``)."""
    return os.path.join(ctx.store.state_dir, "crypto")


def install_node_crypto(ctx: Context, config: Config, nodes: Iterable[Node], ca_key: str,
                        ca_cert: str) -> Dict[str, str]:
    """Sign a certificate for each node and install it there (the CA key too on master candidates),
    in one parallel round. Returns {node: error} for the nodes that did not take it."""
    candidates = set(config.master_candidates()) | {config.cluster.master_node}
    calls = []
    for node in nodes:
        key, cert = crypto.node_certificate(ca_key, ca_cert, node.name, [node.primary_ip, node.secondary_ip],
                                            config.cluster.uuid)
        args = {"ca_cert": ca_cert, "cert": cert, "key": key}
        if node.name in candidates:
            args["ca_key"] = ca_key
        calls.append((ctx.endpoint(node, config), "crypto_install", args))
    return {name: str(answer) for name, answer in ctx.rpc.call_many(calls).items() if isinstance(answer, RpcError)}


def renew_crypto(ctx: Context, config: Config) -> Dict[str, Any]:
    """A new cluster CA and node certificates on every online node (gnt-cluster renew-crypto).

    Running QEMUs keep what they loaded: a migration target loads the new
    certificates when it starts, a source at each migration, so migrations
    between nodes that both took the new certificates work at once.
    """
    ca_key, ca_cert = crypto.new_ca(config.cluster.name, config.cluster.uuid)
    online = [n for n in sorted(config.nodes.values(), key=lambda n: n.name) if not n.offline]
    failed = install_node_crypto(ctx, config, online, ca_key, ca_cert)
    if config.cluster.master_node in failed:
        raise PrerequisiteError(f"cannot install the new certificates on the master: "
                                f"{failed[config.cluster.master_node]}")
    for name, error in sorted(failed.items()):
        ctx.warnings.append(f"{name} did not take the new migration certificates ({error}); migrations to and "
                            "from it fail until renew_crypto runs again")
    offline = sorted(n.name for n in config.nodes.values() if n.offline)
    if offline:
        ctx.warnings.append(f"offline nodes {offline} keep the old certificates; run renew_crypto again "
                            "once they are back")
    return {"ca_fingerprint": crypto.fingerprint(ca_cert),
            "nodes": [n.name for n in online if n.name not in failed], "failed": sorted(failed)}


def _master_facts(ctx: Context, endpoint: Any, cluster: Cluster) -> Dict[str, Any]:
    try:
        return ctx.rpc.call(endpoint, "node_facts", storage_check.facts_args(cluster))
    except RpcError as exc:
        raise PrerequisiteError(str(exc)) from None


class ClusterModify(Operation):
    """gnt-cluster modify (and renew-crypto) on an existing cluster, in phases (``phases.Operation``).
    ``spec`` is validated by ``validate_spec`` already."""

    opcode = "cluster_modify"

    def check_arguments(self) -> None:
        self.renew = bool(self.spec.get("renew_crypto"))
        self.declared = self.spec
        self.spec = _public(self.spec)  # what the job journal records

    def declare_locks(self, config: Config) -> LockDecl:
        # every node shared, as Ganeti's cluster modify (none is removed while its certificates are
        # renewed), and the node-allocation lock: no instance is placed under the old policy meanwhile,
        # and two modifies or renewals run one after the other
        return LockDecl(node_alloc=True, nodes=sorted(config.nodes), shared_nodes=True)

    def _apply(self, config: Config) -> Config:
        """``config`` with the declared values merged in, checked against its instances."""
        after = config.copy()
        merge_declared(after.cluster, self.declared)
        _check_modify(config, after)
        return after

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        spec = self.declared
        if config.cluster.name != spec["name"]:
            raise PrerequisiteError(f"this node is the master of cluster {config.cluster.name!r}, not "
                                    f"{spec['name']!r}; renaming a cluster is not supported")
        if spec.get("master_node") and spec["master_node"] != config.cluster.master_node:
            raise PrerequisiteError(f"the master is {config.cluster.master_node}; the cluster module does not move "
                                    f"it: run herd.cluster.master_failover on {spec['master_node']} (a master "
                                    f"candidate), which takes over once {config.cluster.master_node} is down")
        before = cluster_view(config)
        after = cluster_view(self._apply(config))
        self.modified = before != after
        if not self.modified and not self.renew:
            return {"changed": False, "cluster": before, "diff": diff_dict(before, after),
                    "msg": f"cluster {config.cluster.name} already matches"}
        self.done = ("modified and its certificates renewed" if self.modified else "certificates renewed") \
            if self.renew else "modified"
        return {"changed": True, "cluster": after, "diff": diff_dict(before, after),
                "msg": f"cluster {config.cluster.name} would be {self.done}"}

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        after_config = config
        if self.modified:
            def change(fresh: Config) -> None:
                # the checks again on the newest config: an instance created meanwhile counts
                merged = self._apply(fresh)
                merged.cluster.mtime = now()
                fresh.cluster = merged.cluster

            after_config = commit(self.ctx, self.locks, change, what="cluster modify")
        if self.renew:
            result["crypto"] = renew_crypto(self.ctx, after_config)
        if self.modified:
            configure_master_ip(self.ctx, config, after_config)
        result["msg"] = f"cluster {config.cluster.name} {self.done}"


def _check_modify(before: Config, after: Config) -> None:
    node_checks.cluster_values(after)  # what every node will check, for the cluster and each instance
    used_templates = {i.disk_template for i in before.instances.values()}
    dropped = used_templates - set(after.cluster.enabled_disk_templates)
    if dropped:
        in_use = {t: sorted(i.name for i in before.instances.values() if i.disk_template == t) for t in dropped}
        raise PrerequisiteError(f"cannot disable disk templates still in use: {in_use}")
    used_hvs = {i.hypervisor for i in before.instances.values()}
    dropped = used_hvs - set(after.cluster.enabled_hypervisors)
    if dropped:
        raise PrerequisiteError(f"cannot disable hypervisors still in use: {sorted(dropped)}")
    if before.cluster.volume_group != after.cluster.volume_group and any(
            i.disk_template in ("plain", "drbd") for i in before.instances.values()):
        raise PrerequisiteError("cannot change volume_group while instances have LVM disks in "
                                f"{before.cluster.volume_group}")
    # file disks and cloud-init seeds are found under these directories: moving the setting
    # would leave every such instance pointing nowhere
    for key, template in (("file_storage_dir", "file"), ("shared_file_storage_dir", "sharedfile")):
        if getattr(before.cluster, key) != getattr(after.cluster, key):
            users = sorted(i.name for i in before.instances.values() if _uses_dir(i, template))
            if users:
                raise PrerequisiteError(f"cannot change {key} from {getattr(before.cluster, key)} to "
                                        f"{getattr(after.cluster, key)} while instances keep files there: "
                                        f"{users}; remove them first")


def _uses_dir(inst: Any, template: str) -> bool:
    """Whether ``inst`` keeps files in ``template``'s storage directory (disks, or its cloud-init
    seed, which lives in the file directory unless the instance is sharedfile)."""
    if inst.disk_template == template:
        return True
    return template == "file" and inst.os == "cloud_init" and inst.disk_template != "sharedfile"


def absent(ctx: Context, spec: Dict[str, Any], remove_instance: Any = None) -> Dict[str, Any]:
    """Destroy the cluster: every node forgets it. Refused while instances exist unless force.

    With force, each instance is removed first through the instance op (which
    takes its own locks), then the cluster lock is taken for the destroy.
    """
    name = names.check_hostname(spec.get("name"), "cluster name")
    if not ctx.store.exists():
        ssconf = ctx.store.load_ssconf()
        if ssconf and ssconf.get("cluster_name") == name and ssconf.get("master_node") != ctx.local_node:
            raise PrerequisiteError(f"run this on the master of {name}, {ssconf.get('master_node')}")
        return {"changed": False, "cluster": None, "diff": diff_dict(None, None), "msg": f"no cluster {name} here"}
    return ClusterDestroy(ctx, dict(spec, name=name), remove_instance).run()


class ClusterDestroy(Operation):
    """gnt-cluster destroy. Its instances (with force) are removed by the instance operation,
    each under its own locks, as member operations; the destroy itself runs under the config lock
    and journals its own job after them."""

    opcode = "cluster_destroy"

    def __init__(self, ctx: Context, spec: Dict[str, Any], remove_instance: Any):
        super().__init__(ctx, spec)
        self.remove_instance = remove_instance

    def check_arguments(self) -> None:
        self.name = self.spec["name"]
        self.locks = self.ctx.locks(f"cluster destroy {self.name}")

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        name = self.name
        if config.cluster.name != name:
            raise PrerequisiteError(f"this node is the master of cluster {config.cluster.name!r}, not {name!r}")
        self.instances = sorted(config.instances)
        if self.instances and not self.spec.get("force"):
            raise PrerequisiteError(f"cluster {name} still has instances {self.instances}; remove them first or "
                                    "set force: true (which removes them, disks included)")
        if self.instances and self.remove_instance is None:
            raise PrerequisiteError("instance removal is not available in this build")
        return {"changed": True, "cluster": None, "diff": diff_dict(cluster_view(config), None),
                "removed_instances": self.instances, "msg": f"cluster {name} would be destroyed"}

    def open_job(self) -> ContextManager[Any]:
        return contextlib.nullcontext()  # the removals journal themselves, then the destroy its own job

    def execute(self, job: Any, config: Config, result: Dict[str, Any]) -> None:
        ctx, name = self.ctx, self.name
        for inst in self.instances:
            self.remove_instance(ctx, inst)
        with self.locks.cluster(), ctx.job(self.opcode, self.spec):
            config = ctx.load_master_config()
            if config.instances:
                raise PrerequisiteError(f"instances {sorted(config.instances)} appeared meanwhile; destroy again")
            others = [n for n in config.nodes.values() if n.name != config.cluster.master_node and not n.offline]
            answers = ctx.rpc.call_many([(ctx.endpoint(n, config), "cluster_leave", {"cluster_name": name})
                                         for n in others])
            for answer in answers.values():
                if isinstance(answer, RpcError):
                    ctx.warnings.append(f"node did not forget the cluster: {answer}")
            for path in (ctx.store.path, ctx.store.ssconf_path):
                if os.path.exists(path):
                    os.unlink(path)
        result["msg"] = f"cluster {name} destroyed"
