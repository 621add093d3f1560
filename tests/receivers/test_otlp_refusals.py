"""Receive stage: every refusal through the real protocols — status, message, and the rest stored."""
from __future__ import annotations

import concurrent.futures
import gzip
import json

import grpc
import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PB = {"Content-Type": "application/x-protobuf"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
T0 = 1_700_000_000_000_000_000


def good_span(ss, trace: int, span: int, **kw):
    sp = ss.spans.add(trace_id=trace.to_bytes(16, "big"), span_id=span.to_bytes(8, "big"),
                      name=f"op-{span}", start_time_unix_nano=T0, end_time_unix_nano=T0 + 1000)
    for k, v in kw.items():
        setattr(sp, k, v)
    return sp


def request_with_bad_spans():
    """Two good spans and one bad span per rule, in one request."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
    ss = rs.scope_spans.add()
    good_span(ss, 0xA1, 1)
    good_span(ss, 0xA1, 2)
    good_span(ss, 0xA1, 3, trace_id=b"\x01" * 8)  # 8-byte trace ID: refused, not padded
    good_span(ss, 0xA1, 4, trace_id=b"\x00" * 16)
    good_span(ss, 0xA1, 5, span_id=b"\x01" * 4)
    good_span(ss, 0xA1, 6, span_id=b"\x00" * 8)
    good_span(ss, 0xA1, 7, parent_span_id=b"\x01" * 3)
    good_span(ss, 0xA1, 8, end_time_unix_nano=T0 - 1)
    big = good_span(ss, 0xA1, 9)
    big.attributes.add(key="blob", value=AnyValue(string_value="x" * 70_000))
    return req


REASONS = ["trace_id must be 16 bytes", "trace_id is all zeros", "span_id must be 8 bytes",
           "span_id is all zeros", "parent_span_id must be 8 bytes or empty",
           "end time is before start time", "span is larger than 65536 bytes"]


def stored_span_ids(server, trace: int) -> list[str]:
    r = requests.get(server.url(f"/api/v3/traces/{trace:032x}"))
    if r.status_code == 404:
        return []
    return sorted(s["spanId"] for rs in r.json()["result"]["resourceSpans"]
                  for ss in rs["scopeSpans"] for s in ss["spans"])


def check_partial(server, rejected: int, message: str):
    assert rejected == 7
    for reason in REASONS:
        assert reason in message, (reason, message)
    assert stored_span_ids(server, 0xA1) == [f"{1:016x}", f"{2:016x}"]


def test_http_protobuf_partial_success(server):
    r = requests.post(server.otlp_http, data=request_with_bad_spans().SerializeToString(), headers=PB)
    assert r.status_code == 200
    resp = ExportTraceServiceResponse.FromString(r.content)
    check_partial(server, resp.partial_success.rejected_spans, resp.partial_success.error_message)


def test_http_json_partial_success(server):
    from google.protobuf import json_format
    doc = json_format.MessageToDict(request_with_bad_spans())
    # OTLP/JSON wants hex IDs; the dict from protobuf has base64.
    import base64
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex().upper()
    r = requests.post(server.otlp_http, data=json.dumps(doc), headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    partial = r.json()["partialSuccess"]
    check_partial(server, int(partial["rejectedSpans"]), partial["errorMessage"])


def test_grpc_partial_success(server):
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        export = channel.unary_unary(EXPORT)
        raw = export(request_with_bad_spans().SerializeToString(), timeout=10)
    resp = ExportTraceServiceResponse.FromString(raw)
    check_partial(server, resp.partial_success.rejected_spans, resp.partial_success.error_message)


def test_full_success_has_no_partial_success(server):
    req = ExportTraceServiceRequest()
    good_span(req.resource_spans.add().scope_spans.add(), 0xB1, 1)
    r = requests.post(server.otlp_http, data=req.SerializeToString(), headers=PB)
    assert r.status_code == 200
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")


def status_message(r) -> str:
    if r.headers.get("Content-Type") == "application/json":
        return r.json()["message"]
    return status_pb2.Status.FromString(r.content).message


def test_http_bodies_that_are_not_otlp(server):
    r = requests.post(server.otlp_http, data=b"\x0a\x05abc", headers=PB)
    assert r.status_code == 400
    assert "not a valid OTLP protobuf" in status_message(r) and "overruns" in status_message(r)
    r = requests.post(server.otlp_http, data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "invalid JSON" in status_message(r)
    r = requests.post(server.otlp_http, data=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "text/plain" in status_message(r)
    r = requests.post(server.otlp_http, data=b"not gzip", headers={**PB, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in status_message(r)
    r = requests.post(server.otlp_http, data=b"", headers={**PB, "Content-Encoding": "br"})
    assert r.status_code == 415 and "br" in status_message(r)
    r = requests.get(server.otlp_http)
    assert r.status_code == 405
    r = requests.post(server.otlp_http.replace("/v1/traces", "/v1/logs"), data=b"", headers=PB)
    assert r.status_code == 404
    # The server still serves after all of that.
    req = ExportTraceServiceRequest()
    good_span(req.resource_spans.add().scope_spans.add(), 0xC1, 1)
    assert requests.post(server.otlp_http, data=req.SerializeToString(), headers=PB).status_code == 200
    assert stored_span_ids(server, 0xC1) == [f"{1:016x}"]


def test_grpc_garbage_is_invalid_argument(server):
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        export = channel.unary_unary(EXPORT)
        with pytest.raises(grpc.RpcError) as err:
            export(b"\x0a\x05abc", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "overruns its message" in err.value.details()


def test_oversized_bodies(server_factory):
    server = server_factory("otlp.max_body_bytes=4096")
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(1, 200):
        good_span(ss, 0xD1, i)
    body = req.SerializeToString()
    assert len(body) > 4096
    r = requests.post(server.otlp_http, data=body, headers=PB)
    assert r.status_code == 413 and "otlp.max_body_bytes" in status_message(r)
    # A small gzip body that inflates past the limit is refused too.
    bomb = gzip.compress(b"\x00" * 100_000)
    assert len(bomb) < 4096
    r = requests.post(server.otlp_http, data=bomb, headers={**PB, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in status_message(r)
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(EXPORT)(body, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # What fits is still taken.
    small = ExportTraceServiceRequest()
    good_span(small.resource_spans.add().scope_spans.add(), 0xD2, 1)
    assert requests.post(server.otlp_http, data=small.SerializeToString(), headers=PB).status_code == 200


def test_trace_over_the_span_limit_keeps_its_first_spans(server_factory):
    server = server_factory("limits.max_spans_per_trace=50")
    for first in (1, 41):  # 40 spans, then 40 more: 10 fit, 30 are refused
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for i in range(first, first + 40):
            good_span(ss, 0xE1, i)
        r = requests.post(server.otlp_http, data=req.SerializeToString(), headers=PB)
        assert r.status_code == 200
        partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 30
    assert "more than 50 spans" in partial.error_message
    assert stored_span_ids(server, 0xE1) == [f"{i:016x}" for i in range(1, 51)]


def test_busy_answers_429_and_every_acknowledged_span_is_stored(server_factory):
    server = server_factory("ingest.max_queued_spans=1", "ingest.retry_after_s=2")

    def send(n: int):
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for i in range(1, 2001):
            good_span(ss, 0xF000 + n, i)
        return n, requests.post(server.otlp_http, data=req.SerializeToString(), headers=PB)

    busy, ok = [], []
    for _round in range(10):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for n, r in pool.map(send, range(len(ok) + len(busy), len(ok) + len(busy) + 16)):
                (ok if r.status_code == 200 else busy).append((n, r))
        if busy:
            break
    assert busy, "a queue bound of one span never answered busy"
    for _n, r in busy:
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "2"
        assert "ingest.max_queued_spans" in status_message(r)
    for n, _r in ok:
        assert len(stored_span_ids(server, 0xF000 + n)) == 2000
    for n, _r in busy:
        assert stored_span_ids(server, 0xF000 + n) == []
    metrics = requests.get(server.url("/metrics")).text
    assert 'clew_ingest_requests_total{outcome="busy",protocol="otlp_http"}' in metrics


def test_grpc_busy_is_resource_exhausted(server_factory):
    server = server_factory("ingest.max_queued_spans=1")

    def body(n: int) -> bytes:
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for i in range(1, 2001):
            good_span(ss, 0x7000 + n, i)
        return req.SerializeToString()

    bodies = [body(n) for n in range(16)]
    codes = []
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        export = channel.unary_unary(EXPORT)
        for _round in range(10):
            calls = [export.future(b, timeout=30) for b in bodies]
            for call in calls:
                try:
                    call.result()
                    codes.append((grpc.StatusCode.OK, ""))
                except grpc.RpcError as err:
                    codes.append((err.code(), err.details()))
            if any(c != grpc.StatusCode.OK for c, _ in codes):
                break
    busy = [d for c, d in codes if c != grpc.StatusCode.OK]
    assert busy, "a queue bound of one span never answered busy"
    assert all(c in (grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED) for c, _ in codes)
    assert all("ingest.max_queued_spans" in d for d in busy)
