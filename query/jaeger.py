"""Query stage: OTLP spans → the Jaeger UI / classic HTTP API JSON model (``/api/traces*``).

The rendering follows what Jaeger v2 serves for OTLP-stored data (its OTLP → api_v2 model
translation, then the UI JSON model), checked against the fixtures in
``shared/conformance/jaeger/query-api/`` (``transform/`` and ``uimodel/``):

* IDs are lower-case hex; a trace ID whose high 64 bits are zero is written with 16 digits.
* ``startTime`` / ``duration`` / log ``timestamp`` are integer microseconds (nanoseconds
  truncated toward zero).
* The parent becomes the first reference, ``CHILD_OF``.  Links follow, typed by their
  ``opentracing.ref_type`` attribute (``child_of`` → ``CHILD_OF``, anything else or missing →
  ``FOLLOWS_FROM``, as Jaeger does: a link is not a parent unless it says so).  A link to the
  parent itself does not repeat it but sets the parent reference's type — that is how a span
  whose only parent reference was ``FOLLOWS_FROM`` survives Jaeger → OTLP → Jaeger.
* Tags, in this order: ``otel.scope.name``, ``otel.scope.version``, the span attributes,
  ``span.kind``, ``otel.status_code``, ``error`` (status ERROR), ``otel.status_description``,
  ``w3c.tracestate``.  Values are typed ``string|bool|int64|float64|binary``; an int64 outside
  ±(2^53−1) is a string (JavaScript numbers cannot hold it), binary is base64, arrays and
  kvlists are compact JSON strings (keys sorted), non-finite doubles are strings.
* Events become logs; a non-empty event name is the first field, ``event``, unless the event
  already carries an ``event`` attribute.
* Each resource becomes a process (``service.name`` → ``serviceName``, the other resource
  attributes → tags); identical processes share one key ``p1``, ``p2``… in order of first use.
* The span attribute ``@jaeger@warnings`` (Jaeger v2's home for span warnings, a string array)
  becomes the span's ``warnings`` instead of a tag.
"""
from __future__ import annotations

import base64
import json
import math

from query.anyvalue import as_string, go_float

__all__ = ["to_jaeger_trace", "to_jaeger_traces", "envelope", "NO_SERVICE_NAME", "WARNINGS_ATTRIBUTE"]

NO_SERVICE_NAME = "OTLP_ResourceNoServiceName"  # Jaeger's name for a resource without service.name
WARNINGS_ATTRIBUTE = "@jaeger@warnings"
REF_TYPE_ATTRIBUTE = "opentracing.ref_type"

_MAX_SAFE_INT = 2**53 - 1
_KIND_TAGS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS_TAGS = {1: "OK", 2: "ERROR"}
_STATUS_ERROR = 2
_ZERO8 = bytes(8)


def envelope(data: list, errors=None, *, total: int = 0, limit: int = 0, offset: int = 0) -> dict:
    """The classic Jaeger HTTP API response body around ``data``.

    Jaeger leaves ``total``/``limit``/``offset`` at 0 on every endpoint (the transform fixture
    shows it) and sets ``errors`` to null or a list of ``{"code", "msg", "traceID"?}``.
    """
    return {"data": data, "total": total, "limit": limit, "offset": offset, "errors": errors}


def to_jaeger_trace(traces) -> dict:
    """Jaeger UI JSON of one trace: ``{"traceID", "spans", "processes", "warnings"}``.

    ``traces`` is a ``TracesData`` (or anything with ``resource_spans``, such as an
    ``ExportTraceServiceRequest``) holding the spans of one trace, in the order to render them;
    duplicate spans are rendered, not merged.  Trace-level warnings do not exist in OTLP, so
    ``warnings`` is always null.
    """
    return _render(list(_entries(traces)))


def to_jaeger_traces(traces) -> list[dict]:
    """One :func:`to_jaeger_trace` dict per trace ID in ``traces``, in order of first appearance."""
    groups: dict[bytes, list] = {}
    for entry in _entries(traces):
        groups.setdefault(_trace_key(entry[2].trace_id), []).append(entry)
    return [_render(entries) for entries in groups.values()]


# --------------------------------------------------------------------------- assembly


def _entries(traces):
    """(resource index, resource, span, scope tags) for every span, in message order."""
    for r, rs in enumerate(traces.resource_spans):
        for ss in rs.scope_spans:
            scope_tags = _scope_tags(ss.scope)
            for span in ss.spans:
                yield r, rs.resource, span, scope_tags


def _render(entries: list) -> dict:
    processes: dict[str, dict] = {}
    by_identity: dict[tuple, str] = {}
    by_resource: dict[int, str] = {}
    spans = []
    for r, resource, span, scope_tags in entries:
        pid = by_resource.get(r)
        if pid is None:
            process = _process(resource)
            identity = (process["serviceName"], _identity(process["tags"]))
            pid = by_identity.get(identity)
            if pid is None:
                pid = f"p{len(processes) + 1}"
                by_identity[identity] = pid
                processes[pid] = process
            by_resource[r] = pid
        spans.append(_span(span, scope_tags, pid))
    return {
        "traceID": spans[0]["traceID"] if spans else "",
        "spans": spans,
        "processes": processes,
        "warnings": None,
    }


def _identity(tags: list) -> tuple:
    # Tag order does not make two processes different; the first one seen is shown as it came.
    return tuple(sorted((t["key"], t["type"], json.dumps(t["value"])) for t in tags))


def _process(resource) -> dict:
    service = None
    tags = []
    for kv in resource.attributes:
        if kv.key == "service.name":
            if service is None:
                service = as_string(kv.value)
            continue
        tags.append(_tag(kv.key, kv.value))
    return {"serviceName": service if service else NO_SERVICE_NAME, "tags": tags}


def _scope_tags(scope) -> list:
    tags = []
    if scope.name:
        tags.append({"key": "otel.scope.name", "type": "string", "value": scope.name})
    if scope.version:
        tags.append({"key": "otel.scope.version", "type": "string", "value": scope.version})
    return tags


def _span(span, scope_tags: list, pid: str) -> dict:
    trace_id = _trace_key(span.trace_id)
    trace_hex = _trace_hex(trace_id)

    references = []
    parent = span.parent_span_id
    has_parent = bool(parent) and parent.rjust(8, b"\0") != _ZERO8
    if has_parent:
        references.append({"refType": "CHILD_OF", "traceID": trace_hex, "spanID": _span_hex(parent)})
    for link in span.links:
        ref_type = _ref_type(link)
        link_trace = _trace_key(link.trace_id)
        if has_parent and link_trace == trace_id and _span_hex(link.span_id) == references[0]["spanID"]:
            references[0]["refType"] = ref_type
            continue
        references.append({"refType": ref_type, "traceID": _trace_hex(link_trace), "spanID": _span_hex(link.span_id)})

    tags = list(scope_tags)
    warnings = None
    for kv in span.attributes:
        if kv.key == WARNINGS_ATTRIBUTE:
            warnings = (warnings or []) + _warnings(kv.value)
            continue
        tags.append(_tag(kv.key, kv.value))
    kind = _KIND_TAGS.get(span.kind)
    if kind:
        tags.append({"key": "span.kind", "type": "string", "value": kind})
    status = span.status
    code = _STATUS_TAGS.get(status.code)
    if code:
        tags.append({"key": "otel.status_code", "type": "string", "value": code})
    if status.code == _STATUS_ERROR:
        tags.append({"key": "error", "type": "bool", "value": True})
    if status.message:
        tags.append({"key": "otel.status_description", "type": "string", "value": status.message})
    if span.trace_state:
        tags.append({"key": "w3c.tracestate", "type": "string", "value": span.trace_state})

    logs = []
    for event in span.events:
        fields = []
        if event.name and not any(kv.key == "event" for kv in event.attributes):
            fields.append({"key": "event", "type": "string", "value": event.name})
        fields.extend(_tag(kv.key, kv.value) for kv in event.attributes)
        logs.append({"timestamp": event.time_unix_nano // 1000, "fields": fields})

    start = span.start_time_unix_nano
    return {
        "traceID": trace_hex,
        "spanID": _span_hex(span.span_id),
        "operationName": span.name,
        "references": references,
        "startTime": start // 1000,
        "duration": _micros(span.end_time_unix_nano - start),
        "tags": tags,
        "logs": logs,
        "processID": pid,
        "warnings": warnings,
    }


def _ref_type(link) -> str:
    for kv in link.attributes:
        if kv.key == REF_TYPE_ATTRIBUTE:
            return "CHILD_OF" if as_string(kv.value) == "child_of" else "FOLLOWS_FROM"
    return "FOLLOWS_FROM"


def _warnings(value) -> list:
    if value.WhichOneof("value") == "array_value":
        return [as_string(v) for v in value.array_value.values]
    return [as_string(value)]


def _micros(nanos: int) -> int:
    # Go's Duration / Microsecond truncates toward zero (a clock-skewed negative span too).
    return nanos // 1000 if nanos >= 0 else -((-nanos) // 1000)


# --------------------------------------------------------------------------- IDs


def _trace_key(raw: bytes) -> bytes:
    """A trace ID as Jaeger's 128-bit value: shorter IDs are left-padded with zeros."""
    return raw.rjust(16, b"\0")


def _trace_hex(key: bytes) -> str:
    if len(key) == 16 and key[:8] == _ZERO8:
        return key[8:].hex()
    return key.hex()


def _span_hex(raw: bytes) -> str:
    return raw.rjust(8, b"\0").hex()


# --------------------------------------------------------------------------- values


def _tag(key: str, value) -> dict:
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"key": key, "type": "string", "value": value.string_value}
    if which == "bool_value":
        return {"key": key, "type": "bool", "value": value.bool_value}
    if which == "int_value":
        n = value.int_value
        return {"key": key, "type": "int64", "value": n if -_MAX_SAFE_INT <= n <= _MAX_SAFE_INT else str(n)}
    if which == "double_value":
        x = value.double_value
        return {"key": key, "type": "float64", "value": x if math.isfinite(x) else go_float(x)}
    if which == "bytes_value":
        return {"key": key, "type": "binary", "value": base64.b64encode(value.bytes_value).decode("ascii")}
    return {"key": key, "type": "string", "value": as_string(value)}
