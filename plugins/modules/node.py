#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: node
short_description: Add, modify or remove a cluster node (gnt-node add/modify/remove)
version_added: 0.1.0
description:
  - With I(state=present), adds the node if the cluster does not know it, otherwise sets the declared flags.
  - The node's SSH host key is read from the master's known_hosts (filled by the C(herd.cluster.node_base) role)
    or given in I(ssh_host_key); it is recorded in the config and is the only key accepted afterwards.
  - With I(state=absent), removes the node; refused for the master and while it holds instances.
  - Draining or taking a node offline demotes it from master candidate unless I(master_candidate) is given.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Contacts the new node read-only (facts, membership) and reports the plan; writes nothing.
  diff_mode:
    support: full
    description: Before and after of the node's config entry.
options:
  name:
    description: Node name (its hostname).
    type: str
    required: true
  state:
    description: C(present) adds or modifies, C(absent) removes.
    type: str
    choices: [present, absent]
    default: present
  primary_ip:
    description: Primary IP, through which the master reaches the node. Required to add a node.
    type: str
  secondary_ip:
    description: Secondary IP for replication and migration. Defaults to I(primary_ip).
    type: str
  group:
    description: Node group; created if it does not exist.
    type: str
  master_candidate:
    description: Whether the node holds a copy of the config and may become master.
    type: bool
  drained:
    description: A drained node receives no new instances.
    type: bool
  offline:
    description: An offline node is not contacted at all (a dead node).
    type: bool
  vm_capable:
    description: Whether instances may run on the node.
    type: bool
  master_capable:
    description: Whether the node may become a master candidate.
    type: bool
  tags:
    description: Node tags; the list replaces the current tags.
    type: list
    elements: str
  ssh_port:
    description: SSH port of the node's sshd.
    type: int
  ssh_host_key:
    description: The node's public host key line (C(ssh-ed25519 AAAA...)), instead of the master's known_hosts.
    type: str
'''

EXAMPLES = r'''
- name: Add a node
  herd.cluster.node:
    name: ganeti02
    primary_ip: 192.0.2.12
    secondary_ip: 198.51.100.12

- name: Drain a node before maintenance
  herd.cluster.node:
    name: ganeti02
    drained: true

- name: Remove an empty node
  herd.cluster.node:
    name: ganeti03
    state: absent
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
node:
  description: The node's config entry after the change (null after removal).
  returned: always
  type: dict
  contains:
    name:
      description: Node name.
      type: str
    primary_ip:
      description: Primary address.
      type: str
    secondary_ip:
      description: Secondary (replication and migration) address.
      type: str
    group:
      description: Node group.
      type: str
    master_candidate:
      description: Whether it holds a copy of the config and can become master.
      type: bool
    drained:
      description: 'Drained: no new instances are placed there.'
      type: bool
    offline:
      description: 'Offline: not contacted.'
      type: bool
    vm_capable:
      description: Whether it runs instances.
      type: bool
    master_capable:
      description: Whether it may become master candidate.
      type: bool
    ndparams:
      description: Node parameters set on this node (C(ssh_port), ...).
      type: dict
    tags:
      description: Tags.
      type: list
      elements: str
    ssh_host_key_types:
      description: Types of the SSH host keys the cluster knows for it.
      type: list
      elements: str
facts:
  description: What the new node reported when it was added.
  returned: when a node is added
  type: dict
  contains:
    hostname:
      description: The node's hostname.
      type: str
    memory_total:
      description: MiB.
      type: int
    memory_free:
      description: MiB.
      type: int
    cpu_count:
      description: CPUs.
      type: int
    kernel:
      description: Kernel release.
      type: str
    qemu_version:
      description: QEMU version, or null.
      type: str
    kvm:
      description: C(usable) and C(reason).
      type: dict
    agent_version:
      description: herd-node agent version.
      type: str
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import node as node_op

PARAMS = ('name', 'primary_ip', 'secondary_ip', 'group', 'master_candidate', 'drained', 'offline', 'vm_capable',
          'master_capable', 'tags', 'ssh_port', 'ssh_host_key')


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        primary_ip=dict(type='str'),
        secondary_ip=dict(type='str'),
        group=dict(type='str'),
        master_candidate=dict(type='bool'),
        drained=dict(type='bool'),
        offline=dict(type='bool'),
        vm_capable=dict(type='bool'),
        master_capable=dict(type='bool'),
        tags=dict(type='list', elements='str'),
        ssh_port=dict(type='int'),
        ssh_host_key=dict(type='str', no_log=False),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((key, module.params[key]) for key in PARAMS)
    op = node_op.present if module.params['state'] == 'present' else node_op.absent
    module.exit_json(**run(module, op, spec))


if __name__ == '__main__':
    main()
