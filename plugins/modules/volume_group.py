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

import json
import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule

VG_RE = r'^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$'
LVM_ENV = {'LVM_SUPPRESS_FD_WARNINGS': '1'}


class Lvm(object):
    def __init__(self, module):
        self.module = module

    def run(self, args, check=True):
        rc, out, err = self.module.run_command(args, environ_update=LVM_ENV)
        if check and rc != 0:
            self.module.fail_json(msg='%s failed (rc %d): %s' % (' '.join(args), rc, err.strip()), rc=rc,
                                  stdout=out, stderr=err)
        return rc, out, err

    def report(self, args, key):
        rc, out, err = self.run(args + ['--reportformat', 'json'], check=False)
        if rc != 0:
            return None, err.strip()
        try:
            return json.loads(out)['report'][0][key], ''
        except (ValueError, KeyError, IndexError):
            return None, 'unexpected output of %s' % ' '.join(args)

    def vg(self, name):
        rows, err = self.report(['vgs', '--units', 'b', '--nosuffix', '-o', 'vg_name,lv_count,vg_size,vg_free'], 'vg')
        for row in rows or []:
            if row['vg_name'] == name:
                pvs, _err = self.report(['pvs', '-o', 'pv_name,vg_name', '--select', 'vg_name=%s' % name], 'pv')
                return dict(name=name, lv_count=int(row['lv_count']), size_bytes=int(row['vg_size']),
                            free_bytes=int(row['vg_free']), pvs=sorted(real(p['pv_name']) for p in pvs or []))
        return None

    def pv_vg(self, device):
        """Volume group of the PV on device ('' for an orphan PV), read even if the devices file hides it."""
        rows, _err = self.report(['pvs', '--devices', device, '-o', 'pv_name,vg_name', device], 'pv')
        if rows:
            return rows[0].get('vg_name', '')
        return ''

    def devices_file_enabled(self):
        rc, out, _err = self.run(['lvmconfig', '--typeconfig', 'full', 'devices/use_devicesfile'], check=False)
        return rc == 0 and out.strip().endswith('=1')

    def devices_file_entries(self):
        rc, out, _err = self.run(['lvm', 'lvmdevices'], check=False)
        entries = set()
        for token in out.split():
            if token.startswith('DEVNAME='):
                entries.add(real(token.split('=', 1)[1]))
        return entries


def real(path):
    return os.path.realpath(path)


def blkid(module, device):
    """Signatures on the device: {} when blank, else e.g. {'TYPE': 'ext4', 'UUID': ...}."""
    rc, out, err = module.run_command(['blkid', '-p', '-o', 'export', device])
    if rc == 2:  # nothing found
        return {}
    if rc != 0:
        module.fail_json(msg='blkid -p %s failed (rc %d): %s' % (device, rc, err.strip()))
    values = {}
    for line in out.splitlines():
        key, _sep, value = line.partition('=')
        values[key] = value
    return values


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            pvs=dict(type='list', elements='path', required=True),
            wipe=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    name = module.params['name']
    wipe = module.params['wipe']
    if not re.match(VG_RE, name) or name in ('.', '..'):
        module.fail_json(msg='invalid volume group name %r: expected letters, digits and +_.- not starting with -' % name)
    if not module.params['pvs']:
        module.fail_json(msg='pvs is empty: give the devices of volume group %s' % name)
    lvm = Lvm(module)

    # 1. every device exists and is a block device
    wanted = []
    for device in module.params['pvs']:
        try:
            mode = os.stat(device).st_mode
        except OSError:
            module.fail_json(msg='device %s for volume group %s does not exist on this node; nothing was changed'
                             % (device, name))
        if not stat.S_ISBLK(mode):
            module.fail_json(msg='%s for volume group %s is not a block device; nothing was changed' % (device, name))
        if real(device) not in wanted:
            wanted.append(real(device))

    current = lvm.vg(name)
    have = current['pvs'] if current else []
    # 2. never shrink or recreate
    extra = [d for d in have if d not in wanted]
    if extra:
        if not set(have) & set(wanted):
            module.fail_json(
                msg='volume group %s already exists on %s, not on the requested %s; herd never recreates a volume '
                    'group (it holds %d logical volume(s)). Fix the device list in the inventory, or remove the '
                    'volume group by hand if it really must go' % (name, ', '.join(have), ', '.join(wanted),
                                                                   current['lv_count']),
                vg=current)
        module.fail_json(
            msg='volume group %s holds physical volume(s) %s that are not in the requested device list %s; herd '
                'never shrinks a volume group (it holds %d logical volume(s) whose extents may live there). To remove '
                'a disk, move its extents away (pvmove) and vgreduce it by hand, then update the inventory'
                % (name, ', '.join(extra), ', '.join(wanted), current['lv_count']), vg=current)

    # 3. the new devices are free, or may be wiped
    new = [d for d in wanted if d not in have]
    commands = []
    to_wipe = []
    for device in new:
        signature = blkid(module, device)
        kind = signature.get('TYPE') or signature.get('PTTYPE')
        if signature.get('TYPE') == 'LVM2_member':
            owner = lvm.pv_vg(device)
            if owner and owner != name:
                module.fail_json(msg='device %s is a physical volume of volume group %s; herd will not take it into %s '
                                     '(not even with wipe). Remove volume group %s first if it is unused'
                                     % (device, owner, name, owner))
            continue  # an orphan PV: usable as it is
        if kind:
            what = ('a %s filesystem' % kind) if signature.get('TYPE') else ('a %s partition table' % kind)
            if not wipe:
                module.fail_json(msg='device %s holds %s (blkid: %s); refusing to use it for volume group %s. Set '
                                     'wipe (node_storage_wipe: true) to destroy it; nothing was changed'
                                     % (device, what, ' '.join('%s=%s' % kv for kv in sorted(signature.items())),
                                        name))
            to_wipe.append(device)

    # 4. plan
    if new and lvm.devices_file_enabled():
        listed = lvm.devices_file_entries()
        for device in new:
            if device not in listed:
                commands.append(['lvm', 'lvmdevices', '--yes', '--adddev', device])
    for device in to_wipe:
        commands.append(['wipefs', '-a', device])
    if new:
        commands.append(['pvcreate', '-y'] + new)
        commands.append(['vgextend', name] + new if current else ['vgcreate', name] + new)

    if commands and not module.check_mode:
        for args in commands:
            lvm.run(args)
        after = lvm.vg(name)
        if after is None or any(d not in after['pvs'] for d in wanted):
            module.fail_json(msg='volume group %s does not hold %s after %s' % (name, ', '.join(wanted), commands),
                             vg=after)
    else:
        after = dict(current) if current else dict(name=name, lv_count=0, size_bytes=None, free_bytes=None)
        after['pvs'] = sorted(set(have) | set(wanted))
    result = dict(changed=bool(commands), vg=after, commands=commands)
    if module._diff:
        result['diff'] = dict(before=dict(name=name, pvs=have, exists=current is not None),
                              after=dict(name=name, pvs=after['pvs'], exists=True))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
