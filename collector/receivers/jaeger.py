"""Receive stage: Jaeger — agent UDP (Thrift compact 6831, binary 6832), collector HTTP 14268, gRPC 14250.

UDP cannot be acknowledged: a datagram is decoded and stored if it can be, and otherwise counted
(by reason, ``clew_udp_datagrams_dropped_total``) and dropped without disturbing the socket.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time

from collector import codec
from collector.config import JaegerConfig, OtlpConfig
from collector.errors import Busy, DecodeError, StoreError
from collector.ingest import Ingest
from collector.receivers import grpc_server
from collector.receivers.accept import accept, text
from collector.receivers.http import HttpListener, Request, Response, listen
from collector.receivers.sampling import grpc_handlers as sampling_grpc_handlers

log = logging.getLogger("clew.jaeger")

THRIFT_TYPES = ("application/x-thrift", "application/vnd.apache.thrift.binary")
GRPC_SERVICE = "jaeger.api_v2.CollectorService"
_MAX_UDP_IN_FLIGHT = 1024


class UdpAgent(asyncio.DatagramProtocol):
    """``agent.emitBatch`` datagrams in one Thrift protocol."""

    def __init__(self, ingest: Ingest, compact: bool, max_bytes: int):
        self.ingest = ingest
        self.compact = compact
        self.protocol = "jaeger_udp_compact" if compact else "jaeger_udp_binary"
        self.max_bytes = max_bytes
        self.tasks: set[asyncio.Task] = set()
        self.transport = None
        self._last_log = 0.0

    def connection_made(self, transport):
        self.transport = transport

    def _drop(self, reason: str, detail: str = "") -> None:
        self.ingest.metrics.udp_dropped.labels(self.protocol, reason).inc()
        now = time.monotonic()
        if detail and now - self._last_log > 10:  # at most one line per 10 s per socket
            self._last_log = now
            log.warning("%s: dropped a datagram (%s): %s", self.protocol, reason, detail)

    def datagram_received(self, data: bytes, addr) -> None:
        self.ingest.metrics.udp_received.labels(self.protocol).inc()
        if len(data) > self.max_bytes:
            self._drop("too_large", f"{len(data)} bytes > jaeger.max_datagram_bytes")
            return
        if len(self.tasks) >= _MAX_UDP_IN_FLIGHT:
            self._drop("busy", "too many datagrams in flight")
            return
        task = asyncio.get_running_loop().create_task(self._store(data))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _store(self, data: bytes) -> None:
        decode = functools.partial(codec.twin("jaeger_thrift").decode_emit_batch, compact=self.compact)
        try:
            await self.ingest.export(data, self.protocol, decode)
        except DecodeError as exc:
            self._drop("invalid", str(exc))
        except Busy as exc:
            self._drop("busy", str(exc))
        except StoreError as exc:
            self._drop("unavailable", str(exc))
        except Exception as exc:  # never let one datagram disturb the socket
            log.exception("unexpected error on a Jaeger datagram")
            self._drop("error", str(exc))

    def error_received(self, exc) -> None:
        log.warning("%s: socket error %s", self.protocol, exc)


def _decode_batch(body: bytes) -> bytes:
    return codec.twin("jaeger_thrift").decode_batch(body)


def _decode_post_spans(body: bytes) -> bytes:
    return codec.twin("jaeger_proto").decode_post_spans(body)


def http_handler(ingest: Ingest, limit: int):
    async def handle(req: Request) -> Response:
        if req.path != b"/api/traces":
            return text(404, f"no such path {req.path.decode('latin-1')!r}; Jaeger Thrift goes to /api/traces")
        if req.method != b"POST":
            return text(405, "use POST for /api/traces", [(b"Allow", b"POST")])
        if req.content_type not in THRIFT_TYPES:
            return text(415, f"Content-Type {req.content_type or '(none)'!r} is not supported; "
                        "use application/x-thrift (a Thrift binary Batch)")
        return await accept(ingest, req, "jaeger_http", "a Thrift binary jaeger.Batch",
                            _decode_batch, limit, "otlp.max_body_bytes")

    return handle


class JaegerReceivers:
    """Every Jaeger listener; the ports chosen, and a single close."""

    def __init__(self):
        self.udp: list[asyncio.DatagramTransport] = []
        self.agents: list[UdpAgent] = []
        self.http: HttpListener | None = None
        self.grpc = None
        self.ports: dict[str, int] = {}

    async def start(self, ingest: Ingest, config: JaegerConfig, otlp: OtlpConfig, host: str,
                    sampling=None) -> None:
        loop = asyncio.get_running_loop()
        for compact, port, key in ((True, config.compact_port, "compact_port"),
                                   (False, config.binary_port, "binary_port")):
            try:
                transport, agent = await loop.create_datagram_endpoint(
                    lambda c=compact: UdpAgent(ingest, c, config.max_datagram_bytes), local_addr=(host, port))
            except OSError as exc:
                raise OSError(f"jaeger.{key}: cannot listen on udp {host}:{port}: {exc.strerror}") from None
            self.udp.append(transport)
            self.agents.append(agent)
            self.ports[f"jaeger_{key.split('_')[0]}"] = transport.get_extra_info("sockname")[1]
        self.http = await listen(http_handler(ingest, otlp.max_body_bytes), otlp.max_body_bytes,
                                 host, config.http_port, "jaeger.http_port")
        self.ports["jaeger_http"] = self.http.port
        post = grpc_server.unary_export(ingest, "jaeger_grpc", "jaeger.api_v2.PostSpansRequest",
                                        _decode_post_spans, lambda _outcome: b"",
                                        partial_success=False)
        services = {GRPC_SERVICE: {"PostSpans": post}}
        if sampling is not None:  # SamplingManager/GetSamplingStrategy for the SDKs' remote samplers
            services.update(sampling_grpc_handlers(sampling))
        self.grpc, self.ports["jaeger_grpc"] = await grpc_server.start(
            services, otlp.max_body_bytes, otlp.grpc_max_concurrent_rpcs,
            host, config.grpc_port, "jaeger.grpc_port")

    def stop_accepting(self) -> None:
        for transport in self.udp:
            transport.close()
        if self.http is not None:
            self.http.close()

    async def drain(self) -> None:
        pending = [t for agent in self.agents for t in agent.tasks]
        if pending:
            await asyncio.wait(pending, timeout=10)

