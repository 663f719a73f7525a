#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: node_network
short_description: Bridges for instances, moving a port's address onto its bridge, and the secondary network
version_added: 0.1.0
description:
  - "Creates each bridge in I(bridges) with its physical port; by default the port's global addresses and its
    routes (the default route included) move onto the bridge. All live changes of one run go to the kernel in one
    C(ip -batch) (and one C(bridge -batch) for VLANs), so the management connection over that port survives: the
    bridge is created with the port's MAC address, gets the address before the port loses it, and the routes are
    replaced, not deleted and re-added."
  - An existing bridge whose MAC address differs from its port's (set by udev's MAC policy or by hand) gets the
    port's MAC back.
  - C(vlan_aware) bridges get C(vlan_filtering 1) and exactly the allowed VLANs (I(vlans)) tagged on the port;
    untagged traffic stays on the port's PVID (VLAN 1).
  - An instance-only bridge (I(instance_only)) carries no host address; its port must not carry one either.
  - The secondary network (replication and migration) is an address on a dedicated interface.
  - Persists everything as Debian ifupdown stanzas in I(persist_dir) (one C(herd-<name>) file per bridge or
    interface).
  - "Validates everything before changing anything - interface names, that every port exists, addresses (netaddr,
    strict: a host address with a prefix length), VLAN ids (1-4094) - and fails with the list of problems."
author: herd contributors (@herd-cluster)
requirements:
  - iproute2 (C(ip), C(bridge)) and python3-netaddr on the node
attributes:
  check_mode:
    support: full
    description: Validates and returns the C(ip)/C(bridge) batch and the files it would write.
  diff_mode:
    support: full
    description: The persisted files before and after.
options:
  bridges:
    description: Bridges to set up.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Bridge name, for example C(br0).
        type: str
        required: true
      port:
        description: Physical port enslaved to the bridge, for example C(eth0). Omit for a bridge without port.
        type: str
      addresses:
        description:
          - Host addresses of the bridge (C(198.51.100.11/24)). When empty and I(instance_only) is false, the port's
            current global addresses (or, on later runs, the bridge's) are used.
        type: list
        elements: str
        default: []
      gateway:
        description: Default gateway on the bridge. When omitted, the port's (or bridge's) default route is kept.
        type: str
      instance_only:
        description: The bridge carries instance traffic only, no host address.
        type: bool
        default: false
      vlan_aware:
        description: Make the bridge VLAN-aware (C(vlan_filtering 1)).
        type: bool
        default: false
      vlans:
        description:
          - VLANs allowed (tagged) on the port of a VLAN-aware bridge; ids 1-4094, or ranges like C(100-110).
        type: list
        elements: raw
        default: []
      mtu:
        description: MTU of the bridge and its port.
        type: int
  secondary:
    description: The secondary (replication/migration) network address on a dedicated interface.
    type: dict
    suboptions:
      interface:
        description: The interface, for example C(eth1).
        type: str
        required: true
      address:
        description: Address with prefix length, for example C(203.0.113.11/24).
        type: str
        required: true
  persist:
    description: Write ifupdown stanzas so the configuration survives a reboot.
    type: bool
    default: true
  persist_dir:
    description: Directory of the ifupdown stanzas.
    type: path
    default: /etc/network/interfaces.d
  disable_port_stanzas:
    description:
      - Comment out (prefix C(#herd# )) the stanzas of the bridge ports and of the secondary interface in
        I(interfaces_file), which would otherwise give the port its address back at boot. With C(false), only warn.
    type: bool
    default: true
  interfaces_file:
    description: The main ifupdown file (it must C(source) I(persist_dir)).
    type: path
    default: /etc/network/interfaces
'''

EXAMPLES = r'''
- name: br0 on eth0 (address moved), secondary network on eth1
  herd.cluster.node_network:
    bridges:
      - name: br0
        port: eth0
    secondary:
      interface: eth1
      address: 203.0.113.11/24

- name: VLAN-aware instance-only bridge on a dedicated port
  herd.cluster.node_network:
    bridges:
      - name: br1
        port: eth2
        instance_only: true
        vlan_aware: true
        vlans: [10, 20, "100-110"]
'''

RETURN = r'''
ip_batch:
  description: The C(ip -batch) commands run (or that would run).
  returned: always
  type: list
  elements: str
bridge_batch:
  description: The C(bridge -batch) commands run (or that would run).
  returned: always
  type: list
  elements: str
files:
  description: Persisted files written (or that would be written).
  returned: always
  type: list
  elements: str
bridges:
  description: Per bridge, its port, addresses and VLANs after the run.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Bridge.
      type: str
    port:
      description: Its port, or null.
      type: str
    addresses:
      description: Its addresses.
      type: list
      elements: str
    gateway:
      description: Default gateway via it.
      type: str
    vlan_aware:
      description: Whether VLAN filtering is on.
      type: bool
    vlans:
      description: VLAN ranges allowed on the port.
      type: list
      elements: str
    instance_only:
      description: Whether the bridge is for instances only (no address).
      type: bool
secondary:
  description: The secondary interface as requested (its name and address), or null when none was given.
  returned: always
  type: dict
  contains:
    interface:
      description: Interface.
      type: str
    address:
      description: Address with prefix.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.herd.cluster.plugins.module_utils.herd import netconfig
from ansible_collections.herd.cluster.plugins.module_utils.herd.config import ConfigError, ConfigStore


def cluster_master_ip():
    """The cluster's floating master IP from this node's ssconf, if it is in a cluster that has one."""
    try:
        ssconf = ConfigStore().load_ssconf()
    except ConfigError:
        return None
    return (ssconf or {}).get('master_ip')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            bridges=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                port=dict(type='str'),
                addresses=dict(type='list', elements='str', default=[]),
                gateway=dict(type='str'),
                instance_only=dict(type='bool', default=False),
                vlan_aware=dict(type='bool', default=False),
                vlans=dict(type='list', elements='raw', default=[]),
                mtu=dict(type='int'),
            )),
            secondary=dict(type='dict', options=dict(
                interface=dict(type='str', required=True),
                address=dict(type='str', required=True),
            )),
            persist=dict(type='bool', default=True),
            persist_dir=dict(type='path', default='/etc/network/interfaces.d'),
            disable_port_stanzas=dict(type='bool', default=True),
            interfaces_file=dict(type='path', default='/etc/network/interfaces'),
        ),
        supports_check_mode=True,
    )
    if netconfig.netaddr is None:
        module.fail_json(msg=missing_required_lib('netaddr (Debian: python3-netaddr; the node_base role installs it)'))
    try:
        result, warnings = netconfig.configure(module.params, netconfig.Net(module.run_command), module.check_mode,
                                               cluster_master_ip())
    except netconfig.InvalidSettings as exc:
        module.fail_json(msg=str(exc), problems=exc.problems)
    except netconfig.NetworkError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for warning in warnings:
        module.warn(warning)
    if not module._diff:
        result.pop('diff')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
