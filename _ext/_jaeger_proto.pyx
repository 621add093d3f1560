# cython: language_level=3
"""Decode stage, compiled twin of collector/codec/jaeger_proto.py (same API, same errors, same order).

Walks a Jaeger api_v2 ``PostSpansRequest`` with a bounds-checked C cursor and builds the neutral
model of ``collector.codec.jaeger``; the translation to OTLP is that module's.  Every check in the
reference has its line here, in the same order, so both raise the same ``DecodeError`` message.
"""
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from _ext.pbreader cimport Field, expect, pb_fail, read_field

from collector.codec.jaeger import JLog, JProcess, JRef, JSpan, JTag, batch_to_otlp

# api_v2 ValueType → Thrift TagType (the neutral model's numbering).
cdef int[5] TAG_TYPE = [0, 2, 3, 1, 4]
cdef bytes ZERO16 = bytes(16)
cdef bytes ZERO8 = bytes(8)


cdef inline str text(const uint8_t* p, Py_ssize_t s, Py_ssize_t e):
    return PyUnicode_DecodeUTF8(<const char*>(p + s), e - s, "replace")


cdef inline double read_double(const uint8_t* p, Py_ssize_t s):
    cdef uint64_t bits = 0
    cdef double d
    cdef int i
    for i in range(8):  # little-endian on the wire, whatever the host
        bits |= (<uint64_t>p[s + i]) << (8 * i)
    memcpy(&d, &bits, 8)
    return d


cdef object key_value(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t kv_pos):
    cdef Field f
    cdef Py_ssize_t kpos
    cdef str key = ""
    cdef int32_t v_type = 0
    cdef str v_str = ""
    cdef bint v_bool = False
    cdef int64_t v_int = 0
    cdef double v_float = 0.0
    cdef bytes v_binary = b""
    cdef object value
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "KeyValue")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, "KeyValue", "key", kpos)
            key = text(p, f.start, f.end)
        elif f.number == 2:
            expect(f.wt, 0, "KeyValue", "v_type", kpos)
            v_type = <int32_t>f.value
        elif f.number == 3:
            expect(f.wt, 2, "KeyValue", "v_str", kpos)
            v_str = text(p, f.start, f.end)
        elif f.number == 4:
            expect(f.wt, 0, "KeyValue", "v_bool", kpos)
            v_bool = f.value != 0
        elif f.number == 5:
            expect(f.wt, 0, "KeyValue", "v_int64", kpos)
            v_int = <int64_t>f.value
        elif f.number == 6:
            expect(f.wt, 1, "KeyValue", "v_float64", kpos)
            v_float = read_double(p, f.start)
        elif f.number == 7:
            expect(f.wt, 2, "KeyValue", "v_binary", kpos)
            v_binary = buf[f.start:f.end]
    if v_type == 0:
        value = v_str
    elif v_type == 1:
        value = bool(v_bool)
    elif v_type == 2:
        value = v_int
    elif v_type == 3:
        value = v_float
    elif v_type == 4:
        value = v_binary
    else:
        pb_fail(f"KeyValue.v_type: unknown value type {v_type} (at offset {kv_pos})")
    return JTag(key, TAG_TYPE[v_type], value)


cdef int read_time(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, str ctx,
                   int64_t* seconds, int32_t* nanos) except -1:
    """Merge a Timestamp/Duration message into (seconds, nanos)."""
    cdef Field f
    cdef Py_ssize_t kpos
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, ctx)
        pos = f.next
        if f.number == 1:
            expect(f.wt, 0, ctx, "seconds", kpos)
            seconds[0] = <int64_t>f.value
        elif f.number == 2:
            expect(f.wt, 0, ctx, "nanos", kpos)
            nanos[0] = <int32_t>f.value
    return 0


cdef inline object ns(int64_t seconds, int32_t nanos):
    # In Python integers: seconds * 1e9 may not fit in 64 bits, and the reference does not wrap.
    return <object>seconds * 1000000000 + nanos


cdef bytes read_id(bytes buf, Py_ssize_t s, Py_ssize_t e, str ctx, str name, bint trace,
                   Py_ssize_t kpos):
    """An ID field; 8-byte trace IDs (older clients) are left-padded to 16."""
    cdef Py_ssize_t n = e - s
    if trace:
        if n != 8 and n != 16:
            pb_fail(f"{ctx}.{name}: length {n}, expected 8 or 16 bytes (at offset {kpos})")
        return buf[s:e] if n == 16 else ZERO8 + buf[s:e]
    if n != 8:
        pb_fail(f"{ctx}.{name}: length {n}, expected 8 bytes (at offset {kpos})")
    return buf[s:e]


cdef object read_log(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end):
    cdef Field f
    cdef Py_ssize_t kpos
    cdef int64_t seconds = 0
    cdef int32_t nanos = 0
    cdef list fields = []
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "Log")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, "Log", "timestamp", kpos)
            read_time(p, f.start, f.end, "Log.timestamp", &seconds, &nanos)
        elif f.number == 2:
            expect(f.wt, 2, "Log", "fields", kpos)
            fields.append(key_value(buf, p, f.start, f.end, kpos))
    return JLog(ns(seconds, nanos), fields)


cdef object read_ref(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end):
    cdef Field f
    cdef Py_ssize_t kpos
    cdef bytes trace_id = ZERO16
    cdef bytes span_id = ZERO8
    cdef int32_t ref_type = 0
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "SpanRef")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, "SpanRef", "trace_id", kpos)
            trace_id = read_id(buf, f.start, f.end, "SpanRef", "trace_id", True, kpos)
        elif f.number == 2:
            expect(f.wt, 2, "SpanRef", "span_id", kpos)
            span_id = read_id(buf, f.start, f.end, "SpanRef", "span_id", False, kpos)
        elif f.number == 3:
            expect(f.wt, 0, "SpanRef", "ref_type", kpos)
            ref_type = <int32_t>f.value
    return JRef(ref_type, trace_id, span_id)


cdef str read_process(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, str ctx,
                      str service, list tags):
    """Merge a Process message into (service_name, tags); returns the service name."""
    cdef Field f
    cdef Py_ssize_t kpos
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, ctx)
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, ctx, "service_name", kpos)
            service = text(p, f.start, f.end)
        elif f.number == 2:
            expect(f.wt, 2, ctx, "tags", kpos)
            tags.append(key_value(buf, p, f.start, f.end, kpos))
    return service


cdef object read_span(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end):
    cdef Field f
    cdef Py_ssize_t kpos
    cdef bytes trace_id = ZERO16
    cdef bytes span_id = ZERO8
    cdef str name = ""
    cdef list refs = []
    cdef uint64_t flags = 0
    cdef int64_t start_s = 0, dur_s = 0
    cdef int32_t start_n = 0, dur_n = 0
    cdef list tags = []
    cdef list logs = []
    cdef object service = None
    cdef list ptags = []
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "Span")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, "Span", "trace_id", kpos)
            trace_id = read_id(buf, f.start, f.end, "Span", "trace_id", True, kpos)
        elif f.number == 2:
            expect(f.wt, 2, "Span", "span_id", kpos)
            span_id = read_id(buf, f.start, f.end, "Span", "span_id", False, kpos)
        elif f.number == 3:
            expect(f.wt, 2, "Span", "operation_name", kpos)
            name = text(p, f.start, f.end)
        elif f.number == 4:
            expect(f.wt, 2, "Span", "references", kpos)
            refs.append(read_ref(buf, p, f.start, f.end))
        elif f.number == 5:
            expect(f.wt, 0, "Span", "flags", kpos)
            flags = f.value & 0xFFFFFFFF
        elif f.number == 6:
            expect(f.wt, 2, "Span", "start_time", kpos)
            read_time(p, f.start, f.end, "Span.start_time", &start_s, &start_n)
        elif f.number == 7:
            expect(f.wt, 2, "Span", "duration", kpos)
            read_time(p, f.start, f.end, "Span.duration", &dur_s, &dur_n)
        elif f.number == 8:
            expect(f.wt, 2, "Span", "tags", kpos)
            tags.append(key_value(buf, p, f.start, f.end, kpos))
        elif f.number == 9:
            expect(f.wt, 2, "Span", "logs", kpos)
            logs.append(read_log(buf, p, f.start, f.end))
        elif f.number == 10:
            expect(f.wt, 2, "Span", "process", kpos)
            service = read_process(buf, p, f.start, f.end, "Span.process", service or "", ptags)
    process = None if service is None else JProcess(service, ptags)
    return JSpan(trace_id, span_id, b"", name, refs, flags, ns(start_s, start_n), ns(dur_s, dur_n),
                 tags, logs, process)


def parse_post_spans(buf):
    """``PostSpansRequest`` bytes → (batch process or None, [JSpan]); ``DecodeError`` if malformed.

    A span without its own process has ``process=None``: the batch's applies to it.
    """
    cdef bytes data = bytes(buf)
    cdef const uint8_t* p = data
    cdef Field f, g
    cdef Py_ssize_t pos = 0, end = len(data), kpos, q, k2
    cdef list spans = []
    cdef object service = None
    cdef list ptags = []
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "PostSpansRequest")
        pos = f.next
        if f.number != 1:
            continue
        expect(f.wt, 2, "PostSpansRequest", "batch", kpos)
        q = f.start
        while q < f.end:
            k2 = q
            read_field(p, q, f.end, &g, "Batch")
            q = g.next
            if g.number == 1:
                expect(g.wt, 2, "Batch", "spans", k2)
                spans.append(read_span(data, p, g.start, g.end))
            elif g.number == 2:
                expect(g.wt, 2, "Batch", "process", k2)
                service = read_process(data, p, g.start, g.end, "Batch.process", service or "", ptags)
    return (None if service is None else JProcess(service, ptags)), spans


def decode_post_spans(buf):
    """``PostSpansRequest`` bytes → OTLP ``ExportTraceServiceRequest`` bytes; ``DecodeError`` if malformed."""
    process, spans = parse_post_spans(buf)
    return batch_to_otlp(process, spans)
