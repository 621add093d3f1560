"""Test traffic for the sampling tests: deterministic trace IDs, OTLP requests built with the
OpenTelemetry protobuf schema, and the specification's sampling rule written out independently of
collector/sampling/consistent.py (the outside judge of which traces a rate keeps)."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from conftest import otlp_attributes


def trace_id(i: int, salt: str = "") -> bytes:
    """A deterministic, well-spread 16-byte trace ID."""
    return hashlib.sha256(f"{salt}trace-{i}".encode()).digest()[:16]


def spec_keeps(tid: bytes, p: float, rv: int | None = None) -> bool:
    """OpenTelemetry probability sampling: R = the trace ID's last 56 bits (or the explicit
    randomness), T = 2^56 - round(p * 2^56); kept when R >= T."""
    r = int.from_bytes(tid[9:], "big") if rv is None else rv
    return r >= (1 << 56) - round(p * (1 << 56))


@dataclass
class Span:
    trace: bytes
    span: int
    name: str = "op"
    service: str = "svc"
    parent: int = 0
    error: bool = False
    duration_ms: float = 1.0
    start_offset_ms: float = 0.0
    attrs: dict = field(default_factory=dict)
    tracestate: str = ""
    at_ns: int = 0  # start time; 0: when the request is built


def request_bytes(spans: list[Span]) -> bytes:
    req = ExportTraceServiceRequest()
    by_service: dict[str, object] = {}
    now = time.time_ns()
    for s in spans:
        scope = by_service.get(s.service)
        if scope is None:
            rs = req.resource_spans.add()
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = "service.name", s.service
            scope = by_service[s.service] = rs.scope_spans.add()
        sp = scope.spans.add()
        sp.trace_id = s.trace
        sp.span_id = s.span.to_bytes(8, "big")
        if s.parent:
            sp.parent_span_id = s.parent.to_bytes(8, "big")
        sp.name = s.name
        sp.kind = 2 if not s.parent else 3
        sp.start_time_unix_nano = (s.at_ns or now) + int(s.start_offset_ms * 1e6)
        sp.end_time_unix_nano = sp.start_time_unix_nano + int(s.duration_ms * 1e6)
        if s.error:
            sp.status.code = 2
        if s.tracestate:
            sp.trace_state = s.tracestate
        sp.attributes.extend(otlp_attributes(s.attrs))
    return req.SerializeToString()


def send(server, spans: list[Span], session: requests.Session | None = None) -> None:
    """POST the spans as one OTLP/HTTP protobuf request; fails the test unless it is accepted."""
    http = session or requests
    r = http.post(server.otlp_http, data=request_bytes(spans),
                  headers={"Content-Type": "application/x-protobuf"}, timeout=60)
    assert r.status_code == 200, r.text


def stored_ids(server, service: str, limit: int = 10_000, lookback: str = "1h") -> set[str]:
    """Trace IDs (32 hex) the Jaeger search API finds for ``service``."""
    r = requests.get(server.url("/api/v3/traces"), params={
        "query.service_name": service, "query.search_depth": limit,
        "query.start_time_min": _rfc3339(time.time() - 3600),
        "query.start_time_max": _rfc3339(time.time() + 3600)}, timeout=60)
    if r.status_code == 404:  # api_v3 answers "No traces found" so
        return set()
    assert r.status_code == 200, r.text
    out = set()
    for rs in r.json()["result"]["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                out.add(sp["traceId"])
    return out


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def by_id(server, tid: bytes) -> int:
    """How many spans trace-by-ID returns (0 when it is not found)."""
    r = requests.get(server.url(f"/api/traces/{tid.hex()}"), timeout=30)
    if r.status_code == 404:
        return 0
    assert r.status_code == 200, r.text
    return len(r.json()["data"][0]["spans"])


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
