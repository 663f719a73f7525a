#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: job_info
short_description: List and show jobs from the master's journal (gnt-job list/info)
version_added: 0.1.0
description:
  - Every state-changing operation is a job with an id, its opcode and parameters (secrets removed), its steps
    with timestamps and messages, and a status (queued, running, success, error).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
  - herd.cluster.info_module
options:
  id:
    description: Show only this job.
    type: int
  status:
    description: Only jobs with this status.
    type: str
    choices: [queued, running, success, error]
  opcode:
    description: Only jobs of this operation (for example C(node_add)).
    type: str
  limit:
    description: At most this many of the newest jobs.
    type: int
'''

EXAMPLES = r'''
- name: The last ten jobs
  herd.cluster.job_info:
    limit: 10

- name: Failed jobs
  herd.cluster.job_info:
    status: error
'''

RETURN = r'''
jobs:
  description: Jobs, oldest first.
  returned: always
  type: list
  elements: dict
interrupted:
  description: Ids of jobs whose process died while they ran.
  returned: when no id is given
  type: list
  elements: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import info


def main():
    argument_spec = dict(
        id=dict(type='int'),
        status=dict(type='str', choices=['queued', 'running', 'success', 'error']),
        opcode=dict(type='str'),
        limit=dict(type='int'),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    result = run(module, info.job_info, p['id'], p['status'], p['opcode'], p['limit'])
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
