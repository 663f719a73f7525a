#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_failover
short_description: Fail an instance over to another node (gnt-instance failover)
version_added: 0.1.0
description:
  - Shuts the instance down on its primary, switches the primary in the config, and starts it on the target if
    it was up. For C(drbd) the target is the secondary; for C(sharedfile) and C(diskless) any node or the
    allocator's choice.
  - When the primary is dead, I(ignore_consistency=true) skips the shutdown there (an offline primary is skipped
    always).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Checks the target and reports the plan.
  diff_mode:
    support: full
    description: Primary and secondary node before and after.
options:
  name:
    description: Instance to fail over.
    type: str
    required: true
  target_node:
    description: Target node (not for drbd). Without it the allocator chooses.
    type: str
  ignore_consistency:
    description: Go on when the primary does not answer or the shutdown fails there.
    type: bool
    default: false
  shutdown_timeout:
    description: Seconds for a clean shutdown on the primary before the process is killed.
    type: int
    default: 120
'''

EXAMPLES = r'''
- name: Fail web1 over after its node died
  herd.cluster.instance_failover:
    name: web1.example.org
    ignore_consistency: true
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
source:
  description: Former primary.
  returned: always
  type: str
target:
  description: New primary.
  returned: always
  type: str
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run, timeout_arg
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import migrate


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        target_node=dict(type='str'),
        ignore_consistency=dict(type='bool', default=False),
        shutdown_timeout=timeout_arg(120),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('name', 'target_node', 'ignore_consistency', 'shutdown_timeout'))
    module.exit_json(**run(module, migrate.failover, spec))


if __name__ == '__main__':
    main()
