#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instances
short_description: Declare many instances at once (the instances role's bulk path)
version_added: 0.1.0
description:
  - Converges a list of instance declarations in one task, each with the options of M(herd.cluster.instance)
    and the same result per instance.
  - Every declaration is validated before anything is touched. Instances that exist converge one after another;
    missing ones are placed together, each placement counting the ones before it (like hail's multi-allocate),
    so together they never overcommit a node, break N+1 or put two holders of an exclusion tag on one node;
    then they are created as parallel jobs (I(max_parallel)), under the same node-allocation lock a single
    create holds.
  - If any missing instance cannot be placed, nothing is created and the error names each such instance and why
    every node was rejected. A creation that fails later is rolled back alone; the others complete and the task
    fails naming each failure.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Returns the plan of every instance, including the nodes the allocator would choose together.
  diff_mode:
    support: full
    description: Before and after of each changed instance, by name.
options:
  instances:
    description: The declarations, each with the options of M(herd.cluster.instance).
    type: list
    elements: dict
    required: true
    suboptions:
        name:
          description: Instance name (a host name).
          type: str
          required: true
        state:
          description:
            - C(present) defined with disks, not necessarily running; C(running); C(stopped); C(absent) removed.
            - C(restarted) stops and starts it (always a change, like gnt-instance reboot), applying pending changes.
            - C(present) leaves the running state of an existing instance as it is.
            - Defaults to I(default_state).
          type: str
          choices: [present, running, stopped, restarted, absent]
        disk_template:
          description: C(diskless), C(file), C(sharedfile), C(plain) or C(drbd). Required to create. A stopped instance
            converts between C(plain) and C(drbd) (C(gnt-instance modify -t)); to C(drbd) on I(secondary_node)
            or the allocator's choice, its data kept and synced; to C(plain) the primary's data kept, the
            secondary's volumes removed. Other changes are refused.
          type: str
          choices: [diskless, file, sharedfile, plain, drbd]
        hypervisor:
          description: C(kvm) or C(fake); defaults to the cluster's first enabled hypervisor.
          type: str
          choices: [kvm, fake]
        disks:
          description: Disks, each a size (C(10G), C(512M), MiB as a number) or a mapping with C(size), C(name), C(vg) (the
            volume group of a C(plain) or C(drbd) disk; the cluster's by default). C(adopt) names an existing LV
            in C(vg) on I(primary_node) that becomes the disk of a new C(plain) instance (C(gnt-instance add
            --disk N:adopt=LV)); name and data kept, size read from LVM, refused if it is open or another
            instance's; every disk adopts or none.
          type: list
          elements: raw
        nics:
          description: NICs, each a mapping with C(link) (bridge), C(vlan), C(mac), C(ip), C(network), C(name),
            C(mode) (C(bridged), or C(openvswitch) for a port of an Open vSwitch bridge tagged with C(vlan)).
            A NIC without C(mac) gets one from the cluster prefix, kept forever. Without C(mode), C(link) and
            C(vlan) it gets those of its network's connection to the node group, else the cluster's nicparams.
          type: list
          elements: dict
        memory:
          description: Maximum memory (C(1G), C(512M) or MiB).
          type: raw
        minmem:
          description: Minimum memory; defaults to I(memory).
          type: raw
        vcpus:
          description: Virtual CPUs.
          type: int
        hvparams:
          description:
            - Hypervisor parameters overriding the cluster defaults, for kvm C(kernel_path), C(initrd_path),
              C(kernel_args), C(cpu_type), C(machine_type) (C(pc) or C(q35)), C(firmware) (C(bios) or C(uefi)),
              C(disk_cache), C(disk_aio), C(serial_console), C(vnc_bind_address) (default C(127.0.0.1)), C(accel)
              (C(kvm) or C(tcg)), C(migration_bandwidth) (MiB/s), C(migration_downtime) (ms).
            - C(cdrom_image_path) (an ISO on the node, attached as a CD next to a cloud-init seed), C(boot_order)
              (C(disk), C(cdrom) (needs C(cdrom_image_path)) or C(network)), C(disk_discard) (C(unmap) or C(ignore)),
              C(disk_type) (C(paravirtual) for virtio-blk, C(scsi-hd) for SCSI disks on virtio-scsi), C(vhost_net)
              (bool; needs C(/dev/vhost-net) on the node).
            - C(kvm_extra), extra QEMU arguments, as a list or one string split into words (no shell). Options herd
              manages (C(-runas), C(-sandbox), C(-name), C(-pidfile), C(-qmp), C(-serial), C(-vnc), C(-machine),
              C(-incoming) ...) and devices reusing the ids of herd's own (C(disk0), C(net0), C(scsi0),
              C(herd-*) ...) are refused.
          type: dict
        os:
          description: OS provider run at creation. C(noop), C(image) (copies I(osparams.image) onto disk 0) or
            C(cloud_init) (a NoCloud seed attached as a CD).
          type: str
          choices: [noop, image, cloud_init]
        osparams:
          description: Parameters of the OS provider (C(image); C(hostname), C(ssh_authorized_keys), C(user_data),
            C(network_config), C(password) for cloud_init).
          type: dict
        tags:
          description: Tags; the list replaces the current tags.
          type: list
          elements: str
        vnc_password:
          description:
            - Password of the instance's VNC console, 1 to 8 printable ASCII characters (VNC authentication uses 8);
              an empty string removes it. Only accepted when VNC listens on a non-local address
              (I(hvparams.vnc_bind_address) not loopback); a loopback-bound console is reached through SSH.
            - QEMU reads it from a file only root can read on the node (mode 0600), never from its command line. It
              is never shown in results, diffs or the job journal (C(instance.vnc_password_set) says whether one is
              set); a change applies at the next restart.
          type: str
        primary_node:
          description: Node to create the instance on; without it the allocator chooses.
          type: str
        secondary_node:
          description: Secondary node for C(drbd), at creation or at a conversion from C(plain); without it the allocator
            chooses.
          type: str
        restart_on_change:
          description: Restart a running instance to apply changes that need a restart.
          type: bool
          default: false
        shutdown_timeout:
          description: Seconds a guest gets to power off after the ACPI request before its process is killed.
          type: int
          default: 120
        wait_for_sync:
          description:
            - New C(drbd) disks (at creation and when disks are added) are waited for until both nodes are
              UpToDate, before the OS is installed and the instance started, as Ganeti does. C(false), like
              C(--no-wait-for-sync) of C(gnt-instance add), returns while the disks still sync.
            - A sync that stalls or outlasts I(sync_timeout) fails the task and undoes the creation or the disk add.
          type: bool
          default: true
        sync_timeout:
          description: Seconds new C(drbd) disks may take to sync with I(wait_for_sync).
          type: int
          default: 3600
        remove_disks:
          description:
            - Allow a I(disks) list shorter than the instance's to remove the trailing disks, with their data
              (C(gnt-instance modify --disk remove)). Without it a shorter list fails before anything is touched.
            - A running instance loses no disk (herd does not hot-unplug); declare I(state=stopped), or
              I(restart_on_change=true) to stop it, remove the disks and start it again.
          type: bool
          default: false
        reinstall:
          description:
            - Run the OS provider again on disk 0 (C(gnt-instance reinstall)); with C(image) (or C(cloud_init) with an
              image) this B(destroys the data on disk 0). I(os) and I(osparams) given with it replace the instance's.
            - An action like I(state=restarted), done on every run that declares it; the instance must be stopped (or
              stopped by the same run with I(state=stopped)). Check mode and C(destroys) say what would be lost.
          type: bool
          default: false
  default_state:
    description: The I(state) of a declaration that does not set one.
    type: str
    choices: [present, running, stopped, restarted, absent]
    default: present
  max_parallel:
    description: How many creations run at once.
    type: int
    default: 8
'''

EXAMPLES = r'''
- name: Three web servers and a database, placed together
  herd.cluster.instances:
    default_state: running
    instances:
      - {name: web1.example.org, disk_template: drbd, disks: [10G], memory: 2G, tags: ["htools:iextags:web"]}
      - {name: web2.example.org, disk_template: drbd, disks: [10G], memory: 2G, tags: ["htools:iextags:web"]}
      - {name: web3.example.org, disk_template: drbd, disks: [10G], memory: 2G, tags: ["htools:iextags:web"]}
      - {name: db1.example.org, disk_template: drbd, disks: [50G], memory: 8G}
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
instances:
  description: The result of each declared instance, in the declared order (as M(herd.cluster.instance) returns it).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Instance name.
      type: str
    changed:
      description: Whether this instance changed.
      type: bool
    msg:
      description: What was done to it.
      type: str
    instance:
      description: The instance after the change (null after removal).
      type: dict
    placement:
      description: Chosen nodes and, for each node not chosen, why (created instances).
      type: dict
    actions:
      description: What was done to an existing instance.
      type: list
      elements: str
    status:
      description: Where an existing instance runs and its status.
      type: dict
failures:
  description: The instances whose operation failed, each with the reason (the task then fails).
  returned: always
  type: list
  elements: dict
  contains:
    instance:
      description: Instance name.
      type: str
    reason:
      description: Why it failed.
      type: str
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import (
    COMMON_ARGS, INSTANCE_ARGS, exit_or_fail_on_failures, run)
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import fleet


def main():
    declaration = dict(INSTANCE_ARGS, state=dict(INSTANCE_ARGS['state'], default=None))
    argument_spec = dict(
        instances=dict(type='list', elements='dict', required=True, options=declaration),
        default_state=dict(type='str', default='present', choices=INSTANCE_ARGS['state']['choices']),
        max_parallel=dict(type='int', default=8),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    specs = [dict(item, state=item['state'] or module.params['default_state'])
             for item in module.params['instances']]
    exit_or_fail_on_failures(module, run(module, fleet.ensure_many, specs, module.params['max_parallel']))


if __name__ == '__main__':
    main()
