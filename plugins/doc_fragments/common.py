# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  lock_timeout:
    description:
      - Seconds to wait for the cluster, node or instance locks held by another job.
      - On timeout the module fails and names the job holding the lock.
    type: int
    default: 60
  rpc_timeout:
    description:
      - Seconds to wait for one node agent call over SSH (separate from the operation's own timeout).
    type: int
    default: 120
notes:
  - Runs on the cluster's master node (target it, or use C(delegate_to)). On another node it fails and names
    the master.
'''
