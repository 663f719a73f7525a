#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_info
short_description: List instances with their real status (gnt-instance list/info)
version_added: 0.1.0
description:
  - One entry per instance with its config and its status as Ganeti words it, from asking every node what runs
    there. C(running), C(ADMIN_down), C(ERROR_up) (runs but should not), C(ERROR_down) (should run but does not),
    C(ERROR_wrongnode), C(ERROR_nodedown), C(ERROR_nodeoffline).
  - Also returns C(table), lines like C(gnt-instance list) prints. Returns an empty list when there are none.
  - For drbd instances each entry has C(disk_health) (C(ok), C(resyncing), C(degraded), C(unknown)) and
    C(disk_problems), from the DRBD state on both nodes (the rules cluster_verify uses); C(null) and an empty list
    for other templates or with C(live=false).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
  - herd.cluster.info_module
options:
  names:
    description: Only these instances. An empty list means all.
    type: list
    elements: str
    default: []
  live:
    description: Ask the nodes what runs; with C(false) only the config is read.
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Instance table
  herd.cluster.instance_info:
  register: instances

- name: Print it
  ansible.builtin.debug:
    msg: "{{ instances.table }}"
'''

RETURN = r'''
instances:
  description: One entry per instance (with C(disk_health) and C(disk_problems) when C(live)).
  returned: always
  type: list
  elements: dict
table:
  description: Lines of a C(gnt-instance list) style table.
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
    result = run(module, info.instance_info, module.params['names'], module.params['live'])
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
