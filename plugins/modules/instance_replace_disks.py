#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_replace_disks
short_description: Give a drbd instance a new secondary node (gnt-instance replace-disks -n / -I)
version_added: 0.1.0
description:
  - Ganeti's C(replace-disks) in mode C(replace_new_secondary) for C(drbd) instances. The instance keeps running
    on its primary throughout; the primary's DRBD is only disconnected and reconnected.
  - Before anything is touched it checks the new node (not the instance's primary or secondary; in the cluster,
    online, not drained, vm_capable; room in its volume group; DRBD loaded; nothing left there of this
    instance's disks) and that the primary's disks are UpToDate.
  - Then, as Ganeti does, it allocates DRBD minors on the new node, creates the data and meta volumes and the DRBD
    device there standalone, shuts DRBD down on the old secondary, disconnects the primary, switches the
    secondary in the config in one commit, connects the primary to the new secondary, waits for the resync
    (progress in the job log, M(herd.cluster.job_info)) and only then removes the old secondary's volumes.
  - A failure before the config switch is rolled back (what was created on the new node is removed, the old
    secondary comes up again and the primary reconnects to it, the config is unchanged). Nothing of the
    instance's data is deleted before the new secondary is in the config. After the switch the job goes
    forward only; if it stops there (an error, a timeout, a lost master) the next run of this module on the
    instance finishes it.
  - An offline old secondary is skipped (no shutdown, no removal) with a warning naming what is left there.
  - With I(split_brain_survivor) it resolves a DRBD split brain instead, as the operator decides.
  - "With I(mode) C(replace_on_primary), C(replace_on_secondary) or C(replace_auto) (Ganeti's C(-p), C(-s), C(-a))
    it rebuilds the disks on the instance's own nodes instead: on that node every disk gets new data and meta
    volumes (the old ones are set aside as C(<lv>_replaced-<time>)), which DRBD syncs in full from the other node;
    the old volumes are removed after the resync. C(replace_auto) picks the node whose disks are faulty
    (Diskless after an I/O error, Failed, Inconsistent and not syncing) and does nothing when none is."
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Checks everything, chooses the node and the minors, and returns the plan; nothing is touched.
  diff_mode:
    support: full
    description: The instance before and after (its C(secondary_node) old and new).
options:
  name:
    description: The drbd instance.
    type: str
    required: true
  remote_node:
    description:
      - The new secondary node (C(-n)). When it already is the secondary nothing is done (C(changed=false)).
      - Without it the allocator chooses (hail relocate, C(-I)); every such run moves the secondary again.
    type: str
  mode:
    description:
      - C(replace_new_secondary) (the default) moves the secondary to I(remote_node) or the allocator's node.
      - C(replace_on_primary), C(replace_on_secondary), C(replace_auto) rebuild the disks on the instance's own
        nodes; the other node must be connected and UpToDate.
    type: str
    choices: [replace_new_secondary, replace_on_primary, replace_on_secondary, replace_auto]
  wait_for_sync:
    description:
      - Wait until the new secondary is in sync before removing the old secondary's volumes.
      - With C(false) the module returns once the new secondary is connected; the old volumes are removed at
        once (Ganeti's early release) and the resync continues in the background.
    type: bool
    default: true
  sync_timeout:
    description: Seconds to wait for the resync. On timeout the module fails; the config already names the new
      secondary, the old volumes are kept, and running the module again waits and finishes.
    type: int
    default: 86400
  split_brain_survivor:
    description:
      - Resolve a DRBD split brain instead of replacing the secondary. The named node (the instance's primary or
        secondary) keeps its data; the other node is demoted and reconnects with C(--discard-my-data), so DRBD
        resyncs it from the survivor and the changes made there since the split are lost.
      - Only disks that are not connected are touched; when every disk is connected nothing is done
        (C(changed=false)). Refused while the instance is marked running on the node whose data would be
        discarded. Excludes I(remote_node). See docs/storage.md, "Split brain".
    type: str
'''

EXAMPLES = r'''
- name: Move the drbd secondary of web1 to node3
  herd.cluster.instance_replace_disks:
    name: web1.example.org
    remote_node: node3.example.org

- name: After a split brain, keep node2's data and resync node1 from it
  herd.cluster.instance_replace_disks:
    name: web1.example.org
    split_brain_survivor: node2.example.org

- name: Let the allocator choose a new secondary, and see the plan first
  herd.cluster.instance_replace_disks:
    name: web1.example.org
  check_mode: true
  diff: true
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
  description: Its primary node (unchanged).
  returned: always
  type: str
old_secondary:
  description: The secondary before.
  returned: always
  type: str
new_secondary:
  description: The secondary after (or in check mode, the one it would get).
  returned: always
  type: str
minors:
  description: The DRBD minors on the new secondary, one per disk.
  returned: when a new secondary is chosen
  type: list
  elements: int
reasons:
  description: The allocator's lines about the nodes it rejected, when it chose the node.
  returned: when a new secondary is chosen
  type: list
  elements: str
actions:
  description: The steps done (or, in check mode, planned).
  returned: always
  type: list
  elements: str
synced:
  description: Whether the new secondary was seen in sync (null in check mode or when nothing changed).
  returned: always
  type: bool
left_on_old:
  description: Volumes left on the old secondary (offline, or their removal failed; see the warnings).
  returned: when the secondary was replaced
  type: list
  elements: str
survivor:
  description: The node whose data was kept (with I(split_brain_survivor)).
  returned: with split_brain_survivor
  type: str
replaced_on:
  description: The node whose disks were rebuilt (null when C(replace_auto) found nothing faulty).
  returned: with a mode that rebuilds on the same nodes
  type: str
discarded_on:
  description: The node whose changes were discarded (null when nothing needed resolving).
  returned: with split_brain_survivor
  type: str
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run, timeout_arg  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import replace_disks  # noqa: E402


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        remote_node=dict(type='str'),
        wait_for_sync=dict(type='bool', default=True),
        sync_timeout=timeout_arg(86400),
        split_brain_survivor=dict(type='str'),
        mode=dict(type='str', choices=['replace_new_secondary', 'replace_on_primary', 'replace_on_secondary',
                                       'replace_auto']),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('remote_node', 'split_brain_survivor'),
                                               ('mode', 'split_brain_survivor')])
    spec = dict((k, module.params[k]) for k in ('name', 'remote_node', 'wait_for_sync', 'sync_timeout',
                                                'split_brain_survivor', 'mode'))
    module.exit_json(**run(module, replace_disks.replace, spec))


if __name__ == '__main__':
    main()
