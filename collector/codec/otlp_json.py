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

The protobuf library does the proto3 JSON mapping; this module only walks the ID and bytes
fields before (hex → base64, strict base64 check) and after (base64 → hex) it.  That walk is
also where shape errors are reported with a path, so a client learns *where* its body is wrong.
This is not a hot path: JSON clients are rare next to protobuf ones, and the protobuf bytes
are what the rest of the pipeline sees.
"""
from __future__ import annotations

import base64
import binascii
import json
import re

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.errors import DecodeError, json_kind

__all__ = ["json_to_protobuf", "traces_to_json"]

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


def traces_to_json(msg) -> dict:
    """OTLP/JSON dict of a ``TracesData`` or ``ExportTraceServiceRequest`` message.

    lowerCamelCase keys, lower-case hex IDs, int64 values as decimal strings, enums as
    integers, default values omitted (present-but-empty messages such as ``"status": {}``
    stay, as protobuf JSON renders them) — the shape of Jaeger's api_v3 ``GetTrace`` result.
    """
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
