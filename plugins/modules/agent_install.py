#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: agent_install
short_description: Install the herd-node agent (the collection's engine package) on a node
version_added: 0.1.0
description:
  - Copies the collection's C(plugins/module_utils/herd) package to C(<dest>/<package>/) on the node and
    writes the executable entry point C(<dest>/herd-node), which runs C(herd.agent.main.main()) with
    C(/usr/bin/python3).
  - The package is read on the controller (the action plugin), without C(__pycache__) directories or compiled
    files, and synced in one module run; files that are no longer part of the package are removed from the
    node, so the agent is always exactly the collection's version.
  - Files get mode 0644, directories and C(herd-node) 0755, owner root.
author: herd contributors (@herd-cluster)
attributes:
  check_mode:
    support: full
    description: Reports the files that would be written or removed.
  diff_mode:
    support: full
    description: The lists of files before and after.
options:
  src:
    description:
      - The engine package on the controller. The default is the package this collection ships.
    type: path
  dest:
    description: Directory on the node that holds the package and C(herd-node).
    type: path
    default: /usr/local/lib/herd
  package:
    description: Name of the package directory under I(dest) (the agent imports C(herd.agent.main)).
    type: str
    default: herd
  files:
    description:
      - Internal, filled in by the action plugin (relative path to text). Do not set.
    type: dict
    required: true
'''

EXAMPLES = r'''
- name: Install the herd-node agent at the collection's version
  herd.cluster.agent_install:
    dest: /usr/local/lib/herd
'''

RETURN = r'''
version:
  description: The agent version now installed (from C(version.py)).
  returned: always
  type: str
  sample: 0.1.0
written:
  description: Files (relative to I(dest)) written or that would be written.
  returned: always
  type: list
  elements: str
removed:
  description: Stale files removed (or that would be removed).
  returned: always
  type: list
  elements: str
entry_point:
  description: Path of the C(herd-node) executable.
  returned: always
  type: str
  sample: /usr/local/lib/herd/herd-node
'''

import os
import re
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

ENTRY_POINT = '''#!/usr/bin/python3
# herd-node: the herd node agent. Installed by the herd.cluster.node_base role; do not edit.
import sys

sys.path.insert(0, {dest!r})
from {package}.agent.main import main  # noqa: E402

raise SystemExit(main())
'''
SKIP_DIRS = ('__pycache__',)


def existing_files(root):
    found = set()
    if not os.path.isdir(root):
        return found
    for base, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in names:
            found.add(os.path.relpath(os.path.join(base, name), root))
    return found


def read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def mode_of(path):
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        return None


def write_atomic(path, data, mode):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.herd-')
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path'),
            dest=dict(type='path', default='/usr/local/lib/herd'),
            package=dict(type='str', default='herd'),
            files=dict(type='dict', required=True),
        ),
        supports_check_mode=True,
    )
    dest = module.params['dest']
    package = module.params['package']
    files = module.params['files']
    if not re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', package):
        module.fail_json(msg='package must be a Python identifier, got %r' % package)
    for rel in files:
        if rel.startswith('/') or '..' in rel.split('/'):
            module.fail_json(msg='refusing file path %r outside the package' % rel)
    if 'agent/main.py' not in files:
        module.fail_json(msg='files do not hold the herd engine package (no agent/main.py)')

    root = os.path.join(dest, package)
    want = dict((os.path.join(package, rel), text.encode('utf-8')) for rel, text in files.items())
    want['herd-node'] = ENTRY_POINT.format(dest=dest, package=package).encode('utf-8')

    written = []
    for rel in sorted(want):
        path = os.path.join(dest, rel)
        mode = 0o755 if rel == 'herd-node' else 0o644
        if read(path) != want[rel] or mode_of(path) != mode:
            written.append(rel)
    removed = sorted(os.path.join(package, rel) for rel in existing_files(root)
                     if os.path.join(package, rel) not in want)
    # directories that must exist (0755)
    dirs = sorted(set(os.path.dirname(os.path.join(dest, rel)) for rel in want))
    bad_dirs = [d for d in dirs if mode_of(d) != 0o755]

    changed = bool(written or removed or bad_dirs)
    before = sorted(os.path.relpath(os.path.join(root, rel), dest) for rel in existing_files(root))
    if os.path.exists(os.path.join(dest, 'herd-node')):
        before.append('herd-node')
    if changed and not module.check_mode:
        for directory in dirs:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            os.chmod(directory, 0o755)
        for rel in written:
            mode = 0o755 if rel == 'herd-node' else 0o644
            write_atomic(os.path.join(dest, rel), want[rel], mode)
        for rel in removed:
            os.unlink(os.path.join(dest, rel))

    match = re.search(r'''^VERSION\s*=\s*['"]([^'"]+)['"]''', files.get('version.py', ''), re.M)
    result = dict(changed=changed, version=match.group(1) if match else None, written=written, removed=removed,
                  entry_point=os.path.join(dest, 'herd-node'))
    if module._diff:
        result['diff'] = dict(before='\n'.join(sorted(before)) + '\n',
                              after='\n'.join(sorted(want)) + '\n')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
