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
'''

EXAMPLES = r'''
- name: Node table
  herd.cluster.node_info:
  register: nodes

- name: Print it
  ansible.builtin.debug:
    msg: "{{ nodes.table }}"
'''

RETURN = r'''
nodes:
  description: One entry per node.
  returned: always
  type: list
  elements: dict
table:
  description: Lines of a C(gnt-node list) style table.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import info


def main():
    argument_spec = dict(names=dict(type='list', elements='str', default=[]), live=dict(type='bool', default=True))
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    result = run(module, info.node_info, module.params['names'], module.params['live'])
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
