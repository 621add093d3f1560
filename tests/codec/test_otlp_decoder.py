"""Decode stage: both decoder twins against protobuf's own parser, and against each other."""
from __future__ import annotations

import base64
import json
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

import collector.codec
from collector.codec import otlp as py_otlp
from collector.codec.otlp_json import json_to_protobuf
from collector.errors import DecodeError
from collector.model import (
    AT_EVENT, AT_LINK, AT_SPAN, VT_ARRAY, VT_BOOL, VT_BYTES, VT_DOUBLE, VT_INT, VT_KVLIST, VT_STRING,
)
from conftest import CONFORMANCE

try:
    from _ext import _otlp as cy_otlp
except ImportError:  # reported by test_compiled_twin_loaded
    cy_otlp = None

IMPLS = [pytest.param(py_otlp, id="py-decoder"),
         pytest.param(cy_otlp, id="cy-decoder",
                      marks=pytest.mark.skipif(cy_otlp is None, reason="compiled twin not built"))]


def test_compiled_twin_loaded():
    """CI builds the extension; if it silently fell back to Python this must fail."""
    required = os.environ.get("CLEW_REQUIRE_EXTENSIONS") or os.environ.get("CI")
    if not required:
        pytest.skip("set CLEW_REQUIRE_EXTENSIONS=1 (make test does) to require the compiled twin")
    assert cy_otlp is not None, "_ext._otlp did not import: the Cython decoder was not built"
    assert collector.codec.COMPILED, "collector.codec did not pick the compiled decoder"
    assert collector.codec.decode_export_request is cy_otlp.decode_export_request


def _value(v: AnyValue):
    which = v.WhichOneof("value")
    if which is None:
        return (0, None)
    if which == "string_value":
        return (VT_STRING, v.string_value.encode())
    if which == "bool_value":
        return (VT_BOOL, int(v.bool_value))
    if which == "int_value":
        return (VT_INT, v.int_value)
    if which == "double_value":
        return (VT_DOUBLE, struct.unpack("<q", struct.pack("<d", v.double_value))[0])
    if which == "bytes_value":
        return (VT_BYTES, v.bytes_value)
    if which == "array_value":
        return (VT_ARRAY, v.array_value.SerializeToString())
    return (VT_KVLIST, v.kvlist_value.SerializeToString())


def _decoded_value(batch, a):
    vt = int(a["vtype"])
    if vt in (VT_STRING, VT_BYTES, VT_ARRAY, VT_KVLIST):
        off = int(a["val_off"])
        return (vt, batch.buf[off:off + int(a["val_len"])])
    if vt == 0:
        return (0, None)
    return (vt, int(a["num"]))


def expected_rows(req: ExportTraceServiceRequest):
    """What a correct decoder yields, computed with protobuf's parser."""
    spans, resources = [], []
    for rs in req.resource_spans:
        service = ""
        for kv in rs.resource.attributes:
            if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
                service = kv.value.string_value
        resources.append(service)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                attrs = [(AT_SPAN, kv.key.encode(), _value(kv.value)) for kv in sp.attributes]
                for ev in sp.events:
                    attrs += [(AT_EVENT, kv.key.encode(), _value(kv.value)) for kv in ev.attributes]
                for ln in sp.links:
                    attrs += [(AT_LINK, kv.key.encode(), _value(kv.value)) for kv in ln.attributes]
                spans.append(dict(
                    trace_id=sp.trace_id, span_id=sp.span_id, parent=sp.parent_span_id,
                    name=sp.name, kind=min(sp.kind, 255), start=sp.start_time_unix_nano,
                    end=sp.end_time_unix_nano, status=min(sp.status.code, 255), attrs=attrs,
                    span_bytes=sp.SerializeToString(), service=service, trace_state=sp.trace_state,
                ))
    return spans, resources


def check_against_protobuf(impl, body: bytes):
    req = ExportTraceServiceRequest.FromString(body)
    want, services = expected_rows(req)
    batch = impl.decode_export_request(body)
    assert len(batch) == len(want)
    assert [svc for _rec, svc in batch.resources] == services
    for i, w in enumerate(want):
        row = batch.spans[i]
        assert bytes(row["trace_id"])[:int(row["trace_id_len"])] == w["trace_id"][:16]
        assert int(row["trace_id_len"]) == min(len(w["trace_id"]), 255)
        assert bytes(row["span_id"])[:int(row["span_id_len"])] == w["span_id"][:8]
        assert bytes(row["parent_span_id"])[:int(row["parent_id_len"])] == w["parent"][:8]
        assert batch.name(i) == w["name"]
        so = int(row["state_off"])
        assert batch.buf[so:so + int(row["state_len"])].decode() == w["trace_state"]
        assert (int(row["kind"]), int(row["start_ns"]), int(row["end_ns"]), int(row["status_code"])) == \
            (w["kind"], w["start"], w["end"], w["status"])
        # The stored bytes are the span as received; re-parsing them gives the same span.
        assert trace_pb2.Span.FromString(batch.span_bytes(i)).SerializeToString() == w["span_bytes"]
        assert batch.resources[int(row["resource"])][1] == w["service"]
        got = []
        for a in batch.attrs[int(row["attr_start"]):int(row["attr_start"]) + int(row["attr_count"])]:
            assert int(a["span"]) == i
            ko = int(a["key_off"])
            got.append((int(a["where"]), batch.buf[ko:ko + int(a["key_len"])], _decoded_value(batch, a)))
        assert got == w["attrs"]
    # Resource and scope records re-assemble into the same resource and scope.
    for (record, _svc), rs in zip(batch.resources, req.resource_spans):
        again = trace_pb2.ResourceSpans.FromString(record)
        assert again.resource == rs.resource and again.schema_url == rs.schema_url
    scopes = [ss for rs in req.resource_spans for ss in rs.scope_spans]
    for (record, _res), ss in zip(batch.scopes, scopes):
        again = trace_pb2.ScopeSpans.FromString(record)
        assert again.scope == ss.scope and again.schema_url == ss.schema_url
    return batch


def fixture_bodies():
    files = sorted((CONFORMANCE / "jaeger" / "traces").glob("*.json"))
    files.append(CONFORMANCE / "otlp" / "trace.json")
    return [pytest.param(json_to_protobuf(f.read_bytes()), id=f.stem) for f in files]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("body", fixture_bodies())
def test_conformance_fixtures_decode_like_protobuf(impl, body):
    batch = check_against_protobuf(impl, body)
    assert len(batch) >= 1


@pytest.mark.parametrize("impl", IMPLS)
def test_every_value_type_events_links_status(impl):
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="checkout"))
    rs.resource.attributes.add(key="host", value=AnyValue(string_value="h1"))
    rs.schema_url = "https://opentelemetry.io/schemas/1.21.0"
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "lib", "1.2"
    sp = ss.spans.add(trace_id=bytes(range(1, 17)), span_id=b"\x01" * 8, parent_span_id=b"\x02" * 8,
                      name="GET /cart", kind=2, start_time_unix_nano=10**18,
                      end_time_unix_nano=10**18 + 5000, trace_state="ot=th:c;rv:0123456789abcd")
    sp.status.code, sp.status.message = 2, "boom"
    values = [AnyValue(string_value="s"), AnyValue(bool_value=True), AnyValue(int_value=-7),
              AnyValue(int_value=2**63 - 1), AnyValue(double_value=-2.5), AnyValue(bytes_value=b"\x00\xff"),
              AnyValue(array_value={"values": [AnyValue(int_value=1)]}),
              AnyValue(kvlist_value={"values": [KeyValue(key="k", value=AnyValue(string_value="v"))]}),
              AnyValue()]
    for i, v in enumerate(values):
        sp.attributes.add(key=f"a{i}", value=v)
    ev = sp.events.add(time_unix_nano=10**18 + 1, name="exception")
    ev.attributes.add(key="exception.type", value=AnyValue(string_value="E"))
    ln = sp.links.add(trace_id=b"\x09" * 16, span_id=b"\x08" * 8)
    ln.attributes.add(key="opentracing.ref_type", value=AnyValue(string_value="follows_from"))
    batch = check_against_protobuf(impl, req.SerializeToString())
    assert batch.resources[0][1] == "checkout"
    assert int(batch.spans[0]["status_code"]) == 2


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("body, message", [
    (b"\x0a\x05abc", "ExportTraceServiceRequest: length 5 overruns its message at offset 0"),
    (b"\x0a", "ExportTraceServiceRequest: truncated varint at offset 0"),
    (b"\x0b", "ExportTraceServiceRequest: unsupported wire type 3 at offset 0"),
    (b"\xff" * 11, "ExportTraceServiceRequest: varint too long at offset 0"),
    (b"\x00", "ExportTraceServiceRequest: invalid field number 0 at offset 0"),
    (b"\x08\x01", "ExportTraceServiceRequest.resource_spans: wire type 0, expected 2 (at offset 0)"),
    (b"\x0a\x04\x12\x02\x12\x00\x11", "ExportTraceServiceRequest: truncated fixed64 at offset 6"),
    (b"\x0a\x06\x12\x04\x12\x02\x08\x05", "Span.trace_id: wire type 0, expected 2 (at offset 6)"),
    (b"\x0a\x06\x12\x04\x12\x02\x3d\x01", "Span: truncated fixed32 at offset 6"),
])
def test_garbage_is_refused_with_a_clear_message(impl, body, message):
    with pytest.raises(DecodeError) as err:
        impl.decode_export_request(body)
    assert str(err.value) == message


@pytest.mark.parametrize("impl", IMPLS)
def test_unknown_fields_are_skipped(impl):
    req = ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="n")
    body = req.SerializeToString()
    # field 99 (varint) appended inside the span, and field 7 at the top level
    inner = sp.SerializeToString() + b"\x98\x06\x05"
    scope = b"\x12" + bytes([len(inner)]) + inner
    rs = b"\x12" + bytes([len(scope)]) + scope
    body = b"\x0a" + bytes([len(rs)]) + rs + b"\x38\x01"
    batch = impl.decode_export_request(body)
    assert len(batch) == 1 and batch.name(0) == "n"


# ----------------------------------------------------------------- differential (Hypothesis)

ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
any_values = st.recursive(
    st.one_of(st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=20)),
              st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
              st.builds(lambda i: AnyValue(int_value=i), st.integers(-2**63, 2**63 - 1)),
              st.builds(lambda d: AnyValue(double_value=d), st.floats(allow_nan=False)),
              st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=10)),
              st.just(AnyValue())),
    lambda inner: st.builds(lambda vs: AnyValue(array_value={"values": vs}), st.lists(inner, max_size=3)),
    max_leaves=5)
key_values = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), st.text(max_size=12), any_values),
                      max_size=4)


@st.composite
def requests_(draw):
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        rs.resource.CopyFrom(Resource(attributes=draw(key_values)))
        if draw(st.booleans()):
            rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=draw(st.text(max_size=8))))
        for _ in range(draw(st.integers(0, 3))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=8))
            for _ in range(draw(st.integers(0, 4))):
                sp = ss.spans.add(trace_id=draw(ids), span_id=draw(st.binary(max_size=9)),
                                  parent_span_id=draw(st.binary(max_size=9)), name=draw(st.text(max_size=10)),
                                  kind=draw(st.integers(0, 300)),
                                  start_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
                                  end_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
                                  trace_state=draw(st.sampled_from(["", "ot=th:8;rv:00112233445566",
                                                                    "vendor=a,ot=rv:ffffffffffffff"])))
                sp.attributes.extend(draw(key_values))
                sp.status.code = draw(st.integers(0, 2))
                for _ in range(draw(st.integers(0, 2))):
                    sp.events.add(name="e", attributes=draw(key_values))
                for _ in range(draw(st.integers(0, 2))):
                    sp.links.add(trace_id=draw(ids), span_id=b"\x01" * 8, attributes=draw(key_values))
    return req.SerializeToString()


def _outcome(impl, body):
    try:
        b = impl.decode_export_request(body)
    except DecodeError as exc:
        return ("error", str(exc))
    return ("ok", b.spans.tobytes(), b.attrs.tobytes(), b.resources, b.scopes)


needs_both = pytest.mark.skipif(cy_otlp is None, reason="compiled twin not built")
HSET = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_both
@HSET
@given(requests_())
def test_twins_agree_on_valid_requests(body):
    assert _outcome(py_otlp, body) == _outcome(cy_otlp, body)
    check_against_protobuf(cy_otlp, body)


@needs_both
@HSET
@given(st.binary(max_size=200))
def test_twins_agree_on_garbage(body):
    assert _outcome(py_otlp, body) == _outcome(cy_otlp, body)


@needs_both
@HSET
@given(requests_(), st.data())
def test_twins_agree_on_damaged_requests(body, data):
    if not body:
        return
    cut = data.draw(st.integers(0, len(body)))
    flip = data.draw(st.integers(0, len(body) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(body[:cut] + body[cut:])
    damaged[flip] ^= 1 << bit
    for candidate in (body[:cut], bytes(damaged)):
        assert _outcome(py_otlp, candidate) == _outcome(cy_otlp, candidate)


def _nested_request(depth: int, kvlist: bool = False) -> bytes:
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        if kvlist:
            value = AnyValue(kvlist_value={"values": [KeyValue(key="k", value=value)]})
        else:
            value = AnyValue(array_value={"values": [value]})
    req = ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="deep")
    sp.attributes.add(key="deep", value=value)
    return req.SerializeToString()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kvlist", [False, True], ids=["array", "kvlist"])
def test_attribute_values_nested_too_deep_are_refused(impl, kvlist):
    """Much deeper nesting cannot be read back by protobuf's parser (100 message levels), so
    more than 20 levels is refused at the door rather than stored and unreadable."""
    batch = impl.decode_export_request(_nested_request(20, kvlist))
    assert len(batch) == 1
    trace_pb2.TracesData.FromString(_nested_request(20, kvlist))  # what the query side will do
    with pytest.raises(DecodeError, match="nested deeper than 20 levels"):
        impl.decode_export_request(_nested_request(21, kvlist))


@pytest.mark.parametrize("impl", IMPLS)
def test_malformed_bytes_inside_an_array_value_are_refused(impl):
    req = ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="n")
    sp.attributes.add(key="a", value=AnyValue(array_value={"values": [AnyValue(int_value=1)]}))
    body = req.SerializeToString()
    good = AnyValue(array_value={"values": [AnyValue(int_value=1)]}).SerializeToString()
    bad = b"\x2a\x03\x0a\x05\x18"  # array_value whose inner AnyValue overruns
    assert good in body
    with pytest.raises(DecodeError, match="overruns"):
        impl.decode_export_request(body.replace(good, bad).replace(b"\x12\x07\x0a\x01a", b"\x12\x08\x0a\x01a"))
