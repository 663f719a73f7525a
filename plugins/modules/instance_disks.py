#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_disks
short_description: Activate an instance's disks on its nodes (gnt-instance activate-disks)
version_added: 0.1.0
description:
  - Makes the disks of an instance active on its nodes, as Ganeti's C(activate-disks) does, without starting
    or stopping the instance. After a node reboot its DRBD devices are unconfigured and an instance that kept
    running on its primary is degraded until they are up again; this brings them up.
  - C(drbd) resources are configured on both nodes (volumes activated, attached, connected; never promoted) and
    a resource left StandAlone on one side is reconnected. StandAlone on both sides is a split brain and is
    refused (resolve it with M(herd.cluster.instance_replace_disks) and I(split_brain_survivor)). An offline
    secondary is skipped with a warning; an offline primary is refused.
  - C(plain) volumes are activated on the primary (C(lvchange -ay)). C(file), C(sharedfile) and C(diskless)
    disks have nothing to activate.
  - Without I(name), every instance whose admin state is up (those whose disks should be active) is handled,
    which is what C(playbooks/watcher.yml) does after a node reboot. One instance that fails does not stop the
    others; the task fails at the end naming each.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Reads the disks' state on the nodes and returns what would be activated; nothing is touched.
  diff_mode:
    support: full
    description: Whether the disks were active before and after (with I(name)).
options:
  name:
    description:
      - The instance. Without it, every instance whose admin state is up and whose primary is online.
    type: str
  state:
    description: C(active) makes the disks active on the instance's nodes.
    type: str
    choices: [active]
    default: active
'''

EXAMPLES = r'''
- name: Bring the disks of web1 up on both its nodes after a reboot
  herd.cluster.instance_disks:
    name: web1.example.org
    state: active

- name: What the watcher would activate, cluster-wide
  herd.cluster.instance_disks:
    state: active
  check_mode: true
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
  description: The instance (with I(name)).
  returned: with name
  type: str
actions:
  description: What was activated (or, in check mode, would be), one line per disk and node.
  returned: with name
  type: list
  elements: str
left_out:
  description: Nodes or instances left out and why (an offline node, a node that does not answer yet).
  returned: always
  type: list
  elements: str
activated:
  description: Without I(name), the instances whose disks were activated, each with its C(actions).
  returned: without name
  type: list
  elements: dict
failures:
  description: Without I(name), the instances whose disks could not be activated, each with C(instance) and C(reason).
  returned: without name
  type: list
  elements: dict
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import (  # noqa: E402
    COMMON_ARGS, exit_or_fail_on_failures, run)
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import activate_disks  # noqa: E402


def main():
    argument_spec = dict(
        name=dict(type='str'),
        state=dict(type='str', choices=['active'], default='active'),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params['name']:
        spec = dict(name=module.params['name'], state=module.params['state'], promote=False)
        module.exit_json(**run(module, activate_disks.activate, spec))
    exit_or_fail_on_failures(module, run(module, activate_disks.activate_all, {'state': module.params['state']}))


if __name__ == '__main__':
    main()
