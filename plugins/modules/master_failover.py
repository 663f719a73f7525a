#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: master_failover
short_description: Make this master candidate the cluster's master (gnt-cluster master-failover)
version_added: 0.1.0
description:
  - Run on a master candidate when the master is gone. It takes over when the master does not answer, a
    strict majority of the cluster's online nodes answer, none of them still reaches the old master, and
    this node holds the newest config; a newer copy held by another candidate is fetched first.
  - The takeover raises the cluster's master epoch, writes the config to every reachable master candidate and
    the ssconf to every other reachable node, and moves the floating I(master_ip) of the cluster to this
    node's I(master_netdev).
  - Run on the master itself, it re-synchronises the nodes that are behind, like C(gnt-cluster redist-conf);
    a returning old master gets the newest config and ssconf (so it knows it is no longer master and refuses
    to act as one) and loses the master IP. Nothing to do means C(changed=false).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Asks the nodes and reports the takeover or re-synchronisation it would do; writes nothing.
  diff_mode:
    support: full
    description: The master, master epoch and master IP before and after; the stale nodes for a re-sync.
options:
  no_voting:
    description:
      - Take over without the agreement of the other nodes (Ganeti's C(--no-voting)). Needed in a two-node
        cluster whose master is down, where no majority can answer. Dangerous when the old master is only cut
        off; the module warns loudly.
    type: bool
    default: false
notes:
  - Unlike the other cluster modules this one runs on a master candidate, not on the master.
'''

EXAMPLES = r'''
- name: node2 takes over from a dead master
  herd.cluster.master_failover:
  delegate_to: node2

- name: Two-node cluster, the other node is known to be down
  herd.cluster.master_failover:
    no_voting: true
  delegate_to: node2

- name: After the old master is back, re-synchronise it from the new master
  herd.cluster.master_failover:
  delegate_to: node2
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
master_node:
  description: The master after the run (this node).
  returned: always
  type: str
old_master:
  description: The master taken over from; null when this node already was the master.
  returned: always
  type: str
votes:
  description: What each other online node answered (answered, serial, master_epoch, master, sees_master, error).
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: Node asked.
      type: str
    answered:
      description: Whether it answered.
      type: bool
    serial:
      description: Its config serial.
      type: int
    master_epoch:
      description: Its config's master epoch.
      type: int
    master:
      description: The master it knows.
      type: str
    sees_master:
      description: Whether it reaches the old master.
      type: bool
    error:
      description: Why it did not answer.
      type: str
fetched_config_from:
  description: The candidate whose newer config was fetched before the takeover, or null.
  returned: always
  type: str
no_voting:
  description: Whether the takeover skipped the voting.
  returned: always
  type: bool
resynced:
  description: Nodes re-synchronised by a run on the master.
  returned: when this node already was the master
  type: list
  elements: str
unreachable_nodes:
  description: Nodes that did not answer (updated when they are back and this runs again).
  returned: success
  type: list
  elements: str
serial_no:
  description: The config serial after the run.
  returned: success and not check mode
  type: int
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import master as master_op


def main():
    argument_spec = dict(no_voting=dict(type='bool', default=False))
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    result = run(module, master_op.failover, {'no_voting': module.params['no_voting']})
    module.exit_json(**result)


if __name__ == '__main__':
    main()
