"""htools text format: tolerant reading, faithful writing, errors naming the line."""

from __future__ import annotations

import os

import pytest

from plugins.module_utils.herd.allocator import score
from plugins.module_utils.herd.allocator.text import (TextFormatError, load_file, load_text,
                                                      write_text)

from .htools_live import data_file, params, text_files

BAD = {"invalid-node.data"}
FILES = [f for f in text_files() if os.path.basename(f) not in BAD]

MINI = ("g1|uuid-1|preferred||\n"
        "\n"
        "n1|4096|512|3584|10000|10000|4|M|uuid-1\n"
        "n2|4096|512|2560|10000|8000|4|N|uuid-1\n"
        "\n"
        "i1|1024|1000|2|running|Y|n2|n1|drbd|\n"
        "\n"
        "htools:iextags:svc\n"
        "\n")


@pytest.mark.parametrize("path", params(FILES, [os.path.basename(f) for f in FILES]))
def test_write_then_read_gives_the_same_cluster(path):
    c1 = load_file(path)
    out1 = write_text(c1)
    c2 = load_text(out1)
    assert write_text(c2) == out1
    assert score.score(c2) == pytest.approx(score.score(c1), abs=1e-9)
    assert [n.name for n in c2.nodes] == [n.name for n in c1.nodes]
    assert [(i.name, i.pnode, i.snode) for i in c2.instances] == \
        [(i.name, i.pnode, i.snode) for i in c1.instances]


def test_trailing_fields_take_htools_defaults():
    c = load_text(MINI)
    n1 = c.nodes[0]
    assert (n1.t_spindles, n1.excl_stor, n1.f_spindles, n1.n_cpu, n1.cpu_speed) == \
        (1, False, 0, 1, 1.0)
    assert n1.master and not n1.offline
    i1 = c.instances[0]
    assert (i1.spindle_use, i1.total_spindles(), i1.forthcoming) == (1, None, False)


def test_question_mark_makes_a_node_offline_without_resources():
    c = load_text(MINI.replace("n2|4096|512|2560", "n2|?|512|2560"))
    n2 = c.nodes[1]
    assert n2.offline and n2.t_mem == 0 and "?" in n2.offline_reason


def test_policy_lines_after_a_single_blank_line_are_cluster_tags():
    text = MINI.rstrip("\n") + "\n|128,1,1024,1,1,1|128,1,1024,1,1,1;32768,8,1048576,16,8,12|" \
        "plain,drbd|4.0|32.0\n"
    c = load_text(text)
    assert c.cluster_tags[-1].startswith("|128,1")


def test_cluster_tags_define_exclusion_prefixes():
    c = load_text(MINI.replace("running|Y|n2|n1|drbd|", "running|Y|n2|n1|drbd|svc:web"))
    assert c.instances[0].excl_tags == ["svc:web"]


def test_unknown_node_names_the_line_and_the_node():
    with pytest.raises(TextFormatError, match=r"line \d+: unknown node 'no-such-node' for "
                                              r"instance new-0"):
        load_file(data_file("invalid-node.data"))


@pytest.mark.parametrize("old,new,expected", [
    ("n2|4096|512|2560|10000|8000|4|N|uuid-1", "n2|4096|512", r"line 4: invalid/incomplete node "
     r"data: expected at least 9 fields"),
    ("n2|4096|512|2560", "n2|4096|lots|2560", r"line 4: node n2 n_mem: expected an integer, "
     r"got 'lots'"),
    ("|N|uuid-1\n\ni1", "|N|uuid-9\n\ni1", r"line 4: unknown group 'uuid-9' for node n2"),
    ("running|Y|n2|n1", "running|maybe|n2|n1", r"line 6: invalid auto_balance value 'maybe'"),
    ("running|Y|n2|n1", "sleeping|Y|n2|n1", r"line 6: instance i1: invalid status 'sleeping'"),
    ("|n2|n1|drbd|", "|n2|n2|drbd|", r"line 6: instance i1 has same primary and secondary"),
    ("|drbd|", "|raid|", r"line 6: instance i1: invalid disk template 'raid'"),
    ("g1|uuid-1|preferred||", "g1|uuid-1|sometimes||", r"line 1: group g1: invalid "
     r"alloc_policy 'sometimes'"),
])
def test_malformed_lines_name_the_line_and_what_was_expected(old, new, expected):
    assert old in MINI
    with pytest.raises(TextFormatError, match=expected):
        load_text(MINI.replace(old, new, 1))


def test_too_few_sections_is_an_error():
    with pytest.raises(TextFormatError, match="2 sections instead of 4 or more"):
        load_text("g1|uuid-1|preferred||\n\nn1|1|1|1|1|1|1|N|uuid-1\n")


def test_bad_policy_line_names_the_line():
    text = MINI + "|128,1,1024|128,1,1024,1,1,1;32768,8,1048576,16,8,12|plain|4.0|32.0\n"
    with pytest.raises(TextFormatError, match=r"line 10: invalid ispec"):
        load_text(text)


def test_group_policy_line_applies_to_the_group():
    text = MINI + "g1|128,1,1024,1,1,1|128,1,1024,1,1,1;2048,2,4096,1,1,2|plain|2.0|8.0\n"
    c = load_text(text)
    pol = c.groups[0].ipolicy
    assert (pol.vcpu_ratio, pol.spindle_ratio, pol.disk_templates) == (2.0, 8.0, ("plain",))
    assert c.nodes[0].hi_spindles == 8.0
