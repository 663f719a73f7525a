"""Properties of the balancer on generated clusters (hypothesis)."""

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.module_utils.herd.allocator import score as hscore
from plugins.module_utils.herd.allocator.balance import BalanceOptions, balance, split_jobsets
from plugins.module_utils.herd.allocator.moves import apply_move
from plugins.module_utils.herd.allocator.text import load_text

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "alloc"))
from gen import generate  # noqa: E402

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

clusters = st.builds(
    lambda n, per, seed, drbd, hot: generate(n, n * per, seed=seed, drbd_share=drbd,
                                             hot_weight=hot),
    st.integers(2, 6), st.integers(1, 5), st.integers(0, 10_000),
    st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([1.0, 4.0, 10.0]))
modes = st.sampled_from(["exhaustive", "lazy", "lazy-pruned"])


def _opts(mode, **kw):
    if mode == "exhaustive":
        return BalanceOptions(exhaustive_limit=10**9, **kw)
    if mode == "lazy":
        return BalanceOptions(exhaustive_limit=0, **kw)
    return BalanceOptions(exhaustive_limit=0, targets=1, **kw)


@SETTINGS
@given(clusters, modes)
def test_balancing_never_raises_the_score(text, mode):
    c = load_text(text)
    res = balance(c, _opts(mode))[0]
    assert res.final_score <= res.initial_score + 1e-9


@SETTINGS
@given(clusters, modes)
def test_every_move_lowers_the_score(text, mode):
    c = load_text(text)
    res = balance(c, _opts(mode))[0]
    scores = [res.initial_score] + [m.score for m in res.moves]
    assert all(b < a + 1e-9 for a, b in zip(scores, scores[1:]))


@SETTINGS
@given(clusters, modes)
def test_job_sets_never_share_a_node(text, mode):
    c = load_text(text)
    res = balance(c, _opts(mode))[0]
    for js in res.jobsets:
        seen = set()
        for i in js:
            nodes = set(res.moves[i].nodes)
            assert not nodes & seen
            seen |= nodes


@SETTINGS
@given(clusters, modes)
def test_job_sets_keep_every_move_once_in_order(text, mode):
    c = load_text(text)
    res = balance(c, _opts(mode))[0]
    assert [i for js in res.jobsets for i in js] == list(range(len(res.moves)))


@SETTINGS
@given(clusters, modes)
def test_reported_final_score_is_the_exact_score_of_the_final_state(text, mode):
    c = load_text(text)
    res = balance(c, _opts(mode))[0]
    assert res.final_score == hscore.score(c, [n.idx for n in c.nodes])


@SETTINGS
@given(clusters)
def test_a_rolled_back_move_leaves_the_score_unchanged(text):
    c = load_text(text)
    before = hscore.score(c)
    for inst in c.instances:
        if inst.template != "drbd":
            continue
        for t in range(len(c.nodes)):
            if t in (inst.pnode, inst.snode):
                continue
            mark = c.checkpoint()
            apply_move(c, inst, ("frf", t))
            c.rollback(mark)
    c.commit()
    assert abs(hscore.score(c) - before) < 1e-9


@SETTINGS
@given(clusters)
def test_balanced_state_does_not_overcommit_memory_or_disk(text):
    c = load_text(text)
    bad_before = {n.idx for n in c.nodes if n.unallocated_mem() < 0 or n.f_dsk < 0}
    balance(c, BalanceOptions(exhaustive_limit=0))
    bad_after = {n.idx for n in c.nodes if n.unallocated_mem() < 0 or n.f_dsk < 0}
    assert bad_after <= bad_before


def test_split_jobsets_starts_a_new_set_when_a_node_repeats():
    assert split_jobsets([["a", "b"], ["c"], ["b", "d"], ["e"]]) == [[0, 1], [2, 3]]


def test_max_moves_caps_the_plan():
    c = load_text(generate(6, 24, seed=3, hot_weight=10.0))
    res = balance(c, BalanceOptions(max_moves=2))[0]
    assert len(res.moves) == 2 and res.stop_reason == "max moves reached"


def test_excluded_instances_are_never_moved():
    text = generate(6, 24, seed=3, hot_weight=10.0)
    first = balance(load_text(text))[0]
    moved = sorted({m.instance for m in first.moves})
    res = balance(load_text(text), BalanceOptions(exclude_instances=moved))[0]
    assert not {m.instance for m in res.moves} & set(moved)


def test_selected_instances_are_the_only_ones_moved():
    text = generate(6, 24, seed=3, hot_weight=10.0)
    first = balance(load_text(text))[0]
    chosen = [first.moves[0].instance]
    res = balance(load_text(text), BalanceOptions(select_instances=chosen))[0]
    assert {m.instance for m in res.moves} <= set(chosen)


def test_no_disk_moves_allows_only_failovers():
    c = load_text(generate(6, 24, seed=3, hot_weight=10.0))
    res = balance(c, BalanceOptions(disk_moves=False))[0]
    assert res.moves and {m.kind for m in res.moves} == {"f"}


def test_evac_mode_moves_only_instances_of_offline_nodes():
    text = generate(6, 24, seed=3, hot_weight=10.0)
    c = load_text(text, offline_nodes=["node001"])
    res = balance(c, BalanceOptions(evac_mode=True))[0]
    assert res.moves
    assert all("node001" in (m.old_primary, m.old_secondary) for m in res.moves)


def test_unknown_group_is_refused_with_the_group_list():
    c = load_text(generate(4, 8, seed=1))
    try:
        balance(c, BalanceOptions(group="nope"))
    except ValueError as exc:
        assert "default" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_score_only_returns_the_score_without_evaluating_a_move():
    c = load_text(generate(20, 200, seed=3))
    before = hscore.score(c)
    res = balance(c, BalanceOptions(max_moves=0))
    assert all(r.moves == [] and r.evaluations == 0 for r in res)
    assert sum(r.final_score for r in res) == pytest.approx(before)
