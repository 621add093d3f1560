"""Query stage: trace IDs as the query APIs write them (hex, 1–32 digits, left-padded to 128 bits)."""
from __future__ import annotations


class BadTraceId(ValueError):
    pass


def parse_trace_id(text: str) -> bytes:
    """16 bytes from a hex trace ID; short IDs (64-bit Jaeger/Zipkin IDs) are left-padded with zeros."""
    if not 1 <= len(text) <= 32:
        raise BadTraceId(f"trace ID {text[:40]!r} must be 1 to 32 hex digits")
    try:
        value = int(text, 16)
    except ValueError:
        raise BadTraceId(f"trace ID {text[:40]!r} is not hexadecimal") from None
    if text.strip() != text or text.startswith(("0x", "0X", "+", "-")) or "_" in text:
        raise BadTraceId(f"trace ID {text[:40]!r} is not hexadecimal")
    if value == 0:
        raise BadTraceId("trace ID must not be zero")
    return value.to_bytes(16, "big")
