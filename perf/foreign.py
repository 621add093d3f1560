"""Measure stage: the load generator's Jaeger (Thrift, api_v2 proto) and Zipkin (JSON, proto3) request pools.

``ForeignPool`` converts every body of an OTLP ``RequestPool`` once, when the pool is built, into
the wire messages of one foreign protocol, and records where each trace ID, span ID and timestamp
sits in them.  Per send it copies a message and overwrites those fields in place with numpy
scatter writes, exactly as ``RequestPool`` does for OTLP, so a send costs a memcpy and a few
vectorised writes, never a serialization.

The messages of one pooled OTLP request form a *group*: fresh IDs are drawn once per group, so a
trace whose spans sit in several messages (Jaeger: one ``Batch`` per resource) keeps one trace
ID across them, and parent and reference IDs follow their spans.

Mapping (as the OpenTelemetry Collector's Jaeger and Zipkin exporters do):

* Jaeger, Thrift and api_v2: one ``Batch`` per resource; ``Process`` = ``service.name`` plus the
  other resource attributes as typed tags.  Span tags: ``otel.scope.name``/``otel.scope.version``,
  the attributes (STRING/BOOL/LONG/DOUBLE/BINARY), ``span.kind``, and for a status
  ``otel.status_code`` (``OK``/``ERROR``), plus ``error=true`` and ``otel.status_description``
  on error spans; events become logs (``event`` = name, then the event's attributes); links
  become ``FOLLOWS_FROM`` references.  Thrift carries the parent in ``parentSpanId``; api_v2 has
  no such field, so there the parent is the first reference, ``CHILD_OF``.  ``flags`` = 1
  (sampled); times are microseconds (Thrift) or ``Timestamp``/``Duration`` (api_v2).
* Zipkin v2: one ``ListOfSpans`` / JSON array per pooled request; ``localEndpoint.serviceName``
  from the resource; ``kind`` SERVER/CLIENT/PRODUCER/CONSUMER (absent for internal); tags are
  strings (the attributes, ``otel.scope.*``, ``otel.status_code``, and ``error`` = the status
  message on error spans); events become annotations (value = event name); links are dropped
  (Zipkin has none); times in microseconds, duration at least 1.
* Jaeger agent UDP: one ``Agent.emitBatch`` message (oneway) per datagram; a batch too large for
  ``max_datagram`` bytes is split into several datagrams, each with the process again.

How each format keeps its fields fixed-width, so they can be rewritten in place:

* Thrift binary i64, proto ``bytes``, proto ``fixed64`` and JSON hex strings are fixed-width.
* Thrift compact writes i64 as zigzag varints.  IDs are made 10-byte varints by construction:
  every 64-bit half of a trace ID and every span ID has bit 62 set to the complement of bit 63
  (|value| >= 2^62, so its zigzag form needs all 10 bytes), which leaves 63 random bits per half.
  Microsecond timestamps are 8-byte zigzag varints for any date between 1978 and 3111.
* api_v2 ``Timestamp.seconds`` is a 5-byte varint from 1978 to 3058; ``nanos`` is not, so
  api_v2 times are shifted by whole seconds only (spans end 0–1 s earlier than with the others).
* JSON timestamps are 16 decimal digits (microseconds) until the year 2286.
* The compact message header's ``seqid`` is a varint and is left as built (one per message).
"""
from __future__ import annotations

import json
import struct
import time

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.codec.otlp_writer import f_bytes, f_fixed64, f_str, f_varint, tag
from perf import thrift_encode as th
from perf.traces import RequestPool, SendGroup, _fields

JAEGER_THRIFT_HTTP = "jaeger-http"
JAEGER_UDP_COMPACT = "jaeger-udp-compact"
JAEGER_UDP_BINARY = "jaeger-udp-binary"
JAEGER_GRPC = "jaeger-grpc"
ZIPKIN_JSON = "zipkin-json"
ZIPKIN_PROTO = "zipkin-proto"
FORMATS = (JAEGER_UDP_COMPACT, JAEGER_UDP_BINARY, JAEGER_THRIFT_HTTP, JAEGER_GRPC, ZIPKIN_JSON, ZIPKIN_PROTO)

MAX_DATAGRAM = 65_000  # Jaeger agent's UDP packet limit

_KIND_TAG = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_ZIPKIN_KIND = {2: 2, 3: 1, 4: 3, 5: 4}  # OTLP kind → zipkin.proto3 Span.Kind
_ZIPKIN_KIND_JSON = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS_OK, _STATUS_ERROR = 1, 2
_D = struct.Struct("<d")


# -- a neutral view of one OTLP request ---------------------------------------------------------

def _value(av):
    """A Python value of an OTLP AnyValue (arrays and maps as compact JSON strings)."""
    which = av.WhichOneof("value")
    if which == "string_value":
        return av.string_value
    if which == "bool_value":
        return av.bool_value
    if which == "int_value":
        return av.int_value
    if which == "double_value":
        return av.double_value
    if which == "bytes_value":
        return av.bytes_value
    if which is None:
        return ""
    from google.protobuf.json_format import MessageToDict

    return json.dumps(MessageToDict(av), separators=(",", ":"), sort_keys=True)


def _attrs(kvs) -> list:
    return [(kv.key, _value(kv.value)) for kv in kvs]


def _wide(b: bytes) -> bytes:
    """``b`` (8 or 16 bytes) with bit 62 of each 64-bit half set to NOT bit 63 (a 10-byte zigzag)."""
    out = bytearray(b)
    for i in range(0, len(out), 8):
        out[i] = (out[i] & 0xBF) | ((~out[i] & 0x80) >> 1)
    return bytes(out)


class _Resource:
    __slots__ = ("service", "attrs", "spans")

    def __init__(self, service: str, attrs: list, spans: list):
        self.service, self.attrs, self.spans = service, attrs, spans


def _resources(body: bytes) -> list[_Resource]:
    req = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in req.resource_spans:
        attrs = _attrs(rs.resource.attributes)
        service = next((v for k, v in attrs if k == "service.name"), "unknown_service")
        others = [(k, v) for k, v in attrs if k != "service.name"]
        spans = [(ss.scope, sp) for ss in rs.scope_spans for sp in ss.spans]
        out.append(_Resource(str(service), others, spans))
    return out


def _span_tags(scope, sp) -> list:
    tags = []
    if scope.name:
        tags.append(("otel.scope.name", scope.name))
    if scope.version:
        tags.append(("otel.scope.version", scope.version))
    tags += _attrs(sp.attributes)
    if sp.kind in _KIND_TAG:
        tags.append(("span.kind", _KIND_TAG[sp.kind]))
    code = sp.status.code
    if code == _STATUS_ERROR:
        tags.append(("otel.status_code", "ERROR"))
        tags.append(("error", True))
        if sp.status.message:
            tags.append(("otel.status_description", sp.status.message))
    elif code == _STATUS_OK:
        tags.append(("otel.status_code", "OK"))
    return tags


# A mark is (offset, kind, key, encoding): kind "trace" (16 bytes), "trace_hi" / "trace_lo"
# (its 8-byte halves), "span" (8 bytes) with the original ID as key, or "time" with the
# original value (in the encoding's unit) as key.

# -- Jaeger Thrift ------------------------------------------------------------------------------

def _thrift_tag(w, key: str, value) -> None:
    w.struct_begin()
    w.field(th.STRING, 1)
    w.string(key)
    if isinstance(value, bool):
        w.field(th.I32, 2)
        w.i32(2)  # BOOL
        w.field_bool(5, value)
    elif isinstance(value, int):
        w.field(th.I32, 2)
        w.i32(3)  # LONG
        w.field(th.I64, 6)
        w.i64(value)
    elif isinstance(value, float):
        w.field(th.I32, 2)
        w.i32(1)  # DOUBLE
        w.field(th.DOUBLE, 4)
        w.double(value)
    elif isinstance(value, bytes):
        w.field(th.I32, 2)
        w.i32(4)  # BINARY
        w.field(th.STRING, 7)
        w.binary(value)
    else:
        w.field(th.I32, 2)
        w.i32(0)  # STRING
        w.field(th.STRING, 3)
        w.string(value)
    w.struct_end()


def _thrift_tags(w, fid: int, tags: list) -> None:
    w.field(th.LIST, fid)
    w.list_begin(th.STRUCT, len(tags))
    for k, v in tags:
        _thrift_tag(w, k, v)


def _thrift_process(proto: str, res: _Resource) -> bytes:
    w = th.writer(proto)
    w.struct_begin()
    w.field(th.STRING, 1)
    w.string(res.service)
    if res.attrs:
        _thrift_tags(w, 2, res.attrs)
    w.struct_end()
    return bytes(w.buf)


def _thrift_span(proto: str, scope, sp) -> tuple[bytes, list]:
    """One jaeger.Span struct and its marks (offsets from the struct's start)."""
    enc = "zz10" if proto == "compact" else "raw"
    tenc = "zz8_us" if proto == "compact" else "be64_us"
    fix = _wide if proto == "compact" else bytes
    w = th.writer(proto)
    marks = []
    tid = fix(sp.trace_id)
    sid = fix(sp.span_id)

    def id64(fid, kind, key, half: bytes):
        w.field(th.I64, fid)
        marks.append((w.i64(th.signed64(int.from_bytes(half, "big"))), kind, key, enc))

    w.struct_begin()
    id64(1, "trace_lo", tid, tid[8:])
    id64(2, "trace_hi", tid, tid[:8])
    id64(3, "span", sid, sid)
    parent = sp.parent_span_id
    if len(parent) == 8 and any(parent):
        pid = fix(parent)
        id64(4, "span", pid, pid)
    else:
        w.field(th.I64, 4)
        w.i64(0)
    w.field(th.STRING, 5)
    w.string(sp.name)
    links = [ln for ln in sp.links if len(ln.trace_id) == 16 and len(ln.span_id) == 8]
    if links:
        w.field(th.LIST, 6)
        w.list_begin(th.STRUCT, len(links))
        for ln in links:
            ltid, lsid = fix(ln.trace_id), fix(ln.span_id)
            w.struct_begin()
            w.field(th.I32, 1)
            w.i32(1)  # FOLLOWS_FROM
            id64(2, "trace_lo", ltid, ltid[8:])
            id64(3, "trace_hi", ltid, ltid[:8])
            id64(4, "span", lsid, lsid)
            w.struct_end()
    w.field(th.I32, 7)
    w.i32(1)  # sampled
    start_us = sp.start_time_unix_nano // 1000
    w.field(th.I64, 8)
    marks.append((w.i64(start_us), "time", start_us, tenc))
    w.field(th.I64, 9)
    w.i64(max(sp.end_time_unix_nano // 1000 - start_us, 0))
    _thrift_tags(w, 10, _span_tags(scope, sp))
    if sp.events:
        w.field(th.LIST, 11)
        w.list_begin(th.STRUCT, len(sp.events))
        for ev in sp.events:
            w.struct_begin()
            ts = ev.time_unix_nano // 1000
            w.field(th.I64, 1)
            marks.append((w.i64(ts), "time", ts, tenc))
            fields = ([("event", ev.name)] if ev.name else []) + _attrs(ev.attributes)
            _thrift_tags(w, 2, fields)
            w.struct_end()
    w.struct_end()
    return bytes(w.buf), marks


def _thrift_message(proto: str, agent: bool, seqid: int, process: bytes, spans: list) -> tuple[bytes, list]:
    w = th.writer(proto)
    if agent:
        w.message_begin("emitBatch", th.ONEWAY, seqid)
        w.struct_begin()  # emitBatch_args
        w.field(th.STRUCT, 1)
    w.struct_begin()  # Batch
    w.field(th.STRUCT, 1)
    w.raw(process)
    w.field(th.LIST, 2)
    w.list_begin(th.STRUCT, len(spans))
    marks = []
    for body, rel in spans:
        base = w.raw(body)
        marks += [(base + p, k, key, e) for p, k, key, e in rel]
    w.struct_end()
    if agent:
        w.struct_end()
    return bytes(w.buf), marks


def jaeger_thrift_messages(body: bytes, proto: str, agent: bool,
                           max_bytes: int | None) -> list[tuple[bytes, int, list]]:
    """(message, span count, marks) for one OTLP request: one Batch per resource, split to fit."""
    out = []
    for res in _resources(body):
        process = _thrift_process(proto, res)
        spans = [_thrift_span(proto, scope, sp) for scope, sp in res.spans]
        if not spans:
            continue
        if max_bytes is None:
            chunks = [spans]
        else:
            # Header, process and framing of an empty batch, plus room for a longer list header.
            overhead = len(_thrift_message(proto, agent, 0x7FFFFFFF, process, [])[0]) + 5
            chunks, cur, size = [], [], overhead
            for s in spans:
                if overhead + len(s[0]) > max_bytes:
                    raise SystemExit(f"one {len(s[0]):,}-byte span does not fit a {max_bytes:,}-byte "
                                     "datagram: lower --span-bytes / --attrs")
                if size + len(s[0]) > max_bytes:
                    chunks.append(cur)
                    cur, size = [], overhead
                cur.append(s)
                size += len(s[0])
            chunks.append(cur)
        for chunk in chunks:
            msg, marks = _thrift_message(proto, agent, len(out) + 1, process, chunk)
            assert max_bytes is None or len(msg) <= max_bytes
            out.append((msg, len(chunk), marks))
    return out


# -- Jaeger api_v2 protobuf ---------------------------------------------------------------------

def _pb_kv(key: str, value) -> bytes:
    b = f_str(1, key)
    if isinstance(value, bool):
        return b + f_varint(2, 1) + f_varint(4, int(value))
    if isinstance(value, int):
        return b + f_varint(2, 2) + f_varint(5, value)
    if isinstance(value, float):
        return b + f_varint(2, 3) + (tag(6, 1) + _D.pack(value) if value != 0.0 else b"")
    if isinstance(value, bytes):
        return b + f_varint(2, 4) + f_bytes(7, value)
    return b + f_str(3, value)


def _pb_time(ns: int) -> bytes:
    """google.protobuf.Timestamp / Duration of ``ns`` nanoseconds."""
    return f_varint(1, ns // 1_000_000_000) + f_varint(2, ns % 1_000_000_000)


def _pb_jaeger_span(scope, sp) -> bytes:
    refs = b""
    if len(sp.parent_span_id) == 8 and any(sp.parent_span_id):
        refs += f_bytes(4, f_bytes(1, sp.trace_id) + f_bytes(2, sp.parent_span_id))  # CHILD_OF = 0
    for ln in sp.links:
        if len(ln.trace_id) == 16 and len(ln.span_id) == 8:
            refs += f_bytes(4, f_bytes(1, ln.trace_id) + f_bytes(2, ln.span_id) + f_varint(3, 1))
    logs = b""
    for ev in sp.events:
        fields = ([("event", ev.name)] if ev.name else []) + _attrs(ev.attributes)
        logs += f_bytes(9, f_bytes(1, _pb_time(ev.time_unix_nano), keep_empty=True)
                        + b"".join(f_bytes(2, _pb_kv(k, v)) for k, v in fields))
    dur = max(sp.end_time_unix_nano - sp.start_time_unix_nano, 0)
    return (f_bytes(1, sp.trace_id) + f_bytes(2, sp.span_id) + f_str(3, sp.name) + refs
            + f_varint(5, 1)
            + f_bytes(6, _pb_time(sp.start_time_unix_nano), keep_empty=True)
            + f_bytes(7, _pb_time(dur), keep_empty=True)
            + b"".join(f_bytes(8, _pb_kv(k, v)) for k, v in _span_tags(scope, sp))
            + logs)


def _seconds_mark(buf: bytes, s: int, e: int, marks: list) -> None:
    for f, wt, s2, e2 in _fields(buf, s, e):
        if f == 1 and wt == 0:
            if e2 - s2 != 5:
                raise ValueError("Timestamp.seconds is not a 5-byte varint")
            marks.append((s2, "time", _uvarint_value(buf, s2), "var5_s"))


def _uvarint_value(buf: bytes, pos: int) -> int:
    v = shift = 0
    while True:
        b = buf[pos]
        v |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if b < 0x80:
            return v


def jaeger_proto_messages(body: bytes) -> list[tuple[bytes, int, list]]:
    """(PostSpansRequest, span count, marks) per resource of one OTLP request."""
    out = []
    for res in _resources(body):
        if not res.spans:
            continue
        process = f_str(1, res.service) + b"".join(f_bytes(2, _pb_kv(k, v)) for k, v in res.attrs)
        batch = b"".join(f_bytes(1, _pb_jaeger_span(scope, sp)) for scope, sp in res.spans)
        batch += f_bytes(2, process, keep_empty=True)
        msg = f_bytes(1, batch, keep_empty=True)
        marks: list = []
        for f, _, s, e in _fields(msg, 0, len(msg)):
            for f2, _, s2, e2 in _fields(msg, s, e):
                if f2 != 1:
                    continue
                for f3, _, s3, e3 in _fields(msg, s2, e2):
                    if f3 == 1:
                        marks.append((s3, "trace", msg[s3:e3], "raw"))
                    elif f3 == 2:
                        marks.append((s3, "span", msg[s3:e3], "raw"))
                    elif f3 == 4:
                        for f4, _, s4, e4 in _fields(msg, s3, e3):
                            if f4 in (1, 2):
                                marks.append((s4, "trace" if f4 == 1 else "span", msg[s4:e4], "raw"))
                    elif f3 == 6:
                        _seconds_mark(msg, s3, e3, marks)
                    elif f3 == 9:
                        for f4, _, s4, e4 in _fields(msg, s3, e3):
                            if f4 == 1:
                                _seconds_mark(msg, s4, e4, marks)
        out.append((msg, len(res.spans), marks))
    return out


# -- Zipkin v2 ------------------------------------------------------------------------------------

def _zipkin_str(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        import base64

        return base64.b64encode(v).decode()
    return v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


def _zipkin_tags(scope, sp) -> dict:
    tags = {}
    if scope.name:
        tags["otel.scope.name"] = scope.name
    if scope.version:
        tags["otel.scope.version"] = scope.version
    for k, v in _attrs(sp.attributes):
        tags[k] = _zipkin_str(v)
    if sp.status.code == _STATUS_ERROR:
        tags["otel.status_code"] = "ERROR"
        tags["error"] = sp.status.message or "true"
    elif sp.status.code == _STATUS_OK:
        tags["otel.status_code"] = "OK"
    return tags


def _us(ns: int) -> int:
    return ns // 1000


def _dur_us(sp) -> int:
    return max((sp.end_time_unix_nano - sp.start_time_unix_nano) // 1000, 1)


def _has_parent(sp) -> bool:
    return len(sp.parent_span_id) == 8 and any(sp.parent_span_id)


def zipkin_proto_message(body: bytes) -> tuple[bytes, int, list]:
    """(ListOfSpans, span count, marks) for one OTLP request."""
    spans = []
    for res in _resources(body):
        endpoint = f_bytes(8, f_str(1, res.service))
        for scope, sp in res.spans:
            b = f_bytes(1, sp.trace_id)
            if _has_parent(sp):
                b += f_bytes(2, sp.parent_span_id)
            b += (f_bytes(3, sp.span_id) + f_varint(4, _ZIPKIN_KIND.get(sp.kind, 0)) + f_str(5, sp.name)
                  + f_fixed64(6, _us(sp.start_time_unix_nano)) + f_varint(7, _dur_us(sp)) + endpoint)
            for ev in sp.events:
                b += f_bytes(10, f_fixed64(1, _us(ev.time_unix_nano)) + f_str(2, ev.name))
            for k, v in _zipkin_tags(scope, sp).items():
                b += f_bytes(11, f_str(1, k) + f_str(2, v))
            spans.append(f_bytes(1, b))
    msg = b"".join(spans)
    marks: list = []
    for _, _, s, e in _fields(msg, 0, len(msg)):
        for f2, wt, s2, e2 in _fields(msg, s, e):
            if f2 == 1:
                marks.append((s2, "trace", msg[s2:e2], "raw"))
            elif f2 in (2, 3):
                marks.append((s2, "span", msg[s2:e2], "raw"))
            elif f2 == 6 and wt == 1:
                marks.append((s2, "time", int.from_bytes(msg[s2:e2], "little"), "le64_us"))
            elif f2 == 10:
                for f3, wt3, s3, e3 in _fields(msg, s2, e2):
                    if f3 == 1 and wt3 == 1:
                        marks.append((s3, "time", int.from_bytes(msg[s3:e3], "little"), "le64_us"))
    return msg, len(spans), marks


def zipkin_json_message(body: bytes) -> tuple[bytes, int, list]:
    """(JSON array of Zipkin v2 spans, span count, marks) for one OTLP request."""
    parts: list[str] = []
    marks: list = []
    n = 0
    dumps = json.dumps

    def put(s: str) -> None:
        nonlocal n
        parts.append(s)
        n += len(s)  # json.dumps escapes to ASCII, so characters are bytes

    def stamp(us: int) -> None:
        text = "%d" % us
        if len(text) != 16:
            raise ValueError("a microsecond timestamp is not 16 digits")
        marks.append((n, "time", us, "dec16_us"))
        put(text)

    put("[")
    count = 0
    for res in _resources(body):
        endpoint = ',"localEndpoint":{"serviceName":' + dumps(res.service) + "}"
        for scope, sp in res.spans:
            put("," if count else "")
            count += 1
            put('{"traceId":"')
            marks.append((n, "trace", sp.trace_id, "hex"))
            put(sp.trace_id.hex())
            if _has_parent(sp):
                put('","parentId":"')
                marks.append((n, "span", sp.parent_span_id, "hex"))
                put(sp.parent_span_id.hex())
            put('","id":"')
            marks.append((n, "span", sp.span_id, "hex"))
            put(sp.span_id.hex())
            put('"')
            if sp.kind in _ZIPKIN_KIND_JSON:
                put(',"kind":"%s"' % _ZIPKIN_KIND_JSON[sp.kind])
            put(',"name":' + dumps(sp.name) + ',"timestamp":')
            stamp(_us(sp.start_time_unix_nano))
            put(',"duration":%d' % _dur_us(sp) + endpoint)
            if sp.events:
                put(',"annotations":[')
                for i, ev in enumerate(sp.events):
                    put(',{"timestamp":' if i else '{"timestamp":')
                    stamp(_us(ev.time_unix_nano))
                    put(',"value":' + dumps(ev.name) + "}")
                put("]")
            put(',"tags":' + dumps(_zipkin_tags(scope, sp), separators=(",", ":")) + "}")
    put("]")
    msg = "".join(parts).encode("ascii")
    assert len(msg) == n
    return msg, count, marks


# -- in-place rewriting ---------------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SH10 = np.arange(0, 70, 7, dtype=np.uint64)
_CONT10 = np.array([0x80] * 9 + [0], dtype=np.uint8)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_POW10 = np.array([10 ** (15 - i) for i in range(16)], dtype=np.uint64)
_ID_WIDTH = {"raw": 1, "hex": 2}  # bytes written per source byte; zz10 writes 10 per 8
_TIME_WIDTH = {"be64_us": 8, "le64_us": 8, "zz8_us": 8, "var5_s": 5, "dec16_us": 16}


def _varint_fixed(x: np.ndarray, width: int) -> np.ndarray:
    """Each value as a varint of exactly ``width`` bytes (the caller guarantees the range)."""
    sh = np.arange(0, 7 * width, 7, dtype=np.uint64)
    out = ((x[:, None] >> sh) & np.uint64(0x7F)).astype(np.uint8)
    out[:, :-1] |= 0x80
    return out


def _encode_ids(src: np.ndarray, enc: str) -> np.ndarray:
    if enc == "raw":
        return src
    if enc == "hex":
        out = np.empty((src.shape[0], src.shape[1] * 2), dtype=np.uint8)
        out[:, 0::2] = _HEX[src >> 4]
        out[:, 1::2] = _HEX[src & 15]
        return out
    # zz10: 8 big-endian bytes → signed i64 → zigzag → 10-byte varint
    v = np.ascontiguousarray(src).view(">u8")[:, 0].astype(np.uint64)
    zz = (v << np.uint64(1)) ^ ((v >> np.uint64(63)) * _ONES)
    return (((zz[:, None] >> _SH10) & np.uint64(0x7F)).astype(np.uint8)) | _CONT10


def _encode_times(x: np.ndarray, enc: str) -> np.ndarray:
    if enc == "be64_us":
        return x.astype(">u8").view(np.uint8).reshape(-1, 8)
    if enc == "le64_us":
        return x.astype("<u8").view(np.uint8).reshape(-1, 8)
    if enc == "zz8_us":
        return _varint_fixed(x << np.uint64(1), 8)
    if enc == "var5_s":
        return _varint_fixed(x, 5)
    return ((x[:, None] // _POW10) % np.uint64(10)).astype(np.uint8) + 48  # dec16_us


class _Message:
    """One foreign message with its ID and time fields laid out for one vectorised write each.

    Every ID field is seen as 8-byte rows (a trace ID is two: high half, low half) of the group's
    fresh ID matrix ``[trace halves..., span IDs...]``, so each send does one gather + encode +
    scatter for all IDs and one for all timestamps (each format uses one encoding of each).
    """

    __slots__ = ("body", "nspans", "id_writes", "time_writes")

    def __init__(self, body: bytes, nspans: int, marks: list, traces: dict, spans: dict):
        self.body = body
        self.nspans = nspans
        ids: dict = {}  # encoding → (positions, rows)
        times: dict = {}  # encoding → (positions, base values)
        ntraces = len(traces)
        for pos, kind, key, enc in marks:
            if kind == "time":
                p, b = times.setdefault(enc, ([], []))
                p.append(pos)
                b.append(key)
                continue
            p, rows = ids.setdefault(enc, ([], []))
            step = 8 * _ID_WIDTH.get(enc, 0)  # bytes one 8-byte row takes in this encoding
            if kind == "trace":
                t = traces[key]
                p += [pos, pos + step]
                rows += [2 * t, 2 * t + 1]
            elif kind == "trace_hi":
                p.append(pos)
                rows.append(2 * traces[key])
            elif kind == "trace_lo":
                p.append(pos)
                rows.append(2 * traces[key] + 1)
            else:
                p.append(pos)
                rows.append(2 * ntraces + spans[key])
        self.id_writes = []
        for enc, (pos, rows) in ids.items():
            width = 10 if enc == "zz10" else 8 * _ID_WIDTH[enc]
            self.id_writes.append((np.asarray(pos, dtype=np.intp)[:, None] + np.arange(width),
                                   np.asarray(rows, dtype=np.intp), enc))
        self.time_writes = []
        for enc, (pos, base) in times.items():
            self.time_writes.append((np.asarray(pos, dtype=np.intp)[:, None] + np.arange(_TIME_WIDTH[enc]),
                                     np.asarray(base, dtype=np.uint64), enc))

    def render(self, rows: np.ndarray, shift_us: int, shift_s: int) -> bytearray:
        out = bytearray(self.body)
        view = np.frombuffer(out, dtype=np.uint8)
        for pos, idx, enc in self.id_writes:
            view[pos] = _encode_ids(rows[idx], enc)
        for pos, base, enc in self.time_writes:
            view[pos] = _encode_times(base + np.uint64(shift_s if enc == "var5_s" else shift_us), enc)
        del view
        return out


class _Group:
    __slots__ = ("messages", "ntraces", "nids", "trace_spans")

    def __init__(self, messages: list, ntraces: int, nids: int, trace_spans: np.ndarray):
        self.messages, self.ntraces, self.nids, self.trace_spans = messages, ntraces, nids, trace_spans


class ForeignPool:
    """The bodies of an OTLP ``RequestPool`` as messages of one foreign protocol, re-identified per send.

    ``fresh()`` / ``next_send()`` walk the groups' messages in order; the first message of a group
    draws the group's fresh trace and span IDs.  Same contract as ``RequestPool``.
    """

    def __init__(self, fmt: str, otlp: RequestPool, seed: int = 1, max_datagram: int = MAX_DATAGRAM):
        if fmt not in FORMATS:
            raise ValueError(f"unknown foreign format {fmt!r}")
        self.fmt = fmt
        self.shape = otlp.shape
        self.built_ns = otlp.built_ns
        self.wide_ids = fmt == JAEGER_UDP_COMPACT
        self.max_datagram = max_datagram if fmt in (JAEGER_UDP_COMPACT, JAEGER_UDP_BINARY) else None
        self.groups: list[_Group] = []
        for t in otlp.templates:
            self.groups.append(self._convert(t.body))
        self.messages = [m for g in self.groups for m in g.messages]
        self._rng = np.random.default_rng(seed + 104_729)
        self._g = self._m = 0
        self._rows = None
        self._send_group: SendGroup | None = None

    def _convert(self, body: bytes) -> _Group:
        fmt = self.fmt
        if fmt in (JAEGER_UDP_COMPACT, JAEGER_UDP_BINARY, JAEGER_THRIFT_HTTP):
            proto = "compact" if fmt == JAEGER_UDP_COMPACT else "binary"
            raw = jaeger_thrift_messages(body, proto, fmt != JAEGER_THRIFT_HTTP, self.max_datagram)
        elif fmt == JAEGER_GRPC:
            raw = jaeger_proto_messages(body)
        elif fmt == ZIPKIN_PROTO:
            raw = [zipkin_proto_message(body)]
        else:
            raw = [zipkin_json_message(body)]
        traces: dict = {}
        spans: dict = {}
        for _, _, marks in raw:  # number the group's traces and spans first: rows need the count
            for _, kind, key, _ in marks:
                if kind != "time":
                    table = traces if kind.startswith("trace") else spans
                    table.setdefault(key, len(table))
        msgs = [_Message(b, n, marks, traces, spans) for b, n, marks in raw]
        # Spans per trace, for --verify (keys as the messages hold them: widened for compact).
        fix = _wide if self.wide_ids else bytes
        counts = np.zeros(len(traces), dtype=np.int64)
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    counts[traces[fix(sp.trace_id)]] += 1
        return _Group(msgs, len(traces), len(spans), counts)

    # -- statistics -------------------------------------------------------------------------------

    @property
    def mean_body_bytes(self) -> float:
        return sum(len(m.body) for m in self.messages) / len(self.messages)

    @property
    def mean_spans_per_send(self) -> float:
        return sum(m.nspans for m in self.messages) / len(self.messages)

    def stats(self) -> dict:
        sizes = np.array([len(m.body) for m in self.messages])
        spans = np.array([m.nspans for m in self.messages])
        return {"format": self.fmt, "groups": len(self.groups), "messages": len(self.messages),
                "messages_per_group": round(len(self.messages) / len(self.groups), 2),
                "spans_per_message": {"mean": round(float(spans.mean()), 2), "min": int(spans.min()),
                                      "max": int(spans.max())},
                "message_bytes": {"mean": round(float(sizes.mean()), 1), "max": int(sizes.max())},
                "max_datagram_bytes": self.max_datagram,
                "wide_compact_ids": self.wide_ids}

    # -- per send ---------------------------------------------------------------------------------

    def _draw(self, g: _Group) -> None:
        rnd = np.frombuffer(self._rng.bytes(16 * g.ntraces + 8 * g.nids), dtype=np.uint8).copy()
        if self.wide_ids:
            b = rnd[::8]  # byte 0 of every 64-bit half and of every span ID
            rnd[::8] = (b & 0xBF) | ((~b & 0x80) >> 1)
        self._rows = rnd.reshape(-1, 8)  # trace ID halves, then span IDs
        self._send_group = SendGroup(rnd[: 16 * g.ntraces].reshape(g.ntraces, 16), g.trace_spans,
                                     len(g.messages))

    def next_send(self) -> tuple[bytearray, int, SendGroup]:
        """The next message with fresh IDs and current timestamps, its span count, and its group."""
        g = self.groups[self._g]
        if self._m == 0:
            self._draw(g)
        msg = g.messages[self._m]
        self._m += 1
        if self._m == len(g.messages):
            self._m = 0
            self._g = (self._g + 1) % len(self.groups)
        elapsed = max(time.time_ns() - self.built_ns, 0)
        return msg.render(self._rows, elapsed // 1000, elapsed // 1_000_000_000), msg.nspans, self._send_group

    def fresh(self) -> tuple[bytearray, int]:
        body, n, _ = self.next_send()
        return body, n
