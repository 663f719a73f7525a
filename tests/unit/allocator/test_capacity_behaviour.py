"""Behaviour of the capacity reports beyond the recorded hspace runs."""

import os
import sys

from plugins.module_utils.herd.allocator import score as hscore
from plugins.module_utils.herd.allocator.capacity import Spec, capacity, standard_alloc
from plugins.module_utils.herd.allocator.text import load_file, load_text

from .htools_live import data_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "alloc"))
from gen import generate  # noqa: E402


def test_capacity_leaves_the_cluster_unchanged():
    c = load_file(data_file("hspace-tiered.data"), legacy_n1=True)
    before = (hscore.score(c), len(c.instances))
    capacity(c, capacity_checks=False)
    assert (hscore.score(c), len(c.instances)) == before


def test_a_cluster_failing_n1_gets_nothing_unless_existing_state_is_accepted():
    text = generate(6, 60, seed=2, hot_weight=10.0)
    c = load_text(text)
    assert any(n.fail_n1 for n in c.nodes)
    refused = standard_alloc(c, capacity=False)
    accepted = standard_alloc(c, capacity=False, accept_existing=True)
    assert (refused.count, refused.fail_reason) == (0, "FailN1")
    assert accepted.count > 0


def test_the_last_failure_explains_each_node():
    c = load_file(data_file("hspace-tiered.data"), legacy_n1=True)
    rep = standard_alloc(c, capacity=False)
    assert len(rep.reasons) == len(c.nodes)
    assert all("FailMem" in r for r in rep.reasons)


def test_a_smaller_standard_spec_fits_at_least_as_often():
    c = load_file(data_file("hspace-tiered.data"), legacy_n1=True)
    big = standard_alloc(c, spec=Spec(65536, 524288, 2), capacity=False)
    small = standard_alloc(c, spec=Spec(32768, 262144, 2), capacity=False)
    assert small.count >= big.count


def test_limit_stops_the_standard_allocation():
    c = load_file(data_file("hspace-existing.data"), legacy_n1=True)
    rep = standard_alloc(c, capacity=False, limit=5)
    assert rep.count == 5
