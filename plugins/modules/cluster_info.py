#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: cluster_info
short_description: Show the cluster's parameters and members (gnt-cluster info)
version_added: 0.1.0
description:
  - Returns the cluster parameters, the config serial number and the names of nodes, groups, instances and networks.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
  - herd.cluster.info_module
options: {}
'''

EXAMPLES = r'''
- name: Read the cluster parameters
  herd.cluster.cluster_info:
  register: info
'''

RETURN = r'''
cluster:
  description: Cluster parameters.
  returned: always
  type: dict
serial_no:
  description: Config serial number.
  returned: always
  type: int
nodes:
  description: Node names.
  returned: always
  type: list
  elements: str
master_candidates:
  description: Master candidate names.
  returned: always
  type: list
  elements: str
nodegroups:
  description: Node group names.
  returned: always
  type: list
  elements: str
instances:
  description: Instance names.
  returned: always
  type: list
  elements: str
networks:
  description: Network names.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import info


def main():
    module = AnsibleModule(argument_spec=dict(COMMON_ARGS), supports_check_mode=True)
    module.exit_json(changed=False, **run(module, info.cluster_info))


if __name__ == '__main__':
    main()
