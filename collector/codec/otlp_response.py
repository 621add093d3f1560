"""Decode stage's counterpart for answers: OTLP ``ExportTraceServiceResponse`` and ``google.rpc.Status``.

Both receivers (gRPC and HTTP) answer through these, in protobuf or in OTLP/JSON.
"""
from __future__ import annotations

import json

from collector.pipeline import Refusals

# gRPC status codes used in ``google.rpc.Status`` bodies of OTLP/HTTP errors.
INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
UNAVAILABLE = 14


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def export_response(refusals: Refusals, as_json: bool = False) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` is set only when spans were refused."""
    rejected = refusals.total
    if as_json:
        if not rejected:
            return b"{}"
        return json.dumps({"partialSuccess": {"rejectedSpans": str(rejected),
                                              "errorMessage": refusals.message()}}).encode()
    if not rejected:
        return b""
    partial = _varint(1 << 3) + _varint(rejected) + _len_field(2, refusals.message().encode())
    return _len_field(1, partial)


def status_body(code: int, message: str, as_json: bool = False) -> bytes:
    """A ``google.rpc.Status`` (as OTLP/HTTP error bodies carry it)."""
    if as_json:
        return json.dumps({"code": code, "message": message}).encode()
    return _varint(1 << 3) + _varint(code) + _len_field(2, message.encode())
