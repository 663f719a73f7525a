# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""herd.cluster.cpu_type: the most capable QEMU CPU model every node supports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: cpu_type
short_description: The most capable QEMU cpu_type that every node's CPU supports
version_added: 0.1.0
description:
  - Takes one entry per node (C(name), C(vendor), C(flags) from C(/proc/cpuinfo), optionally C(models), the QEMU
    models the node's QEMU knows) and returns the newest named QEMU CPU model whose feature flags every node has,
    so that live migration works between all of them (the oldest CPU in the fleet decides, never C(host)).
  - Named models are vendor specific; a fleet that mixes Intel and AMD gets C(kvm64).
  - The flag sets are the distinguishing C(/proc/cpuinfo) flags of QEMU's models (C(-noTSX) and C(-IBRS) variants
    where TSX or IBRS are not universal); QEMU still checks the full model at start.
options:
  _input:
    description:
      - List of dicts with C(name), C(vendor), C(flags) and optional C(models).
      - Or, with I(hostvars), a list of host names whose I(key) holds a C(herd.cluster.hypervisor_facts) result.
    type: list
    elements: raw
    required: true
  hostvars:
    description: The C(hostvars) to read each host's I(key) from.
    type: dict
  key:
    description: The variable holding each host's C(herd.cluster.hypervisor_facts) result.
    type: str
    default: node_hypervisor_facts
'''

EXAMPLES = r'''
- name: Fleet CPU type
  ansible.builtin.debug:
    msg: "{{ nodes | herd.cluster.cpu_type }}"

- name: From every host's registered herd.cluster.hypervisor_facts result
  ansible.builtin.debug:
    msg: "{{ groups['herd_nodes'] | herd.cluster.cpu_type(hostvars, 'node_hypervisor_facts') }}"
'''

RETURN = r'''
_value:
  description: C(cpu_type), C(per_node) (each node's own best model), C(limited_by) (the nodes whose best model is
    the fleet's), C(reason).
  type: dict
'''

from ansible.errors import AnsibleFilterError

BASE = {'fpu', 'cx8', 'cmov', 'mmx', 'fxsr', 'sse', 'sse2', 'lm', 'nx', 'syscall'}
_INTEL = [
    ('Nehalem', {'sse4_1', 'sse4_2', 'ssse3', 'popcnt', 'cx16', 'lahf_lm'}),
    ('Westmere', {'aes', 'pclmulqdq'}),
    ('SandyBridge', {'avx', 'xsave', 'x2apic', 'tsc_deadline_timer'}),
    ('IvyBridge', {'f16c', 'rdrand', 'fsgsbase', 'erms', 'smep'}),
    ('Haswell-noTSX', {'avx2', 'bmi1', 'bmi2', 'fma', 'movbe', 'invpcid', 'abm', 'pcid'}),
    ('Broadwell-noTSX', {'adx', 'rdseed', 'smap', '3dnowprefetch'}),
    ('Skylake-Server-noTSX-IBRS', {'avx512f', 'avx512dq', 'avx512cd', 'avx512bw', 'avx512vl', 'clwb', 'clflushopt',
                                   'xsavec', 'xgetbv1', 'pku', 'ibrs'}),
    ('Cascadelake-Server-noTSX', {'avx512_vnni'}),
    ('Icelake-Server-noTSX', {'avx512vbmi', 'avx512_vbmi2', 'gfni', 'vaes', 'vpclmulqdq', 'avx512_bitalg',
                              'avx512_vpopcntdq', 'rdpid', 'umip'}),
]
_AMD = [
    ('Opteron_G2', {'cx16', 'rdtscp'}),
    ('Opteron_G3', {'sse4a', 'abm', 'misalignsse', 'popcnt'}),
    ('Opteron_G4', {'avx', 'xop', 'fma4', 'aes', 'pclmulqdq', 'sse4_1', 'sse4_2', 'ssse3', 'xsave'}),
    ('Opteron_G5', {'fma', 'tbm', 'f16c'}),
]
# EPYC dropped XOP/FMA4/TBM, so it does not build on Opteron_G5
_EPYC = [
    ('EPYC', {'sse4a', 'abm', 'misalignsse', 'popcnt', 'cx16', 'rdtscp', 'aes', 'pclmulqdq', 'sse4_1', 'sse4_2',
              'ssse3', 'xsave', 'avx', 'fma', 'f16c', 'avx2', 'bmi1', 'bmi2', 'movbe', 'adx', 'rdseed', 'smap',
              'smep', 'sha_ni', 'xsavec', 'xsaveopt', 'clflushopt', 'fsgsbase', 'rdrand', '3dnowprefetch'}),
    ('EPYC-Rome', {'clwb', 'umip', 'rdpid', 'wbnoinvd'}),
    ('EPYC-Milan', {'pku', 'erms', 'fsrm', 'invpcid', 'pcid'}),
]


def _cumulative(chain, start=frozenset()):
    out, have = [], set(start) | BASE
    for name, flags in chain:
        have |= flags
        out.append((name, frozenset(have)))
    return out


# newest first, per vendor; then the vendor-neutral fall-backs
MODELS = {
    'GenuineIntel': list(reversed(_cumulative(_INTEL))),
    'AuthenticAMD': list(reversed(_cumulative(_EPYC))) + list(reversed(_cumulative(_AMD))),
}
FALLBACK = 'kvm64'


def best_model(vendor, flags, models=None):
    for name, need in MODELS.get(vendor, []):
        if need <= flags and (not models or name in models):
            return name
    return FALLBACK


def _from_hostvars(names, hostvars, key):
    entries = []
    for name in names:
        try:
            facts = hostvars[name][key]
            entries.append(dict(name=name, vendor=facts['cpu']['vendor'], flags=facts['cpu']['flags'],
                                models=(facts.get('qemu') or {}).get('models') or []))
        except (KeyError, TypeError):
            raise AnsibleFilterError('cpu_type: %s has no %s (herd.cluster.hypervisor_facts result)' % (name, key)) \
                from None
    return entries


def cpu_type(nodes, hostvars=None, key='node_hypervisor_facts'):
    if not isinstance(nodes, (list, tuple)) or not nodes:
        raise AnsibleFilterError('cpu_type expects a non-empty list of {name, vendor, flags}')
    if hostvars is not None:
        nodes = _from_hostvars(nodes, hostvars, key)
    vendors = set()
    per_node = {}
    common = None
    common_models = None
    for node in nodes:
        try:
            name, vendor, flags = node['name'], node['vendor'], set(node['flags'])
        except (KeyError, TypeError):
            raise AnsibleFilterError('cpu_type: each entry needs name, vendor and flags, got %r' % (node,)) from None
        models = set(node.get('models') or [])
        vendors.add(vendor)
        per_node[name] = best_model(vendor, flags, models)
        common = flags if common is None else common & flags
        if models:
            common_models = models if common_models is None else common_models & models
    if len(vendors) > 1:
        return dict(cpu_type=FALLBACK, per_node=per_node, limited_by=sorted(per_node),
                    reason='the nodes mix CPU vendors (%s): only a vendor-neutral model migrates between all of them'
                           % ', '.join(sorted(vendors)))
    fleet = best_model(vendors.pop(), common, common_models)
    limited = sorted(n for n, m in per_node.items() if m == fleet) or sorted(per_node)
    return dict(cpu_type=fleet, per_node=per_node, limited_by=limited,
                reason='newest QEMU model whose flags all %d node(s) have; limited by %s'
                       % (len(per_node), ', '.join(limited)))


class FilterModule(object):
    def filters(self):
        return {'cpu_type': cpu_type}
