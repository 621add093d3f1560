"""Decode stage's counterpart for answers: OTLP ``ExportTraceServiceResponse`` and ``google.rpc.Status``.

Both receivers (gRPC and HTTP) answer through these, in protobuf or in OTLP/JSON.
"""
from __future__ import annotations

import json

from collector.codec.otlp_writer import f_bytes, f_str, f_varint
from collector.pipeline import Refusals

# gRPC status codes used in ``google.rpc.Status`` bodies of OTLP/HTTP errors.
INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
UNAVAILABLE = 14


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
    partial = f_varint(1, rejected) + f_str(2, refusals.message())
    return f_bytes(1, partial, keep_empty=True)


def status_body(code: int, message: str, as_json: bool = False) -> bytes:
    """A ``google.rpc.Status`` (as OTLP/HTTP error bodies carry it)."""
    if as_json:
        return json.dumps({"code": code, "message": message}).encode()
    return f_varint(1, code) + f_str(2, message)
