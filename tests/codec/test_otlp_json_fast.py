"""protobuf → OTLP/JSON: the field walk (``traces_to_json``) against protobuf's ``MessageToDict``
(``traces_to_json_reference``), value for value and key for key, in key order.

Corpora: every OTLP trace in ../shared/conformance (the 32 Jaeger storage-suite traces, the
opentelemetry-proto example), the Jaeger Thrift batches and Zipkin v2 traces there after the
project's own mapping to OTLP, the perf synthesizer's traces, and hypothesis-built messages that
reach every field and every ``AnyValue`` kind.  The Jaeger api_v3 rendering (``resource`` /
``scope`` / ``status`` always written) is checked against the reference with those members
added by a second pass (``gateway_reference``), and once through the real server.
"""
from __future__ import annotations

import base64
import json
import math
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (AnyValue, ArrayValue, EntityRef, InstrumentationScope,
                                                      KeyValue, KeyValueList)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status, TracesData

from collector.codec import zipkin
from collector.codec.jaeger import JLog, JProcess, JRef, JSpan, JTag, batch_to_otlp
from collector.codec.otlp_json import json_to_protobuf, traces_to_json, traces_to_json_reference
from conftest import CONFORMANCE
from perf.traces import TraceShape, TraceSynth
from query.jaeger_api import _otlp_json

JAEGER_TRACES = sorted((CONFORMANCE / "jaeger" / "traces").glob("*.json"))
OTLP_EXAMPLE = CONFORMANCE / "otlp" / "trace.json"
THRIFT_BATCHES = sorted((CONFORMANCE / "jaeger" / "thrift-conversion").glob("thrift_batch_*.json"))
ZIPKIN_TRACES = sorted((CONFORMANCE / "zipkin" / "lens-testdata").glob("*.json"))
ZIPKIN_SPANS = sorted((CONFORMANCE / "zipkin" / "benchmarks").glob("*.json"))


# --------------------------------------------------------------------------- comparing


def ordered(value):
    """``value`` with dict key order and exact scalar types made part of equality
    (``1`` vs ``1.0`` vs ``True``, ``0.0`` vs ``-0.0``)."""
    if isinstance(value, dict):
        return ("{}", [(k, ordered(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("[]", [ordered(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def gateway_reference(msg) -> dict:
    """The api_v3 rendering, built from the reference by a second pass: ``resource``, ``scope``
    and ``status`` added when absent, the three lists added when empty."""
    doc = traces_to_json_reference(msg)
    resource_spans = []
    for rs in doc.get("resourceSpans", ()):
        scope_spans = []
        for ss in rs.get("scopeSpans", ()):
            spans = [span if "status" in span else {**span, "status": {}} for span in ss.get("spans", ())]
            scope_spans.append({"scope": {}, **ss, "spans": spans})
        resource_spans.append({"resource": {}, **rs, "scopeSpans": scope_spans})
    return {**doc, "resourceSpans": resource_spans}


def assert_same(msg) -> None:
    want = traces_to_json_reference(msg)
    got = traces_to_json(msg)
    assert got == want
    assert ordered(got) == ordered(want)
    assert json.dumps(got) == json.dumps(want)
    want = gateway_reference(msg)
    for got in (traces_to_json(msg, always_containers=True), _otlp_json(msg)):
        assert ordered(got) == ordered(want)


# --------------------------------------------------------------------------- conformance corpora


def test_corpora_are_present():
    assert len(JAEGER_TRACES) == 32 and OTLP_EXAMPLE.is_file()
    assert len(THRIFT_BATCHES) >= 2 and len(ZIPKIN_TRACES) == 10 and len(ZIPKIN_SPANS) == 2


@pytest.mark.parametrize("path", JAEGER_TRACES + [OTLP_EXAMPLE], ids=lambda p: p.name)
def test_otlp_fixtures(path):
    body = path.read_bytes()
    msg = ExportTraceServiceRequest.FromString(json_to_protobuf(body))
    assert msg.resource_spans
    assert_same(msg)
    assert_same(TracesData.FromString(msg.SerializeToString()))


def test_otlp_example_reads_back_as_sent():
    """The walk renders the official example as it is written (IDs lower-cased, defaults left out)."""
    sent = json.loads(OTLP_EXAMPLE.read_bytes())
    got = traces_to_json(ExportTraceServiceRequest.FromString(json_to_protobuf(OTLP_EXAMPLE.read_bytes())))
    span = sent["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    out = got["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["traceId"] == span["traceId"].lower() and out["spanId"] == span["spanId"].lower()
    assert out["name"] == span["name"] and out["kind"] == span["kind"]
    assert got["resourceSpans"][0]["resource"] == sent["resourceSpans"][0]["resource"]


def _tag(t: dict) -> JTag:
    vtype = ("STRING", "DOUBLE", "BOOL", "LONG", "BINARY").index(t.get("vType", "STRING"))
    value = (t.get("vStr", ""), float(t.get("vDouble", 0.0)), bool(t.get("vBool", False)),
             int(t.get("vLong", 0)), base64.b64decode(t.get("vBinary", "")))[vtype]
    return JTag(t["key"], vtype, value)


def _id(v) -> bytes:
    return int(v or 0).to_bytes(8, "big", signed=True)


def jaeger_batch(doc: dict) -> bytes:
    """OTLP bytes of a Jaeger Thrift batch written as JSON, through the project's Jaeger mapping."""
    proc = doc.get("process")
    process = None if proc is None else JProcess(proc.get("serviceName", ""),
                                                 [_tag(t) for t in proc.get("tags") or []])
    spans = [JSpan(_id(s.get("traceIdHigh")) + _id(s.get("traceIdLow")), _id(s.get("spanId")),
                   _id(s.get("parentSpanId")), s.get("operationName", ""),
                   [JRef({"CHILD_OF": 0, "FOLLOWS_FROM": 1}[r.get("refType", "CHILD_OF")],
                         _id(r.get("traceIdHigh")) + _id(r.get("traceIdLow")), _id(r.get("spanId")))
                    for r in s.get("references") or []],
                   int(s.get("flags", 0)), int(s.get("startTime", 0)) * 1000, int(s.get("duration", 0)) * 1000,
                   [_tag(t) for t in s.get("tags") or []],
                   [JLog(int(lg["timestamp"]) * 1000, [_tag(t) for t in lg.get("fields") or []])
                    for lg in s.get("logs") or []],
                   None)
             for s in doc.get("spans", [])]
    return batch_to_otlp(process, spans)


@pytest.mark.parametrize("path", THRIFT_BATCHES, ids=lambda p: p.name)
def test_jaeger_derived_traces(path):
    msg = ExportTraceServiceRequest.FromString(jaeger_batch(json.loads(path.read_bytes())))
    spans = [sp for rs in msg.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert spans and any(sp.links or sp.events for sp in spans)
    assert_same(msg)


@pytest.mark.parametrize("path", ZIPKIN_TRACES + ZIPKIN_SPANS, ids=lambda p: p.name)
def test_zipkin_derived_traces(path):
    body = path.read_bytes()
    if body.lstrip().startswith(b"{"):  # the benchmark files hold one span, not a list
        body = b"[" + body + b"]"
    msg = ExportTraceServiceRequest.FromString(zipkin.v2_json_to_otlp(body))
    assert msg.resource_spans
    assert_same(msg)


def test_perf_corpus():
    synth = TraceSynth(TraceShape(), seed=3)
    for _ in range(3):
        assert_same(synth.request())
    assert_same(TraceSynth(TraceShape(services=12, depth=6, fanout=4), seed=1).one_trace(1500))


# --------------------------------------------------------------------------- hand-made edges


def test_empty_and_absent_members():
    assert traces_to_json(TracesData()) == {} == traces_to_json_reference(TracesData())
    assert traces_to_json(TracesData(), always_containers=True) == {"resourceSpans": []}
    # Present-but-empty messages stay as {}; absent ones are left out (or added by the option).
    msg = TracesData(resource_spans=[
        ResourceSpans(),
        ResourceSpans(resource=Resource(), schema_url="r", scope_spans=[
            ScopeSpans(),
            ScopeSpans(scope=InstrumentationScope(), schema_url="s"),
            ScopeSpans(spans=[Span(), Span(status=Status()), Span(flags=1)]),
        ]),
    ])
    assert_same(msg)
    got = traces_to_json(msg)["resourceSpans"]
    assert got[0] == {} and got[1]["resource"] == {} and got[1]["scopeSpans"][1]["scope"] == {}
    assert got[1]["scopeSpans"][2]["spans"] == [{}, {"status": {}}, {"flags": 1}]
    api = traces_to_json(msg, always_containers=True)["resourceSpans"]
    assert list(api[0]) == ["resource", "scopeSpans"]
    assert list(api[1]["scopeSpans"][1]) == ["scope", "schemaUrl", "spans"]
    assert [list(sp) for sp in api[1]["scopeSpans"][2]["spans"]] == [["status"], ["status"], ["flags", "status"]]


def test_oneof_defaults_and_special_doubles():
    values = [AnyValue(string_value=""), AnyValue(int_value=0), AnyValue(bool_value=False),
              AnyValue(double_value=0.0), AnyValue(double_value=-0.0), AnyValue(bytes_value=b""),
              AnyValue(double_value=math.nan), AnyValue(double_value=math.inf),
              AnyValue(double_value=-math.inf), AnyValue(array_value=ArrayValue()),
              AnyValue(kvlist_value=KeyValueList()), AnyValue(), AnyValue(string_value_strindex=0)]
    attrs = [KeyValue(key=f"k{i}", value=v) for i, v in enumerate(values)]
    attrs += [KeyValue(key="no value"), KeyValue(value=AnyValue(string_value="no key")), KeyValue(key_strindex=3)]
    msg = TracesData(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[Span(attributes=attrs)])])])
    assert_same(msg)
    out = traces_to_json(msg)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    got = [kv.get("value") for kv in out]
    assert got[:13] == [{"stringValue": ""}, {"intValue": "0"}, {"boolValue": False}, {"doubleValue": 0.0},
                        {"doubleValue": -0.0}, {"bytesValue": ""}, {"doubleValue": "NaN"},
                        {"doubleValue": "Infinity"}, {"doubleValue": "-Infinity"}, {"arrayValue": {}},
                        {"kvlistValue": {}}, {}, {"stringValueStrindex": 0}]
    assert out[13:] == [{"key": "no value"}, {"value": {"stringValue": "no key"}}, {"keyStrindex": 3}]


def test_ids_links_events_and_large_numbers():
    span = Span(trace_id=bytes.fromhex("0AF7651916CD43DD8448EB211C80319C"), span_id=b"\xff" * 8,
                parent_span_id=b"\x00" * 8, trace_state="a=b", flags=0x301, kind=Span.SPAN_KIND_CONSUMER,
                start_time_unix_nano=2**64 - 1, end_time_unix_nano=1, dropped_attributes_count=2**32 - 1,
                dropped_events_count=1, dropped_links_count=2,
                events=[Span.Event(), Span.Event(time_unix_nano=5, name="e", dropped_attributes_count=1,
                                                  attributes=[KeyValue(key="x", value=AnyValue(int_value=-2**63))])],
                links=[Span.Link(), Span.Link(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, trace_state="k=v",
                                              flags=0x100, dropped_attributes_count=4,
                                              attributes=[KeyValue(key="l", value=AnyValue(bool_value=True))])],
                status=Status(code=Status.STATUS_CODE_ERROR, message="boom"))
    msg = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    assert_same(msg)
    out = traces_to_json(msg)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["traceId"] == "0af7651916cd43dd8448eb211c80319c" and out["parentSpanId"] == "0000000000000000"
    assert out["startTimeUnixNano"] == str(2**64 - 1) and out["droppedAttributesCount"] == 2**32 - 1
    assert out["links"][1] == {"traceId": "01" * 16, "spanId": "02" * 8, "traceState": "k=v",
                               "attributes": [{"key": "l", "value": {"boolValue": True}}],
                               "droppedAttributesCount": 4, "flags": 256}
    assert out["events"][0] == {} and out["events"][1]["attributes"][0]["value"] == {"intValue": str(-2**63)}
    assert list(out)[-2:] == ["status", "flags"]


def test_other_messages_take_the_generic_route():
    span = Span(trace_id=b"\x01" * 16, name="n")
    assert traces_to_json(span) == traces_to_json_reference(span)


# --------------------------------------------------------------------------- generated messages

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
small = st.integers(0, 3)
int32s = st.integers(-2**31, 2**31 - 1)
uint32s = st.one_of(st.just(0), st.integers(0, 2**32 - 1))
uint64s = st.one_of(st.just(0), st.integers(0, 2**64 - 1))
ids = st.one_of(st.just(b""), st.binary(min_size=8, max_size=8), st.binary(min_size=16, max_size=16),
                st.binary(max_size=5))
doubles = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e308, 5e-324]))


scalar_values = st.one_of(
    st.builds(AnyValue),
    texts.map(lambda v: AnyValue(string_value=v)),
    st.booleans().map(lambda v: AnyValue(bool_value=v)),
    st.integers(-2**63, 2**63 - 1).map(lambda v: AnyValue(int_value=v)),
    doubles.map(lambda v: AnyValue(double_value=v)),
    st.binary(max_size=8).map(lambda v: AnyValue(bytes_value=v)),
    int32s.map(lambda v: AnyValue(string_value_strindex=v)),
    st.sampled_from([AnyValue(array_value=ArrayValue()), AnyValue(kvlist_value=KeyValueList())]),
)


def _nested_values(children):
    return st.one_of(
        scalar_values,
        st.lists(children, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(_key_value(children), max_size=3).map(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs))),
    )


def _key_value(values):
    def make(key, value, strindex):
        kv = KeyValue(key=key, key_strindex=strindex)
        if value is not None:
            kv.value.CopyFrom(value)
        return kv
    return st.builds(make, texts, st.one_of(st.none(), values), st.one_of(st.just(0), int32s))


any_values = st.recursive(scalar_values, _nested_values, max_leaves=8)
attributes = st.lists(_key_value(any_values), max_size=4)
enums = st.one_of(small, st.integers(0, 9))


@st.composite
def spans(draw):
    span = Span(trace_id=draw(ids), span_id=draw(ids), trace_state=draw(texts), parent_span_id=draw(ids),
                flags=draw(uint32s), name=draw(texts), kind=draw(enums),
                start_time_unix_nano=draw(uint64s), end_time_unix_nano=draw(uint64s),
                attributes=draw(attributes), dropped_attributes_count=draw(uint32s),
                events=draw(st.lists(st.builds(Span.Event, time_unix_nano=uint64s, name=texts,
                                               attributes=attributes, dropped_attributes_count=uint32s),
                                     max_size=2)),
                dropped_events_count=draw(uint32s),
                links=draw(st.lists(st.builds(Span.Link, trace_id=ids, span_id=ids, trace_state=texts,
                                              attributes=attributes, dropped_attributes_count=uint32s,
                                              flags=uint32s), max_size=2)),
                dropped_links_count=draw(uint32s))
    if draw(st.booleans()):
        span.status.CopyFrom(Status(message=draw(texts), code=draw(enums)))
    return span


@st.composite
def scope_spans(draw):
    ss = ScopeSpans(spans=draw(st.lists(spans(), max_size=3)), schema_url=draw(texts))
    if draw(st.booleans()):
        ss.scope.CopyFrom(InstrumentationScope(name=draw(texts), version=draw(texts), attributes=draw(attributes),
                                               dropped_attributes_count=draw(uint32s)))
    return ss


@st.composite
def resource_spans(draw):
    rs = ResourceSpans(scope_spans=draw(st.lists(scope_spans(), max_size=3)), schema_url=draw(texts))
    if draw(st.booleans()):
        refs = st.builds(EntityRef, schema_url=texts, type=texts, id_keys=st.lists(texts, max_size=2),
                         description_keys=st.lists(texts, max_size=2))
        rs.resource.CopyFrom(Resource(attributes=draw(attributes), dropped_attributes_count=draw(uint32s),
                                      entity_refs=draw(st.lists(refs, max_size=2))))
    return rs


messages = st.builds(lambda cls, rss: cls(resource_spans=rss),
                     st.sampled_from([TracesData, ExportTraceServiceRequest]),
                     st.lists(resource_spans(), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages)
def test_generated_messages(msg):
    assert_same(msg)
    assert_same(TracesData.FromString(msg.SerializeToString()))


@settings(max_examples=300, deadline=None)
@given(st.lists(_key_value(any_values), min_size=1, max_size=3))
def test_generated_attributes_everywhere(attrs):
    """The same attributes on a resource, a scope, a span, an event and a link."""
    span = Span(attributes=attrs, events=[Span.Event(attributes=attrs)], links=[Span.Link(attributes=attrs)])
    msg = TracesData(resource_spans=[ResourceSpans(
        resource=Resource(attributes=attrs),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(attributes=attrs), spans=[span])])])
    assert_same(msg)


# --------------------------------------------------------------------------- through the server


def stored_trace(server, tid: str) -> TracesData | None:
    """The stored trace as protobuf, from Tempo's ``Accept: application/protobuf`` answer."""
    r = requests.get(server.url(f"/api/v2/traces/{tid}"), headers={"Accept": "application/protobuf"})
    if r.status_code == 404:
        return None
    assert r.status_code == 200
    body = r.content  # TraceByIDResponse{trace: 1}: a tag, a varint length, the TracesData bytes
    pos, shift, size = 1, 0, 0
    while True:
        size |= (body[pos] & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not body[pos - 1] & 0x80:
            break
    return TracesData.FromString(body[pos:pos + size])


def test_api_v3_trace_through_the_server(server):
    """A synthesized trace in over OTLP/protobuf; ``/api/v3/traces/{id}`` answers, key for key,
    what the reference rendering makes of the stored trace read back as protobuf."""
    req = TraceSynth(TraceShape(services=6, depth=12, fanout=6), seed=7).one_trace(500)
    sent = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    assert sent == 500
    r = requests.post(server.otlp_http, data=req.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    tid = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    deadline = time.monotonic() + 30
    while True:  # the write is acknowledged before every span is readable
        stored = stored_trace(server, tid)
        count = 0 if stored is None else sum(len(ss.spans) for rs in stored.resource_spans for ss in rs.scope_spans)
        if count == sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert count == sent
    r = requests.get(server.url(f"/api/v3/traces/{tid}"))
    assert r.status_code == 200
    got = r.json()["result"]
    want = json.loads(json.dumps(gateway_reference(stored)))  # floats as JSON writes them
    assert ordered(got) == ordered(want)
