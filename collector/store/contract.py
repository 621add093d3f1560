"""Store stage: the storage contract every backend and tier implements, with its durability promise.

Writers and readers exchange the canonical model: OTLP ``Span`` message bytes plus a small header,
with resources and scopes stored once each and referenced by the xxh64 of their record bytes.
``tests/store/conformance.py`` checks any implementation of this contract over the shared fixtures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Protocol, Sequence

from collector.model import SpanBatch
from collector.pipeline import Refusals

FLAG_ERROR = 1  # status code is ERROR
FLAG_ROOT = 2  # no parent span ID
KIND_SHIFT = 8  # bits 8..15 hold the OTLP span kind


class StoredSpan(NamedTuple):
    """One span as the store returns it."""

    resource_id: int  # xxh64 of the resource record (ResourceSpans without its scope_spans)
    scope_id: int  # xxh64 of the scope record (ScopeSpans without its spans)
    start_ns: int
    end_ns: int
    flags: int  # FLAG_* and kind << KIND_SHIFT
    span: bytes  # the OTLP Span message, exactly as received


@dataclass
class Trace:
    """All stored spans of one trace, and the resource and scope records they reference."""

    trace_id: bytes
    spans: list[StoredSpan] = field(default_factory=list)
    resources: dict[int, bytes] = field(default_factory=dict)
    scopes: dict[int, bytes] = field(default_factory=dict)

    def to_traces_data(self) -> bytes:
        """Serialized OTLP ``TracesData`` (same wire layout as ``ExportTraceServiceRequest``).

        Spans are grouped by resource, then scope, and ordered by start time within a scope.
        Built by concatenating records: protobuf messages are sequences of fields.
        """
        groups: dict[int, dict[int, list[StoredSpan]]] = {}
        for s in sorted(self.spans, key=lambda s: (s.start_ns, s.end_ns)):
            groups.setdefault(s.resource_id, {}).setdefault(s.scope_id, []).append(s)
        out = bytearray()
        for rid, scopes in groups.items():
            rs = bytearray(self.resources.get(rid, b""))
            for sid, spans in scopes.items():
                ss = bytearray(self.scopes.get(sid, b""))
                for s in spans:
                    _field(ss, 2, s.span)
                _field(rs, 2, ss)
            _field(out, 1, rs)
        return bytes(out)


def length_prefix(number: int, n: int) -> bytes:
    """The key and length of a length-delimited protobuf field ``number`` of ``n`` bytes."""
    out = bytearray((((number << 3) | 2),))
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(out: bytearray, number: int, payload: bytes | bytearray) -> None:
    """Append a length-delimited protobuf field."""
    out += length_prefix(number, len(payload))
    out += payload


class WriteResult(NamedTuple):
    """What became of one submitted batch."""

    accepted: int  # spans now durable
    refusals: Refusals  # spans refused by the store (e.g. the per-trace span limit)


class SpanWriter(Protocol):
    def write(self, batches: Sequence[SpanBatch], pending: Sequence | None = None) -> list[WriteResult]:
        """Store every batch in one transaction and commit it.

        ``pending[i]`` (optional) is None or a bool array over ``batches[i]``'s spans marking
        traces held for a tail-sampling decision: stored as durably and readable by ID, but not
        searchable until ``resolve_pending`` keeps them (or deletes them).

        Durability: when ``write`` returns, every span counted in ``accepted`` is committed and
        survives a crash of the process (``kill -9``); with ``store.fsync = true`` it survives a
        power loss too.  If ``write`` raises, nothing of these batches may be acknowledged (part
        of it may or may not be on disk; a retry may then store a span twice, which readers
        collapse because identical spans are returned once).  The store may keep references to
        the batches after the call (to index them); their buffers are immutable ``bytes``.
        Only one thread calls ``write`` at a time.
        """
        ...

    def close(self) -> None:
        """Flush and release files; no call may follow."""
        ...


class SpanReader(Protocol):
    def get_trace(self, trace_id: bytes) -> Trace | None:
        """Every stored span of the trace across partitions, or None when none is stored.

        Spans written by a ``write`` that returned are visible.  Identical spans (same resource,
        scope and bytes, as a client's retry produces) are returned once; distinct spans that
        share a span ID are all returned.  Safe to call from any thread, concurrently with the
        writer.
        """
        ...

    def stats(self) -> dict:
        """Counters for ``/metrics``: partitions, spans, bytes on disk."""
        ...


def dedupe(spans: Iterable[StoredSpan]) -> list[StoredSpan]:
    """Collapse identical spans (a client retry), keep distinct spans that share a span ID."""
    seen = set()
    out = []
    for s in spans:
        key = (s.resource_id, s.scope_id, s.span)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


class SpanSearcher(Protocol):
    """Searches and listings over the indexes (collector/store/criteria.py has the search model).

    Every method is safe to call from any thread, concurrently with the writer, and sees every
    span written by a ``write`` that returned before the call began (indexing may run behind
    the writer; a search waits for it to catch up).  ``start_ns``/``end_ns`` (epoch nanoseconds,
    ``None`` = unbounded) restrict a listing to partitions holding spans that started in that
    window; listings are sorted.
    """

    def find_traces(self, query) -> list:
        """``TraceSummary`` of every matching trace, newest first (by first start), at most
        ``query.limit``; each summary whole across partitions, with ``services`` and ``matched``
        (the spans that satisfied ``query.span``, at most 3 per partition) filled in.
        Raises ``criteria.CriteriaError`` for a search it cannot run."""
        ...

    def services(self, start_ns: int | None = None, end_ns: int | None = None) -> list[str]:
        """Every service name (``service.name`` of a resource; Jaeger's placeholder when absent)."""
        ...

    def operations(self, service: str | None, kind: str | None = None,
                   start_ns: int | None = None, end_ns: int | None = None) -> list[tuple[str, str]]:
        """``(span name, kind name)`` pairs of a service (every service when ``None``),
        restricted to one kind name (``criteria.KINDS``) when given."""
        ...

    def tag_keys(self, scope: str = "any", start_ns: int | None = None,
                 end_ns: int | None = None) -> list[str]:
        """Attribute keys seen in ``scope`` (``criteria.ATTR_SCOPES``)."""
        ...

    def tag_values(self, attr, service: str | None = None, start_ns: int | None = None,
                   end_ns: int | None = None, limit: int = 1000) -> list[tuple[str, str]]:
        """``(value as string, type)`` of an attribute (``criteria.Attr``), type one of
        ``string int double bool``; only on spans of ``service`` when given; at most ``limit``."""
        ...

    def dependencies(self, start_ns: int | None, end_ns: int | None) -> list[tuple[str, str, int, int]]:
        """``(parent service, child service, call count, error count)`` for every span whose parent
        span is in another service, over spans that started in the window; sorted by parent,
        child.  The error count is how many of those child spans (the callee side) have status
        error."""
        ...
