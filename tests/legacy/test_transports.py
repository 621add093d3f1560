"""Receive → store → query for every Jaeger and Zipkin transport, driven by the real legacy clients.

One logical trace (the driver's) goes in through OTLP and through each transport; each copy is
read back through ``/api/traces/{id}`` and must show the same services, operations, parent/child
structure, times (µs), attributes (typed where the protocol has types), events and error status.
"""
from __future__ import annotations

import json
import time

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from legacy.driver import DEFAULT_SPEC, build_trace

# exporter → how to reach it on a running server
ENDPOINTS = {
    "jaeger-thrift-udp": lambda s: s.addr("jaeger_compact"),
    "jaeger-thrift-http": lambda s: s.http("jaeger_http", "/api/traces"),
    "jaeger-grpc": lambda s: s.addr("jaeger_grpc"),
    "zipkin-json": lambda s: s.http("zipkin", "/api/v2/spans"),
    "zipkin-json-v1": lambda s: s.http("zipkin", "/api/v1/spans"),
    "zipkin-proto": lambda s: s.http("zipkin", "/api/v2/spans"),
}
TYPED = {"otlp", "jaeger-thrift-udp", "jaeger-thrift-http", "jaeger-grpc"}  # Zipkin tags are strings


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import Server

    srv = Server(tmp_path_factory.mktemp("transports") / "data").start()
    yield srv
    srv.stop()


def fetch(server, trace_id: str, spans: int, timeout: float = 15.0) -> dict:
    """The trace in the Jaeger UI model, once all its spans are stored (UDP is not acknowledged)."""
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        r = requests.get(server.url(f"/api/traces/{trace_id}"))
        if r.status_code == 200:
            body = r.json()["data"][0]
            if len(body["spans"]) >= spans:
                return body
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} not complete after {timeout}s: {body}")


def scalar(value):
    """Zipkin carries every tag as a string; compare in that form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def view(trace: dict, sent: dict, typed: bool) -> dict:
    """What a user sees, per operation name."""
    by_id = {s["spanID"]: s for s in trace["spans"]}
    out = {}
    for s in trace["spans"]:
        tags = {}
        for t in s["tags"]:
            tags.setdefault(t["key"], t["value"])
        want_keys = sent[s["operationName"]]["attributes"]
        parents = [by_id[r["spanID"]]["operationName"] for r in s["references"]
                   if r["refType"] == "CHILD_OF" and r["spanID"] in by_id]
        attrs = {}
        for key, value in want_keys.items():
            if isinstance(value, list):
                attrs[key] = key in tags  # arrays: present (their encoding differs per protocol)
            elif typed:
                attrs[key] = tags.get(key)
            else:
                attrs[key] = scalar(tags[key]) if key in tags else None
        out[s["operationName"]] = {
            "service": trace["processes"][s["processID"]]["serviceName"],
            "parent": parents[0] if parents else None,
            "start_us": s["startTime"],
            "duration_us": s["duration"],
            # as the Jaeger UI decides: any `error` tag that is true (a Zipkin client may also
            # send `error` with a message, which stays a string tag)
            "error": any(t["key"] == "error" and t["value"] in (True, "true") for t in s["tags"]),
            "events": len(s["logs"]),
            "attrs": attrs,
        }
    return out


def expected(sent: dict, typed: bool) -> dict:
    names = {s["span_id"]: s["name"] for s in sent["spans"]}
    out = {}
    for s in sent["spans"]:
        attrs = {}
        for key, value in s["attributes"].items():
            if isinstance(value, list):
                attrs[key] = True
            else:
                attrs[key] = value if typed else scalar(value)
        out[s["name"]] = {
            "service": sent["service"],
            "parent": names.get(s["parent_span_id"]),
            "start_us": s["start_ns"] // 1000,
            "duration_us": (s["end_ns"] - s["start_ns"]) // 1000,
            "error": s["status"]["code"] == "ERROR",
            "events": len(s["events"]),
            "attrs": attrs,
        }
    return out


def close_enough(got: dict, want: dict) -> None:
    """Equal, except times may differ by 1 µs (µs truncation of start and end separately)."""
    assert got.keys() == want.keys()
    for name in want:
        g, w = dict(got[name]), dict(want[name])
        assert abs(g.pop("start_us") - w.pop("start_us")) <= 1, name
        assert abs(g.pop("duration_us") - w.pop("duration_us")) <= 1, name
        assert g == w, name


def sent_by_name(sent: dict) -> dict:
    return {s["name"]: s for s in sent["spans"]}


def test_otlp_reference(server):
    """The same logical trace through OTLP, with today's SDK: the baseline the others must match."""
    spans = build_trace(DEFAULT_SPEC)
    assert OTLPSpanExporter(endpoint=server.otlp_http).export(spans).name == "SUCCESS"
    sent = {"service": DEFAULT_SPEC["service"], "spans": [{
        "span_id": f"{s.context.span_id:016x}",
        "parent_span_id": f"{s.parent.span_id:016x}" if s.parent else "",
        "name": s.name, "start_ns": s.start_time, "end_ns": s.end_time,
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in s.attributes.items()},
        "events": [e.name for e in s.events], "status": {"code": s.status.status_code.name},
    } for s in spans]}
    trace = fetch(server, f"{spans[0].context.trace_id:032x}", len(spans))
    close_enough(view(trace, sent_by_name(sent), True), expected(sent, True))


@pytest.mark.parametrize("exporter", list(ENDPOINTS))
def test_legacy_client_trace_reads_back_the_same(server, run_driver, exporter):
    sent = run_driver(exporter, ENDPOINTS[exporter](server))
    typed = exporter in TYPED
    trace = fetch(server, sent["trace_id"], len(sent["spans"]))
    assert trace["traceID"] == sent["trace_id"]
    close_enough(view(trace, sent_by_name(sent), typed), expected(sent, typed))
