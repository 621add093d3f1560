"""Query stage: the Zipkin v2 query API (``/api/v2/...``), as Zipkin Lens and Grafana's Zipkin data source call it.

Routes (each also under ``/zipkin/api/v2/...``, the path a Zipkin server behind a proxy often
has): ``services``, ``spans``, ``remoteServices``, ``traces``, ``trace/{traceId}``,
``traceMany``, ``dependencies``, ``autocompleteKeys``, ``autocompleteValues``.  Response shapes
are those of ``zipkin2-api.yaml``; spans are rendered by ``query/zipkin.py``.  A bad parameter
gets 400 with ``{"error": "<what is wrong>"}``; an unknown trace 404 with the same shape.
``docs/api-zipkin.md`` states every choice made where Zipkin's spec is silent.
"""
from __future__ import annotations

import re
import time

from opentelemetry.proto.trace.v1 import trace_pb2
from quart import Blueprint, jsonify, request

from collector.store.criteria import (DURATION, NAME, SERVICE, STATUS, Attr, Cond, CriteriaError,
                                      Or, TraceQuery, all_of)
from query.ids import BadTraceId, parse_trace_id
from query.params import MAX_LIMIT, BadRequest, integer, text
from query.reading import call, traces_data_bytes
from query.zipkin import NO_SERVICE_NAMES, to_zipkin_spans

PREFIXES = ("/api/v2", "/zipkin/api/v2")
DEFAULT_LOOKBACK_MS = 86_400_000  # Zipkin's QUERY_LOOKBACK default: one day
DEFAULT_LIMIT = 10
MAX_TRACE_IDS = 1000  # IDs one traceMany request may name
PEER_SERVICE = Attr("span", "peer.service")
HIDDEN_KEYS = frozenset({
    # attributes that become Zipkin span fields, not tags: no use as annotationQuery keys
    "peer.service", "net.host.ip", "net.host.port", "net.peer.ip", "net.peer.port",
    "zipkin.shared", "zipkin.debug", "otel.zipkin.absentField.startTime",
})
MAX_US = (1 << 63) // 1000  # µs past this do not fit int64 nanoseconds


def blueprint(config, reader) -> Blueprint:
    bp = Blueprint("zipkin", __name__)

    def get(path: str):
        """Register a GET view under every prefix."""
        def register(view):
            for prefix in PREFIXES:
                bp.add_url_rule(prefix + path, view.__name__, view, methods=["GET"])
            return view
        return register

    @bp.errorhandler(BadRequest)
    @bp.errorhandler(CriteriaError)
    @bp.errorhandler(BadTraceId)
    async def bad_request(err):
        return jsonify({"error": str(err)}), 400

    @get("/services")
    async def services():
        """Every service name, sorted."""
        names = await call(reader.services)
        return jsonify(_names(names))

    @get("/spans")
    async def span_names():
        """Span names recorded by ``serviceName`` (required), sorted."""
        service = _required("serviceName")
        pairs = await call(_operations, reader, service)
        return jsonify(sorted({name for name, _kind in pairs if name}))

    @get("/remoteServices")
    async def remote_services():
        """Remote service names (``peer.service``) of ``serviceName``'s spans (required), sorted."""
        service = _required("serviceName")
        values = await call(_remote_services, reader, service)
        return jsonify(_names(values))

    @get("/traces")
    async def traces():
        """Traces with a span matching every given condition, nearest to ``endTs`` first."""
        query = search_query(request.args, now_ms=int(time.time() * 1000))
        found = await call(_search, reader, query)
        return jsonify([to_zipkin_spans(trace_pb2.TracesData.FromString(raw)) for raw in found])

    @get("/trace/<trace_id>")
    async def trace(trace_id: str):
        """One trace: its spans, or 404."""
        raw = await call(traces_data_bytes, reader, parse_trace_id(trace_id))
        if raw is None:
            return jsonify({"error": f"trace {trace_id} not found"}), 404
        return jsonify(to_zipkin_spans(trace_pb2.TracesData.FromString(raw)))

    @get("/traceMany")
    async def trace_many():
        """The stored traces among ``traceIds`` (comma-separated), in the order asked."""
        ids = trace_ids(request.args.get("traceIds"))
        found = await call(_many, reader, ids)
        return jsonify([to_zipkin_spans(trace_pb2.TracesData.FromString(raw)) for raw in found])

    @get("/dependencies")
    async def dependencies():
        """Service links ``{parent, child, callCount, errorCount}`` of spans that started in the
        window; ``errorCount`` (callee spans with status error) is written only when above 0, as
        Zipkin's encoder writes it."""
        end_ms, lookback_ms = _window(request.args, int(time.time() * 1000))
        start_ns, end_ns = _window_ns(end_ms, lookback_ms)
        links = await call(reader.dependencies, start_ns, end_ns)
        return jsonify([{"parent": p, "child": c, "callCount": n, **({"errorCount": e} if e else {})}
                        for p, c, n, e in links if p not in NO_SERVICE_NAMES and c not in NO_SERVICE_NAMES])

    @get("/autocompleteKeys")
    async def autocomplete_keys():
        """Span attribute keys (those that render as Zipkin tags), sorted."""
        keys = await call(reader.tag_keys, "span")
        return jsonify(sorted(k for k in keys if k not in HIDDEN_KEYS))

    @get("/autocompleteValues")
    async def autocomplete_values():
        """Values of the span attribute ``key`` (required), sorted."""
        key = _required("key")
        values = await call(reader.tag_values, Attr("span", key))
        return jsonify(sorted({value for value, _type in values}))

    return bp


# --------------------------------------------------------------------------- parameters


def _required(name: str) -> str:
    value = text(name, request.args.get(name))
    if value is None:
        raise BadRequest(f"{name} is required")
    return value


def _names(values) -> list[str]:
    """Sorted distinct names without the no-service placeholders (pairs give their first item)."""
    out = set()
    for v in values:
        name = v[0] if isinstance(v, tuple) else v
        if name not in NO_SERVICE_NAMES:
            out.add(name)
    return sorted(out)


def _window(args, now_ms: int) -> tuple[int, int]:
    """(endTs, lookback) in epoch ms from the parameters, with Zipkin's defaults and checks."""
    raw = args.get("endTs")
    end_ms = now_ms if raw in (None, "") else integer("endTs", raw, minimum=1)
    raw = args.get("lookback")
    lookback_ms = DEFAULT_LOOKBACK_MS if raw in (None, "") else integer("lookback", raw, minimum=1)
    if end_ms > MAX_US // 1000:
        raise BadRequest(f"endTs: {end_ms} is too large for epoch milliseconds")
    return end_ms, lookback_ms


def _window_ns(end_ms: int, lookback_ms: int) -> tuple[int, int]:
    """Span start bounds in ns: Zipkin's ``(endTs - lookback) * 1000 <= timestamp <= endTs * 1000``
    on µs timestamps.  A span without a timestamp (start 0) is never in a window, as in Zipkin."""
    return max(1, (end_ms - lookback_ms) * 1_000_000), end_ms * 1_000_000 + 999


def _duration_us(args, name: str) -> int | None:
    raw = args.get(name)
    if raw in (None, ""):
        return None
    return integer(name, raw, minimum=1, maximum=MAX_US)


def _name_cond(field, value: str) -> Cond:
    """Zipkin matches service, remote service and span names case-insensitively (it stores them
    lower-cased; Clew keeps the case it received): exact when case cannot matter."""
    if value.lower() == value.upper():
        return Cond(field, "=", value)
    return Cond(field, "=~", "(?i)" + re.escape(value))


def annotation_query(raw: str | None):
    """The span condition of Zipkin's ``annotationQuery`` (``error and http.method=GET``).

    Terms are joined by `` and ``; ``key=value`` is a tag with that value, a bare ``key`` (or
    ``key=``) a tag with that key, each found anywhere on the span (attributes of the span, its
    resource, scope, events or links, compared as strings).  ``error`` also matches an error
    status, since Clew's ingest turns Zipkin's ``error`` tag into the status.  Zipkin would also
    let a bare word match an annotation value: event names are not indexed, so it cannot here.
    """
    if raw is None or not raw.strip():
        return None
    terms: dict[str, str] = {}
    for part in raw.split(" and "):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not key:
            if eq:
                raise BadRequest(f"annotationQuery: {part.strip()!r} has no key before '='")
            continue
        if eq:
            terms[key] = value  # the last value of a key wins (Zipkin)
        else:
            terms.setdefault(key, "")
    conds = []
    for key, value in terms.items():
        if key == "error" and value in ("", "true"):
            tag = Cond(Attr("any", key), "=", value) if value else Cond(Attr("any", key), "exists")
            conds.append(Or((Cond(STATUS, "=", "error"), tag)))
        elif value:
            conds.append(Cond(Attr("any", key), "=", value))
        else:
            conds.append(Cond(Attr("any", key), "exists"))
    return all_of(*conds)


def search_query(args, *, now_ms: int) -> TraceQuery:
    """The ``TraceQuery`` of ``/api/v2/traces`` parameters (raises ``BadRequest``)."""
    service = text("serviceName", args.get("serviceName"))
    remote = text("remoteServiceName", args.get("remoteServiceName"))
    span_name = text("spanName", args.get("spanName"))
    if span_name is not None and span_name.lower() == "all":  # Zipkin's reserved "any name"
        span_name = None
    tags = annotation_query(text("annotationQuery", args.get("annotationQuery"), max_len=8192))
    min_us = _duration_us(args, "minDuration")
    max_us = _duration_us(args, "maxDuration")
    if min_us is not None and max_us is not None and max_us < min_us:
        raise BadRequest(f"maxDuration: {max_us} is less than minDuration {min_us}")
    end_ms, lookback_ms = _window(args, now_ms)
    raw = args.get("limit")
    limit = DEFAULT_LIMIT if raw in (None, "") else integer("limit", raw, minimum=1, maximum=MAX_LIMIT)
    start_ns, end_ns = _window_ns(end_ms, lookback_ms)  # bounds the matching span's start
    span = all_of(
        _name_cond(SERVICE, service) if service else None,
        _name_cond(PEER_SERVICE, remote) if remote else None,
        _name_cond(NAME, span_name) if span_name else None,
        # a Zipkin duration is whole µs (sub-µs rounds up to 1): bounds on nanoseconds to match
        Cond(DURATION, ">=", 1 if min_us == 1 else min_us * 1000) if min_us is not None else None,
        Cond(DURATION, "<=", max_us * 1000 + 999) if max_us is not None else None,
        tags,
    )
    return TraceQuery(span=span, start_min_ns=start_ns, start_max_ns=end_ns, limit=limit)


def trace_ids(raw: str | None) -> list[bytes]:
    """Distinct trace IDs of a ``traceIds`` list, in order."""
    if raw is None or not raw.strip():
        raise BadRequest("traceIds is required: a comma-separated list of trace IDs")
    out: list[bytes] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        tid = parse_trace_id(part)
        if tid not in out:
            out.append(tid)
    if not out:
        raise BadRequest("traceIds: no trace ID given")
    if len(out) > MAX_TRACE_IDS:
        raise BadRequest(f"traceIds: at most {MAX_TRACE_IDS} trace IDs per request")
    return out


# --------------------------------------------------------------------------- store calls (worker thread)


def _operations(reader, service: str) -> list:
    """Span names of a service, matched as ``/traces`` matches it (case-insensitively)."""
    return [pair for svc in _services_like(reader, service) for pair in reader.operations(svc)]


def _remote_services(reader, service: str) -> list:
    return [pair for svc in _services_like(reader, service)
            for pair in reader.tag_values(PEER_SERVICE, service=svc)]


def _services_like(reader, service: str) -> list[str]:
    """Stored service names equal to ``service`` ignoring case (exact match first)."""
    folded = service.casefold()
    names = [s for s in reader.services() if s.casefold() == folded]
    return names or [service]


def _search(reader, query: TraceQuery) -> list[bytes]:
    out = []
    for summary in reader.find_traces(query):
        raw = traces_data_bytes(reader, summary.trace_id)
        if raw is not None:
            out.append(raw)
    return out


def _many(reader, ids: list[bytes]) -> list[bytes]:
    out = []
    for tid in ids:
        raw = traces_data_bytes(reader, tid)
        if raw is not None:
            out.append(raw)
    return out
