# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The glue every herd.cluster module shares: options common to all, and
running an engine op with herd's errors turned into fail_json."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.herd.cluster.plugins.module_utils.herd.errors import HerdError
from ansible_collections.herd.cluster.plugins.module_utils.herd.ops.common import Context
from ansible_collections.herd.cluster.plugins.module_utils.timeout_option import timeout_arg

COMMON_ARGS = dict(
    lock_timeout=timeout_arg(60),
    rpc_timeout=timeout_arg(120),
)


# Each instance option once: herd.cluster.instance takes them, herd.cluster.instances takes a list of
# them (its suboptions), and the engine's spec is exactly these options.
INSTANCE_ARGS = dict(
    name=dict(type='str', required=True),
    state=dict(type='str', default='present', choices=['present', 'running', 'stopped', 'restarted', 'absent']),
    disk_template=dict(type='str', choices=['diskless', 'file', 'sharedfile', 'plain', 'drbd']),
    hypervisor=dict(type='str', choices=['kvm', 'fake']),
    disks=dict(type='list', elements='raw'),
    nics=dict(type='list', elements='dict'),
    memory=dict(type='raw'),
    minmem=dict(type='raw'),
    vcpus=dict(type='int'),
    hvparams=dict(type='dict'),
    os=dict(type='str', choices=['noop', 'image', 'cloud_init']),
    osparams=dict(type='dict', no_log=True),
    tags=dict(type='list', elements='str'),
    vnc_password=dict(type='str', no_log=True),
    primary_node=dict(type='str'),
    secondary_node=dict(type='str'),
    restart_on_change=dict(type='bool', default=False),
    shutdown_timeout=timeout_arg(120),
    wait_for_sync=dict(type='bool', default=True),
    sync_timeout=timeout_arg(3600),
    remove_disks=dict(type='bool', default=False),
    reinstall=dict(type='bool', default=False),
)


def context(module):
    return Context.on_this_node(check_mode=module.check_mode, lock_timeout=module.params['lock_timeout'],
                                rpc_timeout=module.params['rpc_timeout'])


def exit_or_fail_on_failures(module, result):
    """Exit with result, or fail the task naming each failed instance when result['failures']
    (per-instance failures of evacuate/rebalance; not 'failed', which is Ansible's own key)."""
    if result.get('failures'):
        module.fail_json(msg=result.pop('msg') + ': ' + '; '.join('%s: %s' % (f['instance'], f['reason'])
                                                                  for f in result['failures']), **result)
    module.exit_json(**result)


def run(module, func, *args, **kwargs):
    """Run ``func(ctx, ...)``; exit with its result or fail with herd's message."""
    ctx = None
    try:
        ctx = context(module)
        result = func(ctx, *args, **kwargs)
    except HerdError as exc:
        # fail_json(warnings=...) is deprecated from ansible-core 2.21: warnings go through module.warn
        for warning in ctx.warnings if ctx else []:
            module.warn(warning)
        module.fail_json(msg=str(exc) + _job_note(ctx), **_job_ids(ctx))
    except Exception as exc:  # an engine bug: say so, with the trace for the report
        module.fail_json(msg="herd internal error: %s: %s%s" % (type(exc).__name__, exc, _job_note(ctx)),
                         exception=traceback.format_exc(), **_job_ids(ctx))
    finally:
        if ctx is not None:
            ctx.rpc.close()
    if not module._diff:
        result.pop('diff', None)
    for warning in ctx.warnings:
        module.warn(warning)
    result.update(_job_ids(ctx))
    return result


def _job_ids(ctx):
    """``job_ids``: the journal jobs this run opened, so a result or an error leads to its job."""
    opened = list(ctx.journal.opened) if ctx is not None else []
    return {'job_ids': opened} if opened else {}


def _job_note(ctx):
    opened = _job_ids(ctx).get('job_ids')
    if not opened:
        return ''
    return ' (job %s; herd.cluster.job_info id=%d shows its steps)' % (
        ', '.join(str(i) for i in opened), opened[-1])
