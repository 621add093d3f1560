"""Query stage: the Grafana Tempo HTTP query API — trace by ID, search (tags and a TraceQL subset), tag listings.

Routes and response shapes follow Tempo's ``pkg/api`` and ``pkg/tempopb`` as Grafana's Tempo data
source reads them (``docs/api-tempo.md``).  ``/api/traces/{id}`` is shared with Jaeger and lives in
``jaeger_api``: JSON there is Jaeger's model, ``Accept: application/protobuf`` gets Tempo's.

JSON is written the way Tempo's gogo ``jsonpb`` writes its protobuf messages: camelCase names,
64-bit integers as decimal strings, 32-bit ones as numbers, zero values left out inside nested
messages.  Bad parameters get 400 with ``{"error": "<parameter>: <what is wrong>"}``.
"""
from __future__ import annotations

from google.protobuf import json_format
from quart import Blueprint, Response, jsonify, request

from collector.store.criteria import (KIND, KINDS, NAME, STATUS, STATUSES, Attr, Cond, CriteriaError,
                                      TraceQuery, all_of)
from query.ids import BadTraceId, parse_trace_id
from query.params import MAX_LIMIT, BadRequest, go_duration_ns, integer, text
from query.reading import call, traces_data, traces_data_bytes
from query.traceql import (INTRINSIC_TAGS, T_ROOT_NAME, T_ROOT_SERVICE, Selection,
                           TraceQLError, parse, parse_identifier, service_filter)

PROTOBUF = "application/protobuf"
DEFAULT_LIMIT = 20  # Tempo's default number of traces per search
DEFAULT_SPSS = 3  # Tempo's default number of spans shown per spanset
DEFAULT_TAG_VALUES = 1000  # values listed per tag when no limit is asked
NO_ROOT = "<root span not yet received>"  # Tempo's rootServiceName when the root span is missing
MAX_QUERY = 16 * 1024  # characters of a q or tags parameter
SECOND = 1_000_000_000
# Tempo's v2 tag-value types: "keyword" for the status and kind enums, "float" for doubles.
VALUE_TYPES = {"string": "string", "int": "int", "double": "float", "bool": "bool"}
# Scopes of /api/(v2/)search/tags and the store's attribute scopes they list.
TAG_SCOPES = {"span": "span", "resource": "resource", "event": "event", "link": "link",
              "instrumentation": "scope"}


def blueprint(config, reader) -> Blueprint:
    bp = Blueprint("tempo", __name__)

    @bp.errorhandler(BadRequest)
    @bp.errorhandler(CriteriaError)
    async def bad_request(exc):
        return jsonify({"error": str(exc)}), 400

    @bp.get("/api/echo")
    async def echo():
        """Liveness check Grafana's Tempo data source calls when a data source is saved."""
        return Response("echo", content_type="text/plain; charset=utf-8")

    @bp.get("/api/v2/traces/<trace_id>")
    async def trace_v2(trace_id: str):
        """One trace as Tempo's ``TraceByIDResponse``: ``{"trace": {"resourceSpans": [...]}}`` in
        protobuf JSON, or the protobuf message itself with ``Accept: application/protobuf``."""
        try:
            tid = parse_trace_id(trace_id)
        except BadTraceId as exc:
            raise BadRequest(f"traceID: {exc}") from None
        _window(request.args)  # accepted and checked; a trace is looked up whole
        q = request.args.get("q")
        if q and q.strip() not in ("{}", "{ }", "{ true }", "{true}"):
            raise BadRequest("q: filtering the spans of a trace by ID is not supported")
        if request.accept_mimetypes.best_match(["application/json", PROTOBUF]) == PROTOBUF:
            raw = await call(traces_data_bytes, reader, tid)
            if raw is None:
                return jsonify({"error": "trace not found"}), 404
            return Response(_trace_by_id_response(raw), content_type=PROTOBUF)
        data = await traces_data(reader, tid)
        if data is None:
            return jsonify({"error": "trace not found"}), 404
        return jsonify({"trace": json_format.MessageToDict(data), "metrics": {}})

    @bp.get("/api/search")
    async def search():
        """Traces matching ``q`` (TraceQL subset) or ``tags`` (logfmt), newest first."""
        args = request.args
        q = text("q", args.get("q"), max_len=MAX_QUERY)
        tags = text("tags", args.get("tags"), max_len=MAX_QUERY)
        if q is not None and tags is not None:
            raise BadRequest("q, tags: a search takes either a TraceQL query or tags, not both")
        limit = _int(args, "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)
        spss = _int(args, "spss", DEFAULT_SPSS, maximum=1000)
        start_ns, end_ns = _window(args)
        if q is not None:
            try:
                sel = parse(q)
            except TraceQLError as exc:
                raise BadRequest(f"q: invalid TraceQL query: {exc}") from None
        else:
            sel = tags_selection(tags or "")
        fields = _with_durations(sel.query_fields(), args)
        query = TraceQuery(start_min_ns=start_ns, start_max_ns=end_ns, limit=limit, **fields)
        summaries = await call(reader.find_traces, query)
        traces = [_trace_json(s, spss, spansets=q is not None, every_span=sel.span is None)
                  for s in summaries]
        return jsonify({"traces": traces, "metrics": {"completedJobs": 1, "totalJobs": 1}})

    @bp.get("/api/search/tags")
    async def tags_v1():
        """Attribute keys a search can use: span and resource keys, or one ``scope``."""
        start_ns, end_ns = _window(request.args)
        scope = _scope(request.args)
        limit = _int(request.args, "limit", None, maximum=None)
        if scope == "intrinsic":
            names = list(INTRINSIC_TAGS)
        elif scope is None:
            span, resource = await _keys(reader, ("span", "resource"), start_ns, end_ns)
            names = sorted(set(span) | set(resource))
        else:
            (names,) = await _keys(reader, (TAG_SCOPES[scope],), start_ns, end_ns)
        return jsonify({"tagNames": names[:limit] if limit else names})

    @bp.get("/api/v2/search/tags")
    async def tags_v2():
        """Attribute keys per TraceQL scope: span, resource and intrinsic, or the one ``scope`` asked."""
        start_ns, end_ns = _window(request.args)
        scope = _scope(request.args)
        limit = _int(request.args, "limit", None, maximum=None)
        wanted = ("span", "resource", "intrinsic") if scope is None else (scope,)
        attr_scopes = [s for s in wanted if s != "intrinsic"]
        keys = dict(zip(attr_scopes, await _keys(reader, [TAG_SCOPES[s] for s in attr_scopes],
                                                  start_ns, end_ns)))
        scopes = []
        for s in wanted:
            names = list(INTRINSIC_TAGS) if s == "intrinsic" else keys[s]
            scopes.append({"name": s, "tags": names[:limit] if limit else names})
        return jsonify({"scopes": scopes})

    @bp.get("/api/search/tag/<tag>/values")
    async def tag_values_v1(tag: str):
        """Values of a tag (a plain attribute key, span or resource; ``name`` lists span names too)."""
        start_ns, end_ns = _window(request.args)
        limit = _int(request.args, "limit", DEFAULT_TAG_VALUES, maximum=MAX_LIMIT)
        if not tag or len(tag) > 1024:
            raise BadRequest("tagName: must be 1 to 1024 characters")
        values = {v for v, _t in await call(reader.tag_values, Attr("spanlike", tag), None,
                                            start_ns, end_ns, limit)}
        if tag == "name":
            values.update(await _span_names(reader, start_ns, end_ns))
        return jsonify({"tagValues": sorted(values)[:limit]})

    @bp.get("/api/v2/search/tag/<tag>/values")
    async def tag_values_v2(tag: str):
        """Typed values of a TraceQL attribute or intrinsic, optionally narrowed by ``q``'s service."""
        start_ns, end_ns = _window(request.args)
        limit = _int(request.args, "limit", DEFAULT_TAG_VALUES, maximum=MAX_LIMIT)
        try:
            ident = parse_identifier(tag)
        except TraceQLError as exc:
            raise BadRequest(f"tagName: {exc.message}") from None
        service = service_filter(text("q", request.args.get("q"), max_len=MAX_QUERY))
        if isinstance(ident, Attr):
            rows = await call(reader.tag_values, ident, service, start_ns, end_ns, limit)
            values = sorted({(VALUE_TYPES.get(t, "string"), v) for v, t in rows}, key=lambda r: (r[1], r[0]))
        elif ident == STATUS:
            values = [("keyword", s) for s in STATUSES]
        elif ident == KIND:
            values = [("keyword", k) for k in KINDS]
        elif ident in (NAME, T_ROOT_NAME):
            values = [("string", n) for n in sorted(await _span_names(reader, start_ns, end_ns, service))]
        elif ident == T_ROOT_SERVICE:
            values = [("string", s) for s in await call(reader.services, start_ns, end_ns)]
        else:  # duration, trace:duration: not listed, as in Tempo
            values = []
        return jsonify({"tagValues": [{"type": t, "value": v} for t, v in values[:limit]]})

    return bp


# --------------------------------------------------------------------------- parameters


def _int(args, name: str, default, *, maximum):
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    return integer(name, raw, minimum=1, maximum=maximum)


def _window(args) -> tuple[int | None, int | None]:
    """``start``/``end`` (unix seconds) as inclusive epoch-nanosecond bounds; ``end`` covers its whole second."""
    start = end = None
    if args.get("start"):
        start = integer("start", args["start"], minimum=0, maximum=2**32 - 1)
    if args.get("end"):
        end = integer("end", args["end"], minimum=0, maximum=2**32 - 1)
    if start and end and end <= start:
        raise BadRequest(f"end: must be after start (start={start}, end={end})")
    return (start * SECOND if start else None,
            (end + 1) * SECOND - 1 if end else None)


def _scope(args) -> str | None:
    scope = args.get("scope") or None
    if scope in (None, "all"):
        return None
    if scope != "intrinsic" and scope not in TAG_SCOPES:
        raise BadRequest(f"scope: {scope[:40]!r} is not one of resource, span, intrinsic, event, link, "
                         "instrumentation, all")
    return scope


def _with_durations(fields: dict, args) -> dict:
    """``minDuration``/``maxDuration`` (Go durations, inclusive) narrow the trace-duration bounds."""
    lo = go_duration_ns("minDuration", args["minDuration"]) if args.get("minDuration") else None
    hi = go_duration_ns("maxDuration", args["maxDuration"]) if args.get("maxDuration") else None
    if lo is not None and hi is not None and lo > hi:
        raise BadRequest("maxDuration: must not be less than minDuration")
    if lo is not None:
        cur = fields["trace_min_duration_ns"]
        fields["trace_min_duration_ns"] = lo if cur is None else max(cur, lo)
    if hi is not None:
        cur = fields["trace_max_duration_ns"]
        fields["trace_max_duration_ns"] = hi if cur is None else min(cur, hi)
    return fields


# --------------------------------------------------------------------------- tags (logfmt) search


def tags_selection(raw: str) -> Selection:
    """The selection a logfmt ``tags`` parameter asks for: every pair holds on one span.

    ``name`` is the span name, ``status.code`` the span status, ``root.service.name`` and
    ``root.name`` test the root span; any other key is an attribute of the span or its resource.
    Values are matched exactly (by string form, so ``http.status_code=500`` finds the integer).
    """
    conds, root_service, root_name = [], None, None
    for key, value in parse_logfmt(raw):
        if key == "name":
            conds.append(Cond(NAME, "=", value))
        elif key == "status.code":
            if value not in STATUSES:
                raise BadRequest(f"tags: status.code is one of {', '.join(STATUSES)}, not {value[:40]!r}")
            conds.append(Cond(STATUS, "=", value))
        elif key == "root.service.name":
            root_service = value
        elif key == "root.name":
            root_name = value
        else:
            conds.append(Cond(Attr("spanlike", key), "=", value))
    return Selection(span=all_of(*conds), root_service=root_service, root_name=root_name)


def parse_logfmt(raw: str) -> list[tuple[str, str]]:
    """``key=value`` pairs of a logfmt string as go-logfmt reads them (values may be double-quoted)."""
    pairs, seen, i, n = [], set(), 0, len(raw)
    while True:
        while i < n and raw[i] <= " ":
            i += 1
        if i >= n:
            return pairs
        start = i
        while i < n and raw[i] > " " and raw[i] not in '="':
            i += 1
        if i == start:
            raise BadRequest(f"tags: unexpected {raw[i]!r} at position {i + 1}")
        key = raw[start:i]
        if i >= n or raw[i] != "=":
            if i < n and raw[i] == '"':
                raise BadRequest(f"tags: unexpected '\"' at position {i + 1}")
            raise BadRequest(f"tags: tag {key[:40]!r} has no value (write key=value)")
        i += 1
        if i < n and raw[i] == '"':
            value, i = _logfmt_quoted(raw, i)
        else:
            vstart = i
            while i < n and raw[i] > " ":
                if raw[i] in '="':
                    raise BadRequest(f"tags: unexpected {raw[i]!r} at position {i + 1}")
                i += 1
            value = raw[vstart:i]
        if value == "":
            raise BadRequest(f"tags: tag {key[:40]!r} has no value (write key=value)")
        if key in seen:
            raise BadRequest(f"tags: tag {key[:40]!r} has been set twice")
        seen.add(key)
        pairs.append((key, value))


def _logfmt_quoted(raw: str, i: int) -> tuple[str, int]:
    out, j = [], i + 1
    escapes = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
    while j < len(raw):
        c = raw[j]
        if c == '"':
            return "".join(out), j + 1
        if c == "\\":
            e = raw[j + 1:j + 2]
            if e in escapes and e:
                out.append(escapes[e])
                j += 2
                continue
            if e == "u" and len(raw) >= j + 6:
                try:
                    out.append(chr(int(raw[j + 2:j + 6], 16)))
                    j += 6
                    continue
                except ValueError:
                    pass
            raise BadRequest(f"tags: invalid escape at position {j + 1}")
        out.append(c)
        j += 1
    raise BadRequest(f"tags: quoted value starting at position {i + 1} is not terminated")


# --------------------------------------------------------------------------- responses


def _trace_json(s, spss: int, *, spansets: bool, every_span: bool) -> dict:
    """A ``TraceSearchMetadata`` for one summary (TraceQL searches carry the matched spanset)."""
    out = {"traceID": _tempo_trace_id(s.trace_id),
           "rootServiceName": s.root_service or NO_ROOT}
    if s.root_name:
        out["rootTraceName"] = s.root_name
    out["startTimeUnixNano"] = str(s.start_ns)
    out["durationMs"] = max(0, s.end_ns - s.start_ns) // 1_000_000
    if spansets:
        shown = sorted(s.matched, key=lambda m: (m.start_ns, m.span_id))[:spss]
        spanset = {"spans": [_span_json(m) for m in shown],
                   "matched": s.span_count if every_span else len(s.matched)}
        out["spanSet"] = spanset
        out["spanSets"] = [spanset]
    stats = {}
    for service, (spans, errors) in sorted(s.services.items()):
        stats[service] = {"spanCount": spans, **({"errorCount": errors} if errors else {})}
    out["serviceStats"] = stats
    return out


def _span_json(m) -> dict:
    return {"spanID": m.span_id.hex().lstrip("0").rjust(16, "0"), "name": m.name,
            "startTimeUnixNano": str(m.start_ns), "durationNanos": str(m.duration_ns),
            "attributes": [{"key": "service.name", "value": {"stringValue": m.service}}]}


def _tempo_trace_id(tid: bytes) -> str:
    """Tempo writes trace IDs in hex without leading zeros (``util.TraceIDToHexString``)."""
    return tid.hex().lstrip("0")


def _trace_by_id_response(traces_data: bytes) -> bytes:
    """``tempopb.TraceByIDResponse{trace: 1}``: ``Trace`` and ``TracesData`` share one wire layout."""
    out = bytearray(b"\x0a")
    n = len(traces_data)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + traces_data


async def _keys(reader, scopes, start_ns, end_ns) -> list[list[str]]:
    return [await call(reader.tag_keys, s, start_ns, end_ns) for s in scopes]


async def _span_names(reader, start_ns, end_ns, service=None) -> set[str]:
    return {name for name, _kind in await call(reader.operations, service, None, start_ns, end_ns)}
