"""Decode stage: the Jaeger model → OTLP mapping (collector.codec.jaeger), checked with protobuf's parser."""
from __future__ import annotations

import base64
import json
import struct
from datetime import datetime

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.codec.jaeger import JLog, JProcess, JRef, JSpan, JTag, batch_to_otlp
from conftest import CONFORMANCE

FIXTURES = CONFORMANCE / "jaeger" / "thrift-conversion"
PAIRS = sorted(p.name[len("thrift_batch_"):-len(".json")] for p in FIXTURES.glob("thrift_batch_*.json"))
S, D, B, L, BIN = range(5)
VTYPES = {"STRING": S, "DOUBLE": D, "BOOL": B, "LONG": L, "BINARY": BIN}
TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
OTHER_TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("00f067aa0ba902b7")
PARENT = bytes.fromhex("00f067aa0ba902b8")
OTHER = bytes.fromhex("b7ad6b7169203331")


# --- the thrift_batch JSON (Jaeger Thrift Batch as JSON) → neutral model -------------------------

def i64(v) -> bytes:
    return struct.pack(">q", int(v or 0))


def tag_from_json(t: dict) -> JTag:
    vt = VTYPES[t.get("vType", "STRING")]
    value = {S: t.get("vStr", ""), D: float(t.get("vDouble", 0.0)), B: bool(t.get("vBool", False)),
             L: int(t.get("vLong", 0)), BIN: base64.b64decode(t.get("vBinary", ""))}[vt]
    return JTag(t["key"], vt, value)


def model_from_json(batch: dict):
    proc = batch.get("process")
    process = None if proc is None else JProcess(proc.get("serviceName", ""),
                                                 [tag_from_json(t) for t in proc.get("tags") or []])
    spans = []
    for s in batch.get("spans", []):
        spans.append(JSpan(
            i64(s.get("traceIdHigh")) + i64(s.get("traceIdLow")), i64(s.get("spanId")),
            i64(s.get("parentSpanId")), s.get("operationName", ""),
            [JRef({"CHILD_OF": 0, "FOLLOWS_FROM": 1}[r.get("refType", "CHILD_OF")],
                  i64(r.get("traceIdHigh")) + i64(r.get("traceIdLow")), i64(r.get("spanId")))
             for r in s.get("references") or []],
            int(s.get("flags", 0)), int(s.get("startTime", 0)) * 1000, int(s.get("duration", 0)) * 1000,
            [tag_from_json(t) for t in s.get("tags") or []],
            [JLog(int(lg["timestamp"]) * 1000, [tag_from_json(t) for t in lg.get("fields") or []])
             for lg in s.get("logs") or []],
            None))
    return process, spans


# --- expectations from the api_v2 domain JSON ----------------------------------------------------

def _us(rfc3339: str) -> int:
    dt = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _domain_value(kv: dict):
    vt = kv.get("vType", "STRING")
    if vt == "STRING":
        return ("string_value", kv.get("vStr", ""))
    if vt == "BOOL":
        return ("bool_value", kv.get("vBool", False))
    if vt == "INT64":
        return ("int_value", int(kv.get("vInt64", 0)))
    if vt == "FLOAT64":
        return ("double_value", float(kv.get("vFloat64", 0.0)))
    return ("bytes_value", base64.b64decode(kv.get("vBinary", "")))


def _otlp_value(v):
    which = v.WhichOneof("value")
    return (which, getattr(v, which))


KINDS = {"client": 3, "server": 2, "producer": 4, "consumer": 5, "internal": 1}


def expected_domain_span(d: dict) -> dict:
    """An api_v2 span mapped by the rules of collector.codec.jaeger (the fixtures use no status tags)."""
    trace_id = base64.b64decode(d["traceId"])
    attrs, kind = [], 0
    for kv in d.get("tags") or []:
        if kv["key"] == "span.kind":
            kind = KINDS.get(kv.get("vStr", ""), 0)
            continue
        attrs.append((kv["key"], _domain_value(kv)))
    refs = d.get("references") or []
    # The domain model has no parent field: as Jaeger's Span.ParentSpanID(), the first CHILD_OF
    # reference in the same trace, else the first FOLLOWS_FROM one, is the parent.
    same = [r for r in refs if base64.b64decode(r["traceId"]) == trace_id]
    ordered = [r for r in same if r.get("refType", "CHILD_OF") == "CHILD_OF"] + \
              [r for r in same if r.get("refType") == "FOLLOWS_FROM"]
    parent = base64.b64decode(ordered[0]["spanId"]) if ordered else b""
    links = [(base64.b64decode(r["traceId"]), base64.b64decode(r["spanId"]),
              "child_of" if r.get("refType", "CHILD_OF") == "CHILD_OF" else "follows_from")
             for r in refs
             if not (r.get("refType", "CHILD_OF") == "CHILD_OF" and base64.b64decode(r["spanId"]) == parent)]
    events = []
    for lg in d.get("logs") or []:
        name, ev_attrs = "", []
        for kv in lg.get("fields") or []:
            if kv["key"] == "event" and kv.get("vType", "STRING") == "STRING":
                name = kv["vStr"]
            else:
                ev_attrs.append((kv["key"], _domain_value(kv)))
        events.append((_us(lg["timestamp"]) * 1000, name, ev_attrs))
    dur_ns = int(d["duration"].rstrip("ns"))
    start_ns = _us(d["startTime"]) * 1000
    proc = d.get("process") or {}
    resource = [("service.name", ("string_value", proc["serviceName"]))] if proc.get("serviceName") else []
    moved = []
    for kv in proc.get("tags") or []:
        if kv["key"] == "hostname":
            moved.append(("host.name", _domain_value(kv)))
        elif kv["key"] == "jaeger.version":
            moved.append(("opencensus.exporterversion", ("string_value", "Jaeger-" + kv["vStr"])))
        else:
            resource.append((kv["key"], _domain_value(kv)))
    return dict(trace_id=trace_id, span_id=base64.b64decode(d["spanId"]), parent=parent,
                name=d.get("operationName", ""), kind=kind, start=start_ns, end=start_ns + dur_ns,
                attrs=attrs, links=links, events=events, resource=resource + moved)


def otlp_spans(body: bytes) -> list:
    """Each span of an OTLP request as a dict comparable with expected_domain_span()."""
    req = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in req.resource_spans:
        resource = [(kv.key, _otlp_value(kv.value)) for kv in rs.resource.attributes]
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(dict(
                    trace_id=sp.trace_id, span_id=sp.span_id, parent=sp.parent_span_id, name=sp.name,
                    kind=sp.kind, start=sp.start_time_unix_nano, end=sp.end_time_unix_nano,
                    attrs=[(kv.key, _otlp_value(kv.value)) for kv in sp.attributes],
                    links=[(ln.trace_id, ln.span_id,
                            {kv.key: kv.value.string_value for kv in ln.attributes}["opentracing.ref_type"])
                           for ln in sp.links],
                    events=[(ev.time_unix_nano, ev.name, [(kv.key, _otlp_value(kv.value)) for kv in ev.attributes])
                            for ev in sp.events],
                    resource=resource))
    return out


def check_against_domain(body: bytes, name: str) -> None:
    """OTLP bytes translated from thrift_batch_<name> must match domain_<name> under the mapping."""
    domain = json.loads((FIXTURES / f"domain_{name}.json").read_text())["spans"]
    assert otlp_spans(body) == [expected_domain_span(d) for d in domain]


@pytest.mark.parametrize("name", PAIRS)
def test_thrift_conversion_fixtures(name):
    batch = json.loads((FIXTURES / f"thrift_batch_{name}.json").read_text())
    check_against_domain(batch_to_otlp(*model_from_json(batch)), name)


def test_fixture_pairs_present():
    assert len(PAIRS) >= 2


# --- rule by rule -----------------------------------------------------------------------------

def span(tags=(), refs=(), logs=(), parent=b"", process=None, flags=1, span_id=SPAN, trace_id=TRACE,
         name="op", start=1_700_000_000_000_000_000, duration=1_500_000) -> JSpan:
    return JSpan(trace_id, span_id, parent, name, list(refs), flags, start, duration, list(tags),
                 list(logs), process)


def one(tags=(), **kw):
    req = ExportTraceServiceRequest.FromString(batch_to_otlp(JProcess("svc", []), [span(tags, **kw)]))
    (rs,) = req.resource_spans
    (ss,) = rs.scope_spans
    (sp,) = ss.spans
    return sp


def attrs(sp) -> dict:
    return {kv.key: _otlp_value(kv.value) for kv in sp.attributes}


def test_times_ids_and_sampled_flag():
    sp = one(start=5000, duration=7000, flags=3)
    assert (sp.trace_id, sp.span_id, sp.parent_span_id) == (TRACE, SPAN, b"")
    assert (sp.start_time_unix_nano, sp.end_time_unix_nano, sp.flags) == (5000, 12000, 1)
    assert one(flags=2).flags == 0


@pytest.mark.parametrize("value,kind", [("client", 3), ("server", 2), ("producer", 4), ("consumer", 5),
                                        ("internal", 1), ("other", 0)])
def test_span_kind(value, kind):
    sp = one([JTag("span.kind", S, value), JTag("a", L, 1)])
    assert sp.kind == kind and attrs(sp) == {"a": ("int_value", 1)}


def test_typed_tags_and_duplicates():
    sp = one([JTag("s", S, "x"), JTag("d", D, 0.5), JTag("b", B, True), JTag("l", L, -3),
              JTag("bin", BIN, b"\x00\xff"), JTag("s", S, "y")])
    assert [kv.key for kv in sp.attributes] == ["s", "d", "b", "l", "bin"]
    assert attrs(sp) == {"s": ("string_value", "y"), "d": ("double_value", 0.5), "b": ("bool_value", True),
                         "l": ("int_value", -3), "bin": ("bytes_value", b"\x00\xff")}


@pytest.mark.parametrize("tags,code,message,left", [
    ([JTag("error", B, True)], 2, "", {}),
    ([JTag("error", S, "true")], 2, "", {}),
    ([JTag("error", B, False)], 0, "", {"error": ("bool_value", False)}),
    ([JTag("error", S, "yes")], 0, "", {"error": ("string_value", "yes")}),
    ([JTag("error", B, True), JTag("otel.status_description", S, "boom")], 2, "boom", {}),
    ([JTag("error", B, True), JTag("http.status_message", S, "bad")], 2, "bad",
     {"http.status_message": ("string_value", "bad")}),
    ([JTag("otel.status_code", S, "ok")], 1, "", {}),
    ([JTag("otel.status_code", S, "ERROR"), JTag("otel.status_description", S, "why")], 2, "why", {}),
    ([JTag("otel.status_code", S, "OK"), JTag("error", B, True)], 2, "", {}),
    ([JTag("http.status_code", L, 500)], 2, "", {"http.status_code": ("int_value", 500)}),
    ([JTag("http.status_code", S, "503"), JTag("http.status_message", S, "down")], 2, "down",
     {"http.status_code": ("string_value", "503"), "http.status_message": ("string_value", "down")}),
    ([JTag("http.status_code", L, 200)], 0, "", {"http.status_code": ("int_value", 200)}),
    ([JTag("http.status_code", L, 404), JTag("span.kind", S, "server")], 0, "",
     {"http.status_code": ("int_value", 404)}),
    ([JTag("http.status_code", L, 404), JTag("span.kind", S, "client")], 2, "",
     {"http.status_code": ("int_value", 404)}),
    ([JTag("http.status_code", S, " 500")], 0, "", {"http.status_code": ("string_value", " 500")}),
])
def test_status(tags, code, message, left):
    sp = one(tags)
    assert (sp.status.code, sp.status.message) == (code, message)
    assert attrs(sp) == left


def test_trace_state_and_scope():
    body = batch_to_otlp(JProcess("svc", []), [
        span([JTag("otel.scope.name", S, "lib"), JTag("otel.scope.version", S, "1.0"),
              JTag("w3c.tracestate", S, "k=v")]),
        span(span_id=OTHER),
        span([JTag("otel.library.name", S, "lib"), JTag("otel.library.version", S, "1.0")], span_id=PARENT),
    ])
    (rs,) = ExportTraceServiceRequest.FromString(body).resource_spans
    assert [(ss.scope.name, ss.scope.version, [sp.span_id for sp in ss.spans]) for ss in rs.scope_spans] == \
        [("lib", "1.0", [SPAN, PARENT]), ("", "", [OTHER])]
    first = rs.scope_spans[0].spans[0]
    assert first.trace_state == "k=v" and list(first.attributes) == []


def test_parent_and_links():
    sp = one(parent=PARENT, refs=[JRef(0, TRACE, PARENT), JRef(1, TRACE, PARENT), JRef(0, OTHER_TRACE, OTHER)])
    assert sp.parent_span_id == PARENT
    assert [(ln.trace_id, ln.span_id, ln.attributes[0].value.string_value) for ln in sp.links] == \
        [(TRACE, PARENT, "follows_from"), (OTHER_TRACE, OTHER, "child_of")]
    # no parentSpanId: the first CHILD_OF ref in the same trace, else the first FOLLOWS_FROM
    assert one(refs=[JRef(0, OTHER_TRACE, OTHER), JRef(1, TRACE, OTHER), JRef(0, TRACE, PARENT)]) \
        .parent_span_id == PARENT
    sp = one(refs=[JRef(0, OTHER_TRACE, PARENT), JRef(1, TRACE, OTHER)])
    assert sp.parent_span_id == OTHER and len(sp.links) == 2
    # As the Collector: a CHILD_OF ref is dropped when its span ID equals the parent's, whatever its trace
    sp = one(refs=[JRef(0, OTHER_TRACE, OTHER), JRef(1, TRACE, OTHER)])
    assert sp.parent_span_id == OTHER and [ln.trace_id for ln in sp.links] == [TRACE]


def test_logs_to_events():
    sp = one(logs=[JLog(7000, [JTag("event", S, "retry"), JTag("n", L, 2)]), JLog(8000, [JTag("event", L, 1)]),
                   JLog(9000, [])])
    assert [(ev.time_unix_nano, ev.name, [kv.key for kv in ev.attributes]) for ev in sp.events] == \
        [(7000, "retry", ["n"]), (8000, "", ["event"]), (9000, "", [])]


def test_resources_grouped_by_process():
    a = JProcess("a", [JTag("hostname", S, "h1"), JTag("jaeger.version", S, "Go-2.30"), JTag("ip", S, "1.2.3.4")])
    b = JProcess("b", [])
    body = batch_to_otlp(a, [span(span_id=SPAN), span(span_id=OTHER, process=b),
                             span(span_id=PARENT, process=JProcess("a", list(a.tags)))])
    req = ExportTraceServiceRequest.FromString(body)
    got = [([(kv.key, kv.value.string_value) for kv in rs.resource.attributes],
            [sp.span_id for ss in rs.scope_spans for sp in ss.spans]) for rs in req.resource_spans]
    assert got == [([("service.name", "a"), ("ip", "1.2.3.4"), ("host.name", "h1"),
                     ("opencensus.exporterversion", "Jaeger-Go-2.30")], [SPAN, PARENT]),
                   ([("service.name", "b")], [OTHER])]


def test_empty_and_blank():
    assert batch_to_otlp(None, []) == b""
    blank = JSpan(bytes(16), bytes(8), b"", "", [], 0, 0, 0, [], [], None)
    assert batch_to_otlp(None, [blank]) == b""
    req = ExportTraceServiceRequest.FromString(batch_to_otlp(JProcess("svc", []), [blank]))
    assert len(req.resource_spans) == 1 and len(req.resource_spans[0].scope_spans) == 0
