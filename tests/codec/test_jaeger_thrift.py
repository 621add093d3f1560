"""Decode stage: Jaeger / Zipkin v1 Thrift readers, both twins, against the ``thrift`` package's encoders."""
from __future__ import annotations

import base64
import importlib
import json
import os
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer

import collector.codec
from collector.codec.jaeger import batch_to_otlp
from collector.errors import DecodeError
from test_jaeger import FIXTURES, PAIRS, check_against_domain, model_from_json

# Not `from collector.codec import jaeger_thrift`: the package's picker answers that with the twin.
py_thrift = importlib.import_module("collector.codec.jaeger_thrift")
try:
    from _ext import _jaeger_thrift as cy_thrift
except ImportError:  # reported by test_compiled_twin_loaded
    cy_thrift = None

IMPLS = [pytest.param(py_thrift, id="py-decoder"),
         pytest.param(cy_thrift, id="cy-decoder",
                      marks=pytest.mark.skipif(cy_thrift is None, reason="compiled twin not built"))]
BOTH = pytest.mark.skipif(cy_thrift is None, reason="compiled twin not built")
PROTOCOLS = [pytest.param(False, id="binary"), pytest.param(True, id="compact")]


def test_compiled_twin_loaded():
    """CI builds the extension; if it silently fell back to Python this must fail."""
    required = os.environ.get("CLEW_REQUIRE_EXTENSIONS") or os.environ.get("CI")
    if not required:
        pytest.skip("set CLEW_REQUIRE_EXTENSIONS=1 (make test does) to require the compiled twin")
    assert cy_thrift is not None, "_ext._jaeger_thrift did not import: the Cython decoder was not built"
    if not collector.codec.NO_EXTENSIONS:
        assert collector.codec.twin("jaeger_thrift") is cy_thrift, "collector.codec did not pick the compiled twin"


# --- a tiny generic Thrift encoder on the thrift package's protocol write calls -----------------
# A struct is a list of (field id, TType, value); STRUCT values are such lists, LIST/SET values
# (element type, [values]), MAP values (key type, value type, [(k, v)]).

def write_value(p, t, v):
    if t == TType.BOOL:
        p.writeBool(v)
    elif t == TType.BYTE:
        p.writeByte(v)
    elif t == TType.I16:
        p.writeI16(v)
    elif t == TType.I32:
        p.writeI32(v)
    elif t == TType.I64:
        p.writeI64(v)
    elif t == TType.DOUBLE:
        p.writeDouble(v)
    elif t == TType.STRING:
        p.writeBinary(v) if isinstance(v, bytes) else p.writeString(v)
    elif t == TType.UUID:
        p.writeUuid(v)
    elif t == TType.STRUCT:
        write_struct(p, v)
    elif t in (TType.LIST, TType.SET):
        et, items = v
        (p.writeListBegin if t == TType.LIST else p.writeSetBegin)(et, len(items))
        for x in items:
            write_value(p, et, x)
        (p.writeListEnd if t == TType.LIST else p.writeSetEnd)()
    elif t == TType.MAP:
        kt, vt, items = v
        p.writeMapBegin(kt, vt, len(items))
        for k, x in items:
            write_value(p, kt, k)
            write_value(p, vt, x)
        p.writeMapEnd()
    else:
        raise AssertionError(t)


def write_struct(p, fields):
    p.writeStructBegin("s")
    for fid, t, v in fields:
        p.writeFieldBegin("f", t, fid)
        write_value(p, t, v)
        p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()


def protocol(compact: bool, strict: bool = True):
    buf = TMemoryBuffer()
    return buf, (TCompactProtocol(buf) if compact else TBinaryProtocol(buf, strictWrite=strict))


def encode(fields, compact=False) -> bytes:
    buf, p = protocol(compact)
    write_struct(p, fields)
    return buf.getvalue()


def message(name, args_fields, compact, mtype=TMessageType.ONEWAY, strict=True) -> bytes:
    buf, p = protocol(compact, strict)
    p.writeMessageBegin(name, mtype, 7)
    write_struct(p, args_fields)
    p.writeMessageEnd()
    return buf.getvalue()


# --- jaeger.thrift structs from the thrift_batch JSON shape --------------------------------------

VTYPE_NUM = {"STRING": 0, "DOUBLE": 1, "BOOL": 2, "LONG": 3, "BINARY": 4}


def tag_fields(t: dict, junk=()) -> list:
    vt = t.get("vType", "STRING")
    out = [(1, TType.STRING, t["key"]), (2, TType.I32, VTYPE_NUM[vt])]
    if "vStr" in t:
        out.append((3, TType.STRING, t["vStr"]))
    if "vDouble" in t:
        out.append((4, TType.DOUBLE, t["vDouble"]))
    if "vBool" in t:
        out.append((5, TType.BOOL, t["vBool"]))
    if "vLong" in t:
        out.append((6, TType.I64, t["vLong"]))
    if "vBinary" in t:
        out.append((7, TType.STRING, base64.b64decode(t["vBinary"])))
    return out + list(junk)


def span_fields(s: dict, junk=()) -> list:
    out = [(1, TType.I64, s.get("traceIdLow", 0)), (2, TType.I64, s.get("traceIdHigh", 0)),
           (3, TType.I64, s.get("spanId", 0)), (4, TType.I64, s.get("parentSpanId", 0)),
           (5, TType.STRING, s.get("operationName", ""))]
    if s.get("references"):
        out.append((6, TType.LIST, (TType.STRUCT, [
            [(1, TType.I32, {"CHILD_OF": 0, "FOLLOWS_FROM": 1}[r.get("refType", "CHILD_OF")]),
             (2, TType.I64, r.get("traceIdLow", 0)), (3, TType.I64, r.get("traceIdHigh", 0)),
             (4, TType.I64, r.get("spanId", 0))] + list(junk)
            for r in s["references"]])))
    out += [(7, TType.I32, s.get("flags", 0)), (8, TType.I64, s.get("startTime", 0)),
            (9, TType.I64, s.get("duration", 0))]
    if s.get("tags") is not None:
        out.append((10, TType.LIST, (TType.STRUCT, [tag_fields(t, junk) for t in s["tags"]])))
    if s.get("logs"):
        out.append((11, TType.LIST, (TType.STRUCT, [
            [(1, TType.I64, lg["timestamp"]),
             (2, TType.LIST, (TType.STRUCT, [tag_fields(t, junk) for t in lg.get("fields", [])]))] + list(junk)
            for lg in s["logs"]])))
    return out + list(junk)


def batch_fields(b: dict, junk=()) -> list:
    out = []
    if b.get("process") is not None:
        proc = b["process"]
        pf = [(1, TType.STRING, proc.get("serviceName", ""))]
        if proc.get("tags") is not None:
            pf.append((2, TType.LIST, (TType.STRUCT, [tag_fields(t, junk) for t in proc["tags"]])))
        out.append((1, TType.STRUCT, pf + list(junk)))
    out.append((2, TType.LIST, (TType.STRUCT, [span_fields(s, junk) for s in b.get("spans", [])])))
    return out + list(junk)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"thrift_batch_{name}.json").read_text())


def expected(batch: dict) -> bytes:
    return batch_to_otlp(*model_from_json(batch))


SAMPLE = {
    "process": {"serviceName": "shop", "tags": [
        {"key": "hostname", "vType": "STRING", "vStr": "web-1"},
        {"key": "ip", "vType": "STRING", "vStr": "10.0.0.1"}]},
    "spans": [
        {"traceIdLow": -5, "traceIdHigh": 77, "spanId": 1, "operationName": "GET /", "flags": 1,
         "startTime": 1_700_000_000_000_000, "duration": 1234,
         "tags": [{"key": "span.kind", "vType": "STRING", "vStr": "server"},
                  {"key": "error", "vType": "BOOL", "vBool": True},
                  {"key": "http.status_code", "vType": "LONG", "vLong": 503},
                  {"key": "ratio", "vType": "DOUBLE", "vDouble": 0.25},
                  {"key": "blob", "vType": "BINARY", "vBinary": "AP8="},
                  {"key": "w3c.tracestate", "vType": "STRING", "vStr": "a=b"}],
         "logs": [{"timestamp": 1_700_000_000_000_100,
                   "fields": [{"key": "event", "vType": "STRING", "vStr": "retry"},
                              {"key": "attempt", "vType": "LONG", "vLong": 2}]}]},
        {"traceIdLow": -5, "traceIdHigh": 77, "spanId": 2, "parentSpanId": 1, "operationName": "SELECT",
         "startTime": 1_700_000_000_000_010, "duration": 50,
         "references": [{"refType": "FOLLOWS_FROM", "traceIdLow": 9, "spanId": 99}],
         "tags": [{"key": "otel.scope.name", "vType": "STRING", "vStr": "db"},
                  {"key": "span.kind", "vType": "STRING", "vStr": "client"}]},
    ],
}

# Junk fields of every type, nested, that every struct must skip.
JUNK = [
    (90, TType.BOOL, True), (91, TType.BYTE, -3), (92, TType.I16, -300), (93, TType.I32, 70000),
    (94, TType.I64, -(1 << 40)), (95, TType.DOUBLE, 1.5), (96, TType.STRING, b"\xff\x00junk"),
    (97, TType.STRUCT, [(1, TType.STRUCT, [(2, TType.LIST, (TType.BOOL, [True, False]))]),
                        (300, TType.MAP, (TType.STRING, TType.LIST, [("k", (TType.I32, [1, 2]))]))]),
    (98, TType.SET, (TType.STRUCT, [[(1, TType.BOOL, False)], []])),
    (99, TType.MAP, (TType.I16, TType.STRUCT, [(1, [(5, TType.DOUBLE, 2.0)])])),
    (-7, TType.UUID, uuid.UUID(int=12345)),
    (1000, TType.LIST, (TType.LIST, [(TType.BYTE, [1, 2, 3]), (TType.BYTE, [])])),
    (1001, TType.MAP, (TType.BOOL, TType.BOOL, [])),
]


def otlp(body: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(body)


# --- valid input --------------------------------------------------------------------------------

@pytest.mark.parametrize("compact", PROTOCOLS)
@pytest.mark.parametrize("impl", IMPLS)
def test_decode_batch_sample(impl, compact):
    body = impl.decode_batch(encode(batch_fields(SAMPLE), compact), compact=compact)
    assert body == expected(SAMPLE)
    req = otlp(body)
    (rs,) = req.resource_spans
    res = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
    assert res == {"service.name": "shop", "ip": "10.0.0.1", "host.name": "web-1"}
    assert [(ss.scope.name, [sp.name for sp in ss.spans]) for ss in rs.scope_spans] == \
        [("", ["GET /"]), ("db", ["SELECT"])]
    root, child = rs.scope_spans[0].spans[0], rs.scope_spans[1].spans[0]
    assert root.trace_id == struct.pack(">qq", 77, -5) and root.span_id == struct.pack(">q", 1)
    assert (root.kind, root.status.code, root.trace_state, root.flags) == (2, 2, "a=b", 1)
    assert [kv.key for kv in root.attributes] == ["http.status_code", "ratio", "blob"]
    assert root.attributes[2].value.bytes_value == b"\x00\xff"
    assert (root.events[0].name, root.events[0].time_unix_nano) == ("retry", 1_700_000_000_000_100_000)
    assert child.parent_span_id == struct.pack(">q", 1) and child.kind == 3
    assert [(ln.trace_id, ln.span_id) for ln in child.links] == [(struct.pack(">qq", 0, 9), struct.pack(">q", 99))]


@pytest.mark.parametrize("compact", PROTOCOLS)
def test_python_reader_builds_the_model(compact):
    assert py_thrift.read_batch(encode(batch_fields(SAMPLE), compact), compact) == model_from_json(SAMPLE)


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("compact", PROTOCOLS)
@pytest.mark.parametrize("impl", IMPLS)
def test_thrift_conversion_fixtures(impl, compact, name):
    batch = fixture(name)
    body = impl.decode_batch(encode(batch_fields(batch), compact), compact=compact)
    assert body == expected(batch)
    check_against_domain(body, name)


@pytest.mark.parametrize("compact", PROTOCOLS)
@pytest.mark.parametrize("impl", IMPLS)
def test_unknown_fields_of_every_type_are_skipped(impl, compact):
    plain = impl.decode_batch(encode(batch_fields(SAMPLE), compact), compact=compact)
    noisy = impl.decode_batch(encode(batch_fields(SAMPLE, JUNK), compact), compact=compact)
    assert noisy == plain


@pytest.mark.parametrize("compact", PROTOCOLS)
@pytest.mark.parametrize("impl", IMPLS)
def test_emit_batch_datagrams(impl, compact):
    args = [(1, TType.STRUCT, batch_fields(SAMPLE))]
    for mtype in (TMessageType.ONEWAY, TMessageType.CALL):
        assert impl.decode_emit_batch(message("emitBatch", args, compact, mtype), compact) == expected(SAMPLE)
    with pytest.raises(DecodeError, match="'emitZipkinBatch' is not supported"):
        impl.decode_emit_batch(message("emitZipkinBatch", [(1, TType.LIST, (TType.STRUCT, []))], compact), compact)
    with pytest.raises(DecodeError, match="type 2, expected CALL"):
        impl.decode_emit_batch(message("emitBatch", args, compact, TMessageType.REPLY), compact)
    with pytest.raises(DecodeError):  # the other protocol
        impl.decode_emit_batch(message("emitBatch", args, not compact), compact)


@pytest.mark.parametrize("impl", IMPLS)
def test_emit_batch_old_non_strict_binary(impl):
    body = message("emitBatch", [(1, TType.STRUCT, batch_fields(SAMPLE))], False, strict=False)
    assert body[:4] == struct.pack(">i", len("emitBatch"))
    assert impl.decode_emit_batch(body, False) == expected(SAMPLE)


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_batches(impl):
    assert impl.decode_batch(encode([])) == b""
    assert impl.decode_batch(encode([(2, TType.LIST, (TType.STRUCT, []))]), compact=False) == b""
    body = impl.decode_batch(encode(batch_fields({"process": {"serviceName": "a"}, "spans": []})))
    assert len(otlp(body).resource_spans) == 1


# --- refusals -----------------------------------------------------------------------------------

def both_refuse(make, *args, match: str):
    messages = set()
    for impl in (py_thrift, cy_thrift):
        if impl is None:
            continue
        with pytest.raises(DecodeError, match=match) as info:
            make(impl)(*args)
        messages.add(str(info.value))
    assert len(messages) == 1, messages
    return messages.pop()


@pytest.mark.parametrize("compact", PROTOCOLS)
def test_depth_is_bounded(compact):
    deep: list = []
    for _ in range(100):
        deep = [(1, TType.STRUCT, deep)]
    body = encode([(50, TType.STRUCT, deep)], compact)
    both_refuse(lambda i: i.decode_batch, body, compact, match="nested deeper than 64")
    deep_list: tuple = (TType.BYTE, [])
    for _ in range(100):
        deep_list = (TType.LIST, [deep_list])
    body = encode([(50, TType.LIST, deep_list)], compact)
    both_refuse(lambda i: i.decode_batch, body, compact, match="nested deeper than 64")


@pytest.mark.parametrize("compact", PROTOCOLS)
def test_declared_sizes_larger_than_the_input(compact):
    body = encode([(2, TType.LIST, (TType.STRUCT, [[]] * 3))], compact)
    if compact:
        huge = bytes([0x29, 0xFC]) + b"\xff\xff\xff\xff\x0f"  # field 2 LIST, 15+ structs, size varint
    else:
        huge = bytes([TType.LIST, 0, 2, TType.STRUCT]) + struct.pack(">i", 2_000_000_000)
    both_refuse(lambda i: i.decode_batch, huge + body, compact, match="overruns the buffer")
    if not compact:
        neg = bytes([TType.STRING, 0, 9]) + struct.pack(">i", -1)
        both_refuse(lambda i: i.decode_batch, neg, False, match="negative size -1")


@pytest.mark.parametrize("compact", PROTOCOLS)
def test_wrong_types_and_values(compact):
    body = encode([(2, TType.I32, 5)], compact)
    assert both_refuse(lambda i: i.decode_batch, body, compact, match="Batch.spans") == \
        "Batch.spans: Thrift type i32, expected list (at offset 0)"
    body = encode([(2, TType.LIST, (TType.I64, [1]))], compact)
    both_refuse(lambda i: i.decode_batch, body, compact, match="list of i64, expected struct")
    bad_tag = {"spans": [{"spanId": 1, "tags": [{"key": "k", "vType": "STRING", "vStr": "v"}]}]}
    fields = batch_fields(bad_tag)
    fields[0][2][1][0][-1][2][1][0][1] = (2, TType.I32, 9)  # the tag's vType
    both_refuse(lambda i: i.decode_batch, encode(fields, compact), compact, match="unknown tag type 9")


@pytest.mark.parametrize("compact", PROTOCOLS)
def test_truncations_refused_alike(compact):
    body = encode(batch_fields(SAMPLE, JUNK), compact)
    for cut in range(0, len(body) - 1, 7):
        both_refuse(lambda i: i.decode_batch, body[:cut], compact, match="truncated|overruns")


def test_bad_envelopes():
    both_refuse(lambda i: i.decode_emit_batch, b"\x83\x81\x00", True, match="protocol id 0x83")
    both_refuse(lambda i: i.decode_emit_batch, b"\x82\x82\x00", True, match="compact protocol version 2")
    both_refuse(lambda i: i.decode_emit_batch, b"\x80\x02\x00\x04", False, match="binary protocol version")


@pytest.mark.parametrize("impl", IMPLS)
def test_invalid_utf8_is_replaced(impl):
    batch = {"process": {"serviceName": "s"},
             "spans": [{"spanId": 1, "operationName": "x", "tags": [{"key": "k", "vType": "STRING", "vStr": "v"}]}]}
    fields = batch_fields(batch)
    fields[1][2][1][0][4] = (5, TType.STRING, b"caf\xe9 \xed\xa0\x80 \xf0\x9f\x98")
    (sp,) = otlp(impl.decode_batch(encode(fields))).resource_spans[0].scope_spans[0].spans
    assert sp.name == b"caf\xe9 \xed\xa0\x80 \xf0\x9f\x98".decode("utf-8", "replace")


# --- Zipkin v1 Thrift ---------------------------------------------------------------------------

def endpoint_fields(service, ipv4=0, port=0, ipv6=None):
    out = [(1, TType.I32, ipv4), (2, TType.I16, port), (3, TType.STRING, service)]
    return out + ([(4, TType.STRING, ipv6)] if ipv6 is not None else [])


def zipkin_list(spans, junk=()) -> bytes:
    buf, p = protocol(False)
    p.writeListBegin(TType.STRUCT, len(spans))
    for s in spans:
        write_struct(p, s + list(junk))
    p.writeListEnd()
    return buf.getvalue()


ZIPKIN = [
    [(1, TType.I64, -2), (3, TType.STRING, "get"), (4, TType.I64, 0x1234), (5, TType.I64, 0x99),
     (6, TType.LIST, (TType.STRUCT, [
         [(1, TType.I64, 1_700_000_000_000_000), (2, TType.STRING, "sr"),
          (3, TType.STRUCT, endpoint_fields("Web", 0x0A000001, -1))],
         [(1, TType.I64, 1_700_000_000_000_900), (2, TType.STRING, "ss")]])),
     (8, TType.LIST, (TType.STRUCT, [
         [(1, TType.STRING, "http.path"), (2, TType.STRING, b"/a"), (3, TType.I32, 6)],
         [(1, TType.STRING, "ca"), (2, TType.STRING, b"\x01"), (3, TType.I32, 0),
          (4, TType.STRUCT, endpoint_fields("client", 0, 0, bytes(15) + b"\x01"))],
         [(1, TType.STRING, "n16"), (2, TType.STRING, b"\xff\xfe"), (3, TType.I32, 2)],
         [(1, TType.STRING, "n32"), (2, TType.STRING, struct.pack(">i", -5)), (3, TType.I32, 3)],
         [(1, TType.STRING, "n64"), (2, TType.STRING, struct.pack(">q", 1 << 40)), (3, TType.I32, 4)],
         [(1, TType.STRING, "d"), (2, TType.STRING, struct.pack(">d", 2.5)), (3, TType.I32, 5)],
         [(1, TType.STRING, "raw"), (2, TType.STRING, b"\x00\x01"), (3, TType.I32, 1)],
         [(1, TType.STRING, "short"), (2, TType.STRING, b"\x00"), (3, TType.I32, 4)]])),
     (9, TType.BOOL, True), (10, TType.I64, 1_700_000_000_000_000), (11, TType.I64, 900),
     (12, TType.I64, 0x77)],
    [(1, TType.I64, 5), (3, TType.STRING, "child"), (4, TType.I64, 6)],
]

ZIPKIN_JSON = [
    {"traceId": "0000000000000077fffffffffffffffe", "id": "0000000000001234", "name": "get",
     "parentId": "0000000000000099", "timestamp": 1_700_000_000_000_000, "duration": 900,
     "annotations": [
         {"timestamp": 1_700_000_000_000_000, "value": "sr",
          "endpoint": {"serviceName": "Web", "ipv4": "10.0.0.1", "port": 65535}},
         {"timestamp": 1_700_000_000_000_900, "value": "ss"}],
     "binaryAnnotations": [
         {"key": "http.path", "value": "/a"},
         {"key": "ca", "value": True, "type": "BOOL", "endpoint": {"serviceName": "client", "ipv6": "::1"}},
         {"key": "n16", "value": -2, "type": "I16"},
         {"key": "n32", "value": -5, "type": "I32"},
         {"key": "n64", "value": 1 << 40, "type": "I64"},
         {"key": "d", "value": 2.5, "type": "DOUBLE"},
         {"key": "raw", "value": "AAE=", "type": "BYTES"},
         {"key": "short", "value": "AA==", "type": "BYTES"}],
     "debug": True},
    {"traceId": "0000000000000005", "id": "0000000000000006", "name": "child", "annotations": [],
     "binaryAnnotations": []},
]


@pytest.mark.parametrize("impl", IMPLS)
def test_zipkin_v1_thrift(impl):
    assert impl.decode_zipkin_v1_thrift(zipkin_list(ZIPKIN)) == ZIPKIN_JSON
    assert impl.decode_zipkin_v1_thrift(zipkin_list(ZIPKIN, JUNK)) == ZIPKIN_JSON
    assert impl.decode_zipkin_v1_thrift(zipkin_list([])) == []


def test_zipkin_v1_refusals():
    body = zipkin_list(ZIPKIN)
    for cut in range(0, len(body) - 1, 5):
        both_refuse(lambda i: i.decode_zipkin_v1_thrift, body[:cut], match="truncated|overruns")
    both_refuse(lambda i: i.decode_zipkin_v1_thrift, bytes([TType.I32]) + struct.pack(">i", 1) + b"\0\0\0\0",
                match="list of i32, expected struct")


# --- Hypothesis: the twins agree ----------------------------------------------------------------

SPECIAL_KEYS = ["span.kind", "error", "otel.status_code", "otel.status_description", "http.status_code",
                "http.status_message", "w3c.tracestate", "otel.scope.name", "otel.scope.version",
                "otel.library.name", "otel.library.version", "event", "hostname", "jaeger.version",
                "host.name", "service.name", "k", "k2"]
I64 = st.integers(-(1 << 63), (1 << 63) - 1)
SMALL_I64 = st.sampled_from([0, 1, 2, -1, 7])


@st.composite
def tags(draw):
    vt = draw(st.sampled_from(list(VTYPE_NUM)))
    t = {"key": draw(st.sampled_from(SPECIAL_KEYS) | st.text(max_size=6)), "vType": vt}
    if vt == "STRING":
        t["vStr"] = draw(st.sampled_from(["true", "false", "server", "client", "OK", "error", "404", "500",
                                          "-12", "lib", "1.0"]) | st.text(max_size=8))
    elif vt == "DOUBLE":
        t["vDouble"] = draw(st.floats(allow_nan=False))
    elif vt == "BOOL":
        t["vBool"] = draw(st.booleans())
    elif vt == "LONG":
        t["vLong"] = draw(st.sampled_from([200, 404, 500, 399, 99]) | I64)
    else:
        t["vBinary"] = base64.b64encode(draw(st.binary(max_size=6))).decode()
    if draw(st.booleans()):  # a value field of another type, sent too: ignored
        t.setdefault("vStr", "stray")
    return t


@st.composite
def spans(draw):
    low, high = draw(SMALL_I64 | I64), draw(SMALL_I64)
    ids = st.sampled_from([0, 1, 2, 3]) | I64
    refs = draw(st.lists(st.fixed_dictionaries({
        "refType": st.sampled_from(["CHILD_OF", "FOLLOWS_FROM"]),
        "traceIdLow": st.sampled_from([low, 9]), "traceIdHigh": st.sampled_from([high, 0]),
        "spanId": ids}), max_size=3))
    return {"traceIdLow": low, "traceIdHigh": high, "spanId": draw(ids), "parentSpanId": draw(ids),
            "operationName": draw(st.text(max_size=8)), "references": refs,
            "flags": draw(st.integers(-(1 << 31), (1 << 31) - 1)), "startTime": draw(I64 | SMALL_I64),
            "duration": draw(I64 | SMALL_I64), "tags": draw(st.lists(tags(), max_size=6)),
            "logs": draw(st.lists(st.fixed_dictionaries({"timestamp": I64, "fields": st.lists(tags(), max_size=3)}),
                                  max_size=2))}


batches = st.fixed_dictionaries({
    "process": st.none() | st.fixed_dictionaries({"serviceName": st.text(max_size=6),
                                                  "tags": st.lists(tags(), max_size=4)}),
    "spans": st.lists(spans(), max_size=5)})


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except DecodeError as exc:
        return ("error", str(exc))


@BOTH
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches, compact=st.booleans())
def test_twins_agree_on_valid_batches(batch, compact):
    body = encode(batch_fields(batch), compact)
    want = expected(batch)
    assert py_thrift.decode_batch(body, compact=compact) == want
    assert cy_thrift.decode_batch(body, compact=compact) == want
    otlp(want)  # protobuf parses it


@BOTH
@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=200), compact=st.booleans())
def test_twins_agree_on_garbage(body, compact):
    assert outcome(py_thrift.decode_batch, body, compact) == outcome(cy_thrift.decode_batch, body, compact)
    assert outcome(py_thrift.decode_emit_batch, body, compact) == \
        outcome(cy_thrift.decode_emit_batch, body, compact)
    assert outcome(py_thrift.decode_zipkin_v1_thrift, body) == outcome(cy_thrift.decode_zipkin_v1_thrift, body)


@BOTH
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches, compact=st.booleans(), data=st.data())
def test_twins_agree_on_damaged_batches(batch, compact, data):
    body = bytearray(message("emitBatch", [(1, TType.STRUCT, batch_fields(batch, JUNK[:4]))], compact))
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] ^= 1 << data.draw(st.integers(0, 7))
    body = bytes(body[:data.draw(st.integers(0, len(body)))])
    py = outcome(py_thrift.decode_emit_batch, body, compact)
    assert py == outcome(cy_thrift.decode_emit_batch, body, compact)
    if py[0] == "ok":
        otlp(py[1])


@BOTH
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_twins_agree_on_damaged_zipkin(data):
    body = bytearray(zipkin_list(ZIPKIN))
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] ^= 1 << data.draw(st.integers(0, 7))
    body = bytes(body[:data.draw(st.integers(0, len(body)))])
    py = outcome(py_thrift.decode_zipkin_v1_thrift, body)
    cy = outcome(cy_thrift.decode_zipkin_v1_thrift, body)
    assert json.dumps(py, sort_keys=True) == json.dumps(cy, sort_keys=True)
