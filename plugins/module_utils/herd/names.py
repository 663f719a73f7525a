"""Strict patterns for every name that reaches a command line or a path.

One place for the rule: callers use ``check_*`` before the value is used. Every pattern
matches the whole value (``fullmatch`` and ``\\Z``): ``$`` would also accept a trailing newline.
"""

import hashlib
import re

from .errors import ValidationError

# RFC 1123 host name, possibly a FQDN; lowercase letters, digits, '-' and '.'.
_HOSTNAME = re.compile(r"^(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\Z")
# LVM: letters, digits and + _ . - ; may not start with '-'; not '.' or '..'.
_VG = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}\Z")
# Linux interface names: at most 15 bytes, no '/', whitespace or ':'.
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\Z")
# Tags: as Ganeti, printable without whitespace; we also forbid '/' and leading '-'.
_TAG = re.compile(r"^[A-Za-z0-9_.:+=@][A-Za-z0-9_.:+=@-]{0,127}\Z")
# Disk names, OS names, network names, group names.
_SIMPLE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
# What a lock is taken on (a node, an instance): a simple name as long as a host name.
_LOCK_SUBJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}\Z")
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}\Z")
_MAC_PREFIX = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}\Z")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _check(kind: str, value: object, pattern: "re.Pattern[str]", valid: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or value in (".", ".."):
        raise ValidationError(f"invalid {kind} {value!r}: {valid}")
    return value


def check_hostname(value: object, kind: str = "node name") -> str:
    return _check(kind, value, _HOSTNAME,
                  "expected a lowercase host name (letters, digits, '-', dots between labels)")


def check_instance_name(value: object) -> str:
    return check_hostname(value, "instance name")


def check_vg(value: object) -> str:
    return _check("volume group", value, _VG, "expected letters, digits and '+_.-', not starting with '-'")


def check_ifname(value: object, kind: str = "interface") -> str:
    return _check(kind, value, _IFNAME, "expected at most 15 of letters, digits and '_.-'")


def valid_ifname(value: object) -> bool:
    """Whether ``value`` is a Linux interface name (for callers that gather every problem first)."""
    return isinstance(value, str) and bool(_IFNAME.fullmatch(value))


def check_bridge(value: object) -> str:
    return check_ifname(value, "bridge")


def check_tag(value: object) -> str:
    return _check("tag", value, _TAG, "expected up to 128 of letters, digits and '_.:+=@-', not starting with '-'")


def check_simple(value: object, kind: str) -> str:
    return _check(kind, value, _SIMPLE, "expected up to 64 of letters, digits and '_.-', not starting with '.' or '-'")


def check_lock_subject(value: object) -> str:
    return _check("lock name", value, _LOCK_SUBJECT,
                  "expected up to 253 of letters, digits and '_.-', not starting with '.' or '-'")


def check_mac(value: object) -> str:
    if isinstance(value, str):
        value = value.lower()
    return _check("MAC address", value, _MAC, "expected six lowercase hex pairs like aa:00:00:12:34:56")


def check_mac_prefix(value: object) -> str:
    if isinstance(value, str):
        value = value.lower()
    return _check("MAC prefix", value, _MAC_PREFIX, "expected three hex pairs like aa:00:00")


def check_uuid(value: object) -> str:
    return _check("UUID", value, _UUID, "expected a lowercase RFC 4122 UUID")


def check_abs_path(value: object, kind: str = "path") -> str:
    if (not isinstance(value, str) or not value.startswith("/") or "\x00" in value
            or any(part in ("..",) for part in value.split("/"))):
        raise ValidationError(f"invalid {kind} {value!r}: expected an absolute path without '..'")
    return value


def file_stem(value: str, limit: int = 64) -> str:
    """``value`` as part of a file name: as it is when it has at most ``limit`` characters,
    else '_' and its SHA-256 (names are up to 253 characters, a file name 255 bytes; '_'
    starts no host name, so an encoded stem is never another name's)."""
    if len(value) <= limit:
        return value
    return "_" + hashlib.sha256(value.encode("utf-8")).hexdigest()
