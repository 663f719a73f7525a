#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_rename
short_description: Rename an instance (gnt-instance rename)
version_added: 0.1.0
description:
  - Declares that the instance I(name) is now called I(new_name). When I(name) no longer exists and I(new_name)
    does, the rename is done already and nothing changes, so the task can stay in a playbook.
  - The instance must be stopped (C(herd.cluster.instance) with C(state=stopped)), as C(gnt-instance rename)
    requires by default; start it again under its new name.
  - Renamed with it is everything keyed by the name - the config entry, its IP pool reservations, its directory on
    its nodes (file and sharedfile disks, the cloud-init seed). LVs, DRBD resources, taps and UEFI variables are
    keyed by UUID; LVs keep the C(originstname+) tag of the name they were created with, as in Ganeti. If a step
    fails, the directories already renamed are renamed back.
  - The guest's own host name is not changed (herd does not run commands in guests).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Checks everything and reports the steps it would take.
  diff_mode:
    support: full
    description: The instance before and after.
options:
  name:
    description: The instance's current name.
    type: str
    required: true
  new_name:
    description: Its new name (a host name, like any instance name).
    type: str
    required: true
'''

EXAMPLES = r'''
- name: Stop web1
  herd.cluster.instance:
    name: web1.example.org
    state: stopped

- name: Rename it
  herd.cluster.instance_rename:
    name: web1.example.org
    new_name: www1.example.org

- name: Start it under the new name
  herd.cluster.instance:
    name: www1.example.org
    state: running
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
instance:
  description: The instance under its new name (as C(herd.cluster.instance) returns it).
  returned: always
  type: dict
actions:
  description: The steps taken (or, in check mode, that would be taken).
  returned: when the instance is renamed
  type: list
  elements: str
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import rename


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        new_name=dict(type='str', required=True),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('name', 'new_name'))
    module.exit_json(**run(module, rename.rename, spec))


if __name__ == '__main__':
    main()
