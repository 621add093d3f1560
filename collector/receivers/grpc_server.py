"""Receive stage: what every gRPC receiver shares — raw-bytes unary handlers and the server itself.

Requests are not parsed by protobuf: the generic handler hands the bytes to our decoders.
gRPC handles gzip and the message-size limit (RESOURCE_EXHAUSTED past it).
"""
from __future__ import annotations

import time
from typing import Callable

import grpc

from collector.errors import Busy, DecodeError, StoreError
from collector.ingest import Ingest, Outcome


def unary_export(ingest: Ingest, protocol: str, what: str, to_otlp: Callable[[bytes], bytes] | None,
                 respond: Callable[[Outcome], bytes], partial_success: bool = True):
    """A unary handler: ingest the request bytes, answer ``respond(outcome)`` after the commit.

    Without ``partial_success`` in the protocol (Jaeger), a request whose every span was refused
    answers INVALID_ARGUMENT with the reasons.
    """
    m = ingest.metrics

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            outcome = await ingest.export(request, protocol, to_otlp)
        except DecodeError as exc:
            m.requests.labels(protocol, "invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {what}: {exc}")
        except Busy as exc:
            m.requests.labels(protocol, "busy").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except StoreError as exc:
            m.requests.labels(protocol, "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"spans were not stored: {exc}")
        if not partial_success and outcome.refusals.total and not outcome.accepted:
            m.requests.labels(protocol, "invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, outcome.refusals.message())
        m.requests.labels(protocol, "partial" if outcome.refusals.total else "ok").inc()
        m.ack_seconds.labels(protocol).observe(time.perf_counter() - started)
        return respond(outcome)

    return grpc.unary_unary_rpc_method_handler(export, request_deserializer=None,
                                               response_serializer=None)


async def start(handlers: dict[str, dict[str, grpc.RpcMethodHandler]], max_message: int,
                max_rpcs: int, host: str, port: int, key: str) -> tuple[grpc.aio.Server, int]:
    """Serve ``{service: {method: handler}}`` on ``host:port``; returns (server, bound port)."""
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", max_message), ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=max_rpcs,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, methods) for service, methods in handlers.items()])
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound or (port and bound != port):
        raise OSError(f"{key}: cannot listen on {host}:{port}")
    await server.start()
    return server, bound
