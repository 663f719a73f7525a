#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance_info
short_description: List instances with their real status (gnt-instance list/info)
version_added: 0.1.0
description:
  - One entry per instance with its config and its status as Ganeti words it, from asking every node what runs
    there. C(running), C(ADMIN_down), C(ERROR_up) (runs but should not), C(ERROR_down) (should run but does not),
    C(ERROR_wrongnode), C(ERROR_nodedown), C(ERROR_nodeoffline).
  - Also returns C(table), lines like C(gnt-instance list) prints. Returns an empty list when there are none.
  - Each entry has C(console), how to reach the instance's consoles from the controller, like
    C(gnt-instance console). C(console.command_line) is the exact command attaching the terminal to the serial
    console (C(ssh -t root@NODE socat STDIO,raw,echo=0,escape=0x1d UNIX-CONNECT:SOCKET); leave it with C(^]));
    C(console.vnc) the VNC endpoint (C(null) when VNC is off).
  - For drbd instances each entry has C(disk_health) (C(ok), C(resyncing), C(degraded), C(unknown)) and
    C(disk_problems), from the DRBD state on both nodes (the rules cluster_verify uses); C(null) and an empty list
    for other templates or with C(live=false).
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
  - herd.cluster.info_module
options:
  names:
    description: Only these instances. An empty list means all.
    type: list
    elements: str
    default: []
  live:
    description: Ask the nodes what runs; with C(false) only the config is read.
    type: bool
    default: true
  nodes:
    description: Only instances whose primary or secondary node is one of these.
    type: list
    elements: str
    default: []
  tags:
    description: Only instances carrying every one of these tags.
    type: list
    elements: str
    default: []
  status:
    description: Only instances whose status is one of these (C(running), C(ADMIN_down), C(ERROR_down) ...; needs
      I(live)).
    type: list
    elements: str
    default: []
  fields:
    description:
      - Columns of C(table) and keys of C(selected), like C(gnt-instance list -o). Without it, the default table.
      - C(name), C(pnode), C(snodes), C(status), C(admin_state), C(disk_template), C(hypervisor), C(os),
        C(be/vcpus), C(be/memory) (= C(be/maxmem)), C(be/minmem), C(disk.count), C(disk.sizes), C(disk_usage),
        C(nic.count), C(nic.ips), C(nic.macs), C(nic.links), C(network_port), C(tags), C(uuid).
      - An unknown field fails the task and lists the valid ones.
    type: list
    elements: str
  human:
    description: Sizes in C(table) as C(512M) or C(1.5G) rather than MiB (C(selected) always holds MiB).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Instance table
  herd.cluster.instance_info:
  register: instances

- name: Print it
  ansible.builtin.debug:
    msg: "{{ instances.table }}"

- name: The runbook's gnt-instance list -o pnode,name,be/vcpus,be/memory,status,disk_template, for node2
  herd.cluster.instance_info:
    nodes: [node2]
    fields: [pnode, name, be/vcpus, be/memory, status, disk_template]
  register: on_node2
'''

RETURN = r'''
instances:
  description: One entry per instance (with C(disk_health) and C(disk_problems) when C(live)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Instance name.
      type: str
    uuid:
      description: Instance UUID.
      type: str
    admin_state:
      description: 'C(up) or C(down): what the operator asked for.'
      type: str
    primary_node:
      description: Primary node.
      type: str
    secondary_node:
      description: Secondary node (drbd), else null.
      type: str
    disk_template:
      description: Disk template.
      type: str
    hypervisor:
      description: Hypervisor.
      type: str
    os:
      description: OS provider or image.
      type: str
    memory:
      description: Memory (maxmem) in MiB.
      type: int
    minmem:
      description: Minimum memory in MiB.
      type: int
    vcpus:
      description: Virtual CPUs.
      type: int
    disks:
      description: Disks in order.
      type: list
      elements: dict
      contains:
        name:
          description: Disk name, or null.
          type: str
        size:
          description: Size in MiB.
          type: int
        uuid:
          description: Disk UUID.
          type: str
    nics:
      description: NICs in order.
      type: list
      elements: dict
      contains:
        mac:
          description: MAC address.
          type: str
        mode:
          description: NIC mode, C(bridged) or C(openvswitch).
          type: str
        link:
          description: Bridge.
          type: str
        vlan:
          description: VLAN, or null.
          type: int
        ip:
          description: Address, or null.
          type: str
        network:
          description: The herd network it belongs to, or null.
          type: str
    hvparams:
      description: Hypervisor parameters set on the instance.
      type: dict
    tags:
      description: Tags.
      type: list
      elements: str
    network_port:
      description: Port of its console (VNC/serial).
      type: int
    pending_restart:
      description: Whether changes wait for the next restart.
      type: bool
    vnc_password_set:
      description: Whether the VNC console has a password (the password itself is never returned).
      type: bool
    status:
      description: Ganeti-style status; null without I(live).
      type: str
    running_on:
      description: Nodes where it runs (with I(live)).
      type: list
      elements: str
    disk_health:
      description: drbd disk health word; null for other templates or without I(live).
      type: str
    disk_problems:
      description: The drbd disk problems found.
      type: list
      elements: str
    console:
      description:
        - The instance's consoles (C(null) for hypervisors without one). C(node) the primary node;
          C(serial_socket) the serial console's unix socket there; C(command) (a list) and C(command_line) (one
          shell line) attach to it from the controller, C(escape) (C(^])) detaches; both C(null) when
          C(hvparams.serial_console) is off. C(vnc) has C(address), C(port), C(display) and C(tunnel) (the SSH
          port forward for a loopback-bound server), C(null) when VNC is off; C(vnc_password) whether a VNC
          password is set.
      returned: always
      type: dict
      sample:
        node: node1
        escape: "^]"
        serial_socket: /run/herd/kvm/web1.serial
        command: [ssh, -t, root@node1, socat, "STDIO,raw,echo=0,escape=0x1d", "UNIX-CONNECT:/run/herd/kvm/web1.serial"]
        command_line: ssh -t root@node1 socat STDIO,raw,echo=0,escape=0x1d UNIX-CONNECT:/run/herd/kvm/web1.serial
        vnc: {address: 127.0.0.1, port: 11000, display: "127.0.0.1:5100",
              tunnel: "ssh -L 11000:127.0.0.1:11000 root@node1"}
        vnc_password: false
selected:
  description: With I(fields), one dict per instance with the values of those fields (sizes in MiB).
  returned: when I(fields) is given
  type: list
  elements: dict
  sample: [{pnode: node2, name: web1, be/vcpus: 1, be/memory: 512, status: running, disk_template: drbd}]
table:
  description: Lines of a C(gnt-instance list) style table (of I(fields) when given).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd import listing


def main():
    argument_spec = dict(
        names=dict(type='list', elements='str', default=[]),
        live=dict(type='bool', default=True),
        nodes=dict(type='list', elements='str', default=[]),
        tags=dict(type='list', elements='str', default=[]),
        status=dict(type='list', elements='str', default=[]),
        fields=dict(type='list', elements='str'),
        human=dict(type='bool', default=True),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((k, module.params[k]) for k in ('names', 'live', 'nodes', 'tags', 'status', 'fields', 'human'))
    result = run(module, listing.list_instances, spec)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
