"""Test harness: emits one known trace with a real legacy Jaeger or Zipkin exporter (run by .venv-legacy).

Usage (with the legacy environment's python; this script imports nothing from Clew)::

    python driver.py --exporter jaeger-thrift-udp --endpoint 127.0.0.1:6831
    python driver.py --exporter jaeger-thrift-http --endpoint http://127.0.0.1:14268/api/traces
    python driver.py --exporter jaeger-grpc --endpoint 127.0.0.1:14250
    python driver.py --exporter zipkin-json --endpoint http://127.0.0.1:9411/api/v2/spans
    python driver.py --exporter zipkin-json-v1 --endpoint http://127.0.0.1:9411/api/v1/spans
    python driver.py --exporter zipkin-proto --endpoint http://127.0.0.1:9411/api/v2/spans

The trace is built with the SDK (so the exporter translates real SDK spans), collected in
memory, then handed to the exporter in one ``export`` call: one UDP datagram, one HTTP POST or
one gRPC call.  Stdout gets one JSON document describing what was sent (see ``describe``);
the exit status is 0 only if the exporter reported success.  ``--trace-file spec.json`` replaces
the built-in trace (same shape as ``DEFAULT_SPEC``; IDs default to random, times to now).
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import warnings

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

EXPORTERS = ("jaeger-thrift-udp", "jaeger-thrift-http", "jaeger-grpc",
             "zipkin-json", "zipkin-json-v1", "zipkin-proto")

# How far a time a receiver gets may be from the time the SDK recorded (|got - sent| < this).
# Thrift and Zipkin carry microseconds (truncated).  api_v2 carries nanoseconds, but the 1.21.0
# gRPC exporter converts them through a float (ns / 1e9), so they arrive up to ~250 ns off.
TIME_TOLERANCE_NS = {"jaeger-thrift-udp": 1000, "jaeger-thrift-http": 1000, "jaeger-grpc": 1000,
                     "zipkin-json": 1000, "zipkin-json-v1": 1000, "zipkin-proto": 1000}

# Offsets are nanoseconds after the trace's base time (now, unless the spec gives "base_ns").
DEFAULT_SPEC = {
    "service": "legacy-shop",
    "resource": {"deployment.environment": "test", "host.name": "legacy-host"},
    "spans": [
        {"key": "root", "name": "GET /checkout", "kind": "SERVER",
         "start_offset_ns": 0, "duration_ns": 250_000_123,
         "attributes": {"http.method": "GET", "http.route": "/checkout", "http.status_code": 500,
                        "retry.enabled": True, "sample.ratio": 0.25},
         "status": {"code": "ERROR", "message": "payment declined"}},
        {"key": "db", "parent": "root", "name": "SELECT orders", "kind": "CLIENT",
         "start_offset_ns": 10_000_456, "duration_ns": 40_000_789,
         "attributes": {"db.system": "postgresql", "db.statement": "SELECT * FROM orders",
                        "net.peer.port": 5432},
         "events": [{"name": "retry", "offset_ns": 20_000_000,
                     "attributes": {"attempt": 2, "reason": "timeout"}}]},
        {"key": "render", "parent": "root", "name": "render receipt", "kind": "INTERNAL",
         "start_offset_ns": 60_000_000, "duration_ns": 5_000_000,
         "attributes": {"template": "receipt.html", "tags": ["a", "b"]},
         "links": [{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
                    "attributes": {"link.kind": "batch"}}],
         "status": {"code": "OK"}},
        {"key": "publish", "parent": "root", "name": "publish receipt", "kind": "PRODUCER",
         "start_offset_ns": 70_000_000, "duration_ns": 1_000_000,
         "attributes": {"messaging.system": "kafka"}},
    ],
}


class _FixedIds(IdGenerator):
    """Hands out the trace ID and span IDs the spec chose, in span order."""

    def __init__(self, trace_id: int, span_ids: list):
        self.trace_id = trace_id
        self.span_ids = list(span_ids)

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_ids.pop(0)


class _FailureLog(logging.Handler):
    """Catches the error logs of exporters that log a failed upload but still return SUCCESS
    (the Jaeger Thrift HTTP exporter does)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _exporter(name: str, endpoint: str, timeout: int):
    if name == "jaeger-thrift-udp":
        from opentelemetry.exporter.jaeger.thrift import JaegerExporter
        host, _, port = endpoint.rpartition(":")
        return JaegerExporter(agent_host_name=host, agent_port=int(port))
    if name == "jaeger-thrift-http":
        from opentelemetry.exporter.jaeger.thrift import JaegerExporter
        return JaegerExporter(collector_endpoint=endpoint, timeout=timeout)
    if name == "jaeger-grpc":
        from opentelemetry.exporter.jaeger.proto.grpc import JaegerExporter
        return JaegerExporter(collector_endpoint=endpoint, insecure=True, timeout=timeout)
    if name in ("zipkin-json", "zipkin-json-v1"):
        from opentelemetry.exporter.zipkin.encoder import Protocol
        from opentelemetry.exporter.zipkin.json import ZipkinExporter
        if name == "zipkin-json-v1":
            # 1.21.0's V1 encoder compares max_tag_value_length with 0 even when it is None (the
            # default) and raises TypeError: give it a limit no test value reaches.
            return ZipkinExporter(version=Protocol.V1, endpoint=endpoint, local_node_ipv4="192.0.2.7",
                                  local_node_port=8080, max_tag_value_length=65536, timeout=timeout)
        return ZipkinExporter(version=Protocol.V2, endpoint=endpoint, local_node_ipv4="192.0.2.7",
                              local_node_port=8080, timeout=timeout)
    if name == "zipkin-proto":
        from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter
        return ZipkinExporter(endpoint=endpoint, local_node_ipv4="192.0.2.7", local_node_port=8080,
                              timeout=timeout)
    raise SystemExit(f"unknown exporter {name!r}; one of {', '.join(EXPORTERS)}")


def _value(v):
    return list(v) if isinstance(v, tuple) else v


def _attrs(attributes) -> dict:
    return {k: _value(v) for k, v in (attributes or {}).items()}


def describe(spans, name: str, endpoint: str, result: str) -> dict:
    """What was sent, as JSON: IDs in lower-case hex, times in ns, kinds and status by name."""
    first = spans[0]
    return {
        "exporter": name,
        "endpoint": endpoint,
        "result": result,
        "time_tolerance_ns": TIME_TOLERANCE_NS[name],
        "trace_id": f"{first.context.trace_id:032x}",
        "service": first.resource.attributes.get("service.name"),
        "resource": _attrs(first.resource.attributes),
        "spans": [{
            "span_id": f"{s.context.span_id:016x}",
            "parent_span_id": f"{s.parent.span_id:016x}" if s.parent else "",
            "name": s.name,
            "kind": s.kind.name,
            "start_ns": s.start_time,
            "end_ns": s.end_time,
            "attributes": _attrs(s.attributes),
            "events": [{"name": e.name, "time_ns": e.timestamp, "attributes": _attrs(e.attributes)}
                       for e in s.events],
            "links": [{"trace_id": f"{ln.context.trace_id:032x}",
                       "span_id": f"{ln.context.span_id:016x}", "attributes": _attrs(ln.attributes)}
                      for ln in s.links],
            "status": {"code": s.status.status_code.name, "message": s.status.description or ""},
        } for s in spans],
    }


def build_trace(spec: dict) -> list:
    """Record the spec's spans with the SDK; returns the finished ReadableSpans in spec order."""
    rnd = random.SystemRandom()
    trace_id = int(spec["trace_id"], 16) if spec.get("trace_id") else rnd.getrandbits(128) or 1
    specs = spec["spans"]
    span_ids = [int(s["span_id"], 16) if s.get("span_id") else rnd.getrandbits(64) or 1 for s in specs]
    base = int(spec.get("base_ns") or time.time_ns())
    resource = Resource.create({**spec.get("resource", {}), "service.name": spec["service"]})
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, id_generator=_FixedIds(trace_id, span_ids))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("clew.legacy.driver", "1.0")
    by_key = {}
    for s, span_id in zip(specs, span_ids):
        parent = by_key.get(s.get("parent"))
        ctx = None
        if parent is not None:
            ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(
                trace_id, parent, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
        start = int(s["start_ns"]) if "start_ns" in s else base + int(s.get("start_offset_ns", 0))
        end = int(s["end_ns"]) if "end_ns" in s else start + int(s.get("duration_ns", 1_000_000))
        links = [Link(SpanContext(int(ln["trace_id"], 16), int(ln["span_id"], 16), is_remote=True,
                                  trace_flags=TraceFlags(TraceFlags.SAMPLED)), ln.get("attributes"))
                 for ln in s.get("links", ())]
        span = tracer.start_span(s["name"], context=ctx, kind=SpanKind[s.get("kind", "INTERNAL")],
                                 attributes=s.get("attributes"), links=links, start_time=start)
        for ev in s.get("events", ()):
            when = int(ev["time_ns"]) if "time_ns" in ev else base + int(ev.get("offset_ns", 0))
            span.add_event(ev["name"], ev.get("attributes"), timestamp=when)
        if s.get("status"):
            code = StatusCode[s["status"]["code"]]
            span.set_status(Status(code, s["status"].get("message") if code is StatusCode.ERROR else None))
        span.end(end_time=end)
        by_key[s.get("key", s["name"])] = span_id
    provider.shutdown()  # flushes the in-memory processor: every span is finished and recorded
    finished = {sp.context.span_id: sp for sp in memory.get_finished_spans()}
    return [finished[i] for i in span_ids]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exporter", required=True, choices=EXPORTERS)
    ap.add_argument("--endpoint", required=True,
                    help="host:port (jaeger-thrift-udp, jaeger-grpc) or a URL (HTTP exporters)")
    ap.add_argument("--trace-file", help="JSON trace spec; default: the built-in trace")
    ap.add_argument("--timeout", type=int, default=10, help="seconds, for exporters that take one")
    args = ap.parse_args(argv)
    spec = DEFAULT_SPEC
    if args.trace_file:
        with open(args.trace_file) as fh:
            spec = json.load(fh)
    # The Jaeger exporters are deprecated (that is why they need this environment): keep stderr quiet.
    warnings.simplefilter("ignore", DeprecationWarning)
    failures = _FailureLog()
    logging.getLogger("opentelemetry").addHandler(failures)
    spans = build_trace(spec)
    exporter = _exporter(args.exporter, args.endpoint, args.timeout)
    try:
        result = exporter.export(spans)
    finally:
        exporter.shutdown()
    ok = result is SpanExportResult.SUCCESS and not failures.messages
    out = describe(spans, args.exporter, args.endpoint, "SUCCESS" if ok else "FAILURE")
    if failures.messages:
        out["errors"] = failures.messages
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if not ok:
        print(f"driver: {args.exporter} export to {args.endpoint} failed: {result.name} "
              f"{failures.messages}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
