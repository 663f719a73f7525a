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
    description: Show only this job, with every step and progress line.
    type: int
  status:
    description: Only jobs with this status.
    type: str
    choices: [queued, running, success, error]
  opcode:
    description: Only jobs of this operation (for example C(node_add)).
    type: str
  limit:
    description:
      - At most this many of the newest jobs. Finished jobs are archived; listing without a limit (or with an
        O(opcode) filter) reads the whole archive, a limit reads only as far back as it needs.
    type: int
  follow:
    description:
      - With O(id), wait until the job has ended (or O(follow_timeout) passed), then show it like O(id) alone
        (gnt-job watch). The job's log, C(jobs/<id>.log) under the master's state directory, has the same lines as
        they happen, for C(tail -f) on the master.
    type: bool
    default: false
  follow_timeout:
    description: Seconds to follow a job before returning it as it is, with a warning.
    type: int
    default: 3600
'''

EXAMPLES = r'''
- name: The last ten jobs
  herd.cluster.job_info:
    limit: 10

- name: Failed jobs
  herd.cluster.job_info:
    status: error

- name: Wait for job 42 (a migration started with async) and show its steps and progress
  herd.cluster.job_info:
    id: 42
    follow: true
  register: job

- name: Print it
  ansible.builtin.debug:
    var: job.table
'''

RETURN = r'''
jobs:
  description: Jobs, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The job id.
      type: int
    opcode:
      description: The operation, for example C(instance_migrate).
      type: str
    params:
      description: The operation's parameters, secrets and all of C(osparams) withheld.
      type: dict
    status:
      description: C(queued), C(running), C(success) or C(error).
      type: str
    steps:
      description: The steps in order.
      type: list
      elements: dict
      contains:
        name:
          description: What the step does.
          type: str
        status:
          description: C(running), C(success) or C(error).
          type: str
        start_ts:
          description: When it started (seconds since the epoch).
          type: float
        end_ts:
          description: When it ended; null while it runs.
          type: float
        message:
          description: Its latest progress line, or its error.
          type: str
        progress:
          description: Every progress line it logged, oldest first.
          type: list
          elements: dict
          contains:
            ts:
              description: When (seconds since the epoch).
              type: float
            message:
              description: The line.
              type: str
        details:
          description: What the step worked on (secrets withheld).
          type: dict
    received_ts:
      description: When the job was opened (seconds since the epoch).
      type: float
    start_ts:
      description: When it started running.
      type: float
    end_ts:
      description: When it ended; null while it runs.
      type: float
    last_message:
      description: The latest step, progress line or error.
      type: str
    result:
      description: What the operation returned (secrets withheld), for jobs that record it.
      type: raw
    created:
      description: Resources the job created, for recovery of an interrupted job to remove.
      type: list
      elements: dict
      contains:
        kind:
          description: C(disk) or C(os) (the OS provider's files, such as a cloud-init seed).
          type: str
        index:
          description: The disk's index, for a disk.
          type: int
        instance:
          description: What recovery needs of the instance (name, uuid, nodes, disk template, disks).
          type: dict
    pid:
      description: The process that ran it.
      type: int
    host:
      description: The node it ran on.
      type: str
table:
  description:
    - Without O(id), one line per job like C(gnt-job list) (id, status, opcode, received, duration, last message);
      with O(id), the job and each step with its start, duration, status and every progress line (C(gnt-job info)).
      Times are the master's local time.
  returned: always
  type: list
  elements: str
  sample:
    - "ID Status  Opcode           Received            Duration Last message"
    - "41 success instance_create  2026-12-05 06:40:01 3.2 s    start"
log:
  description: The job's log file on the master (one line per step and progress line, for C(tail -f)).
  returned: when O(id) is given
  type: str
  sample: /var/lib/herd/jobs/00000042.log
interrupted:
  description: Ids of jobs whose process died while they ran.
  returned: when no id is given
  type: list
  elements: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run, timeout_arg
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import views


def main():
    argument_spec = dict(
        id=dict(type='int'),
        status=dict(type='str', choices=['queued', 'running', 'success', 'error']),
        opcode=dict(type='str'),
        limit=dict(type='int'),
        follow=dict(type='bool', default=False),
        follow_timeout=timeout_arg(3600),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('follow', True, ['id'])])
    p = module.params
    result = run(module, views.job_info, p['id'], p['status'], p['opcode'], p['limit'], follow=p['follow'],
                 follow_timeout=p['follow_timeout'])
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
