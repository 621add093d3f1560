"""Receive stage: Zipkin on 9411 — ``/api/v2/spans`` (JSON, proto3) and ``/api/v1/spans`` (JSON, Thrift)."""
from __future__ import annotations

from collector import codec
from collector.config import OtlpConfig, ZipkinConfig
from collector.ingest import Ingest
from collector.receivers.accept import accept, text
from collector.receivers.http import HttpListener, Request, Response, listen

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
THRIFT = "application/x-thrift"


def _v2_json(body: bytes) -> bytes:
    return codec.twin("zipkin").v2_json_to_otlp(body)


def _v2_proto(body: bytes) -> bytes:
    return codec.twin("zipkin").v2_proto_to_otlp(body)


def _v1_json(body: bytes) -> bytes:
    return codec.twin("zipkin").v1_json_to_otlp(body)


def _v1_thrift(body: bytes) -> bytes:
    return codec.twin("zipkin").v1_spans_to_otlp(codec.twin("jaeger_thrift").decode_zipkin_v1_thrift(body))


def _routes():
    """(path, Content-Type) → (protocol label, what it must be, translator); JSON is the default."""
    return {
        (b"/api/v2/spans", JSON): ("zipkin_v2_json", "Zipkin v2 JSON", _v2_json),
        (b"/api/v2/spans", PROTOBUF): ("zipkin_v2_proto", "Zipkin proto3 ListOfSpans", _v2_proto),
        (b"/api/v1/spans", JSON): ("zipkin_v1_json", "Zipkin v1 JSON", _v1_json),
        (b"/api/v1/spans", THRIFT): ("zipkin_v1_thrift", "Zipkin v1 Thrift", _v1_thrift),
    }


def handler(ingest: Ingest, limit: int):
    routes = _routes()
    paths = {path for path, _ in routes}

    async def handle(req: Request) -> Response:
        path = req.path
        if path not in paths:
            return text(404, f"no such path {path.decode('latin-1')!r}; Zipkin spans go to /api/v2/spans")
        if req.method != b"POST":
            return text(405, f"use POST for {path.decode()}", [(b"Allow", b"POST")])
        ctype = req.content_type or JSON  # Zipkin clients that send no Content-Type send JSON
        route = routes.get((path, ctype))
        if route is None:
            kinds = ", ".join(c for p, c in routes if p == path)
            return text(415, f"Content-Type {ctype!r} is not supported on {path.decode()}; use {kinds}")
        protocol, what, translate = route
        return await accept(ingest, req, protocol, what, translate, limit, "otlp.max_body_bytes")

    return handle


async def start(ingest: Ingest, config: ZipkinConfig, otlp: OtlpConfig, host: str) -> HttpListener:
    return await listen(handler(ingest, otlp.max_body_bytes), otlp.max_body_bytes, host, config.port,
                        "zipkin.port")
