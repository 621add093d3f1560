"""Decode stage (and its mirror for the query side): OTLP/JSON ⇄ OTLP protobuf for traces.

OTLP/JSON is proto3 JSON with OTLP's deviations (see ``shared/conformance/otlp/README.md``):
trace and span IDs are hex (case-insensitive on input, lower-case on output) instead of
base64, enums are integers, int64 values are decimal strings (numbers accepted), unknown
fields are ignored.  This module is the one place that knows those rules:

* :func:`json_to_protobuf` turns a request body into ``ExportTraceServiceRequest`` bytes, which
  then go through the same binary decoder as OTLP/protobuf input, so the two encodings cannot
  disagree about what a span is.
* :func:`traces_to_json` renders a ``TracesData`` / ``ExportTraceServiceRequest`` message as the
  OTLP/JSON dict the query API returns (Jaeger api_v3 shape).

On the way in, the protobuf library does the proto3 JSON mapping; this module only walks the
ID and bytes fields before it (hex → base64, strict base64 check).  That walk is also where
shape errors are reported with a path, so a client learns *where* its body is wrong.  This is
not a hot path: JSON clients are rare next to protobuf ones, and the protobuf bytes are what
the rest of the pipeline sees.

On the way out it is one: every trace page of the UI reads a whole trace as OTLP/JSON.  So
:func:`traces_to_json` walks the OTLP messages itself, and :func:`traces_to_json_reference`
(protobuf's ``MessageToDict`` plus the base64 → hex ID rewrite) is kept as the definition it
is tested against.
"""
from __future__ import annotations

import base64
import binascii
import gc
import json
import math
import re

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status, TracesData

from collector.errors import DecodeError, json_kind

__all__ = ["json_to_protobuf", "traces_to_json", "traces_to_json_reference"]

_HEX = re.compile(r"[0-9A-Fa-f]*")
# Standard or URL-safe alphabet, padding optional: what proto3 JSON says a bytes field accepts.
_B64 = re.compile(r"[A-Za-z0-9+/_-]*")
# Proto3 JSON accepts the proto field name as well as the lowerCamelCase one; the walk below
# must see the same keys ParseDict will read, or a snake_case ID would slip past as base64.
_SPAN_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_LINK_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"))
# Enum names are accepted as protobuf JSON allows; an unknown name is refused, not read as 0.
_SPAN_KINDS = frozenset(Span.SpanKind.keys())
_STATUS_CODES = frozenset(Status.StatusCode.keys())
_MAX_SHOWN = 40  # characters of a bad value quoted back in an error message


# --------------------------------------------------------------------------- JSON → protobuf


def json_to_protobuf(body: bytes) -> bytes:
    """Serialized ``ExportTraceServiceRequest`` protobuf for an OTLP/JSON request body.

    IDs must be hex strings (any case); an empty or missing ID means "no ID".  An ID of the
    wrong length is kept at the length it came with: refusing it is the validator's job, and
    it refuses that span alone rather than the whole request.  ``bytesValue`` must be valid
    base64 (standard or URL-safe, padding optional).  Unknown fields are ignored.

    Raises :class:`DecodeError` naming the problem and, where it can, the path to it
    (``resourceSpans[0].scopeSpans[0].spans[2].traceId: 'xyz' is not hex``).
    """
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    try:
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid JSON: body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise DecodeError("invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"OTLP/JSON body must be a JSON object, not {json_kind(doc)}")

    _prepare_request(doc)

    msg = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(str(exc).rstrip(".")) from None
    except (RecursionError, ValueError, TypeError) as exc:  # defensive: never a 500 on bad input
        raise DecodeError(f"invalid OTLP/JSON: {exc}") from None
    return msg.SerializeToString()


def _prepare_request(doc: dict) -> None:
    """Rewrite hex IDs to base64 and check bytes values, in place, reporting errors by path."""
    for i, rs in _items(doc, ("resourceSpans", "resource_spans"), "", "resourceSpans"):
        rs_path = f"resourceSpans[{i}]"
        resource = _member(rs, ("resource",))
        if resource is not None:
            _object(resource, rs_path + ".resource")
            _attributes(resource, rs_path + ".resource")
        for j, ss in _items(rs, ("scopeSpans", "scope_spans"), rs_path, "scopeSpans"):
            ss_path = f"{rs_path}.scopeSpans[{j}]"
            scope = _member(ss, ("scope",))
            if scope is not None:
                _object(scope, ss_path + ".scope")
                _attributes(scope, ss_path + ".scope")
            for k, span in _items(ss, ("spans",), ss_path, "spans"):
                span_path = f"{ss_path}.spans[{k}]"
                for names in _SPAN_ID_KEYS:
                    _hex_id(span, names, span_path)
                _enum(span, "kind", _SPAN_KINDS, span_path)
                status = _member(span, ("status",))
                if status is not None:
                    _object(status, span_path + ".status")
                    _enum(status, "code", _STATUS_CODES, span_path + ".status")
                _attributes(span, span_path)
                for e, event in _items(span, ("events",), span_path, "events"):
                    _attributes(event, f"{span_path}.events[{e}]")
                for n, link in _items(span, ("links",), span_path, "links"):
                    link_path = f"{span_path}.links[{n}]"
                    for names in _LINK_ID_KEYS:
                        _hex_id(link, names, link_path)
                    _attributes(link, link_path)


def _items(parent: dict, names: tuple, path: str, label: str):
    """(index, object) pairs of the array ``parent[names]``; absent or null is empty."""
    seq = _member(parent, names)
    if seq is None:
        return ()
    where = f"{path}.{label}" if path else label
    if not isinstance(seq, list):
        raise DecodeError(f"{where}: expected an array, got {json_kind(seq)}")
    for index, item in enumerate(seq):
        _object(item, f"{where}[{index}]")
    return enumerate(seq)


def _member(obj: dict, names: tuple):
    for name in names:
        value = obj.get(name)
        if value is not None:
            return value
    return None


def _object(value, path: str) -> None:
    if not isinstance(value, dict):
        raise DecodeError(f"{path}: expected an object, got {json_kind(value)}")


def _hex_id(obj: dict, names: tuple, path: str) -> None:
    for name in names:
        if name not in obj:
            continue
        value = obj[name]
        if value is None or value == "":
            del obj[name]  # empty means "no ID" (a root span's parent)
            continue
        where = f"{path}.{names[0]}"
        if not isinstance(value, str):
            raise DecodeError(f"{where}: expected a hex string, got {json_kind(value)}")
        if not _HEX.fullmatch(value):
            raise DecodeError(f"{where}: {_show(value)} is not hex")
        if len(value) % 2:
            raise DecodeError(f"{where}: {_show(value)} is not hex (odd number of digits)")
        # Any even length is kept as is: the validator refuses a wrong-length ID per span.
        obj[name] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _enum(obj: dict, name: str, known: frozenset, path: str) -> None:
    value = obj.get(name)
    if isinstance(value, str):
        if value.isdigit():
            obj[name] = int(value)
        elif value not in known:
            raise DecodeError(f"{path}.{name}: unknown value {_show(value)} (OTLP/JSON enums are integers)")
    elif isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise DecodeError(f"{path}.{name}: expected an integer, got {value!r}")


def _attributes(obj: dict, path: str) -> None:
    for a, kv in _items(obj, ("attributes",), path, "attributes"):
        value = _member(kv, ("value",))
        if value is not None:
            _any_value(value, f"{path}.attributes[{a}].value")


def _any_value(value, path: str) -> None:
    _object(value, path)
    for name in ("bytesValue", "bytes_value"):
        if name in value and value[name] is not None:
            value[name] = _canonical_base64(value[name], f"{path}.bytesValue")
    array = _member(value, ("arrayValue", "array_value"))
    if array is not None:
        _object(array, path + ".arrayValue")
        for v, item in _items(array, ("values",), path + ".arrayValue", "values"):
            _any_value(item, f"{path}.arrayValue.values[{v}]")
    kvlist = _member(value, ("kvlistValue", "kvlist_value"))
    if kvlist is not None:
        _attributes_like(kvlist, path + ".kvlistValue")


def _attributes_like(kvlist, path: str) -> None:
    _object(kvlist, path)
    for v, kv in _items(kvlist, ("values",), path, "values"):
        inner = _member(kv, ("value",))
        if inner is not None:
            _any_value(inner, f"{path}.values[{v}].value")


def _canonical_base64(value, path: str) -> str:
    """Standard padded base64 of a proto3-JSON bytes value; DecodeError if it is not base64.

    The protobuf library is lenient here (it silently drops characters outside the alphabet),
    so the check is ours: a corrupt attribute is refused, not stored as different bytes.
    """
    if not isinstance(value, str):
        raise DecodeError(f"{path}: expected a base64 string, got {json_kind(value)}")
    core = value.rstrip("=")
    padding = len(value) - len(core)
    if (
        not _B64.fullmatch(core)
        or len(core) % 4 == 1
        or padding > 2
        or (padding and len(value) % 4)
    ):
        raise DecodeError(f"{path}: {_show(value)} is not valid base64")
    try:
        raw = base64.b64decode(core.replace("-", "+").replace("_", "/") + "=" * (-len(core) % 4), validate=True)
    except binascii.Error:
        raise DecodeError(f"{path}: {_show(value)} is not valid base64") from None
    return base64.b64encode(raw).decode("ascii")


def _show(value: str) -> str:
    if len(value) > _MAX_SHOWN:
        value = value[:_MAX_SHOWN] + "…"
    return repr(value)


# --------------------------------------------------------------------------- protobuf → JSON
#
# The query side renders whole traces (10 000 spans and more) on every trace-page load:
# :func:`traces_to_json` walks the OTLP messages field by field instead of going through
# ``json_format.MessageToDict`` (generic and descriptor-driven: four to five times slower on a
# 10 000-span trace), and must agree with :func:`traces_to_json_reference`, key order included.
#
# What proto3 JSON (as ``MessageToDict(use_integers_for_enums=True)`` writes it) means here:
# keys in field-number order; a field without presence is left out when it holds its default
# (0, "", b"", empty list); a message field with presence is written whenever it is set, even
# empty (``{}``); a oneof member is written whenever it is the one set, even at its default
# (``"stringValue": ""``, ``"intValue": "0"``); int64/uint64/fixed64 are decimal strings,
# int32/uint32/fixed32 and enums are numbers; doubles are numbers except NaN and ±infinity,
# which are the strings "NaN", "Infinity", "-Infinity"; bytes are standard base64 — except
# trace and span IDs, which OTLP/JSON writes as lower-case hex.

_b64encode = base64.b64encode
_isfinite = math.isfinite
_RENDERED_TYPES = frozenset((TracesData.DESCRIPTOR.full_name, ExportTraceServiceRequest.DESCRIPTOR.full_name))


def traces_to_json(msg, *, always_containers: bool = False) -> dict:
    """OTLP/JSON dict of a ``TracesData`` or ``ExportTraceServiceRequest`` message.

    lowerCamelCase keys, lower-case hex IDs, int64 values as decimal strings, enums as
    integers, default values omitted (present-but-empty messages such as ``"status": {}``
    stay, as protobuf JSON renders them) — the shape of Jaeger's api_v3 ``GetTrace`` result.

    ``always_containers=True`` also writes what Jaeger's gateway always writes: every
    ``resource``, ``scope`` and span ``status`` (``{}`` when absent) and every
    ``resourceSpans`` / ``scopeSpans`` / ``spans`` list (``[]`` when empty).  An absent
    member comes where adding it to the plain rendering would put it: ``resource`` and
    ``scope`` first, a missing ``status`` and an empty list last.

    Any other message is rendered by :func:`traces_to_json_reference` (without the option).
    """
    if msg.DESCRIPTOR.full_name not in _RENDERED_TYPES:  # another message: the generic route
        return traces_to_json_reference(msg)
    # Every object made here survives into the (acyclic) result, so cyclic collections during
    # the walk free nothing; for a large trace they cost about a quarter of its time.  (The
    # objects are still looked at once, by the first collection after this.)
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        resource_spans = [_resource_spans(rs, always_containers) for rs in msg.resource_spans]
    finally:
        if collecting:
            gc.enable()
    if resource_spans or always_containers:
        return {"resourceSpans": resource_spans}
    return {}


def _resource_spans(rs, always: bool) -> dict:
    out = {}
    if rs.HasField("resource"):
        out["resource"] = _resource(rs.resource)
    elif always:
        out["resource"] = {}
    scope_spans = [_scope_spans(ss, always) for ss in rs.scope_spans]
    if scope_spans:
        out["scopeSpans"] = scope_spans
    schema_url = rs.schema_url
    if schema_url:
        out["schemaUrl"] = schema_url
    if always and not scope_spans:
        out["scopeSpans"] = scope_spans
    return out


def _resource(resource) -> dict:
    out = {}
    attributes = resource.attributes
    if attributes:
        out["attributes"] = _attributes_json(attributes)
    dropped = resource.dropped_attributes_count
    if dropped:
        out["droppedAttributesCount"] = dropped
    entity_refs = resource.entity_refs
    if entity_refs:
        out["entityRefs"] = [_entity_ref(ref) for ref in entity_refs]
    return out


def _entity_ref(ref) -> dict:
    out = {}
    if ref.schema_url:
        out["schemaUrl"] = ref.schema_url
    if ref.type:
        out["type"] = ref.type
    if ref.id_keys:
        out["idKeys"] = list(ref.id_keys)
    if ref.description_keys:
        out["descriptionKeys"] = list(ref.description_keys)
    return out


def _scope_spans(ss, always: bool) -> dict:
    out = {}
    if ss.HasField("scope"):
        scope = ss.scope
        s = {}
        if scope.name:
            s["name"] = scope.name
        if scope.version:
            s["version"] = scope.version
        if scope.attributes:
            s["attributes"] = _attributes_json(scope.attributes)
        if scope.dropped_attributes_count:
            s["droppedAttributesCount"] = scope.dropped_attributes_count
        out["scope"] = s
    elif always:
        out["scope"] = {}
    spans = _spans_json(ss.spans, always)
    if spans:
        out["spans"] = spans
    schema_url = ss.schema_url
    if schema_url:
        out["schemaUrl"] = schema_url
    if always and not spans:
        out["spans"] = spans
    return out


def _spans_json(spans, always: bool) -> list:
    attributes_json = _attributes_json
    out = []
    append = out.append
    for span in spans:
        d = {}
        value = span.trace_id
        if value:
            d["traceId"] = value.hex()
        value = span.span_id
        if value:
            d["spanId"] = value.hex()
        value = span.trace_state
        if value:
            d["traceState"] = value
        value = span.parent_span_id
        if value:
            d["parentSpanId"] = value.hex()
        value = span.name
        if value:
            d["name"] = value
        value = span.kind
        if value:
            d["kind"] = value
        value = span.start_time_unix_nano
        if value:
            d["startTimeUnixNano"] = str(value)
        value = span.end_time_unix_nano
        if value:
            d["endTimeUnixNano"] = str(value)
        value = span.attributes
        if value:
            d["attributes"] = attributes_json(value)
        value = span.dropped_attributes_count
        if value:
            d["droppedAttributesCount"] = value
        value = span.events
        if value:
            d["events"] = [_event(event) for event in value]
        value = span.dropped_events_count
        if value:
            d["droppedEventsCount"] = value
        value = span.links
        if value:
            d["links"] = [_link(link) for link in value]
        value = span.dropped_links_count
        if value:
            d["droppedLinksCount"] = value
        has_status = span.HasField("status")
        if has_status:
            status = span.status
            s = {}
            value = status.message
            if value:
                s["message"] = value
            value = status.code
            if value:
                s["code"] = value
            d["status"] = s
        value = span.flags
        if value:
            d["flags"] = value
        if always and not has_status:
            d["status"] = {}
        append(d)
    return out


def _event(event) -> dict:
    out = {}
    if event.time_unix_nano:
        out["timeUnixNano"] = str(event.time_unix_nano)
    if event.name:
        out["name"] = event.name
    if event.attributes:
        out["attributes"] = _attributes_json(event.attributes)
    if event.dropped_attributes_count:
        out["droppedAttributesCount"] = event.dropped_attributes_count
    return out


def _link(link) -> dict:
    out = {}
    if link.trace_id:
        out["traceId"] = link.trace_id.hex()
    if link.span_id:
        out["spanId"] = link.span_id.hex()
    if link.trace_state:
        out["traceState"] = link.trace_state
    if link.attributes:
        out["attributes"] = _attributes_json(link.attributes)
    if link.dropped_attributes_count:
        out["droppedAttributesCount"] = link.dropped_attributes_count
    if link.flags:
        out["flags"] = link.flags
    return out


def _attributes_json(kvs) -> list:
    """JSON of a repeated ``KeyValue``; the common value kinds are handled inline."""
    out = []
    append = out.append
    for kv in kvs:
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            v = {"stringValue": value.string_value}
        elif which == "int_value":
            v = {"intValue": str(value.int_value)}
        elif which == "double_value":
            x = value.double_value
            v = {"doubleValue": x if _isfinite(x) else _double_text(x)}
        elif which == "bool_value":
            v = {"boolValue": value.bool_value}
        elif which is None and not kv.HasField("value"):
            v = None
        else:
            v = _any_value_json(value, which)
        key = kv.key
        strindex = kv.key_strindex
        if key and v is not None and not strindex:
            append({"key": key, "value": v})
            continue
        d = {}
        if key:
            d["key"] = key
        if v is not None:
            d["value"] = v
        if strindex:
            d["keyStrindex"] = strindex
        append(d)
    return out


def _any_value_json(value, which: str | None) -> dict:
    """JSON of an ``AnyValue`` whose set oneof member is ``which``."""
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "double_value":
        x = value.double_value
        return {"doubleValue": x if _isfinite(x) else _double_text(x)}
    if which == "array_value":
        values = value.array_value.values
        if not values:
            return {"arrayValue": {}}
        return {"arrayValue": {"values": [_any_value_json(item, item.WhichOneof("value")) for item in values]}}
    if which == "kvlist_value":
        values = value.kvlist_value.values
        return {"kvlistValue": {"values": _attributes_json(values)} if values else {}}
    if which == "bytes_value":
        return {"bytesValue": _b64encode(value.bytes_value).decode("ascii")}
    if which == "string_value_strindex":
        return {"stringValueStrindex": value.string_value_strindex}
    return {}


def _double_text(x: float) -> str:
    if x != x:
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def traces_to_json_reference(msg) -> dict:
    """:func:`traces_to_json` by way of ``json_format.MessageToDict``: the definition the fast
    walk is tested against (any message type; only ``resourceSpans`` IDs are turned to hex)."""
    doc = json_format.MessageToDict(msg, use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", ()):
        for ss in rs.get("scopeSpans", ()):
            for span in ss.get("spans", ()):
                _ids_to_hex(span, ("traceId", "spanId", "parentSpanId"))
                for link in span.get("links", ()):
                    _ids_to_hex(link, ("traceId", "spanId"))
    return doc


def _ids_to_hex(obj: dict, names: tuple) -> None:
    for name in names:
        value = obj.get(name)
        if value is not None:
            obj[name] = base64.b64decode(value).hex()
