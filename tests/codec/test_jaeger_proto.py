"""Decode stage: Jaeger api_v2 ``PostSpansRequest`` protobuf → neutral Jaeger model → OTLP."""
from __future__ import annotations

import importlib
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import collector.codec
from collector.codec.jaeger import JLog, JProcess, JRef, JSpan, JTag
from collector.codec.otlp_writer import f_bytes, f_str, f_varint, tag
from collector.errors import DecodeError

# Not `from collector.codec import jaeger_proto`: the package's picker answers that with the twin.
py_jaeger_proto = importlib.import_module("collector.codec.jaeger_proto")
try:
    from _ext import _jaeger_proto as cy_jaeger_proto
except ImportError:  # reported by test_compiled_twin_loaded
    cy_jaeger_proto = None

IMPLS = [pytest.param(py_jaeger_proto, id="py-decoder"),
         pytest.param(cy_jaeger_proto, id="cy-decoder",
                      marks=pytest.mark.skipif(cy_jaeger_proto is None, reason="compiled twin not built"))]
BOTH = pytest.mark.skipif(cy_jaeger_proto is None, reason="compiled twin not built")


def test_compiled_twin_loaded():
    """CI builds the extension; if it silently fell back to Python this must fail."""
    required = os.environ.get("CLEW_REQUIRE_EXTENSIONS") or os.environ.get("CI")
    if not required:
        pytest.skip("set CLEW_REQUIRE_EXTENSIONS=1 (make test does) to require the compiled twin")
    assert cy_jaeger_proto is not None, "_ext._jaeger_proto did not import: the Cython decoder was not built"
    assert collector.codec.twin("jaeger_proto") is cy_jaeger_proto, \
        "collector.codec did not pick the compiled twin"


# api_v2 ValueType numbering (what goes on the wire here) ...
STRING, BOOL, INT64, FLOAT64, BINARY = range(5)
# ... and Thrift TagType numbering (what the neutral model holds).
T_STRING, T_DOUBLE, T_BOOL, T_LONG, T_BINARY = range(5)

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
ROOT = bytes.fromhex("00f067aa0ba902b7")
CHILD = bytes.fromhex("00f067aa0ba902b8")
OTHER_TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
OTHER_SPAN = bytes.fromhex("b7ad6b7169203331")
T0 = 1_700_000_000_123_456_789  # ns


# --- a small api_v2 encoder, written from model.proto / collector.proto field numbers ----------

def kv(key: str, vtype: int, value) -> bytes:
    body = f_str(1, key) + f_varint(2, vtype)
    if vtype == STRING:
        body += f_str(3, value)
    elif vtype == BOOL:
        body += f_varint(4, int(value))
    elif vtype == INT64:
        body += f_varint(5, value)
    elif vtype == FLOAT64:
        body += tag(6, 1) + struct.pack("<d", value)
    elif vtype == BINARY:
        body += f_bytes(7, value)
    return body


def stamp(ns: int) -> bytes:
    """google.protobuf.Timestamp / Duration: 1 seconds, 2 nanos."""
    return f_varint(1, ns // 1_000_000_000) + f_varint(2, ns % 1_000_000_000)


def log(ns: int, *fields: bytes) -> bytes:
    return f_bytes(1, stamp(ns), keep_empty=True) + b"".join(f_bytes(2, f, keep_empty=True) for f in fields)


def ref(trace_id: bytes, span_id: bytes, ref_type: int = 0) -> bytes:
    return f_bytes(1, trace_id) + f_bytes(2, span_id) + f_varint(3, ref_type)


def process(service: str, *tags: bytes) -> bytes:
    return f_str(1, service) + b"".join(f_bytes(2, t, keep_empty=True) for t in tags)


def span(trace_id=TRACE, span_id=ROOT, name="op", refs=(), flags=1, start_ns=T0, duration_ns=1_500,
         tags=(), logs=(), proc: bytes | None = None, extra: bytes = b"") -> bytes:
    out = f_bytes(1, trace_id) + f_bytes(2, span_id) + f_str(3, name)
    out += b"".join(f_bytes(4, r, keep_empty=True) for r in refs)
    out += f_varint(5, flags)
    out += f_bytes(6, stamp(start_ns), keep_empty=True) + f_bytes(7, stamp(duration_ns), keep_empty=True)
    out += b"".join(f_bytes(8, t, keep_empty=True) for t in tags)
    out += b"".join(f_bytes(9, lg, keep_empty=True) for lg in logs)
    if proc is not None:
        out += f_bytes(10, proc, keep_empty=True)
    return out + extra


def request(spans=(), proc: bytes | None = None) -> bytes:
    batch = b"".join(f_bytes(1, s, keep_empty=True) for s in spans)
    if proc is not None:
        batch += f_bytes(2, proc, keep_empty=True)
    return f_bytes(1, batch, keep_empty=True)


def sample_request() -> bytes:
    root = span(name="GET /checkout", tags=[
        kv("span.kind", STRING, "server"), kv("http.status_code", INT64, 500),
        kv("error", BOOL, True), kv("ratio", FLOAT64, 0.25), kv("blob", BINARY, b"\x00\xff"),
        kv("neg", INT64, -7)])
    child = span(span_id=CHILD, name="SELECT", start_ns=T0 + 10_000_001, duration_ns=40_000_999,
                 refs=[ref(TRACE, ROOT, 0), ref(OTHER_TRACE, OTHER_SPAN, 1)],
                 tags=[kv("span.kind", STRING, "client")],
                 logs=[log(T0 + 20_000_000, kv("event", STRING, "retry"), kv("attempt", INT64, 2))],
                 proc=process("db-proxy", kv("host.name", STRING, "db-1")))
    return request([root, child], proc=process("shop", kv("ip", STRING, "10.0.0.1"), kv("pid", INT64, 42)))


# --- the parsed neutral model ---------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_parses_into_the_neutral_model(impl):
    proc, spans = impl.parse_post_spans(sample_request())
    assert proc == JProcess("shop", [JTag("ip", T_STRING, "10.0.0.1"), JTag("pid", T_LONG, 42)])
    root, child = spans
    assert isinstance(root, JSpan)
    assert (root.trace_id, root.span_id, root.parent_span_id) == (TRACE, ROOT, b"")
    assert root.operation_name == "GET /checkout" and root.flags == 1 and root.references == []
    assert root.tags == [JTag("span.kind", T_STRING, "server"), JTag("http.status_code", T_LONG, 500),
                         JTag("error", T_BOOL, True), JTag("ratio", T_DOUBLE, 0.25),
                         JTag("blob", T_BINARY, b"\x00\xff"), JTag("neg", T_LONG, -7)]
    assert root.process is None  # the batch's process applies
    assert child.references == [JRef(0, TRACE, ROOT), JRef(1, OTHER_TRACE, OTHER_SPAN)]
    assert child.logs == [JLog(T0 + 20_000_000,
                               [JTag("event", T_STRING, "retry"), JTag("attempt", T_LONG, 2)])]
    assert child.process == JProcess("db-proxy", [JTag("host.name", T_STRING, "db-1")])


@pytest.mark.parametrize("impl", IMPLS)
def test_times_from_timestamp_and_duration(impl):
    _, (root, child) = impl.parse_post_spans(sample_request())
    assert (root.start_ns, root.duration_ns) == (T0, 1_500)  # nanoseconds kept
    assert (child.start_ns, child.duration_ns) == (T0 + 10_000_001, 40_000_999)


@pytest.mark.parametrize("impl", IMPLS)
def test_short_trace_ids_are_left_padded(impl):
    _, (s,) = impl.parse_post_spans(request([span(trace_id=TRACE[8:], refs=[ref(TRACE[8:], ROOT)])]))
    assert s.trace_id == bytes(8) + TRACE[8:]
    assert s.references[0].trace_id == bytes(8) + TRACE[8:]


@pytest.mark.parametrize("impl", IMPLS)
def test_unknown_fields_and_process_id_are_skipped(impl):
    extra = f_str(11, "p1") + f_str(12, "a warning") + f_varint(99, 5) + tag(98, 1) + bytes(8)
    _, (s,) = impl.parse_post_spans(request([span(extra=extra)]) + f_varint(7, 3))
    assert s.operation_name == "op"


@pytest.mark.parametrize("impl", IMPLS)
def test_repeated_message_fields_merge_like_protobuf(impl):
    # Two Batch.process occurrences merge: last service name wins, tags accumulate.
    body = request([span()], proc=process("a", kv("k1", STRING, "v1")))
    body += request([], proc=process("b", kv("k2", STRING, "v2")))
    proc, spans = impl.parse_post_spans(body)
    assert proc == JProcess("b", [JTag("k1", T_STRING, "v1"), JTag("k2", T_STRING, "v2")])
    assert len(spans) == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_request_is_no_spans(impl):
    assert impl.parse_post_spans(b"") == (None, [])
    assert impl.parse_post_spans(request()) == (None, [])


@pytest.mark.parametrize("body, message", [
    (b"\x0a\x05\x0a", "length 5 overruns its message at offset 0"),
    (b"\x08\x01", "PostSpansRequest.batch: wire type 0, expected 2 (at offset 0)"),
    (request([span(trace_id=b"\x01" * 5)]), "Span.trace_id: length 5, expected 8 or 16 bytes"),
    (request([span(span_id=b"\x01" * 16)]), "Span.span_id: length 16, expected 8 bytes"),
    (request([span(refs=[ref(TRACE, b"\x01\x02")])]), "SpanRef.span_id: length 2, expected 8 bytes"),
    (request([span(tags=[kv("k", 9, None)])]), "KeyValue.v_type: unknown value type 9"),
    (request([span(extra=tag(6, 0) + b"\x01")]), "Span.start_time: wire type 0, expected 2"),
    (request([span(tags=[f_str(1, "k") + tag(6, 0) + b"\x01"])]), "KeyValue.v_float64: wire type 0"),
    (request([span(extra=b"\x0f")]), "Span: unsupported wire type 7"),
    (b"\x0a\x02\x0a\x7f", "Batch: length 127 overruns its message at offset 2"),
    (b"\x00", "invalid field number 0 at offset 0"),
    (b"\x0a\x81", "PostSpansRequest: truncated varint at offset 0"),
])
@pytest.mark.parametrize("impl", IMPLS)
def test_garbage_is_refused_with_a_clear_message(impl, body, message):
    with pytest.raises(DecodeError) as err:
        impl.decode_post_spans(body)
    assert message in str(err.value)


@pytest.mark.parametrize("impl", IMPLS)
def test_error_offsets_point_into_the_request(impl):
    body = request([span(), span(span_id=b"\x01\x02\x03")])
    with pytest.raises(DecodeError) as err:
        impl.parse_post_spans(body)
    offset = int(str(err.value).rsplit("offset ", 1)[1].rstrip(")"))
    assert body[offset] == (2 << 3 | 2)  # the key byte of the bad span_id field


# --- round trip and robustness ------------------------------------------------------------------

_tags = st.lists(st.one_of(
    st.builds(lambda k, v: (kv(k, STRING, v), JTag(k, T_STRING, v)), st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda k, v: (kv(k, BOOL, v), JTag(k, T_BOOL, v)), st.text(max_size=8), st.booleans()),
    st.builds(lambda k, v: (kv(k, INT64, v), JTag(k, T_LONG, v)), st.text(max_size=8),
              st.integers(-(1 << 63), (1 << 63) - 1)),
    st.builds(lambda k, v: (kv(k, FLOAT64, v), JTag(k, T_DOUBLE, v)), st.text(max_size=8),
              st.floats(allow_nan=False)),
    st.builds(lambda k, v: (kv(k, BINARY, v), JTag(k, T_BINARY, v)), st.text(max_size=8), st.binary(max_size=8)),
), max_size=4)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=150, deadline=None)
@given(tags=_tags, trace_id=st.binary(min_size=16, max_size=16), span_id=st.binary(min_size=8, max_size=8),
       start_ns=st.integers(0, 1 << 62), duration_ns=st.integers(0, 1 << 40),
       flags=st.integers(0, (1 << 32) - 1), name=st.text(max_size=20))
def test_round_trip(impl, tags, trace_id, span_id, start_ns, duration_ns, flags, name):
    body = request([span(trace_id=trace_id, span_id=span_id, name=name, flags=flags, start_ns=start_ns,
                         duration_ns=duration_ns, tags=[t for t, _ in tags])])
    _, (s,) = impl.parse_post_spans(body)
    assert (s.trace_id, s.span_id, s.operation_name, s.flags) == (trace_id, span_id, name, flags)
    assert (s.start_ns, s.duration_ns) == (start_ns, duration_ns)
    assert s.tags == [j for _, j in tags]


def _outcome(impl, body: bytes):
    """What a twin makes of ``body``: the parsed model, or the DecodeError message (nothing else)."""
    try:
        return impl.parse_post_spans(body)
    except DecodeError as exc:
        return ("DecodeError", str(exc))


def _twins_agree(body: bytes) -> None:
    want = _outcome(py_jaeger_proto, body)
    if cy_jaeger_proto is not None:
        assert _outcome(cy_jaeger_proto, body) == want


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64))
def test_garbage_only_ever_raises_decode_error(impl, body):
    _outcome(impl, body)


@BOTH
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=96))
def test_twins_agree_on_garbage(body):
    _twins_agree(body)


@BOTH
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_twins_agree_on_damaged_requests(data):
    """Valid requests with a few bytes changed and the tail cut: same model or same error."""
    body = bytearray(sample_request())
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    _twins_agree(bytes(body[:data.draw(st.integers(0, len(body)))]))


@BOTH
@settings(max_examples=150, deadline=None)
@given(tags=_tags, ts=st.integers(-(1 << 63), (1 << 63) - 1), nanos=st.integers(-(1 << 31), (1 << 31) - 1),
       ref_type=st.integers(-(1 << 31), (1 << 31) - 1), trace_len=st.sampled_from([8, 16]))
def test_twins_agree_on_valid_requests(tags, ts, nanos, ref_type, trace_len):
    start = f_varint(1, ts) + f_varint(2, nanos)  # any int64/int32, negative included
    body = request([span(trace_id=TRACE[-trace_len:], tags=[t for t, _ in tags],
                         refs=[ref(TRACE, ROOT, ref_type)],
                         logs=[log(T0, *(t for t, _ in tags))], proc=process("p", *(t for t, _ in tags)),
                         extra=f_bytes(6, start, keep_empty=True))],
                   proc=process("batch"))
    _twins_agree(body)


# --- through to OTLP ----------------------------------------------------------------------------

def _otlp(impl, body: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(impl.decode_post_spans(body))


@pytest.mark.parametrize("impl", IMPLS)
def test_decode_post_spans_returns_otlp(impl):
    req = _otlp(impl, sample_request())
    spans = [(rs, sp) for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert len(spans) == 2
    by_name = {sp.name: (rs, sp) for rs, sp in spans}
    rs_root, root = by_name["GET /checkout"]
    rs_child, child = by_name["SELECT"]
    assert root.trace_id == TRACE and root.span_id == ROOT and root.parent_span_id == b""
    assert child.trace_id == TRACE and child.span_id == CHILD and child.parent_span_id == ROOT
    assert root.start_time_unix_nano == T0  # api_v2 keeps nanoseconds
    assert child.end_time_unix_nano - child.start_time_unix_nano == 40_000_999
    assert root.kind == 2 and child.kind == 3  # SERVER, CLIENT from span.kind
    attrs = {kv.key: kv.value for kv in root.attributes}
    assert attrs["http.status_code"].int_value == 500
    assert attrs["ratio"].double_value == 0.25
    assert attrs["neg"].int_value == -7
    assert root.status.code == 2  # error=true → STATUS_CODE_ERROR
    assert [ln.span_id for ln in child.links] == [OTHER_SPAN]
    assert child.links[0].trace_id == OTHER_TRACE
    (event,) = child.events
    assert event.time_unix_nano == T0 + 20_000_000
    assert event.name == "retry"
    assert {kv.key: kv.value.int_value for kv in event.attributes if kv.key == "attempt"} == {"attempt": 2}

    def service(rs):
        return {kv.key: kv.value.string_value for kv in rs.resource.attributes}

    assert service(rs_root)["service.name"] == "shop" and service(rs_root)["ip"] == "10.0.0.1"
    assert service(rs_child)["service.name"] == "db-proxy" and service(rs_child)["host.name"] == "db-1"


@pytest.mark.parametrize("impl", IMPLS)
def test_garbage_through_decode_post_spans_is_decode_error(impl):
    with pytest.raises(DecodeError):
        impl.decode_post_spans(b"\x0a\x05\x0a")
