# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stdout callback for the tests: the whole run as one JSON document.

ansible-core ships no json callback (it lives in ansible.posix), so the
tests carry this small one: plays, their tasks with each host's result and
the task's start/end time per host, and the final stats.
"""

import json
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: herd_json
type: stdout
short_description: the run as one JSON document (herd's tests)
description: Plays, tasks with per-host results and timings, and stats, printed at the end.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'herd_json'

    def __init__(self):
        super().__init__()
        self.plays = []
        self.started = {}

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'play': {'name': play.get_name()}, 'tasks': []})

    def _task(self, task):
        tasks = self.plays[-1]['tasks']
        if not tasks or tasks[-1]['task']['id'] != task._uuid:
            tasks.append({'task': {'name': task.get_name(), 'id': task._uuid}, 'hosts': {}})
        return tasks[-1]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task)
        self.started[task._uuid] = time.time()

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _record(self, result, **extra):
        entry = self._task(result._task)
        data = dict(result._result)
        data.update(extra)
        data['duration'] = {'start': self.started.get(result._task._uuid), 'end': time.time()}
        entry['hosts'][result._host.get_name()] = data

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = dict((host, stats.summarize(host)) for host in sorted(stats.processed))
        self._display.display(json.dumps({'plays': self.plays, 'stats': summary}, default=str))
