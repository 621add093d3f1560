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


def _field(out: bytearray, number: int, payload: bytes | bytearray) -> None:
    """Append a length-delimited protobuf field."""
    key = (number << 3) | 2
    out.append(key)
    n = len(payload)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    out += payload


class WriteResult(NamedTuple):
    """What became of one submitted batch."""

    accepted: int  # spans now durable
    refusals: Refusals  # spans refused by the store (e.g. the per-trace span limit)


class SpanWriter(Protocol):
    def write(self, batches: Sequence[SpanBatch]) -> list[WriteResult]:
        """Store every batch in one transaction and commit it.

        Durability: when ``write`` returns, every span counted in ``accepted`` is committed and
        survives a crash of the process (``kill -9``); with ``store.fsync = true`` it survives a
        power loss too.  If ``write`` raises, nothing of these batches may be acknowledged (part
        of it may or may not be on disk; a retry may then store a span twice, which readers
        collapse because identical spans are returned once).  Batches are owned by the store
        only for the duration of the call.  Only one thread calls ``write`` at a time.
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
