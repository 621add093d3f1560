"""Tests for the decode stage's OTLP/JSON codec (collector/codec/otlp_json.py).

Fixtures are read in place from ../shared/conformance/: the 32 Jaeger storage-suite traces
(OTLP/JSON, lower-case hex) and the official opentelemetry-proto example (upper-case hex).
"""
from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from collector.codec.otlp_json import json_to_protobuf, traces_to_json
from collector.errors import DecodeError

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance"
JAEGER_TRACES = sorted((CONFORMANCE / "jaeger" / "traces").glob("*.json"))
OTLP_EXAMPLE = CONFORMANCE / "otlp" / "trace.json"
ALL_FIXTURES = JAEGER_TRACES + [OTLP_EXAMPLE]
GET_TRACE_SNAPSHOT = CONFORMANCE / "jaeger" / "query-api" / "apiv3-snapshots" / "GetTrace.json"

INT64_KEYS = {"startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue"}
ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def test_fixtures_are_present():
    assert len(JAEGER_TRACES) == 32
    assert OTLP_EXAMPLE.is_file()


def decode(body) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(json_to_protobuf(body))


def span_body(**span) -> bytes:
    """A one-span request body with the given span fields."""
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def only_span(msg) -> Span:
    return msg.resource_spans[0].scope_spans[0].spans[0]


# --------------------------------------------------------------------------- independent reading


def json_value(v: dict):
    """The Python value an OTLP/JSON AnyValue denotes, read without the protobuf library."""
    if "stringValue" in v:
        return ("s", v["stringValue"])
    if "boolValue" in v:
        return ("b", v["boolValue"])
    if "intValue" in v:
        return ("i", int(v["intValue"]))
    if "doubleValue" in v:
        return ("d", float(v["doubleValue"]))
    if "bytesValue" in v:
        return ("x", base64.b64decode(v["bytesValue"]))
    if "arrayValue" in v:
        return ("a", [json_value(x) for x in v["arrayValue"].get("values", [])])
    if "kvlistValue" in v:
        return ("k", json_attrs(v["kvlistValue"].get("values", [])))
    return None


def pb_value(v):
    which = v.WhichOneof("value")
    if which == "string_value":
        return ("s", v.string_value)
    if which == "bool_value":
        return ("b", v.bool_value)
    if which == "int_value":
        return ("i", v.int_value)
    if which == "double_value":
        return ("d", v.double_value)
    if which == "bytes_value":
        return ("x", v.bytes_value)
    if which == "array_value":
        return ("a", [pb_value(x) for x in v.array_value.values])
    if which == "kvlist_value":
        return ("k", pb_attrs(v.kvlist_value.values))
    return None


def json_attrs(attrs: list) -> list:
    return [(a["key"], json_value(a.get("value", {}))) for a in attrs]


def pb_attrs(attrs) -> list:
    return [(a.key, pb_value(a.value)) for a in attrs]


def hex_id(doc: dict, key: str) -> bytes:
    return bytes.fromhex(doc.get(key, ""))


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_fixture_decodes_to_the_same_spans(path):
    doc = json.loads(path.read_bytes())
    msg = decode(path.read_bytes())
    assert len(msg.resource_spans) == len(doc["resourceSpans"])
    span_count = 0
    for rs_json, rs in zip(doc["resourceSpans"], msg.resource_spans):
        assert pb_attrs(rs.resource.attributes) == json_attrs(rs_json.get("resource", {}).get("attributes", []))
        assert len(rs.scope_spans) == len(rs_json["scopeSpans"])
        for ss_json, ss in zip(rs_json["scopeSpans"], rs.scope_spans):
            scope_json = ss_json.get("scope", {})
            assert ss.scope.name == scope_json.get("name", "")
            assert ss.scope.version == scope_json.get("version", "")
            assert pb_attrs(ss.scope.attributes) == json_attrs(scope_json.get("attributes", []))
            assert len(ss.spans) == len(ss_json["spans"])
            for sj, span in zip(ss_json["spans"], ss.spans):
                span_count += 1
                assert span.trace_id == hex_id(sj, "traceId") and len(span.trace_id) == 16
                assert span.span_id == hex_id(sj, "spanId") and len(span.span_id) == 8
                assert span.parent_span_id == hex_id(sj, "parentSpanId")
                assert span.name == sj["name"]
                assert span.kind == sj.get("kind", 0)
                assert span.start_time_unix_nano == int(sj["startTimeUnixNano"])
                assert span.end_time_unix_nano == int(sj["endTimeUnixNano"])
                assert pb_attrs(span.attributes) == json_attrs(sj.get("attributes", []))
                assert len(span.events) == len(sj.get("events", []))
                for ej, event in zip(sj.get("events", []), span.events):
                    assert event.time_unix_nano == int(ej["timeUnixNano"])
                    assert event.name == ej.get("name", "")
                    assert pb_attrs(event.attributes) == json_attrs(ej.get("attributes", []))
                assert len(span.links) == len(sj.get("links", []))
                for lj, link in zip(sj.get("links", []), span.links):
                    assert link.trace_id == hex_id(lj, "traceId")
                    assert link.span_id == hex_id(lj, "spanId")
                    assert pb_attrs(link.attributes) == json_attrs(lj.get("attributes", []))
    assert span_count > 0


def test_official_example_upper_case_ids():
    span = only_span(decode(OTLP_EXAMPLE.read_bytes()))
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_000_000_000


def test_bytes_value_is_base64_not_hex():
    span = only_span(decode((CONFORMANCE / "jaeger" / "traces" / "span_tags_trace.json").read_bytes()))
    blob = [a.value.bytes_value for a in span.attributes if a.key == "blob"]
    assert blob == [b"\x00\x00\x30\x39"]  # "AAAwOQ==" = 12345 big-endian


# --------------------------------------------------------------------------- round trip


def normalise(obj, key=None):
    """Input JSON in the form traces_to_json writes: lower-case IDs, int64 as strings."""
    if isinstance(obj, dict):
        return {k: normalise(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    if key in ID_KEYS and isinstance(obj, str):
        return obj.lower()
    if key in INT64_KEYS:
        return str(int(obj))
    return obj


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_round_trip(path):
    doc = json.loads(path.read_bytes())
    msg = TracesData.FromString(json_to_protobuf(path.read_bytes()))
    assert traces_to_json(msg) == normalise(doc)
    # the request message renders the same way
    assert traces_to_json(decode(path.read_bytes())) == normalise(doc)


@pytest.mark.parametrize("path", JAEGER_TRACES[:4], ids=lambda p: p.name)
def test_upper_case_and_numeric_int64_input(path):
    doc = json.loads(path.read_bytes())
    varied = copy.deepcopy(doc)
    for rs in varied["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ID_KEYS & span.keys():
                    span[key] = span[key].upper()
                span["startTimeUnixNano"] = int(span["startTimeUnixNano"])  # a JSON number
    body = json.dumps(varied).encode()
    assert json_to_protobuf(body) == json_to_protobuf(path.read_bytes())
    assert traces_to_json(decode(body)) == normalise(doc)


def test_traces_to_json_matches_api_v3_snapshot():
    expected = json.loads(GET_TRACE_SNAPSHOT.read_bytes())["result"]
    td = TracesData()
    rs = td.resource_spans.add()
    rs.resource.SetInParent()
    ss = rs.scope_spans.add()
    ss.scope.SetInParent()
    span = ss.spans.add(
        trace_id=(1).to_bytes(16, "big"), span_id=(2).to_bytes(8, "big"), name="foobar", kind=Span.SPAN_KIND_SERVER
    )
    span.status.code = span.status.STATUS_CODE_ERROR
    assert traces_to_json(td) == expected


def test_traces_to_json_links_and_int64():
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
        start_time_unix_nano=2**63 + 5,
    )
    link = span.links.add(trace_id=bytes.fromhex("ff" * 16), span_id=bytes.fromhex("01" * 8))
    attr = link.attributes.add(key="n")
    attr.value.int_value = -(2**63)
    out = traces_to_json(td)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert out["parentSpanId"] == "00f067aa0ba902b7"
    assert out["startTimeUnixNano"] == str(2**63 + 5)
    assert out["links"] == [
        {"traceId": "ff" * 16, "spanId": "01" * 8, "attributes": [{"key": "n", "value": {"intValue": str(-(2**63))}}]}
    ]


# --------------------------------------------------------------------------- lenient cases


def test_empty_ids_are_absent():
    span = only_span(decode(span_body(traceId="01" * 16, spanId="02" * 8, parentSpanId="", name="root")))
    assert span.parent_span_id == b""
    assert not span.HasField("status")


def test_wrong_length_ids_are_kept_at_their_length():
    body = span_body(
        traceId="0102030405060708",  # 8 bytes where 16 belong
        spanId="0a0b0c",  # 3 bytes
        parentSpanId="00" * 9,
        links=[{"traceId": "abcd", "spanId": "ff" * 10}],
    )
    span = only_span(decode(body))
    assert span.trace_id == bytes.fromhex("0102030405060708")
    assert span.span_id == b"\x0a\x0b\x0c"
    assert span.parent_span_id == bytes(9)
    assert span.links[0].trace_id == b"\xab\xcd"
    assert span.links[0].span_id == b"\xff" * 10


def test_unknown_fields_are_ignored():
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "someFutureField": {"x": [1, 2]},
                    "scopeSpans": [{"spans": [{"traceId": "01" * 16, "name": "n", "brandNew": True}]}],
                }
            ],
            "extra": 1,
        }
    ).encode()
    assert only_span(decode(body)).name == "n"


def test_nested_bytes_values_and_url_safe_base64():
    attrs = [
        {"key": "arr", "value": {"arrayValue": {"values": [{"bytesValue": "_-8"}, {"intValue": 7}]}}},
        {"key": "map", "value": {"kvlistValue": {"values": [{"key": "b", "value": {"bytesValue": "AAE"}}]}}},
    ]
    span = only_span(decode(span_body(traceId="01" * 16, attributes=attrs)))
    assert span.attributes[0].value.array_value.values[0].bytes_value == b"\xff\xef"
    assert span.attributes[0].value.array_value.values[1].int_value == 7
    assert span.attributes[1].value.kvlist_value.values[0].value.bytes_value == b"\x00\x01"


def test_accepts_bytearray_and_bom():
    body = span_body(traceId="01" * 16, name="x")
    assert json_to_protobuf(bytearray(b"\xef\xbb\xbf" + body)) == json_to_protobuf(body)


def test_empty_request_is_valid():
    assert json_to_protobuf(b"{}") == b""


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "body, fragments",
    [
        (b"", ["invalid JSON", "line 1 column 1"]),
        (b"not json", ["invalid JSON: Expecting value at line 1 column 1"]),
        (b'{"resourceSpans": [', ["invalid JSON"]),
        (b"\xff\xfe{}", ["invalid JSON", "UTF-8"]),
        (b"[]", ["JSON object", "array"]),
        (b"42", ["JSON object", "number"]),
        (b'"x"', ["JSON object", "string"]),
        (b'{"resourceSpans": {}}', ["resourceSpans: expected an array"]),
        (b'{"resourceSpans": [1]}', ["resourceSpans[0]: expected an object, got a number"]),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": "no"}]}]}',
            ["resourceSpans[0].scopeSpans[0].spans: expected an array, got a string"],
        ),
    ],
)
def test_refuses_bad_documents(body, fragments):
    with pytest.raises(DecodeError) as info:
        json_to_protobuf(body)
    for fragment in fragments:
        assert fragment in str(info.value)


def _spans(*spans) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}).encode()


@pytest.mark.parametrize(
    "body, fragments",
    [
        (
            _spans({}, {}, {"traceId": "xyz"}),
            ["resourceSpans[0].scopeSpans[0].spans[2].traceId: 'xyz' is not hex"],
        ),
        (_spans({"spanId": "0102 0304"}), ["spans[0].spanId", "is not hex"]),
        (_spans({"spanId": "abc"}), ["spans[0].spanId", "odd number of digits"]),
        (_spans({"parentSpanId": 12}), ["spans[0].parentSpanId: expected a hex string, got a number"]),
        (
            _spans({"links": [{"traceId": "01" * 16, "spanId": "zz"}]}),
            ["spans[0].links[0].spanId: 'zz' is not hex"],
        ),
        (
            _spans({"attributes": [{"key": "b", "value": {"bytesValue": "!!!"}}]}),
            ["spans[0].attributes[0].value.bytesValue: '!!!' is not valid base64"],
        ),
        (
            _spans({"attributes": [{"key": "b", "value": {"bytesValue": "AAAAA"}}]}),
            ["attributes[0].value.bytesValue", "not valid base64"],
        ),
        (
            _spans({"events": [{"attributes": [{"key": "b", "value": {"bytesValue": "A="}}]}]}),
            ["spans[0].events[0].attributes[0].value.bytesValue", "not valid base64"],
        ),
        (_spans({"startTimeUnixNano": "abc"}), ["startTimeUnixNano", "abc"]),
        (_spans({"startTimeUnixNano": 1.5}), ["startTimeUnixNano", "1.5"]),
        (_spans({"startTimeUnixNano": True}), ["startTimeUnixNano"]),
        (_spans({"startTimeUnixNano": {"n": 1}}), ["startTimeUnixNano"]),
        (_spans({"startTimeUnixNano": "-1"}), ["startTimeUnixNano"]),
        (_spans({"name": 5}), ["name"]),
        (_spans({"kind": "sideways"}), ["spans[0].kind: unknown value 'sideways'"]),
        (_spans({"status": {"code": "BAD"}}), ["spans[0].status.code: unknown value"]),
        (_spans({"kind": 1.5}), ["spans[0].kind: expected an integer, got 1.5"]),
        (_spans({"kind": True}), ["spans[0].kind: expected an integer"]),
        (
            _spans({"attributes": [{"key": "a", "value": {"intValue": "99999999999999999999"}}]}),
            ["intValue"],
        ),
    ],
)
def test_refuses_bad_fields_naming_them(body, fragments):
    with pytest.raises(DecodeError) as info:
        json_to_protobuf(body)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_deep_nesting_is_a_decode_error():
    value: dict = {"stringValue": "leaf"}
    for _ in range(150):
        value = {"arrayValue": {"values": [value]}}
    body = _spans({"attributes": [{"key": "deep", "value": value}]})
    with pytest.raises(DecodeError):
        json_to_protobuf(body)
    with pytest.raises(DecodeError):
        json_to_protobuf(b"[" * 100_000)


def test_enum_names_and_digit_strings_are_accepted():
    for kind in (2, "2", "SPAN_KIND_SERVER", 2.0):
        span = only_span(decode(_spans({"kind": kind, "status": {"code": "STATUS_CODE_ERROR"}})))
        assert span.kind == Span.SPAN_KIND_SERVER
        assert span.status.code == span.status.STATUS_CODE_ERROR
