"""Sample stage (remote sampling): SDKs fetch their Jaeger sampling strategy here.

* HTTP on ``sampling.remote_port`` (5778), as the Jaeger agent and Jaeger v2's ``remote_sampling``
  extension serve it: ``GET /sampling?service=NAME`` answers protobuf JSON with the enum by name
  (Jaeger's ``/sampling`` form, which the OpenTelemetry remote samplers read), ``GET /?service=NAME``
  the legacy Thrift 0.9.2 JSON (enum as a number) that the old Jaeger clients read.
* gRPC ``jaeger.api_v2.SamplingManager/GetSamplingStrategy`` on the Jaeger gRPC port (14250),
  registered by ``collector.receivers.jaeger``; request and response are encoded here.

Every fetch is reported with ``sampling.note_poll(service)``. The strategies themselves come from
``sampling.strategy_for(service)`` (the canonical dict, see ``collector.sampling.strategies``).
"""
from __future__ import annotations

import json
import struct
from urllib.parse import parse_qs

import grpc

from collector.codec.otlp_writer import f_bytes, f_str, f_varint, tag
from collector.config import SamplingConfig
from collector.errors import DecodeError
from collector.receivers.accept import text
from collector.receivers.http import HttpListener, Request, Response, listen
from collector.sampling.strategies import legacy_json, proto_json, strategy_type

GRPC_SERVICE = "jaeger.api_v2.SamplingManager"
GRPC_METHOD = "GetSamplingStrategy"
_MAX_BODY = 64 * 1024  # GET requests carry no body: a larger one is not buffered, only discarded
_JSON = [(b"Content-Type", b"application/json")]
_D = struct.Struct("<d")
MISSING_SERVICE = ("the 'service' query parameter must be given once, naming the service whose "
                   "sampling strategy to fetch, e.g. /sampling?service=frontend")


# ---- protobuf (jaeger-idl proto/api_v2/sampling.proto) -----------------------------------------

def _f_double(number: int, value: float) -> bytes:
    return tag(number, 1) + _D.pack(value) if value else b""


def _probabilistic(msg: dict | None) -> bytes:
    return _f_double(1, float((msg or {}).get("samplingRate", 0)))  # ProbabilisticSamplingStrategy


def _int32(value: int) -> int:
    return value & 0xFFFFFFFFFFFFFFFF if value < 0 else value  # negative int32: 10-byte varint


def encode_response(response: dict) -> bytes:
    """``SamplingStrategyResponse`` protobuf bytes of a canonical (or wire-form) response dict.

    strategyType = 1 (enum), probabilisticSampling = 2, rateLimitingSampling = 3,
    operationSampling = 4 {defaultSamplingProbability = 1, defaultLowerBoundTracesPerSecond = 2,
    perOperationStrategies = 3 {operation = 1, probabilisticSampling = 2},
    defaultUpperBoundTracesPerSecond = 4}.
    """
    out = [f_varint(1, strategy_type(response))]
    if "probabilisticSampling" in response:
        out.append(f_bytes(2, _probabilistic(response["probabilisticSampling"]), keep_empty=True))
    if "rateLimitingSampling" in response:
        limit = int(response["rateLimitingSampling"].get("maxTracesPerSecond", 0))
        out.append(f_bytes(3, f_varint(1, _int32(limit)), keep_empty=True))
    ops = response.get("operationSampling")
    if ops is not None:
        body = [_f_double(1, float(ops.get("defaultSamplingProbability", 0))),
                _f_double(2, float(ops.get("defaultLowerBoundTracesPerSecond", 0)))]
        for op in ops.get("perOperationStrategies", []):
            one = f_str(1, op.get("operation", "")) + f_bytes(
                2, _probabilistic(op.get("probabilisticSampling")), keep_empty=True)
            body.append(f_bytes(3, one, keep_empty=True))
        body.append(_f_double(4, float(ops.get("defaultUpperBoundTracesPerSecond", 0))))
        out.append(f_bytes(4, b"".join(body), keep_empty=True))
    return b"".join(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise DecodeError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def decode_parameters(buf: bytes) -> str:
    """``serviceName`` (field 1) of ``SamplingStrategyParameters`` bytes; unknown fields skipped."""
    pos, service = 0, ""
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise DecodeError("truncated length-delimited field")
            if number == 1:
                try:
                    service = buf[pos:pos + size].decode("utf-8")
                except UnicodeDecodeError:
                    raise DecodeError("serviceName is not valid UTF-8") from None
            pos += size
        else:
            raise DecodeError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise DecodeError("truncated field")
    return service


def grpc_handlers(sampling) -> dict:
    """``{service: {method: handler}}`` for the Jaeger gRPC server."""

    async def get_sampling_strategy(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            service = decode_parameters(request)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"request is not a valid jaeger.api_v2.SamplingStrategyParameters: {exc}")
        if not service:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "serviceName is required: the service whose sampling strategy to fetch")
        sampling.note_poll(service)
        return encode_response(sampling.strategy_for(service))

    method = grpc.unary_unary_rpc_method_handler(get_sampling_strategy, request_deserializer=None,
                                                 response_serializer=None)
    return {GRPC_SERVICE: {GRPC_METHOD: method}}


# ---- HTTP ---------------------------------------------------------------------------------------

def service_param(query: str) -> str | None:
    """The one non-empty ``service`` parameter of a query string, else None."""
    values = parse_qs(query, keep_blank_values=True).get("service", [])
    if len(values) != 1 or not values[0]:
        return None
    return values[0]


def handler(sampling):
    renderers = {b"/sampling": proto_json, b"/": legacy_json}

    async def handle(req: Request) -> Response:
        render = renderers.get(req.path)
        if render is None:
            return text(404, f"no such path {req.path.decode('latin-1')!r}; sampling strategies are "
                             "at /sampling?service=NAME")
        if req.method != b"GET":
            return text(405, f"use GET for {req.path.decode()}", [(b"Allow", b"GET")])
        _, _, query = req.url.partition(b"?")
        service = service_param(query.decode("utf-8", "replace"))
        if service is None:
            return text(400, MISSING_SERVICE)
        sampling.note_poll(service)
        body = json.dumps(render(sampling.strategy_for(service)), separators=(",", ":")).encode()
        return Response(200, _JSON, body)

    return handle


async def start(sampling, config: SamplingConfig, host: str) -> HttpListener:
    """Serve the remote-sampling HTTP endpoints on ``config.remote_port``."""
    return await listen(handler(sampling), _MAX_BODY, host, config.remote_port, "sampling.remote_port")
