"""The declarative instance spec: validation, normalisation and the view we diff.

One place for the rules of what an operator may declare and how a declared
spec compares with what the config holds, so ``changed`` is honest: "10G" and
10240 are one size, a NIC without a MAC keeps the MAC it was given, hvparams
compare only the keys the operator declared.
"""

import random
from typing import Any, Dict, Optional, overload

from .. import names
from .. import validate as node_checks
from ..config import (DEFAULT_BEPARAMS, DEFAULT_HVPARAMS, DISK_TEMPLATES, HYPERVISORS, MIRRORED_TEMPLATES, Config,
                      Instance)
from ..errors import PrerequisiteError, ValidationError
from ..hypervisor.base import check_vnc_password
from ..units import parse_size_mib
from . import repair_tags

SYNC_TIMEOUT = 3600  # seconds new drbd disks may take to sync (create, disk add), unless declared

STATES = ("present", "running", "stopped", "restarted", "absent")
OS_TYPES = ("noop", "image", "cloud_init")
# Fields fixed at creation: changing them needs another operation.
IMMUTABLE = {
    "disk_template": "only plain and drbd convert into each other (ops/instance_convert.py)",
    "hypervisor": "changing the hypervisor is not supported; create a new instance",
    "os": "the OS provider only runs at creation; create a new instance to reinstall",
}


def validate(spec: Dict[str, Any], config: Optional[Config] = None) -> Dict[str, Any]:
    """Check and normalise a declared instance. Touches nothing."""
    out: Dict[str, Any] = {"name": names.check_instance_name(spec.get("name"))}
    state = spec.get("state") or "present"
    if state not in STATES:
        raise ValidationError(f"state {state!r} is not one of {list(STATES)}")
    out["state"] = state
    for key in ("restart_on_change", "force", "wait"):
        out[key] = bool(spec.get(key, key == "wait"))
    timeout = spec.get("shutdown_timeout")
    if timeout is None:
        timeout = 120  # Ganeti's default
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 <= timeout <= 3600:
        raise ValidationError(f"shutdown_timeout {timeout!r} must be 0 to 3600 seconds")
    out["shutdown_timeout"] = timeout
    # new drbd disks (create, disk add): wait until both sides are UpToDate, as Ganeti does
    # unless --no-wait-for-sync; a sync that fails or outlasts sync_timeout undoes the change
    out["wait_for_sync"] = bool(spec.get("wait_for_sync", True))
    sync_timeout = spec.get("sync_timeout")
    if sync_timeout is None:
        sync_timeout = SYNC_TIMEOUT
    if not isinstance(sync_timeout, int) or isinstance(sync_timeout, bool) or not 1 <= sync_timeout <= 7 * 86400:
        raise ValidationError(f"sync_timeout {sync_timeout!r} must be 1 to 604800 seconds")
    out["sync_timeout"] = sync_timeout
    if state == "absent":
        return out
    template = spec.get("disk_template")
    if template is not None and template not in DISK_TEMPLATES:
        raise ValidationError(f"disk_template {template!r} is not one of {list(DISK_TEMPLATES)}")
    out["disk_template"] = template
    hypervisor = spec.get("hypervisor")
    if hypervisor is not None and hypervisor not in HYPERVISORS:
        raise ValidationError(f"hypervisor {hypervisor!r} is not one of {list(HYPERVISORS)}")
    out["hypervisor"] = hypervisor
    for key in ("primary_node", "secondary_node"):
        out[key] = names.check_hostname(spec[key], key) if spec.get(key) else None
    if out["primary_node"] and out["primary_node"] == out["secondary_node"]:
        raise ValidationError(f"primary_node and secondary_node are both {out['primary_node']}")
    out["memory"] = parse_size_mib(spec["memory"], "memory") if spec.get("memory") is not None else None
    out["minmem"] = parse_size_mib(spec["minmem"], "minmem") if spec.get("minmem") is not None else None
    if out["memory"] and out["minmem"] and out["minmem"] > out["memory"]:
        raise ValidationError(f"minmem {out['minmem']} MiB is above memory {out['memory']} MiB")
    vcpus = spec.get("vcpus")
    if vcpus is not None and (not isinstance(vcpus, int) or isinstance(vcpus, bool) or not 1 <= vcpus <= 255):
        raise ValidationError(f"vcpus {vcpus!r} must be an integer from 1 to 255")
    out["vcpus"] = vcpus
    out["disks"] = None if spec.get("disks") is None else [_disk(d, i) for i, d in enumerate(spec["disks"])]
    out["nics"] = None if spec.get("nics") is None else [_nic(n, i) for i, n in enumerate(spec["nics"])]
    out["hvparams"] = _hvparams(spec.get("hvparams") or {}, hypervisor or "kvm")
    os_type = spec.get("os")
    if os_type is not None and os_type not in OS_TYPES:
        raise ValidationError(f"os {os_type!r} is not one of {list(OS_TYPES)}")
    out["os"] = os_type  # None: not declared (noop at creation, unchanged afterwards)
    out["osparams"] = check_osparams(os_type or "noop", spec.get("osparams") or {})
    out["tags"] = None if spec.get("tags") is None else sorted(set(names.check_tag(t) for t in spec["tags"]))
    repair_tags.check_tags(out["tags"] or [])
    # None: not declared (kept); "": no password
    password = spec.get("vnc_password")
    out["vnc_password"] = None if password is None else (check_vnc_password(password) if password else "")
    for key in ("remove_disks", "reinstall"):  # opt-ins to deleting data: only a real true counts
        value = spec.get(key)
        if value is not None and not isinstance(value, bool):
            raise ValidationError(f"{key} {value!r} must be true or false")
        out[key] = value is True
    if out["reinstall"] and state in ("running", "restarted"):
        raise ValidationError(f"reinstall needs the instance stopped: declare state: stopped (or present on a "
                              f"stopped instance) with reinstall: true, not state: {state}")
    return out


def _disk(disk: Any, index: int) -> Dict[str, Any]:
    if isinstance(disk, (str, int)):
        disk = {"size": disk}
    if not isinstance(disk, dict) or ("size" not in disk and not disk.get("adopt")):
        raise ValidationError(f"disks[{index}] must be a size or a mapping with size (or adopt), got {disk!r}")
    bad = sorted(set(disk) - {"size", "name", "vg", "adopt"})
    if bad:
        raise ValidationError(f"disks[{index}]: unknown keys {bad}; valid: ['adopt', 'name', 'size', 'vg']")
    out: Dict[str, Any] = {"size": None, "name": None, "vg": None, "adopt": None}
    if disk.get("adopt"):
        # Ganeti's --disk N:adopt=LV: the size is the LV's, read from LVM on the node
        out["adopt"] = names.check_vg(disk["adopt"])
        if disk.get("size") is not None:
            raise ValidationError(f"disks[{index}]: size is read from the adopted LV {out['adopt']}; drop size")
    else:
        out["size"] = parse_size_mib(disk["size"], f"disks[{index}] size")
    if disk.get("name"):
        out["name"] = names.check_simple(disk["name"], f"disks[{index}] name")
    if disk.get("vg"):
        out["vg"] = names.check_vg(disk["vg"])
    return out


def _nic(nic: Any, index: int) -> Dict[str, Any]:
    if nic is None:
        nic = {}
    if not isinstance(nic, dict):
        raise ValidationError(f"nics[{index}] must be a mapping, got {nic!r}")
    bad = sorted(set(nic) - {"mac", "mode", "link", "vlan", "ip", "network", "name"})
    if bad:
        raise ValidationError(f"nics[{index}]: unknown keys {bad}; valid: ['ip', 'link', 'mac', 'mode', 'name', "
                              "'network', 'vlan']")
    out: Dict[str, Any] = {"mac": None, "mode": None, "link": None, "vlan": None, "ip": None, "network": None,
                           "name": None}
    if nic.get("mode"):
        from .. import validate as node_checks

        out["mode"] = node_checks.nic_mode(nic["mode"], f"nics[{index}]")
    if nic.get("mac"):
        out["mac"] = names.check_mac(nic["mac"])
    if nic.get("link"):
        out["link"] = names.check_bridge(nic["link"])
    if nic.get("vlan") is not None:
        vlan = nic["vlan"]
        if not isinstance(vlan, int) or isinstance(vlan, bool) or not 1 <= vlan <= 4094:
            raise ValidationError(f"nics[{index}] vlan {vlan!r} must be an integer from 1 to 4094")
        out["vlan"] = vlan
    if nic.get("ip") == "pool":  # herd.cluster.network: the next free address of nic.network
        if not nic.get("network"):
            raise ValidationError(f"nics[{index}] ip: pool needs network (the network whose pool to use)")
        out["ip"] = "pool"
    elif nic.get("ip"):
        import netaddr

        try:
            out["ip"] = str(netaddr.IPAddress(str(nic["ip"]), flags=netaddr.INET_PTON))
        except (netaddr.AddrFormatError, ValueError):
            raise ValidationError(f"nics[{index}] ip {nic['ip']!r} is not an IP address") from None
    for key in ("network", "name"):
        if nic.get(key):
            out[key] = names.check_simple(nic[key], f"nics[{index}] {key}")
    return out


def _hvparams(params: Dict[str, Any], hypervisor: str) -> Dict[str, Any]:
    if not isinstance(params, dict):
        raise ValidationError("hvparams must be a mapping")
    allowed = set(DEFAULT_HVPARAMS[hypervisor])
    bad = sorted(set(params) - allowed)
    if bad:
        raise ValidationError(f"hvparams: unknown parameters {bad} for {hypervisor}; valid: {sorted(allowed)}")
    out = dict(params)
    # the values themselves: the node's own validator, over the defaults (the effective values,
    # with the cluster's, are checked again where the config is at hand)
    node_checks.hvparams(out)
    return out


def check_osparams(os_type: str, params: Dict[str, Any]) -> Dict[str, Any]:
    allowed = {"noop": set(), "image": {"image", "image_format"},
               "cloud_init": {"hostname", "ssh_authorized_keys", "user_data", "network_config", "password",
                              "image", "image_format"}}[os_type]
    bad = sorted(set(params) - allowed)
    if bad:
        raise ValidationError(f"osparams: unknown parameters {bad} for os {os_type}; valid: {sorted(allowed)}")
    if os_type == "image" and not params.get("image"):
        raise ValidationError("os image needs osparams.image, the path of an image file on the node")
    if params.get("image"):
        names.check_abs_path(params["image"], "osparams.image")
    return dict(params)


def generate_mac(config: Config, taken: Optional[set] = None) -> str:
    used = {nic.mac for inst in config.instances.values() for nic in inst.nics} | (taken or set())
    rng = random.SystemRandom()
    for _attempt in range(10000):
        mac = f"{config.cluster.mac_prefix}:{rng.randrange(256):02x}:{rng.randrange(256):02x}:{rng.randrange(256):02x}"
        if mac not in used:
            return mac
    raise PrerequisiteError(f"no free MAC left under prefix {config.cluster.mac_prefix}")


def fill(*layers: Dict[str, Any]) -> Dict[str, Any]:
    """Ganeti's FillDict: each layer's values over the ones before (defaults, cluster, instance)."""
    merged: Dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def effective_hvparams(config: Config, inst: Instance) -> Dict[str, Any]:
    """The hypervisor parameters the instance runs with: herd's defaults, the cluster's, its own."""
    return fill(DEFAULT_HVPARAMS.get(inst.hypervisor, {}), config.cluster.hvparams.get(inst.hypervisor, {}),
                inst.hvparams)


def effective_beparams(config: Config, inst: Instance) -> Dict[str, Any]:
    """Memory, vCPUs and the other backend parameters the instance runs with."""
    return fill(DEFAULT_BEPARAMS, config.cluster.beparams, inst.beparams)


@overload
def instance_view(inst: Instance) -> Dict[str, Any]:
    ...


@overload
def instance_view(inst: None) -> None:
    ...


def instance_view(inst: Optional[Instance]) -> Optional[Dict[str, Any]]:
    """What the module returns and diffs for an instance."""
    if inst is None:
        return None
    return {
        "name": inst.name,
        "admin_state": inst.admin_state,
        "primary_node": inst.primary_node,
        "secondary_node": inst.secondary_node,
        "disk_template": inst.disk_template,
        "hypervisor": inst.hypervisor,
        "os": inst.os,
        "memory": inst.beparams.get("maxmem"),
        "minmem": inst.beparams.get("minmem"),
        "vcpus": inst.beparams.get("vcpus"),
        "disks": [{"name": d.name, "size": d.size, "uuid": d.uuid} for d in inst.disks],
        "nics": [{"mac": n.mac, "mode": n.mode, "link": n.link, "vlan": n.vlan, "ip": n.ip, "network": n.network}
                 for n in inst.nics],
        "hvparams": dict(sorted(inst.hvparams.items())),
        "tags": list(inst.tags),
        "network_port": inst.network_port,
        "uuid": inst.uuid,
        "pending_restart": inst.pending_restart,
        "vnc_password_set": bool(inst.vnc_password),
    }


def is_mirrored(template: str) -> bool:
    return template in MIRRORED_TEMPLATES
