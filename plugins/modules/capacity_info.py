#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: capacity_info
short_description: How many more instances fit (hspace's standard and tiered reports)
version_added: 0.1.0
description:
  - Allocates a standard instance (the policy's C(std) spec) again and again until the allocator fails, and
    separately allocates the biggest allowed spec, shrinking it on the failing resource (tiered), exactly as
    Ganeti's C(hspace). Returns the counts, the specs and why the last allocation failed. Changes nothing.
  - The cluster comes from I(cluster_file) (a Ganeti htools text file) or, on the master, from herd's config.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Read only; the same in check mode.
  diff_mode:
    support: none
    description: Reports capacity only; there is nothing to diff.
options:
  cluster_file:
    description: Path of a Ganeti htools text file. Without it herd's config is read on the master.
    type: path
  disk_template:
    description: Disk template of the new instances. Default the first of the cluster policy's templates.
    type: str
  std_spec:
    description: Spec of the standard instance (keys memory, disk in MiB, vcpus, spindles). Default the policy's std.
    type: dict
  tiered_spec:
    description: Starting spec of the tiered allocation. Default the policy's max spec(s).
    type: dict
  no_capacity_checks:
    description: Skip the global N+1 check per allocation (C(hspace --no-capacity-checks)).
    type: bool
    default: false
  ignore_soft_errors:
    description: Ignore soft placement errors.
    type: bool
    default: false
  accept_existing:
    description: Allocate even if the cluster is not N+1 healthy at the start.
    type: bool
    default: false
  max_instances:
    description: Stop after this many instances.
    type: int
  offline_nodes:
    description: Treat these nodes as offline.
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: How many standard instances still fit
  herd.cluster.capacity_info:
  register: cap

- name: From a Ganeti text dump, drbd instances of 4 GiB
  herd.cluster.capacity_info:
    cluster_file: /tmp/cluster.data
    disk_template: drbd
    std_spec: {memory: 4096, disk: 40960, vcpus: 2}
'''

RETURN = r'''
initial_score:
  description: Cluster score before allocating.
  returned: always
  type: float
standard:
  description: Standard allocation report (count, spec, fail_reason, failures per mode, per-node reasons).
  returned: always
  type: dict
  contains:
    mode:
      description: C(standard) or C(tiered).
      type: str
    disk_template:
      description: Disk template allocated.
      type: str
    count:
      description: Instances that fit.
      type: int
    specs:
      description: Specs allocated, each with its C(count).
      type: list
      elements: dict
      contains:
        memory:
          description: MiB.
          type: int
        disk:
          description: MiB.
          type: int
        vcpus:
          description: CPUs.
          type: int
        spindles:
          description: Spindles.
          type: int
        count:
          description: Instances of this spec.
          type: int
    fail_reason:
      description: The most frequent failure of the last attempt.
      type: str
    failures:
      description: Failures per mode (C(FailMem), C(FailDisk), ...).
      type: dict
    reasons:
      description: Per-node lines of the last failure.
      type: list
      elements: str
    final_score:
      description: Cluster score after the allocation.
      type: float
    elapsed:
      description: Seconds.
      type: float
tiered:
  description: Tiered allocation report (count, list of specs with their counts, fail_reason, failures).
  returned: always
  type: dict
  contains:
    mode:
      description: C(standard) or C(tiered).
      type: str
    disk_template:
      description: Disk template allocated.
      type: str
    count:
      description: Instances that fit.
      type: int
    specs:
      description: Specs allocated, each with its C(count).
      type: list
      elements: dict
      contains:
        memory:
          description: MiB.
          type: int
        disk:
          description: MiB.
          type: int
        vcpus:
          description: CPUs.
          type: int
        spindles:
          description: Spindles.
          type: int
        count:
          description: Instances of this spec.
          type: int
    fail_reason:
      description: The most frequent failure of the last attempt.
      type: str
    failures:
      description: Failures per mode (C(FailMem), C(FailDisk), ...).
      type: dict
    reasons:
      description: Per-node lines of the last failure.
      type: list
      elements: str
    final_score:
      description: Cluster score after the allocation.
      type: float
    elapsed:
      description: Seconds.
      type: float
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import COMMON_ARGS, run  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.herd.allocator.plans import (  # noqa: E402
    PlanError, capacity_report)
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import rebalance as rebalance_op  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cluster_file=dict(type='path'),
            disk_template=dict(type='str'),
            std_spec=dict(type='dict'),
            tiered_spec=dict(type='dict'),
            no_capacity_checks=dict(type='bool', default=False),
            ignore_soft_errors=dict(type='bool', default=False),
            accept_existing=dict(type='bool', default=False),
            max_instances=dict(type='int'),
            offline_nodes=dict(type='list', elements='str', default=[]),
            **COMMON_ARGS
        ),
        supports_check_mode=True,
    )
    if not module.params['cluster_file']:
        module.exit_json(changed=False, **run(module, rebalance_op.capacity, dict(module.params)))
    try:
        rep = capacity_report(module.params)
    except (PlanError, KeyError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **rep)


if __name__ == '__main__':
    main()
