"""Query stage: the OpenAPI 3.1 document of every route the query port serves (``GET /api/openapi.json``).

The document is written by hand, route by route, from the blueprints (``jaeger_api``,
``zipkin_api``, ``tempo_api``, ``sampling_api``, ``storage_api`` and ``app``) and their docs
(``docs/api-*.md``).  It aims to be accurate rather than exhaustive: every schema field listed
is one the code emits, and objects are left open (no ``additionalProperties: false``) so that a
field added later does not make old clients' validation fail.  ``tests/query/test_openapi.py``
fails when a route is added without being documented here, or documented without existing.

Path parameters keep the names the routes use (``{trace_id}``, ``{service}``, ``{tag}``).
Custom ``format`` values: ``go-duration`` (Go ``time.Duration`` text such as ``1.5ms``, ``100us``,
``1h30m``), ``hex`` (hexadecimal IDs), ``logfmt`` and ``traceql``.
"""
from __future__ import annotations

import copy
from importlib import metadata

from quart import Blueprint, jsonify

from collector.analytics import alerts
from collector.store.criteria import KINDS
from query import alerts_api, analytics_api, jaeger_api, storage_api, tempo_api, zipkin_api
from query.params import MAX_LIMIT

__all__ = ["blueprint", "document", "OPENAPI_VERSION"]

OPENAPI_VERSION = "3.1.0"
JSON_SCHEMA_DIALECT = "https://spec.openapis.org/oas/3.1/dialect/base"


def _version() -> str:
    try:
        return metadata.version("clew")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


TAGS = [
    {"name": "Jaeger v1", "description": "Jaeger's classic HTTP API (the Jaeger UI model inside "
                                         "Jaeger's envelope). See docs/api-jaeger.md."},
    {"name": "Jaeger api_v3", "description": "Jaeger's api_v3 over HTTP (OTLP/JSON, as Jaeger's "
                                             "grpc-gateway answers). See docs/api-jaeger.md."},
    {"name": "Zipkin v2", "description": "Zipkin's v2 query API; every route also answers under "
                                         "/zipkin/api/v2. See docs/api-zipkin.md."},
    {"name": "Tempo", "description": "Grafana Tempo's HTTP query API. See docs/api-tempo.md."},
    {"name": "Operations", "description": "Health, readiness, metrics, this document and the UI."},
    {"name": "Sampling", "description": "Clew's sampling settings and statistics. See docs/sampling.md."},
    {"name": "Storage", "description": "Clew's storage tiers, incidents and pins, deletion and the audit "
                                       "log. See docs/api-storage.md."},
    {"name": "Metrics", "description": "RED metrics counted at ingest before sampling: series, comparison "
                                       "and exports. See docs/api-analytics.md."},
    {"name": "Trace structure", "description": "Critical paths of traces and the service graph paired at "
                                               "ingest. See docs/analytics.md."},
    {"name": "Correlation", "description": "Links from a trace and its spans to other tools (logs, "
                                           "dashboards, trackers), rendered from configured templates, and "
                                           "the trace's incidents. See docs/correlation.md."},
    {"name": "Alerting", "description": "Alert rules on the RED metrics, their state, history and "
                                        "webhooks. See docs/alerting.md."},
]


# --------------------------------------------------------------------------- small builders


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: dict, **extra) -> dict:
    return {"type": "array", "items": items, **extra}


_STRINGS = _array({"type": "string"})


def _obj(properties: dict, required=(), description: str | None = None) -> dict:
    out = {"type": "object"}
    if description:
        out["description"] = description
    if required:
        out["required"] = list(required)
    out["properties"] = properties
    return out


def _q(name: str, schema: dict, description: str, *, required: bool = False,
       deprecated: bool = False, repeat: bool = False, example=None) -> dict:
    """A query parameter.  ``repeat``: the parameter may be given several times (``a=1&a=2``)."""
    param = {"name": name, "in": "query", "description": description}
    if required:
        param["required"] = True
    if deprecated:
        param["deprecated"] = True
    if repeat:
        param["schema"] = _array(schema)
        param["style"] = "form"
        param["explode"] = True
    else:
        param["schema"] = schema
    if example is not None:
        param["example"] = example
    return param


def _path(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(tags, operation_id: str, summary: str, responses: dict, parameters=(),
        description: str | None = None, body: dict | None = None) -> dict:
    """An operation; ``body``: its JSON request body (a ``_body``)."""
    op = {"tags": list(tags), "operationId": operation_id, "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = list(parameters)
    if body:
        op["requestBody"] = body
    op["responses"] = responses
    return op


def _body(schema: dict, description: str, *, required: bool = True) -> dict:
    """A JSON request body."""
    return {"description": description, "required": required,
            "content": {"application/json": {"schema": schema}}}


# Parameter schemas.
_TEXT = {"type": "string", "maxLength": 1024}
_DURATION = {"type": "string", "format": "go-duration", "examples": ["1.5ms", "100us", "2s", "1h30m"]}
_TRACE_ID = {"type": "string", "format": "hex", "pattern": "^[0-9a-fA-F]{1,32}$",
             "examples": ["4bf92f3577b34da6a3ce929d0e0e4736", "a3ce929d0e0e4736"]}
_GO_BOOL = {"type": "string", "enum": ["1", "t", "T", "TRUE", "true", "True",
                                       "0", "f", "F", "FALSE", "false", "False"]}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
_KIND_TEXT = {"type": "string", "examples": list(KINDS)}
_RFC3339 = {"type": "string", "format": "date-time", "examples": ["2024-01-02T03:04:05.123456789Z"]}
_UNIX_S = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
_TRACE_ID_PATH_DOC = ("Trace ID: 1 to 32 hex digits, any case; a shorter ID is left-padded with "
                      "zeros to 128 bits. Zero is refused.")


# --------------------------------------------------------------------------- component schemas


def _schemas() -> dict:
    hex16 = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
    hex16_or_32 = {"type": "string", "pattern": "^[0-9a-f]{16}([0-9a-f]{16})?$"}
    hex32 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
    uint64_text = {"type": "string", "pattern": "^[0-9]+$"}
    s = {}

    # ---------------------------------------------------------------- shared
    s["DependencyLink"] = _obj({
        "parent": {"type": "string", "description": "service of the parent span"},
        "child": {"type": "string", "description": "service of the child span"},
        "callCount": {"type": "integer", "minimum": 1, "description": "spans of child whose parent span is in parent"},
        "errorCount": {"type": "integer", "minimum": 0,
                       "description": "of those, spans whose status is error (the callee failed)"},
    }, ["parent", "child", "callCount"], "A service link: spans of `child` whose parent span is in `parent`.")
    s["ErrorMessage"] = _obj({"error": {"type": "string", "description": "the parameter and what is wrong with it"}},
                             ["error"], "Error body of the Zipkin and Tempo routes.")

    # ---------------------------------------------------------------- Jaeger v1
    s["JaegerErrorItem"] = _obj({
        "code": {"type": "integer", "description": "HTTP status; absent for a trace not found by a `traceID` search"},
        "msg": {"type": "string"},
        "traceID": {"type": "string", "description": "the trace that was not found (`traceID` searches)"},
    }, ["msg"])
    s["JaegerEnvelope"] = _obj({
        "data": {"description": "the answer; its shape depends on the route"},
        "total": {"type": "integer", "description": "number of items for the listings; 0 elsewhere"},
        "limit": {"type": "integer", "description": "always 0, as Jaeger writes it"},
        "offset": {"type": "integer", "description": "always 0, as Jaeger writes it"},
        "errors": {"type": ["array", "null"], "items": _ref("JaegerErrorItem")},
    }, ["data", "total", "limit", "offset", "errors"], "Jaeger's classic API response envelope.")
    s["JaegerErrorResponse"] = {
        "description": "A classic API error: the envelope with `data` null and the error in `errors`.",
        "allOf": [_ref("JaegerEnvelope"), {"type": "object", "properties": {
            "data": {"type": "null"},
            "errors": {"type": "array", "minItems": 1, "items": _ref("JaegerErrorItem")}}}],
    }
    s["JaegerKeyValue"] = _obj({
        "key": {"type": "string"},
        "type": {"type": "string", "enum": ["string", "bool", "int64", "float64", "binary"]},
        "value": {"type": ["string", "number", "boolean"],
                  "description": "int64 outside ±(2^53−1) and non-finite float64 are strings; binary is base64"},
    }, ["key", "type", "value"])
    s["JaegerReference"] = _obj({
        "refType": {"type": "string", "enum": ["CHILD_OF", "FOLLOWS_FROM"]},
        "traceID": hex16_or_32,
        "spanID": hex16,
    }, ["refType", "traceID", "spanID"])
    s["JaegerLog"] = _obj({
        "timestamp": {"type": "integer", "format": "int64", "description": "epoch microseconds"},
        "fields": _array(_ref("JaegerKeyValue")),
    }, ["timestamp", "fields"])
    s["JaegerProcess"] = _obj({
        "serviceName": {"type": "string"},
        "tags": _array(_ref("JaegerKeyValue")),
    }, ["serviceName", "tags"])
    s["JaegerSpan"] = _obj({
        "traceID": hex16_or_32,
        "spanID": hex16,
        "operationName": {"type": "string"},
        "references": _array(_ref("JaegerReference"), description="the parent first (CHILD_OF), then links"),
        "startTime": {"type": "integer", "format": "int64", "description": "epoch microseconds"},
        "duration": {"type": "integer", "format": "int64", "description": "microseconds"},
        "tags": _array(_ref("JaegerKeyValue")),
        "logs": _array(_ref("JaegerLog")),
        "processID": {"type": "string", "description": "key into the trace's `processes`"},
        "warnings": {"type": ["array", "null"], "items": {"type": "string"}},
    }, ["traceID", "spanID", "operationName", "references", "startTime", "duration", "tags", "logs",
        "processID", "warnings"])
    s["JaegerTrace"] = _obj({
        "traceID": hex16_or_32,
        "spans": _array(_ref("JaegerSpan")),
        "processes": {"type": "object", "additionalProperties": _ref("JaegerProcess"),
                      "description": "processes by ID (`p1`, `p2`…)"},
        "warnings": {"type": ["array", "null"], "items": {"type": "string"},
                     "description": "always null: OTLP has no trace-level warnings"},
    }, ["traceID", "spans", "processes", "warnings"], "One trace in the Jaeger UI JSON model.")
    s["JaegerOperation"] = _obj({
        "name": {"type": "string"},
        "spanKind": {"type": "string", "enum": ["", "internal", "server", "client", "producer", "consumer"],
                     "description": "an unspecified kind is written \"\", as Jaeger stores it"},
    }, ["name", "spanKind"])

    # ---------------------------------------------------------------- api_v3 (OTLP/JSON)
    any_value = _obj({
        "stringValue": {"type": "string"},
        "boolValue": {"type": "boolean"},
        "intValue": {"type": "string", "pattern": "^-?[0-9]+$", "description": "int64 as a decimal string"},
        "doubleValue": {"type": ["number", "string"], "description": "\"NaN\", \"Infinity\", \"-Infinity\" as strings"},
        "bytesValue": {"type": "string", "description": "base64"},
        "arrayValue": _obj({"values": _array(_ref("OtlpAnyValue"))}),
        "kvlistValue": _obj({"values": _array(_ref("OtlpKeyValue"))}),
    }, description="An OTLP AnyValue (one member set; absent when empty).")
    s["OtlpAnyValue"] = any_value
    s["OtlpKeyValue"] = _obj({"key": {"type": "string"}, "value": _ref("OtlpAnyValue")}, ["key"])
    attributes = _array(_ref("OtlpKeyValue"))
    count = {"type": "integer", "minimum": 0}
    s["OtlpStatus"] = _obj({
        "code": {"type": "integer", "enum": [0, 1, 2], "description": "0 unset, 1 ok, 2 error; absent when 0"},
        "message": {"type": "string"},
    })
    s["OtlpEvent"] = _obj({
        "timeUnixNano": uint64_text, "name": {"type": "string"},
        "attributes": attributes, "droppedAttributesCount": count,
    })
    s["OtlpLink"] = _obj({  # link IDs are stored as sent: hex of whatever length came
        "traceId": {"type": "string", "pattern": "^[0-9a-f]*$"}, "spanId": {"type": "string", "pattern": "^[0-9a-f]*$"},
        "traceState": {"type": "string"},
        "attributes": attributes, "droppedAttributesCount": count, "flags": count,
    })
    s["OtlpSpan"] = _obj({
        "traceId": hex32,
        "spanId": hex16,
        "traceState": {"type": "string"},
        "parentSpanId": hex16,
        "flags": count,
        "name": {"type": "string"},
        "kind": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5],
                 "description": "0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer; absent when 0"},
        "startTimeUnixNano": uint64_text,
        "endTimeUnixNano": uint64_text,
        "attributes": attributes,
        "droppedAttributesCount": count,
        "events": _array(_ref("OtlpEvent")),
        "droppedEventsCount": count,
        "links": _array(_ref("OtlpLink")),
        "droppedLinksCount": count,
        "status": _ref("OtlpStatus"),
    }, ["traceId", "spanId", "status"], "An OTLP span; fields at their zero value are left out (except `status`).")
    s["OtlpResource"] = _obj({"attributes": attributes, "droppedAttributesCount": count})
    s["OtlpScope"] = _obj({"name": {"type": "string"}, "version": {"type": "string"},
                           "attributes": attributes, "droppedAttributesCount": count})
    s["OtlpScopeSpans"] = _obj({"scope": _ref("OtlpScope"), "spans": _array(_ref("OtlpSpan")),
                                "schemaUrl": {"type": "string"}}, ["scope", "spans"])
    s["OtlpResourceSpans"] = _obj({"resource": _ref("OtlpResource"),
                                   "scopeSpans": _array(_ref("OtlpScopeSpans")),
                                   "schemaUrl": {"type": "string"}}, ["resource", "scopeSpans"])
    s["OtlpTracesData"] = _obj({"resourceSpans": _array(_ref("OtlpResourceSpans"))}, (),
                               "OTLP/JSON TracesData: hex IDs, enums as integers, 64-bit integers as strings.")
    s["ApiV3TracesResponse"] = _obj({"result": _ref("OtlpTracesData")}, ["result"])
    s["ApiV3ServiceSummary"] = _obj({
        "errorSpanCount": {"type": "integer", "minimum": 0},
        "name": {"type": "string"},
        "spanCount": {"type": "integer", "minimum": 0},
    }, ["errorSpanCount", "name", "spanCount"])
    s["ApiV3TraceSummary"] = _obj({
        "errorSpanCount": {"type": "integer", "minimum": 0},
        "maxEndTimeUnixNano": uint64_text,
        "minStartTimeUnixNano": uint64_text,
        "rootOperationName": {"type": "string", "description": "\"\" when the root span is not stored"},
        "rootServiceName": {"type": "string", "description": "\"\" when the root span is not stored"},
        "services": _array(_ref("ApiV3ServiceSummary"), description="sorted by name"),
        "spanCount": {"type": "integer", "minimum": 0},
        "traceId": hex32,
    }, ["errorSpanCount", "maxEndTimeUnixNano", "minStartTimeUnixNano", "rootOperationName",
        "rootServiceName", "services", "spanCount", "traceId"], "Counts are over the whole trace.")
    s["ApiV3TraceSummariesResponse"] = _obj({"summaries": _array(_ref("ApiV3TraceSummary"))}, ["summaries"])
    s["ApiV3ServicesResponse"] = _obj({"services": _STRINGS}, ["services"])
    s["ApiV3Operation"] = _obj({
        "name": {"type": "string"},
        "spanKind": {"type": "string", "enum": ["internal", "server", "client", "producer", "consumer"],
                     "description": "an unspecified kind is written `internal`, as Jaeger's gateway does"},
    }, ["name", "spanKind"])
    s["ApiV3OperationsResponse"] = _obj({"operations": _array(_ref("ApiV3Operation"))}, ["operations"])
    s["ApiV3Error"] = _obj({"error": _obj({"httpCode": {"type": "integer"}, "message": {"type": "string"}},
                                          ["httpCode", "message"])},
                           ["error"], "Error body of the api_v3 routes (Jaeger's grpc-gateway shape), "
                                      "also of the 404 for a route that does not exist.")

    # ---------------------------------------------------------------- Zipkin v2
    s["ZipkinEndpoint"] = _obj({
        "serviceName": {"type": "string"},
        "ipv4": {"type": "string"},
        "ipv6": {"type": "string"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    })
    s["ZipkinAnnotation"] = _obj({
        "timestamp": {"type": "integer", "format": "int64", "description": "epoch microseconds"},
        "value": {"type": "string"},
    }, ["timestamp", "value"])
    s["ZipkinSpan"] = _obj({
        "traceId": hex16_or_32,
        "parentId": hex16,
        "id": hex16,
        "kind": {"type": "string", "enum": ["SERVER", "CLIENT", "PRODUCER", "CONSUMER"]},
        "name": {"type": "string"},
        "timestamp": {"type": "integer", "format": "int64", "description": "epoch microseconds; absent when unknown"},
        "duration": {"type": "integer", "format": "int64", "minimum": 1, "description": "microseconds"},
        "localEndpoint": _ref("ZipkinEndpoint"),
        "remoteEndpoint": _ref("ZipkinEndpoint"),
        "annotations": _array(_ref("ZipkinAnnotation")),
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "debug": {"type": "boolean", "enum": [True], "description": "present only when true"},
        "shared": {"type": "boolean", "enum": [True], "description": "present only when true"},
    }, ["traceId", "id"], "A Zipkin v2 span (zipkin2-api.yaml's Span).")
    s["ZipkinTrace"] = _array(_ref("ZipkinSpan"), description="The spans of one trace.")

    # ---------------------------------------------------------------- Tempo
    s["TempoTrace"] = _obj({"resourceSpans": _array({"type": "object"})}, (),
                           "tempopb.Trace in proto3 JSON (gogo jsonpb): the OTLP TracesData layout with "
                           "base64 trace and span IDs, enum names (`SPAN_KIND_SERVER`), 64-bit integers "
                           "as strings, zero values left out.")
    s["TempoTraceByIdResponse"] = _obj({
        "trace": _ref("TempoTrace"),
        "metrics": {"type": "object", "description": "always empty"},
    }, ["trace", "metrics"])
    s["TempoSpan"] = _obj({
        "spanID": hex16,
        "name": {"type": "string"},
        "startTimeUnixNano": uint64_text,
        "durationNanos": uint64_text,
        "attributes": _array(_obj({"key": {"type": "string", "enum": ["service.name"]},
                                   "value": _obj({"stringValue": {"type": "string"}}, ["stringValue"])},
                                  ["key", "value"])),
    }, ["spanID", "name", "startTimeUnixNano", "durationNanos", "attributes"])
    s["TempoSpanSet"] = _obj({
        "spans": _array(_ref("TempoSpan"), description="matched spans, earliest first, at most `spss`"),
        "matched": {"type": "integer", "minimum": 0},
    }, ["spans", "matched"])
    s["TempoServiceStats"] = _obj({
        "spanCount": {"type": "integer", "minimum": 0},
        "errorCount": {"type": "integer", "minimum": 1, "description": "absent when zero"},
    }, ["spanCount"])
    s["TempoTraceSearchMetadata"] = _obj({
        "traceID": {"type": "string", "pattern": "^[0-9a-f]+$", "description": "hex without leading zeros"},
        "rootServiceName": {"type": "string",
                            "description": f"`{tempo_api.NO_ROOT}` when the root span is not stored"},
        "rootTraceName": {"type": "string", "description": "absent when the root span is not stored"},
        "startTimeUnixNano": uint64_text,
        "durationMs": {"type": "integer", "minimum": 0},
        "spanSet": _ref("TempoSpanSet"),
        "spanSets": _array(_ref("TempoSpanSet"), description="`q` searches only: the one spanset"),
        "serviceStats": {"type": "object", "additionalProperties": _ref("TempoServiceStats")},
    }, ["traceID", "rootServiceName", "startTimeUnixNano", "durationMs", "serviceStats"],
        "tempopb.TraceSearchMetadata; `spanSet`/`spanSets` only for `q` (TraceQL) searches.")
    s["TempoSearchMetrics"] = _obj({"completedJobs": {"type": "integer"}, "totalJobs": {"type": "integer"}},
                                   ["completedJobs", "totalJobs"])
    s["TempoSearchResponse"] = _obj({
        "traces": _array(_ref("TempoTraceSearchMetadata"), description="newest first"),
        "metrics": _ref("TempoSearchMetrics"),
    }, ["traces", "metrics"])
    s["TempoTagNamesResponse"] = _obj({"tagNames": _STRINGS}, ["tagNames"])
    s["TempoTagScopesResponse"] = _obj({"scopes": _array(_obj({
        "name": {"type": "string", "enum": ["span", "resource", "intrinsic", "event", "link", "instrumentation"]},
        "tags": _STRINGS,
    }, ["name", "tags"]))}, ["scopes"])
    s["TempoTagValuesResponse"] = _obj({"tagValues": _STRINGS}, ["tagValues"])
    s["TempoTypedTagValuesResponse"] = _obj({"tagValues": _array(_obj({
        "type": {"type": "string", "enum": ["string", "int", "float", "bool", "keyword"]},
        "value": {"type": "string"},
    }, ["type", "value"]))}, ["tagValues"])

    # ---------------------------------------------------------------- operations
    s["HealthStatus"] = _obj({"status": {"type": "string", "enum": ["ok"]}}, ["status"])
    s["ReadyStatus"] = _obj({"status": {"type": "string", "enum": ["ready", "starting"]}}, ["status"])
    return s


# --------------------------------------------------------------------------- Jaeger


def _envelope_of(data: dict) -> dict:
    return {"allOf": [_ref("JaegerEnvelope"), {"type": "object", "properties": {"data": data}}]}


_J400 = _json(_ref("JaegerErrorResponse"), "A bad parameter; the message names it.")
_V3_400 = _json(_ref("ApiV3Error"), "A bad parameter; the message names it.")


def _jaeger_paths() -> dict:
    tags = ["Jaeger v1"]
    v3 = ["Jaeger api_v3"]
    bound = "Inclusive; `0` or empty is no bound."
    trace_search = [
        _q("service", _TEXT, "`service.name` of the matching span's resource (optional in Clew; Jaeger requires it)."),
        _q("operation", _TEXT, "Name of the matching span."),
        _q("tag", {"type": "string"}, "One tag condition: `key:value` (equal), `key!=value`, `key=~regex`, "
           "`key!~regex`, or a bare `key` (exists). The earliest of `:`, `!=`, `=~`, `!~` ends the key. "
           "Special keys: `error` (true/false: span status), `span.kind`, `span.status`, "
           "`otel.status_code`, `resource.<key>`.", repeat=True, example=["http.status_code:500"]),
        _q("tags", {"type": "string", "contentMediaType": "application/json"},
           "A JSON object of tag conditions, key → `\"value\"` (equal), a number or boolean (equal to its "
           "string form), or `{\"op\": \"=|!=|=~|!~|exists\", \"value\": ...}`.",
           repeat=True, example=['{"http.method":"GET"}']),
        _q("start", {"type": "integer", "format": "int64", "minimum": 0},
           "Earliest start of the matching span, epoch **microseconds**, inclusive. "
           "Default: `end` − `lookback`, or `end` − 2 days."),
        _q("end", {"type": "integer", "format": "int64", "minimum": 0},
           "Latest start of the matching span, epoch **microseconds**, inclusive. Default: now."),
        _q("lookback", {"type": "string", "examples": ["1h", "2d", "2w", "custom"]},
           "Window length used when `start` is absent: `<n>d`, `<n>w` or any Go duration; `custom` is ignored."),
        _q("minDuration", _DURATION, "Least duration of the matching span (Go duration). " + bound),
        _q("maxDuration", _DURATION, "Greatest duration of the matching span (Go duration). " + bound),
        _q("minTraceDuration", _DURATION, "Least duration of the whole trace (Clew extension). " + bound),
        _q("maxTraceDuration", _DURATION, "Greatest duration of the whole trace (Clew extension). " + bound),
        _q("limit", {**_LIMIT, "default": jaeger_api.DEFAULT_LIMIT}, "Most traces returned."),
        _q("traceID", _TRACE_ID, "Fetch these traces instead of searching (every other parameter is then "
           "checked but unused); a missing one is listed in `errors` as `{msg, traceID}`.", repeat=True),
        _q("raw", _GO_BOOL, "Accepted and ignored (Clew applies no adjusters)."),
    ]
    kind_doc = "One span kind (`unspecified`, `internal`, `server`, `client`, `producer`, `consumer`; any case)."
    v3_query = [
        _q("query.serviceName", _TEXT, "`service.name` of the matching span's resource."),
        _q("query.service_name", _TEXT, "Alias of `query.serviceName`.", deprecated=True),
        _q("query.operationName", _TEXT, "Name of the matching span."),
        _q("query.operation_name", _TEXT, "Alias of `query.operationName`.", deprecated=True),
        _q("query.attributes", {"type": "string", "contentMediaType": "application/json"},
           "A JSON object of tag conditions, as the classic `tags` parameter.", example='{"http.method":"GET"}'),
        _q("query.startTimeMin", _RFC3339, "Earliest start of the matching span, RFC 3339; required "
           "(or its alias). Must be before `query.startTimeMax`."),
        _q("query.start_time_min", _RFC3339, "Alias of `query.startTimeMin`.", deprecated=True),
        _q("query.startTimeMax", _RFC3339, "Latest start of the matching span, RFC 3339; required (or its alias)."),
        _q("query.start_time_max", _RFC3339, "Alias of `query.startTimeMax`.", deprecated=True),
        _q("query.durationMin", _DURATION, "Least duration of the matching span (Go duration). " + bound),
        _q("query.duration_min", _DURATION, "Alias of `query.durationMin`.", deprecated=True),
        _q("query.durationMax", _DURATION, "Greatest duration of the matching span (Go duration). " + bound),
        _q("query.duration_max", _DURATION, "Alias of `query.durationMax`.", deprecated=True),
        _q("query.traceDurationMin", _DURATION, "Least duration of the whole trace (Clew extension). " + bound),
        _q("query.traceDurationMax", _DURATION, "Greatest duration of the whole trace (Clew extension). " + bound),
        _q("query.searchDepth", {**_LIMIT, "default": jaeger_api.DEFAULT_LIMIT}, "Most traces returned."),
        _q("query.search_depth", _LIMIT, "Alias of `query.searchDepth`.", deprecated=True),
        _q("query.num_traces", _LIMIT, "Alias of `query.searchDepth`.", deprecated=True),
        _q("query.rawTraces", _GO_BOOL, "Accepted and ignored."),
        _q("query.raw_traces", _GO_BOOL, "Alias of `query.rawTraces`.", deprecated=True),
    ]
    trace_id = _path("trace_id", _TRACE_ID, _TRACE_ID_PATH_DOC)
    return {
        "/api/services": {"get": _op(tags, "jaegerServices", "Every service name, sorted.", {
            "200": _json(_envelope_of(_STRINGS), "Service names; `total` is their count."),
        })},
        "/api/services/{service}/operations": {"get": _op(
            tags, "jaegerServiceOperations", "Operation names of one service, every span kind, sorted.", {
                "200": _json(_envelope_of(_STRINGS), "Operation names; `total` is their count."),
            }, [_path("service", {"type": "string"},
                      "Service name. May contain `/` (the route matches the rest of the path).")])},
        "/api/operations": {"get": _op(tags, "jaegerOperations", "Operations of a service (or of every service) "
                                       "with their span kinds.", {
            "200": _json(_envelope_of(_array(_ref("JaegerOperation"))),
                         "Sorted by name, then kind; `total` is their count."),
            "400": _J400,
        }, [_q("service", _TEXT, "Service name; without it, every service (a Clew extension)."),
            _q("spanKind", _KIND_TEXT, kind_doc + " Without it, every kind.")])},
        "/api/traces": {"get": _op(tags, "jaegerFindTraces", "Search traces; each found trace whole, newest first.", {
            "200": _json(_envelope_of(_array(_ref("JaegerTrace"))),
                         "Matching traces in the Jaeger UI model. With `traceID`, the traces found; "
                         "the missing ones are listed in `errors`."),
            "400": _J400,
        }, trace_search, "A trace matches when one span satisfies every condition at once.")},
        "/api/traces/{trace_id}": {"get": _op(
            ["Jaeger v1", "Tempo"], "jaegerGetTrace", "One trace by ID (Jaeger UI model, or Tempo protobuf).", {
                "200": {"description": "The trace. JSON: Jaeger's envelope holding `[trace]`. "
                                       "With `Accept: application/protobuf`: the OTLP `TracesData` protobuf "
                                       "(wire-identical to Tempo's `tempopb.Trace`).",
                        "content": {"application/json": {"schema": _envelope_of(_array(_ref("JaegerTrace")))},
                                    "application/protobuf": {}}},
                "400": _J400,
                "404": {"description": "No such trace.",
                        "content": {"application/json": {"schema": _ref("JaegerErrorResponse")},
                                    "text/plain": {"schema": {"type": "string", "const": "trace not found"}}}},
            }, [trace_id,
                _q("start", {"type": "integer", "format": "int64", "minimum": 0},
                   "Epoch microseconds; checked and ignored (the trace is returned whole)."),
                _q("end", {"type": "integer", "format": "int64", "minimum": 0},
                   "Epoch microseconds; checked and ignored."),
                _q("raw", _GO_BOOL, "Accepted and ignored.")],
            "Content is negotiated on `Accept`: `application/protobuf` is what Tempo's clients (Grafana) ask for.")},
        "/api/dependencies": {"get": _op(tags, "jaegerDependencies", "Service links over a time window.", {
            "200": _json(_envelope_of(_array(_ref("DependencyLink"))), "Links sorted by parent, then child."),
            "400": _J400,
        }, [_q("endTs", {"type": "integer", "format": "int64", "minimum": 0},
               "End of the window, epoch **milliseconds**. Default: now."),
            _q("lookback", {"type": "integer", "format": "int64", "minimum": 0,
                            "default": jaeger_api.DEPENDENCY_LOOKBACK_MS},
               "Window length in **milliseconds**."),
            _q("service", _TEXT, "Keep only the links with this service as parent or child.")],
            "A link is counted for every span that started in `[endTs − lookback, endTs]` whose parent "
            "span is stored in another service.")},

        # ------------------------------------------------------------ api_v3
        "/api/v3/services": {"get": _op(v3, "apiV3Services", "Every service name, sorted.", {
            "200": _json(_ref("ApiV3ServicesResponse"), "Service names."),
        })},
        "/api/v3/operations": {"get": _op(v3, "apiV3Operations", "Operations of a service (or of every service).", {
            "200": _json(_ref("ApiV3OperationsResponse"), "Sorted by name, then kind."),
            "400": _V3_400,
        }, [_q("service", _TEXT, "Service name; without it, every service."),
            _q("spanKind", _KIND_TEXT, kind_doc),
            _q("span_kind", _KIND_TEXT, "Alias of `spanKind`.", deprecated=True)])},
        "/api/v3/traces": {"get": _op(v3, "apiV3FindTraces", "Search traces; every found trace whole, in one "
                                      "OTLP/JSON TracesData, newest first.", {
            "200": _json(_ref("ApiV3TracesResponse"), "The found traces."),
            "400": _V3_400,
            "404": _json(_ref("ApiV3Error"), "Nothing found (`No traces found`), as Jaeger answers."),
        }, v3_query)},
        "/api/v3/trace-summaries": {"get": _op(v3, "apiV3FindTraceSummaries", "Search traces; a summary of each, "
                                               "newest first.", {
            "200": _json(_ref("ApiV3TraceSummariesResponse"), "Summaries; an empty list when nothing matches."),
            "400": _V3_400,
        }, v3_query)},
        "/api/v3/traces/{trace_id}": {"get": _op(v3, "apiV3GetTrace", "One trace by ID as OTLP/JSON.", {
            "200": _json(_ref("ApiV3TracesResponse"), "The trace."),
            "400": _V3_400,
            "404": _json(_ref("ApiV3Error"), "No such trace."),
        }, [trace_id,
            _q("startTime", _RFC3339, "RFC 3339; checked and ignored (the trace is returned whole)."),
            _q("start_time", _RFC3339, "Alias of `startTime`.", deprecated=True),
            _q("endTime", _RFC3339, "RFC 3339; checked and ignored."),
            _q("end_time", _RFC3339, "Alias of `endTime`.", deprecated=True),
            _q("rawTraces", _GO_BOOL, "Accepted and ignored."),
            _q("raw_traces", _GO_BOOL, "Alias of `rawTraces`.", deprecated=True)])},
    }


# --------------------------------------------------------------------------- Zipkin


def _zipkin_paths() -> dict:
    tags = ["Zipkin v2"]
    e400 = _json(_ref("ErrorMessage"), "A bad or missing parameter; the message names it.")
    service_name = _q("serviceName", _TEXT, "Local service name, matched ignoring case.", required=True)
    window = [
        _q("endTs", {"type": "integer", "format": "int64", "minimum": 1},
           "End of the window, epoch **milliseconds**. Default: now."),
        _q("lookback", {"type": "integer", "format": "int64", "minimum": 1,
                        "default": zipkin_api.DEFAULT_LOOKBACK_MS},
           "Window length in **milliseconds**."),
    ]
    micros = {"type": "integer", "format": "int64", "minimum": 1}
    routes = {
        "/services": ("Services", "Every service name, sorted.", [], {
            "200": _json(_STRINGS, "Service names."),
        }),
        "/spans": ("SpanNames", "Span names of a service, sorted.", [service_name], {
            "200": _json(_STRINGS, "Span names."), "400": e400,
        }),
        "/remoteServices": ("RemoteServices", "Remote service names (`peer.service`) of a service's spans, "
                            "sorted.", [service_name], {
            "200": _json(_STRINGS, "Remote service names."), "400": e400,
        }),
        "/traces": ("FindTraces", "Search traces; whole traces, nearest to `endTs` first.", [
            _q("serviceName", _TEXT, "Local service of the matching span, ignoring case."),
            _q("remoteServiceName", _TEXT, "Remote service of the matching span, ignoring case."),
            _q("spanName", _TEXT, "Name of the matching span, ignoring case; `all` means any name."),
            _q("annotationQuery", {"type": "string", "maxLength": 8192},
               "Terms joined by ` and `: `key=value` (attribute equal, by string form) or a bare `key` "
               "(attribute exists); `error` also matches an ERROR status.", example="http.method=GET and error"),
            _q("minDuration", micros, "Least duration of the matching span, **microseconds**, inclusive."),
            _q("maxDuration", micros, "Greatest duration of the matching span, **microseconds**, inclusive; "
               "not less than `minDuration`."),
            *window,
            _q("limit", {**_LIMIT, "default": zipkin_api.DEFAULT_LIMIT}, "Most traces returned."),
        ], {
            "200": _json(_array(_ref("ZipkinTrace")), "The matching traces, each a list of spans."),
            "400": e400,
        }),
        "/trace/{trace_id}": ("GetTrace", "One trace by ID.", [
            _path("trace_id", _TRACE_ID, _TRACE_ID_PATH_DOC)], {
            "200": _json(_ref("ZipkinTrace"), "The trace's spans."),
            "400": e400,
            "404": _json(_ref("ErrorMessage"), "No such trace."),
        }),
        "/traceMany": ("GetTraces", "Several traces by ID, in the order asked.", [
            {"name": "traceIds", "in": "query", "required": True,
             "description": "Comma-separated trace IDs (1 to 1000; each 1–32 hex digits). Unknown IDs are left "
                            "out, repeats answered once.",
             "style": "form", "explode": False,
             "schema": _array(_TRACE_ID, minItems=1, maxItems=zipkin_api.MAX_TRACE_IDS)}], {
            "200": _json(_array(_ref("ZipkinTrace")), "The traces found."),
            "400": e400,
        }),
        "/dependencies": ("Dependencies", "Service links of spans that started in the window.", window, {
            "200": _json(_array(_ref("DependencyLink")), "Links sorted by parent, then child."),
            "400": e400,
        }),
        "/autocompleteKeys": ("AutocompleteKeys", "Span attribute keys usable in `annotationQuery`, sorted.", [], {
            "200": _json(_STRINGS, "Keys."),
        }),
        "/autocompleteValues": ("AutocompleteValues", "Values of one span attribute, sorted.", [
            _q("key", _TEXT, "The attribute key.", required=True)], {
            "200": _json(_STRINGS, "Values."), "400": e400,
        }),
    }
    paths = {}
    for prefix in zipkin_api.PREFIXES:
        proxied = prefix != "/api/v2"
        for route, (name, summary, params, responses) in routes.items():
            op_id = ("zipkinProxied" if proxied else "zipkin") + name
            description = f"The same as `/api/v2{route}`, under a `/zipkin` proxy prefix." if proxied else None
            paths[prefix + route] = {"get": _op(tags, op_id, summary, responses, params, description)}
    return paths


# --------------------------------------------------------------------------- Tempo


def _tempo_paths() -> dict:
    tags = ["Tempo"]
    e400 = _json(_ref("ErrorMessage"), "A bad parameter; the message names it.")
    window = [
        _q("start", _UNIX_S, "Start of the window, unix **seconds**."),
        _q("end", _UNIX_S, "End of the window, unix **seconds** (its whole second counts); after `start`."),
    ]
    scope = _q("scope", {"type": "string", "enum": ["resource", "span", "intrinsic", "event", "link",
                                                    "instrumentation", "all"]},
               "List one scope's keys; `all` or absent: span, resource (and intrinsic for v2).")
    keys_limit = _q("limit", {"type": "integer", "minimum": 1}, "Most keys per scope.")
    values_limit = _q("limit", {**_LIMIT, "default": tempo_api.DEFAULT_TAG_VALUES}, "Most values.")
    return {
        "/api/echo": {"get": _op(tags, "tempoEcho", "Connection test: answers `echo`.", {
            "200": {"description": "The text `echo`.",
                    "content": {"text/plain": {"schema": {"type": "string", "const": "echo"}}}},
        })},
        "/api/v2/traces/{trace_id}": {"get": _op(tags, "tempoGetTraceV2", "One trace by ID as Tempo's "
                                                 "TraceByIDResponse.", {
            "200": {"description": "The trace: JSON (proto3 JSON of `TraceByIDResponse`), or with "
                                   "`Accept: application/protobuf` the `tempopb.TraceByIDResponse` protobuf.",
                    "content": {"application/json": {"schema": _ref("TempoTraceByIdResponse")},
                                "application/protobuf": {}}},
            "400": e400,
            "404": _json(_ref("ErrorMessage"), "No such trace (JSON whatever the `Accept`)."),
        }, [_path("trace_id", _TRACE_ID, _TRACE_ID_PATH_DOC), *window,
            _q("q", {"type": "string"}, "Span filter: only `{}` or `{ true }` (the whole trace) is accepted.")])},
        "/api/search": {"get": _op(tags, "tempoSearch", "Search traces by TraceQL (a subset) or logfmt tags, "
                                   "newest first.", {
            "200": _json(_ref("TempoSearchResponse"), "The matching traces."),
            "400": e400,
        }, [_q("q", {"type": "string", "format": "traceql", "maxLength": tempo_api.MAX_QUERY},
               "A TraceQL query in Clew's subset (one spanset; see docs/api-tempo.md). Not with `tags`.",
               example='{ resource.service.name = "frontend" && status = error }'),
            _q("tags", {"type": "string", "format": "logfmt", "maxLength": tempo_api.MAX_QUERY},
               "logfmt `key=value` pairs that must hold on one span (`name`, `status.code`, "
               "`root.service.name`, `root.name`, or an attribute). Not with `q`.",
               example='service.name=frontend http.status_code=500'),
            _q("minDuration", _DURATION, "Least duration of the whole trace (Go duration), inclusive."),
            _q("maxDuration", _DURATION, "Greatest duration of the whole trace (Go duration), inclusive."),
            _q("limit", {**_LIMIT, "default": tempo_api.DEFAULT_LIMIT}, "Most traces returned."),
            _q("spss", {"type": "integer", "minimum": 1, "maximum": 1000, "default": tempo_api.DEFAULT_SPSS},
               "Spans shown per spanset."),
            *window])},
        "/api/search/tags": {"get": _op(tags, "tempoSearchTags", "Attribute keys a search can use.", {
            "200": _json(_ref("TempoTagNamesResponse"), "Keys, sorted."),
            "400": e400,
        }, [scope, keys_limit, *window])},
        "/api/v2/search/tags": {"get": _op(tags, "tempoSearchTagsV2", "Attribute keys per TraceQL scope.", {
            "200": _json(_ref("TempoTagScopesResponse"), "Keys per scope."),
            "400": e400,
        }, [scope, keys_limit, *window])},
        "/api/search/tag/{tag}/values": {"get": _op(tags, "tempoSearchTagValues", "Values of a plain attribute key.", {
            "200": _json(_ref("TempoTagValuesResponse"), "Values, sorted."),
            "400": e400,
        }, [_path("tag", {"type": "string", "minLength": 1, "maxLength": 1024},
                  "A plain attribute key of spans or resources; `name` also lists span names."),
            values_limit, *window])},
        "/api/v2/search/tag/{tag}/values": {"get": _op(tags, "tempoSearchTagValuesV2", "Typed values of a TraceQL "
                                                       "attribute or intrinsic.", {
            "200": _json(_ref("TempoTypedTagValuesResponse"), "Values with their types."),
            "400": e400,
        }, [_path("tag", {"type": "string"}, "A TraceQL identifier: `span.k`, `resource.k`, `.k`, `event.k`, "
                  "`link.k`, `instrumentation.k`, or an intrinsic (`name`, `status`, `kind`, "
                  "`trace:rootService`…)."),
            _q("q", {"type": "string", "format": "traceql", "maxLength": tempo_api.MAX_QUERY},
               "Narrows the values to one service when it pins `resource.service.name` at its top level; "
               "any other query narrows nothing."),
            values_limit, *window])},
    }


# --------------------------------------------------------------------------- operations


def _operation_paths() -> dict:
    tags = ["Operations"]
    ui_page = {"description": "The UI's `index.html`; its router shows the page the path names.",
               "content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "/healthz": {"get": _op(tags, "healthz", "The process is up.", {
            "200": _json(_ref("HealthStatus"), "`{\"status\": \"ok\"}`."),
        })},
        "/readyz": {"get": _op(tags, "readyz", "Every receiver is listening and the store is open.", {
            "200": _json(_ref("ReadyStatus"), "`{\"status\": \"ready\"}`."),
            "503": _json(_ref("ReadyStatus"), "Still starting: `{\"status\": \"starting\"}`."),
        })},
        "/metrics": {"get": _op(tags, "metrics", "The server's own metrics, Prometheus text format.", {
            "200": {"description": "Prometheus text exposition format 0.0.4.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
        })},
        "/": {"get": _op(tags, "ui", "The web UI (its search page).", {"200": ui_page})},
        "/search": {"get": _op(tags, "uiSearch", "The web UI's search page; the query string holds the search.",
                               {"200": ui_page})},
        "/trace/{trace_id}": {"get": _op(tags, "uiTrace", "The web UI's trace page (`?span=` selects a span).",
                                         {"200": ui_page}, [_path("trace_id", {"type": "string"}, "Trace ID, hex.")])},
        "/compare": {"get": _op(tags, "uiCompare", "The web UI's trace comparison.", {"200": ui_page})},
        "/graph": {"get": _op(tags, "uiGraph", "The web UI's service graph.", {"200": ui_page})},
        "/open": {"get": _op(tags, "uiOpen", "The web UI's file viewer (files never leave the browser).",
                             {"200": ui_page})},
        "/performance": {"get": _op(tags, "uiPerformance", "The web UI's service performance page (RED metrics "
                                    "over time; the query string holds the view).", {"200": ui_page})},
        "/alerts": {"get": _op(tags, "uiAlerts", "The web UI's alert rules, their state and history.",
                               {"200": ui_page})},
        "/ui/{name}": {"get": _op(tags, "uiFile", "A static file of the web UI (modules, styles).", {
            "200": {"description": "The file.", "content": {
                media: {"schema": {"type": "string"}} for media in ("text/javascript", "text/css", "text/html",
                                                                    "image/png", "image/svg+xml")}},
            "404": {"description": "No such file.", "content": {"application/json": {"schema": {"type": "object"}}}},
        }, [_path("name", {"type": "string"}, "Path of the file under `ui/`.")])},
        "/api/openapi.json": {"get": _op(tags, "openapi", "This OpenAPI document.", {
            "200": _json({"type": "object"}, "The OpenAPI 3.1 document of every route on the query port."),
        })},
    }


def _sampling_paths() -> dict:
    """Routes of ``sampling_api`` (served only when the server has sampling; schemas inline so the
    document without them has no unused component)."""
    tags = ["Jaeger v1"]
    probabilistic = _obj({"samplingRate": {"type": "number", "minimum": 0, "maximum": 1}},
                         ["samplingRate"], "Sample this fraction of new traces.")
    strategy = _obj({
        "strategyType": {"type": "string", "enum": ["PROBABILISTIC", "RATE_LIMITING"],
                         "description": "Which of the two top-level samplers applies (Jaeger's legacy "
                                        "field; `operationSampling`, when present, takes precedence)."},
        "probabilisticSampling": probabilistic,
        "rateLimitingSampling": _obj({"maxTracesPerSecond": {"type": "integer", "minimum": 0}},
                                     ["maxTracesPerSecond"], "Sample at most this many traces per second."),
        "operationSampling": _obj({
            "defaultSamplingProbability": {"type": "number", "minimum": 0, "maximum": 1},
            "defaultLowerBoundTracesPerSecond": {"type": "number", "minimum": 0},
            "perOperationStrategies": _array(_obj({
                "operation": {"type": "string"},
                "probabilisticSampling": probabilistic,
            }, ["operation", "probabilisticSampling"])),
            "defaultUpperBoundTracesPerSecond": {"type": "number", "minimum": 0},
        }, ["defaultSamplingProbability", "defaultLowerBoundTracesPerSecond", "perOperationStrategies"],
            "Per-operation probabilities (span name → probability); other operations use the default."),
    }, ["strategyType"], "Jaeger `SamplingStrategyResponse` in protobuf JSON, every default written.")
    num = {"type": "number", "minimum": 0}
    settings = _obj({
        "head": _obj({"default_strategy": {"type": "object"},
                      "service_strategies": _array({"type": "object"})}, ["default_strategy"],
                     "Jaeger file-based strategies: the head stage's probabilities and what SDKs are "
                     "served (see docs/sampling-remote.md)."),
        "tail": _obj({"enabled": {"type": "boolean"}, "decision_wait_s": num, "root_grace_s": num,
                      "max_pending_traces": {"type": "integer", "minimum": 1},
                      "decision_cache": {"type": "integer", "minimum": 1},
                      "policies": _array(_obj({"name": {"type": "string"}, "type": {"type": "string"}},
                                              ["name", "type"]))},
                     ["enabled", "decision_wait_s", "root_grace_s", "max_pending_traces",
                      "decision_cache", "policies"], "Tail sampling (see docs/sampling-policies.md)."),
        "adaptive": _obj({"enabled": {"type": "boolean"}, "interval_s": num, "target_traces_per_s": num,
                          "min_probability": num, "max_probability": num, "tolerance": num,
                          "max_increase": num, "target_stored_spans_per_s": num},
                         ["enabled", "interval_s", "target_traces_per_s"],
                         "Adaptive sampling (see docs/sampling-adaptive.md)."),
    }, ["head", "tail", "adaptive"], "The sampling settings in force.")
    count = _obj({"spans": {"type": "integer"}, "traces": {"type": "integer"},
                  "traces_per_s": num, "by_reason": {"type": "object"}}, ["spans", "traces"])
    nullable = {"type": ["number", "null"]}
    service_stats = _obj({
        "received": count, "kept": count, "dropped": count,
        "represented_traces": num, "kept_fraction": nullable,
        "decisions": _obj({"count": {"type": "integer"}, "early": {"type": "integer"},
                           "mean_latency_s": nullable, "max_latency_s": nullable}, ["count", "early"]),
        "target": _obj({"head_probability": nullable, "head_operations": {"type": ["object", "null"]},
                        "adaptive_traces_per_s": nullable}, ["head_probability"]),
        "sdk_polled_s_ago": nullable,
    }, ["received", "kept", "dropped", "represented_traces", "kept_fraction", "decisions", "target"])
    stats = _obj({
        "window_s": num, "from": num, "to": num,
        "services": {"type": "object", "additionalProperties": service_stats},
        "pending_traces": {"type": "integer", "minimum": 0}, "tail_enabled": {"type": "boolean"},
        "baseline_factor": num,
        "adaptive": _array(_obj({"service": {"type": "string"}, "operation": {"type": "string"},
                                 "probability": num}, ["service", "operation", "probability"])),
    }, ["window_s", "services", "pending_traces", "tail_enabled", "baseline_factor", "adaptive"],
        "Per service over the window: received, kept (by reason: `head`, a tail policy's name, "
        "`decided` for spans that followed an earlier decision), dropped (by reason: `head`, "
        "`no_policy`, `decided`), the traces the kept ones represent, decision latency, targets.")
    error = _json(_ref("ApiV3Error"), "The setting or parameter that is wrong, named.")
    native = ["Sampling"]
    return {
        "/api/v1/sampling": {
            "get": _op(native, "getSampling", "The sampling settings in force.",
                       {"200": _json(settings, "Head strategies, tail settings and policies, adaptive.")}),
            "put": _op(native, "putSampling", "Change the sampling settings.", {
                "200": _json(settings, "The settings now in force."), "400": error},
                description="A partial document: any of `head` (replaced whole), `tail` (any keys; "
                            "`policies` replaced whole), `adaptive` (any keys). Validated whole; "
                            "saved in the data directory; effective for the next span; each change "
                            "logged with its old and new value."),
        },
        "/api/v1/sampling/stats": {"get": _op(
            native, "getSamplingStats", "What was received, kept and dropped, per service.", {
                "200": _json(stats, "Statistics over the window."), "400": error},
            [_q("window", _DURATION, "How far back to sum (default `sampling.stats_window_s`; at most 1h).",
                example="5m"),
             _q("service", _TEXT, "Only this service.")])},
        "/api/sampling": {"get": _op(
            tags, "jaegerSamplingStrategy", "The Jaeger remote-sampling strategy of one service.", {
                "200": _json(strategy, "The strategy (an unknown service gets the default strategy)."),
                "400": {"description": "`service` missing, empty or repeated.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
            }, [_q("service", _TEXT, "The service whose strategy to fetch; counts as that service's poll.",
                   required=True, example="frontend")],
            description="The same strategies as the remote-sampling port (`GET /sampling?service=`, "
                        "default 5778) and gRPC `jaeger.api_v2.SamplingManager/GetSamplingStrategy`. "
                        "See docs/sampling-remote.md.")},
    }


def _storage_paths() -> dict:
    """Routes of ``storage_api`` (served only when the server stores spans; schemas inline, as
    for sampling, so the document without them has no unused component)."""
    tags = ["Storage"]
    hex32 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
    count = {"type": "integer", "minimum": 0}
    maybe_count = {"type": ["integer", "null"], "minimum": 0}
    maybe_num = {"type": ["number", "null"], "minimum": 0}
    when = {"type": "string", "format": "date-time", "examples": ["2024-01-02T03:04:05Z"]}
    tier = _obj({
        "partitions": count, "spans": count, "bytes": count,
        "oldest_s": {**maybe_count, "description": "start (epoch s) of the tier's oldest partition"},
        "bytes_per_span": maybe_num,
    }, ["partitions", "spans", "bytes", "oldest_s", "bytes_per_span"])
    partition = _obj({
        "tier": {"type": "string", "enum": ["hot", "cold"]},
        "start": {**when, "description": "start of the partition's arrival window"},
        "start_s": count, "end_s": count, "spans": count,
        "bytes": {**count, "description": "bytes its files take on disk"},
        "bytes_per_span": maybe_num,
        "oldest_span_ns": {**maybe_count, "description": "earliest span start, epoch ns"},
        "newest_span_end_ns": {**maybe_count, "description": "latest span end, epoch ns"},
        "file": {"type": "string", "description": "cold only: the file under DATA_DIR/cold"},
        "traces": {**count, "description": "cold only"},
        "blocks": {**count, "description": "cold only"},
        "pinned_only": {"type": "boolean", "description": "cold only: rewritten to hold only pinned "
                                                          "traces (past retention or the budget)"},
        "source": {"type": ["string", "null"], "description": "cold only: what wrote the file "
                                                               "(a move, a deletion, retention…)"},
        "pinned_traces": {**count, "description": "cold only"},
        "damaged": {"type": ["string", "null"], "description": "cold only: what is wrong with the "
                                                                "file (it is skipped), or null"},
    }, ["tier", "start", "start_s", "end_s", "spans", "bytes"])
    report = _obj({
        "data_dir_bytes": count,
        "budget": _obj({"max_bytes": maybe_count, "used_bytes": count,
                        "used_fraction": maybe_num, "over": {"type": "boolean"}},
                       ["max_bytes", "used_bytes", "used_fraction", "over"],
                       "`store.max_disk_bytes` and its use (`max_bytes` null: no budget)."),
        "hot_window_s": {"type": "number", "minimum": 0},
        "cold_window_s": {"type": "number", "minimum": 0},
        "tiers": _obj({"hot": tier, "cold": tier}, ["hot", "cold"]),
        "partitions": _array(partition, description="hot partitions, then cold files, oldest first"),
        "damaged_files": _array(_obj({"file": {"type": "string"}, "error": {"type": "string"}},
                                     ["file", "error"])),
        "pinned_traces": count,
        "cold_index_cache_spans": count,
        "last_move": {"type": ["string", "null"], "format": "date-time"},
        "counters": {"type": "object", "additionalProperties": count,
                     "description": "lifecycle counters since the server started (moves, drops, "
                                    "rewrites, deleted spans, move failures)"},
    }, ["data_dir_bytes", "budget", "tiers", "partitions", "damaged_files", "pinned_traces", "counters"],
        "What the data directory holds, per tier and partition.")
    incident_id = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
                   "examples": ["inc-2024-0117", "inc-5f2a9c01b7de"]}
    incident = _obj({
        "id": incident_id,
        "title": {"type": "string", "minLength": 1, "maxLength": storage_api.MAX_TEXT},
        "link": {"type": ["string", "null"], "description": "an http or https URL, e.g. the ticket"},
        "created": when,
        "traceIds": _array(hex32, maxItems=storage_api.MAX_INCIDENT_TRACES),
        "traces": _array(_obj({"traceId": hex32, "stored": {"type": "boolean"}}, ["traceId", "stored"]),
                         description="listings only: each trace and whether it is still stored"),
    }, ["id", "title", "link", "created", "traceIds"], "An incident: a named set of pinned traces.")
    incident_in = _obj({
        "id": {**incident_id, "description": "absent: one is made up (`inc-` and 12 hex digits); "
                                             "an existing ID replaces that incident"},
        "title": {"type": "string", "minLength": 1, "maxLength": storage_api.MAX_TEXT},
        "link": {"type": "string", "description": "an http or https URL"},
        "traceIds": _array(_TRACE_ID, minItems=1, maxItems=storage_api.MAX_INCIDENT_TRACES),
    }, ["title", "traceIds"])
    pin = _obj({
        "traceId": hex32,
        "pinnedBy": _array({"type": "string"}, description="incident IDs, and `pin` for a pin of its own"),
        "stored": {"type": "boolean", "description": "the trace is in the store"},
    }, ["traceId", "pinnedBy", "stored"])
    audit_entry = _obj({
        "time": when,
        "action": {"type": "string", "examples": ["delete", "pin", "unpin", "incident_create",
                                                  "incident_update", "incident_delete"]},
        "by": {"type": "string", "description": "the `X-Clew-User` header, or the client's address"},
        "trace_ids": _array(hex32),
    }, ["time", "action"], "One line of DATA_DIR/audit.log; further fields depend on the action.")
    deletion = _obj({
        "deleted": _obj({"traces": {**count, "description": "traces that were stored"},
                         "spans": {**count, "description": "spans removed from both tiers"}},
                        ["traces", "spans"]),
        "hotPartitions": _array({"type": "string"}, description="hot partitions compacted"),
        "coldFiles": _array({"type": "string"}, description="cold files rewritten (or removed)"),
        "unpinned": _array(hex32, description="pinned traces deleted with `force`"),
        "audit": audit_entry,
    }, ["deleted", "hotPartitions", "coldFiles", "unpinned", "audit"])
    deletion_in = _obj({
        "traceIds": _array(_TRACE_ID, minItems=1, maxItems=storage_api.MAX_DELETE_TRACES,
                           description="the traces to delete (not with `q`)"),
        "q": {"type": "string", "format": "traceql", "maxLength": storage_api.MAX_QUERY,
              "description": "delete every trace this TraceQL query matches (not with `traceIds`)"},
        "start": {**_UNIX_S, "description": "with `q`: only spans starting at or after (unix s)"},
        "end": {**_UNIX_S, "description": "with `q`: only spans starting at or before (unix s)"},
        "reason": {"type": "string", "maxLength": storage_api.MAX_TEXT, "description": "kept in the audit log"},
        "force": {"type": "boolean", "default": False, "description": "delete pinned traces too (and unpin them)"},
    }, (), "Either `traceIds` or `q`.")
    error = _json(_ref("ApiV3Error"), "A bad body or parameter; the message names it.")
    trace_path = _path("trace_id", _TRACE_ID, _TRACE_ID_PATH_DOC)
    incident_path = _path("incident_id", {"type": "string"}, "The incident's ID.")
    no_incident = _json(_ref("ApiV3Error"), "No such incident.")
    pinned = _json(_ref("ApiV3Error"), "Some of the traces are pinned (named); give `force` to delete them.")
    closing = _json(_ref("ApiV3Error"), "The server is shutting down.")
    failed = _json(_ref("ApiV3Error"), "A tier could not be rewritten (named; recorded in the audit "
                                       "log as `delete_failed`); the request may be repeated.")
    return {
        "/api/v1/storage": {"get": _op(tags, "getStorage", "What is stored, per tier and partition.", {
            "200": _json(report, "Bytes, spans, bytes per span, oldest data, budget use, damaged files."),
        })},
        "/api/v1/incidents": {
            "get": _op(tags, "listIncidents", "Every incident, with whether each trace is still stored.", {
                "200": _json(_obj({"incidents": _array(incident)}, ["incidents"]), "Oldest first."),
            }),
            "post": _op(tags, "createIncident", "Create an incident (or replace one) and pin its traces.", {
                "200": _json(incident, "An incident of that `id` existed and was replaced; traces it "
                                       "no longer lists are unpinned."),
                "201": _json(incident, "Created."),
                "400": error,
            }, body=_body(incident_in, "The incident.")),
        },
        "/api/v1/incidents/{incident_id}": {
            "get": _op(tags, "getIncident", "One incident, with whether each trace is still stored.", {
                "200": _json(incident, "The incident."), "404": no_incident,
            }, [incident_path]),
            "delete": _op(tags, "deleteIncident", "Remove an incident and unpin its traces.", {
                "200": _json(incident, "The incident removed."), "404": no_incident,
            }, [incident_path], description="A trace stays pinned while another incident lists it "
                                            "or it has a pin of its own."),
        },
        "/api/v1/traces/{trace_id}/pin": {
            "put": _op(tags, "pinTrace", "Pin a trace, on its own or as part of an incident.", {
                "200": _json(pin, "What pins the trace now."), "400": error,
                "404": _json(_ref("ApiV3Error"), "No such incident."),
            }, [trace_path], body=_body(_obj({"incident": {"type": "string"}}),
                                        "Optional: `{\"incident\": ID}` adds the trace to that incident.",
                                        required=False)),
            "delete": _op(tags, "unpinTrace", "Drop a trace's own pin, or take it out of an incident.", {
                "200": _json(pin, "What still pins the trace."), "400": error,
                "404": _json(_ref("ApiV3Error"), "No such incident, or the trace is not pinned that way."),
            }, [trace_path, _q("incident", {"type": "string"},
                               "Take the trace out of this incident (absent: drop its own pin).")]),
        },
        "/api/v1/pins": {"get": _op(tags, "listPins", "Every pinned trace and what pins it.", {
            "200": _json(_obj({"pins": _array(pin)}, ["pins"]), "Sorted by trace ID."),
        })},
        "/api/v1/traces/{trace_id}": {"delete": _op(tags, "deleteTrace", "Delete one trace from both tiers.", {
            "200": _json(deletion, "Deleted (also when nothing was stored: `deleted.traces` is 0)."),
            "400": error, "409": pinned, "500": failed, "503": closing,
        }, [trace_path, _q("force", {"type": "string", "enum": ["true", "false", "1", "0"]},
                           "Delete the trace even if pinned (and unpin it)."),
            _q("reason", _TEXT, "Why; kept in the audit log.")],
            description="The trace's bytes are gone from every file: hot partitions holding it are "
                        "compacted, cold files rewritten. Recorded in the audit log.")},
        "/api/v1/deletions": {"post": _op(tags, "deleteTraces", "Delete listed traces, or those a "
                                          "TraceQL query matches, from both tiers.", {
            "200": _json(deletion, "Deleted."), "400": error, "409": pinned, "500": failed, "503": closing,
        }, body=_body(deletion_in, "What to delete."),
            description=f"A query may match at most {storage_api.MAX_DELETE_TRACES} traces (more is "
                        "a 400: narrow it, or its window, and repeat); a query that matches every "
                        "trace needs a `start`/`end` window. Recorded in the audit log.")},
        "/api/v1/audit": {"get": _op(tags, "getAudit", "The audit log, newest first.", {
            "200": _json(_obj({"entries": _array(audit_entry)}, ["entries"]), "Entries, newest first."),
            "400": error,
        }, [_q("limit", {"type": "integer", "minimum": 1, "maximum": storage_api.MAX_AUDIT,
                         "default": storage_api.DEFAULT_AUDIT}, "Most entries returned."),
            _q("action", {"type": "string", "maxLength": 64}, "Only entries of this action.",
               example="delete")])},
    }


def _structure_paths() -> dict:
    """Routes of ``analytics_api``: critical paths and the service graph (schemas inline)."""
    tags = ["Trace structure"]
    ns_text = {"type": "string", "pattern": "^[0-9]+$", "description": "epoch nanoseconds, decimal"}
    ns = {"type": "integer", "minimum": 0, "description": "nanoseconds"}
    share = {"type": "number", "minimum": 0, "maximum": 1}
    segment = _obj({
        "spanId": {"type": "string", "description": "hex; `~2`, `~3`… added to a later span sharing an ID"},
        "service": {"type": "string"}, "operation": {"type": "string"},
        "start": ns_text, "end": ns_text,
        "selfOnPath": {**ns, "description": "end − start: the span's own time in this segment"},
    }, ["spanId", "service", "operation", "start", "end", "selfOnPath"])
    path_span = _obj({
        "spanId": {"type": "string"}, "service": {"type": "string"}, "operation": {"type": "string"},
        "selfOnPath": {**ns, "description": "the span's time on the path, over its segments"},
        "segments": {"type": "integer", "minimum": 1},
    }, ["spanId", "service", "operation", "selfOnPath", "segments"])
    service_time = _obj({"service": {"type": "string"}, "time": ns, "share": share},
                        ["service", "time", "share"])
    critical_path = _obj({
        "traceId": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "rootSpanId": {"type": "string"}, "rootService": {"type": "string"},
        "rootOperation": {"type": "string"},
        "start": ns_text, "end": ns_text,
        "total": {**ns, "description": "the main root's duration: the segments' sum"},
        "segments": _array(segment, description="in time order; they tile [start, end]"),
        "spans": _array(path_span, description="each span on the path, most time first"),
        "services": _array(service_time, description="time on the path per service, most first"),
    }, ["traceId", "total", "segments", "spans", "services"], "The critical path of one trace.")
    aggregate = _obj({
        "traces": {"type": "integer", "minimum": 0, "description": "traces read"},
        "total": {**ns, "description": "the critical paths' summed length"},
        "services": _array(_obj({
            "service": {"type": "string"}, "time": ns, "share": share,
            "traces": {"type": "integer", "minimum": 1, "description": "traces whose path it is on"},
            "meanPerTrace": {**ns, "description": "time / traces"},
        }, ["service", "time", "share", "traces", "meanPerTrace"]), description="most time first"),
        "traceIds": _array({"type": "string", "pattern": "^[0-9a-f]{32}$"}, description="newest first"),
    }, ["traces", "total", "services", "traceIds"])
    quantile = {"type": ["integer", "null"], "minimum": 0}
    edge = _obj({
        "source": {"type": "string", "description": "the client (producer) service"},
        "target": {"type": "string", "description": "the server (consumer) service, or the peer a lone "
                                                    "client span names"},
        "connection": {"type": "string", "enum": ["request", "messaging"]},
        "calls": {"type": "integer", "minimum": 1}, "errors": {"type": "integer", "minimum": 0},
        "errorRate": share,
        "latency": _obj({"mean": ns, "p50": quantile, "p95": quantile, "p99": quantile},
                        ["mean", "p50", "p95", "p99"],
                        "Client-side duration in ns (quantiles within 0.5 %)."),
    }, ["source", "target", "connection", "calls", "errors", "errorRate", "latency"])
    node = _obj({
        "name": {"type": "string"}, "callsIn": {"type": "integer", "minimum": 0},
        "callsOut": {"type": "integer", "minimum": 0}, "errorsIn": {"type": "integer", "minimum": 0},
        "virtual": {"type": "boolean", "description": "a peer that sends no spans (only named by clients)"},
    }, ["name", "callsIn", "callsOut", "errorsIn", "virtual"])
    graph = _obj({
        "from": ns_text, "to": ns_text, "nodes": _array(node), "edges": _array(edge),
        "cycles": _array(_STRINGS, description="every elementary cycle, each from its smallest service name"),
        "cyclesTruncated": {"type": "boolean", "description": "more cycles exist than "
                                                             "`analytics.max_cycles` listed"},
    }, ["from", "to", "nodes", "edges", "cycles", "cyclesTruncated"], "The service graph of a time range.")
    error = _json(_ref("ApiV3Error"), "A bad parameter; the message names it.")
    depth = {"type": "integer", "minimum": 1, "maximum": analytics_api.MAX_TRACES}
    v3_params = []
    for p in _jaeger_paths()["/api/v3/trace-summaries"]["get"]["parameters"]:
        if p["name"] in ("query.startTimeMin", "query.startTimeMax"):
            continue
        if p["name"] in ("query.searchDepth", "query.search_depth", "query.num_traces"):
            p = {**p, "description": "Alias of `limit`.", "schema": depth}
        v3_params.append(p)
    window = [_q("query.startTimeMin", _RFC3339, "Earliest start of the matching span (default, when "
                 "neither bound is given: an hour ago)."),
              _q("query.startTimeMax", _RFC3339, "Latest start of the matching span (default: now).")]
    when = {"type": "string", "examples": ["1735689600", "2025-01-01T00:00:00Z"]}
    return {
        "/api/v1/traces/{trace_id}/critical-path": {"get": _op(
            tags, "getCriticalPath", "The critical path of one trace.", {
                "200": _json(critical_path, "Segments, per-span and per-service time on the path."),
                "400": error, "404": _json(_ref("ApiV3Error"), "No such trace."),
            }, [_path("trace_id", _TRACE_ID, _TRACE_ID_PATH_DOC)],
            description="From the main root's end, back through the last-finishing child that ends "
                        "before the current point, recursively (children clipped to their parent); "
                        "the definition of the UI's trace view.")},
        "/api/v1/critical-path/services": {"get": _op(
            tags, "getCriticalPathServices", "Time on the critical path per service over a search's traces.", {
                "200": _json(aggregate, "Services by time on the critical paths."), "400": error,
            }, [*window, *v3_params,
                _q("limit", {"type": "integer", "minimum": 1, "maximum": analytics_api.MAX_TRACES,
                             "default": analytics_api.DEFAULT_TRACES},
                   "Traces read (newest first).")],
            description="The search takes Jaeger api_v3's `query.*` parameters (docs/api-jaeger.md).")},
        "/api/v1/dependencies": {"get": _op(
            tags, "getServiceGraph", "The service graph paired at ingest, with metrics per edge and cycles.", {
                "200": _json(graph, "Nodes, edges and cycles."), "400": error,
                "503": _json(_ref("ApiV3Error"), "The service graph is off (`analytics.enabled = false`)."),
            }, [_q("from", when, "Unix seconds or RFC 3339 (default: an hour before `to`)."),
                _q("to", when, "Unix seconds or RFC 3339 (default: now).")],
            description="Client/server and producer/consumer span pairs counted before sampling; "
                        "each edge's buckets starting in [from, to) (one-minute buckets).")},
    }


def _correlation_paths() -> dict:
    """The route of ``correlation_api``: link templates rendered for one trace (schemas inline)."""
    tags = ["Correlation"]
    link = _obj({"name": {"type": "string", "description": "the template's name"},
                 "url": {"type": "string", "format": "uri", "pattern": "^https?://"}},
                ["name", "url"])
    ns_text = {"type": "string", "pattern": "^[0-9]+$", "description": "epoch nanoseconds, decimal"}
    incident = _obj({
        "id": {"type": "string"}, "title": {"type": "string"},
        "link": {"type": ["string", "null"], "description": "the incident's URL, if it has one"},
        "created": {"type": "string", "format": "date-time"},
    }, ["id", "title", "link", "created"])
    answer = _obj({
        "traceId": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "start": {**ns_text, "description": "the earliest span start (epoch ns, decimal)"},
        "end": {**ns_text, "description": "the latest span end (epoch ns, decimal)"},
        "trace": _array(link, description="the trace templates that rendered, in configuration order"),
        "spans": {"type": "object", "additionalProperties": _array(link),
                  "description": "span ID (16 hex digits) → the span templates that rendered for it; "
                                 "spans without any are left out"},
        "spansTruncated": {"type": "boolean", "description": "more span links than "
                                                            "`correlation.max_span_links`: later spans left out"},
        "incidents": _array(incident, description="the incidents listing this trace, oldest first"),
    }, ["traceId", "start", "end", "trace", "spans", "spansTruncated", "incidents"],
        "Rendered links and incidents of one trace.")
    return {
        "/api/v1/traces/{trace_id}/links": {"get": _op(
            tags, "getTraceLinks", "Links to other tools for one trace and its spans, and its incidents.", {
                "200": _json(answer, "The rendered links and the incidents."),
                "400": _json(_ref("ApiV3Error"), "A bad trace or span ID; the message names it."),
                "404": _json(_ref("ApiV3Error"), "No such trace."),
            }, [_path("trace_id", _TRACE_ID, _TRACE_ID_PATH_DOC),
                _q("spanId", {"type": "string", "format": "hex", "pattern": "^[0-9a-fA-F]{16}$"},
                   "Render the span templates for this span only.")],
            description="The `[[correlation.links]]` templates of the configuration rendered for the "
                        "trace (scope `trace`) and for each span (scope `span`); a template naming an "
                        "attribute a span lacks is not rendered for it.")},
    }


def _metrics_paths() -> dict:
    """Routes of ``metrics_api``: RED series, comparison, Jaeger's Monitor API, search export."""
    tags = ["Metrics"]
    when = {"type": "string", "examples": ["1735689600", "2025-01-01T00:00:00Z"]}
    ms = {"type": ["number", "null"], "minimum": 0, "description": "milliseconds; null without calls"}
    rate = {"type": "number", "minimum": 0, "description": "calls per second"}
    err_rate = {"type": ["number", "null"], "minimum": 0, "maximum": 1, "description": "errors / calls; null without calls"}
    count = {"type": "integer", "minimum": 0}
    stats = {"calls": count, "errors": count, "errorRate": err_rate, "rate": rate}
    q_note = "plus one field per asked quantile (`p50`, `p95`, `p99`, `p99.9`…): ms, null without calls"
    point = {**_obj({"t": {"type": "integer", "description": "the step's start, unix seconds"}, **stats},
                    ["t", "calls", "errors", "errorRate", "rate"]), "additionalProperties": ms,
             "description": f"One step: {q_note}."}
    totals = {**_obj(stats, ["calls", "errors", "errorRate", "rate"]), "additionalProperties": ms,
              "description": f"Over all the steps listed: {q_note}."}
    series = _obj({
        "operation": {"type": ["string", "null"], "description": "the group's (or the filter's) operation"},
        "kind": {"type": ["string", "null"], "enum": [*KINDS, None]},
        "totals": totals, "points": _array(point),
    }, ["operation", "kind", "totals", "points"])
    answer = _obj({
        "service": {"type": "string"}, "operation": {"type": ["string", "null"]},
        "kind": {"type": ["string", "null"]},
        "groupBy": {"type": ["string", "null"], "enum": ["operation", "kind", "operation,kind", None]},
        "from": {"type": "integer", "description": "unix seconds"}, "to": {"type": "integer"},
        "step": {"type": "integer", "minimum": 1, "description": "seconds"},
        "quantiles": _array({"type": "number"}),
        "series": _array(series, description="busiest first; exactly one without groupBy"),
    }, ["service", "operation", "kind", "groupBy", "from", "to", "step", "quantiles", "series"])
    csv_text = {"type": "string", "description": "CSV with a header row (RFC 4180, CRLF line ends)"}
    side = {**_obj({"calls": count, "rate": rate, "errorRate": err_rate, "p50": ms, "p95": ms, "p99": ms},
                   ["calls", "rate", "errorRate", "p50", "p95", "p99"])}
    num_or_null = {"type": ["number", "null"]}
    row = _obj({
        "service": {"type": "string"}, "operation": {"type": "string"}, "kind": {"type": "string"},
        "baseline": side, "current": side,
        "delta": _obj({k: num_or_null for k in ("calls", "rate", "errorRate", "p50", "p95", "p99")},
                      description="current − baseline (null when either is null)"),
        "relative": _obj({k: num_or_null for k in ("calls", "rate", "p50", "p95", "p99")},
                         description="(current − baseline) / baseline (null when the baseline is 0 or null)"),
        "regression": {"type": "boolean"},
        "reasons": _array({"type": "string", "enum": ["p95", "errorRate"]}),
    }, ["service", "operation", "kind", "baseline", "current", "delta", "relative", "regression", "reasons"])
    comparison = _obj({
        "baselineFrom": {"type": "integer"}, "baselineTo": {"type": "integer"},
        "from": {"type": "integer"}, "to": {"type": "integer"},
        "threshold": {"type": "number"}, "minCalls": count, "errorThreshold": {"type": "number"},
        "regressions": count, "rows": _array(row, description="regressions first, worst first"),
    }, ["baselineFrom", "baselineTo", "from", "to", "threshold", "minCalls", "errorThreshold", "regressions",
        "rows"])
    family = _obj({
        "name": {"type": "string", "examples": ["service_latencies", "service_operation_call_rate"]},
        "type": {"const": "GAUGE"}, "help": {"type": "string"},
        "metrics": _array(_obj({
            "labels": _array(_obj({"name": {"type": "string", "enum": ["operation", "service_name"]},
                                   "value": {"type": "string"}}, ["name", "value"])),
            "metricPoints": _array(_obj({
                "gaugeValue": _obj({"doubleValue": {"type": "number"}}, ["doubleValue"]),
                "timestamp": {"type": "string", "format": "date-time"},
            }, ["gaugeValue", "timestamp"])),
        }, ["labels", "metricPoints"])),
    }, ["name", "type", "help", "metrics"], "Jaeger's MetricFamily (api_v2/metrics) as JSON.")
    error = _json(_ref("ApiV3Error"), "A bad parameter; the message names it.")
    off = _json(_ref("ApiV3Error"), "Metrics are off (`analytics.enabled = false`).")
    j_off = _json(_ref("JaegerErrorResponse"), "Metrics are off (`analytics.enabled = false`), as Jaeger "
                                               "answers without a metrics store.")
    range_params = [_q("from", when, "Unix seconds or RFC 3339 (default: an hour before `to`)."),
                    _q("to", when, "Unix seconds or RFC 3339 (default: now).")]
    fmt = _q("format", {"type": "string", "enum": ["json", "csv"], "default": "json"}, "Answer format.")
    kind = _q("kind", {"type": "string", "examples": [*KINDS, "SPAN_KIND_SERVER"]},
              "Only this span kind (`server`… or `SPAN_KIND_SERVER`); default every kind.")
    jaeger_params = [
        _q("service", {"type": "string"}, "Service name (at least one).", required=True, repeat=True),
        _q("groupByOperation", _GO_BOOL, "One metric per service and operation (default false)."),
        _q("spanKind", {"type": "string", "enum": [*(f"SPAN_KIND_{k.upper()}" for k in KINDS), *KINDS]},
           "Span kinds counted (default SPAN_KIND_SERVER; `server` style taken too).", repeat=True),
        _q("endTs", {"type": "integer", "minimum": 0}, "End of the range, unix ms (default now)."),
        _q("lookback", {"type": "integer", "minimum": 1}, "Range length, ms (default 3600000)."),
        _q("step", {"type": "integer", "minimum": 1}, "Between points, ms (default 5000)."),
        _q("ratePer", {"type": "integer", "minimum": 1, "maximum": 86_400_000},
           "The window each point is computed over, ms (default 600000)."),
    ]
    monitor = "Each point at t covers the one-minute buckets starting in [t − ratePer, t)."
    return {
        "/api/v1/metrics": {"get": _op(
            tags, "getMetrics", "RED time series of a service: calls, errors, rate, latency quantiles.", {
                "200": {"description": "The series (JSON, or CSV with `format=csv`: one row per series and step).",
                        "content": {"application/json": {"schema": answer}, "text/csv": {"schema": csv_text}}},
                "400": error, "503": off,
            }, [_q("service", {"type": "string"}, "Service name.", required=True),
                _q("operation", {"type": "string"}, "Only this operation (default: all merged)."), kind,
                _q("groupBy", {"type": "string", "enum": ["operation", "kind", "operation,kind"]},
                   "One series per operation and/or kind."),
                *range_params,
                _q("step", {"type": "string", "examples": ["60", "5m", "1h"]},
                   "Seconds or a duration, at least `analytics.bucket_s` (default: the smallest of 1m, 2m, "
                   "5m, 10m, 15m, 30m, 1h, 2h, 3h, 6h, 12h, 1d, 7d giving at most 300 points)."),
                _q("quantiles", {"type": "string", "examples": ["0.5,0.95,0.99"]},
                   "Comma-separated quantiles in (0, 1] (default 0.5,0.95,0.99; at most 10)."), fmt],
            description="Steps are aligned to multiples of `step` since the epoch: the first holds `from`, "
                        "the last the instant before `to`. Counts come from every span received, before "
                        "sampling; quantiles are within 0.5 %.")},
        "/api/v1/metrics/compare": {"get": _op(
            tags, "compareMetrics", "Two time ranges per service and operation: deltas and regressions.", {
                "200": _json(comparison, "One row per series with calls in either range."),
                "400": error, "503": off,
            }, [*range_params,
                _q("baselineFrom", when, "Start of the baseline (with `baselineTo`)."),
                _q("baselineTo", when, "End of the baseline (with `baselineFrom`)."),
                _q("baseline", {"type": "string", "examples": ["1h", "1d", "7d"]},
                   "Instead: the baseline is [from, to) moved back by this (default: to − from, "
                   "the range just before)."),
                _q("service", {"type": "string"}, "Only this service (default: all)."), kind,
                _q("threshold", {"type": "number", "minimum": 0, "default": 0.2},
                   "Relative p95 rise flagged (0.2 = 20 %)."),
                _q("minCalls", {"type": "integer", "minimum": 0, "default": 20},
                   "Calls both ranges need before anything is flagged."),
                _q("errorThreshold", {"type": "number", "minimum": 0, "maximum": 1, "default": 0.05},
                   "Error-rate rise flagged (0.05 = 5 percentage points).")])},
        **{f"/api/metrics/{what}": {"get": _op(
            ["Jaeger v1"], f"jaegerMetrics{what.capitalize()}", summary, {
                "200": _json(family, "One metric per service (and operation) with data."),
                "400": _J400, "501": j_off,
            }, ([_q("quantile", {"type": "number", "minimum": 0, "maximum": 1}, "The quantile, e.g. 0.95.",
                    required=True)] if what == "latencies" else []) + jaeger_params, description=monitor)}
           for what, summary in (("latencies", "Jaeger Monitor: a latency quantile in ms."),
                                 ("calls", "Jaeger Monitor: calls per second."),
                                 ("errors", "Jaeger Monitor: errors as a fraction of calls."))},
        "/api/metrics/minstep": {"get": _op(
            ["Jaeger v1"], "jaegerMetricsMinStep", "Jaeger Monitor: the smallest useful step, ms.", {
                "200": _json(_envelope_of({"type": "integer", "minimum": 1}), "`analytics.bucket_s` in ms."),
                "501": j_off})},
        "/api/v1/export/traces": {"get": _op(
            tags, "exportTraces", "The summaries of a search's traces as CSV or JSON.", {
                "200": {"description": "One row per trace: traceId, rootService, rootOperation, start (RFC 3339), "
                                       "durationMs, spans, errors, services (`;`-separated in CSV).",
                        "content": {"application/json": {"schema": _obj({"traces": _array(_obj({
                            "traceId": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                            "rootService": {"type": "string"}, "rootOperation": {"type": "string"},
                            "start": {"type": "string", "format": "date-time"},
                            "durationMs": {"type": "number", "minimum": 0}, "spans": count, "errors": count,
                            "services": _STRINGS,
                        }, ["traceId", "rootService", "rootOperation", "start", "durationMs", "spans", "errors",
                            "services"]))}, ["traces"])}, "text/csv": {"schema": csv_text}}},
                "400": error,
            }, [_q("query.startTimeMin", _RFC3339, "Earliest start of a matching span (default, when neither "
                   "bound is given: an hour ago)."),
                _q("query.startTimeMax", _RFC3339, "Latest start of a matching span (default: now)."),
                *[p for p in _jaeger_paths()["/api/v3/trace-summaries"]["get"]["parameters"]
                  if p["name"] not in ("query.startTimeMin", "query.startTimeMax")],
                _q("limit", _LIMIT, "Traces listed (default 100, or `query.searchDepth`)."), fmt])},
    }


def _alerting_paths() -> dict:
    """Routes of ``alerts_api``: alert rules, their state and history (schemas inline)."""
    tags = ["Alerting"]
    when = {"type": ["string", "null"], "format": "date-time", "examples": ["2024-01-02T03:04:05.123Z"]}
    duration = {"type": ["string", "number"],
                "description": "text such as `30s`, `5m`, `1h30m`, `1d`, `250ms`, or a number of seconds",
                "examples": ["5m", "30s", "1h", 90]}
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    rule_id = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", "examples": ["checkout-errors"]}
    maybe_num = {"type": ["number", "null"]}
    maybe_text = {"type": ["string", "null"]}
    props = {
        "id": {**rule_id, "description": "absent on POST: one is made up (`rule-` and 12 hex digits)"},
        "name": {"type": "string", "minLength": 1, "maxLength": alerts.MAX_TEXT,
                 "description": "the alert's name (label `alertname`)"},
        "type": {"type": "string", "enum": list(alerts.RULE_TYPES)},
        "service": {"type": "string", "minLength": 1, "maxLength": alerts.MAX_TEXT},
        "operation": {**maybe_text, "description": "only this span name (null: every operation)"},
        "kind": {"type": ["string", "null"], "enum": [*KINDS, None], "description": "only this span kind"},
        "threshold": {**maybe_num, "description": "error_rate: a ratio 0..1; latency: milliseconds; "
                                                  "throughput_drop: calls per second"},
        "quantile": {**maybe_num, "minimum": 0, "maximum": 1,
                     "description": "latency and latency_spike (default 0.95)"},
        "factor": {**maybe_num, "minimum": 1, "description": "latency_spike: fire above factor × the baseline"},
        "fraction": {**maybe_num, "minimum": 0, "maximum": 1,
                     "description": "throughput_drop: fire below fraction × the baseline's rate"},
        "baseline": {**maybe_text, "examples": ["previous", "1d", "7d"],
                     "description": "`previous` (the `baselineWindow` just before the window, the default) "
                                    "or an offset: the same window that long ago"},
        "baselineWindow": {"type": ["string", "number", "null"], "description": "with baseline `previous` "
                                                                                "(default 1h)"},
        "window": {**duration, "description": "the evaluation window (default 5m; at least analytics.bucket_s, "
                                              "at most 24h)"},
        "for": {**duration, "description": "how long the condition must hold before firing (default 0: at once)"},
        "minCalls": {"type": ["integer", "null"], "minimum": 1,
                     "description": "fewer calls in the window (or baseline): the condition is false (default 1)"},
        "labels": {**strings, "description": "added to the alert's labels (`severity` defaults to warning)"},
        "annotations": {**strings, "description": "added to (or replacing) the alert's annotations"},
        "webhooks": _array({"type": "string", "description": "an http or https URL"},
                           maxItems=alerts.MAX_WEBHOOKS, description="empty: `alerting.default_webhook`"),
        "enabled": {"type": "boolean", "default": True},
    }
    rule = _obj(props, ["id", "name", "type", "service", "window", "for", "labels", "annotations", "webhooks",
                        "enabled"], "An alert rule, with every default filled in.")
    rule_in = _obj(props, ["name", "type", "service"], "An alert rule (`threshold`, `factor` or `fraction` "
                                                         "as its type needs).")
    alert = _obj({
        "ruleId": rule_id, "name": {"type": "string"}, "type": {"type": "string", "enum": list(alerts.RULE_TYPES)},
        "service": {"type": "string"}, "operation": maybe_text, "kind": maybe_text, "enabled": {"type": "boolean"},
        "state": {"type": "string", "enum": ["inactive", "pending", "firing"]},
        "since": {**when, "description": "entered this state"},
        "activeAt": {**when, "description": "the condition became true"},
        "value": {**maybe_num, "description": "last value evaluated, in `unit`"},
        "threshold": {**maybe_num, "description": "what the value was compared with"},
        "baseline": {**maybe_num, "description": "the baseline's quantile (ms) or rate (calls/s)"},
        "unit": {"type": "string", "enum": sorted(set(alerts.UNITS.values()))},
        "calls": {"type": "integer", "minimum": 0, "description": "calls in the window"},
        "lastEvaluation": when, "lastError": maybe_text,
        "exampleTraceIds": _array({"type": "string", "pattern": "^[0-9a-f]{32}$"}, maxItems=alerts.EXAMPLES),
        "lastNotification": when,
    }, ["ruleId", "name", "type", "service", "state", "since", "value", "exampleTraceIds"])
    entry = _obj({
        "time": {"type": "string", "format": "date-time"},
        "event": {"type": "string", "enum": ["transition", "notification", "rule"]},
        "ruleId": rule_id, "name": {"type": "string"},
        "from": {"type": "string", "description": "transition: inactive, pending or firing"},
        "to": {"type": "string", "description": "transition: pending, firing, resolved or inactive"},
        "value": maybe_num, "threshold": maybe_num,
        "status": {"type": "string", "enum": ["firing", "resolved"], "description": "notification"},
        "webhook": {"type": "string"}, "attempt": {"type": "integer", "minimum": 0},
        "outcome": {"type": "string", "enum": ["delivered", "retrying", "failed", "dropped", "abandoned"]},
        "httpStatus": {"type": "integer"}, "error": maybe_text,
        "action": {"type": "string", "enum": ["create", "update", "delete"], "description": "rule"},
    }, ["time", "event", "ruleId"], "One transition, notification attempt or rule change.")
    error = _json(_ref("ApiV3Error"), "A bad body or parameter; the message names the field.")
    off = _json(_ref("ApiV3Error"), "Alerting is off (`analytics.enabled` or `alerting.enabled` false).")
    missing = _json(_ref("ApiV3Error"), "No such rule.")
    rule_path = _path("rule_id", {"type": "string"}, "The rule's ID.")
    return {
        "/api/v1/alerts/rules": {
            "get": _op(tags, "listAlertRules", "Every alert rule.", {
                "200": _json(_obj({"rules": _array(rule)}, ["rules"]), "In the order they were added."),
                "503": off}),
            "post": _op(tags, "createAlertRule", "Add an alert rule.", {
                "201": _json(rule, "Added."), "400": error,
                "409": _json(_ref("ApiV3Error"), "A rule of that `id` exists."), "503": off,
            }, body=_body(rule_in, "The rule.")),
        },
        "/api/v1/alerts/rules/{rule_id}": {
            "get": _op(tags, "getAlertRule", "One alert rule.", {
                "200": _json(rule, "The rule."), "404": missing, "503": off}, [rule_path]),
            "put": _op(tags, "replaceAlertRule", "Replace an alert rule.", {
                "200": _json(rule, "Replaced; the state carries over when the condition is unchanged."),
                "400": error, "404": missing, "503": off,
            }, [rule_path], body=_body(rule_in, "The whole rule (`id`, when given, must be the path's).")),
            "delete": _op(tags, "deleteAlertRule", "Remove an alert rule (a firing alert is resolved).", {
                "200": _json(rule, "The rule removed."), "404": missing, "503": off}, [rule_path]),
        },
        "/api/v1/alerts": {"get": _op(tags, "listAlerts", "The state of every rule: inactive, pending or firing.", {
            "200": _json(_obj({"alerts": _array(alert)}, ["alerts"]), "In rule order."), "503": off})},
        "/api/v1/alerts/history": {"get": _op(
            tags, "getAlertHistory", "Transitions, notification attempts and rule changes, newest first.", {
                "200": _json(_obj({"entries": _array(entry)}, ["entries"]), "Newest first."),
                "400": error, "503": off,
            }, [_q("limit", {"type": "integer", "minimum": 1, "default": alerts_api.DEFAULT_HISTORY},
                   "Entries at most (up to `alerting.max_history`)."),
                _q("ruleId", {"type": "string", "maxLength": 128}, "Only this rule's entries.")])},
    }


# --------------------------------------------------------------------------- document


def document(sampling: bool = True, storage: bool = True) -> dict:
    """The OpenAPI 3.1 document, as a fresh JSON-ready dict; ``sampling``: the app serves the
    sampling routes (``sampling_api``; the server always does, an app built without a
    ``Sampling`` object does not); ``storage``: the app serves the storage routes
    (``storage_api``; every server that stores spans does, a null sink does not)."""
    paths = {**_operation_paths(), **_jaeger_paths(), **_zipkin_paths(), **_tempo_paths(),
             **(_sampling_paths() if sampling else {}), **(_storage_paths() if storage else {}),
             **_structure_paths(), **_correlation_paths(), **_metrics_paths(), **_alerting_paths()}
    return copy.deepcopy({  # the builders share parameter and schema dicts
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {
            "title": "Clew query API",
            "version": _version(),
            "summary": "Jaeger, Zipkin and Tempo query APIs over one trace store.",
            "description": (
                "Every route of Clew's query port (default 16686). Each API answers errors in its own "
                "shape: Jaeger v1 in its envelope (`errors: [{code, msg}]`), api_v3 as "
                "`{error: {httpCode, message}}`, Zipkin and Tempo as `{error: \"...\"}`. A route that does "
                "not exist answers 404 `{error: {httpCode: 404, message: \"no such route\"}}`."),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": _schemas()},
    })


def blueprint(config, reader, sampling: bool = True, storage: bool = True) -> Blueprint:
    bp = Blueprint("openapi", __name__)
    doc = document(sampling, storage)

    @bp.get("/api/openapi.json")
    async def openapi():
        """The OpenAPI 3.1 document of the query port."""
        return jsonify(doc)

    return bp
