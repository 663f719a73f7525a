#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_migrate
short_description: Live-migrate an instance to another node (gnt-instance migrate)
version_added: 0.1.0
description:
  - Checks the target (memory, bridges, drained/offline, migration tags), starts the identical QEMU there with
    C(-incoming), sets bandwidth and downtime from the instance's C(migration_bandwidth)/C(migration_downtime),
    migrates through QMP while logging progress in the job, finalizes both sides, and only then switches the
    primary in the config.
  - On any failure the migration is cancelled, the target process killed, the source resumed and the config
    left unchanged; the error carries QEMU's own message.
  - I(cleanup=true) recovers an interrupted migration by finding where the instance really runs (Ganeti's
    C(--cleanup)). Any later operation on the instance also detects an interrupted migration.
  - Targets are the secondary for C(drbd), any node (or the allocator's choice) for C(sharedfile) and
    C(diskless).
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
    description: Instance to migrate.
    type: str
    required: true
  target_node:
    description: Target node (not for drbd, whose target is its secondary). Without it the allocator chooses.
    type: str
  mode:
    description: C(live), or C(non-live) (pause, copy, resume).
    type: str
    choices: [live, non-live]
    default: live
  cleanup:
    description: Recover from an interrupted migration instead of starting one.
    type: bool
    default: false
  fallback_to_failover:
    description: Fail the instance over when it is not running.
    type: bool
    default: false
  ignore_consistency:
    description: With a failover fallback, go on when the primary does not answer.
    type: bool
    default: false
  migration_timeout:
    description: Seconds the migration may take before it is cancelled.
    type: int
    default: 3600
    aliases: [timeout]
'''

EXAMPLES = r'''
- name: Migrate web1 to wherever the allocator says
  herd.cluster.instance_migrate:
    name: web1.example.org

- name: Recover after a migration was interrupted
  herd.cluster.instance_migrate:
    name: web1.example.org
    cleanup: true
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
  description: Node the instance ran on.
  returned: always
  type: str
target:
  description: Node it runs on now (or would, in check mode).
  returned: always
  type: str
migration:
  description: QEMU's final migration statistics (total time, downtime, transferred bytes).
  returned: after a migration
  type: dict
  contains:
    name:
      description: Instance name.
      type: str
    status:
      description: QEMU's migration status (C(completed)).
      type: str
    process:
      description: Whether the source QEMU process was running.
      type: bool
    qemu_status:
      description: The source QEMU's run state.
      type: str
    transferred:
      description: Bytes transferred.
      type: int
    total:
      description: Bytes of guest memory.
      type: int
    remaining:
      description: Bytes still to send.
      type: int
    total_time_ms:
      description: Total migration time in ms.
      type: int
    downtime_ms:
      description: Downtime in ms.
      type: int
    expected_downtime_ms:
      description: Downtime QEMU expected, in ms.
      type: int
    dirty_sync_count:
      description: Dirty-memory sync rounds.
      type: int
    error:
      description: QEMU's error, or null.
      type: str
    drbd_demote_error:
      description: 'drbd only: why demoting the old primary failed, or null.'
      type: str
mode:
  description: How the instance moved, C(live) or C(non-live).
  returned: with a migration (not with cleanup, nor when it fell back to a failover)
  type: str
  sample: live
node_states:
  description: Each node's view of the instance during a cleanup (running, incoming, migrated, absent).
  returned: with cleanup
  type: dict
actions:
  description: What a cleanup did.
  returned: with cleanup
  type: list
  elements: str
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
        mode=dict(type='str', default='live', choices=['live', 'non-live']),
        cleanup=dict(type='bool', default=False),
        fallback_to_failover=dict(type='bool', default=False),
        ignore_consistency=dict(type='bool', default=False),
        migration_timeout=timeout_arg(3600, aliases=['timeout']),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    keys = ('name', 'target_node', 'mode', 'cleanup', 'fallback_to_failover', 'ignore_consistency')
    spec = dict((k, module.params[k]) for k in keys)
    spec['timeout'] = module.params['migration_timeout']
    module.exit_json(**run(module, migrate.migrate, spec))


if __name__ == '__main__':
    main()
