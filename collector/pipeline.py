"""Validate stage: the limits every span must meet before it is stored, applied once per batch.

Checks run as numpy operations over the whole batch (no Python work per span).  Refused spans are
counted by reason; the rest of the batch goes on to the store.  The per-trace span limit needs the
store's memory of earlier batches, so the writer applies it (collector/store/writer.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collector.config import LimitsConfig
from collector.model import SPAN_DTYPE, SpanBatch


@dataclass
class Refusals:
    """Spans refused from one request, by reason code (count, message, first span's index)."""

    counts: dict[str, int] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)

    def add(self, code: str, reason: str, count: int, first: int = -1) -> None:
        """Record ``count`` spans refused; ``code`` is the short label used in /metrics."""
        if count <= 0:
            return
        self.counts[code] = self.counts.get(code, 0) + count
        self.messages.setdefault(code, reason)
        self.first.setdefault(code, first)

    def merge(self, other: "Refusals") -> None:
        for code, count in other.counts.items():
            self.add(code, other.messages[code], count, other.first.get(code, -1))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def message(self) -> str:
        """One line per reason, as OTLP ``partial_success.error_message`` carries it."""
        parts = []
        for code, count in self.counts.items():
            reason = self.messages[code]
            first = self.first.get(code, -1)
            where = f" (first at span #{first} of the request)" if first >= 0 else ""
            parts.append(f"{count} span{'s' if count != 1 else ''} refused: {reason}{where}")
        return "; ".join(parts)


def _raw(spans: np.ndarray) -> np.ndarray:
    """The span rows as a (n, itemsize) byte matrix, to test ID bytes without Python objects."""
    return np.ascontiguousarray(spans).view(np.uint8).reshape(len(spans), SPAN_DTYPE.itemsize)


_TRACE = slice(0, 16)
_SPAN = slice(16, 24)


def validate(batch: SpanBatch, limits: LimitsConfig) -> tuple[SpanBatch, Refusals]:
    """Return the spans that pass every check, and what was refused and why."""
    refusals = Refusals()
    spans = batch.spans
    if not len(spans):
        return batch, refusals
    raw = _raw(spans)
    ok = np.ones(len(spans), dtype=bool)

    def check(bad: np.ndarray, code: str, reason: str) -> None:
        nonlocal ok
        bad = bad & ok  # each span is counted once, under its first failing check
        if bad.any():
            refusals.add(code, reason, int(bad.sum()), int(np.argmax(bad)))
            ok &= ~bad

    tlen = spans["trace_id_len"]
    check(tlen != 16, "trace_id_length", "trace_id must be 16 bytes")
    check(~raw[:, _TRACE].any(axis=1), "trace_id_zero", "trace_id is all zeros")
    check(spans["span_id_len"] != 8, "span_id_length", "span_id must be 8 bytes")
    check(~raw[:, _SPAN].any(axis=1), "span_id_zero", "span_id is all zeros")
    plen = spans["parent_id_len"]
    check((plen != 0) & (plen != 8), "parent_span_id_length", "parent_span_id must be 8 bytes or empty")
    check(spans["end_ns"] < spans["start_ns"], "end_before_start", "end time is before start time")
    check(spans["span_len"] > limits.max_span_bytes, "span_too_large",
          f"span is larger than {limits.max_span_bytes} bytes (limits.max_span_bytes)")
    if ok.all():
        return batch, refusals
    return batch.select(ok), refusals
