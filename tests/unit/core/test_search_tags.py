"""gnt-cluster search-tags: cluster_info's search_tags over cluster, groups, nodes, instances, networks."""

import pytest

from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.ops import views
from plugins.module_utils.herd.ops import instance as instance_op


@pytest.fixture
def tagged(cluster):
    instance_op.ensure(cluster, {"name": "web1", "state": "stopped", "disk_template": "diskless", "memory": "128M",
                                 "hypervisor": "fake", "tags": ["role:web", "herd:autorepair:migrate"]})
    config = cluster.store.load()
    config.cluster.tags = ["site:fsn"]
    config.nodes["node2"].tags = ["rack:b", "role:webfront"]
    config.nodegroups["default"].tags = ["site:fsn-1"]
    cluster.store.save(config)
    return cluster


def test_matches_come_from_every_kind_of_object_with_their_paths(tagged):
    found = views.cluster_info(tagged, "fsn")["tags"]
    assert found == [{"path": "/cluster", "tag": "site:fsn"}, {"path": "/nodegroups/default", "tag": "site:fsn-1"}]


def test_the_expression_matches_anywhere_in_the_tag(tagged):
    assert views.cluster_info(tagged, "web")["tags"] == [{"path": "/instances/web1", "tag": "role:web"},
                                                         {"path": "/nodes/node2", "tag": "role:webfront"}]


def test_anchored_regular_expressions_work(tagged):
    assert views.cluster_info(tagged, r"^role:web$")["tags"] == [{"path": "/instances/web1", "tag": "role:web"}]


def test_no_match_is_an_empty_list_and_without_search_there_is_no_tags_key(tagged):
    assert views.cluster_info(tagged, "nothing-like-this")["tags"] == []
    assert "tags" not in views.cluster_info(tagged)


@pytest.mark.parametrize("bad, message", [("role:(web", "not a valid regular expression"),
                                          ("", "1 to 256 characters"), ("x" * 257, "1 to 256 characters")])
def test_bad_expressions_are_refused_naming_them(tagged, bad, message):
    with pytest.raises(ValidationError, match=message):
        views.cluster_info(tagged, bad)
