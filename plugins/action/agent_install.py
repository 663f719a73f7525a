# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of herd.cluster.agent_install: read the collection's own
engine package (plugins/module_utils/herd), skipping __pycache__ and compiled
files, and hand its text files to the module that syncs them on the node."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# plugins/action/../module_utils/herd: the package this very collection ships.
DEFAULT_SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'module_utils', 'herd'))
SKIP_DIRS = ('__pycache__',)
SKIP_SUFFIXES = ('.pyc', '.pyo', '.swp', '~')


def read_tree(src):
    """{relative path: text} of every file under src, sorted, without caches or dotfiles."""
    files = {}
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith('.'))
        for name in sorted(names):
            if name.startswith('.') or name.endswith(SKIP_SUFFIXES):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            try:
                with open(path, encoding='utf-8') as handle:
                    files[rel] = handle.read()
            except UnicodeDecodeError:
                raise AnsibleActionFail(
                    'agent_install: %s is not a UTF-8 text file; the agent package holds text only' % path) from None
    return files


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('src', 'dest', 'package'))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        src = args.pop('src', None) or DEFAULT_SRC
        if not os.path.isfile(os.path.join(src, 'agent', 'main.py')):
            raise AnsibleActionFail('agent_install: %s is not the herd engine package (no agent/main.py)' % src)
        args['files'] = read_tree(src)
        result.update(self._execute_module(module_name='herd.cluster.agent_install', module_args=args,
                                           task_vars=task_vars))
        return result
