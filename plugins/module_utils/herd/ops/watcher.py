"""Pausing the watcher (gnt-cluster watcher pause DURATION / continue / info).

The pause is a cluster setting, ``Cluster.watcher_pause_until`` (a Unix time),
so it is replicated to the master candidates and survives a master failover
(Ganeti keeps a file on the master, which a failover loses). It expires by
itself: a forgotten pause never keeps the watcher off for good. The watcher
playbook asks ``status`` first and ends its play while the pause lasts.
"""

import re
import time
from typing import Any, Dict, Optional

from ..config import Config
from ..errors import ValidationError
from ..jobs import Job
from .common import Context, diff_dict
from .phases import Operation, commit

STATES = ("paused", "running", "query")
# 30s, 15m, 2h, 1d, 1w (Ganeti's --duration units), or bare seconds
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_FACTOR = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_PAUSE = 366 * 86400


def parse_duration(value: Any) -> int:
    """Seconds of ``value`` (a number of seconds or 30s/15m/2h/1d/1w), 1 s to a year."""
    if isinstance(value, bool):
        value = None
    match = _DURATION.match(str(value)) if isinstance(value, (int, str)) else None
    seconds = int(match.group(1)) * _FACTOR[match.group(2)] if match else 0
    if not match or not 1 <= seconds <= MAX_PAUSE:
        raise ValidationError(f"duration {value!r} must be a number of seconds or a duration such as 30m, 2h, 1d, "
                              f"1w, from 1 second to {MAX_PAUSE // 86400} days")
    return seconds


def validate(spec: Dict[str, Any]) -> Dict[str, Any]:
    state = spec.get("state") or "query"
    if state not in STATES:
        raise ValidationError(f"state {state!r} must be one of {list(STATES)}")
    duration = spec.get("duration")
    if state == "paused":
        if duration is None:
            raise ValidationError("state paused needs duration (how long the watcher stays paused, e.g. 2h)")
        return {"state": state, "duration": parse_duration(duration)}
    if duration is not None:
        raise ValidationError(f"duration is only for state paused, not {state}")
    return {"state": state, "duration": None}


def view(until: Optional[float], at: float) -> Dict[str, Any]:
    """What the watcher's state is at ``at``: paused until when, for how many seconds more."""
    paused = until is not None and until > at
    return {"paused": paused, "until": until if paused else None,
            "until_text": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until)) if paused and until else None,
            "remaining": int(until - at) if paused and until else 0}


def paused_view(ctx: Context) -> Dict[str, Any]:
    return view(ctx.load_master_config().cluster.watcher_pause_until, time.time())


def run(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    spec = validate(spec)
    if spec["state"] == "query":
        current = paused_view(ctx)
        return dict(current, changed=False, diff=diff_dict(current, current),
                    msg=f"the watcher is paused until {current['until_text']}" if current["paused"]
                    else "the watcher is not paused")
    return WatcherPause(ctx, spec).run()


class WatcherPause(Operation):
    """Pause the watcher or let it run again: a cluster setting, no lock beyond the commit's."""

    def check_arguments(self) -> None:
        self.spec = validate(self.spec)
        self.opcode = f"watcher_{self.spec['state']}"
        self.locks = self.ctx.locks(f"watcher {self.spec['state']}")
        self.at = time.time()

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        before = view(config.cluster.watcher_pause_until, self.at)
        if self.spec["state"] == "paused":
            wanted = self.at + self.spec["duration"]
            # a pause that already lasts that long stays as it is: a second run changes nothing
            until: Optional[float] = before["until"] if before["paused"] and before["until"] >= wanted - 60 \
                else wanted
        else:
            until = None
        self.until = until
        after = view(until, self.at)
        if before == after:
            return dict(after, changed=False, diff=diff_dict(before, after),
                        msg=f"the watcher is already {'paused until ' + str(after['until_text']) if after['paused'] else 'running'}")
        result = dict(after, changed=True, diff=diff_dict(before, after))
        verb = "would be" if self.ctx.check_mode else "is"
        result["msg"] = (f"the watcher {verb} paused until {after['until_text']}" if after["paused"]
                         else f"the watcher {verb} no longer paused")
        return result

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        def pause(fresh: Config) -> None:
            fresh.cluster.watcher_pause_until = self.until

        commit(self.ctx, self.locks, pause, what=self.opcode)
