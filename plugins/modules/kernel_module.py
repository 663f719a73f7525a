#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kernel_module
short_description: Load a kernel module and verify it and its parameters
version_added: 0.1.0
description:
  - Loads I(name) with C(modprobe) when it is not loaded yet, then verifies that C(/sys/module/<name>) exists.
  - Compares the parameters in C(/sys/module/<name>/parameters) with I(params) and warns about differences (a loaded
    module keeps its parameters until it is unloaded, which herd never does behind the operator's back).
  - Where the module cannot be loaded (no such module for this kernel), fails with a clear message; with
    I(allow_missing=true) (test machines) it warns instead and returns C(loaded=false).
author: herd contributors (@herd-cluster)
attributes:
  check_mode:
    support: full
    description: Uses C(modprobe --dry-run) to tell whether the module would load.
  diff_mode:
    support: none
    description: No diff is returned.
options:
  name:
    description: Module name, for example C(drbd).
    type: str
    required: true
  params:
    description: Expected parameters (as C(modprobe.d) sets them), compared after loading.
    type: dict
    default: {}
  allow_missing:
    description: Warn instead of failing when the module cannot be loaded.
    type: bool
    default: false
  hint:
    description: Extra text appended to the failure message (what to do about it).
    type: str
    default: ''
'''

EXAMPLES = r'''
- name: Load drbd
  herd.cluster.kernel_module:
    name: drbd
    params:
      minor_count: 128
      usermode_helper: /bin/true
'''

RETURN = r'''
loaded:
  description: Whether the module is loaded after the run (in check mode, whether it would be).
  returned: always
  type: bool
version:
  description: The module's version from C(/sys/module/<name>/version), when it has one.
  returned: always
  type: str
params:
  description: The parameters the loaded module has.
  returned: always
  type: dict
mismatched:
  description: Parameters whose loaded value differs from I(params).
  returned: always
  type: dict
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule


def read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            params=dict(type='dict', default={}),
            allow_missing=dict(type='bool', default=False),
            hint=dict(type='str', default=''),
        ),
        supports_check_mode=True,
    )
    name = module.params['name']
    if not re.match(r'^[A-Za-z0-9_-]+$', name):
        module.fail_json(msg='invalid module name %r' % name)
    sysdir = '/sys/module/%s' % name.replace('-', '_')
    changed = False
    loaded = os.path.isdir(sysdir)
    error = None
    if not loaded:
        args = ['modprobe', '--dry-run', name] if module.check_mode else ['modprobe', name]
        rc, out, err = module.run_command(args)
        if rc != 0:
            error = err.strip() or out.strip() or 'modprobe exited %d' % rc
        elif module.check_mode:
            changed = True
        else:
            changed = True
            loaded = os.path.isdir(sysdir)
            if not loaded:
                error = 'modprobe %s succeeded but %s does not exist' % (name, sysdir)
    if error:
        msg = ('kernel module %s cannot be loaded on this node (kernel %s): %s. %s'
               % (name, os.uname()[2], error, module.params['hint'])).strip()
        if not module.params['allow_missing']:
            module.fail_json(msg=msg, loaded=False)
        module.warn(msg + ' (allowed by allow_missing: continuing without it)')
        module.exit_json(changed=False, loaded=False, version=None, params={}, mismatched={})

    have = {}
    if os.path.isdir(os.path.join(sysdir, 'parameters')):
        for pname in sorted(os.listdir(os.path.join(sysdir, 'parameters'))):
            value = read(os.path.join(sysdir, 'parameters', pname))
            if value is not None:
                have[pname] = value
    mismatched = {}
    for pname, want in module.params['params'].items():
        want_s = str(want).lower() if isinstance(want, bool) else str(want)
        if pname in have and have[pname] != want_s:
            mismatched[pname] = dict(loaded=have[pname], wanted=want_s)
    if mismatched:
        module.warn('kernel module %s is loaded with other parameters than configured (%s); they apply when the '
                    'module is next loaded (after a reboot, or rmmod when no device uses it)'
                    % (name, ', '.join('%s=%s, wanted %s' % (k, v['loaded'], v['wanted'])
                                       for k, v in sorted(mismatched.items()))))
    module.exit_json(changed=changed, loaded=loaded or module.check_mode, version=read(os.path.join(sysdir, 'version')),
                     params=have, mismatched=mismatched)


if __name__ == '__main__':
    main()
