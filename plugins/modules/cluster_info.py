#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: cluster_info
short_description: Show the cluster's parameters and members (gnt-cluster info)
version_added: 0.1.0
description:
  - Returns the cluster parameters, the config serial number and the names of nodes, groups, instances and networks.
  - With I(search_tags), also the tags of the cluster, node groups, nodes, instances and networks that match, like
    C(gnt-cluster search-tags).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
  - herd.cluster.info_module
options:
  search_tags:
    description:
      - A Python regular expression (at most 256 characters); C(tags) lists every tag it matches anywhere in the
        tag, with the path of its owner (C(/cluster), C(/nodegroups/NAME), C(/nodes/NAME), C(/instances/NAME),
        C(/networks/NAME)). An invalid expression fails the task, naming it.
    type: str
'''

EXAMPLES = r'''
- name: Read the cluster parameters
  herd.cluster.cluster_info:
  register: info

- name: Where is the tag "web" used (gnt-cluster search-tags web)
  herd.cluster.cluster_info:
    search_tags: web
  register: found
'''

RETURN = r'''
cluster:
  description: Cluster parameters.
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
serial_no:
  description: Config serial number.
  returned: always
  type: int
nodes:
  description: Node names.
  returned: always
  type: list
  elements: str
master_candidates:
  description: Master candidate names.
  returned: always
  type: list
  elements: str
nodegroups:
  description: Node group names.
  returned: always
  type: list
  elements: str
instances:
  description: Instance names.
  returned: always
  type: list
  elements: str
networks:
  description: Network names.
  returned: always
  type: list
  elements: str
tags:
  description: The matching tags, sorted by owner then tag.
  returned: when I(search_tags) is given
  type: list
  elements: dict
  sample: [{path: /instances/web1, tag: "herd:autorepair:migrate"}, {path: /nodes/node2, tag: rack-b}]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import views


def main():
    argument_spec = dict(search_tags=dict(type='str'))
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(changed=False, **run(module, views.cluster_info, module.params['search_tags']))


if __name__ == '__main__':
    main()
