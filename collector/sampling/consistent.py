"""Consistent probability sampling, as the OpenTelemetry specification defines it (W3C Trace Context
level 2 randomness, ``tracestate`` ``ot=th:…;rv:…``).

Every decision compares a trace's 56-bit *randomness* R with a 56-bit *rejection threshold* T:
the trace is kept when ``R >= T``.  R is the explicit ``rv`` value of the ``ot`` tracestate entry
when a span carries one, else the least significant 56 bits of the trace ID (its last 7 bytes).
A probability p has the threshold ``T = 2**56 - round(p * 2**56)``: p = 1 is T = 0 (keep all),
p = 0 is T = 2**56 (keep none).

Because every stage compares the same R, thresholds nest: a trace an SDK kept at threshold T1
(probability p) and this collector keeps at T2 >= T1 (probability q <= p) is kept exactly when
R >= T2, so its adjusted count (how many traces it stands for) is ``2**56 / (2**56 - T2)``.
Every node, and every span of a trace, decides alike without sharing state.
"""
from __future__ import annotations

import numpy as np

MAX = 1 << 56  # thresholds and randomness are 56-bit integers
_TRACE_DTYPE = np.dtype("V16")


def threshold(p: float) -> int:
    """The rejection threshold of probability ``p`` (0..1)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be 0..1, got {p}")
    return MAX - int(round(p * MAX))


def probability(t: int) -> float:
    """The probability a threshold keeps."""
    return (MAX - t) / MAX


def adjusted_count(t: int) -> float:
    """How many traces one kept at threshold ``t`` represents (0 for a threshold that keeps none)."""
    return MAX / (MAX - t) if t < MAX else 0.0


def randomness(trace_ids: np.ndarray) -> np.ndarray:
    """R of each 16-byte trace ID (an array of ``V16`` or a ``(n, 16)`` uint8 matrix) as uint64."""
    raw = np.ascontiguousarray(trace_ids)
    if raw.dtype != np.uint8:
        raw = raw.view(np.uint8)
    raw = raw.reshape(-1, 16)
    wide = np.zeros((len(raw), 8), np.uint8)
    wide[:, 1:] = raw[:, 9:16]
    return wide.view(">u8").reshape(-1).astype(np.uint64)


def trace_randomness(trace_id: bytes) -> int:
    """R of one trace ID."""
    return int.from_bytes(trace_id[9:16], "big")


def encode_th(t: int) -> str:
    """``th`` text of a threshold: 14 hex digits with trailing zeros removed (``0`` for keep-all)."""
    if not 0 <= t < MAX:
        raise ValueError("a threshold that keeps nothing has no th encoding")
    text = f"{t:014x}".rstrip("0")
    return text or "0"


def parse_ot(tracestate: str) -> tuple[int | None, int | None]:
    """(threshold, randomness) from the ``ot`` entry of a W3C ``tracestate`` header value; each is
    None when absent or malformed (a malformed value is ignored, as the specification asks)."""
    th = rv = None
    for member in tracestate.split(","):
        key, sep, value = member.strip().partition("=")
        if not sep or key != "ot":
            continue
        for field in value.split(";"):
            name, sep, text = field.partition(":")
            if not sep:
                continue
            if name == "th" and 1 <= len(text) <= 14 and _hex(text):
                th = int(text.ljust(14, "0"), 16)
            elif name == "rv" and len(text) == 14 and _hex(text):
                rv = int(text, 16)
        break
    return th, rv


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
