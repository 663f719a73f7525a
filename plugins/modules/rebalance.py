#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: rebalance
short_description: Plan and execute an hbal-style cluster rebalance (hbal -L -X)
version_added: 0.1.0
description:
  - Runs herd's balancer (Ganeti hbal's greedy best-move loop and score) over the cluster and returns the plan
    with the initial score, every move with the score after it, the final score and the job sets (moves in a
    set touch disjoint nodes and may run in parallel).
  - The cluster comes from I(cluster_file) (a Ganeti htools text file) or, on the master, from herd's config.
  - With I(execute=true) the job sets run in order, the moves of one set in parallel; the first set with a
    failed move stops the run. Each move runs its C(steps) in order (C(commands) only displays them), each its
    own instance job, an instance migration (a failover for instances that do not run) and, for the moves that change a drbd
    secondary (C(r:node), C(r:node f), C(f r:node), C(f r:node f)), M(herd.cluster.instance_replace_disks) to
    that node. A move stops at its first failed step.
  - The result has the initial score, each move with the score after it, the predicted final score and the
    score reached.
author: herd contributors (@herd-cluster)
extends_documentation_fragment:
  - herd.cluster.common
attributes:
  check_mode:
    support: full
    description: Returns the plan; nothing is changed.
  diff_mode:
    support: none
    description: The plan (moves and scores) is the result; no diff is returned.
options:
  cluster_file:
    description: Path of a Ganeti htools text file (C(hbal -t)). Without it herd's config is read on the master.
    type: path
  group:
    description: Node group to balance (C(-G)). Default every group, one after the other.
    type: str
  max_moves:
    description: Maximum number of moves (C(-l)); -1 is unlimited.
    type: int
    default: -1
  min_gain:
    description: Minimum gain per move once the score is below I(min_gain_limit) (C(-g)).
    type: float
    default: 0.01
  min_gain_limit:
    description: Score above which every improvement is taken (C(--min-gain-limit)).
    type: float
    default: 0.1
  min_score:
    description: Stop when the score is this close to the theoretical optimum (C(-e)).
    type: float
    default: 1.0e-9
  evac_mode:
    description: Only move instances off offline nodes (C(--evac-mode)).
    type: bool
    default: false
  no_disk_moves:
    description: Only failovers, no replace-disks (C(--no-disk-moves)).
    type: bool
    default: false
  no_instance_moves:
    description: Only secondary changes (C(--no-instance-moves)).
    type: bool
    default: false
  restricted_migration:
    description: Never migrate onto nodes that are not already secondaries (C(--restricted-migration)).
    type: bool
    default: false
  ignore_soft_errors:
    description: Ignore soft placement errors (C(--ignore-soft-errors)).
    type: bool
    default: false
  ignore_dynu:
    description: Ignore dynamic utilisation (C(--ignore-dynu)).
    type: bool
    default: false
  exclusion_tags:
    description: Instance tag prefixes that must not share a node (C(--exclusion-tags)); adds to cluster tags.
    type: list
    elements: str
    default: []
  offline_nodes:
    description: Treat these nodes as offline (C(-O)).
    type: list
    elements: str
    default: []
  select_instances:
    description: Only move these instances.
    type: list
    elements: str
    default: []
  exclude_instances:
    description: Never move these instances.
    type: list
    elements: str
    default: []
  time_limit:
    description: Stop searching after this many seconds and return the moves found so far.
    type: float
  execute:
    description: Execute the job sets (on the master, not with I(cluster_file)). In check mode only the plan.
    type: bool
    default: false
  max_parallel:
    description: At most this many moves of one job set at once.
    type: int
    default: 8
'''

EXAMPLES = r'''
- name: Show what a rebalance would do
  herd.cluster.rebalance:
    max_moves: 20
  check_mode: true
  register: plan

- name: Plan from a Ganeti text dump
  herd.cluster.rebalance:
    cluster_file: /tmp/cluster.data
    exclusion_tags: [service]
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
initial_score:
  description: Score before the first move (sum over the groups balanced).
  returned: always
  type: float
final_score:
  description: Score after the last move.
  returned: always
  type: float
moves:
  description: Moves in order; each with instance, move (hbal notation), old and new nodes, score after it,
    steps (the operations to run, as data; C(op) is C(migrate) or C(replace_secondary), C(node) its target),
    commands (the same steps as gnt-instance commands, for display) and touched nodes.
  returned: always
  type: list
  elements: dict
  contains:
    instance:
      description: Instance moved.
      type: str
    move:
      description: hbal notation (C(f), C(r:node), C(f r:node f), ...).
      type: str
    kind:
      description: Kind of move.
      type: str
    target:
      description: Node the move goes to, if one.
      type: str
    old_primary:
      description: Primary before.
      type: str
    old_secondary:
      description: Secondary before.
      type: str
    new_primary:
      description: Primary after.
      type: str
    new_secondary:
      description: Secondary after.
      type: str
    score:
      description: Cluster score after the move.
      type: float
    commands:
      description: The steps as gnt-instance commands, for display.
      type: list
      elements: str
    nodes:
      description: Every node the move touches.
      type: list
      elements: str
    steps:
      description: The operations to run, as data.
      type: list
      elements: dict
      contains:
        op:
          description: C(migrate) or C(replace_secondary).
          type: str
        node:
          description: 'Target node (null: a drbd instance''s secondary).'
          type: str
executed:
  description: Moves that were executed (instance, move, and the commands run as C(steps)).
  returned: with execute
  type: list
  elements: dict
  contains:
    instance:
      description: Instance.
      type: str
    move:
      description: hbal notation.
      type: str
    ok:
      description: Whether every step succeeded.
      type: bool
    steps:
      description: The steps done, as displayed.
      type: list
      elements: str
    reason:
      description: Why it failed.
      type: str
failures:
  description: Moves of the stopped job set that failed (instance, move, reason, the steps done); the task fails
    when there are any.
  returned: with execute
  type: list
  elements: dict
  contains:
    instance:
      description: Instance.
      type: str
    move:
      description: hbal notation.
      type: str
    ok:
      description: Whether every step succeeded.
      type: bool
    steps:
      description: The steps done, as displayed.
      type: list
      elements: str
    reason:
      description: Why it failed.
      type: str
stopped_at_set:
  description: Index of the job set at which execution stopped because a move failed, else null.
  returned: with execute
  type: int
  sample: null
achieved_score:
  description: The score of the cluster after the execution.
  returned: with execute, outside check mode
  type: float
jobsets:
  description: Lists of instance names; the moves of one set touch disjoint nodes.
  returned: always
  type: list
  elements: list
groups:
  description: Per group result (initial, final and optimal score, moves, job sets, stop reason).
  returned: always
  type: list
  elements: dict
  contains:
    group:
      description: Node group.
      type: str
    initial_score:
      description: Score before.
      type: float
    final_score:
      description: Score after the moves.
      type: float
    optimal_score:
      description: Best reachable score estimate.
      type: float
    moves:
      description: The group's moves, as C(moves).
      type: list
      elements: dict
      contains:
        instance:
          description: Instance moved.
          type: str
        move:
          description: hbal notation (C(f), C(r:node), C(f r:node f), ...).
          type: str
        kind:
          description: Kind of move.
          type: str
        target:
          description: Node the move goes to, if one.
          type: str
        old_primary:
          description: Primary before.
          type: str
        old_secondary:
          description: Secondary before.
          type: str
        new_primary:
          description: Primary after.
          type: str
        new_secondary:
          description: Secondary after.
          type: str
        score:
          description: Cluster score after the move.
          type: float
        commands:
          description: The steps as gnt-instance commands, for display.
          type: list
          elements: str
        nodes:
          description: Every node the move touches.
          type: list
          elements: str
        steps:
          description: The operations to run, as data.
          type: list
          elements: dict
          contains:
            op:
              description: C(migrate) or C(replace_secondary).
              type: str
            node:
              description: 'Target node (null: a drbd instance''s secondary).'
              type: str
    jobsets:
      description: Lists of instance names.
      type: list
      elements: list
    stop_reason:
      description: Why the search stopped.
      type: str
    elapsed:
      description: Seconds.
      type: float
    evaluations:
      description: Candidate moves evaluated.
      type: int
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.herd.cluster.plugins.module_utils.ansible_herd import (  # noqa: E402
    COMMON_ARGS, exit_or_fail_on_failures, run)
from ansible_collections.herd.cluster.plugins.module_utils.herd.allocator.plans import (  # noqa: E402
    PlanError, rebalance_plan)
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops import rebalance as rebalance_op  # noqa: E402


def main():
    argument_spec = dict(
        cluster_file=dict(type='path'),
        group=dict(type='str'),
        max_moves=dict(type='int', default=-1),
        min_gain=dict(type='float', default=0.01),
        min_gain_limit=dict(type='float', default=0.1),
        min_score=dict(type='float', default=1e-9),
        evac_mode=dict(type='bool', default=False),
        no_disk_moves=dict(type='bool', default=False),
        no_instance_moves=dict(type='bool', default=False),
        restricted_migration=dict(type='bool', default=False),
        ignore_soft_errors=dict(type='bool', default=False),
        ignore_dynu=dict(type='bool', default=False),
        exclusion_tags=dict(type='list', elements='str', default=[]),
        offline_nodes=dict(type='list', elements='str', default=[]),
        select_instances=dict(type='list', elements='str', default=[]),
        exclude_instances=dict(type='list', elements='str', default=[]),
        time_limit=dict(type='float'),
        execute=dict(type='bool', default=False),
        max_parallel=dict(type='int', default=8),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = dict(module.params)
    if params['cluster_file']:
        if params['execute']:
            module.fail_json(msg='execute needs the live cluster: run on the master without cluster_file')
        try:
            plan = rebalance_plan(params)
        except PlanError as exc:
            module.fail_json(msg=str(exc))
        module.exit_json(changed=False, **plan)
    if params['execute']:
        exit_or_fail_on_failures(module, run(module, rebalance_op.execute, params))
    module.exit_json(changed=False, **run(module, rebalance_op.plan, params))


if __name__ == '__main__':
    main()
