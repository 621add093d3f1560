"""Store stage: the neutral search model every query API translates into (Jaeger, Zipkin, Tempo, native).

A search names the conditions **one span** must satisfy together (an expression tree of
``Cond``, ``And`` and ``Or``), and optional conditions on the whole trace.  A trace matches when
at least one of its spans satisfies the span expression (and the trace conditions hold); the
whole trace is the result.  This is the Jaeger storage conformance suite's semantics, extended.

Fields a ``Cond`` can test:

* ``Attr(scope, key)``: an attribute.  ``scope`` says where it may be found on the span:
  ``"any"`` (span attributes, resource, instrumentation scope, any event, any link — Jaeger's
  "every spot"), ``"span"`` (span attributes only), ``"resource"``, ``"scope"``, ``"event"``,
  ``"link"``, or ``"spanlike"`` (span attributes or resource: TraceQL's unscoped ``.key``).
  Values are compared by their **string form** (Jaeger's rule: ``123``, ``72.5``, ``true``)
  for ``=``/``!=``/``=~``/``!~``, and numerically for ``<``/``<=``/``>``/``>=``.
  ``!=`` and ``!~`` need the attribute to be present with another value (TraceQL's rule).
* The intrinsics ``NAME`` (operation), ``SERVICE`` (``service.name`` of the resource),
  ``STATUS`` (``"unset"``/``"ok"``/``"error"``), ``KIND`` (``"unspecified"``, ``"internal"``,
  ``"server"``, ``"client"``, ``"producer"``, ``"consumer"``), ``DURATION`` (nanoseconds) and
  ``START`` (span start, epoch nanoseconds).

Ops: ``=  !=  =~  !~  <  <=  >  >=`` and ``exists``.  Regular expressions use Python's ``re``
syntax and must match the whole value (TraceQL and Jaeger anchor them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

OPS = ("=", "!=", "=~", "!~", "<", "<=", ">", ">=", "exists")
ATTR_SCOPES = ("any", "span", "resource", "scope", "event", "link", "spanlike")
STATUSES = ("unset", "ok", "error")
KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")


class CriteriaError(ValueError):
    """A search that cannot be run as asked; the message names what is wrong."""


@dataclass(frozen=True)
class Attr:
    scope: str
    key: str

    def __post_init__(self):
        if self.scope not in ATTR_SCOPES:
            raise CriteriaError(f"unknown attribute scope {self.scope!r}")


NAME, SERVICE, STATUS, KIND, DURATION, START = "name", "service", "status", "kind", "duration", "start"
INTRINSICS = (NAME, SERVICE, STATUS, KIND, DURATION, START)
Field = Union[Attr, str]


@dataclass(frozen=True)
class Cond:
    field: Field
    op: str
    value: str | int | float | bool | None = None

    def __post_init__(self):
        if self.op not in OPS:
            raise CriteriaError(f"unknown operator {self.op!r}")
        if not isinstance(self.field, Attr) and self.field not in INTRINSICS:
            raise CriteriaError(f"unknown field {self.field!r}")
        if self.op == "exists":
            return
        if self.value is None:
            raise CriteriaError(f"operator {self.op} needs a value")
        if self.op in ("=~", "!~"):
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise CriteriaError(f"bad regular expression {self.value!r}: {exc}") from None
        if self.field in (DURATION, START):
            if self.op in ("=~", "!~") or isinstance(self.value, (str, bool)):
                raise CriteriaError(f"{self.field} takes a number of nanoseconds and = != < <= > >=")
        if self.field == STATUS and self.op in ("=", "!=") and self.value not in STATUSES:
            raise CriteriaError(f"status is one of {', '.join(STATUSES)}, not {self.value!r}")
        if self.field == KIND and self.op in ("=", "!=") and self.value not in KINDS:
            raise CriteriaError(f"kind is one of {', '.join(KINDS)}, not {self.value!r}")
        if self.field in (STATUS, KIND) and self.op in ("<", "<=", ">", ">="):
            raise CriteriaError(f"{self.field} takes = != =~ !~")


@dataclass(frozen=True)
class And:
    parts: tuple


@dataclass(frozen=True)
class Or:
    parts: tuple


Expr = Union[Cond, And, Or]


@dataclass(frozen=True)
class TraceQuery:
    """One search.  Times are epoch nanoseconds; ``None`` means no bound.

    ``span`` must hold on one span (``None``: any span).  ``start_min_ns``/``start_max_ns`` bound
    that span's start (inclusive) and prune partitions.  ``trace_min_duration_ns`` /
    ``trace_max_duration_ns`` bound the whole trace (last end − first start, inclusive);
    ``root_service``/``root_name`` test the trace's root span.  Results are newest first (by the
    trace's first start) and cut at ``limit``.
    """

    span: Expr | None = None
    start_min_ns: int | None = None
    start_max_ns: int | None = None
    trace_min_duration_ns: int | None = None
    trace_max_duration_ns: int | None = None
    root_service: str | None = None
    root_name: str | None = None
    limit: int = 20

    def __post_init__(self):
        if self.limit < 1:
            raise CriteriaError("limit must be at least 1")
        if (self.start_min_ns is not None and self.start_max_ns is not None
                and self.start_min_ns > self.start_max_ns):
            raise CriteriaError("the start of the time range is after its end")


def all_of(*conds) -> Expr | None:
    """``And`` of the non-empty parts (``None`` when there are none, a single part as itself)."""
    parts = tuple(c for c in conds if c is not None)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(parts)


@dataclass
class TraceSummary:
    """What a search lists for one trace, whole across partitions."""

    trace_id: bytes
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    root_service: str = ""  # empty when the root span is not stored
    root_name: str = ""
    services: dict = field(default_factory=dict)  # service → [span count, error count]
    matched: list = field(default_factory=list)  # MatchedSpan of the spans that satisfied the search
    trace: object = None  # the stored contract.Trace, read to count services (reuse it to render)


@dataclass
class MatchedSpan:
    span_id: bytes
    service: str
    name: str
    start_ns: int
    duration_ns: int
