"""Query stage: the Jaeger HTTP APIs — classic v1 (``/api/...``, the Jaeger UI model) and api_v3 (OTLP/JSON).

Both are thin translations into the store's search model (``collector/store/criteria.py``) and
its ``SpanSearcher`` listings; ``docs/api-jaeger.md`` documents every route, parameter and
extension.  The parsing is kept in pure functions (``classic_search``, ``v3_search``,
``tag_condition``…) so it can be tested without a server.

* Classic routes answer inside Jaeger's envelope ``{"data", "total", "limit", "offset",
  "errors"}`` (``query.jaeger.envelope``); a bad parameter is a 400 whose ``errors`` holds
  ``{"code": 400, "msg"}``, as Jaeger's ``handleError`` writes it.
* api_v3 routes answer as Jaeger's grpc-gateway does: ``{"result": TracesData}``,
  ``{"services"}``, ``{"operations"}``, ``{"summaries"}``; errors are
  ``{"error": {"httpCode", "message"}}``.
"""
from __future__ import annotations

import json
import math
import time

from opentelemetry.proto.trace.v1 import trace_pb2
from quart import Blueprint, Response, jsonify, request

from collector.codec.otlp_json import traces_to_json
from collector.store.criteria import (
    DURATION, KIND, KINDS, NAME, SERVICE, STATUS, Attr, Cond, CriteriaError, TraceQuery, all_of)
from query.ids import BadTraceId, parse_trace_id
from query.jaeger import envelope, to_jaeger_trace
from query.params import MAX_LIMIT, BadRequest, go_duration_ns, integer, rfc3339_ns, text
from query.reading import call, traces_data, traces_data_bytes

__all__ = ["blueprint", "classic_search", "v3_search", "tag_condition", "parse_tag_param",
           "parse_tags_json", "DEFAULT_LIMIT"]

PROTOBUF = "application/protobuf"
DEFAULT_LIMIT = 100  # Jaeger's default for classic `limit` and api_v3 `query.searchDepth`
DEFAULT_LOOKBACK_NS = 2 * 86_400 * 10**9  # classic search window without `start` (Jaeger: 2 days)
DEPENDENCY_LOOKBACK_MS = 86_400_000  # classic `/api/dependencies` default `lookback` (Jaeger: 24 h)
MAX_KEY_LEN = 256
MAX_VALUE_LEN = 4096
_MAX_NS = 2**63 - 1
_MAX_US = _MAX_NS // 1000  # epoch microseconds that still fit in int64 nanoseconds
_MAX_MS = (2**63 - 1) // 1_000_000

TAG_OPS = ("=", "!=", "=~", "!~", "exists")
_TAG_TOKENS = (":", "!=", "=~", "!~")  # in a `tag=` value; the earliest one splits key and value
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_STATUS_KEYS = ("span.status", "otel.status_code")
_RESOURCE_PREFIX = "resource."


# --------------------------------------------------------------------------- tags → conditions


def tag_condition(key: str, op: str, value: str | None = None) -> Cond:
    """One tag condition (see ``_tag_condition``); a condition the search model refuses (a bad
    regular expression, an unknown kind) is a ``BadRequest`` naming the tag."""
    try:
        return _tag_condition(key, op, value)
    except CriteriaError as exc:
        raise BadRequest(f"tag {key!r}: {exc}") from None


def _tag_condition(key: str, op: str, value: str | None) -> Cond:
    """One tag condition as a ``Cond`` on one span, with the keys Jaeger treats specially.

    * ``error`` with ``=``/``!=`` and ``true``/``false``: the span status is (not) ERROR — every
      receiver turns an ``error`` tag into the status, as the OTel Collector does.
    * ``span.kind`` with any operator but ``exists``: the span kind (``server``, ``client``…).
    * ``span.status`` / ``otel.status_code`` likewise: the span status (``ok``, ``error``,
      ``unset``; case-insensitive for ``=``/``!=``).
    * ``resource.<key>``: the resource attribute ``<key>`` only.
    * Anything else: the attribute in any spot of the span (span, resource, scope, events,
      links), compared by its string form.
    """
    if not key:
        raise BadRequest("tag: the key must not be empty")
    if len(key) > MAX_KEY_LEN:
        raise BadRequest(f"tag: key longer than {MAX_KEY_LEN} characters")
    if op not in TAG_OPS:
        raise BadRequest(f"tag {key!r}: unknown operator {op!r}; one of {', '.join(TAG_OPS)}")
    if op != "exists":
        if value is None:
            raise BadRequest(f"tag {key!r}: operator {op} needs a value")
        if len(value) > MAX_VALUE_LEN:
            raise BadRequest(f"tag {key!r}: value longer than {MAX_VALUE_LEN} characters")
    if key == "error" and op in ("=", "!="):
        if value not in ("true", "false"):
            raise BadRequest(f"tag error: {value!r} is not true or false")
        wants_error = (value == "true") == (op == "=")
        return Cond(STATUS, "=" if wants_error else "!=", "error")
    if op != "exists":
        plain = op in ("=", "!=")
        if key == "span.kind":
            return Cond(KIND, op, value.lower() if plain else value)
        if key in _STATUS_KEYS:
            return Cond(STATUS, op, value.lower() if plain else value)
    if key.startswith(_RESOURCE_PREFIX) and len(key) > len(_RESOURCE_PREFIX):
        return Cond(Attr("resource", key[len(_RESOURCE_PREFIX):]), op, value)
    return Cond(Attr("any", key), op, value)


def parse_tag_param(raw: str) -> Cond:
    """A classic ``tag=`` value: ``key:value`` (Jaeger's equality), ``key!=value``,
    ``key=~regex``, ``key!~regex``, or a bare ``key`` (the attribute exists).

    The earliest of ``:``, ``!=``, ``=~``, ``!~`` ends the key, so values may hold any of them.
    """
    best = None
    for token in _TAG_TOKENS:
        at = raw.find(token)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, token)
    if best is None:
        return tag_condition(raw, "exists")
    at, token = best
    return tag_condition(raw[:at], "=" if token == ":" else token, raw[at + len(token):])


def _scalar(name: str, key: str, value) -> str:
    """A JSON tag value as the string Jaeger compares: ``123``, ``72.5``, ``true``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    raise BadRequest(f"{name}: the value of {key!r} must be a string, number, boolean or "
                     '{"op": ..., "value": ...}')


def parse_tags_json(name: str, raw: str) -> list[Cond]:
    """A JSON object of tag conditions (classic ``tags``, api_v3 ``query.attributes``).

    A value is a string (equality, as Jaeger), a number or boolean (equality on its string
    form), or ``{"op": "=|!=|=~|!~|exists", "value": ...}``.
    """
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"{name}: not a JSON object: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"{name}: must be a JSON object such as {{\"http.method\":\"GET\"}}")
    conds = []
    for key, value in doc.items():
        if isinstance(value, dict):
            unknown = set(value) - {"op", "value"}
            if unknown:
                raise BadRequest(f"{name}: {key!r} has unknown fields {sorted(unknown)}; use op and value")
            op = value.get("op", "=")
            if not isinstance(op, str):
                raise BadRequest(f"{name}: the op of {key!r} must be a string")
            operand = None
            if op != "exists":
                if "value" not in value:
                    raise BadRequest(f"{name}: {key!r} with op {op} needs a value")
                operand = _scalar(name, key, value["value"])
        else:
            op, operand = "=", _scalar(name, key, value)
        try:
            conds.append(tag_condition(key, op, operand))
        except BadRequest as exc:
            raise BadRequest(f"{name}: {exc}") from None
    return conds


# --------------------------------------------------------------------------- parameter helpers


def _one(args, name: str) -> str | None:
    """The first non-empty value of a query parameter (Go's ``url.Values.Get``, empty = absent)."""
    raw = args.get(name)
    return None if raw is None or raw == "" else raw


def _first(args, *names: str) -> tuple[str | None, str]:
    """The first of several parameter names (canonical first, then deprecated aliases) that is set."""
    for name in names:
        raw = _one(args, name)
        if raw is not None:
            return raw, name
    return None, names[0]


def _go_bool(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    if raw in _GO_TRUE:
        return True
    if raw in _GO_FALSE:
        return False
    raise BadRequest(f"{name}: {raw!r} is not a boolean (true or false)")


def _duration(name: str, raw: str) -> int:
    ns = go_duration_ns(name, raw)
    if ns > _MAX_NS:  # Go's time.Duration is int64 nanoseconds (about 292 years)
        raise BadRequest(f"{name}: {raw!r} is longer than a Go duration can be")
    return ns


def _duration_bounds(lo_name, lo_raw, hi_name, hi_raw) -> tuple[int | None, int | None]:
    """Two Go durations as inclusive bounds in ns; 0 or absent is no bound (Jaeger)."""
    lo = _duration(lo_name, lo_raw) if lo_raw is not None else 0
    hi = _duration(hi_name, hi_raw) if hi_raw is not None else 0
    if lo and hi and hi < lo:
        raise BadRequest(f"{hi_name} must not be less than {lo_name}")
    return lo or None, hi or None


def _lookback_ns(raw: str) -> int:
    """A lookback as the Jaeger UI writes it (``1h``, ``2d``, ``2w``) or any Go duration."""
    s = raw.strip()
    for unit, seconds in (("d", 86_400), ("w", 7 * 86_400)):
        if s.endswith(unit) and s[:-1].isdigit():
            return int(s[:-1]) * seconds * 10**9
    return go_duration_ns("lookback", s)


def _span_expr(service, operation, min_ns, max_ns, tags) -> object:
    return all_of(
        Cond(SERVICE, "=", service) if service is not None else None,
        Cond(NAME, "=", operation) if operation is not None else None,
        Cond(DURATION, ">=", min_ns) if min_ns is not None else None,
        Cond(DURATION, "<=", max_ns) if max_ns is not None else None,
        *tags)


def _kind_param(name: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    kind = raw.lower()
    if kind not in KINDS:
        raise BadRequest(f"{name}: {raw!r} is not one of {', '.join(KINDS)}")
    return kind


# --------------------------------------------------------------------------- search parsing


def classic_search(args, now_ns: int | None = None) -> tuple[TraceQuery | None, list[bytes]]:
    """Classic ``/api/traces`` parameters → (search, trace IDs asked for by ``traceID``).

    With ``traceID`` parameters the search is ``None``: those traces are fetched as they are.
    """
    trace_ids = []
    for raw in args.getlist("traceID"):
        try:
            trace_ids.append(parse_trace_id(raw))
        except BadTraceId as exc:
            raise BadRequest(f"traceID: {exc}") from None
    now_ns = time.time_ns() if now_ns is None else now_ns
    service = text("service", args.get("service"))
    operation = text("operation", args.get("operation"))
    end_raw, start_raw, lookback = _one(args, "end"), _one(args, "start"), _one(args, "lookback")
    end_ns = integer("end", end_raw, minimum=0, maximum=_MAX_US) * 1000 if end_raw is not None else now_ns
    if start_raw is not None:
        start_ns = integer("start", start_raw, minimum=0, maximum=_MAX_US) * 1000
    elif lookback is not None and lookback != "custom":
        start_ns = max(0, end_ns - _lookback_ns(lookback))
    else:
        start_ns = max(0, end_ns - DEFAULT_LOOKBACK_NS)
    if start_ns > end_ns:
        raise BadRequest("start must not be after end")
    limit_raw = _one(args, "limit")
    limit = integer("limit", limit_raw, minimum=1, maximum=MAX_LIMIT) if limit_raw is not None else DEFAULT_LIMIT
    min_ns, max_ns = _duration_bounds("minDuration", _one(args, "minDuration"),
                                      "maxDuration", _one(args, "maxDuration"))
    trace_min, trace_max = _duration_bounds("minTraceDuration", _one(args, "minTraceDuration"),
                                            "maxTraceDuration", _one(args, "maxTraceDuration"))
    _go_bool("raw", _one(args, "raw"))
    tags = [parse_tag_param(raw) for raw in args.getlist("tag")]
    for raw in args.getlist("tags"):
        if raw:
            tags.extend(parse_tags_json("tags", raw))
    if trace_ids:
        return None, trace_ids
    query = TraceQuery(span=_span_expr(service, operation, min_ns, max_ns, tags),
                       start_min_ns=start_ns, start_max_ns=end_ns,
                       trace_min_duration_ns=trace_min, trace_max_duration_ns=trace_max, limit=limit)
    return query, []


def v3_search(args) -> TraceQuery:
    """api_v3 ``query.*`` parameters (camelCase, with Jaeger's deprecated snake_case aliases) → search."""
    service = text("query.serviceName", _first(args, "query.serviceName", "query.service_name")[0])
    operation = text("query.operationName", _first(args, "query.operationName", "query.operation_name")[0])
    tmin, tmin_name = _first(args, "query.startTimeMin", "query.start_time_min")
    tmax, tmax_name = _first(args, "query.startTimeMax", "query.start_time_max")
    if tmin is None or tmax is None:
        raise BadRequest("query.startTimeMin and query.startTimeMax are required")
    start_ns, end_ns = rfc3339_ns(tmin_name, tmin), rfc3339_ns(tmax_name, tmax)
    if start_ns >= end_ns:
        raise BadRequest("query.startTimeMin must be before query.startTimeMax")
    depth, depth_name = _first(args, "query.searchDepth", "query.search_depth", "query.num_traces")
    limit = integer(depth_name, depth, minimum=1, maximum=MAX_LIMIT) if depth is not None else DEFAULT_LIMIT
    dmin, dmin_name = _first(args, "query.durationMin", "query.duration_min")
    dmax, dmax_name = _first(args, "query.durationMax", "query.duration_max")
    min_ns, max_ns = _duration_bounds(dmin_name, dmin, dmax_name, dmax)
    trace_min, trace_max = _duration_bounds(
        "query.traceDurationMin", _one(args, "query.traceDurationMin"),
        "query.traceDurationMax", _one(args, "query.traceDurationMax"))
    raw, raw_name = _first(args, "query.rawTraces", "query.raw_traces")
    _go_bool(raw_name, raw)
    tags = []
    attributes = _one(args, "query.attributes")
    if attributes is not None:
        tags = parse_tags_json("query.attributes", attributes)
    return TraceQuery(span=_span_expr(service, operation, min_ns, max_ns, tags),
                      start_min_ns=start_ns, start_max_ns=end_ns,
                      trace_min_duration_ns=trace_min, trace_max_duration_ns=trace_max, limit=limit)


# --------------------------------------------------------------------------- store calls (worker thread)


def _found_traces(reader, query: TraceQuery) -> list[bytes]:
    """Serialized ``TracesData`` of every trace the search finds, whole, newest first."""
    out = []
    for summary in reader.find_traces(query):
        # the searcher already read the trace to count its services: reuse it
        raw = (summary.trace.to_traces_data() if summary.trace is not None
               else traces_data_bytes(reader, summary.trace_id))
        if raw is not None:  # gone between the search and the read (retention)
            out.append(raw)
    return out


def _rendered_traces(reader, query: TraceQuery) -> list[dict]:
    """The found traces in the Jaeger UI model (rendered in the worker thread, off the loop)."""
    return [to_jaeger_trace(trace_pb2.TracesData.FromString(r)) for r in _found_traces(reader, query)]


def _traces_by_id(reader, trace_ids: list[bytes]) -> list[tuple[bytes, bytes | None]]:
    return [(tid, traces_data_bytes(reader, tid)) for tid in trace_ids]


def _summary_json(s) -> dict:
    """One ``TraceSummary`` as api_v3's trace summary (fields as Jaeger's snapshot, keys sorted)."""
    services = [{"errorSpanCount": counts[1], "name": name, "spanCount": counts[0]}
                for name, counts in sorted(s.services.items())]
    return {
        "errorSpanCount": s.error_count,
        "maxEndTimeUnixNano": str(s.end_ns),
        "minStartTimeUnixNano": str(s.start_ns),
        "rootOperationName": s.root_name,
        "rootServiceName": s.root_service,
        "services": services,
        "spanCount": s.span_count,
        "traceId": s.trace_id.rjust(16, b"\0").hex(),
    }


def _otlp_json(msg) -> dict:
    """OTLP/JSON of a ``TracesData`` as Jaeger's gateway writes it: ``resource``, ``scope`` and
    each span's ``status`` are always present (``{}`` when empty), as in its snapshots."""
    return traces_to_json(msg, always_containers=True)


def _jaeger_trace_hex(tid: bytes) -> str:
    return tid[8:].hex() if tid[:8] == bytes(8) else tid.hex()


# --------------------------------------------------------------------------- blueprint


def blueprint(config, reader) -> Blueprint:
    bp = Blueprint("jaeger", __name__)

    def error(code: int, message: str):
        if request.path.startswith("/api/v3/"):
            return jsonify({"error": {"httpCode": code, "message": message}}), code
        return jsonify(envelope(None, [{"code": code, "msg": message}])), code

    @bp.errorhandler(BadRequest)
    async def bad_request(exc):
        return error(400, str(exc))

    @bp.errorhandler(CriteriaError)
    async def bad_criteria(exc):
        return error(400, str(exc))

    @bp.errorhandler(BadTraceId)
    async def bad_trace_id(exc):
        return error(400, str(exc))

    # ------------------------------------------------------------------ classic v1

    @bp.get("/api/services")
    async def services():
        """Every service name, sorted; ``total`` is their count (as Jaeger sets it)."""
        names = await call(reader.services)
        return jsonify(envelope(names, total=len(names)))

    @bp.get("/api/services/<path:service>/operations")
    async def service_operations(service: str):
        """The operation names of one service, every span kind, sorted (the UI's older call)."""
        pairs = await call(reader.operations, service)
        names = sorted({name for name, _kind in pairs})
        return jsonify(envelope(names, total=len(names)))

    @bp.get("/api/operations")
    async def operations():
        """``[{"name", "spanKind"}]`` of a service (every service without ``service``);
        ``spanKind`` narrows to one kind; an unspecified kind is written ``""`` as Jaeger does."""
        service = text("service", request.args.get("service"))
        kind = _kind_param("spanKind", _one(request.args, "spanKind"))
        pairs = await call(reader.operations, service, kind)
        data = [{"name": name, "spanKind": "" if k == "unspecified" else k}
                for name, k in sorted(set(pairs))]
        return jsonify(envelope(data, total=len(data)))

    @bp.get("/api/traces")
    async def search():
        """Traces matching the search, each whole, in the Jaeger UI model, newest first."""
        query, trace_ids = classic_search(request.args)
        if query is None:
            found = await call(_traces_by_id, reader, trace_ids)
            data, errors = [], []
            for tid, raw in found:
                if raw is None:
                    errors.append({"msg": "trace not found", "traceID": _jaeger_trace_hex(tid)})
                else:
                    data.append(to_jaeger_trace(trace_pb2.TracesData.FromString(raw)))
            return jsonify(envelope(data, errors or None))
        rendered = await call(_rendered_traces, reader, query)
        return jsonify(envelope(rendered))

    @bp.get("/api/traces/<trace_id>")
    async def jaeger_trace(trace_id: str):
        """One trace in the Jaeger UI JSON model, inside the Jaeger API envelope.

        Tempo's clients (Grafana) ask the same path with ``Accept: application/protobuf``; they
        get the OTLP ``TracesData`` protobuf, as Tempo answers."""
        tid = parse_trace_id(trace_id)
        for name in ("start", "end"):  # accepted as Jaeger does; the store needs no window
            if _one(request.args, name) is not None:
                integer(name, request.args[name], minimum=0, maximum=_MAX_US)
        _go_bool("raw", _one(request.args, "raw"))
        if request.accept_mimetypes.best_match(["application/json", PROTOBUF]) == PROTOBUF:
            raw = await call(traces_data_bytes, reader, tid)
            if raw is None:
                return Response(b"trace not found", 404, content_type="text/plain")
            return Response(raw, content_type=PROTOBUF)
        data = await traces_data(reader, tid)
        if data is None:
            return error(404, "trace not found")
        return jsonify(envelope([to_jaeger_trace(data)]))

    @bp.get("/api/dependencies")
    async def dependencies():
        """``[{"parent", "child", "callCount", "errorCount"}]`` from spans whose parent span is in
        another service, over spans that started in ``[endTs − lookback, endTs]`` (milliseconds);
        ``errorCount`` (Clew's addition) counts the child spans whose status is error."""
        end_raw, lookback_raw = _one(request.args, "endTs"), _one(request.args, "lookback")
        end_ms = (integer("endTs", end_raw, minimum=0, maximum=_MAX_MS) if end_raw is not None
                  else time.time_ns() // 1_000_000)
        lookback_ms = (integer("lookback", lookback_raw, minimum=0, maximum=_MAX_MS)
                       if lookback_raw is not None else DEPENDENCY_LOOKBACK_MS)
        service = text("service", request.args.get("service"))
        start_ns = max(0, end_ms - lookback_ms) * 1_000_000
        rows = await call(reader.dependencies, start_ns, end_ms * 1_000_000)
        data = [{"parent": parent, "child": child, "callCount": count, "errorCount": failed}
                for parent, child, count, failed in rows
                if service is None or service in (parent, child)]
        return jsonify(envelope(data))

    # ------------------------------------------------------------------ api_v3

    @bp.get("/api/v3/services")
    async def v3_services():
        """``{"services": [...]}``, sorted."""
        return jsonify({"services": await call(reader.services)})

    @bp.get("/api/v3/operations")
    async def v3_operations():
        """``{"operations": [{"name", "spanKind"}]}``; an unspecified kind is written
        ``internal``, as Jaeger's api_v3 gateway does."""
        service = text("service", request.args.get("service"))
        raw, name = _first(request.args, "spanKind", "span_kind")
        kind = _kind_param(name, raw)
        pairs = await call(reader.operations, service, kind)
        ops = sorted({(n, "internal" if k == "unspecified" else k) for n, k in pairs})
        return jsonify({"operations": [{"name": n, "spanKind": k} for n, k in ops]})

    @bp.get("/api/v3/traces")
    async def v3_search_traces():
        """Every matching trace, whole, in one OTLP/JSON ``TracesData`` (newest first);
        404 ``No traces found`` when there is none, as Jaeger answers."""
        query = v3_search(request.args)
        raws = await call(_found_traces, reader, query)
        if not raws:
            return error(404, "No traces found")
        # Concatenated TracesData messages are one TracesData holding all their resource spans.
        combined = trace_pb2.TracesData.FromString(b"".join(raws))
        return jsonify({"result": _otlp_json(combined)})

    @bp.get("/api/v3/trace-summaries")
    async def v3_summaries():
        """``{"summaries": [...]}`` for the same ``query.*`` parameters, newest first."""
        query = v3_search(request.args)
        found = await call(reader.find_traces, query)
        return jsonify({"summaries": [_summary_json(s) for s in found]})

    @bp.get("/api/v3/traces/<trace_id>")
    async def v3_trace(trace_id: str):
        """One trace as OTLP/JSON, as Jaeger's api_v3 HTTP gateway answers."""
        tid = parse_trace_id(trace_id)
        for names in (("startTime", "start_time"), ("endTime", "end_time")):
            raw, name = _first(request.args, *names)
            if raw is not None:  # accepted as Jaeger does; the store needs no window
                rfc3339_ns(name, raw)
        raw, name = _first(request.args, "rawTraces", "raw_traces")
        _go_bool(name, raw)
        data = await traces_data(reader, tid)
        if data is None:
            return error(404, "trace not found")
        return jsonify({"result": _otlp_json(data)})

    return bp
