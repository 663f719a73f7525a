# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: herd
short_description: A herd cluster's nodes and instances as inventory
version_added: 0.1.0
description:
  - Reads the cluster configuration from the cluster's master over SSH (paramiko) and yields every node and every
    instance as a host.
  - Host keys are checked against I(known_hosts_file) and unknown or changed keys are refused, as the master's own
    node RPC does; there is no trust on first use.
  - The first reachable host of I(hosts) is asked; when it is not the master, the master it names is read instead.
  - "Groups: C(herd_nodes) and C(herd_instances); node roles C(herd_master), C(herd_master_candidates),
    C(herd_drained), C(herd_offline), C(herd_regular); C(herd_nodegroup_<group>); for instances
    C(herd_primary_<node>), C(herd_disk_template_<template>), C(herd_status_<up|down>) (the admin state),
    C(herd_os_<os>); C(herd_tag_<tag>) for nodes and instances. Characters other than letters, digits and C(_)
    become C(_)."
  - Nodes get their primary address as C(ansible_host); instances get the address of their first NIC that has
    one. Host variables start with C(herd_) (C(herd_kind) is C(node) or C(instance)).
author: herd contributors (@herd-cluster)
requirements:
  - paramiko
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; makes the file an inventory source for it.
    type: str
    required: true
    choices: [herd.cluster.herd]
  hosts:
    description: Addresses (or names) of cluster nodes to ask, in order; the master or any master candidate.
    type: list
    elements: str
    required: true
  port:
    description: SSH port of the nodes.
    type: int
    default: 22
  user:
    description: SSH user on the nodes (the cluster configuration is readable by root only).
    type: str
    default: root
  private_key_file:
    description: SSH private key; without it, the SSH agent and the default keys are tried.
    type: path
  known_hosts_file:
    description: OpenSSH known_hosts file holding the nodes' host keys.
    type: path
    default: ~/.ssh/known_hosts
  connect_timeout:
    description: Seconds to wait for an SSH connection.
    type: float
    default: 10
  config_path:
    description: Path of the cluster configuration on the master.
    type: path
    default: /var/lib/herd/config.json
'''

EXAMPLES = r'''
# cluster.herd.yml
plugin: herd.cluster.herd
hosts: [192.0.2.11, 192.0.2.12]
known_hosts_file: ~/.ssh/known_hosts
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/herd-inventory
compose:
  memory_mib: herd_beparams.memory | default(omit)
keyed_groups:
  - key: herd_tags
    prefix: tag
groups:
  web: inventory_hostname.startswith('web')
'''

import json
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.herd.cluster.plugins.module_utils.herd.config import Config
from ansible_collections.herd.cluster.plugins.module_utils.herd.inventory import cluster_inventory

try:
    import paramiko
    HAS_PARAMIKO = True
except ImportError:
    HAS_PARAMIKO = False


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'herd.cluster.herd'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('herd.yml', 'herd.yaml'))

    def _connect(self, address):
        client = paramiko.SSHClient()
        known_hosts = os.path.expanduser(self.get_option('known_hosts_file'))
        if not os.path.exists(known_hosts):
            raise AnsibleError('known_hosts_file %s does not exist; record the nodes\' host keys first' % known_hosts)
        client.load_host_keys(known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        key_file = self.get_option('private_key_file')
        timeout = self.get_option('connect_timeout')
        client.connect(address, port=self.get_option('port'), username=self.get_option('user'),
                       key_filename=os.path.expanduser(key_file) if key_file else None, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout)
        return client

    def _read_config(self, address):
        client = self._connect(address)
        try:
            sftp = client.open_sftp()
            try:
                with sftp.open(self.get_option('config_path')) as handle:
                    return json.loads(handle.read().decode('utf-8'))
            finally:
                sftp.close()
        finally:
            client.close()

    def _fetch(self):
        errors = []
        for address in self.get_option('hosts'):
            try:
                data = self._read_config(address)
            except (paramiko.SSHException, OSError, ValueError) as exc:
                errors.append('%s: %s' % (address, to_native(exc) or type(exc).__name__))
                continue
            config = Config.from_dict(data, source='%s:%s' % (address, self.get_option('config_path')))
            master = config.nodes.get(config.cluster.master_node)
            if master is not None and address not in (master.name, master.primary_ip):
                # a master candidate's copy can lag behind: read the master's own
                data = self._read_config(master.primary_ip)
            return data
        raise AnsibleError('herd inventory: no cluster configuration could be read (%s)' % '; '.join(errors))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        if not HAS_PARAMIKO:
            raise AnsibleError('the herd.cluster.herd inventory plugin needs paramiko on the controller')
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        update_cache = self.get_option('cache') and not cache
        data = None
        if use_cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if data is None:
            data = self._fetch()
        if update_cache:
            self._cache[cache_key] = data
        self._populate(Config.from_dict(data, source=path))

    def _populate(self, config):
        found = cluster_inventory(config)
        for group, members in sorted(found['groups'].items()):
            self.inventory.add_group(group)
            for host in members:
                self.inventory.add_host(host, group=group)
        strict = self.get_option('strict')
        for host, hostvars in found['hosts'].items():
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
            self._set_composite_vars(self.get_option('compose'), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), hostvars, host, strict=strict)
