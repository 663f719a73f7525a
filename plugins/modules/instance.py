#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: instance
short_description: Declare an instance (gnt-instance add/modify/grow-disk/startup/shutdown/remove)
version_added: 0.1.0
description:
  - Makes one instance match its declaration. Missing instances are created (disks, OS, config, and started
    with I(state=running)); existing ones are modified where they differ; I(state=absent) stops the instance
    and removes it with its disks and runtime files.
  - Without I(primary_node) the allocator chooses the node(s); when placement fails the error names every node
    and why it was rejected.
  - Memory, vCPU, NIC and hypervisor changes on a running instance apply at the next restart, unless
    I(restart_on_change=true); the diff and C(actions) say which.
  - Disks only grow. A longer I(disks) list adds disks at the end (for drbd with new volumes, minors and port on both
    nodes, waiting for the sync; on a running instance they are attached at the next start). A shorter list
    removes the trailing disks only with I(remove_disks=true). A failure half-way removes the disks it made.
  - Identifiers (UUID, MACs, VNC port, disk ids) are generated once and kept. NICs are added, changed and
    removed by position in I(nics); an address from a network's pool (C(ip=pool)) is taken under the cluster
    lock and freed with its NIC.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Returns the plan, including the nodes the allocator would choose; touches no node.
  diff_mode:
    support: full
    description: Before and after of the instance.
options:
  name:
    description: Instance name (a host name).
    type: str
    required: true
  state:
    description:
      - C(present) defined with disks, not necessarily running; C(running); C(stopped); C(absent) removed.
      - C(restarted) stops and starts it (always a change, like gnt-instance reboot), applying pending changes.
      - C(present) leaves the running state of an existing instance as it is.
    type: str
    choices: [present, running, stopped, restarted, absent]
    default: present
  disk_template:
    description: C(diskless), C(file), C(sharedfile), C(plain) or C(drbd). Required to create. A stopped instance converts
      between C(plain) and C(drbd) (C(gnt-instance modify -t)); to C(drbd) on I(secondary_node) or the
      allocator's choice, its data kept and synced; to C(plain) the primary's data kept, the secondary's volumes
      removed. Other changes are refused.
    type: str
    choices: [diskless, file, sharedfile, plain, drbd]
  hypervisor:
    description: C(kvm) or C(fake); defaults to the cluster's first enabled hypervisor.
    type: str
    choices: [kvm, fake]
  disks:
    description: Disks, each a size (C(10G), C(512M), MiB as a number) or a mapping with C(size), C(name), C(vg) (the
      volume group of a C(plain) or C(drbd) disk; the cluster's by default). C(adopt) names an existing LV in
      C(vg) on I(primary_node) that becomes the disk of a new C(plain) instance (C(gnt-instance add --disk
      N:adopt=LV)); name and data kept, size read from LVM, refused if it is open or another instance's; every
      disk adopts or none.
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
'''

EXAMPLES = r'''
- name: A small web server on shared storage, placed by the allocator
  herd.cluster.instance:
    name: web1.example.org
    state: running
    disk_template: sharedfile
    disks: [10G]
    memory: 1G
    vcpus: 2
    nics:
      - link: br0
    hvparams:
      machine_type: q35
      firmware: uefi

- name: Grow its disk and give it more memory at the next restart
  herd.cluster.instance:
    name: web1.example.org
    disks: [20G]
    memory: 2G

- name: Add a second disk, and a NIC with an address from the gnt-fsn pool
  herd.cluster.instance:
    name: web1.example.org
    disks: [20G, 50G]
    nics:
      - link: br0
      - network: gnt-fsn
        ip: pool

- name: Remove the second disk again (its data is lost)
  herd.cluster.instance:
    name: web1.example.org
    state: stopped
    disks: [20G]
    remove_disks: true

- name: Reinstall from an image (destroys disk 0's data; a one-off task)
  herd.cluster.instance:
    name: web1.example.org
    state: stopped
    os: image
    osparams:
      image: /srv/images/debian-12.qcow2
    reinstall: true

- name: Convert a stopped plain instance to drbd, the secondary chosen by the allocator (gnt-instance modify -t drbd)
  herd.cluster.instance:
    name: db1.example.org
    state: stopped
    disk_template: drbd

- name: Take an existing LV as the disk of a new plain instance (gnt-instance add --disk 0:adopt=olddata)
  herd.cluster.instance:
    name: legacy1.example.org
    state: stopped
    disk_template: plain
    primary_node: node1.example.org
    disks:
      - {adopt: olddata, vg: gnt}

- name: Remove it with its disks
  herd.cluster.instance:
    name: web1.example.org
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
instance:
  description: The instance after the change (null after removal).
  returned: always
  type: dict
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
          description: Bridge (a Linux bridge, or an Open vSwitch bridge for mode C(openvswitch)).
          type: str
        vlan:
          description: VLAN (the port's tag for mode C(openvswitch)), or null.
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
placement:
  description: Chosen nodes and, for each node not chosen, why.
  returned: when an instance is created or converted from plain to drbd
  type: dict
  contains:
    primary:
      description: Primary node chosen.
      type: str
    secondary:
      description: Secondary node chosen (drbd), else null.
      type: str
    reasons:
      description: Why each node not chosen was not.
      type: list
      elements: str
actions:
  description: What was (or in check mode would be) done to an existing instance.
  returned: when an existing instance is examined
  type: list
  elements: str
destroys:
  description: With I(reinstall=true), the data the reinstall overwrites (disk 0 and the image written over it).
  returned: when a reinstall is declared on an existing instance
  type: list
  elements: str
status:
  description: Where the instance runs and its Ganeti-style status (running, ADMIN_down, ERROR_up, ...).
  returned: when an existing instance is examined
  type: dict
  contains:
    status:
      description: Ganeti-style status word (running, ADMIN_down, ERROR_up, ...).
      type: str
    running:
      description: Whether it runs on its primary.
      type: bool
    running_on:
      description: Nodes where it runs.
      type: list
      elements: str
    unreachable:
      description: Nodes that did not answer, with their error.
      type: dict
    error:
      description: Whether the status is an ERROR_ one.
      type: bool
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, INSTANCE_ARGS, run
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import instance as instance_op

PARAMS = tuple(INSTANCE_ARGS)


def main():
    argument_spec = dict(INSTANCE_ARGS)
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    spec = dict((key, module.params[key]) for key in PARAMS)
    module.exit_json(**run(module, instance_op.ensure, spec))


if __name__ == '__main__':
    main()
