"""Decode stage: Zipkin v2 JSON / proto3 and v1 → OTLP, on both twins, against the fixtures."""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import collector.codec
from collector.codec import zipkin as py_zipkin
from collector.codec.otlp_writer import f_bytes, f_fixed64, f_varint
from collector.errors import DecodeError
from conftest import CONFORMANCE

try:
    from _ext import _zipkin as cy_zipkin
except ImportError:  # reported by test_compiled_twin_loaded
    cy_zipkin = None

IMPLS = [pytest.param(py_zipkin, id="py-zipkin"),
         pytest.param(cy_zipkin, id="cy-zipkin",
                      marks=pytest.mark.skipif(cy_zipkin is None, reason="compiled twin not built"))]
needs_both = pytest.mark.skipif(cy_zipkin is None, reason="compiled twin not built")

ZIPKIN = CONFORMANCE / "zipkin"
FILES = sorted(ZIPKIN.glob("lens-testdata/*.json")) + sorted(ZIPKIN.glob("benchmarks/*.json"))
KINDS = {"CLIENT": 3, "SERVER": 2, "PRODUCER": 4, "CONSUMER": 5}


def test_compiled_twin_loaded():
    """CI builds the extension; if it silently fell back to Python this must fail."""
    required = os.environ.get("CLEW_REQUIRE_EXTENSIONS") or os.environ.get("CI")
    if not required:
        pytest.skip("set CLEW_REQUIRE_EXTENSIONS=1 (make test does) to require the compiled twin")
    assert cy_zipkin is not None, "_ext._zipkin did not import: the Cython translator was not built"
    assert collector.codec.twin("zipkin") is cy_zipkin


def load_spans(path) -> list:
    doc = json.loads(path.read_bytes())
    return doc if isinstance(doc, list) else [doc]  # the benchmark files hold one bare span


def body_of(spans) -> bytes:
    return json.dumps(spans).encode()


# ------------------------------------------------------------------------- a tiny encoder

def _ip_bytes(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _ip_ok(text) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _canonical_ip(text: str) -> str:
    """Canonical text; what is not an address (e.g. '52.0.0.04' in the smartthings data) is kept."""
    if not _ip_ok(text):
        return text
    ip = ipaddress.ip_address(text)
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


def proto_representable(spans) -> list:
    """The spans without IP texts that proto3 cannot carry (bytes only)."""
    out = []
    for s in spans:
        s = dict(s)
        for key in ("localEndpoint", "remoteEndpoint"):
            if s.get(key):
                s[key] = {k: v for k, v in s[key].items() if k not in ("ipv4", "ipv6") or _ip_ok(v)}
        out.append(s)
    return out


def encode_endpoint(ep: dict) -> bytes:
    out = f_bytes(1, ep.get("serviceName", "").encode())
    if ep.get("ipv4"):
        out += f_bytes(2, _ip_bytes(ep["ipv4"]))
    if ep.get("ipv6"):
        out += f_bytes(3, _ip_bytes(ep["ipv6"]))
    return out + f_varint(4, ep.get("port", 0))


def encode_span(s: dict) -> bytes:
    """zipkin.proto3 Span of a v2 JSON span."""
    kinds = {"CLIENT": 1, "SERVER": 2, "PRODUCER": 3, "CONSUMER": 4}
    out = f_bytes(1, bytes.fromhex(s["traceId"]))
    if s.get("parentId"):
        out += f_bytes(2, bytes.fromhex(s["parentId"]))
    out += f_bytes(3, bytes.fromhex(s["id"]))
    out += f_varint(4, kinds.get(s.get("kind", ""), 0))
    out += f_bytes(5, s.get("name", "").encode())
    out += f_fixed64(6, s.get("timestamp", 0)) + f_varint(7, s.get("duration", 0))
    for number, key in ((8, "localEndpoint"), (9, "remoteEndpoint")):
        if key in s:
            out += f_bytes(number, encode_endpoint(s[key]), keep_empty=True)
    for a in s.get("annotations", []):
        out += f_bytes(10, f_fixed64(1, a["timestamp"]) + f_bytes(2, a["value"].encode()), keep_empty=True)
    for k, v in s.get("tags", {}).items():
        out += f_bytes(11, f_bytes(1, k.encode()) + f_bytes(2, v.encode()), keep_empty=True)
    return out + f_varint(12, int(s.get("debug", False))) + f_varint(13, int(s.get("shared", False)))


def encode_list(spans) -> bytes:
    return b"".join(f_bytes(1, encode_span(s), keep_empty=True) for s in spans)


# -------------------------------------------------------------------- expected, per span

def _value(v):
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


def otlp_spans(body: bytes) -> list[dict]:
    """Every span of an OTLP request as a plain dict (with its resource and scope)."""
    req = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in req.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(dict(
                    trace_id=sp.trace_id.hex(), span_id=sp.span_id.hex(), parent=sp.parent_span_id.hex(),
                    name=sp.name, kind=sp.kind, start=sp.start_time_unix_nano, end=sp.end_time_unix_nano,
                    attrs={kv.key: _value(kv.value) for kv in sp.attributes},
                    events=[(e.time_unix_nano, e.name) for e in sp.events],
                    status=(sp.status.code, sp.status.message), resource=resource,
                    scope=(ss.scope.name, ss.scope.version), trace_state=sp.trace_state,
                    links=[(l.trace_id.hex(), l.span_id.hex()) for l in sp.links]))
    return out


def expected(s: dict) -> dict:
    """What the mapping documented in collector/codec/zipkin.py makes of a plain v2 span."""
    tags = dict(s.get("tags", {}))
    attrs = {k: v for k, v in tags.items() if not (k == "error" and v == "true")}
    status = (0, "")
    if "error" in tags and tags["error"] != "false":
        status = (2, "" if tags["error"] == "true" else tags["error"])
    local, remote = s.get("localEndpoint"), s.get("remoteEndpoint")
    if local:
        ip = local.get("ipv6") or local.get("ipv4")
        if ip:
            attrs["net.host.ip"] = _canonical_ip(ip)
        if local.get("port"):
            attrs["net.host.port"] = local["port"]
    if remote:
        if remote.get("serviceName"):
            attrs["peer.service"] = remote["serviceName"]
        ip = remote.get("ipv6") or remote.get("ipv4")
        if ip:
            attrs["net.peer.ip"] = _canonical_ip(ip)
        if remote.get("port"):
            attrs["net.peer.port"] = remote["port"]
    ts, dur = s.get("timestamp", 0), s.get("duration", 0)
    if not ts:
        attrs["otel.zipkin.absentField.startTime"] = True
    if s.get("shared"):
        attrs["zipkin.shared"] = True
    if s.get("debug"):
        attrs["zipkin.debug"] = True
    service = (local or {}).get("serviceName")
    parent = s.get("parentId", "")
    return dict(
        trace_id=s["traceId"].lower().rjust(32, "0"), span_id=s["id"].lower(),
        parent="" if parent == s["id"] or not parent.strip("0") else parent.lower(),
        name=s.get("name", ""), kind=KINDS.get(s.get("kind"), 0), start=ts * 1000, end=(ts + dur) * 1000,
        attrs=attrs, events=[(a["timestamp"] * 1000, a["value"]) for a in s.get("annotations", [])],
        status=status, resource={"service.name": service} if service else {}, scope=("", ""),
        trace_state="", links=[])


def _key(d: dict) -> str:
    return json.dumps(d, sort_keys=True, default=repr)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_conformance_files_translate_span_by_span(impl, path):
    spans = load_spans(path)
    got = otlp_spans(impl.v2_json_to_otlp(body_of(spans)))
    assert sorted(map(_key, got)) == sorted(_key(expected(s)) for s in spans)
    # one resource per service, in order of first appearance
    req = ExportTraceServiceRequest.FromString(impl.v2_json_to_otlp(body_of(spans)))
    services = list(dict.fromkeys((s.get("localEndpoint") or {}).get("serviceName") or None for s in spans))
    assert [({kv.key: kv.value.string_value for kv in rs.resource.attributes}.get("service.name"))
            for rs in req.resource_spans] == services


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_proto3_gives_the_same_otlp_as_json(impl, path):
    spans = proto_representable(load_spans(path))
    assert impl.v2_proto_to_otlp(encode_list(spans)) == impl.v2_json_to_otlp(body_of(spans))


@needs_both
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_twins_write_identical_bytes_on_the_fixtures(path):
    spans = proto_representable(load_spans(path))
    assert cy_zipkin.v2_json_to_otlp(body_of(spans)) == py_zipkin.v2_json_to_otlp(body_of(spans))
    assert cy_zipkin.v2_proto_to_otlp(encode_list(spans)) == py_zipkin.v2_proto_to_otlp(encode_list(spans))


@pytest.mark.parametrize("impl", IMPLS)
def test_shared_span_ids_are_all_kept(impl):
    spans = load_spans(ZIPKIN / "lens-testdata" / "skew.json")
    got = [s for s in otlp_spans(impl.v2_json_to_otlp(body_of(spans))) if s["span_id"] == "74280ae0c10d8062"]
    assert sorted(s["kind"] for s in got) == [2, 3]
    server = next(s for s in got if s["kind"] == 2)
    assert server["attrs"]["zipkin.shared"] is True and server["resource"] == {"service.name": "serviceb"}
    assert got[0]["trace_id"] == "0000000000000000" + "1e223ff1f80f1c69"


# ------------------------------------------------------------------------ mapping rules

BASE = {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312", "name": "op",
        "timestamp": 1_600_000_000_000_000, "duration": 1500, "localEndpoint": {"serviceName": "svc"}}


def one(impl, **fields) -> dict:
    span = dict(BASE, **fields)
    (got,) = otlp_spans(impl.v2_json_to_otlp(body_of([span])))
    return got


@pytest.mark.parametrize("impl", IMPLS)
def test_status_from_tags(impl):
    assert one(impl, tags={"error": "true"})["status"] == (2, "")
    assert "error" not in one(impl, tags={"error": "true"})["attrs"]
    got = one(impl, tags={"error": "boom"})
    assert got["status"] == (2, "boom") and got["attrs"]["error"] == "boom"
    assert one(impl, tags={"error": ""})["status"] == (2, "")
    assert one(impl, tags={"error": "false"})["status"] == (0, "")
    got = one(impl, tags={"otel.status_code": "STATUS_CODE_ERROR", "otel.status_description": "bad", "a": "b"})
    assert got["status"] == (2, "bad") and set(got["attrs"]) == {"a"}
    assert one(impl, tags={"otel.status_code": "OK"})["status"] == (1, "")
    assert one(impl, tags={"otel.status_code": "ERROR", "error": "why"})["status"] == (2, "why")


@pytest.mark.parametrize("impl", IMPLS)
def test_scope_resource_trace_state_and_kind_tags(impl):
    got = one(impl, tags={"otel.library.name": "lib", "otel.library.version": "1.0", "host.name": "h1",
                          "w3c.tracestate": "k=v", "x": "y"})
    assert got["scope"] == ("lib", "1.0") and got["trace_state"] == "k=v"
    assert got["resource"] == {"service.name": "svc", "host.name": "h1"}
    assert set(got["attrs"]) == {"x"}
    assert one(impl, tags={"otel.scope.name": "s", "otel.scope.version": "2"})["scope"] == ("s", "2")
    got = one(impl, tags={"otlp.service.name.source": "custom.name"})
    assert got["resource"] == {"custom.name": "svc"}
    assert one(impl, tags={"span.kind": "internal"})["kind"] == 1
    assert one(impl, kind="client")["kind"] == 3
    assert one(impl, kind="WEIRD")["kind"] == 0
    got = one(impl, kind="SERVER", tags={"span.kind": "server"})
    assert got["kind"] == 2 and got["attrs"]["span.kind"] == "server"


@pytest.mark.parametrize("impl", IMPLS)
def test_links_and_structured_annotations(impl):
    link = "0af7651916cd43dd8448eb211c80319c|b7ad6b7169203331|st=1|{\"k\":\"v\",\"n\":2}|3"
    got = one(impl, tags={"otlp.link.0": link, "otlp.link.1": "bad|value", "otlp.link.3": link})
    assert got["links"] == [("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]
    assert got["attrs"]["otlp.link.1"] == "bad|value" and "otlp.link.3" in got["attrs"]
    got = one(impl, annotations=[{"timestamp": 5, "value": "ev|{\"a\":1.5,\"b\":true}|0"},
                                 {"timestamp": 6, "value": "a|b"}, {"timestamp": 7, "value": "x|y|z"}])
    assert got["events"] == [(5000, "ev"), (6000, "a|b"), (7000, "x|y|z")]
    req = ExportTraceServiceRequest.FromString(impl.v2_json_to_otlp(body_of([dict(
        BASE, annotations=[{"timestamp": 5, "value": "ev|{\"a\":1.5,\"b\":true,\"c\":3}|2"}])])))
    ev = req.resource_spans[0].scope_spans[0].spans[0].events[0]
    assert {kv.key: _value(kv.value) for kv in ev.attributes} == {"a": 1.5, "b": True, "c": 3}
    assert ev.dropped_attributes_count == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_endpoints_ids_and_times(impl):
    got = one(impl, localEndpoint={"serviceName": "svc", "ipv4": "10.0.0.1", "ipv6": "::ffff:10.0.0.2",
                                   "port": 8080},
              remoteEndpoint={"serviceName": "db", "ipv6": "2001:DB8:0:0::1", "port": 0},
              tags={"peer.service": "old", "z": "1"})
    assert got["attrs"] == {"peer.service": "db", "z": "1", "net.host.ip": "10.0.0.2",
                            "net.host.port": 8080, "net.peer.ip": "2001:db8::1"}
    assert list(got["attrs"])[0] == "peer.service"  # overwritten in place
    got = one(impl, traceId="00000000000000AB", id="ABCDEF0123456789", parentId="abcdef0123456789",
              timestamp=None, duration=7)
    assert got["trace_id"] == "0" * 30 + "ab" and got["parent"] == ""
    assert (got["start"], got["end"]) == (0, 7000) and got["attrs"]["otel.zipkin.absentField.startTime"]
    got = one(impl, timestamp="1000", duration=2.9, parentId="0000000000000000", debug=True,
              localEndpoint=None, tags={"n": 5, "b": False, "f": 1.5, "none": None})
    assert (got["start"], got["end"], got["parent"], got["resource"]) == (1_000_000, 1_002_000, "", {})
    assert got["attrs"] == {"n": "5", "b": "false", "f": "1.5", "zipkin.debug": True}


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_array_and_empty_list(impl):
    assert impl.v2_json_to_otlp(b"[]") == b""
    assert impl.v2_proto_to_otlp(b"") == b""


# ------------------------------------------------------------------------------ refusals

JSON_ERRORS = [
    (b"{", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b"\xff", "not valid JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    (b'{"traceId": "1"}', "expected a JSON array of spans, got an object"),
    (b"[1]", "span[0]: expected an object, got a number"),
    (b'[{"id": "a2fb4a1d1a96d312"}]', "span[0].traceId: missing"),
    (b'[{"traceId": "xyz", "id": "a2fb4a1d1a96d312"}]', "span[0].traceId: 'xyz' is not 16 or 32 hex digits"),
    (b'[{"traceId": "463ac35c9f6413ad"}]', "span[0].id: missing"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d31"}]',
     "span[0].id: 'a2fb4a1d1a96d31' is not 16 hex digits"),
    (b'[{"traceId": "0000000000000000", "id": "a2fb4a1d1a96d312"}]',
     "span[0].traceId: '0000000000000000' is all zeros"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "parentId": 5}]',
     "span[0].parentId: 5 is not 16 hex digits"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "timestamp": "soon"}]',
     "span[0].timestamp: 'soon' is not a number of microseconds"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "timestamp": -1}]',
     "span[0].timestamp: -1 is out of range"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "timestamp": 18446744073709551,'
     b' "duration": 1}]', "span[0].duration: timestamp + duration is out of range"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "name": 3}]',
     "span[0].name: expected a string, got a number"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "kind": true}]',
     "span[0].kind: expected a string, got a boolean"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "localEndpoint": {"port": "80"}}]',
     "span[0].localEndpoint.port: expected an integer, got a string"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "remoteEndpoint": []}]',
     "span[0].remoteEndpoint: expected an object, got an array"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "annotations": [{"value": 1}]}]',
     "span[0].annotations[0].value: expected a string, got a number"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "tags": {"k": {}}}]',
     "span[0].tags['k']: expected a string, got an object"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "shared": "yes"}]',
     "span[0].shared: expected true or false, got a string"),
    (b'[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "name": "\\ud800"}]',
     "span[0]: text is not valid Unicode (a lone surrogate)"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("body, message", JSON_ERRORS)
def test_bad_json_is_refused_with_a_clear_message(impl, body, message):
    with pytest.raises(DecodeError) as err:
        impl.v2_json_to_otlp(body)
    assert str(err.value) == message


def test_the_index_names_the_bad_span():
    body = body_of([BASE, BASE, BASE, dict(BASE, traceId="xyz")])
    for impl in (py_zipkin, cy_zipkin or py_zipkin):
        with pytest.raises(DecodeError, match=r"^span\[3\]\.traceId: 'xyz' is not 16 or 32 hex digits$"):
            impl.v2_json_to_otlp(body)


GOOD = encode_span(BASE)
PROTO_ERRORS = [
    (b"\x0a\x05abc", "ListOfSpans: length 5 overruns its message at offset 0"),
    (b"\x08\x01", "ListOfSpans.spans: wire type 0, expected 2 (at offset 0)"),
    (b"\x0a\x02\x08\x01", "Span.trace_id: wire type 0, expected 2 (at offset 2)"),
    (b"\x0a\x00", "span[0].trace_id: missing"),
    (b"\x0a\x03\x0a\x01\x01", "span[0].trace_id: 1 bytes, expected 8 or 16"),
    (f_bytes(1, f_bytes(1, b"\x01" * 8)), "span[0].id: missing"),
    (f_bytes(1, f_bytes(1, bytes(8)) + f_bytes(3, b"\x01" * 8)), "span[0].trace_id: all zeros"),
    (f_bytes(1, f_bytes(1, b"\x01" * 8) + f_bytes(3, b"\x01" * 8) + f_bytes(2, b"\x01")),
     "span[0].parent_id: 1 bytes, expected 8"),
    (f_bytes(1, f_bytes(1, b"\x01" * 8) + f_bytes(3, b"\x01" * 8) + f_bytes(5, b"\xff")),
     "Span.name: invalid UTF-8 (at offset 22)"),
    (f_bytes(1, f_bytes(1, b"\x01" * 8) + f_bytes(3, b"\x01" * 8) + f_fixed64(6, 2**63)),
     f"span[0].timestamp: {2**63} is out of range"),
    (f_bytes(1, GOOD) + f_bytes(1, f_bytes(1, b"\x01" * 8) + f_bytes(3, b"\x01" * 5)),
     "span[1].id: 5 bytes, expected 8"),
    (f_bytes(1, GOOD) + b"\x0a\x09", "ListOfSpans: length 9 overruns its message at offset 53"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("body, message", PROTO_ERRORS)
def test_bad_proto_is_refused_with_a_clear_message(impl, body, message):
    with pytest.raises(DecodeError) as err:
        impl.v2_proto_to_otlp(body)
    assert str(err.value) == message


# ------------------------------------------------------------------------------------ v1

FRONT = {"serviceName": "frontend", "ipv4": "172.17.0.13", "port": 8080}
BACK = {"serviceName": "backend", "ipv4": "172.17.0.9", "port": 9000}
T, S = "5af7183fb1d4cf5f", "352bff9a74ca9ad2"


def v1(**fields):
    return dict({"traceId": T, "id": S, "parentId": "6b221d5bc9e6496c", "name": "get /api"}, **fields)


def v2_of(spans):
    return py_zipkin.v1_to_v2(spans)


def test_v1_client_and_server_in_one_span_become_two():
    span = v1(timestamp=1000, duration=500, annotations=[
        {"timestamp": 1000, "value": "cs", "endpoint": FRONT},
        {"timestamp": 1100, "value": "sr", "endpoint": BACK},
        {"timestamp": 1300, "value": "ss", "endpoint": BACK},
        {"timestamp": 1500, "value": "cr", "endpoint": FRONT},
        {"timestamp": 1200, "value": "db.query", "endpoint": BACK}],
        binaryAnnotations=[{"key": "http.path", "value": "/api", "endpoint": FRONT},
                           {"key": "ca", "value": True, "endpoint": {"serviceName": "frontend", "ipv4": "1.2.3.4"}},
                           {"key": "sa", "value": True, "endpoint": BACK}])
    client, server = v2_of([span])
    assert client == {"traceId": T, "id": S, "parentId": "6b221d5bc9e6496c", "name": "get /api",
                      "kind": "CLIENT", "timestamp": 1000, "duration": 500, "localEndpoint": FRONT,
                      "remoteEndpoint": BACK, "tags": {"http.path": "/api"}}
    assert server == {"traceId": T, "id": S, "parentId": "6b221d5bc9e6496c", "name": "get /api",
                      "kind": "SERVER", "timestamp": 1100, "duration": 200, "localEndpoint": BACK,
                      "remoteEndpoint": {"serviceName": "frontend", "ipv4": "1.2.3.4"},
                      "annotations": [{"timestamp": 1200, "value": "db.query"}], "shared": True}


def test_v1_server_only_span_without_timestamp_is_shared_and_ca_is_the_remote():
    span = v1(annotations=[{"timestamp": 10, "value": "sr", "endpoint": BACK},
                           {"timestamp": 30, "value": "ss", "endpoint": BACK}],
              binaryAnnotations=[{"key": "ca", "value": True, "endpoint": FRONT},
                                 {"key": "lc", "value": "", "endpoint": BACK},
                                 {"key": "n", "value": 3, "endpoint": BACK}])
    (server,) = v2_of([span])
    assert server["kind"] == "SERVER" and server["shared"] is True
    assert (server["timestamp"], server["duration"]) == (10, 20)
    assert server["remoteEndpoint"] == FRONT and server["tags"] == {"n": "3"}


def test_v1_address_annotations_without_core_annotations():
    (span,) = v2_of([v1(timestamp=5, duration=6, binaryAnnotations=[
        {"key": "ca", "value": True, "endpoint": FRONT}, {"key": "sa", "value": True, "endpoint": BACK}])])
    assert span["localEndpoint"] == FRONT and span["remoteEndpoint"] == BACK and "kind" not in span
    (span,) = v2_of([v1(binaryAnnotations=[{"key": "ca", "value": True, "endpoint": FRONT}])])
    assert span["kind"] == "SERVER" and span["remoteEndpoint"] == FRONT


def test_v1_messaging_and_incomplete_rpc():
    broker = {"serviceName": "kafka"}
    producer, consumer = v2_of([v1(annotations=[
        {"timestamp": 1, "value": "ms", "endpoint": FRONT}, {"timestamp": 9, "value": "mr", "endpoint": BACK}],
        binaryAnnotations=[{"key": "ma", "value": True, "endpoint": broker}])])
    assert (producer["kind"], producer["timestamp"], producer["remoteEndpoint"]) == ("PRODUCER", 1, broker)
    assert (consumer["kind"], consumer["timestamp"], consumer["shared"]) == ("CONSUMER", 9, True)
    (client,) = v2_of([v1(annotations=[{"timestamp": 7, "value": "cs", "endpoint": FRONT}])])
    assert (client["kind"], client["timestamp"]) == ("CLIENT", 7) and "duration" not in client


@pytest.mark.parametrize("impl", IMPLS)
def test_v1_json_and_thrift_shape_reach_otlp(impl):
    body = json.dumps([v1(timestamp=1000, duration=500, annotations=[
        {"timestamp": 1000, "value": "cs", "endpoint": FRONT}, {"timestamp": 1100, "value": "sr", "endpoint": BACK},
        {"timestamp": 1300, "value": "ss", "endpoint": BACK}, {"timestamp": 1500, "value": "cr", "endpoint": FRONT}],
        binaryAnnotations=[{"key": "error", "value": "boom", "endpoint": BACK}])]).encode()
    got = otlp_spans(impl.v1_json_to_otlp(body))
    assert [(s["kind"], s["resource"]["service.name"], s["status"]) for s in got] == [
        (3, "frontend", (0, "")), (2, "backend", (2, "boom"))]
    assert got[1]["attrs"]["zipkin.shared"] is True and got[0]["span_id"] == got[1]["span_id"] == S
    thrift_shaped = [v1(annotations=[{"timestamp": 1, "value": "cs", "endpoint": dict(FRONT, ipv4=0x7F000001)},
                                     {"timestamp": 4, "value": "cr", "endpoint": dict(FRONT, ipv4=0x7F000001)}],
                        binaryAnnotations=[
                            {"key": "i", "value": struct.pack(">q", -5), "type": "I64", "endpoint": FRONT},
                            {"key": "b", "value": b"\x01\x02", "type": "BYTES", "endpoint": FRONT},
                            {"key": "sa", "value": b"\x01", "type": "BOOL", "endpoint": BACK}])]
    (got,) = otlp_spans(impl.v1_spans_to_otlp(thrift_shaped))
    assert got["attrs"]["i"] == "-5" and got["attrs"]["b"] == base64.b64encode(b"\x01\x02").decode()
    assert got["attrs"]["net.host.ip"] == "127.0.0.1" and got["attrs"]["peer.service"] == "backend"
    assert (got["start"], got["end"], got["kind"]) == (1000, 4000, 3)


@pytest.mark.parametrize("impl", IMPLS)
def test_v1_errors_name_the_v1_span(impl):
    with pytest.raises(DecodeError, match=r"^span\[1\]\.id: 'nope' is not 16 hex digits$"):
        impl.v1_json_to_otlp(json.dumps([v1(), v1(id="nope")]).encode())
    with pytest.raises(DecodeError, match=r"^expected a JSON array of spans, got an object$"):
        impl.v1_json_to_otlp(b"{}")


# ---------------------------------------------------------------- differential (Hypothesis)

hexes = st.text("0123456789abcdefABCDEF", min_size=15, max_size=33)
texts = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**66), st.floats(), texts)


def mostly(good):
    """Mostly ``good``, sometimes any JSON scalar (so most spans get past validation)."""
    return st.integers(0, 19).flatmap(lambda n: scalars if n == 0 else good)


endpoints = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "serviceName": mostly(st.sampled_from(["a", "b", "Ünï", ""])),
    "ipv4": mostly(st.sampled_from(["1.2.3.4", "bad", "", "::1", "01.2.3.4"])),
    "ipv6": mostly(st.sampled_from(["2001:db8::1", "::ffff:1.2.3.4", "x", "1.2.3.4"])),
    "port": mostly(st.integers(-2, 70000))}))
tag_keys = st.one_of(texts, st.sampled_from(sorted(py_zipkin.SPECIAL_TAGS) + ["error", "otlp.link.0", "otlp.link.1"]))
tag_values = st.one_of(texts, st.sampled_from(["true", "false", "STATUS_CODE_ERROR", "OK", "internal", "",
                                               "0af7651916cd43dd8448eb211c80319c|b7ad6b7169203331|s|{}|1"]))
annotation = st.fixed_dictionaries({}, optional={
    "timestamp": mostly(st.integers(0, 2**60)),
    "value": mostly(st.one_of(texts, st.just("e|{\"a\":1}|2")))})
json_spans = st.fixed_dictionaries(
    {"traceId": st.integers(0, 19).flatmap(lambda n: hexes if n == 0 else st.sampled_from(
        ["463ac35c9f6413ad48485a3953bb6124", "463AC35C9F6413AD", "0000000000000000463ac35c9f6413ad"])),
     "id": st.integers(0, 19).flatmap(lambda n: hexes if n == 0 else st.sampled_from(
        ["a2fb4a1d1a96d312", "B2FB4A1D1A96D312"]))},
    optional={"parentId": mostly(st.sampled_from(["a2fb4a1d1a96d312", "0000000000000000", "", "c2fb4a1d1a96d312"])),
              "kind": mostly(st.sampled_from(["CLIENT", "server", "PRODUCER", "CONSUMER", "x"])),
              "name": mostly(texts), "timestamp": mostly(st.integers(0, 2**54)),
              "duration": mostly(st.integers(0, 2**40)),
              "localEndpoint": mostly(endpoints), "remoteEndpoint": mostly(endpoints),
              "annotations": mostly(st.lists(mostly(annotation), max_size=3)),
              "tags": mostly(st.dictionaries(tag_keys, mostly(tag_values), max_size=5)),
              "debug": mostly(st.booleans()), "shared": mostly(st.booleans())})


def _outcome(fn, arg):
    try:
        return ("ok", fn(arg))
    except DecodeError as exc:
        return ("error", str(exc))


fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_both
@fuzz
@given(st.lists(json_spans, max_size=4))
def test_twins_agree_on_random_v2_json(spans):
    body = json.dumps(spans).encode()
    assert _outcome(cy_zipkin.v2_json_to_otlp, body) == _outcome(py_zipkin.v2_json_to_otlp, body)


def _valid(s: dict) -> bool:
    try:
        py_zipkin.v2_json_to_otlp(body_of([s]))
        encode_span(s)
        return True
    except Exception:
        return False


valid_spans = json_spans.map(lambda s: {k: v for k, v in s.items() if k in ("traceId", "id", "name")}).filter(_valid)


@needs_both
@fuzz
@given(st.binary(max_size=200))
def test_twins_agree_on_garbage(data):
    assert _outcome(cy_zipkin.v2_proto_to_otlp, data) == _outcome(py_zipkin.v2_proto_to_otlp, data)
    assert _outcome(cy_zipkin.v2_json_to_otlp, data) == _outcome(py_zipkin.v2_json_to_otlp, data)
    assert _outcome(cy_zipkin.v1_json_to_otlp, data) == _outcome(py_zipkin.v1_json_to_otlp, data)


@needs_both
@fuzz
@given(st.sampled_from(FILES[:4] + FILES[-2:]), st.data())
def test_twins_agree_on_truncated_or_flipped_fixtures(path, data):
    spans = proto_representable(load_spans(path))
    for body, fn in ((encode_list(spans), "v2_proto_to_otlp"), (body_of(spans), "v2_json_to_otlp")):
        cut = data.draw(st.integers(0, len(body)))
        flip = data.draw(st.integers(0, len(body) * 8 - 1))
        mutated = bytearray(body)
        mutated[flip // 8] ^= 1 << (flip % 8)
        for b in (body[:cut], bytes(mutated)):
            assert _outcome(getattr(cy_zipkin, fn), b) == _outcome(getattr(py_zipkin, fn), b)


@needs_both
@fuzz
@given(st.lists(st.one_of(json_spans, valid_spans), max_size=4), st.data())
def test_twins_agree_on_random_proto3(spans, data):
    encodable = [s for s in spans if _valid(s)]
    body = encode_list(encodable)
    assert _outcome(cy_zipkin.v2_proto_to_otlp, body) == _outcome(py_zipkin.v2_proto_to_otlp, body)
    if body:
        flip = data.draw(st.integers(0, len(body) * 8 - 1))
        mutated = bytearray(body)
        mutated[flip // 8] ^= 1 << (flip % 8)
        mutated = bytes(mutated)
        assert _outcome(cy_zipkin.v2_proto_to_otlp, mutated) == _outcome(py_zipkin.v2_proto_to_otlp, mutated)


v1_annotation = st.fixed_dictionaries({"timestamp": st.integers(0, 50), "value": st.sampled_from(
    ["cs", "cr", "sr", "ss", "ms", "mr", "ws", "wr", "x"])}, optional={"endpoint": st.sampled_from(
    [FRONT, BACK, {"serviceName": "kafka"}, {}, None])})
v1_binary = st.fixed_dictionaries({"key": st.sampled_from(["ca", "sa", "ma", "lc", "k", "error"]),
                                   "value": st.one_of(st.booleans(), texts, st.integers(0, 9))},
                                  optional={"endpoint": st.sampled_from([FRONT, BACK, None])})
v1_spans = st.fixed_dictionaries({"traceId": st.just(T), "id": st.just(S)}, optional={
    "timestamp": st.integers(0, 50), "duration": st.integers(0, 50),
    "annotations": st.lists(v1_annotation, max_size=5), "binaryAnnotations": st.lists(v1_binary, max_size=4)})


@needs_both
@fuzz
@given(st.lists(v1_spans, max_size=3))
def test_twins_agree_on_random_v1(spans):
    assert _outcome(cy_zipkin.v1_spans_to_otlp, spans) == _outcome(py_zipkin.v1_spans_to_otlp, spans)
    got = py_zipkin.v1_spans_to_otlp(spans)  # v1 never fails once IDs are good
    assert isinstance(got, bytes)


# ------------------------------------------------------- compiled v2 JSON byte-level fast path

LENS_FILES = sorted(ZIPKIN.glob("lens-testdata/*.json"))


@needs_both
@pytest.mark.parametrize("path", LENS_FILES, ids=lambda p: p.stem)
def test_fast_path_is_taken_on_the_lens_fixtures(path):
    spans = load_spans(path)
    for body in (path.read_bytes(), body_of(spans), json.dumps(spans, ensure_ascii=False, indent=1).encode()):
        assert cy_zipkin._fast_path_used(body)
        assert cy_zipkin.v2_json_to_otlp(body) == py_zipkin.v2_json_to_otlp(body)


FAST_SPAN = ('{"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312", "name": %s,'
             ' "timestamp": 1600000000000000, "duration": 1500, "localEndpoint": {"serviceName": "svc"},'
             ' "tags": {"k": "v"}}')

FAST_CASES = [  # (name as JSON text, served by the fast path?)
    ('"op"', True),
    ('"line\\nbreak \\"quoted\\" \\\\ \\/ \\t\\r\\b\\f"', True),   # simple escapes are decoded
    ('"caf\\u00e9 \\u4e2d \\ud83d\\ude00 \\u0000"', True),        # \\u escapes, a surrogate pair
    ('"café 中 😀"', True),                                        # raw UTF-8
    ('"\\ud800"', False),                                          # lone surrogate: the existing path
    ('"\\udc00x"', False),
    ('"\\ud83d\\u0041"', False),
    ('"\\x"', False),                                              # bad escape: not JSON
    ('null', False),
    ('3', False),
]


@needs_both
@pytest.mark.parametrize("name, fast", FAST_CASES)
def test_fast_path_strings_and_fallback_give_the_same_outcome(name, fast):
    body = ("[" + FAST_SPAN % name + "]").encode()
    assert cy_zipkin._fast_path_used(body) is fast
    assert _outcome(cy_zipkin.v2_json_to_otlp, body) == _outcome(py_zipkin.v2_json_to_otlp, body)


SPAN_JSON = json.loads(FAST_SPAN % '"op"')
FALLBACKS = [
    b'[' + (FAST_SPAN % '"op"').encode()[:-1] + b', "name": "again"}]',                  # duplicate key
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"k": "v"', b'"k": "v", "k": "w"') + b']',  # dup tag
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"tags"', b'"t\\u0061gs"') + b']',  # escaped key
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'1500', b'1500.0') + b']',          # a float
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'1500', b'15e2') + b']',            # an exponent
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"k": "v"', b'"k": 5') + b']',      # non-string tag
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"k": "v"', b'"host.name": "h"') + b']',  # special
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"k": "v"', b'"otlp.link.0": "x"') + b']',
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"name"', b'"nom"') + b']',          # unknown key
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'a2fb4a1d1a96d312', b'a2fb4a1d1a96d31') + b']',
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'1500', b'-1') + b']',
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"svc"', b'"sv\xffc"') + b']',       # invalid UTF-8
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"svc"', b'"sv\xed\xa0\x80c"') + b']',  # UTF-8 surrogate
    b'[' + (FAST_SPAN % '"op"').encode().replace(b'"svc"', b'"sv\tc"') + b']',         # raw control char
    b'[' + (FAST_SPAN % '"op"').encode() + b',]',                                        # trailing comma
    b'[' + (FAST_SPAN % '"op"').encode() + b'] x',                                       # extra data
    b'\xef\xbb\xbf[' + (FAST_SPAN % '"op"').encode() + b']',                             # BOM
    (FAST_SPAN % '"op"').encode(),                                                       # bare span
]


@needs_both
@pytest.mark.parametrize("body", FALLBACKS)
def test_fast_path_falls_back_on_anything_unusual(body):
    assert not cy_zipkin._fast_path_used(body)
    assert _outcome(cy_zipkin.v2_json_to_otlp, body) == _outcome(py_zipkin.v2_json_to_otlp, body)


fast_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
fast_endpoints = st.fixed_dictionaries({}, optional={
    "serviceName": st.sampled_from(["a", "b", "Ünï", "", "x\ny"]),
    "ipv4": st.sampled_from(["1.2.3.4", "bad", "", "::1", "01.2.3.4", "255.255.255.255", "1.2.3.256", "0.0.0.0"]),
    "ipv6": st.sampled_from(["2001:db8::1", "::ffff:1.2.3.4", "x", "1.2.3.4", ""]),
    "port": st.integers(0, 70000)})
fast_spans = st.fixed_dictionaries(
    {"traceId": st.sampled_from(["463ac35c9f6413ad48485a3953bb6124", "463AC35C9F6413AD", "00000000000000000000000000000001"]),
     "id": st.sampled_from(["a2fb4a1d1a96d312", "B2FB4A1D1A96D312"])},
    optional={"parentId": st.sampled_from(["a2fb4a1d1a96d312", "0000000000000000", "", "c2fb4a1d1a96d312"]),
              "kind": st.sampled_from(["CLIENT", "server", "Producer", "CONSUMER", "x", "", "ſerver"]),
              "name": fast_texts, "timestamp": st.integers(0, 2**54), "duration": st.integers(0, 2**40),
              "localEndpoint": fast_endpoints, "remoteEndpoint": fast_endpoints,
              "annotations": st.lists(st.fixed_dictionaries({}, optional={
                  "timestamp": st.integers(0, 2**54), "value": st.one_of(fast_texts, st.just("e|{\"a\":1}|2"))}),
                  max_size=3),
              "tags": st.dictionaries(st.one_of(fast_texts, st.sampled_from(["error", "k", "error\n"])),
                                      st.one_of(fast_texts, st.sampled_from(["true", "false", ""])), max_size=5),
              "debug": st.booleans(), "shared": st.booleans()})


@needs_both
@fuzz
@given(st.lists(fast_spans, max_size=4), st.booleans(), st.sampled_from([None, 0, 2]), st.randoms())
def test_twins_agree_on_random_fast_path_json(spans, ascii_only, indent, rnd):
    shuffled = []
    for s in spans:  # JSON key order is not fixed
        items = list(s.items())
        rnd.shuffle(items)
        shuffled.append(dict(items))
    body = json.dumps(shuffled, ensure_ascii=ascii_only, indent=indent).encode()
    got = _outcome(cy_zipkin.v2_json_to_otlp, body)
    assert got == _outcome(py_zipkin.v2_json_to_otlp, body)
    if got[0] == "ok" and all(s.get("kind", "") != "ſerver" for s in spans):
        assert cy_zipkin._fast_path_used(body)


# ------------------------------------------- scope and status tags, translated by the compiled twin

STATUS_CODE_VALUES = [None, "STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR", "UNSET", "OK", "ERROR",
                      "ok", "STATUS_CODE_", "", "Ökay"]
STATUS_DESCRIPTIONS = [None, "", "bad thing", "ünïcode | pipe"]
ERROR_VALUES = [None, "true", "false", "", "boom", "True", "FALSE"]
SCOPE_TAGS = [{}, {"otel.scope.name": "io.s", "otel.scope.version": "1.2"},
              {"otel.library.name": "lib", "otel.library.version": "0.9"},
              {"otel.scope.name": "io.s", "otel.library.name": "lib", "otel.library.version": "0.9"},
              {"otel.library.name": "lib", "otel.scope.name": ""},
              {"otel.scope.version": "3"}, {"otel.library.version": "4", "otel.scope.version": ""},
              {"otel.scope.name": "", "otel.scope.version": ""}, {"otel.library.name": "ünï"}]


def _tags(scope: dict, code, desc, error, extra_first: bool) -> dict:
    tags = {"a": "1"} if extra_first else {}
    tags.update(scope)
    for key, value in (("error", error), ("otel.status_description", desc), ("otel.status_code", code)):
        if value is not None:
            tags[key] = value
    tags["z"] = "2"
    return tags


def _all_paths_agree(spans: list, *, fast: bool = True, slow: int = 0) -> bytes:
    """cy == py on v2 JSON (bytes and parsed), proto3 and v1-shaped input; how many spans the
    compiled twin handed to the reference; whether the byte-level fast path served the JSON."""
    body = body_of(spans)
    want = py_zipkin.v2_json_to_otlp(body)
    assert cy_zipkin.v2_json_to_otlp(body) == want
    assert cy_zipkin._slow_spans_last_call() == slow
    assert cy_zipkin._fast_path_used(body) is fast
    pretty = json.dumps(spans, ensure_ascii=False, indent=1).encode()
    assert cy_zipkin.v2_json_to_otlp(pretty) == want
    assert cy_zipkin.v2_spans_to_otlp(json.loads(body)) == py_zipkin.v2_spans_to_otlp(json.loads(body)) == want
    assert cy_zipkin._slow_spans_last_call() == slow
    proto = encode_list(spans)
    assert cy_zipkin.v2_proto_to_otlp(proto) == py_zipkin.v2_proto_to_otlp(proto) == want
    assert cy_zipkin._slow_spans_last_call() == slow
    return want


@needs_both
@pytest.mark.parametrize("scope", SCOPE_TAGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "none")
def test_scope_and_status_tags_are_written_in_c_identically(scope):
    spans = []
    for n, (code, desc, error) in enumerate((c, d, e) for c in STATUS_CODE_VALUES for d in STATUS_DESCRIPTIONS
                                            for e in ERROR_VALUES):
        span = dict(BASE, id="%016x" % (n + 1), tags=_tags(scope, code, desc, error, n % 2 == 0))
        _all_paths_agree([span])
        spans.append(span)
    _all_paths_agree(spans)


@needs_both
def test_status_tag_rules_on_the_compiled_twin():
    def status(**tags):
        (got,) = otlp_spans(cy_zipkin.v2_json_to_otlp(body_of([dict(BASE, tags=tags)])))
        assert cy_zipkin._slow_spans_last_call() == 0
        return got["status"], got["attrs"]
    assert status(**{"otel.status_code": "ERROR", "otel.status_description": "d", "k": "v"}) == ((2, "d"), {"k": "v"})
    assert status(**{"otel.status_description": "d"}) == ((0, ""), {"otel.status_description": "d"})
    assert status(**{"otel.status_code": "UNSET", "otel.status_description": "d"}) == ((0, "d"), {})
    assert status(**{"otel.status_code": "OK", "error": "false"}) == ((1, ""), {"error": "false"})
    assert status(**{"otel.status_code": "OK", "error": "true"}) == ((2, ""), {})
    assert status(**{"otel.status_code": "OK", "otel.status_description": "", "error": "x"}) == ((2, "x"), {"error": "x"})
    assert status(**{"otel.status_code": "bogus", "error": ""}) == ((2, ""), {"error": ""})


@needs_both
def test_scopes_are_grouped_within_a_resource_in_order_of_first_appearance():
    def span(n, svc, **tags):
        return dict(BASE, id="%016x" % n, localEndpoint={"serviceName": svc}, tags=tags)
    spans = [span(1, "a", **{"otel.scope.name": "s1", "otel.scope.version": "1"}),
             span(2, "b", **{"otel.scope.name": "s1", "otel.scope.version": "1"}),
             span(3, "a"),
             span(4, "a", **{"otel.library.name": "s1", "otel.library.version": "1"}),   # same scope as 1
             span(5, "a", **{"otel.scope.name": "s1"}),
             span(6, "", **{"otel.scope.name": "s2"}),
             span(7, "a", **{"otel.scope.name": "s2", "otel.status_code": "ERROR"}),
             span(8, "b"),
             span(9, "", **{"otel.scope.name": "s2", "error": "oops"}),
             span(10, "a", **{"otel.scope.name": "s1", "otel.scope.version": "1"})]
    want = _all_paths_agree(spans)
    req = ExportTraceServiceRequest.FromString(want)
    layout = [([a.value.string_value for a in rs.resource.attributes],
               [((ss.scope.name, ss.scope.version), [int(s.span_id.hex(), 16) for s in ss.spans])
                for ss in rs.scope_spans]) for rs in req.resource_spans]
    assert layout == [(["a"], [(("s1", "1"), [1, 4, 10]), (("", ""), [3]), (("s1", ""), [5]), (("s2", ""), [7])]),
                      (["b"], [(("s1", "1"), [2]), (("", ""), [8])]),
                      ([], [(("s2", ""), [6, 9])])]
    # Many distinct scopes: past the compiled twin's small per-call cache.
    many = [span(n + 1, "svc%d" % (n % 7), **{"otel.scope.name": "s%d" % (n % 11), "otel.scope.version": "v"})
            for n in range(120)]
    _all_paths_agree(many)


@needs_both
def test_other_special_tags_still_take_the_reference_path():
    scoped = {"otel.scope.name": "s", "otel.scope.version": "1", "otel.status_code": "ERROR", "error": "e"}
    plain = dict(BASE, tags=scoped)
    for extra in ({"host.name": "h"}, {"span.kind": "internal"}, {"w3c.tracestate": "k=v"},
                  {"otlp.link.0": "0af7651916cd43dd8448eb211c80319c|b7ad6b7169203331|s|{}|1"},
                  {"otlp.service.name.source": "x"}, {"net.host.ip": "1.2.3.4"}):
        special = dict(BASE, id="c2fb4a1d1a96d312", tags=dict(scoped, **extra))
        _all_paths_agree([plain, special, plain], fast=False, slow=1)


@needs_both
def test_exporter_shaped_requests_take_no_reference_path():
    pytest.importorskip("numpy")
    from perf.foreign import zipkin_json_message
    from perf.traces import RequestPool, TraceShape
    pool = RequestPool(TraceShape(spans_per_request=40, error_rate=0.2), size=2)
    for template in pool.templates:
        body, count, _marks = zipkin_json_message(bytes(template.body))
        spans = json.loads(body)
        assert count == len(spans) == 40
        assert any("otel.status_code" in s["tags"] for s in spans)
        assert all("otel.scope.name" in s["tags"] for s in spans)
        _all_paths_agree(proto_representable(spans))
        assert cy_zipkin.v2_json_to_otlp(body) == py_zipkin.v2_json_to_otlp(body)
        assert cy_zipkin._slow_spans_last_call() == 0 and cy_zipkin._fast_path_used(body)


scope_status_keys = st.sampled_from(["otel.scope.name", "otel.scope.version", "otel.library.name",
                                     "otel.library.version", "otel.status_code", "otel.status_description",
                                     "error", "k", "otel.scope.nam", "otel.status_codes"])
scope_status_values = st.one_of(fast_texts, st.sampled_from(
    [v for v in STATUS_CODE_VALUES + ERROR_VALUES if v is not None] + ["s1", "s2", "1.0"]))
scoped_spans = st.fixed_dictionaries(
    {"traceId": st.just("463ac35c9f6413ad48485a3953bb6124"),
     "id": st.sampled_from(["a2fb4a1d1a96d312", "c2fb4a1d1a96d312"]),
     "tags": st.dictionaries(scope_status_keys, scope_status_values, max_size=7)},
    optional={"localEndpoint": st.fixed_dictionaries({}, optional={"serviceName": st.sampled_from(["a", "b", ""])}),
              "timestamp": st.integers(1, 2**54), "name": fast_texts})


@needs_both
@fuzz
@given(st.lists(scoped_spans, max_size=6), st.randoms())
def test_twins_agree_on_random_scope_and_status_tags(spans, rnd):
    for s in spans:
        items = list(s["tags"].items())
        rnd.shuffle(items)
        s["tags"] = dict(items)
    _all_paths_agree(spans, fast=True, slow=0)
