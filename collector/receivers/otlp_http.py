"""Receive stage: OTLP/HTTP ``POST /v1/traces`` on a plain asyncio protocol with the httptools parser.

No web framework on the ingest path.  Requests on one connection are answered in order (HTTP/1.1
pipelining); reading pauses while too many wait.  Bodies are bounded before and after gzip.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
import zlib

import httptools

from collector.codec.otlp_response import (
    INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, export_response, status_body,
)
from collector.config import OtlpConfig
from collector.errors import BodyTooLarge, Busy, DecodeError, StoreError
from collector.ingest import Ingest

log = logging.getLogger("clew.otlp_http")

PROTOCOL = "otlp_http"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MAX_PIPELINED = 16
_REASONS = {200: "OK", 100: "Continue", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 415: "Unsupported Media Type",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class _Request:
    __slots__ = ("method", "url", "headers", "body", "size", "too_large", "keep_alive")

    def __init__(self):
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.keep_alive = True
        self.method = b""


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing it as soon as it grows past ``limit`` (no zip bombs)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodeError(f"Content-Encoding gzip: body is not valid gzip: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise BodyTooLarge(f"decompressed body is over {limit} bytes (otlp.max_body_bytes)")
    if not d.eof:
        raise DecodeError("Content-Encoding gzip: body is truncated")
    return out


class OtlpHttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, ingest: Ingest, config: OtlpConfig, connections: set):
        self.ingest = ingest
        self.max_body = config.max_body_bytes
        self.connections = connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.req: _Request | None = None
        self.queue: collections.deque = collections.deque()
        self.worker: asyncio.Task | None = None
        self.paused = False
        self.closing = False

    # -- transport events
    def connection_made(self, transport):
        self.transport = transport
        self.connections.add(self)

    def connection_lost(self, exc):
        self.connections.discard(self)
        self.closing = True

    def data_received(self, data: bytes):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(400, b"upgrade is not supported")
        except httptools.HttpParserError as exc:
            self._reply_and_close(400, f"malformed HTTP request: {exc}".encode())

    # -- parser callbacks
    def on_message_begin(self):
        self.req = _Request()

    def on_url(self, url: bytes):
        self.req.url += url

    def on_header(self, name: bytes, value: bytes):
        self.req.headers[name.lower()] = value

    def on_headers_complete(self):
        req = self.req
        req.method = self.parser.get_method()
        req.keep_alive = self.parser.should_keep_alive()
        length = req.headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            req.too_large = True
        if req.headers.get(b"expect", b"").lower() == b"100-continue" and not req.too_large:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes):
        req = self.req
        if req.too_large:
            return
        req.size += len(body)
        if req.size > self.max_body:
            req.too_large = True
            req.body.clear()
        else:
            req.body.append(body)

    def on_message_complete(self):
        self.queue.append(self.req)
        self.req = None
        if len(self.queue) >= _MAX_PIPELINED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())

    # -- handling
    async def _work(self):
        while self.queue and not self.closing:
            req = self.queue.popleft()
            if self.paused and len(self.queue) < _MAX_PIPELINED // 2:
                self.paused = False
                self.transport.resume_reading()
            status, headers, body = await self._handle(req)
            if self.closing:
                return
            self._write(status, headers, body, req.keep_alive)
            if not req.keep_alive:
                self.closing = True
                self.transport.close()
                return

    async def _handle(self, req: _Request):
        path = req.url.split(b"?", 1)[0]
        ctype = req.headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower().decode("latin-1")
        as_json = ctype == JSON
        if path != b"/v1/traces":
            return self._error(404, 5, f"no such path {path.decode('latin-1')!r}; OTLP traces go to /v1/traces", as_json)
        if req.method != b"POST":
            return self._error(405, 12, "use POST for /v1/traces", as_json, [(b"Allow", b"POST")])
        if req.too_large:
            return self._error(413, INVALID_ARGUMENT,
                               f"body is over {self.max_body} bytes (otlp.max_body_bytes)", as_json)
        if ctype not in (PROTOBUF, JSON):
            return self._error(415, INVALID_ARGUMENT,
                               f"Content-Type {ctype or '(none)'!r} is not supported; "
                               f"use {PROTOBUF} or {JSON}", as_json)
        body = b"".join(req.body)
        started = time.perf_counter()
        m = self.ingest.metrics
        try:
            encoding = req.headers.get(b"content-encoding", b"identity").strip().lower()
            if encoding == b"gzip":
                body = gunzip(body, self.max_body)
            elif encoding not in (b"identity", b""):
                return self._error(415, INVALID_ARGUMENT,
                                   f"Content-Encoding {encoding.decode('latin-1')!r} is not supported; "
                                   "use gzip or none", as_json)
            outcome = await self.ingest.export(body, PROTOCOL, json=as_json)
        except BodyTooLarge as exc:
            m.requests.labels(PROTOCOL, "too_large").inc()
            return self._error(413, INVALID_ARGUMENT, str(exc), as_json)
        except DecodeError as exc:
            m.requests.labels(PROTOCOL, "invalid").inc()
            what = "OTLP/JSON" if as_json else "OTLP protobuf"
            return self._error(400, INVALID_ARGUMENT, f"body is not a valid {what} "
                               f"ExportTraceServiceRequest: {exc}", as_json)
        except Busy as exc:
            m.requests.labels(PROTOCOL, "busy").inc()
            return self._error(429, RESOURCE_EXHAUSTED, str(exc), as_json,
                               [(b"Retry-After", str(exc.retry_after).encode())])
        except StoreError as exc:
            m.requests.labels(PROTOCOL, "unavailable").inc()
            return self._error(503, UNAVAILABLE, f"spans were not stored: {exc}", as_json,
                               [(b"Retry-After", b"1")])
        except Exception:
            log.exception("unexpected error handling an OTLP/HTTP request")
            m.requests.labels(PROTOCOL, "error").inc()
            return self._error(500, 13, "internal error; the spans were not stored", as_json)
        m.requests.labels(PROTOCOL, "partial" if outcome.refusals.total else "ok").inc()
        m.ack_seconds.labels(PROTOCOL).observe(time.perf_counter() - started)
        ctype_out = JSON if as_json else PROTOBUF
        return 200, [(b"Content-Type", ctype_out.encode())], export_response(outcome.refusals, as_json)

    @staticmethod
    def _error(status: int, code: int, message: str, as_json: bool, extra=()):
        ctype = JSON if as_json else PROTOBUF
        return status, [(b"Content-Type", ctype.encode()), *extra], status_body(code, message, as_json)

    def _write(self, status: int, headers, body: bytes, keep_alive: bool):
        lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, "").encode())]
        for name, value in headers:
            lines.append(name + b": " + value)
        lines.append(b"Content-Length: %d" % len(body))
        if not keep_alive:
            lines.append(b"Connection: close")
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    def _reply_and_close(self, status: int, message: bytes):
        if self.transport is None or self.transport.is_closing():
            return
        self._write(status, [(b"Content-Type", b"text/plain")], message, False)
        self.closing = True
        self.transport.close()

    def idle(self) -> bool:
        return not self.queue and (self.worker is None or self.worker.done())

    def shutdown(self):
        if self.transport is not None:
            self.transport.close()


async def start(ingest: Ingest, config: OtlpConfig, host: str, port: int):
    """Listen for OTLP/HTTP; returns (server, bound port, live connections)."""
    loop = asyncio.get_running_loop()
    connections: set = set()
    server = await loop.create_server(lambda: OtlpHttpProtocol(ingest, config, connections),
                                      host, port, reuse_address=True, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    return server, bound, connections
