#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: autorepair
short_description: Repair broken drbd instances the operator opted in, by tag (Ganeti's harep)
version_added: 0.1.0
description:
  - One round of Ganeti's C(harep). For every instance it finds what is broken, the repair that fixes it, and
    whether the operator allowed that repair; it runs only allowed repairs, with the manual operation's own
    checks and rollback, and records each in the instance's tags.
  - "Opt-in tags, on the instance, on the node group of its primary node, or on the cluster:
    C(herd:autorepair:fix-storage) (replace a broken DRBD secondary, bring disks that are down up again),
    C(herd:autorepair:migrate) (also live-migrate away from a primary whose disk failed),
    C(herd:autorepair:failover) (also fail over from a primary marked offline). Each includes the ones before
    it. On one object the least destructive tag wins; the nearest object's tags win (instance, group, cluster).
    C(herd:autorepair:suspend) stops repairs (C(herd:autorepair:suspend:<unix time>) until then), also those
    an outer object enabled."
  - "What needs which repair (C(drbd)): primary offline: failover to the secondary; secondary offline, or its
    disk Diskless: replace-disks to a node the allocator chooses (fix-storage); primary's disk Diskless:
    live migration to the secondary (failover when stopped); a device down or StandAlone on one side: activate
    the disks (fix-storage). A split brain, both nodes offline, or a C(plain) instance whose primary is offline
    are reported and never repaired."
  - A repair is never more than the opted-in level. Like harep, a dead node is one the operator marked offline
    (M(herd.cluster.node) I(offline=true)); unreachable nodes are not guessed about.
  - The state of each repair is kept in the instance's tags (C(herd:autorepair:pending:...) while it runs,
    C(herd:autorepair:result:<type>:<job>:<time>:success|failure) after), so a failed repair is never retried
    in a loop; I(reset) clears it once the operator has looked at the job. A run killed half-way leaves a
    pending tag, counted as a failure by the next run.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Diagnoses every instance and returns the repairs it would run (state C(would-repair)); nothing
      is touched, no tag is written.
  diff_mode:
    support: none
    description: The repairs' own modules show their diffs; this report lists each instance's state instead.
options:
  instances:
    description: Only these instances (default every instance).
    type: list
    elements: str
  reset:
    description:
      - Clear the recorded repair state (pending and result tags) of these instances first, so that a failed
        repair may be tried again in this round.
    type: list
    elements: str
  wait_for_sync:
    description: For a replace-disks repair, wait for the new secondary to be in sync before removing the old
      secondary's volumes (see M(herd.cluster.instance_replace_disks)).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Allow storage repairs on every instance
  herd.cluster.cluster:
    name: cluster.example.org
    tags: [herd:autorepair:fix-storage]
- name: And failover for web1
  herd.cluster.instance:
    name: web1.example.org
    tags: [herd:autorepair:failover]
- name: See what would be repaired
  herd.cluster.autorepair:
  check_mode: true
- name: Repair, and try web1 again after its failed repair was looked at
  herd.cluster.autorepair:
    reset: [web1.example.org]
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
instances:
  description:
    - One entry per instance that is broken or has a repair on record, with C(instance), C(problem), C(needed)
      (the repair type), C(action), C(policy), C(job) (the autorepair job in the journal) and C(msg).
    - C(state) is C(repaired), C(repair-failed), C(would-repair) (check mode), C(not-allowed) (the needed type is
      above the opt-in or none is set), C(manual) (never repaired automatically), C(failed) (an earlier repair
      failed; not retried) or C(pending) (a repair is running).
  returned: always
  type: list
  elements: dict
repaired:
  description: The instances repaired in this run.
  returned: always
  type: list
  elements: str
failures:
  description: The repairs that failed in this run, each with C(instance) and C(reason); the task fails then.
  returned: always
  type: list
  elements: dict
reset:
  description: The instances whose repair state was cleared (I(reset)).
  returned: always
  type: list
  elements: str
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import (  # noqa: E402
    COMMON_ARGS, exit_or_fail_on_failures, run)
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import autorepair  # noqa: E402


def main():
    argument_spec = dict(
        instances=dict(type='list', elements='str'),
        reset=dict(type='list', elements='str'),
        wait_for_sync=dict(type='bool', default=True),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('instances', 'reset', 'wait_for_sync'))
    exit_or_fail_on_failures(module, run(module, autorepair.autorepair, spec))


if __name__ == '__main__':
    main()
