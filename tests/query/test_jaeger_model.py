"""Tests for the query stage's Jaeger UI / HTTP API JSON model (query/jaeger.py).

Fixtures are read in place from ../shared/conformance/jaeger/ (see its README §1, §2, §6).
"""
from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from collector.codec.otlp_json import json_to_protobuf
from query.jaeger import NO_SERVICE_NAME, WARNINGS_ATTRIBUTE, envelope, to_jaeger_trace, to_jaeger_traces

JAEGER = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "jaeger"
TRANSFORM = JAEGER / "query-api" / "transform"
UIMODEL = JAEGER / "query-api" / "uimodel"
TRACES = JAEGER / "traces"


def load_otlp(path: Path) -> TracesData:
    return TracesData.FromString(json_to_protobuf(path.read_bytes()))


# --------------------------------------------------------------------------- transform fixture


def test_transform_fixture_renders_exactly():
    """POST /api/transform: OTLP/JSON in, the whole HTTP API envelope out, tag order included."""
    expected = json.loads((TRANSFORM / "otlp2jaeger-out.json").read_bytes())
    traces = load_otlp(TRANSFORM / "otlp2jaeger-in.json")
    assert to_jaeger_trace(traces) == expected["data"][0]
    assert envelope([to_jaeger_trace(traces)]) == expected
    assert envelope(to_jaeger_traces(traces)) == expected


def test_envelope_defaults():
    assert envelope([]) == {"data": [], "total": 0, "limit": 0, "offset": 0, "errors": None}
    errors = [{"code": 404, "msg": "trace not found"}]
    assert envelope([], errors)["errors"] == errors


# --------------------------------------------------------------------------- uimodel fixture


def _rfc3339_ns(text: str) -> int:
    """Epoch ns of an RFC 3339 timestamp with up to 9 fractional digits and any UTC offset."""
    m = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text)
    assert m, text
    whole = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return int(whole.timestamp()) * 10**9 + int((m.group(2) or "0").ljust(9, "0"))


_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9}


def _duration_ns(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s)", text)
    assert m, text
    return round(float(m.group(1)) * _DURATION_UNITS[m.group(2)])


def _set_value(any_value, kv: dict) -> None:
    vtype = kv.get("vType", "STRING")
    if vtype == "STRING":
        any_value.string_value = kv.get("vStr", "")
    elif vtype == "BOOL":
        any_value.bool_value = kv.get("vBool", False)
    elif vtype == "INT64":
        any_value.int_value = int(kv.get("vInt64", 0))
    elif vtype == "FLOAT64":
        any_value.double_value = float(kv.get("vFloat64", 0))
    elif vtype == "BINARY":
        any_value.bytes_value = base64.b64decode(kv.get("vBinary", ""))
    else:
        raise AssertionError(vtype)


_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}


def model_to_otlp(model: dict) -> TracesData:
    """The legacy loader's api_v2 model → OTLP mapping (README §2), written for this test.

    process → resource (serviceName → service.name, tags → attributes); tags → attributes with
    ``span.kind`` → kind; logs → events (an ``event`` string field → the event name); the first
    CHILD_OF reference to the same trace → parent; every other reference → a link carrying
    ``opentracing.ref_type``; span warnings → the ``@jaeger@warnings`` string-array attribute
    (Jaeger v2's convention).  One ResourceSpans per span, so process de-duplication is tested.
    """
    td = TracesData()
    for js in model["spans"]:
        rs = td.resource_spans.add()
        process = js.get("process", {})
        service = rs.resource.attributes.add(key="service.name")
        service.value.string_value = process.get("serviceName", "")
        for kv in process.get("tags", []):
            _set_value(rs.resource.attributes.add(key=kv["key"]).value, kv)
        span = rs.scope_spans.add().spans.add()
        span.trace_id = base64.b64decode(js["traceId"])
        span.span_id = base64.b64decode(js["spanId"])
        span.name = js.get("operationName", "")
        span.start_time_unix_nano = _rfc3339_ns(js["startTime"])
        span.end_time_unix_nano = span.start_time_unix_nano + _duration_ns(js["duration"])
        for kv in js.get("tags", []):
            if kv["key"] == "span.kind":
                span.kind = _KINDS[kv["vStr"]]
                continue
            _set_value(span.attributes.add(key=kv["key"]).value, kv)
        parent_taken = False
        for ref in js.get("references", []):
            ref_trace = base64.b64decode(ref["traceId"])
            ref_span = base64.b64decode(ref["spanId"])
            ref_type = ref.get("refType", "CHILD_OF")
            if not parent_taken and ref_type == "CHILD_OF" and ref_trace == span.trace_id:
                span.parent_span_id = ref_span
                parent_taken = True
                continue
            link = span.links.add(trace_id=ref_trace, span_id=ref_span)
            link.attributes.add(key="opentracing.ref_type").value.string_value = ref_type.lower()
        for log in js.get("logs", []):
            event = span.events.add(time_unix_nano=_rfc3339_ns(log["timestamp"]))
            for kv in log.get("fields", []):
                if kv["key"] == "event" and kv.get("vType", "STRING") == "STRING" and not event.name:
                    event.name = kv.get("vStr", "")
                    continue
                _set_value(event.attributes.add(key=kv["key"]).value, kv)
        if js.get("warnings"):
            values = span.attributes.add(key=WARNINGS_ATTRIBUTE).value.array_value.values
            for warning in js["warnings"]:
                values.add().string_value = warning
    return td


def test_uimodel_fixture_through_otlp():
    """domain_01.json (api_v2 model) → OTLP (as an OTLP store holds it) → UI JSON vs ui_01.json.

    Everything the fixture shows survives, with these differences, asserted explicitly below:

    * Trace-level ``warnings`` (``["some trace warning"]``): OTLP ``TracesData`` has no place
      for them, so we render ``null``.  (Span warnings survive, as ``@jaeger@warnings``.)
    * Span 4 references span 2 twice, ``CHILD_OF`` and ``FOLLOWS_FROM``.  In OTLP that is
      parent = 2 plus a ``follows_from`` link to 2, which Jaeger's OTLP → model translation
      (and ours) renders as one reference, the parent retyped ``FOLLOWS_FROM``, put first.
      OTLP cannot tell this apart from a span whose only reference to its parent was
      ``FOLLOWS_FROM`` (the OTel Collector's Jaeger mapping makes such a span's parent from it),
      and that is the common case, so the collapse is the right rendering.
    * Not differences: the ``-05:00`` offset is only an input spelling (epoch µs are equal),
      and the sub-µs nanoseconds (``.639875139``) are truncated on both sides.
    """
    model = json.loads((UIMODEL / "domain_01.json").read_bytes())
    expected = json.loads((UIMODEL / "ui_01.json").read_bytes())
    got = to_jaeger_trace(model_to_otlp(model))

    assert expected["warnings"] == ["some trace warning"]
    assert got["warnings"] is None
    assert got["traceID"] == expected["traceID"] == "0000000000000001"
    assert got["processes"] == expected["processes"]
    assert len(got["spans"]) == len(expected["spans"]) == 5  # the duplicate span ID 2 is kept

    for g, e in zip(got["spans"], expected["spans"]):
        for field in ("traceID", "spanID", "operationName", "startTime", "duration", "tags", "logs",
                      "processID", "warnings"):
            assert g[field] == e[field], (e["spanID"], field)
        if e["operationName"] == "reference-test":
            assert e["references"] == [
                {"refType": "CHILD_OF", "traceID": "00000000000000ff", "spanID": "00000000000000ff"},
                {"refType": "CHILD_OF", "traceID": "0000000000000001", "spanID": "0000000000000002"},
                {"refType": "FOLLOWS_FROM", "traceID": "0000000000000001", "spanID": "0000000000000002"},
            ]
            assert g["references"] == [
                {"refType": "FOLLOWS_FROM", "traceID": "0000000000000001", "spanID": "0000000000000002"},
                {"refType": "CHILD_OF", "traceID": "00000000000000ff", "spanID": "00000000000000ff"},
            ]
        else:
            assert g["references"] == e["references"]
        assert list(g) == list(e)  # same keys, same order


# --------------------------------------------------------------------------- storage fixtures


def test_example_trace_three_services():
    got = to_jaeger_trace(load_otlp(TRACES / "example_trace.json"))
    assert got["traceID"] == "0000000000000011"
    assert got["warnings"] is None
    assert got["processes"] == {
        "p1": {"serviceName": "example-service-2", "tags": []},
        "p2": {"serviceName": "example-service-3", "tags": []},
        "p3": {"serviceName": "example-service-1", "tags": []},
    }
    rows = [
        (s["spanID"], s["operationName"], s["processID"], s["startTime"], s["duration"], s["tags"], s["references"])
        for s in got["spans"]
    ]
    kind = lambda k: [{"key": "span.kind", "type": "string", "value": k}]  # noqa: E731
    start = 1485449191639875
    assert rows == [  # file order (grouped by resource), not span-ID order
        ("0000000000000004", "example-operation-2", "p1", start, 100, [], []),
        ("0000000000000005", "example-operation-1", "p2", start, 100, [], []),
        ("0000000000000003", "example-operation-1", "p3", start, 100, [], []),
        ("0000000000000006", "example-operation-3", "p3", start, 100, kind("server"), []),
        ("0000000000000007", "example-operation-4", "p3", start, 100, kind("client"), []),
    ]
    for span in got["spans"]:  # two attribute-less events each
        assert span["logs"] == [{"timestamp": start, "fields": []}] * 2


def test_parent_becomes_child_of_reference():
    """opname_maxdur_trace lists the child (3, parent 2) before its parent (example_trace has no parents)."""
    spans = {s["spanID"]: s for s in to_jaeger_trace(load_otlp(TRACES / "opname_maxdur_trace.json"))["spans"]}
    assert spans["0000000000000003"]["references"] == [
        {"refType": "CHILD_OF", "traceID": "0000000000000007", "spanID": "0000000000000002"}
    ]
    assert spans["0000000000000002"]["references"] == []
    assert spans["0000000000000002"]["duration"] == 2 and spans["0000000000000003"]["duration"] == 1


@pytest.mark.parametrize("name", ["tags_opname_trace", "link_attributes_trace"])
def test_links_become_typed_references(name):
    (span,) = to_jaeger_trace(load_otlp(TRACES / f"{name}.json"))["spans"]
    assert span["references"] == [
        {"refType": "CHILD_OF", "traceID": "00000000000000ff", "spanID": "00000000000000ff"},
        {"refType": "CHILD_OF", "traceID": "0000000000000001", "spanID": "0000000000000002"},
        {"refType": "FOLLOWS_FROM", "traceID": "0000000000000001", "spanID": "0000000000000002"},
    ]


def test_typed_tags_scope_and_process_tags():
    traces = load_otlp(TRACES / "scope_name_version_trace.json")
    (span,) = to_jaeger_trace(traces)["spans"]
    assert span["tags"][:2] == [
        {"key": "otel.scope.name", "type": "string", "value": "testing-library"},
        {"key": "otel.scope.version", "type": "string", "value": "1.1.1"},
    ]
    (span,) = to_jaeger_trace(load_otlp(TRACES / "span_tags_trace.json"))["spans"]
    by_key = {t["key"]: t for t in span["tags"]}
    assert by_key["sameplacetag2"] == {"key": "sameplacetag2", "type": "int64", "value": 123}
    assert by_key["sameplacetag3"] == {"key": "sameplacetag3", "type": "float64", "value": 72.5}
    assert by_key["sameplacetag4"] == {"key": "sameplacetag4", "type": "bool", "value": True}
    assert by_key["blob"] == {"key": "blob", "type": "binary", "value": "AAAwOQ=="}
    trace = to_jaeger_trace(load_otlp(TRACES / "process_tags_trace.json"))
    (process,) = trace["processes"].values()
    assert process["serviceName"] == "query03-service"
    assert {t["key"] for t in process["tags"]} >= {"sameplacetag1", "sameplacetag2"}
    assert all(t["key"] != "service.name" for t in process["tags"])


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.json")), ids=lambda p: p.name)
def test_every_storage_fixture_renders_as_json(path):
    traces = load_otlp(path)
    (trace,) = to_jaeger_traces(traces)
    assert len(trace["spans"]) == sum(len(ss.spans) for rs in traces.resource_spans for ss in rs.scope_spans)
    assert all(s["processID"] in trace["processes"] for s in trace["spans"])
    json.dumps(trace, allow_nan=False)


# --------------------------------------------------------------------------- rules without a fixture


def _one_span(**fields) -> tuple[TracesData, Span]:
    td = TracesData()
    rs = td.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    span = rs.scope_spans.add().spans.add(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        start_time_unix_nano=1_000_999,
        end_time_unix_nano=3_000_998,
        **fields,
    )
    return td, span


def test_128_bit_trace_id_status_and_trace_state():
    td, span = _one_span(kind=Span.SPAN_KIND_CONSUMER, trace_state="rojo=00f067aa0ba902b7")
    span.status.code = span.status.STATUS_CODE_ERROR
    span.status.message = "boom"
    span.attributes.add(key="a").value.string_value = "b"
    got = to_jaeger_trace(td)
    assert got["traceID"] == "0af7651916cd43dd8448eb211c80319c"
    (s,) = got["spans"]
    assert (s["startTime"], s["duration"]) == (1000, 1999)  # ns truncated, duration from ns
    assert s["tags"] == [
        {"key": "a", "type": "string", "value": "b"},
        {"key": "span.kind", "type": "string", "value": "consumer"},
        {"key": "otel.status_code", "type": "string", "value": "ERROR"},
        {"key": "error", "type": "bool", "value": True},
        {"key": "otel.status_description", "type": "string", "value": "boom"},
        {"key": "w3c.tracestate", "type": "string", "value": "rojo=00f067aa0ba902b7"},
    ]


def test_status_ok_and_unspecified_kind():
    td, span = _one_span()
    span.status.code = span.status.STATUS_CODE_OK
    (s,) = to_jaeger_trace(td)["spans"]
    assert s["tags"] == [{"key": "otel.status_code", "type": "string", "value": "OK"}]


def test_value_types():
    td, span = _one_span()
    values = {
        "big": lambda v: setattr(v, "int_value", 2**53),
        "safe": lambda v: setattr(v, "int_value", -(2**53 - 1)),
        "nan": lambda v: setattr(v, "double_value", float("nan")),
        "empty": lambda v: v.SetInParent(),
    }
    for key, setter in values.items():
        setter(span.attributes.add(key=key).value)
    arr = span.attributes.add(key="arr").value.array_value.values
    arr.add().string_value = "<x>"
    arr.add().double_value = 1.0
    arr.add().bytes_value = b"\x00\x01"
    kvl = span.attributes.add(key="map").value.kvlist_value.values
    kvl.add(key="z").value.bool_value = True
    kvl.add(key="a").value.int_value = 3
    (s,) = to_jaeger_trace(td)["spans"]
    assert s["tags"] == [
        {"key": "big", "type": "int64", "value": "9007199254740992"},
        {"key": "safe", "type": "int64", "value": -(2**53 - 1)},
        {"key": "nan", "type": "float64", "value": "NaN"},
        {"key": "empty", "type": "string", "value": ""},
        {"key": "arr", "type": "string", "value": '["\\u003cx\\u003e",1,"AAE="]'},
        {"key": "map", "type": "string", "value": '{"a":3,"z":true}'},
    ]
    json.dumps(s, allow_nan=False)


def test_events_links_and_warnings():
    td, span = _one_span(parent_span_id=bytes.fromhex("00f067aa0ba902b7"))
    named = span.events.add(time_unix_nano=5_999, name="retry")
    named.attributes.add(key="n").value.int_value = 1
    shadowed = span.events.add(time_unix_nano=6_000, name="ignored")
    shadowed.attributes.add(key="event").value.string_value = "explicit"
    span.links.add(trace_id=bytes(15) + b"\x07", span_id=bytes(7) + b"\x09")  # no ref type
    same_as_parent = span.links.add(trace_id=span.trace_id, span_id=span.parent_span_id)
    same_as_parent.attributes.add(key="opentracing.ref_type").value.string_value = "child_of"
    warnings = span.attributes.add(key=WARNINGS_ATTRIBUTE).value.array_value.values
    warnings.add().string_value = "clock skew"
    (s,) = to_jaeger_trace(td)["spans"]
    assert s["logs"] == [
        {"timestamp": 5, "fields": [{"key": "event", "type": "string", "value": "retry"},
                                     {"key": "n", "type": "int64", "value": 1}]},
        {"timestamp": 6, "fields": [{"key": "event", "type": "string", "value": "explicit"}]},
    ]
    assert s["references"] == [
        {"refType": "CHILD_OF", "traceID": "0af7651916cd43dd8448eb211c80319c", "spanID": "00f067aa0ba902b7"},
        {"refType": "FOLLOWS_FROM", "traceID": "0000000000000007", "spanID": "0000000000000009"},
    ]
    assert s["warnings"] == ["clock skew"]
    assert s["tags"] == []


def test_processes_collapse_and_missing_service_name():
    td = TracesData()
    for tags in ([("host", "a"), ("ip", "1")], [("ip", "1"), ("host", "a")], [("host", "b")]):
        rs = td.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "svc"
        for k, v in tags:
            rs.resource.attributes.add(key=k).value.string_value = v
        rs.scope_spans.add().spans.add(trace_id=bytes(15) + b"\x01", span_id=bytes(7) + b"\x01")
    td.resource_spans.add().scope_spans.add().spans.add(trace_id=bytes(15) + b"\x01", span_id=bytes(7) + b"\x02")
    got = to_jaeger_trace(td)
    assert [s["processID"] for s in got["spans"]] == ["p1", "p1", "p2", "p3"]
    assert got["processes"]["p1"]["tags"] == [
        {"key": "host", "type": "string", "value": "a"},
        {"key": "ip", "type": "string", "value": "1"},
    ]
    assert got["processes"]["p3"] == {"serviceName": NO_SERVICE_NAME, "tags": []}


def test_to_jaeger_traces_groups_by_trace_id():
    td = TracesData()
    spans = td.resource_spans.add().scope_spans.add().spans
    for trace, span in ((1, 1), (2, 2), (1, 3)):
        spans.add(trace_id=trace.to_bytes(16, "big"), span_id=span.to_bytes(8, "big"))
    got = to_jaeger_traces(td)
    assert [t["traceID"] for t in got] == ["0000000000000001", "0000000000000002"]
    assert [s["spanID"][-1] for s in got[0]["spans"]] == ["1", "3"]
    assert to_jaeger_trace(TracesData()) == {"traceID": "", "spans": [], "processes": {}, "warnings": None}
