#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: cluster
short_description: Initialise, modify or destroy a herd cluster (gnt-cluster init/modify/destroy)
version_added: 0.1.0
description:
  - With I(state=present) on a node that is in no cluster, initialises a cluster with this node as master.
  - With I(state=present) on the master, changes the declared parameters; parameters left out are kept.
    Mapping parameters (I(hvparams), I(beparams), ...) are merged key by key, as C(gnt-cluster modify) does.
  - With I(state=absent), destroys the cluster; refused while instances exist unless I(force=true).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Reports what would be initialised or changed; touches no node.
  diff_mode:
    support: full
    description: Before and after of the cluster parameters.
options:
  name:
    description: Cluster name.
    type: str
    required: true
  state:
    description: C(present) initialises or modifies, C(absent) destroys.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: With I(state=absent), also remove every instance and its disks.
    type: bool
    default: false
  master_node:
    description: The master's node name; must be the node this task runs on. Defaults to its hostname.
    type: str
  primary_ip:
    description: The master node's primary IP (required at init).
    type: str
  secondary_ip:
    description: The master node's secondary (replication/migration) IP. Defaults to I(primary_ip).
    type: str
  master_ip:
    description: Optional floating cluster IP.
    type: str
  master_netdev:
    description: Interface that carries I(master_ip).
    type: str
  enabled_hypervisors:
    description: Hypervisors allowed in the cluster; the first is the default.
    type: list
    elements: str
  enabled_disk_templates:
    description: Disk templates allowed (C(diskless), C(file), C(sharedfile), C(plain), C(drbd)).
    type: list
    elements: str
  volume_group:
    description: LVM volume group for C(plain) and C(drbd) disks.
    type: str
  file_storage_dir:
    description: Directory for C(file) disks on each node.
    type: path
  shared_file_storage_dir:
    description: Directory shared by all nodes for C(sharedfile) disks.
    type: path
  mac_prefix:
    description: Three-byte prefix of generated instance MACs, like C(aa:00:00).
    type: str
  hvparams:
    description: Default hypervisor parameters, keyed by hypervisor.
    type: dict
  beparams:
    description: Default backend parameters (C(maxmem), C(minmem), C(vcpus), C(auto_balance), C(spindle_use)).
    type: dict
  nicparams:
    description: Default NIC parameters (C(mode), C(link), C(vlan)).
    type: dict
  diskparams:
    description: Default disk parameters keyed by disk template.
    type: dict
  ndparams:
    description: Default node parameters (C(spindle_count), C(exclusive_storage), C(ssh_port)).
    type: dict
  ipolicy:
    description: Instance policy as Ganeti's (C(minmax), C(std), C(disk-templates), C(vcpu-ratio), C(spindle-ratio)).
    type: dict
  candidate_pool_size:
    description: How many master candidates the cluster keeps.
    type: int
  default_iallocator:
    description: Allocator used when no node is given.
    type: str
  tags:
    description: Cluster tags (for example C(htools:iextags:service)). The list replaces the current tags.
    type: list
    elements: str
  ssh_key_file:
    description: Private key the master uses to reach node agents.
    type: path
  renew_crypto:
    description:
      - Create a new cluster CA and new migration certificates for every online node, as
        C(gnt-cluster renew-crypto) does. Always reports a change.
      - The CA is created at cluster init; live migrations use QEMU's TLS with these certificates.
      - Offline nodes keep the old certificates until this runs again.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Initialise the cluster on the first master node
  herd.cluster.cluster:
    name: cluster.example.org
    primary_ip: 192.0.2.11
    secondary_ip: 198.51.100.11
    enabled_hypervisors: [kvm]
    enabled_disk_templates: [drbd, plain, sharedfile]
    volume_group: gnt
    hvparams:
      kvm:
        machine_type: q35

- name: Rotate the cluster CA and the nodes' migration certificates
  herd.cluster.cluster:
    name: cluster.example.org
    renew_crypto: true

- name: Destroy a test cluster with its instances
  herd.cluster.cluster:
    name: test.example.org
    state: absent
    force: true
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
cluster:
  description: The cluster parameters after the change (null after destroy).
  returned: always
  type: dict
  contains:
    name:
      description: Cluster name.
      type: str
    master_node:
      description: The master.
      type: str
    master_epoch:
      description: Raised at each master failover; ranks configs before their serial.
      type: int
    watcher_pause_until:
      description: Unix time until which the watcher is paused (M(herd.cluster.watcher)), or null.
      type: float
    master_ip:
      description: The floating master address, or null.
      type: str
    master_netdev:
      description: The interface the master address is configured on.
      type: str
    candidate_pool_size:
      description: Number of master candidates wanted.
      type: int
    enabled_hypervisors:
      description: Hypervisors instances may use.
      type: list
      elements: str
    enabled_disk_templates:
      description: Disk templates instances may use.
      type: list
      elements: str
    default_iallocator:
      description: The allocator used when no node is named.
      type: str
    volume_group:
      description: Volume group of C(plain) and C(drbd) disks.
      type: str
    file_storage_dir:
      description: Directory of C(file) disks.
      type: str
    shared_file_storage_dir:
      description: Directory of C(sharedfile) disks.
      type: str
    mac_prefix:
      description: Prefix of generated MAC addresses.
      type: str
    ssh_key_file:
      description: The cluster's SSH key on the master.
      type: str
    beparams:
      description: Backend parameter defaults (C(maxmem), C(minmem), C(vcpus), C(auto_balance), C(spindle_use)).
      type: dict
    hvparams:
      description: Hypervisor parameter defaults, per hypervisor.
      type: dict
    nicparams:
      description: NIC defaults (C(mode), C(link), C(vlan)).
      type: dict
    diskparams:
      description: Disk parameters per disk template.
      type: dict
    ndparams:
      description: Node parameter defaults.
      type: dict
    ipolicy:
      description: Instance policy (C(minmax), C(std), C(disk-templates), C(vcpu-ratio), C(spindle-ratio)), as Ganeti's.
      type: dict
    tags:
      description: Cluster tags.
      type: list
      elements: str
msg:
  description: What was done.
  returned: always
  type: str
crypto:
  description: The certificates made at init or by I(renew_crypto) (no key material).
  returned: when the cluster is initialised or its certificates are renewed
  type: dict
  contains:
    ca_fingerprint:
      description: SHA-256 fingerprint of the cluster CA certificate.
      type: str
    nodes:
      description: Nodes that hold a certificate signed by this CA.
      type: list
      elements: str
    failed:
      description: Online nodes that did not take the new certificates (renew only).
      type: list
      elements: str
removed_instances:
  description: Instances removed by I(state=absent) with I(force=true).
  returned: when state is absent
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import cluster as cluster_op
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import instance as instance_op

PARAMS = ('name', 'force', 'master_node', 'primary_ip', 'secondary_ip', 'renew_crypto') + cluster_op.MODIFIABLE


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        force=dict(type='bool', default=False),
        master_node=dict(type='str'),
        primary_ip=dict(type='str'),
        secondary_ip=dict(type='str'),
        master_ip=dict(type='str'),
        master_netdev=dict(type='str'),
        enabled_hypervisors=dict(type='list', elements='str'),
        enabled_disk_templates=dict(type='list', elements='str'),
        volume_group=dict(type='str'),
        file_storage_dir=dict(type='path'),
        shared_file_storage_dir=dict(type='path'),
        mac_prefix=dict(type='str'),
        hvparams=dict(type='dict'),
        beparams=dict(type='dict'),
        nicparams=dict(type='dict'),
        diskparams=dict(type='dict'),
        ndparams=dict(type='dict'),
        ipolicy=dict(type='dict'),
        candidate_pool_size=dict(type='int'),
        default_iallocator=dict(type='str'),
        tags=dict(type='list', elements='str'),
        ssh_key_file=dict(type='path', no_log=False),
        renew_crypto=dict(type='bool', default=False),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((key, module.params[key]) for key in PARAMS)
    if module.params['state'] == 'present':
        result = run(module, cluster_op.present, spec)
    else:
        result = run(module, cluster_op.absent, spec, remove_instance=instance_op.remove_for_destroy)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
