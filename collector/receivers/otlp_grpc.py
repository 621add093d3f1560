"""Receive stage: OTLP/gRPC ``TraceService/Export`` on grpc.aio, taking the request as raw bytes."""
from __future__ import annotations

from collector.codec.otlp_response import export_response
from collector.config import OtlpConfig
from collector.ingest import Ingest
from collector.receivers import grpc_server

PROTOCOL = "otlp_grpc"
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


async def start(ingest: Ingest, config: OtlpConfig, host: str, port: int):
    """Listen for OTLP/gRPC; returns (server, bound port)."""
    export = grpc_server.unary_export(ingest, PROTOCOL, "OTLP ExportTraceServiceRequest", None,
                                      lambda outcome: export_response(outcome.refusals))
    return await grpc_server.start({SERVICE: {"Export": export}}, config.max_body_bytes,
                                   config.grpc_max_concurrent_rpcs, host, port, "otlp.grpc_port")
