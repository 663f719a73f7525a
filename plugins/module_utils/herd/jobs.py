"""Locks and the job journal.

Locks are ``flock`` locks on files under ``<state>/locks/``: the kernel drops
them when the holder dies, so a killed playbook never leaves a stale lock.
Each lock file holds a line naming the job that holds it, so a waiter that
gives up can say who is in the way.

The journal keeps one JSON file per job under ``<state>/jobs/``: the opcode,
its parameters (secrets removed), each step with timestamps and message, the
status (queued, running, success, error) and the result. A job whose status
is ``running`` but whose process is gone was interrupted; ``interrupted()``
finds those for the next operation and for ``cluster_verify``.
"""

import errno
import fcntl
import json
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional

from .config import read_json, write_json_atomic, write_text_atomic
from .errors import ConfigError, HerdError, LockError
from .names import check_lock_subject, check_simple, file_stem

SECRET_KEYS = ("secret", "password", "passwd", "vnc_password", "private_key", "token")

STATUSES = ("queued", "running", "success", "error")


# Keys whose whole value is withheld: OS parameters carry passwords, keys and user data under
# names no list of secret-looking words can foresee.
REDACTED_WHOLE = ("osparams",)
REDACTED = "********"


def redact(value: Any) -> Any:
    """Copy of ``value`` with every secret-looking key's value, and all of ``osparams``, replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if _withheld(k, v) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _withheld(key: Any, value: Any) -> bool:
    name = str(key).lower()
    if name in REDACTED_WHOLE:
        return value not in (None, {})  # keep "none given" readable
    return any(s in name for s in SECRET_KEYS)


class Locks:
    """Node and instance locks are held for a whole operation, taken in sorted
    order; the cluster lock is taken last and only around a config
    read-modify-write, so a long operation never blocks unrelated ones.

    A lock taken ``shared`` (operations that use a node, such as replace-disks,
    several at once) excludes only an exclusive holder (node modify/remove)."""

    def __init__(self, state_dir: str, holder: str, timeout: float = 60.0):
        self.dir = os.path.join(state_dir, "locks")
        self.holder = holder
        self.timeout = timeout

    @contextmanager
    def lock(self, kind: str, name: str = "", timeout: Optional[float] = None, shared: bool = False
             ) -> Iterator[None]:
        label = f"{kind}:{name}" if name else kind
        filename = lock_filename(kind, name)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.dir, filename)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            while True:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        holder = _read_holder(fd)
                        raise LockError(
                            f"could not take the {label} lock within "
                            f"{self.timeout if timeout is None else timeout:g} s: held by {holder}; "
                            "wait for that job to finish (herd.cluster.job_info shows it) and retry"
                        ) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{self.holder} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})".encode(), 0)
            try:
                yield
            finally:
                if not shared:  # other shared holders may remain; the line names the last one
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def cluster(self, timeout: Optional[float] = None):
        return self.lock("cluster", timeout=timeout)

    def node(self, name: str, timeout: Optional[float] = None, shared: bool = False):
        return self.lock("node", name, timeout=timeout, shared=shared)

    def instance(self, name: str, timeout: Optional[float] = None):
        return self.lock("instance", name, timeout=timeout)


def lock_filename(kind: str, name: str = "") -> str:
    """The lock file of ``kind``/``name``: ``kind.name`` when it fits 64 characters, else
    ``kind._`` and the SHA-256 of the name (``names.file_stem``)."""
    check_simple(kind, "lock kind")
    if not name:
        return kind
    check_lock_subject(name)
    return f"{kind}.{file_stem(name, 64 - len(kind) - 1)}"


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"


class Job:
    """One operation in the journal. Use ``Journal.open`` to create one."""

    def __init__(self, journal: "Journal", data: Dict[str, Any]):
        self.journal = journal
        self.data = data
        self._undo: List[Any] = []

    @property
    def id(self) -> int:
        return self.data["id"]

    @property
    def label(self) -> str:
        return f"job {self.id} ({self.data['opcode']})"

    def _save(self) -> None:
        self.journal.write(self.data)

    def start(self) -> None:
        self.data["status"] = "running"
        self.data["start_ts"] = time.time()
        self._save()

    @contextmanager
    def step(self, name: str, **details: Any) -> Iterator[Dict[str, Any]]:
        """Record a step before it runs and its outcome after."""
        entry = {"name": name, "status": "running", "start_ts": time.time(), "end_ts": None,
                 "message": "", "details": redact(details)}
        self.data["steps"].append(entry)
        self.data["last_message"] = name
        self._save()
        try:
            yield entry
        except BaseException as exc:
            entry["status"] = "error"
            entry["message"] = str(exc) or type(exc).__name__
            entry["end_ts"] = time.time()
            self._save()
            raise
        entry["status"] = "success"
        entry["end_ts"] = time.time()
        self._save()

    def record_created(self, resource: Dict[str, Any]) -> None:
        """Record a resource this job is about to create (before it exists, so that a job killed
        half-way still names it); recovery of an interrupted job removes exactly these."""
        self.data.setdefault("created", []).append(redact(resource))
        self._save()

    def log(self, message: str) -> None:
        """A progress line for the current step (e.g. migration transferred/total)."""
        if self.data["steps"]:
            self.data["steps"][-1]["message"] = message
        self.data["last_message"] = message
        self._save()

    def on_undo(self, description: str, func: Callable[[], Any]) -> None:
        """Register a rollback action, run in reverse order if the job fails."""
        self._undo.append((description, func))

    def no_more_undo(self) -> None:
        """Past the point of no return (e.g. the config committed): a later failure must not
        undo the steps before it; the job only goes forward from here."""
        self._undo.clear()

    def rollback(self) -> List[str]:
        problems = []
        while self._undo:
            description, func = self._undo.pop()
            try:
                with self.step(f"rollback: {description}"):
                    func()
            except Exception as exc:  # keep rolling back the rest
                problems.append(f"{description}: {exc}")
        return problems

    def finish(self, result: Any = None) -> None:
        self.no_more_undo()
        self.data["status"] = "success"
        self.data["end_ts"] = time.time()
        self.data["result"] = redact(result)
        self._save()

    def fail(self, message: str) -> None:
        self.data["status"] = "error"
        self.data["end_ts"] = time.time()
        self.data["last_message"] = message
        self._save()


class Journal:
    def __init__(self, state_dir: str):
        self.dir = os.path.join(state_dir, "jobs")
        self.counter = os.path.join(state_dir, "jobs", "next_id")

    def _next_id(self) -> int:
        """The next job id, never one used before: the larger of the counter and the highest
        job file + 1 (a lost or stale counter cannot restart ids), written to a temp file,
        fsynced and renamed over the counter under a lock of its own."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(self.counter + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with open(self.counter, encoding="ascii") as handle:
                    raw = handle.read().strip()
            except (OSError, UnicodeDecodeError):
                raw = ""
            job_id = max(int(raw) if raw.isdigit() else 1, self._highest_id() + 1)
            write_text_atomic(self.counter, f"{job_id + 1}\n")
            return job_id
        finally:
            os.close(fd)

    def _highest_id(self) -> int:
        highest = 0
        for name in os.listdir(self.dir):
            stem = name[:-len(".json")] if name.endswith(".json") else ""
            if stem.isdigit():
                highest = max(highest, int(stem))
        return highest

    def open(self, opcode: str, params: Dict[str, Any]) -> Job:
        data = {
            "id": self._next_id(), "opcode": opcode, "params": redact(params),
            "status": "queued", "steps": [], "received_ts": time.time(),
            "start_ts": None, "end_ts": None, "last_message": "", "result": None,
            "pid": os.getpid(), "host": os.uname().nodename,
        }
        job = Job(self, data)
        job._save()
        return job

    def path(self, job_id: int) -> str:
        return os.path.join(self.dir, f"{int(job_id):08d}.json")

    def write(self, data: Dict[str, Any]) -> None:
        write_json_atomic(self.path(data["id"]), data)

    def get(self, job_id: int) -> Dict[str, Any]:
        path = self.path(job_id)
        if not os.path.exists(path):
            raise HerdError(f"job {job_id} does not exist")
        return read_json(path, f"job {job_id}")

    def list(self, status: Optional[str] = None, opcode: Optional[str] = None,
             limit: Optional[int] = None) -> List[Dict[str, Any]]:
        if not os.path.isdir(self.dir):
            return []
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json"))
        jobs = []
        for name in reversed(names):
            try:
                job = read_json(os.path.join(self.dir, name), "job")
            except ConfigError:
                continue
            if status and job.get("status") != status:
                continue
            if opcode and job.get("opcode") != opcode:
                continue
            jobs.append(job)
            if limit and len(jobs) >= limit:
                break
        return list(reversed(jobs))

    def interrupted(self) -> List[Dict[str, Any]]:
        """Jobs still marked running whose process no longer exists."""
        found = []
        for job in self.list():
            if job.get("status") in ("running", "queued") and not _alive(job.get("pid")):
                found.append(job)
        return found

    def mark_recovered(self, job_id: int, message: str) -> None:
        data = self.get(job_id)
        data["status"] = "error"
        data["last_message"] = f"interrupted; {message}"
        data["end_ts"] = time.time()
        self.write(data)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie or a reused pid of another program is not our job
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return False
    return b"python" in cmdline or b"ansible" in cmdline.lower()


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True)
