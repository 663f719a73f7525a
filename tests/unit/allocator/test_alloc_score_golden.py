"""The cluster score: hbal's 20 terms and weights, hbal's "Initial score" on every case
(hbal run live on Ganeti's data)."""

from __future__ import annotations

import re

import pytest

from plugins.module_utils.herd.allocator import score
from plugins.module_utils.herd.allocator.text import load_file

from .htools_live import hbal_cases, params

SCORED = [c for c in hbal_cases() if c.initial is not None and c.data]


def scored(name):
    case = next((c for c in SCORED if c.name == name), None)
    if case is None:
        pytest.skip(f"hbal case {name} unavailable")
    return case


def load_case(case, legacy_n1=True):
    c = load_file(case.data, legacy_n1=legacy_n1, ignore_dynu=case.ignore_dynu,
                  offline_nodes=case.offline, exclusion_tags=case.exclusion_tags)
    groups = {n.group for n in c.nodes}
    gdx = c.group_by_name[case.group] if case.group else (groups.pop() if len(groups) == 1
                                                          else None)
    return c, gdx


@pytest.mark.parametrize("case", params(SCORED, [c.name for c in SCORED], "hbal"))
def test_initial_score_equals_hbal(case):
    # Debian's htools is 3.0.2: initial N+1 flag is fMem < rMem
    c, gdx = load_case(case)
    nodes = c.group_nodes(gdx) if gdx is not None else None
    assert score.score(c, nodes) == pytest.approx(case.initial, abs=1e-6)


@pytest.mark.parametrize("case", params(SCORED, [c.name for c in SCORED], "hbal"))
def test_incremental_score_equals_the_exact_score(case):
    c, gdx = load_case(case)
    nodes = c.group_nodes(gdx) if gdx is not None else None
    assert c.score(gdx) == pytest.approx(score.score(c, nodes), abs=1e-9)


def test_terms_and_weights_are_hbals():
    out = scored("n1-failure__g1").stdout
    table = re.findall(r"^\s+(\w+)\s+([0-9.]+)\s+x([0-9.]+)$", out, re.M)
    assert [(name, float(w)) for name, _value, w in table] == \
        [(name, w) for w, name, _kind in score.TERMS]


def test_breakdown_matches_hbals_verbose_table():
    case = scored("n1-failure__g1")
    out = case.stdout
    table = {name: float(v) for name, v, _weight in
             re.findall(r"^\s+(\w+)\s+([0-9.]+)\s+x([0-9.]+)$", out, re.M)}
    c, gdx = load_case(case)
    for name, _weight, value in score.breakdown(c, c.group_nodes(gdx)):
        assert value == pytest.approx(table[name], abs=1e-8), name


def test_htools_31_n1_initialisation_differs_from_302_on_location_2():
    # upstream commit 3c45a5c2: N+1 is unallocatedMem <= rMem from 3.1 on
    case = scored("hbal-location-2")
    legacy, gdx = load_case(case, legacy_n1=True)
    new, _gdx = load_case(case, legacy_n1=False)
    assert score.score(legacy) == pytest.approx(case.initial, abs=1e-6)
    assert score.score(new) > score.score(legacy)


def test_equal_nodes_score_exactly_zero_spread():
    text = ("g|u|preferred||\n\n" +
            "".join(f"n{i}|4096|0|3072|1000|1000|4|N|u|1\n" for i in range(3)) +
            "\n" + "".join(f"i{i}|1024|0|1|running|Y|n{i}||ext||1\n" for i in range(3)) +
            "\n\n")
    from plugins.module_utils.herd.allocator.text import load_text
    c = load_text(text)
    assert c.score() == 0.0
