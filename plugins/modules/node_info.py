#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: node_info
short_description: List nodes with live memory, disk and instance counts (gnt-node list/info)
version_added: 0.1.0
description:
  - Returns one entry per node with its role (M master, C candidate, D drained, O offline, R regular), flags,
    live memory and volume group figures from its agent, and its primary and secondary instances.
  - Also returns C(table), the same as lines like C(gnt-node list) prints.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
  - herd.cluster.info_module
options:
  names:
    description: Only these nodes. An empty list means all nodes.
    type: list
    elements: str
    default: []
  live:
    description: Ask each node's agent for live figures; with C(false) only the config is read.
    type: bool
    default: true
  tags:
    description: Only nodes carrying every one of these tags.
    type: list
    elements: str
    default: []
  roles:
    description: Only nodes with one of these roles (C(M) master, C(C) candidate, C(D) drained, C(O) offline,
      C(R) regular).
    type: list
    elements: str
    choices: [M, C, D, O, R]
    default: []
  fields:
    description:
      - Columns of C(table) and keys of C(selected), like C(gnt-node list -o). Without it, the default table.
      - C(name), C(role), C(group), C(pip), C(sip), C(dtotal), C(dfree), C(mtotal), C(mfree), C(ctotal),
        C(pinst_cnt), C(sinst_cnt), C(pinst_list), C(sinst_list), C(tags), C(master_candidate), C(drained),
        C(offline), C(vm_capable), C(n1) (whether the node passes N+1; asks every node), and
        C(vg_free/<volume group>) (free space in that volume group).
      - An unknown field fails the task and lists the valid ones.
    type: list
    elements: str
  human:
    description: Sizes in C(table) as C(1.5G) rather than MiB (C(selected) always holds MiB).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Node table
  herd.cluster.node_info:
  register: nodes

- name: Free memory, free disk in volume group gnt and N+1 of the nodes tagged rack1
  herd.cluster.node_info:
    tags: [rack1]
    fields: [name, mfree, vg_free/gnt, n1]
  register: rack1

- name: Print it
  ansible.builtin.debug:
    msg: "{{ nodes.table }}"
'''

RETURN = r'''
nodes:
  description: One entry per node, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Node name.
      type: str
      sample: node1
    role:
      description: C(M) master, C(C) master candidate, C(D) drained, C(O) offline, C(R) regular.
      type: str
      sample: M
    group:
      description: Node group.
      type: str
      sample: default
    primary_ip:
      description: Primary address.
      type: str
      sample: 192.0.2.11
    secondary_ip:
      description: Secondary (replication and migration) address.
      type: str
      sample: 10.99.0.11
    flags:
      description: The node's flags (master_candidate, drained, offline, vm_capable, master_capable).
      type: dict
      sample: {master_candidate: true, drained: false, offline: false, vm_capable: true, master_capable: true}
      contains:
        master_candidate:
          description: Whether it holds a copy of the config and can become master.
          type: bool
        drained:
          description: 'Drained: no new instances are placed there.'
          type: bool
        offline:
          description: 'Offline: not contacted.'
          type: bool
        vm_capable:
          description: Whether it runs instances.
          type: bool
        master_capable:
          description: Whether it may become master candidate.
          type: bool
    memory_total:
      description: Total memory in MiB from the node's agent; null without I(live) or when the node does not answer.
      type: int
      sample: 24032
    memory_free:
      description: Free memory in MiB from the node's agent.
      type: int
      sample: 20011
    disk_total:
      description: Size of the volume group in MiB.
      type: int
      sample: 102400
    disk_free:
      description: Free space in the volume group in MiB.
      type: int
      sample: 51200
    cpu_count:
      description: CPUs of the node.
      type: int
      sample: 8
    kvm_usable:
      description: Whether C(/dev/kvm) is usable on the node.
      type: bool
      sample: true
    agent_version:
      description: Version of the node's herd-node agent.
      type: str
      sample: 0.1.0
    primary_instances:
      description: Instances whose primary node this is.
      type: list
      elements: str
      sample: [web1]
    secondary_instances:
      description: Drbd instances whose secondary node this is.
      type: list
      elements: str
      sample: [db1]
    error:
      description: Why live figures are missing (the node's RPC error), else null.
      type: str
      sample: null
    config:
      description: The node's entry in the cluster configuration (addresses, flags, group, tags, host key types).
      type: dict
      sample: {name: node1, primary_ip: 192.0.2.11, group: default, tags: [], ssh_host_key_types: [ssh-ed25519]}
      contains:
        name:
          description: Node name.
          type: str
        primary_ip:
          description: Primary address.
          type: str
        secondary_ip:
          description: Secondary (replication and migration) address.
          type: str
        group:
          description: Node group.
          type: str
        master_candidate:
          description: Whether it holds a copy of the config and can become master.
          type: bool
        drained:
          description: 'Drained: no new instances are placed there.'
          type: bool
        offline:
          description: 'Offline: not contacted.'
          type: bool
        vm_capable:
          description: Whether it runs instances.
          type: bool
        master_capable:
          description: Whether it may become master candidate.
          type: bool
        ndparams:
          description: Node parameters set on this node (C(ssh_port), ...).
          type: dict
        tags:
          description: Tags.
          type: list
          elements: str
        ssh_host_key_types:
          description: Types of the SSH host keys the cluster knows for it.
          type: list
          elements: str
    vg_free:
      description: Free MiB per volume group.
      type: dict
      sample: {gnt: 51200}
    n1_fail:
      description: Whether the node fails N+1; null unless the C(n1) field was asked for with I(live).
      type: bool
      sample: false
selected:
  description: With I(fields), one dict per node with the values of those fields (sizes in MiB).
  returned: when I(fields) is given
  type: list
  elements: dict
  sample: [{name: node1, mfree: 20011, vg_free/gnt: 51200, n1: true}]
table:
  description: Lines of a C(gnt-node list) style table (of I(fields) when given).
  returned: always
  type: list
  elements: str
  sample: ["Node  Role DTotal DFree MTotal MFree CPUs Pinst Sinst", "node1 M    102400 51200 24032  20011 8    1     0"]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd import listing


def main():
    argument_spec = dict(
        names=dict(type='list', elements='str', default=[]),
        live=dict(type='bool', default=True),
        tags=dict(type='list', elements='str', default=[]),
        roles=dict(type='list', elements='str', default=[], choices=['M', 'C', 'D', 'O', 'R']),
        fields=dict(type='list', elements='str'),
        human=dict(type='bool', default=True),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('names', 'live', 'tags', 'roles', 'fields', 'human'))
    result = run(module, listing.list_nodes, spec)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
