#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: hypervisor_facts
short_description: Whether KVM is usable on a node, its CPU flags and QEMU's CPU models
version_added: 0.1.0
description:
  - "Decides whether C(/dev/kvm) is usable - not only present - by opening it, asking C(KVM_GET_API_VERSION) and
    then starting QEMU with C(-accel kvm -cpu host) on a 16-byte firmware that writes to the C(isa-debug-exit) port:
    KVM is usable only when that guest runs to its exit. (On nested or broken hosts C(/dev/kvm) exists but QEMU
    asserts on MSRs or the guest hangs.)"
  - Reads the CPU vendor, model and flags from C(/proc/cpuinfo) and the CPU models this QEMU knows
    (C(-cpu help)), for choosing a C(cpu_type) every node supports (filter C(herd.cluster.cpu_type)).
author: herd contributors (@herd-cluster)
attributes:
  check_mode:
    support: full
    description: Read-only (the probe guest changes nothing).
  diff_mode:
    support: none
    description: Reports facts only; there is nothing to diff.
options:
  qemu:
    description: The QEMU system emulator.
    type: path
    default: /usr/bin/qemu-system-x86_64
  probe:
    description: Start the probe guest (with C(false), only the device and the ioctl are checked).
    type: bool
    default: true
  probe_timeout:
    description: Seconds the probe guest may take before KVM is declared unusable.
    type: int
    default: 20
'''

EXAMPLES = r'''
- name: KVM and CPU facts
  herd.cluster.hypervisor_facts:
  register: hv
'''

RETURN = r'''
kvm:
  description: C(usable) (bool) and C(reason) (why not).
  returned: always
  type: dict
  sample: {"usable": false, "reason": "QEMU could not run a KVM guest: kvm_buf_set_msrs: Assertion failed"}
  contains:
    usable:
      description: Whether KVM guests can run.
      type: bool
    reason:
      description: Why not (empty when usable).
      type: str
cpu:
  description: C(vendor), C(model_name) and C(flags) (sorted) of the node's CPU.
  returned: always
  type: dict
  contains:
    vendor:
      description: CPU vendor.
      type: str
    model_name:
      description: CPU model.
      type: str
    flags:
      description: CPU flags, sorted.
      type: list
      elements: str
qemu:
  description: C(installed), C(version) and C(models) (the C(-cpu help) names).
  returned: always
  type: dict
  contains:
    installed:
      description: Whether QEMU is installed.
      type: bool
    version:
      description: QEMU's version.
      type: str
    models:
      description: CPU models of C(-cpu help).
      type: list
      elements: str
'''

import os
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.herd.agent import facts
from ansible_collections.herd.cluster.plugins.module_utils.timeout_option import timeout_arg

PROBE_EXIT = 0x31  # guest writes it to port 0xf4; isa-debug-exit makes QEMU exit with (0x31 << 1) | 1
PROBE_RC = (PROBE_EXIT << 1) | 1


def probe_bios():
    """64 KiB firmware whose reset vector does: mov al, 0x31; out 0xf4, al; hlt."""
    image = bytearray(65536)
    image[0xFFF0:0xFFF5] = bytes([0xB0, PROBE_EXIT, 0xE6, 0xF4, 0xF4])
    return bytes(image)


def cpu_info():
    info = facts.cpu_info()
    return dict(vendor=info['vendor'], model_name=info['model'], flags=info['flags'])


def kvm_status(module, qemu, probe, timeout):
    status = facts.kvm_device_status()
    if not status['usable']:
        return status
    if not probe:
        return dict(usable=True, reason='')
    if not os.access(qemu, os.X_OK):
        return dict(usable=False, reason='%s is not installed; cannot try a KVM guest' % qemu)
    tmpdir = tempfile.mkdtemp(prefix='herd-kvm-probe-')
    try:
        bios = os.path.join(tmpdir, 'probe.bin')
        with open(bios, 'wb') as handle:
            handle.write(probe_bios())
        args = ['timeout', '--kill-after=5', str(timeout), qemu, '-machine', 'pc,accel=kvm', '-cpu', 'host',
                '-smp', '2', '-m', '16', '-display', 'none', '-nodefaults', '-no-user-config',
                '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-bios', bios]
        rc, out, err = module.run_command(args)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if rc == PROBE_RC:
        return dict(usable=True, reason='')
    if rc in (124, 137):
        return dict(usable=False, reason='a KVM probe guest did not finish within %ds (it hangs under KVM here)'
                                         % timeout)
    lines = [line for line in err.strip().splitlines() if 'warning' not in line] or err.strip().splitlines()
    return dict(usable=False, reason='QEMU could not run a KVM guest (exit %d): %s'
                                     % (rc, lines[-1] if lines else 'no message'))


def qemu_info(module, qemu):
    if not os.access(qemu, os.X_OK):
        return dict(installed=False, version=None, models=[])
    rc, out, _err = module.run_command([qemu, '--version'])
    match = re.search(r'version (\S+)', out)
    rc2, out2, _err2 = module.run_command([qemu, '-cpu', 'help'])
    models = facts.parse_cpu_models(out2) if rc2 == 0 else []
    return dict(installed=True, version=match.group(1) if match else None, models=models)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            qemu=dict(type='path', default='/usr/bin/qemu-system-x86_64'),
            probe=dict(type='bool', default=True),
            probe_timeout=timeout_arg(20),
        ),
        supports_check_mode=True,
    )
    qemu = module.params['qemu']
    module.exit_json(changed=False,
                     kvm=kvm_status(module, qemu, module.params['probe'], module.params['probe_timeout']),
                     cpu=cpu_info(), qemu=qemu_info(module, qemu))


if __name__ == '__main__':
    main()
