#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ssh_host_keys
short_description: The public host keys the node's own sshd presents, as facts
version_added: 0.1.0
description:
  - Finds the sshd that serves this very connection (walking up from the module's process to the sshd listener),
    asks it for its effective configuration (C(sshd -T), with the listener's C(-f) file if it has one) and reads the
    public halves of its C(HostKey)s. So the keys are those the node really presents, read on the node itself over
    the already authenticated connection, never learnt from the network (no C(ssh-keyscan)).
  - When no sshd is found among the ancestors (local connection), the default C(sshd -T) configuration is used,
    and failing that the keys Ansible's own facts found (C(/etc/ssh/ssh_host_*_key.pub)).
author: herd contributors (@herd-cluster)
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Reports facts only; there is nothing to diff.
  facts:
    support: full
    description: Sets C(herd_ssh_host_keys), C(herd_ssh_host_keys_source) and C(herd_ssh_served_by_sshd).
options: {}
'''

EXAMPLES = r'''
- name: Host keys this node presents
  herd.cluster.ssh_host_keys:
'''

RETURN = r'''
ansible_facts:
  description: Facts set.
  returned: always
  type: dict
  contains:
    herd_ssh_host_keys:
      description: C(type base64) strings of the node's host keys, sorted by type.
      type: list
      elements: str
      sample: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA..."]
    herd_ssh_host_keys_source:
      description: Where they were read (the sshd configuration file, or C(/etc/ssh)).
      type: str
'''

import glob
import os

from ansible.module_utils.basic import AnsibleModule


def proc_cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return [p.decode('utf-8', 'replace') for p in handle.read().split(b'\0') if p]
    except (IOError, OSError):
        return []


def parent(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return int(handle.read().rsplit(')', 1)[1].split()[1])
    except (IOError, OSError, ValueError, IndexError):
        return 0


def exe(pid):
    try:
        return os.readlink('/proc/%d/exe' % pid)
    except OSError:
        return ''


def sshd_config_of_ancestors():
    """(found, config file or None) of the outermost sshd above this process."""
    pid, found, config = os.getpid(), False, None
    while pid > 1:
        if os.path.basename(exe(pid)) == 'sshd':
            found = True
            args = proc_cmdline(pid)
            # the listener has its real argv, or after setproctitle "sshd: /usr/sbin/sshd -f CONF [listener] ..."
            words = ' '.join(args).split()
            if '-f' in words and words.index('-f') + 1 < len(words):
                config = words[words.index('-f') + 1]
        pid = parent(pid)
    return found, config


def host_keys_from_sshd(module, config):
    args = [module.get_bin_path('sshd', opt_dirs=['/usr/sbin']) or '/usr/sbin/sshd', '-T']
    if config:
        args += ['-f', config]
    rc, out, _err = module.run_command(args)
    if rc != 0:
        return []
    keys = []
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] == 'hostkey':
            try:
                with open(parts[1].strip() + '.pub') as handle:
                    fields = handle.read().split()
            except (IOError, OSError):
                continue
            if len(fields) >= 2:
                keys.append('%s %s' % (fields[0], fields[1]))
    return keys


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    found, config = sshd_config_of_ancestors()
    keys = host_keys_from_sshd(module, config)
    source = config or '/etc/ssh/sshd_config'
    if not keys:
        source = '/etc/ssh'
        for path in sorted(glob.glob('/etc/ssh/ssh_host_*_key.pub')):
            with open(path) as handle:
                fields = handle.read().split()
            if len(fields) >= 2:
                keys.append('%s %s' % (fields[0], fields[1]))
    if not keys:
        module.fail_json(msg='no SSH host key found on this node (sshd -T%s and /etc/ssh)'
                             % (' -f %s' % config if config else ''))
    module.exit_json(changed=False, ansible_facts=dict(herd_ssh_host_keys=sorted(set(keys)),
                                                       herd_ssh_host_keys_source=source,
                                                       herd_ssh_served_by_sshd=found))


if __name__ == '__main__':
    main()
