#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: volume_group
short_description: Physical volumes to an LVM volume group, refusing anything destructive
version_added: 0.1.0
description:
  - "Makes the devices in I(pvs) the physical volumes of the volume group I(name): creates the volume group when it
    does not exist, extends it with devices that are not yet in it."
  - "Checks every device before changing anything. Refuses a device that does not exist or is not a block device,
    that holds a filesystem or another signature (C(blkid -p)) unless I(wipe=true), or that is a physical volume
    of another volume group (even with I(wipe): remove that volume group first)."
  - Never recreates, reduces or removes a volume group. If the volume group already exists with physical volumes
    that are not in I(pvs) (another device list, or the same name on other disks), it fails and says which
    devices it holds, because dropping them would shrink it or lose its logical volumes.
  - When LVM uses a devices file (C(devices/use_devicesfile=1)), new devices are added to it first, so each node
    sees only its own devices.
  - LVM's file descriptor warnings are suppressed (C(LVM_SUPPRESS_FD_WARNINGS=1)).
author: herd contributors (@herd-cluster)
attributes:
  check_mode:
    support: full
    description: Runs every check and returns the commands it would run.
  diff_mode:
    support: full
    description: The volume group's physical volumes before and after.
options:
  name:
    description: Volume group name (letters, digits and C(+_.-), not starting with C(-)).
    type: str
    required: true
  pvs:
    description: Block devices that make up the volume group.
    type: list
    elements: path
    required: true
  wipe:
    description:
      - Wipe filesystem and partition-table signatures (C(wipefs -a)) from new devices before use.
      - Never applies to devices that are physical volumes of another volume group.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Volume group gnt on the spare disk
  herd.cluster.volume_group:
    name: gnt
    pvs: [/dev/sdb]
'''

RETURN = r'''
vg:
  description: The volume group after the change (in check mode, as it would be).
  returned: always
  type: dict
  sample: {"name": "gnt", "pvs": ["/dev/loop3"], "lv_count": 0, "size_bytes": 1069547520, "free_bytes": 1069547520}
  contains:
    name:
      description: Volume group.
      type: str
    lv_count:
      description: Logical volumes.
      type: int
    size_bytes:
      description: Size in bytes (null in check mode for a new one).
      type: int
    free_bytes:
      description: Free bytes.
      type: int
    pvs:
      description: Physical volumes.
      type: list
      elements: str
commands:
  description: The commands run (or that would run in check mode).
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.herd import vgsetup
from ansible_collections.herd.cluster.plugins.module_utils.herd.errors import HerdError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            pvs=dict(type='list', elements='path', required=True),
            wipe=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = vgsetup.ensure(module.params, module.run_command, module.check_mode)
    except vgsetup.VgError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except HerdError as exc:  # an invalid name
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop('diff')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
