#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: node_evacuate
short_description: Move every instance off a node (gnt-node migrate/evacuate/failover)
version_added: 0.1.0
description:
  - Primary instances are live-migrated (or failed over when they are not running, or with I(live=false)) to the
    targets of the allocator's node-evacuate answer; each instance is its own job, at most I(max_parallel) at once.
  - Drbd instances whose secondary is the node get a new secondary (M(herd.cluster.instance_replace_disks), waiting
    for the resync) on the node of the allocator's secondary-only node-evacuate answer, in modes C(secondary) and
    C(all), with the same parallelism. In mode C(all) primaries move first; a drbd instance that failed over to
    its secondary then has the node as its secondary and gets a new one too.
  - Returns what moved and, for what did not, why.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Returns the planned moves.
  diff_mode:
    support: none
    description: Read-only; nothing to diff.
options:
  node:
    description: Node to evacuate.
    type: str
    required: true
  mode:
    description: C(primary) instances, C(secondary) instances (drbd), or C(all).
    type: str
    choices: [primary, secondary, all]
    default: all
  live:
    description: Migrate running instances live; with C(false) fail them over.
    type: bool
    default: true
  ignore_consistency:
    description: Fail over even when the node does not answer (a dead node).
    type: bool
    default: false
  max_parallel:
    description: Moves running at the same time.
    type: int
    default: 1
'''

EXAMPLES = r'''
- name: Empty node2 before maintenance, three moves at a time
  herd.cluster.node_evacuate:
    node: node2
    mode: primary
    max_parallel: 3
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
planned:
  description: Moves planned, in the order they run.
  returned: always
  type: list
  elements: dict
  contains:
    instance:
      description: Instance name.
      type: str
      sample: web1
    from:
      description: The node being evacuated.
      type: str
      sample: node2
    to:
      description: The instance's new primary node, or its new drbd secondary for C(replace_disks).
      type: str
      sample: node3
    how:
      description: C(migrate), C(failover) or C(replace_disks) (a new drbd secondary on I(to)).
      type: str
      sample: migrate
moved:
  description: Moves done, as in I(planned); empty in check mode.
  returned: always
  type: list
  elements: dict
  contains:
    instance:
      description: Instance name.
      type: str
      sample: web1
    from:
      description: The node being evacuated.
      type: str
      sample: node2
    to:
      description: Where the instance (or its drbd secondary) went.
      type: str
      sample: node3
    how:
      description: C(migrate), C(failover) or C(replace_disks).
      type: str
      sample: migrate
failures:
  description: Instances that could not be moved, with the reason; the task fails when this is not empty.
  returned: always
  type: list
  elements: dict
  contains:
    instance:
      description: Instance name.
      type: str
      sample: db1
    reason:
      description: Why it could not move (the allocator's answer or the move's error).
      type: str
      sample: "no node has 4096 MiB free"
msg:
  description: Summary.
  returned: always
  type: str
  sample: "node node2: moved 2, failed 0"
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import (
    COMMON_ARGS, exit_or_fail_on_failures, run)
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import evacuate as evacuate_op


def main():
    argument_spec = dict(
        node=dict(type='str', required=True),
        mode=dict(type='str', default='all', choices=['primary', 'secondary', 'all']),
        live=dict(type='bool', default=True),
        ignore_consistency=dict(type='bool', default=False),
        max_parallel=dict(type='int', default=1),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('node', 'mode', 'live', 'ignore_consistency', 'max_parallel'))
    result = run(module, evacuate_op.evacuate, spec)
    # 'failed' is Ansible's own key in a result: the list goes over as 'failures'
    result['failures'] = result.pop('failed')
    exit_or_fail_on_failures(module, result)


if __name__ == '__main__':
    main()
