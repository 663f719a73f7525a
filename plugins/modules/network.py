#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: network
short_description: Declare a network with an IP pool and connect it to node groups (gnt-network)
version_added: 0.1.0
description:
  - With I(state=present), creates the network or changes its declared parameters (C(gnt-network add),
    C(modify), C(connect), C(disconnect)); parameters left out are kept. The subnet of an existing network
    cannot change.
  - Instance NICs use it with C(network) and C(ip=pool) (the lowest free address) or C(ip=ADDRESS) in
    M(herd.cluster.instance); addresses are allocated under the cluster lock, so parallel creations never
    share one, and instance removal frees them.
  - With I(state=absent), removes the network; refused while instances use it.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Reports the network as it would be; writes nothing.
  diff_mode:
    support: full
    description: The network before and after.
options:
  name:
    description: Network name.
    type: str
    required: true
  state:
    description: C(present) creates or modifies, C(absent) removes.
    type: str
    choices: [present, absent]
    default: present
  subnet:
    description: IPv4 network in CIDR notation, like C(192.0.2.0/24). Required to create the network.
    type: str
  gateway:
    description: IPv4 default gateway, inside I(subnet); never given to an instance.
    type: str
  subnet6:
    description: Optional IPv6 network (no pool is kept for it, as in Ganeti).
    type: str
  gateway6:
    description: IPv6 gateway, inside I(subnet6).
    type: str
  reserved:
    description: Addresses of I(subnet) used outside the cluster (external reservations); the list replaces
      the current one. An address allocated to an instance cannot be reserved.
    type: list
    elements: str
  groups:
    description:
      - The node groups the network is connected to, each with the NIC parameters its NICs get there
        (C(gnt-network connect -N mode=,link=,vlan=)). The list replaces the current connections; a group
        whose instances use the network cannot be disconnected. Unset parameters come from the cluster's
        I(nicparams).
    type: list
    elements: dict
    suboptions:
      name:
        description: Node group name.
        type: str
        required: true
      mode:
        description: NIC mode.
        type: str
        choices: [bridged, openvswitch]
      link:
        description: Bridge (a Linux bridge, or an Open vSwitch bridge for C(openvswitch)) the NICs use.
        type: str
      vlan:
        description: VLAN tag, 1 to 4094.
        type: int
'''

EXAMPLES = r'''
- name: The runbook's public network, connected to the default group
  herd.cluster.network:
    name: gnt-fsn
    subnet: 192.0.2.0/24
    gateway: 192.0.2.1
    reserved: [192.0.2.2, 192.0.2.3]
    groups:
      - name: default
        mode: bridged
        link: br0

- name: An instance with the next free address of that network
  herd.cluster.instance:
    name: web1.example.org
    disk_template: drbd
    disks: [10G]
    nics:
      - network: gnt-fsn
        ip: pool

- name: Remove a network nobody uses any more
  herd.cluster.network:
    name: old-net
    state: absent
'''

RETURN = r'''
job_ids:
  description:
    - Ids of the jobs this run opened in the master's journal; C(herd.cluster.job_info) with C(id) shows each one's
      steps and progress. Also returned, and named in C(msg), when the task fails after opening a job.
  returned: when the run opened a job (it changed something, or failed while trying)
  type: list
  elements: int
  sample: [42]
network:
  description: The network after the change (null after removal), with C(allocated) (address to instance)
    and C(free_count).
  returned: always
  type: dict
  contains:
    name:
      description: Network name.
      type: str
    subnet:
      description: IPv4 subnet.
      type: str
    gateway:
      description: IPv4 gateway.
      type: str
    subnet6:
      description: IPv6 subnet.
      type: str
    gateway6:
      description: IPv6 gateway.
      type: str
    reserved:
      description: Reserved addresses.
      type: list
      elements: str
    groups:
      description: Node group name to its C(mode), C(link) and C(vlan).
      type: dict
    allocated:
      description: Address to the instance holding it.
      type: dict
    free_count:
      description: Free addresses in the pool.
      type: int
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import network as network_op

PARAMS = ('name', 'state', 'subnet', 'gateway', 'subnet6', 'gateway6', 'reserved', 'groups')


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        subnet=dict(type='str'),
        gateway=dict(type='str'),
        subnet6=dict(type='str'),
        gateway6=dict(type='str'),
        reserved=dict(type='list', elements='str'),
        groups=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            mode=dict(type='str', choices=['bridged', 'openvswitch']),
            link=dict(type='str'),
            vlan=dict(type='int'),
        )),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((key, module.params[key]) for key in PARAMS)
    result = run(module, network_op.run, spec)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
