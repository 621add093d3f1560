"""Query stage: request-parameter parsing shared by every API, and the one error for bad input.

A handler raises ``BadRequest`` (or lets ``criteria.CriteriaError`` through); each API's
blueprint turns both into a 400 whose JSON body names the parameter and what is wrong with it,
in that API's error shape.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from collector.store.criteria import CriteriaError

__all__ = ["ApiError", "BadRequest", "CriteriaError", "go_duration_ns", "integer", "native_error",
           "rfc3339_ns", "text", "MAX_LIMIT"]

MAX_LIMIT = 10_000  # the most traces one search may return (a bigger limit is refused)


class BadRequest(ValueError):
    """A request parameter that cannot be used; the message names it."""


class ApiError(Exception):
    """An answer other than 2xx from a native API: its status and the message naming what is
    wrong (``native_error`` renders it)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def native_error(status: int, message: str):
    """The native APIs' (``/api/v1/…``) error answer: ``{"error": {"httpCode", "message"}}``."""
    from quart import jsonify

    return jsonify({"error": {"httpCode": status, "message": message}}), status


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration_ns(name: str, raw: str) -> int:
    """A Go ``time.Duration`` string (``1.5ms``, ``100us``, ``1h30m``, ``0``) in nanoseconds."""
    s = raw.strip()
    if s in ("0", "+0", "-0"):
        return 0
    body = s[1:] if s[:1] in "+-" else s
    pos, total = 0, 0.0
    while pos < len(body):
        m = _PART.match(body, pos)
        if not m:
            raise BadRequest(f"{name}: {raw!r} is not a duration such as 1.5ms, 100us, 2s or 1h30m")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body:
        raise BadRequest(f"{name}: empty duration")
    if s.startswith("-"):
        raise BadRequest(f"{name}: duration must not be negative")
    return int(round(total))


def integer(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A decimal integer parameter within bounds."""
    try:
        value = int(raw.strip())
    except (ValueError, AttributeError):
        raise BadRequest(f"{name}: {raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise BadRequest(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise BadRequest(f"{name}: must be at most {maximum}, got {value}")
    return value


def rfc3339_ns(name: str, raw: str) -> int:
    """An RFC 3339 timestamp (``2017-01-26T16:46:31.639875Z``, offsets, up to 9 fraction digits)."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})",
                     raw.strip())
    if not m:
        raise BadRequest(f"{name}: {raw!r} is not an RFC 3339 timestamp such as 2024-01-02T03:04:05Z")
    day, clock, frac, zone = m.groups()
    try:
        base = datetime.fromisoformat(f"{day}T{clock}{'+00:00' if zone in 'Zz' else zone}")
    except ValueError as exc:
        raise BadRequest(f"{name}: {raw!r}: {exc}") from None
    seconds = int(base.astimezone(timezone.utc).timestamp())
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def text(name: str, raw: str | None, *, max_len: int = 1024) -> str | None:
    """A string parameter: ``None`` when absent or empty, refused when longer than ``max_len``."""
    if raw is None or raw == "":
        return None
    if len(raw) > max_len:
        raise BadRequest(f"{name}: longer than {max_len} characters")
    return raw
