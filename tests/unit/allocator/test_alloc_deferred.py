"""Deferred statistics (``Cluster.defer_stats``), ``moves.each_move`` and
``moves.each_move_shared``: every candidate move scored the fast way gives the
feasibility and score of the same move applied normally and scored from
scratch, and the model is unchanged after."""

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.module_utils.herd.allocator import score as hscore
from plugins.module_utils.herd.allocator.model import NO_NODE, mirror_type
from plugins.module_utils.herd.allocator.moves import apply_move, each_move, each_move_shared
from plugins.module_utils.herd.allocator.text import load_text

sys.path.insert(0, os.path.dirname(__file__))
from htools_live import HTOOLS  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "alloc"))
from gen import generate  # noqa: E402

KINDS = ("r", "rf", "frf", "fr")


def _candidates(c, inst, gnodes):
    if mirror_type(inst.template) == "external":
        return [("fa", t) for t in gnodes if t not in (inst.pnode, inst.snode)]
    out = [("f",)]
    for t in gnodes:
        if t not in (inst.pnode, inst.snode):
            out.extend((k, t) for k in KINDS)
    return out


def _state(c):
    return [(i.pnode, i.snode, i.location_score) for i in c.instances], \
        [(n.i_mem, n.f_dsk, n.r_mem, n.fail_n1, n.loc_score, sorted(n.plist), sorted(n.slist),
          dict(n.peers), dict(n.p_tags), dict(n.instance_map)) for n in c.nodes]


def _check(c, force=False):
    checked = 0
    for g in {n.group for n in c.nodes}:
        gnodes = [n.idx for n in c.nodes if n.group == g]
        online = [x for x in gnodes if not c.nodes[x].offline]
        for inst in c.instances:
            if inst.pnode not in gnodes or inst.snode == NO_NODE and \
                    mirror_type(inst.template) != "external":
                continue
            if mirror_type(inst.template) == "none":
                continue
            cands = _candidates(c, inst, online)
            expected = []
            for mv in cands:
                mark = c.checkpoint()
                r = apply_move(c, inst, mv, force)
                expected.append(None if r else hscore.score(c, gnodes))
                c.rollback(mark)
                c.commit()
            before = _state(c)
            was = c.defer_stats(True)
            got = []
            for _mv, r in each_move(c, inst, cands, force):
                got.append(None if r else c.score(g))
            c.defer_stats(was)
            c.commit()
            assert _state(c) == before
            # the balancer's order-free variant: the same answers, bit for bit
            was = c.defer_stats(True)
            shared: list = [None] * len(cands)
            for pos, r in each_move_shared(c, inst, cands, force):
                shared[pos] = None if r else c.score(g)
            c.defer_stats(was)
            c.commit()
            assert _state(c) == before
            assert shared == got, inst.name
            for mv, e, s in zip(cands, expected, got):
                assert (e is None) == (s is None), (inst.name, mv, e, s)
                if e is not None:
                    assert s == pytest.approx(e, rel=1e-9, abs=1e-9), (inst.name, mv)
                    checked += 1
            # the sums were not touched: still the exact score
            assert c.score(g) == pytest.approx(hscore.score(c, gnodes), rel=1e-9, abs=1e-9)
    return checked


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(3, 8), st.integers(2, 6), st.integers(0, 10_000), st.sampled_from([1, 2]),
       st.sampled_from([0, 1]), st.booleans())
def test_deferred_scores_equal_applied_scores(nodes, per, seed, groups, offline, force):
    text = generate(nodes + offline, nodes * per, seed=seed, drbd_share=0.8, groups=groups,
                    offline=offline)
    c = load_text(text, legacy_n1=True)
    _check(c, force)


# Ganeti's data with location and exclusion tags (the map term), forthcoming
# instances, shared storage and offline nodes
@pytest.mark.parametrize("name", ["hbal-location-exclusion", "hbal-location-1", "hbal-forth",
                                  "hbal-excl-tags", "hbal-split-insts", "hbal-evac",
                                  "hbal-desiredlocation-2"])
def test_deferred_scores_on_ganeti_data(name):
    path = os.path.join(HTOOLS, name + ".data")
    if not os.path.exists(path):
        pytest.skip(f"{path} missing (Debian's ganeti-testsuite, see scripts/setup.sh)")
    with open(path, encoding="utf-8") as fh:
        c = load_text(fh.read(), legacy_n1=True)
    assert _check(c) > 0
