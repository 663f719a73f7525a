#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_activate_disks
short_description: Bring an instance's disks up on its nodes (gnt-instance activate-disks)
version_added: 0.1.0
description:
  - "For C(drbd), as Ganeti's C(activate-disks): a disk that is not configured on a node, StandAlone on one side,
    or not Primary on the primary is brought up in two passes: every node of the instance (secondary first)
    activates the data and meta volumes and attaches and connects the DRBD device as secondary (a StandAlone
    side is reconnected), then the primary is made Primary. This is what brings a secondary back after its node
    rebooted (the primary waits in C(WFConnection) until then); the resync of what changed meanwhile starts at
    the handshake."
  - StandAlone on both sides is a split brain and is refused (resolve it with
    M(herd.cluster.instance_replace_disks) and I(split_brain_survivor)). A secondary that is offline or does not
    answer is left out with a warning (C(left_out)) and the resync is not waited for; an offline primary is
    refused.
  - For C(plain) an inactive volume is activated on the primary (C(lvchange -ay)); C(file) and C(sharedfile)
    disks need nothing. The device paths on the primary are returned for every template.
  - Nothing is created or removed. C(changed) is false when every disk was already up, connected and Primary on
    the primary; a resync still running is waited for with I(wait_for_sync) without being a change.
  - The same operation as M(herd.cluster.instance_disks) with I(state=active), which never promotes.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Reads the disks' state and returns the plan; nothing is touched.
  diff_mode:
    support: full
    description: Whether the disks were active before and after.
options:
  name:
    description: The instance.
    type: str
    required: true
  wait_for_sync:
    description: Wait until every drbd disk is Connected and UpToDate on both sides (C(--wait-for-sync)).
    type: bool
    default: false
  sync_timeout:
    description: Seconds to wait for the resync with I(wait_for_sync); on timeout the module fails, the disks
      stay active and the resync goes on.
    type: int
    default: 86400
'''

EXAMPLES = r'''
- name: Bring the secondary of web1 back after its node rebooted, and wait for the resync
  herd.cluster.instance_activate_disks:
    name: web1.example.org
    wait_for_sync: true
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
  description: The instance.
  returned: always
  type: str
primary_node:
  description: Its primary node.
  returned: always
  type: str
secondary_node:
  description: Its drbd secondary (null for other templates).
  returned: always
  type: str
actions:
  description: The steps done (or, in check mode, planned), one line per disk and node, then the wait for the resync.
  returned: always
  type: list
  elements: str
left_out:
  description: Nodes left out and why (an offline secondary, a secondary that does not answer yet).
  returned: always
  type: list
  elements: str
disks:
  description: Per disk, the device on the primary (C(index), C(node), C(path)); empty in check mode.
  returned: always
  type: list
  elements: dict
synced:
  description: Whether every drbd disk was seen in sync (null when it was not seen so and not waited for, and for
    the other templates).
  returned: always
  type: bool
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run, timeout_arg  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import activate_disks  # noqa: E402


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        wait_for_sync=dict(type='bool', default=False),
        sync_timeout=timeout_arg(86400),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('name', 'wait_for_sync', 'sync_timeout'))
    spec['promote'] = True
    module.exit_json(**run(module, activate_disks.activate, spec))


if __name__ == '__main__':
    main()
