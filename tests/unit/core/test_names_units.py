import pytest

from plugins.module_utils.herd import names
from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.units import format_mib, parse_size_mib


@pytest.mark.parametrize("bad", ["", "-rf", "a b", "node;rm", "../x", "Node1", "a" * 64, "x/y", None, 3])
def test_bad_node_names_are_refused_with_the_value(bad):
    with pytest.raises(ValidationError, match="invalid node name"):
        names.check_hostname(bad)


@pytest.mark.parametrize("good", ["node1", "ganeti01.example.org", "a-b"])
def test_good_node_names_pass(good):
    assert names.check_hostname(good) == good


@pytest.mark.parametrize("bad", ["-gnt", "g n t", "gnt/x", "..", ""])
def test_bad_volume_groups_are_refused(bad):
    with pytest.raises(ValidationError, match="invalid volume group"):
        names.check_vg(bad)


def test_bridge_names_longer_than_15_are_refused():
    with pytest.raises(ValidationError, match="invalid bridge"):
        names.check_bridge("a" * 16)


@pytest.mark.parametrize("bad", ["aa:00:00:00:00", "zz:00:00:00:00:00", "aa-00-00-00-00-00"])
def test_invalid_macs_are_refused(bad):
    with pytest.raises(ValidationError, match="invalid MAC"):
        names.check_mac(bad)


def test_macs_are_normalised_to_lowercase():
    assert names.check_mac("AA:00:00:12:34:56") == "aa:00:00:12:34:56"


def test_relative_paths_are_refused():
    with pytest.raises(ValidationError, match="absolute path"):
        names.check_abs_path("srv/herd")
    with pytest.raises(ValidationError, match="absolute path"):
        names.check_abs_path("/srv/../etc")


@pytest.mark.parametrize("text,mib", [("10G", 10240), ("10240M", 10240), ("10 GiB", 10240), (10240, 10240),
                                      ("1T", 1048576), ("512m", 512), ("1.5G", 1536)])
def test_sizes_in_any_unit_are_one_size(text, mib):
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("bad", ["10X", "-1G", "0", "G", "", True, "0.3M"])
def test_bad_sizes_name_the_value(bad):
    with pytest.raises(ValidationError, match="invalid size"):
        parse_size_mib(bad)


def test_format_mib_uses_the_largest_whole_unit():
    assert [format_mib(v) for v in (512, 2048, 1048576)] == ["512M", "2G", "1T"]


@pytest.mark.parametrize("check, value", [
    (names.check_hostname, "node1\n"),
    (names.check_instance_name, "web1.example.org\n"),
    (names.check_vg, "gnt\n"),
    (names.check_ifname, "br0\n"),
    (names.check_tag, "prod\n"),
    (lambda v: names.check_simple(v, "disk name"), "disk0\n"),
    (names.check_mac, "aa:00:00:12:34:56\n"),
    (names.check_mac_prefix, "aa:00:00\n"),
    (names.check_uuid, "0c8a1b6e-8a8b-4a3c-9d36-6a0b7d0d1e2f\n"),
])
def test_item9_a_trailing_newline_is_refused_by_every_name_check(check, value):
    with pytest.raises(ValidationError, match="invalid"):
        check(value)
    assert check(value[:-1]) == value[:-1]
