#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: node_settings
short_description: Merge keys into a node's local herd settings (/etc/herd/node.json)
version_added: 0.1.0
description:
  - The node bootstrap roles record what they found or set up on a node (for example C(kvm_usable),
    C(lvm_driverloaded), C(vg_name), C(reserved_lvs)) in one JSON object that the herd-node agent reads.
  - Each role owns its own keys; this module replaces only the top-level keys it is given and keeps the others,
    so roles never overwrite each other's settings.
  - The file is written atomically (temporary file, fsync, rename) with mode 0644, and only when a value changes.
author: herd contributors (@herd-cluster)
attributes:
  check_mode:
    support: full
    description: Reports whether the file would change.
  diff_mode:
    support: full
    description: The JSON document before and after.
options:
  path:
    description: The settings file.
    type: path
    default: /etc/herd/node.json
  settings:
    description: Top-level keys and their values to set.
    type: dict
    required: true
  remove:
    description: Top-level keys to remove.
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: Record that /dev/kvm is not usable on this node
  herd.cluster.node_settings:
    settings:
      kvm_usable: false
      kvm_reason: QEMU asserted on MSR 0x10a
'''

RETURN = r'''
settings:
  description: The whole settings document after the change.
  returned: always
  type: dict
  sample: {"kvm_usable": false, "lvm_driverloaded": false}
'''

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


def dump(data):
    return json.dumps(data, indent=2, sort_keys=True) + '\n'


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/herd/node.json'),
            settings=dict(type='dict', required=True),
            remove=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    )
    path = module.params['path']
    current = {}
    raw = None
    if os.path.exists(path):
        with open(path) as handle:
            raw = handle.read()
        try:
            current = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            module.fail_json(msg='%s is not valid JSON (%s); fix or remove it, herd will not overwrite it' % (path, exc))
        if not isinstance(current, dict):
            module.fail_json(msg='%s does not hold a JSON object; fix or remove it' % path)
    after = dict(current)
    after.update(module.params['settings'])
    for key in module.params['remove']:
        after.pop(key, None)
    # normalise through JSON so comparison is honest (tuples, ints vs floats as JSON sees them)
    after = json.loads(json.dumps(after))
    new_raw = dump(after)
    changed = raw is None or current != after
    if changed and not module.check_mode:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.node-')
        try:
            with os.fdopen(fd, 'w') as handle:
                handle.write(new_raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    result = dict(changed=changed, settings=after)
    if module._diff:
        result['diff'] = dict(before=raw or '', after=new_raw, before_header=path, after_header=path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
