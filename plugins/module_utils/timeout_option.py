# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one rule for every timeout option of herd.cluster's modules and roles.

A timeout is named ``<what>_timeout``, counts whole seconds and has ``type: int``; its
DOCUMENTATION entry says ``type: int``, the same default, and a description that starts
with "Seconds". An option renamed to follow the rule keeps its old name as an alias, so no
playbook breaks. ``tests/unit/test_timeout_options.py`` checks every module and role.
Standalone (no engine import): the node bootstrap modules use it too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def timeout_arg(default, aliases=None):
    """The argument_spec entry of a timeout option: whole seconds, ``default`` (an int)."""
    if isinstance(default, bool) or not isinstance(default, int) or default < 0:
        raise ValueError("a timeout default is a whole number of seconds, not %r" % (default,))
    entry = dict(type='int', default=default)
    if aliases:
        entry['aliases'] = list(aliases)
    return entry
