# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lookup plugin herd.cluster.placement: what-if placement questions."""

from __future__ import annotations

DOCUMENTATION = r"""
name: placement
author: herd contributors (@herd-cluster)
version_added: "0.1.0"
short_description: Ask herd's allocator where an instance would go, and why not elsewhere
description:
  - Runs herd's hail-compatible allocator on a model of the cluster, without changing
    anything, and returns the placement with one human-readable reason for every node
    that was not chosen.
  - The cluster comes either from herd's cluster config plus node facts (C(config),
    C(facts)), or from a Ganeti htools text file (C(text_file)).
  - Questions (the term) are C(allocate), C(relocate), C(evacuate) and C(score).
options:
  _terms:
    description: The question; one of C(allocate), C(relocate), C(evacuate), C(score).
    required: true
    type: list
    elements: str
  config:
    description: herd's cluster config (the dict of C(/var/lib/herd/config.json)).
    type: dict
  facts:
    description: Node facts keyed by node name (memory_total, memory_free, memory_dom0,
      cpu_count, cpu_dom0, disk_total, disk_free, spindles_total). Nodes without facts
      are treated as offline.
    type: dict
    default: {}
  text_file:
    description: Path of a Ganeti htools text file to use instead of I(config)/I(facts).
    type: path
  name:
    description: Name of the instance to place (allocate) or move (relocate).
    type: str
    default: new-instance
  memory:
    description: Memory of the new instance in MiB (allocate).
    type: int
    default: 1024
  vcpus:
    description: vCPUs of the new instance (allocate).
    type: int
    default: 1
  disks:
    description: Disk sizes in MiB (allocate). Each item is a size or a dict with
      C(size) and optional C(spindles).
    type: list
    elements: raw
    default: [1024]
  disk_template:
    description: Disk template of the new instance (allocate).
    type: str
    default: drbd
  tags:
    description: Tags of the new instance (exclusion and desired-location tags count).
    type: list
    elements: str
    default: []
  spindle_use:
    description: Spindle use of the new instance.
    type: int
    default: 1
  group:
    description: Restrict allocation to this node group (hail's group_name).
    type: str
  nodes:
    description: Restrict allocation to these nodes (hail's restrict-to-nodes).
    type: list
    elements: str
  relocate_from:
    description: Node to move away from (relocate); the secondary for drbd.
    type: list
    elements: str
  instances:
    description: Instances to evacuate (evacuate).
    type: list
    elements: str
  mode:
    description: Evacuation mode (evacuate).
    type: str
    choices: [primary-only, secondary-only, all]
    default: all
  ignore_soft_errors:
    description: Skip htools' soft checks (vCPU ratio, N+1 of the target, exclusion tags).
    type: bool
    default: false
  capacity_checks:
    description: Require that the cluster stays N+1 redundant after the placement
      (hail's default; C(false) = hail --no-capacity-checks).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Where would a 4 GiB drbd instance go?
  ansible.builtin.debug:
    msg: "{{ lookup('herd.cluster.placement', 'allocate', config=herd_config,
             facts=herd_facts, memory=4096, disks=[20480], disk_template='drbd') }}"

- name: Explain why nothing fits (one line per node)
  ansible.builtin.debug:
    msg: "{{ (lookup('herd.cluster.placement', 'allocate', text_file='cluster.data',
              memory=65536, disk_template='plain')).reasons }}"

- name: Where would web1's secondary move if node3 goes away?
  ansible.builtin.set_fact:
    reloc: "{{ lookup('herd.cluster.placement', 'relocate', config=herd_config,
               facts=herd_facts, name='web1', relocate_from=['node3']) }}"

- name: Current cluster score (the same 20 terms as hbal)
  ansible.builtin.debug:
    msg: "{{ lookup('herd.cluster.placement', 'score', text_file='cluster.data') }}"
"""

RETURN = r"""
_raw:
  description: One dict per term.
  type: list
  elements: dict
  contains:
    success:
      description: Whether a placement was found.
      type: bool
    nodes:
      description: Chosen nodes (primary first) for allocate/relocate.
      type: list
      elements: str
    group:
      description: Chosen node group (allocate).
      type: str
    score:
      description: Cluster score after the placement (allocate) or now (score).
      type: float
    info:
      description: hail-style summary line.
      type: str
    reasons:
      description: One line per node not chosen, e.g. "node3 FailMem needs 8192 MiB, has
        5120 free".
      type: list
      elements: str
    moved:
      description: For evacuate, [instance, group, nodes] per moved instance.
      type: list
    failed:
      description: For evacuate, [instance, reason] per instance that cannot move.
      type: list
    jobs:
      description: For evacuate, the Ganeti opcodes (one job per moved instance).
      type: list
    terms:
      description: For score, the per-term breakdown (name, weight, value).
      type: list
"""

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

try:
    from ansible_collections.herd.cluster.plugins.module_utils.herd.allocator import (
        allocate as al, config_model, score as sc, text)
except ImportError:  # running from a source checkout (tests)
    from ..module_utils.herd.allocator import (  # type: ignore[no-redef]
        allocate as al, config_model, score as sc, text)


def _model(opts: dict):
    if opts.get("text_file"):
        try:
            with open(opts["text_file"], encoding="utf-8") as fh:
                return text.load_text(fh.read())
        except (OSError, ValueError) as exc:
            raise AnsibleLookupError(f"placement: {opts['text_file']}: {exc}") from None
    if opts.get("config") is None:
        raise AnsibleLookupError("placement: give either config (with facts) or text_file")
    try:
        return config_model.from_herd_config(opts["config"], opts.get("facts") or {})
    except ValueError as exc:
        raise AnsibleLookupError(f"placement: {exc}") from None


def answer(question: str, opts: dict) -> dict:
    """Answer one question (exposed for tests)."""
    c = _model(opts)
    try:
        if question == "score":
            rows = sc.breakdown(c)
            return {"success": True, "score": sc.score(c),
                    "terms": [[n, w, v] for n, w, v in rows]}
        if question == "allocate":
            disks = []
            for d in opts.get("disks") or [1024]:
                if isinstance(d, dict):
                    disks.append((int(d["size"]), d.get("spindles")))
                else:
                    disks.append((int(d), None))
            inst = c.new_instance(opts.get("name") or "new-instance", int(opts["memory"]),
                                  disks, int(opts["vcpus"]), opts["disk_template"],
                                  opts.get("tags") or [], int(opts.get("spindle_use") or 1))
            res = al.allocate(c, inst, None, opts.get("group"), opts.get("nodes"),
                              bool(opts.get("ignore_soft_errors")),
                              bool(opts.get("capacity_checks", True)))
            return res.as_dict()
        if question == "relocate":
            try:
                nodes, why = al.relocate(c, opts["name"], opts.get("relocate_from") or [], 1,
                                         bool(opts.get("ignore_soft_errors")))
            except al.AllocError as exc:
                return {"success": False, "nodes": [], "info": str(exc),
                        "reasons": list(getattr(exc, "reasons", []))}
            return {"success": True, "nodes": nodes, "info": "success", "reasons": why}
        if question == "evacuate":
            ev = al.node_evacuate(c, opts.get("instances") or [], opts.get("mode") or "all",
                                  bool(opts.get("ignore_soft_errors")))
            return {"success": not ev.failed, "info": ev.info,
                    "moved": [list(m) for m in ev.moved], "failed": [list(f) for f in ev.failed],
                    "jobs": ev.jobs,
                    "reasons": [f"{k}: {v}" for k, lines in ev.reasons.items() for v in lines]}
    except (al.AllocError, ValueError, KeyError) as exc:
        raise AnsibleLookupError(f"placement {question}: {exc}") from None
    raise AnsibleLookupError(f"placement: unknown question {question!r} "
                             "(expected allocate, relocate, evacuate or score)")


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        opts = {k: self.get_option(k) for k in (
            "config", "facts", "text_file", "name", "memory", "vcpus", "disks",
            "disk_template", "tags", "spindle_use", "group", "nodes", "relocate_from",
            "instances", "mode", "ignore_soft_errors", "capacity_checks")}
        return [answer(str(t), opts) for t in terms]
