"""Sizes: one parser so "10G", "10240M", "10 GiB" and 10240 are one size (MiB)."""

import re

from .errors import ValidationError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_FACTORS = {
    "": 1, "m": 1, "mb": 1, "mib": 1,
    "g": 1024, "gb": 1024, "gib": 1024,
    "t": 1024 * 1024, "tb": 1024 * 1024, "tib": 1024 * 1024,
}


def parse_size_mib(value: object, kind: str = "size") -> int:
    """Return a size in MiB. Bare numbers are MiB, as in Ganeti."""
    if isinstance(value, bool):
        raise ValidationError(f"invalid {kind} {value!r}: expected a number of MiB or a size like 512M, 10G, 1T")
    if isinstance(value, int):
        number, unit = float(value), ""
    else:
        match = _SIZE.match(str(value))
        if not match or match.group(2).lower() not in _FACTORS:
            raise ValidationError(
                f"invalid {kind} {value!r}: expected a number of MiB or a size like 512M, 10G, 1T")
        number, unit = float(match.group(1)), match.group(2).lower()
    mib = number * _FACTORS[unit]
    if mib <= 0 or mib != int(mib):
        raise ValidationError(f"invalid {kind} {value!r}: must be a positive whole number of MiB")
    return int(mib)


def format_mib(mib: int) -> str:
    if mib % (1024 * 1024) == 0:
        return f"{mib // (1024 * 1024)}T"
    if mib % 1024 == 0:
        return f"{mib // 1024}G"
    return f"{mib}M"
