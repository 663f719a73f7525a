"""gnt-network add/modify/connect/disconnect/remove as one declarative op, and the IP pool.

A network is an IPv4 subnet (plus an optional IPv6 subnet, which has no pool,
as in Ganeti) with a gateway and external reservations. It is connected to
node groups with the NIC parameters (mode, link, vlan) its NICs get in that
group. ``Network.allocated`` maps every address handed to an instance NIC to
the instance; instance removal frees them (ops/instance.py).

Pool rule: ``ip: pool`` takes the lowest free host address of the subnet; free
means not the gateway, not reserved, not allocated. ``ip: ADDRESS`` takes that
one if it is inside the subnet and free. Addresses are allocated by
``reserve_nics`` on the config loaded under the cluster lock, at commit, so
two creations at once never get the same address.
"""

import ipaddress
from typing import Any, Dict, List, Optional, Tuple

from .. import names, validate
from ..config import DEFAULT_NICPARAMS, Config, Instance, Network, new_uuid
from ..errors import PrerequisiteError, ValidationError
from ..jobs import Job
from .common import Context, diff_dict
from .phases import Operation, commit

POOL = "pool"
NETPARAM_KEYS = ("mode", "link", "vlan")


# --------------------------------------------------------------------------- validation

def _net(value: Any, key: str, version: int) -> str:
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        hint = ""
        try:
            hint = f"; did you mean {ipaddress.ip_network(str(value), strict=False)}?"
        except ValueError:
            pass
        raise ValidationError(f"{key} {value!r} is not an IPv{version} network in CIDR notation ({exc}){hint}") from None
    if net.version != version:
        raise ValidationError(f"{key} {value!r} is an IPv{net.version} network; {key} must be IPv{version}")
    return str(net)


def _addr(value: Any, key: str, subnet: str) -> str:
    net = ipaddress.ip_network(subnet)
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        raise ValidationError(f"{key} {value!r} is not an IP address") from None
    if ip not in net:
        raise ValidationError(f"{key} {ip} is outside the subnet {net}")
    if net.version == 4 and net.prefixlen < 31 and ip in (net.network_address, net.broadcast_address):
        raise ValidationError(f"{key} {ip} is the network or broadcast address of {net}")
    return str(ip)


def validate_netparams(params: Any, where: str) -> Dict[str, Any]:
    if not isinstance(params, dict):
        raise ValidationError(f"{where} must be a mapping with {list(NETPARAM_KEYS)}")
    bad = sorted(set(params) - set(NETPARAM_KEYS) - {"name"})
    if bad:
        raise ValidationError(f"{where}: unknown keys {bad}; valid: {['name', *NETPARAM_KEYS]}")
    out: Dict[str, Any] = {}
    if params.get("mode") is not None:
        # the nodes' own rule: a mode they cannot set up is refused here, not at the first create
        out["mode"] = validate.nic_mode(params["mode"], where)
    if params.get("link") is not None:
        out["link"] = names.check_ifname(params["link"], f"{where} link")
    if params.get("vlan") is not None:
        vlan = params["vlan"]
        if isinstance(vlan, bool) or not isinstance(vlan, int) or not 1 <= vlan <= 4094:
            raise ValidationError(f"{where} vlan {vlan!r} must be an integer from 1 to 4094")
        out["vlan"] = vlan
    return out


def validate_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Check every declared value; the normalised spec. Touches nothing."""
    out: Dict[str, Any] = {"name": names.check_simple(spec.get("name"), "network name"),
                           "state": spec.get("state") or "present"}
    if out["state"] not in ("present", "absent"):
        raise ValidationError(f"state {out['state']!r} must be present or absent")
    if out["state"] == "absent":
        return out
    out["subnet"] = None if spec.get("subnet") is None else _net(spec["subnet"], "subnet", 4)
    out["subnet6"] = None if spec.get("subnet6") is None else _net(spec["subnet6"], "subnet6", 6)
    for key, subnet_key in (("gateway", "subnet"), ("gateway6", "subnet6")):
        out[key] = None
        if spec.get(key) is not None:
            if out[subnet_key] is None:
                raise ValidationError(f"{key} needs {subnet_key}")
            out[key] = _addr(spec[key], key, out[subnet_key])
    out["reserved"] = None
    if spec.get("reserved") is not None:
        if out["subnet"] is None:
            raise ValidationError("reserved addresses need subnet")
        out["reserved"] = sorted({_addr(ip, "reserved address", out["subnet"]) for ip in spec["reserved"]},
                                 key=ipaddress.ip_address)
    out["groups"] = None
    if spec.get("groups") is not None:
        groups: Dict[str, Dict[str, Any]] = {}
        for index, entry in enumerate(spec["groups"]):
            where = f"groups[{index}]"
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict) or not entry.get("name"):
                raise ValidationError(f"{where} must be a group name or a mapping with name, mode, link, vlan")
            group = names.check_simple(entry["name"], f"{where} name")
            if group in groups:
                raise ValidationError(f"{where}: group {group} is listed twice")
            groups[group] = validate_netparams(entry, where)
        out["groups"] = groups
    return out


# --------------------------------------------------------------------------- the op

def network_view(net: Optional[Network]) -> Optional[Dict[str, Any]]:
    if net is None:
        return None
    return {"name": net.name, "subnet": net.subnet, "gateway": net.gateway, "subnet6": net.subnet6,
            "gateway6": net.gateway6, "reserved": list(net.reserved), "groups": dict(sorted(net.groups.items())),
            "allocated": dict(sorted(net.allocated.items(), key=lambda kv: ipaddress.ip_address(kv[0]))),
            "free_count": free_count(net)}


class NetworkOp(Operation):
    """gnt-network add/modify/connect/disconnect/remove, in phases (``phases.Operation``). A
    network is config only: no instance or node lock; the commit re-checks on the newest config."""

    opcode = "network_set"

    def check_arguments(self) -> None:
        self.spec = validate_spec(self.spec)
        self.name = self.spec["name"]
        if self.spec["state"] == "absent":
            self.opcode = "network_remove"

    def _after(self, config: Config) -> Optional[Network]:
        """The network as declared, checked against ``config``; None when it is to be removed."""
        if self.spec["state"] == "absent":
            users = users_of(config, self.name)
            if users:
                raise PrerequisiteError(f"network {self.name} is still used by instances {users}; remove their "
                                        "NICs or the instances first")
            return None
        return _declared(config, config.networks.get(self.name), self.spec)

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        current = config.networks.get(self.name)
        if self.spec["state"] == "absent" and current is None:
            return {"changed": False, "network": None, "diff": diff_dict(None, None),
                    "msg": f"network {self.name} does not exist"}
        before, after = network_view(current), network_view(self._after(config))
        if before == after:
            return {"changed": False, "network": after, "diff": diff_dict(before, after),
                    "msg": f"network {self.name} already matches"}
        self.verb = "removed" if after is None else ("created" if before is None else "modified")
        return {"changed": True, "network": after, "diff": diff_dict(before, after),
                "msg": f"network {self.name} would be {self.verb}"}

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        def change(fresh: Config) -> None:
            # the same checks on the newest config: an instance that took an address meanwhile counts
            declared = self._after(fresh)
            if declared is None:
                fresh.networks.pop(self.name, None)
            else:
                fresh.networks[self.name] = declared

        commit(self.ctx, self.locks, change, what=f"network {self.name}")
        result["msg"] = f"network {self.name} {self.verb}"


def run(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    return NetworkOp(ctx, spec).run()


def _declared(config: Config, current: Optional[Network], spec: Dict[str, Any]) -> Network:
    if current is None:
        if spec["subnet"] is None:
            raise ValidationError(f"network {spec['name']} does not exist yet: subnet is required to create it")
        net = Network(name=spec["name"], uuid=new_uuid(), subnet=spec["subnet"])
    else:
        net = Network(**{**current.__dict__, "reserved": list(current.reserved), "groups": dict(current.groups),
                         "allocated": dict(current.allocated), "tags": list(current.tags)})
        if spec["subnet"] is not None and spec["subnet"] != current.subnet:
            raise PrerequisiteError(f"network {spec['name']} has subnet {current.subnet}; the range of a network "
                                    f"cannot change (declared {spec['subnet']}): create a new network instead")
    for key in ("gateway", "subnet6", "gateway6", "reserved"):
        if spec[key] is not None:
            setattr(net, key, spec[key])
    if net.gateway6 and not net.subnet6:
        raise ValidationError("gateway6 needs subnet6")
    taken = set(net.allocated)
    clash = sorted(taken & (set(net.reserved) | ({net.gateway} if net.gateway else set())), key=ipaddress.ip_address)
    if clash:
        raise PrerequisiteError(f"network {net.name}: {clash} are allocated to instances "
                                f"{sorted({net.allocated[ip] for ip in clash})} and cannot be reserved or the gateway")
    if spec["groups"] is not None:
        unknown = sorted(set(spec["groups"]) - set(config.nodegroups))
        if unknown:
            raise PrerequisiteError(f"node groups {unknown} do not exist; groups: {sorted(config.nodegroups)}")
        dropped = set(net.groups) - set(spec["groups"])
        users = [i.name for i in config.instances.values()
                 if any(n.network == net.name for n in i.nics) and config.nodes[i.primary_node].group in dropped]
        if users:
            raise PrerequisiteError(f"network {net.name} cannot be disconnected from {sorted(dropped)}: instances "
                                    f"{sorted(users)} there use it")
        net.groups = spec["groups"]
    return net


def users_of(config: Config, network: str) -> List[str]:
    return sorted(i.name for i in config.instances.values() if any(n.network == network for n in i.nics))


# --------------------------------------------------------------------------- the pool

def _taken(net: Network) -> set:
    taken = set(net.reserved) | set(net.allocated)
    if net.gateway:
        taken.add(net.gateway)
    return taken


def free_count(net: Network) -> int:
    subnet = ipaddress.ip_network(net.subnet)
    hosts = subnet.num_addresses - (2 if subnet.prefixlen < 31 else 0)
    return hosts - len({ip for ip in _taken(net) if ipaddress.ip_address(ip) in subnet})


def next_free(net: Network) -> str:
    taken = _taken(net)
    for ip in ipaddress.ip_network(net.subnet).hosts():
        if str(ip) not in taken:
            return str(ip)
    raise PrerequisiteError(f"network {net.name} ({net.subnet}) has no free address left")


def nic_params(config: Config, inst: Instance, index: int, requested_link: Optional[str],
               requested_vlan: Optional[int], requested_mode: Optional[str] = None) -> Tuple[str, str, Optional[int]]:
    """(mode, link, vlan) of a NIC: what it declares, else its network's parameters in the primary
    node's group, else the cluster's nicparams."""
    nic = inst.nics[index]
    params: Dict[str, Any] = dict(DEFAULT_NICPARAMS)
    params.update({k: v for k, v in config.cluster.nicparams.items() if v is not None})
    if nic.network:
        net = config.networks.get(nic.network)
        if net is None:
            raise PrerequisiteError(f"instance {inst.name} nics[{index}]: network {nic.network!r} does not exist; "
                                    f"networks: {sorted(config.networks)}")
        group = config.nodes[inst.primary_node].group if inst.primary_node in config.nodes else "default"
        if group not in net.groups:
            raise PrerequisiteError(f"instance {inst.name} nics[{index}]: network {net.name} is not connected to "
                                    f"node group {group} of {inst.primary_node}; connect it with "
                                    "herd.cluster.network groups")
        params.update({k: v for k, v in net.groups[group].items() if v is not None})
    return (requested_mode or params.get("mode") or "bridged", requested_link or params.get("link") or "br0",
            requested_vlan if requested_vlan is not None else params.get("vlan"))


def reserve_nics(config: Config, inst: Instance, requested: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Fill each NIC's mode/link/vlan and allocate its address in ``config`` (loaded under the cluster
    lock). ``requested`` are the declared NICs (their ``ip`` may be "pool"). Returns the addresses
    allocated, [{"nic", "network", "ip"}]."""
    allocated = []
    for index, nic in enumerate(inst.nics):
        declared = requested[index] if index < len(requested) else {}
        nic.mode, nic.link, nic.vlan = nic_params(config, inst, index, declared.get("link"),
                                                  declared.get("vlan"), declared.get("mode"))
        want = declared.get("ip")
        if want == POOL and not nic.network:
            raise ValidationError(f"instance {inst.name} nics[{index}]: ip: pool needs network")
        if not nic.network:
            continue
        net = config.networks[nic.network]
        if want == POOL:
            if nic.ip and net.allocated.get(nic.ip) == inst.name:
                continue  # allocated on an earlier pass (check mode plan, or a retry)
            nic.ip = next_free(net)
        elif want:
            nic.ip = _addr(want, f"instance {inst.name} nics[{index}] ip", net.subnet)
            owner = net.allocated.get(nic.ip)
            if owner == inst.name:
                continue
            if nic.ip in _taken(net):
                why = f"allocated to {owner}" if owner else "reserved (gateway or external reservation)"
                raise PrerequisiteError(f"instance {inst.name} nics[{index}]: {nic.ip} in network {net.name} is "
                                        f"already {why}")
        else:
            continue
        net.allocated[nic.ip] = inst.name
        allocated.append({"nic": index, "network": net.name, "ip": nic.ip})
    return allocated


def release(config: Config, instance: str) -> List[str]:
    """Free every address allocated to ``instance``; the freed addresses."""
    freed = []
    for net in config.networks.values():
        for ip, owner in list(net.allocated.items()):
            if owner == instance:
                del net.allocated[ip]
                freed.append(ip)
    return freed


def declared_ip(declared: Dict[str, Any], current: Any) -> Optional[str]:
    """A declared NIC's ip for comparison with the NIC it has: "pool" on the same network keeps the
    address the pool gave it (so a second run with ip: pool changes nothing)."""
    if declared.get("ip") == POOL and current is not None and current.ip and current.network == declared.get("network"):
        return current.ip
    return declared.get("ip")
