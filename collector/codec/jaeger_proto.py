"""Decode stage, pure-Python reference: Jaeger api_v2 ``PostSpansRequest`` protobuf → OTLP bytes.

This is what the Jaeger gRPC receiver (``jaeger.api_v2.CollectorService/PostSpans``, port 14250)
feeds.  The request is walked at wire level with the OTLP decoder's field reader (no generated
classes) into the neutral Jaeger model of ``collector.codec.jaeger``, which translates it to OTLP
exactly as it does for Thrift input.  api_v2 differs from Thrift in ways handled here:

* ``KeyValue.v_type`` numbers types STRING 0, BOOL 1, INT64 2, FLOAT64 3, BINARY 4; the neutral
  model uses Thrift's ``TagType`` (STRING 0, DOUBLE 1, BOOL 2, LONG 3, BINARY 4);
* IDs are bytes (trace 16, or 8 as older clients send, left-padded; span 8);
* times are ``google.protobuf.Timestamp`` / ``Duration`` (seconds, nanos);
* there is no parent field: the parent is the first CHILD_OF reference (the mapping decides);
* a span may carry its own Process, which wins over the batch's.

Repeated occurrences of a singular message field merge as protobuf merges them (scalars: last
wins; repeated: appended), so the result is what a protobuf parser would see.
"""
from __future__ import annotations

import struct

from collector.codec.jaeger import JLog, JProcess, JRef, JSpan, JTag, batch_to_otlp
from collector.codec.otlp import _expect, _field
from collector.errors import DecodeError

_D = struct.Struct("<d")

# api_v2 ValueType → Thrift TagType (the neutral model's numbering).
_TAG_TYPE = (0, 2, 3, 1, 4)  # STRING, BOOL→2, INT64→3, FLOAT64→1, BINARY
_V_STRING, _V_BOOL, _V_INT64, _V_FLOAT64, _V_BINARY = range(5)


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


def _int32(v: int) -> int:
    """An int32 field's value as protobuf reads it: the low 32 bits, signed."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


def _text(buf, s, e) -> str:
    return buf[s:e].decode("utf-8", "replace")


def _key_value(buf, pos, end, kv_pos) -> JTag:
    key = ""
    v_type = 0
    v_str = ""
    v_bool = False
    v_int = 0
    v_float = 0.0
    v_binary = b""
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "KeyValue")
        if f == 1:
            _expect(wt, 2, "KeyValue", "key", kpos)
            key = _text(buf, s, e)
        elif f == 2:
            _expect(wt, 0, "KeyValue", "v_type", kpos)
            v_type = _int32(v)
        elif f == 3:
            _expect(wt, 2, "KeyValue", "v_str", kpos)
            v_str = _text(buf, s, e)
        elif f == 4:
            _expect(wt, 0, "KeyValue", "v_bool", kpos)
            v_bool = v != 0
        elif f == 5:
            _expect(wt, 0, "KeyValue", "v_int64", kpos)
            v_int = _int64(v)
        elif f == 6:
            _expect(wt, 1, "KeyValue", "v_float64", kpos)
            v_float = _D.unpack_from(buf, s)[0]
        elif f == 7:
            _expect(wt, 2, "KeyValue", "v_binary", kpos)
            v_binary = buf[s:e]
    if v_type == _V_STRING:
        value = v_str
    elif v_type == _V_BOOL:
        value = v_bool
    elif v_type == _V_INT64:
        value = v_int
    elif v_type == _V_FLOAT64:
        value = v_float
    elif v_type == _V_BINARY:
        value = v_binary
    else:
        raise DecodeError(f"KeyValue.v_type: unknown value type {v_type} (at offset {kv_pos})")
    return JTag(key, _TAG_TYPE[v_type], value)


def _time(buf, pos, end, ctx, seconds, nanos):
    """Merge a Timestamp/Duration message into (seconds, nanos)."""
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, ctx)
        if f == 1:
            _expect(wt, 0, ctx, "seconds", kpos)
            seconds = _int64(v)
        elif f == 2:
            _expect(wt, 0, ctx, "nanos", kpos)
            nanos = _int32(v)
    return seconds, nanos


def _id(buf, s, e, ctx, name, sizes, kpos) -> bytes:
    """An ID field; 8-byte trace IDs (older clients) are left-padded to 16."""
    n = e - s
    if n not in sizes:
        want = " or ".join(str(x) for x in sizes)
        raise DecodeError(f"{ctx}.{name}: length {n}, expected {want} bytes (at offset {kpos})")
    return buf[s:e].rjust(sizes[-1], b"\0")


def _log(buf, pos, end) -> JLog:
    seconds = nanos = 0
    fields = []
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "Log")
        if f == 1:
            _expect(wt, 2, "Log", "timestamp", kpos)
            seconds, nanos = _time(buf, s, e, "Log.timestamp", seconds, nanos)
        elif f == 2:
            _expect(wt, 2, "Log", "fields", kpos)
            fields.append(_key_value(buf, s, e, kpos))
    return JLog(seconds * 1_000_000_000 + nanos, fields)


def _span_ref(buf, pos, end) -> JRef:
    trace_id = bytes(16)
    span_id = bytes(8)
    ref_type = 0
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "SpanRef")
        if f == 1:
            _expect(wt, 2, "SpanRef", "trace_id", kpos)
            trace_id = _id(buf, s, e, "SpanRef", "trace_id", (8, 16), kpos)
        elif f == 2:
            _expect(wt, 2, "SpanRef", "span_id", kpos)
            span_id = _id(buf, s, e, "SpanRef", "span_id", (8,), kpos)
        elif f == 3:
            _expect(wt, 0, "SpanRef", "ref_type", kpos)
            ref_type = _int32(v)
    return JRef(ref_type, trace_id, span_id)


def _process(buf, pos, end, ctx, service, tags):
    """Merge a Process message into (service_name, tags)."""
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, ctx)
        if f == 1:
            _expect(wt, 2, ctx, "service_name", kpos)
            service = _text(buf, s, e)
        elif f == 2:
            _expect(wt, 2, ctx, "tags", kpos)
            tags.append(_key_value(buf, s, e, kpos))
    return service


def _span(buf, pos, end) -> JSpan:
    trace_id = bytes(16)
    span_id = bytes(8)
    name = ""
    refs = []
    flags = 0
    start_s = start_n = dur_s = dur_n = 0
    tags = []
    logs = []
    service = None
    ptags: list = []
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "Span")
        if f == 1:
            _expect(wt, 2, "Span", "trace_id", kpos)
            trace_id = _id(buf, s, e, "Span", "trace_id", (8, 16), kpos)
        elif f == 2:
            _expect(wt, 2, "Span", "span_id", kpos)
            span_id = _id(buf, s, e, "Span", "span_id", (8,), kpos)
        elif f == 3:
            _expect(wt, 2, "Span", "operation_name", kpos)
            name = _text(buf, s, e)
        elif f == 4:
            _expect(wt, 2, "Span", "references", kpos)
            refs.append(_span_ref(buf, s, e))
        elif f == 5:
            _expect(wt, 0, "Span", "flags", kpos)
            flags = v & 0xFFFFFFFF
        elif f == 6:
            _expect(wt, 2, "Span", "start_time", kpos)
            start_s, start_n = _time(buf, s, e, "Span.start_time", start_s, start_n)
        elif f == 7:
            _expect(wt, 2, "Span", "duration", kpos)
            dur_s, dur_n = _time(buf, s, e, "Span.duration", dur_s, dur_n)
        elif f == 8:
            _expect(wt, 2, "Span", "tags", kpos)
            tags.append(_key_value(buf, s, e, kpos))
        elif f == 9:
            _expect(wt, 2, "Span", "logs", kpos)
            logs.append(_log(buf, s, e))
        elif f == 10:
            _expect(wt, 2, "Span", "process", kpos)
            service = _process(buf, s, e, "Span.process", service or "", ptags)
        # 11 process_id and 12 warnings are not kept: Clew stores the process itself.
    start_ns = start_s * 1_000_000_000 + start_n
    dur_ns = dur_s * 1_000_000_000 + dur_n
    process = None if service is None else JProcess(service, ptags)
    return JSpan(trace_id, span_id, b"", name, refs, flags, start_ns, dur_ns,
                 tags, logs, process)


def parse_post_spans(buf):
    """``PostSpansRequest`` bytes → (batch process or None, [JSpan]); ``DecodeError`` if malformed.

    A span without its own process has ``process=None``: the batch's applies to it.
    """
    buf = bytes(buf)
    spans = []
    service = None
    ptags: list = []
    pos, end = 0, len(buf)
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "PostSpansRequest")
        if f != 1:
            continue
        _expect(wt, 2, "PostSpansRequest", "batch", kpos)
        p = s
        while p < e:
            k2 = p
            f2, wt2, s2, e2, v2, p = _field(buf, p, e, "Batch")
            if f2 == 1:
                _expect(wt2, 2, "Batch", "spans", k2)
                spans.append(_span(buf, s2, e2))
            elif f2 == 2:
                _expect(wt2, 2, "Batch", "process", k2)
                service = _process(buf, s2, e2, "Batch.process", service or "", ptags)
    return (None if service is None else JProcess(service, ptags)), spans


def decode_post_spans(buf) -> bytes:
    """``PostSpansRequest`` bytes → OTLP ``ExportTraceServiceRequest`` bytes; ``DecodeError`` if malformed."""
    process, spans = parse_post_spans(buf)
    return batch_to_otlp(process, spans)
