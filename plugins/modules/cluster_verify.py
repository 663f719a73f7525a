#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: cluster_verify
short_description: Check the cluster's health and consistency (gnt-cluster verify)
version_added: 0.1.0
description:
  - Checks config consistency, that every online node answers with the master's agent version, that master
    candidates hold the current config serial, that node facts are sane, and reports interrupted jobs.
  - Looks at storage on every node (the agent's C(storage_list)) - each drbd disk's state on both nodes
    (C(EINSTANCEFAULTYDISK) for degraded, disconnected, StandAlone, split-brain, out-of-sync, a missing secondary,
    a Primary left on the secondary), missing volumes, herd volumes no instance owns (C(ENODEORPHANLV)) and DRBD
    minors in use that the config does not know (C(ENODEDRBD)).
  - Checks N+1 memory redundancy with the allocator's rules (C(ENODEN1)) - not enough memory to accommodate
    instance failovers should a node fail.
  - Returns structured findings (severity, Ganeti-style code, object, message).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
  - herd.cluster.info_module
options:
  fail_on_error:
    description: Fail the task when a finding has severity C(error).
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Verify, failing the play on errors
  herd.cluster.cluster_verify:
    fail_on_error: true
'''

RETURN = r'''
ok:
  description: True when no finding is an error.
  returned: always
  type: bool
findings:
  description: Findings, errors and warnings.
  returned: always
  type: list
  elements: dict
  contains:
    severity:
      description: C(error) or C(warning).
      type: str
      sample: error
    code:
      description: What kind of finding (stable, for filtering).
      type: str
      sample: ENODEVERSION
    object:
      description: The node, instance or cluster the finding is about.
      type: str
      sample: node2
    message:
      description: What is wrong and, where known, how to fix it.
      type: str
      sample: "agent is 0.0.1, master is 0.1.0; re-run the herd.cluster.node_base role on this node"
lines:
  description: The findings as text lines.
  returned: always
  type: list
  elements: str
error_count:
  description: Number of errors.
  returned: always
  type: int
warning_count:
  description: Number of warnings.
  returned: always
  type: int
serial_no:
  description: Serial number of the configuration that was verified.
  returned: always
  type: int
  sample: 42
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import verify


def main():
    argument_spec = dict(fail_on_error=dict(type='bool', default=False))
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    result = run(module, verify.verify)
    if module.params['fail_on_error'] and not result['ok']:
        module.fail_json(msg='cluster verify found %d error(s): %s' % (result['error_count'], '; '.join(
            line for line in result['lines'] if line.startswith('ERROR'))), **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
