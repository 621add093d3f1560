"""Receive stage: OTLP/gRPC ``TraceService/Export`` on grpc.aio, taking the request as raw bytes.

The request is not parsed by protobuf: the generic handler hands the bytes to our decoder.
gRPC itself handles gzip and the message-size limit (RESOURCE_EXHAUSTED past it).
"""
from __future__ import annotations

import logging
import time

import grpc

from collector.codec.otlp_response import export_response
from collector.config import OtlpConfig
from collector.errors import Busy, DecodeError, StoreError
from collector.ingest import Ingest

log = logging.getLogger("clew.otlp_grpc")

PROTOCOL = "otlp_grpc"
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _handler(ingest: Ingest) -> grpc.GenericRpcHandler:
    m = ingest.metrics

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            outcome = await ingest.export(request, PROTOCOL)
        except DecodeError as exc:
            m.requests.labels(PROTOCOL, "invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"request is not a valid OTLP ExportTraceServiceRequest: {exc}")
        except Busy as exc:
            m.requests.labels(PROTOCOL, "busy").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except StoreError as exc:
            m.requests.labels(PROTOCOL, "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"spans were not stored: {exc}")
        m.requests.labels(PROTOCOL, "partial" if outcome.refusals.total else "ok").inc()
        m.ack_seconds.labels(PROTOCOL).observe(time.perf_counter() - started)
        return export_response(outcome.refusals)

    rpc = grpc.unary_unary_rpc_method_handler(export, request_deserializer=None,
                                              response_serializer=None)
    return grpc.method_handlers_generic_handler(SERVICE, {"Export": rpc})


async def start(ingest: Ingest, config: OtlpConfig, host: str, port: int):
    """Listen for OTLP/gRPC; returns (server, bound port)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_body_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=config.grpc_max_concurrent_rpcs,
    )
    server.add_generic_rpc_handlers((_handler(ingest),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if port and bound != port:
        raise OSError(f"otlp.grpc_port: could not bind {host}:{port}")
    if not bound:
        raise OSError(f"otlp.grpc_port: could not bind {host}:{port}")
    await server.start()
    return server, bound
