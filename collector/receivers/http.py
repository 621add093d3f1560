"""Receive stage: the minimal HTTP/1.1 server every HTTP receiver runs on (asyncio + httptools).

No web framework on the ingest path: a plain ``asyncio.Protocol`` feeds httptools, collects a
bounded body and hands a ``Request`` to the receiver's handler coroutine.  Requests on one
connection are answered in order (pipelining); reading pauses while too many wait.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import zlib
from typing import Awaitable, Callable, NamedTuple

import httptools

from collector.errors import BodyTooLarge, DecodeError

log = logging.getLogger("clew.http")

_MAX_PIPELINED = 16
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 415: "Unsupported Media Type",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class UnsupportedEncoding(DecodeError):
    """A Content-Encoding other than gzip or identity (answered 415)."""


class Request:
    __slots__ = ("method", "url", "headers", "chunks", "size", "too_large", "keep_alive")

    def __init__(self):
        self.method = b""
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.keep_alive = True

    @property
    def path(self) -> bytes:
        return self.url.split(b"?", 1)[0]

    @property
    def content_type(self) -> str:
        raw = self.headers.get(b"content-type", b"").split(b";", 1)[0]
        return raw.strip().lower().decode("latin-1")

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class Response(NamedTuple):
    status: int
    headers: list
    body: bytes = b""


Handler = Callable[[Request], Awaitable[Response]]


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing it as soon as it grows past ``limit`` (no zip bombs)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodeError(f"Content-Encoding gzip: body is not valid gzip: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise BodyTooLarge(f"decompressed body is over {limit} bytes")
    if not d.eof:
        raise DecodeError("Content-Encoding gzip: body is truncated")
    return out


def decoded_body(req: Request, limit: int) -> bytes:
    """The request body with its Content-Encoding (gzip or none) undone, bounded by ``limit``."""
    encoding = req.headers.get(b"content-encoding", b"identity").strip().lower()
    if encoding == b"gzip":
        return gunzip(req.body, limit)
    if encoding in (b"identity", b""):
        return req.body
    raise UnsupportedEncoding(f"Content-Encoding {encoding.decode('latin-1')!r} is not supported; "
                              "use gzip or none")


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, handler: Handler, max_body: int, connections: set):
        self.handler = handler
        self.max_body = max_body
        self.connections = connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.req: Request | None = None
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
        self.req = Request()

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
            req.chunks.clear()
        else:
            req.chunks.append(body)

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
            try:
                resp = await self.handler(req)
            except Exception:
                log.exception("unexpected error handling %s %s", req.method, req.path)
                resp = Response(500, [(b"Content-Type", b"text/plain")],
                                b"internal error; nothing from this request was stored")
            if self.closing:
                return
            self._write(resp, req.keep_alive)
            if not req.keep_alive:
                self.closing = True
                self.transport.close()
                return

    def _write(self, resp: Response, keep_alive: bool):
        lines = [b"HTTP/1.1 %d %s" % (resp.status, _REASONS.get(resp.status, "").encode())]
        for name, value in resp.headers:
            lines.append(name + b": " + value)
        lines.append(b"Content-Length: %d" % len(resp.body))
        if not keep_alive:
            lines.append(b"Connection: close")
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + resp.body)

    def _reply_and_close(self, status: int, message: bytes):
        if self.transport is None or self.transport.is_closing():
            return
        self._write(Response(status, [(b"Content-Type", b"text/plain")], message), False)
        self.closing = True
        self.transport.close()

    def idle(self) -> bool:
        return not self.queue and (self.worker is None or self.worker.done())

    def shutdown(self):
        if self.transport is not None:
            self.transport.close()


class HttpListener(NamedTuple):
    server: asyncio.AbstractServer
    port: int
    connections: set

    def idle(self) -> bool:
        return all(c.idle() for c in list(self.connections))

    def close(self) -> None:
        self.server.close()

    def close_connections(self) -> None:
        for conn in list(self.connections):
            conn.shutdown()


async def listen(handler: Handler, max_body: int, host: str, port: int, key: str) -> HttpListener:
    """Serve ``handler`` on ``host:port`` (0 picks a free port); ``key`` names the setting in errors."""
    loop = asyncio.get_running_loop()
    connections: set = set()
    try:
        server = await loop.create_server(lambda: HttpProtocol(handler, max_body, connections),
                                          host, port, reuse_address=True, backlog=1024)
    except OSError as exc:
        raise OSError(f"{key}: cannot listen on {host}:{port}: {exc.strerror}") from None
    return HttpListener(server, server.sockets[0].getsockname()[1], connections)
