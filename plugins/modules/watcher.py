#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: watcher
short_description: Pause, resume or query the watcher (gnt-cluster watcher pause, continue, info)
version_added: 0.1.0
description:
  - The watcher (C(playbooks/watcher.yml)) asks this module first and does nothing while it is paused, so an
    operator can work on the cluster (planned maintenance, a node being repaired) without the watcher
    restarting instances or re-activating disks behind their back.
  - The pause is a cluster setting with an expiry time, replicated like the rest of the configuration, so it
    survives a master failover; it ends by itself when I(duration) has passed.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Reports the pause as it would be; writes nothing.
  diff_mode:
    support: full
    description: The pause before and after.
options:
  state:
    description:
      - C(paused) pauses the watcher for I(duration) from now (a pause that already lasts at least that long
        is kept, so a second run changes nothing), C(running) ends a pause (C(gnt-cluster watcher continue)),
        C(query) only reports (C(gnt-cluster watcher info)).
    type: str
    choices: [paused, running, query]
    default: query
  duration:
    description: With I(state=paused), how long; seconds, or a number with C(s), C(m), C(h), C(d) or C(w), up to
      366 days.
    type: str
'''

EXAMPLES = r'''
- name: Pause the watcher for the maintenance window
  herd.cluster.watcher:
    state: paused
    duration: 2h

- name: Let the watcher work again
  herd.cluster.watcher:
    state: running

- name: Is the watcher paused?
  herd.cluster.watcher:
  register: watcher
'''

RETURN = r'''
paused:
  description: Whether the watcher is paused (after this run).
  returned: always
  type: bool
until:
  description: Unix time the pause ends, or null when not paused.
  returned: always
  type: float
until_text:
  description: The same time in UTC, or null.
  returned: always
  type: str
remaining:
  description: Seconds left of the pause (0 when not paused).
  returned: always
  type: int
msg:
  description: What was done.
  returned: always
  type: str
job_ids:
  description:
    - Ids of the jobs this run opened in the master's journal; C(herd.cluster.job_info) with C(id) shows each one's
      steps. Also returned, and named in C(msg), when the task fails after opening a job.
  returned: when the run opened a job (it paused or ended a pause, or failed while trying)
  type: list
  elements: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import watcher as watcher_op


def main():
    argument_spec = dict(
        state=dict(type='str', default='query', choices=['paused', 'running', 'query']),
        duration=dict(type='str'),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'paused', ['duration'])])
    spec = {'state': module.params['state'], 'duration': module.params['duration']}
    result = run(module, watcher_op.run, spec)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
