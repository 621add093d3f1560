"""Decode stage: the one home of the Jaeger model → OTLP mapping (shared by the Thrift and api_v2 decoders).

The Jaeger decoders (``jaeger_thrift`` for Thrift over UDP/HTTP, ``jaeger_proto`` for api_v2 gRPC)
read their wire format into the neutral model below and call :func:`batch_to_otlp`, which returns
OTLP ``ExportTraceServiceRequest`` bytes written with ``otlp_writer``.  The compiled Thrift twin
(``_ext/_jaeger_thrift.pyx``) re-implements the span part of this mapping in C and must write the
same bytes: any rule changed here must be changed there, and the differential tests prove it.

The mapping follows the OpenTelemetry Collector's Jaeger translator
(``pkg/translator/jaeger``, ``jaegerproto_to_traces.go``; its Thrift translator is the same minus
scopes and trace state, which we apply to Thrift input too, so both inputs translate alike):

Resources
  * One ResourceSpans per distinct resource, in order of first appearance.  The batch process's
    group comes first and is emitted even when no span uses it (as the Collector does); a span's own
    process (api_v2) wins over the batch's.  Spans whose processes translate to the same resource
    bytes share one ResourceSpans (identical processes always do).
  * Process → resource attributes: ``service.name`` = serviceName when non-empty, then the process
    tags, typed.  A process named ``OTLPResourceNoServiceName`` (the Collector's placeholder for a
    resource without a service) gives an empty resource.
  * As the Collector: a ``hostname`` tag becomes ``host.name`` (unless that exists), and a
    ``jaeger.version`` tag becomes ``opencensus.exporterversion`` = ``"Jaeger-" + value``
    (unless that exists); both moved keys go to the end.
  * A batch with no process and no spans is an empty request (``b""``).

Scopes
  * The first ``otel.scope.name`` tag (else the first ``otel.library.name`` tag) names the span's
    scope and is removed from the tags; then the first ``otel.scope.version`` (resp.
    ``otel.library.version``) tag is its version and is removed.  A non-string value counts as "".
    Spans are grouped into one ScopeSpans per (name, version) within their resource, in order of
    first appearance; spans without such tags share a ScopeSpans with an empty scope.

Spans
  * trace/span IDs as bytes (trace 16 bytes big-endian high‖low, span 8); name = operationName;
    start = start_ns, end = start_ns + duration_ns (modulo 2^64, as Go's uint64).  The model
    carries nanoseconds: Thrift has microseconds (×1000), api_v2 nanoseconds (kept).
  * Parent: parent_span_id when non-zero, else the first CHILD_OF reference to the same trace ID,
    else the first FOLLOWS_FROM reference to the same trace ID (the Collector's rule); zero = root.
  * References → links (attribute ``opentracing.ref_type`` = ``child_of`` / ``follows_from``; any
    ref type other than CHILD_OF is ``follows_from``), except a CHILD_OF reference whose span ID
    equals the parent's (compared by span ID only, as the Collector does).  A FOLLOWS_FROM
    reference to the parent stays a link.
  * Tags → attributes with their types (STRING→string, DOUBLE→double, BOOL→bool, LONG→int,
    BINARY→bytes).  A key repeated keeps its first position and its last value (an OTLP map).
  * ``span.kind`` → kind (client, server, producer, consumer, internal; anything else or a
    non-string unspecified), removed.
  * Status, in the Collector's order: an ``error`` tag that is true → ERROR, ``error`` removed,
    message = ``otel.status_description`` (removed) else ``http.status_message`` (kept).  Then, if
    ``otel.status_code`` is present it is removed, and — only when ``error`` did not already set
    the status — OK/ERROR (ASCII case-insensitive; anything else: unset) with message
    ``otel.status_description`` (removed).  Else, when no status yet, ``http.status_code`` (int, or a
    decimal string) decides: 4xx is ERROR for client spans and unset for server spans; otherwise
    100–398 unset, anything else ERROR (the Collector's bounds); message ``http.status_message``.
    ``http.status_code`` and ``http.status_message`` stay attributes; an ``error`` tag that is
    false stays an attribute and sets nothing.
  * ``w3c.tracestate`` (string) → trace_state, removed.
  * Flags: the Jaeger sampled bit (1) → OTLP span flags bit 0 (W3C sampled), as the Collector
    does since contrib PR #49568; other Jaeger flag bits (debug, firehose) are not kept.
  * Logs → events: time = timestamp_ns; a string field named ``event`` is the event name
    and is removed; the other fields are attributes (same map rule as tags).
  * A span with every field at its default (the Collector's "blank span") is skipped.

Deviations from the Collector (deliberate)
  * An ``error`` tag that is the string ``"true"`` counts like bool true (the Collector honours
    only bool; Jaeger's UI and several clients use the string).
  * A non-string ``event`` log field stays an attribute (the Collector takes it as an empty name
    and drops the value).
  * Attribute order: the order sent, with removed keys taken out (the Collector's map removal may
    reorder the remaining attributes; order carries no meaning in OTLP).
  * Strings that are not valid UTF-8 on the wire are decoded by the readers with U+FFFD
    replacement (protobuf strings must be UTF-8).
  * Blank spans are dropped before grouping, so a batch of only blank spans and no process is empty.
"""
from __future__ import annotations

from typing import NamedTuple

from collector.codec import otlp_writer as w

# Thrift TagType numbering (the neutral model's).
TAG_STRING, TAG_DOUBLE, TAG_BOOL, TAG_LONG, TAG_BINARY = range(5)
REF_CHILD_OF, REF_FOLLOWS_FROM = 0, 1

NO_SERVICE_NAME = "OTLPResourceNoServiceName"
SPAN_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
KIND_SERVER, KIND_CLIENT = 2, 3
_M64 = 0xFFFFFFFFFFFFFFFF
_ZERO8 = bytes(8)
_SCOPE_KEYS = (("otel.scope.name", "otel.scope.version"), ("otel.library.name", "otel.library.version"))


class JTag(NamedTuple):
    key: str
    vtype: int       # TagType: 0 STRING (str), 1 DOUBLE (float), 2 BOOL (bool), 3 LONG (int), 4 BINARY (bytes)
    value: object


class JLog(NamedTuple):
    timestamp_ns: int  # Thrift µs × 1000; api_v2 keeps its nanoseconds
    fields: list


class JRef(NamedTuple):
    ref_type: int    # 0 CHILD_OF, 1 FOLLOWS_FROM
    trace_id: bytes  # 16 bytes big-endian (high then low)
    span_id: bytes   # 8 bytes big-endian


class JProcess(NamedTuple):
    service_name: str
    tags: list


class JSpan(NamedTuple):
    trace_id: bytes         # 16 bytes
    span_id: bytes          # 8 bytes
    parent_span_id: bytes   # 8 bytes; all-zero or b"" = none (then references decide)
    operation_name: str
    references: list
    flags: int
    start_ns: int      # Thrift µs × 1000; api_v2 keeps its nanoseconds
    duration_ns: int
    tags: list
    logs: list
    process: "JProcess | None"  # a per-span process (api_v2); None = the batch's


def any_value(tag: JTag) -> bytes:
    """The AnyValue bytes of a tag, by its TagType."""
    vt = tag.vtype
    if vt == TAG_STRING:
        return w.any_string(tag.value)
    if vt == TAG_DOUBLE:
        return w.any_double(tag.value)
    if vt == TAG_BOOL:
        return w.any_bool(tag.value)
    if vt == TAG_LONG:
        return w.any_int(tag.value)
    if vt == TAG_BINARY:
        return w.any_bytes(tag.value)
    raise ValueError(f"unknown Jaeger tag type {vt}")


def _str(tag) -> str:
    """A tag's value as the Collector's ``Value.Str()`` reads it: "" unless a string."""
    return tag.value if tag.vtype == TAG_STRING else ""


def _attr_map(tags) -> dict:
    """Tags as an OTLP map: first position, last value."""
    attrs = {}
    for t in tags:
        attrs[t.key] = t
    return attrs


def _kvs(attrs: dict) -> list:
    return [w.key_value(k, any_value(t)) for k, t in attrs.items()]


def resource_kvs(process: "JProcess | None") -> list:
    """Encoded KeyValues of the resource a process translates to."""
    if process is None or process.service_name == NO_SERVICE_NAME:
        return []
    attrs = {}
    if process.service_name:
        attrs["service.name"] = JTag("service.name", TAG_STRING, process.service_name)
    for t in process.tags:
        attrs[t.key] = t
    if "hostname" in attrs and "host.name" not in attrs:
        t = attrs.pop("hostname")
        attrs["host.name"] = t
    if "jaeger.version" in attrs and "opencensus.exporterversion" not in attrs:
        t = attrs.pop("jaeger.version")
        attrs["opencensus.exporterversion"] = JTag("opencensus.exporterversion", TAG_STRING,
                                                   "Jaeger-" + _str(t))
    return _kvs(attrs)


def _scope(tags):
    """(scope name, scope version, the tags without the scope's)."""
    for name_key, version_key in _SCOPE_KEYS:
        for i, t in enumerate(tags):
            if t.key == name_key:
                rest = tags[:i] + tags[i + 1:]
                version = ""
                for j, v in enumerate(rest):
                    if v.key == version_key:
                        version = _str(v)
                        rest = rest[:j] + rest[j + 1:]
                        break
                return _str(t), version, rest
    return "", "", tags


def _is_true(tag) -> bool:
    if tag.vtype == TAG_BOOL:
        return bool(tag.value)
    return tag.vtype == TAG_STRING and tag.value == "true"


def http_code(tag):
    """``http.status_code`` as the Collector reads it: an int, or a strict base-10 int64 string."""
    if tag.vtype == TAG_LONG:
        return tag.value
    if tag.vtype != TAG_STRING:
        return None
    s = tag.value
    digits = s[1:] if s[:1] in ("+", "-") else s
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    v = int(s)
    return v if -(1 << 63) <= v < (1 << 63) else None


def _http_status(code: int, kind: int) -> int:
    if 400 <= code < 500:
        if kind == KIND_CLIENT:
            return STATUS_ERROR
        if kind == KIND_SERVER:
            return STATUS_UNSET
    return STATUS_UNSET if 100 <= code < 399 else STATUS_ERROR


def _parent(span: JSpan) -> bytes:
    """The parent span ID (8 bytes, all-zero = none), by the Collector's rule."""
    if span.parent_span_id and span.parent_span_id != _ZERO8:
        return span.parent_span_id
    follows = None
    for ref in span.references:
        if ref.trace_id != span.trace_id:
            continue
        if ref.ref_type == REF_CHILD_OF:
            return ref.span_id
        if follows is None and ref.ref_type == REF_FOLLOWS_FROM:
            follows = ref.span_id
    return follows if follows is not None else _ZERO8


def _is_blank(span: JSpan) -> bool:
    return (not any(span.trace_id) and not any(span.span_id) and not any(span.parent_span_id)
            and not span.operation_name and not span.references and not span.flags
            and not span.start_ns and not span.duration_ns and not span.tags and not span.logs
            and span.process is None)


def span_to_otlp(span: JSpan, tags) -> bytes:
    """Span message bytes; ``tags`` are the span's tags without the scope's."""
    attrs = _attr_map(tags)
    kind = 0
    t = attrs.pop("span.kind", None)
    if t is not None:
        kind = SPAN_KINDS.get(_str(t), 0)

    code, message, exists = STATUS_UNSET, "", False
    t = attrs.get("error")
    if t is not None and _is_true(t):
        code, exists = STATUS_ERROR, True
        del attrs["error"]
        d = attrs.pop("otel.status_description", None)
        if d is not None:
            message = _str(d)
        elif "http.status_message" in attrs:
            message = _str(attrs["http.status_message"])
    t = attrs.get("otel.status_code")
    if t is not None:
        if not exists:
            exists = True
            s = _str(t).encode("utf-8").upper()
            code = STATUS_OK if s == b"OK" else STATUS_ERROR if s == b"ERROR" else STATUS_UNSET
            d = attrs.pop("otel.status_description", None)
            if d is not None:
                message = _str(d)
        del attrs["otel.status_code"]
    elif not exists and "http.status_code" in attrs:
        c = http_code(attrs["http.status_code"])
        if c is not None:
            st = _http_status(c, kind)
            if st != STATUS_UNSET:
                exists, code = True, st
            if "http.status_message" in attrs:
                message = _str(attrs["http.status_message"])
    status = w.status(code, message) if exists else b""

    t = attrs.pop("w3c.tracestate", None)
    trace_state = _str(t) if t is not None else ""

    events = []
    for log in span.logs:
        fields = _attr_map(log.fields)
        name = ""
        ev = fields.get("event")
        if ev is not None and ev.vtype == TAG_STRING:
            name = ev.value
            del fields["event"]
        events.append(w.event(log.timestamp_ns & _M64, name, _kvs(fields)))

    parent = _parent(span)
    links = []
    for ref in span.references:
        if ref.span_id == parent and ref.ref_type == REF_CHILD_OF:
            continue
        ref_type = "child_of" if ref.ref_type == REF_CHILD_OF else "follows_from"
        links.append(w.link(ref.trace_id, ref.span_id,
                            [w.key_value("opentracing.ref_type", w.any_string(ref_type))]))

    return w.span(
        span.trace_id, span.span_id, span.operation_name, kind,
        span.start_ns & _M64, (span.start_ns + span.duration_ns) & _M64,
        parent_span_id=b"" if parent == _ZERO8 else parent, trace_state=trace_state,
        kvs=_kvs(attrs), events=events, links=links, status_bytes=status,
        flags=1 if span.flags & 1 else 0,
    )


def batch_to_otlp(process: "JProcess | None", spans) -> bytes:
    """A Jaeger batch (its process, its spans) → OTLP ``ExportTraceServiceRequest`` bytes."""
    groups: dict = {}  # resource bytes → {(scope name, version): [span bytes]}

    def group(proc) -> dict:
        res = w.attributes(1, resource_kvs(proc))
        g = groups.get(res)
        if g is None:
            g = groups[res] = {}
        return g

    batch_group = group(process) if process is not None else None
    for span in spans:
        if _is_blank(span):
            continue
        if span.process is not None:
            g = group(span.process)
        else:
            if batch_group is None:
                batch_group = group(None)
            g = batch_group
        name, version, tags = _scope(list(span.tags))
        g.setdefault((name, version), []).append(span_to_otlp(span, tags))

    return w.export_request(
        w.f_bytes(1, res, keep_empty=True)
        + b"".join(w.f_bytes(2, w.scope_spans(sp, name, version), keep_empty=True)
                   for (name, version), sp in g.items())
        for res, g in groups.items())
