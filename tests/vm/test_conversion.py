"""Disk template conversion, LV adoption and two volume groups on real LVM and DRBD."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.vm_extra


def test_site_on_two_nodes_with_a_spare_disk_each(vm, site):
    verify = vm.module("cluster_verify", {})
    assert verify["ok"] and verify["error_count"] == 0, verify["lines"]
