"""The tiered capacity walk answers shrunk specs from remembered failures
(``capacity._Run``): the reports must be exactly those of a walk that runs
every allocation, on generated clusters and on Ganeti's hspace data, with and
without capacity checks, for each disk template hspace would be asked for."""

from __future__ import annotations

import os
import sys

import pytest

from plugins.module_utils.herd.allocator import capacity as cap
from plugins.module_utils.herd.allocator.text import load_file, load_text

from .htools_live import HTOOLS, require

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "alloc"))
from gen import generate  # noqa: E402


def _reports(c, monkeypatch, remember: bool, **kw) -> dict:
    monkeypatch.setattr(cap, "REMEMBER_FAILURES", remember)
    rep = cap.capacity(c, **kw).as_dict()
    for part in ("standard", "tiered"):
        del rep[part]["elapsed"]
    return rep


def _counting(monkeypatch) -> list[int]:
    calls = [0]
    real = cap.allocate

    def counted(*a, **k):
        calls[0] += 1
        return real(*a, **k)
    monkeypatch.setattr(cap, "allocate", counted)
    return calls


GENERATED = [(4, 40, 1), (8, 60, 3)]
OPTIONS = [dict(capacity_checks=False, accept_existing=True),
           dict(capacity_checks=True, accept_existing=True),
           dict(capacity_checks=True, accept_existing=True, template="drbd",
                ignore_soft=True)]


@pytest.mark.parametrize("opts", OPTIONS, ids=["nocap", "cap", "drbd-cap-soft"])
@pytest.mark.parametrize("shape", GENERATED, ids=[f"gen-{n}-{i}-s{s}" for n, i, s in GENERATED])
def test_remembered_failures_change_no_report(monkeypatch, shape, opts):
    c = load_text(generate(*shape[:2], seed=shape[2]), legacy_n1=True)
    assert _reports(c, monkeypatch, True, **opts) == _reports(c, monkeypatch, False, **opts)


HSPACE_FILES = ("hspace-tiered", "hspace-tiered-vcpu", "hspace-tiered-resourcetypes",
                "hspace-tiered-ipolicy", "hspace-tiered-mixed", "hspace-tiered-dualspec",
                "hspace-tiered-exclusive", "hspace-tiered-dualspec-exclusive",
                "hspace-existing", "hspace-groups-two", "hspace-bad-group")


@pytest.mark.parametrize("name", HSPACE_FILES)
def test_remembered_failures_change_no_report_on_ganetis_data(monkeypatch, name):
    require()
    c = load_file(f"{HTOOLS}/{name}.data", legacy_n1=True)
    # capacity checks on: the remembered failures must step aside for FailN1
    opts = dict(capacity_checks=name != "hspace-existing", accept_existing=True)
    assert _reports(c, monkeypatch, True, **opts) == _reports(c, monkeypatch, False, **opts)


def test_the_tiered_walk_allocates_once_per_change_of_outcome(monkeypatch):
    # the walk shrinks memory 64 MiB at a time from 64 GiB: thousands of steps,
    # of which only those crossing a node's limit need an allocation
    c = load_text(generate(4, 40, seed=1), legacy_n1=True)
    calls = _counting(monkeypatch)
    rep = cap.tiered_alloc(c, capacity=False, accept_existing=True)
    assert rep.count > 0
    assert calls[0] < 200
    monkeypatch.setattr(cap, "REMEMBER_FAILURES", False)
    calls[0] = 0
    cap.tiered_alloc(c, capacity=False, accept_existing=True)
    assert calls[0] > 1000
