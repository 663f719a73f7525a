#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: reboot_groups
short_description: Plan a rolling reboot; groups of nodes that can reboot together (hroller)
version_added: 0.1.0
description:
  - Splits the cluster's online nodes into reboot groups, like Ganeti's C(hroller). No instance has its primary
    and its secondary node in one group, primaries of running drbd instances that share a secondary are kept
    apart, and every group leaves its running sharedfile and diskless instances a node of their node group to
    go to.
  - With I(use_memory) the nodes' free memory (node facts) must hold the instances that leave a group.
  - The master is the last node of the last group; offline nodes are in no group. The result is deterministic.
  - Running instances that cannot move (file, plain, drbd without a usable secondary) are listed in
    C(downtime); with I(skip_non_redundant) their nodes are left out instead.
  - Runs on the master. Changes nothing.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Read-only; the same answer in check mode.
  diff_mode:
    support: none
    description: Read-only; nothing to diff.
options:
  node_group:
    description: Plan only the nodes of this node group (C(hroller -G)).
    type: str
  node_tags:
    description: Plan only nodes carrying one of these tags (C(hroller --node-tags)).
    type: list
    elements: str
    default: []
  skip_non_redundant:
    description: Leave out nodes that run instances which cannot move (C(hroller --skip-non-redundant)).
    type: bool
    default: false
  offline_maintenance:
    description:
      - The instances will be shut down for the maintenance (C(hroller --offline-maintenance)); only the
        rule that an instance keeps one of its nodes applies.
    type: bool
    default: false
  max_group_size:
    description: At most this many nodes in one group.
    type: int
  use_memory:
    description: Ask every online node for its free memory and check that the instances leaving a group fit.
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Plan the rolling reboot
  herd.cluster.reboot_groups:
  register: plan

- name: Show the groups, one line per group (as hroller prints them)
  ansible.builtin.debug:
    msg: "{{ plan.lines }}"

- name: At most two nodes at once, only the rack-a nodes
  herd.cluster.reboot_groups:
    node_tags: [rack-a]
    max_group_size: 2
'''

RETURN = r'''
groups:
  description: Reboot groups in order; each a list of node names. The master is the last node of the last group.
  returned: always
  type: list
  elements: list
  sample: [["node2", "node3"], ["node1"]]
master:
  description: The master node.
  returned: always
  type: str
offline:
  description: Offline nodes, in no group.
  returned: always
  type: list
  elements: str
skipped:
  description: Nodes left out (I(skip_non_redundant)), each with C(node) and C(reason).
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: Node.
      type: str
    reason:
      description: Why it is left out.
      type: str
downtime:
  description: Running instances that cannot leave their node and are down while it reboots (C(instance),
    C(node), C(reason)).
  returned: always
  type: list
  elements: dict
  contains:
    instance:
      description: Instance.
      type: str
    node:
      description: Its node.
      type: str
    reason:
      description: Why it cannot move.
      type: str
cannot_empty:
  description: Nodes whose running instances do not fit elsewhere even when the node reboots alone, with why.
  returned: always
  type: list
  elements: str
unreachable:
  description: Online nodes that did not answer the memory query.
  returned: always
  type: list
  elements: str
memory_checked:
  description: Whether free memory was part of the plan.
  returned: always
  type: bool
algorithm:
  description: The colouring order that gave the fewest groups (LF, Dsatur, Dcolor, Name).
  returned: always
  type: str
edges:
  description: Pairs of nodes that must not reboot together.
  returned: always
  type: list
  elements: list
lines:
  description: The plan as hroller prints it.
  returned: always
  type: list
  elements: str
msg:
  description: Summary.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import reboot  # noqa: E402


def main():
    argument_spec = dict(
        node_group=dict(type='str'),
        node_tags=dict(type='list', elements='str', default=[]),
        skip_non_redundant=dict(type='bool', default=False),
        offline_maintenance=dict(type='bool', default=False),
        max_group_size=dict(type='int'),
        use_memory=dict(type='bool', default=True),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('node_group', 'node_tags', 'skip_non_redundant',
                                                'offline_maintenance', 'max_group_size', 'use_memory'))
    result = run(module, reboot.plan_reboot_groups, spec)
    result['changed'] = False
    module.exit_json(**result)


if __name__ == '__main__':
    main()
