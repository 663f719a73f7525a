"""The cluster as Ansible inventory: nodes and instances as hosts, with groups
by node role, node group, primary node, disk template, admin status, OS and
tags. Used by the herd.cluster.herd inventory plugin; plain data in and out so
a unit test reaches it without Ansible."""

import re
from typing import Any, Dict, List

from .config import Config
from .ops.views import node_role

GROUP_PREFIX = "herd_"


def group_name(*parts: str) -> str:
    """A valid Ansible group name from parts: anything but letters, digits and _ becomes _."""
    return GROUP_PREFIX + "_".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts)


# Ganeti's one-letter node roles (ops.views.node_role) as group names
ROLE_GROUPS = {"M": "herd_master", "C": "herd_master_candidates", "D": "herd_drained", "O": "herd_offline",
               "R": "herd_regular"}
ROLE_NAMES = {"M": "master", "C": "candidate", "D": "drained", "O": "offline", "R": "regular"}


def cluster_inventory(config: Config) -> Dict[str, Any]:
    """{"hosts": {name: hostvars}, "groups": {group: [host names]}} for every node and instance."""
    hosts: Dict[str, Dict[str, Any]] = {}
    groups: Dict[str, List[str]] = {}

    def add(group: str, host: str) -> None:
        groups.setdefault(group, [])
        if host not in groups[group]:
            groups[group].append(host)

    for name in sorted(config.nodes):
        node = config.nodes[name]
        role = node_role(config, name)
        hosts[name] = {
            "ansible_host": node.primary_ip,
            "herd_kind": "node",
            "herd_role": ROLE_NAMES[role],
            "herd_node_group": node.group,
            "herd_primary_ip": node.primary_ip,
            "herd_secondary_ip": node.secondary_ip,
            "herd_vm_capable": node.vm_capable,
            "herd_tags": sorted(node.tags),
        }
        add("herd_nodes", name)
        add(ROLE_GROUPS[role], name)
        # the master is a candidate too (Ganeti lists it among them)
        if role == "M" and node.master_candidate:
            add("herd_master_candidates", name)
        add(group_name("nodegroup", node.group), name)
        for tag in node.tags:
            add(group_name("tag", tag), name)
    for name in sorted(config.instances):
        inst = config.instances[name]
        hostvars: Dict[str, Any] = {
            "herd_kind": "instance",
            "herd_primary_node": inst.primary_node,
            "herd_secondary_node": inst.secondary_node,
            "herd_disk_template": inst.disk_template,
            "herd_hypervisor": inst.hypervisor,
            "herd_admin_state": inst.admin_state,
            "herd_os": inst.os,
            "herd_tags": sorted(inst.tags),
            "herd_nics": [{"mac": n.mac, "ip": n.ip, "link": n.link, "network": n.network} for n in inst.nics],
            "herd_disks": [{"name": d.name, "size": d.size} for d in inst.disks],
            "herd_beparams": dict(inst.beparams),
        }
        addresses = [n.ip for n in inst.nics if n.ip]
        if addresses:
            hostvars["ansible_host"] = addresses[0]
        hosts[name] = hostvars
        add("herd_instances", name)
        add(group_name("primary", inst.primary_node), name)
        add(group_name("disk_template", inst.disk_template), name)
        add(group_name("status", inst.admin_state), name)
        add(group_name("os", inst.os), name)
        for tag in inst.tags:
            add(group_name("tag", tag), name)
    return {"hosts": hosts, "groups": groups}
