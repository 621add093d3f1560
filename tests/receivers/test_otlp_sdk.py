"""Receive → store → query, end to end: the OpenTelemetry SDK's own exporters against ``clew serve``."""
from __future__ import annotations

import base64

import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from grpc import Compression as GrpcCompression

ATTRS = {
    "http.method": "POST", "http.status_code": 503, "retry": True, "ratio": 0.25,
    "big": 2**62, "negative": -17, "tags": ("a", "b"), "codes": (1, 2, 3),
    "flags": (True, False), "weights": (0.5, 1.5), "unicode": "π ≈ 3.14 ✓",
}


def make_exporter(server, transport: str):
    gzip = transport.endswith("gzip")
    if transport.startswith("grpc"):
        return GrpcExporter(endpoint=server.otlp_grpc, insecure=True,
                            compression=GrpcCompression.Gzip if gzip else GrpcCompression.NoCompression)
    return HttpExporter(endpoint=server.otlp_http,
                        compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression)


def any_value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, (tuple, list)):
        return {"arrayValue": {"values": [any_value(x) for x in v]}}
    raise TypeError(v)


def attrs_json(attrs) -> dict:
    return {k: any_value(v) for k, v in (attrs or {}).items()}


def got_attrs(items) -> dict:
    return {kv["key"]: kv["value"] for kv in items or []}


def emit(server, transport):
    exporter = make_exporter(server, transport)
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(
        {"service.name": "cart", "deployment.environment": "test", "host.cores": 4}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop.cart", "2.1.0")
    other = SpanContext(trace_id=0xABCDEF, span_id=0x1234, is_remote=True,
                        trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER, attributes=ATTRS) as root:
        root.add_event("cache-miss", {"key": "user:1", "size": 3, "hit": False})
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT,
                                          links=[Link(other, {"link.kind": "batch", "n": 2})]) as db:
            db.set_status(Status(StatusCode.ERROR, "timeout after 2s"))
            db.record_exception(ValueError("boom"))
        with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER):
            pass
    provider.shutdown()
    spans = memory.get_finished_spans()
    assert len(spans) == 3
    return spans, format(root.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("transport", ["grpc", "grpc-gzip", "http", "http-gzip"])
def test_sdk_spans_come_back_intact(server, transport):
    sent, trace_id = emit(server, transport)

    # --- Jaeger api_v3: OTLP/JSON, every field
    r = requests.get(server.url(f"/api/v3/traces/{trace_id}"))
    assert r.status_code == 200, r.text
    resource_spans = r.json()["result"]["resourceSpans"]
    assert len(resource_spans) == 1
    resource = got_attrs(resource_spans[0]["resource"]["attributes"])
    assert resource["service.name"] == {"stringValue": "cart"}
    assert resource["host.cores"] == {"intValue": "4"}
    scope_spans = resource_spans[0]["scopeSpans"]
    assert scope_spans[0]["scope"] == {"name": "shop.cart", "version": "2.1.0"}
    got = {s["spanId"]: s for ss in scope_spans for s in ss["spans"]}
    assert len(got) == 3
    for span in sent:
        ctx = span.get_span_context()
        g = got[format(ctx.span_id, "016x")]
        assert g["traceId"] == trace_id
        assert g["name"] == span.name
        assert g.get("parentSpanId", "") == (format(span.parent.span_id, "016x") if span.parent else "")
        assert g["kind"] == span.kind.value + 1  # SDK SpanKind is 0-based, OTLP has UNSPECIFIED = 0
        assert int(g["startTimeUnixNano"]) == span.start_time
        assert int(g["endTimeUnixNano"]) == span.end_time
        assert got_attrs(g.get("attributes")) == attrs_json(span.attributes)
        events = g.get("events", [])
        assert [(e["name"], int(e["timeUnixNano"]), got_attrs(e.get("attributes"))) for e in events] == \
            [(e.name, e.timestamp, attrs_json(e.attributes)) for e in span.events]
        links = g.get("links", [])
        assert [(l["traceId"], l["spanId"], got_attrs(l.get("attributes"))) for l in links] == \
            [(format(l.context.trace_id, "032x"), format(l.context.span_id, "016x"), attrs_json(l.attributes))
             for l in span.links]
        want_status = {} if span.status.status_code == StatusCode.UNSET else \
            {"code": 2, "message": span.status.description}
        assert g.get("status", {}) == want_status

    # --- Jaeger HTTP API (UI model)
    r = requests.get(server.url(f"/api/traces/{trace_id}"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] is None and len(body["data"]) == 1
    trace = body["data"][0]
    assert trace["traceID"] == trace_id
    assert [p["serviceName"] for p in trace["processes"].values()] == ["cart"]
    by_name = {s["operationName"]: s for s in trace["spans"]}
    root = next(s for s in sent if s.parent is None)
    assert by_name["checkout"]["startTime"] == root.start_time // 1000
    assert by_name["checkout"]["duration"] == root.end_time // 1000 - root.start_time // 1000 or \
        by_name["checkout"]["duration"] == (root.end_time - root.start_time) // 1000
    tags = {t["key"]: (t["type"], t["value"]) for t in by_name["checkout"]["tags"]}
    assert tags["http.status_code"] == ("int64", 503)
    assert tags["retry"] == ("bool", True)
    assert tags["ratio"] == ("float64", 0.25)
    assert tags["span.kind"] == ("string", "server")
    db = by_name["SELECT orders"]
    assert {"refType": "CHILD_OF", "traceID": trace_id, "spanID": format(root.context.span_id, "016x")} in db["references"]
    db_tags = {t["key"]: t["value"] for t in db["tags"]}
    assert db_tags["error"] is True and db_tags["otel.status_description"] == "timeout after 2s"
    assert [f["value"] for f in db["logs"][0]["fields"] if f["key"] == "event"] == ["exception"]


def test_unknown_and_malformed_ids(server):
    r = requests.get(server.url("/api/traces/" + "ab" * 16))
    assert r.status_code == 404 and r.json()["errors"][0]["msg"] == "trace not found"
    r = requests.get(server.url("/api/v3/traces/" + "ab" * 16))
    assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
    for bad in ("xyz", "0" * 33, "0"):
        r = requests.get(server.url(f"/api/traces/{bad}"))
        assert r.status_code == 400, bad
        assert r.json()["errors"][0]["msg"]
        r = requests.get(server.url(f"/api/v3/traces/{bad}"))
        assert r.status_code == 400 and r.json()["error"]["message"]
