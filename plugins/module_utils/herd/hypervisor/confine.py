"""How QEMU is confined on a node: the user it runs as and its seccomp sandbox (node side, stdlib only).

``hvparams.security_model`` (Ganeti's KVM ``security_model``):

- ``none``: QEMU stays root (with the seccomp sandbox);
- ``user``: QEMU drops to ``hvparams.security_domain`` with ``-runas``;
- ``pool``: QEMU drops to a user of this node's uid pool that no other QEMU
  on the machine runs as. The ``node_hypervisor`` role creates the pool's
  users and records the range in ``/etc/herd/node.json`` as
  ``"uid_pool": "FIRST-LAST"`` (Ganeti's uid-pool notation).

QEMU opens its disks, kernel, sockets and pidfile as root before ``-runas``
drops privileges; the files it may open again later (disk images and block
devices, the CD-ROM, the UEFI variables) are given to the instance's user so
a reopen (image activation after an incoming migration, a CD change) works.

QEMU 7.2 installs the seccomp filter before ``-runas`` calls setuid, so
``elevateprivileges=deny`` kills a QEMU started with ``-runas`` (SIGSYS); with
a user the sandbox leaves that one option out (the process has dropped root and
runs with no_new_privs, so set*id calls cannot gain anything). ``spawn=deny``
forbids fork, so QEMU is not started with ``-daemonize``.
"""

import contextlib
import os
import pwd
import re
import stat
import time
from typing import Iterable, Iterator, List, Optional, Set, Tuple

from ..errors import ValidationError
from .base import HypervisorError, flock_until, run_dir

SECURITY_MODELS = ("none", "user", "pool")
SANDBOX_ROOT = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
SANDBOX_RUNAS = "on,obsolete=deny,spawn=deny,resourcecontrol=deny"
_POOL = re.compile(r"\A(\d+)-(\d+)\Z")
_USER = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")


def sandbox(runas: Optional[str]) -> str:
    """The ``-sandbox`` value for a QEMU that runs as ``runas`` (None: root)."""
    return SANDBOX_RUNAS if runas else SANDBOX_ROOT


def check_user_name(value: object, what: str = "hvparams.security_domain") -> str:
    if not isinstance(value, str) or not _USER.match(value):
        raise ValidationError(f"{what} {value!r} is not a user name (lower case letters, digits, '_', '-')")
    if value == "root":
        raise ValidationError(f"{what} root would not confine QEMU; use security_model none instead")
    return value


def parse_uid_pool(text: object) -> Tuple[int, int]:
    """``"42000-42031"`` -> (42000, 42031)."""
    match = _POOL.match(text) if isinstance(text, str) else None
    if not match:
        raise ValidationError(f"uid_pool {text!r} is not a range FIRST-LAST such as 42000-42031")
    first, last = int(match.group(1)), int(match.group(2))
    if not 1000 <= first <= last < 2**31:
        raise ValidationError(f"uid_pool {text!r}: expected 1000 <= FIRST <= LAST")
    return first, last


def _status_uid(pid: str) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_uid(pid: int) -> Optional[int]:
    return _status_uid(str(pid))


def qemu_uids() -> Set[int]:
    """The uids every QEMU of the machine runs as (any network namespace: the pool is machine-wide)."""
    uids: Set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv0 = handle.read().split(b"\0", 1)[0]
        except OSError:
            continue
        if b"qemu" not in os.path.basename(argv0):
            continue
        uid = _status_uid(entry)
        if uid is not None:
            uids.add(uid)
    return uids


def free_pool_user(pool: Tuple[int, int], used: Iterable[int]) -> str:
    """The first user of ``pool`` that exists and runs no QEMU; a clear error when all are taken."""
    taken = set(used)
    missing = 0
    for uid in range(pool[0], pool[1] + 1):
        if uid in taken:
            continue
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            missing += 1
    size = pool[1] - pool[0] + 1
    if missing == size:
        raise HypervisorError(f"no user of the uid pool {pool[0]}-{pool[1]} exists on this node; "
                              "the herd.cluster.node_hypervisor role creates them")
    raise HypervisorError(f"every user of the uid pool {pool[0]}-{pool[1]} runs a QEMU already "
                          f"({size - missing} users); enlarge node_hypervisor_uid_pool_size")


@contextlib.contextmanager
def pool_lock(timeout: float = 120) -> Iterator[None]:
    """Serialise choosing a pool user and starting QEMU with it (one node-wide flock)."""
    directory = os.path.join(run_dir(), "locks")
    os.makedirs(directory, mode=0o750, exist_ok=True)
    fd = os.open(os.path.join(directory, "uid-pool.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        flock_until(fd, time.monotonic() + timeout, f"the uid pool lock stayed busy for {timeout:g} s")
        yield
    finally:
        os.close(fd)


def check_node(hvparams: dict, uid_pool: Optional[str]) -> Optional[str]:
    """What keeps this node from running QEMU under these hvparams' security model, or None."""
    model = hvparams.get("security_model") or "none"
    if model == "user":
        try:
            pwd.getpwnam(str(hvparams.get("security_domain")))
        except KeyError:
            return f"security_domain user {hvparams.get('security_domain')} does not exist"
    if model == "pool":
        if not uid_pool:
            return ("security_model pool needs a uid pool: run the herd.cluster.node_hypervisor role "
                    "(it creates the users and records uid_pool in /etc/herd/node.json)")
        try:
            parse_uid_pool(uid_pool)
        except ValidationError as exc:
            return str(exc)
    return None


def choose_user(hvparams: dict, uid_pool: Optional[str]) -> Optional[str]:
    """The user QEMU runs as for these hvparams on this node (None: root). Call under ``pool_lock``."""
    model = hvparams.get("security_model") or "none"
    if model == "none":
        return None
    if model == "user":
        name = check_user_name(hvparams.get("security_domain"))
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise HypervisorError(f"security_domain user {name} does not exist on this node") from None
        return name
    if model == "pool":
        if not uid_pool:
            raise HypervisorError("security_model pool needs a uid pool on this node: run the "
                                  "herd.cluster.node_hypervisor role (it records uid_pool in /etc/herd/node.json)")
        return free_pool_user(parse_uid_pool(uid_pool), qemu_uids())
    raise ValidationError(f"hvparams.security_model {model!r} is not one of {list(SECURITY_MODELS)}")


def give(paths: Iterable[Optional[str]], user: Optional[str]) -> List[str]:
    """Make the files and block devices QEMU may reopen belong to ``user``; returns what changed."""
    if not user:
        return []
    entry = pwd.getpwnam(user)
    changed = []
    for path in paths:
        if not path:
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            continue
        if (st.st_uid, st.st_gid) != (entry.pw_uid, entry.pw_gid):
            os.chown(path, entry.pw_uid, entry.pw_gid)
            changed.append(path)
    return changed
