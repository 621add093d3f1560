"""Receive stage: OTLP/HTTP ``POST /v1/traces`` (protobuf or JSON, gzip or not) on the shared HTTP server."""
from __future__ import annotations

import time

from collector.codec.otlp_json import json_to_protobuf
from collector.codec.otlp_response import (
    INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, export_response, status_body,
)
from collector.config import OtlpConfig
from collector.errors import BodyTooLarge, Busy, DecodeError, StoreError
from collector.ingest import Ingest
from collector.receivers.http import HttpListener, Request, Response, UnsupportedEncoding, decoded_body, listen

PROTOCOL = "otlp_http"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _error(status: int, code: int, message: str, as_json: bool, extra=()) -> Response:
    """OTLP/HTTP errors carry a ``google.rpc.Status`` in the request's encoding."""
    ctype = JSON if as_json else PROTOBUF
    return Response(status, [(b"Content-Type", ctype.encode()), *extra], status_body(code, message, as_json))


def handler(ingest: Ingest, config: OtlpConfig):
    m = ingest.metrics
    limit = config.max_body_bytes

    async def handle(req: Request) -> Response:
        ctype = req.content_type
        as_json = ctype == JSON
        if req.path != b"/v1/traces":
            return _error(404, 5, f"no such path {req.path.decode('latin-1')!r}; "
                          "OTLP traces go to /v1/traces", as_json)
        if req.method != b"POST":
            return _error(405, 12, "use POST for /v1/traces", as_json, [(b"Allow", b"POST")])
        if req.too_large:
            return _error(413, INVALID_ARGUMENT, f"body is over {limit} bytes (otlp.max_body_bytes)", as_json)
        if ctype not in (PROTOBUF, JSON):
            return _error(415, INVALID_ARGUMENT, f"Content-Type {ctype or '(none)'!r} is not supported; "
                          f"use {PROTOBUF} or {JSON}", as_json)
        started = time.perf_counter()
        try:
            body = decoded_body(req, limit)
            outcome = await ingest.export(body, PROTOCOL, json_to_protobuf if as_json else None)
        except UnsupportedEncoding as exc:
            return _error(415, INVALID_ARGUMENT, str(exc), as_json)
        except BodyTooLarge as exc:
            m.requests.labels(PROTOCOL, "too_large").inc()
            return _error(413, INVALID_ARGUMENT, f"{exc} (otlp.max_body_bytes)", as_json)
        except DecodeError as exc:
            m.requests.labels(PROTOCOL, "invalid").inc()
            what = "OTLP/JSON" if as_json else "OTLP protobuf"
            return _error(400, INVALID_ARGUMENT, f"body is not a valid {what} "
                          f"ExportTraceServiceRequest: {exc}", as_json)
        except Busy as exc:
            m.requests.labels(PROTOCOL, "busy").inc()
            return _error(429, RESOURCE_EXHAUSTED, str(exc), as_json,
                          [(b"Retry-After", str(exc.retry_after).encode())])
        except StoreError as exc:
            m.requests.labels(PROTOCOL, "unavailable").inc()
            return _error(503, UNAVAILABLE, f"spans were not stored: {exc}", as_json, [(b"Retry-After", b"1")])
        m.requests.labels(PROTOCOL, "partial" if outcome.refusals.total else "ok").inc()
        m.ack_seconds.labels(PROTOCOL).observe(time.perf_counter() - started)
        return Response(200, [(b"Content-Type", (JSON if as_json else PROTOBUF).encode())],
                        export_response(outcome.refusals, as_json))

    return handle


async def start(ingest: Ingest, config: OtlpConfig, host: str, port: int) -> HttpListener:
    return await listen(handler(ingest, config), config.max_body_bytes, host, port, "otlp.http_port")
