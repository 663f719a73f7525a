"""Locks and the job journal.

Locks are ``flock`` locks on files under ``<state>/locks/``: the kernel drops
them when the holder dies, so a killed playbook never leaves a stale lock.
Each lock file holds a line naming the job that holds it, so a waiter that
gives up can say who is in the way.

The journal keeps one JSON file per job under ``<state>/jobs/``: the opcode,
its parameters (secrets removed), each step with timestamps, message and every
progress line, the status (queued, running, success, error) and the result.
A finished job moves to ``<state>/jobs/archive/``. A job whose status is
``running`` but whose process is gone was interrupted; ``interrupted()`` finds
those for the next operation and for ``cluster_verify``.
"""

import errno
import fcntl
import heapq
import json
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

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
        self._undo: List[Tuple[str, Callable[[], Any]]] = []

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def label(self) -> str:
        return f"job {self.id} ({self.data['opcode']})"

    def _save(self) -> None:
        self.journal.write(self.data)

    def _trace(self, line: str) -> None:
        self.journal.trace(self.id, line)

    def start(self) -> None:
        self.data["status"] = "running"
        self.data["start_ts"] = time.time()
        self._save()
        self._trace(f"{self.data['opcode']} started (pid {self.data.get('pid')})")

    @contextmanager
    def step(self, name: str, **details: Any) -> Iterator[Dict[str, Any]]:
        """Record a step before it runs and its outcome after."""
        entry = {"name": name, "status": "running", "start_ts": time.time(), "end_ts": None,
                 "message": "", "progress": [], "details": redact(details)}
        self.data["steps"].append(entry)
        self.data["last_message"] = name
        self._save()
        self._trace(f"step {name}")
        try:
            yield entry
        except BaseException as exc:
            entry["status"] = "error"
            entry["message"] = str(exc) or type(exc).__name__
            entry["end_ts"] = time.time()
            self._save()
            self._trace(f"step {name} failed: {entry['message']}")
            raise
        entry["status"] = "success"
        entry["end_ts"] = time.time()
        self._save()
        self._trace(f"step {name} done ({entry['end_ts'] - entry['start_ts']:.1f} s)")

    def record_created(self, resource: Dict[str, Any]) -> None:
        """Record a resource this job is about to create (before it exists, so that a job killed
        half-way still names it); recovery of an interrupted job removes exactly these."""
        self.data.setdefault("created", []).append(redact(resource))
        self._save()

    def log(self, message: str) -> None:
        """A progress line for the current step (e.g. migration transferred/total). Every line is
        kept, with its time, in the step's ``progress``; ``message`` holds the latest."""
        if self.data["steps"]:
            step = self.data["steps"][-1]
            step["message"] = message
            step.setdefault("progress", []).append({"ts": time.time(), "message": message})
        self.data["last_message"] = message
        self._save()
        self._trace(message)

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
        self._trace("success")
        self._save()

    def fail(self, message: str) -> None:
        self.data["status"] = "error"
        self.data["end_ts"] = time.time()
        self.data["last_message"] = message
        self._trace(f"error: {message}")
        self._save()


# Finished jobs move to archive/<bucket>/ with this many ids per bucket directory, so that neither the
# directory of unfinished jobs nor any one archive directory grows with the history.
ARCHIVE_BUCKET = 1000
FINISHED = ("success", "error")

# Opcodes whose latest job per instance name is indexed (Journal.latest): an operation that resumes
# its own unfinished work finds it without reading the archive.
_LATEST_BY_NAME: Set[str] = set()


def index_latest_by_name(opcode: str) -> None:
    """Have the journal remember the latest ``opcode`` job of each ``params['name']``."""
    _LATEST_BY_NAME.add(opcode)


class Journal:
    """The job files: ``jobs/<id>.json`` while a job is queued or running (or was interrupted),
    ``jobs/archive/<id // 1000>/<id>.json`` once it ended; beside each, ``<id>.log``: one
    line per step and progress message, as they happen (``tail -f`` follows a job).

    Operations only ever read the unfinished jobs (``interrupted``), a job by id (``get``) and
    the indexed latest job (``latest``): their cost does not grow with the number of past jobs.
    Only ``list`` (job_info) walks the archive, newest first, stopping at its limit."""

    def __init__(self, state_dir: str):
        self.dir = os.path.join(state_dir, "jobs")
        self.archive_dir = os.path.join(self.dir, "archive")
        self.latest_dir = os.path.join(self.dir, "latest")
        self.counter = os.path.join(state_dir, "jobs", "next_id")
        # ids of the jobs this process opened, for its result and errors
        self.opened: List[int] = []

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
        """The highest id among the unfinished jobs and the newest archive bucket."""
        ids = _ids_in(self.dir)
        buckets = _buckets(self.archive_dir)
        if buckets:
            ids += _ids_in(os.path.join(self.archive_dir, buckets[-1]))
        return max(ids, default=0)

    def open(self, opcode: str, params: Dict[str, Any]) -> Job:
        data = {
            "id": self._next_id(), "opcode": opcode, "params": redact(params),
            "status": "queued", "steps": [], "received_ts": time.time(),
            "start_ts": None, "end_ts": None, "last_message": "", "result": None,
            "pid": os.getpid(), "host": os.uname().nodename,
        }
        job = Job(self, data)
        job._save()
        self.opened.append(job.id)
        if opcode in _LATEST_BY_NAME and isinstance(params.get("name"), str):
            self._index(opcode, params["name"], job.id)
        return job

    def _index(self, opcode: str, name: str, job_id: int) -> None:
        write_text_atomic(os.path.join(self.latest_dir, f"{opcode}.{file_stem(name, 120)}"), f"{job_id}\n")

    def _index_if_newer(self, job: Dict[str, Any]) -> None:
        """Index a job written before the index existed (a journal from an older herd)."""
        name = (job.get("params") or {}).get("name")
        if job.get("opcode") in _LATEST_BY_NAME and isinstance(name, str) \
                and (self.latest(job["opcode"], name) or {}).get("id", 0) < job["id"]:
            self._index(job["opcode"], name, job["id"])

    def latest(self, opcode: str, name: str) -> Optional[Dict[str, Any]]:
        """The newest ``opcode`` job on ``name`` (for opcodes registered with ``index_latest_by_name``)."""
        try:
            with open(os.path.join(self.latest_dir, f"{opcode}.{file_stem(name, 120)}"), encoding="ascii") as handle:
                raw = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not raw.isdigit():
            return None
        try:
            return self.get(int(raw))
        except HerdError:
            return None

    def path(self, job_id: int) -> str:
        """Where an unfinished job is."""
        return os.path.join(self.dir, f"{int(job_id):08d}.json")

    def archive_path(self, job_id: int) -> str:
        """Where a finished job is."""
        return os.path.join(self.archive_dir, f"{int(job_id) // ARCHIVE_BUCKET:05d}", f"{int(job_id):08d}.json")

    def log_path(self, job_id: int) -> str:
        """The job's line-per-event log: beside its JSON file, wherever that is now."""
        active = self.path(job_id)
        if os.path.exists(active) or not os.path.exists(self.archive_path(job_id)):
            return active[:-len(".json")] + ".log"
        return self.archive_path(job_id)[:-len(".json")] + ".log"

    def write(self, data: Dict[str, Any]) -> None:
        """Save a job where its status says it belongs: a finished job is written in place, then
        renamed into the archive (one atomic step: it is never in both places, never in neither)."""
        job_id = int(data["id"])
        active = self.path(job_id)
        write_json_atomic(active, data)
        archived = self.archive_path(job_id)
        if data.get("status") in FINISHED:
            os.makedirs(os.path.dirname(archived), mode=0o700, exist_ok=True)
            log = active[:-len(".json")] + ".log"
            if os.path.exists(log):
                os.rename(log, archived[:-len(".json")] + ".log")
            os.rename(active, archived)
        elif os.path.exists(archived):  # a finished job re-opened (recovery, tests): one copy only
            os.unlink(archived)

    def trace(self, job_id: int, line: str) -> None:
        """Append one timestamped line to the job's log (0600; not fsynced: the JSON is the record)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        fd = os.open(self.log_path(job_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{stamp} {line}\n".encode("utf-8", "replace"))
        finally:
            os.close(fd)

    def get(self, job_id: int) -> Dict[str, Any]:
        for path in (self.path(job_id), self.archive_path(job_id)):
            try:
                return read_json(path, f"job {job_id}")
            except ConfigError:
                if os.path.exists(path):
                    raise
        raise HerdError(f"job {job_id} does not exist")

    def _newest_first(self, archive: bool = True) -> Iterator[Tuple[int, str]]:
        """(id, path) of every job, newest first; the archive is read one bucket at a time, as needed."""
        active = sorted(((i, self.path(i)) for i in _ids_in(self.dir)), reverse=True)
        archived: Iterator[Tuple[int, str]] = iter(())
        if archive:
            archived = (
                (i, os.path.join(self.archive_dir, bucket, f"{i:08d}.json"))
                for bucket in reversed(_buckets(self.archive_dir))
                for i in sorted(_ids_in(os.path.join(self.archive_dir, bucket)), reverse=True))
        return heapq.merge(active, archived, key=lambda item: item[0], reverse=True)

    def list(self, status: Optional[str] = None, opcode: Optional[str] = None,
             limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Jobs, oldest first: the newest ``limit`` of those matching. Only job_info reads the
        archive (unfinished statuses never do)."""
        jobs = []
        for _job_id, path in self._newest_first(archive=status not in ("queued", "running")):
            try:
                job = read_json(path, "job")
            except ConfigError:
                continue  # moved to the archive since the listing, or unreadable
            if status and job.get("status") != status:
                continue
            if opcode and job.get("opcode") != opcode:
                continue
            jobs.append(job)
            if limit and len(jobs) >= limit:
                break
        return list(reversed(jobs))

    def interrupted(self) -> List[Dict[str, Any]]:
        """Jobs still marked running whose process no longer exists. Reads only the unfinished
        jobs; a finished one found there (a crash between writing and archiving it) is archived."""
        found = []
        for job in self._unfinished():
            if job.get("status") in FINISHED:
                self.write(job)
                self._index_if_newer(job)
            elif not _alive(job.get("pid")):
                found.append(job)
        return found

    def _unfinished(self) -> List[Dict[str, Any]]:
        jobs = []
        for job_id in sorted(_ids_in(self.dir)):
            try:
                jobs.append(read_json(self.path(job_id), "job"))
            except ConfigError:
                continue
        return jobs

    def mark_recovered(self, job_id: int, message: str) -> None:
        data = self.get(job_id)
        data["status"] = "error"
        data["last_message"] = f"interrupted; {message}"
        data["end_ts"] = time.time()
        self.trace(job_id, f"closed: {data['last_message']}")
        self.write(data)
        self._index_if_newer(data)


def _ids_in(directory: str) -> List[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [int(name[:-5]) for name in names if name.endswith(".json") and name[:-5].isdigit()]


def _buckets(directory: str) -> List[str]:
    try:
        return sorted(name for name in os.listdir(directory) if name.isdigit())
    except FileNotFoundError:
        return []


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
