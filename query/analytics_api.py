"""Query stage: trace-structure analytics — critical paths and the service graph (docs/analytics.md).

* ``GET /api/v1/traces/{id}/critical-path`` — the critical path of one trace
  (``collector.analytics.critical``): its segments, total and the share of each service.
* ``GET /api/v1/critical-path/services`` — for the traces a search finds (Jaeger api_v3
  ``query.*`` parameters, as the UI's search page sends them), the time each service spends
  on their critical paths, most first.
* ``GET /api/v1/dependencies`` — the service graph over a time range, from the edges paired at
  ingest (``collector.analytics.graph``) and kept in the ``SeriesStore``: calls, errors, error
  rate and latency quantiles per edge, and every elementary cycle.

Timestamps are epoch nanoseconds written as decimal strings (they exceed 2^53); durations are
nanoseconds as JSON integers.  Errors are ``{"error": {"httpCode", "message"}}`` with a message
naming the parameter.
"""
from __future__ import annotations

import dataclasses
import time
from collections import defaultdict

from quart import Blueprint, jsonify, request

from collector.analytics import critical
from collector.analytics.histogram import quantiles
from collector.errors import StoreClosed
from collector.store.criteria import CriteriaError
from query.ids import BadTraceId, parse_trace_id
from query.jaeger_api import v3_search
from query.params import ApiError, BadRequest, integer, native_error as _error, rfc3339_ns
from query.reading import call, traces_data_bytes

DEFAULT_TRACES = 20  # traces one critical-path aggregation reads when no limit is asked
MAX_TRACES = 200  # the most it may read
DEFAULT_SEARCH_WINDOW_NS = 3600 * 10**9  # without query.startTimeMin/Max: the last hour
DEFAULT_GRAPH_WINDOW_NS = 3600 * 10**9  # /api/v1/dependencies without from: an hour before to
DEFAULT_MAX_CYCLES = 1000  # cycles listed at most (then cyclesTruncated is true)
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
EDGE = "edge"
_MAX_S = (2**63 - 1) // 10**9


# --------------------------------------------------------------------------- critical path


def _segments_json(segs) -> dict:
    total = sum(s.duration for s in segs)
    per_span: dict[int, dict] = {}
    out_segs = []
    for s in segs:
        n = s.node
        out_segs.append({"spanId": n.span_id, "service": n.service, "operation": n.name,
                         "start": str(s.start), "end": str(s.end), "selfOnPath": s.duration})
        entry = per_span.get(id(n))
        if entry is None:
            entry = per_span[id(n)] = {"spanId": n.span_id, "service": n.service, "operation": n.name,
                                       "selfOnPath": 0, "segments": 0}
        entry["selfOnPath"] += s.duration
        entry["segments"] += 1
    times = critical.service_times(segs)
    services = [{"service": name, "time": t, "share": _share(t, total)}
                for name, t in sorted(times.items(), key=lambda kv: (-kv[1], kv[0]))]
    spans = sorted(per_span.values(), key=lambda e: (-e["selfOnPath"], e["spanId"]))
    return {"total": total, "segments": out_segs, "spans": spans, "services": services}


def _share(part: int, total: int) -> float:
    return part / total if total > 0 else 0.0


def trace_critical_path(reader, trace_id: bytes) -> dict | None:
    """The critical-path answer of one stored trace, or None (call from a worker thread)."""
    raw = traces_data_bytes(reader, trace_id)
    if raw is None:
        return None
    segs = critical.trace_critical_path(raw)
    out = {"traceId": trace_id.hex()}
    if segs:
        root = segs[0].node
        start, end = segs[0].start, segs[-1].end
        out.update({"rootSpanId": root.span_id, "rootService": root.service, "rootOperation": root.name,
                    "start": str(start), "end": str(end)})
    out.update(_segments_json(segs))
    return out


def search_critical_paths(reader, query) -> dict:
    """Per-service critical-path time over every trace ``query`` finds (worker thread)."""
    times: dict[str, int] = defaultdict(int)
    traces_on: dict[str, int] = defaultdict(int)
    ids, total = [], 0
    for summary in reader.find_traces(query):
        raw = (summary.trace.to_traces_data() if summary.trace is not None
               else traces_data_bytes(reader, summary.trace_id))
        if raw is None:  # gone between the search and the read (retention)
            continue
        segs = critical.trace_critical_path(raw)
        if not segs:
            continue
        ids.append(summary.trace_id.hex())
        for name, t in critical.service_times(segs).items():
            times[name] += t
            traces_on[name] += 1
            total += t
    services = [{"service": name, "time": t, "share": _share(t, total), "traces": traces_on[name],
                 "meanPerTrace": t // traces_on[name]}
                for name, t in sorted(times.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {"traces": len(ids), "total": total, "services": services, "traceIds": ids}


def _search_query(args):
    """The api_v3 search of ``args`` (the last hour when no window is given), at most ``limit`` traces."""
    args = args.copy()
    has_min = any(args.get(n) for n in ("query.startTimeMin", "query.start_time_min"))
    has_max = any(args.get(n) for n in ("query.startTimeMax", "query.start_time_max"))
    if not has_min and not has_max:
        now = time.time_ns()
        args["query.startTimeMin"] = _rfc3339(now - DEFAULT_SEARCH_WINDOW_NS)
        args["query.startTimeMax"] = _rfc3339(now)
    depth = next(((n, args[n]) for n in ("query.searchDepth", "query.search_depth", "query.num_traces")
                  if args.get(n)), None)
    if args.get("limit"):
        limit = integer("limit", args["limit"], minimum=1, maximum=MAX_TRACES)
    elif depth is not None:
        limit = integer(depth[0], depth[1], minimum=1, maximum=MAX_TRACES)
    else:
        limit = DEFAULT_TRACES
    return dataclasses.replace(v3_search(args), limit=limit)


def _rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


# --------------------------------------------------------------------------- dependencies


def _time_param(name: str, raw: str) -> int:
    """``from``/``to``: an RFC 3339 timestamp, or unix seconds (decimals allowed), as epoch ns."""
    s = raw.strip()
    if s and s.replace(".", "", 1).isdigit():
        whole, _, frac = s.partition(".")
        if int(whole) > _MAX_S:
            raise BadRequest(f"{name}: {raw[:40]!r} is too far in the future")
        return int(whole) * 10**9 + int((frac or "0")[:9].ljust(9, "0"))
    try:
        return rfc3339_ns(name, s)
    except BadRequest:
        raise BadRequest(f"{name}: {raw[:40]!r} is neither unix seconds nor an RFC 3339 timestamp "
                         "such as 2024-01-02T03:04:05Z") from None


def _edge_key(key: tuple) -> tuple | None:
    """(client, server, connection) of an edge series key (with or without the family)."""
    if len(key) == 4 and key[0] == EDGE:
        key = key[1:]
    return tuple(key) if len(key) == 3 else None


def dependency_graph(series, services: set[str], start_ns: int, end_ns: int, max_cycles: int) -> dict:
    """Nodes, edges with their metrics, and cycles of the edges recorded in the window
    (what was gathered in memory is flushed first, so the answer is current)."""
    series.flush()
    keys = [k for k in (_edge_key(tuple(k)) for k in series.keys(EDGE)) if k is not None]
    ids = {series.series_id((EDGE, *k)): k for k in keys}
    totals = series.totals(list(ids), start_ns, end_ns) if ids else {}
    edges = []
    calls_out, calls_in, errors_in = defaultdict(int), defaultdict(int), defaultdict(int)
    for sid, (client, server, conn) in ids.items():
        p = totals.get(sid)
        if p is None or not p.calls:
            continue
        qs = quantiles(p.hist, [q for _n, q in QUANTILES])
        edges.append({
            "source": client, "target": server, "connection": conn,
            "calls": int(p.calls), "errors": int(p.errors),
            "errorRate": p.errors / p.calls,
            "latency": {"mean": int(p.duration_sum_ns // p.calls),
                        **{n: None if v is None else int(round(v)) for (n, _q), v in zip(QUANTILES, qs)}},
        })
        calls_out[client] += int(p.calls)
        calls_in[server] += int(p.calls)
        errors_in[server] += int(p.errors)
    edges.sort(key=lambda e: (e["source"], e["target"], e["connection"]))
    names = sorted(set(calls_out) | set(calls_in))
    nodes = [{"name": n, "callsOut": calls_out.get(n, 0), "callsIn": calls_in.get(n, 0),
              "errorsIn": errors_in.get(n, 0),
              "virtual": n not in calls_out and n not in services}
             for n in names]
    adjacency: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        adjacency[e["source"]].add(e["target"])
    cycles, truncated = elementary_cycles(adjacency, max_cycles)
    return {"from": str(start_ns), "to": str(end_ns), "nodes": nodes, "edges": edges,
            "cycles": cycles, "cyclesTruncated": truncated}


def _sccs(nodes: list, adj: dict) -> list[set]:
    """Strongly connected components (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(adj.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def elementary_cycles(adj: dict, limit: int) -> tuple[list[list[str]], bool]:
    """Every elementary cycle of a directed graph (Johnson's algorithm), each starting at its
    smallest node, sorted; at most ``limit`` (the flag says the list was cut)."""
    nodes = sorted(set(adj) | {w for ws in adj.values() for w in ws})
    cycles: list[list[str]] = []
    for comp in _sccs(nodes, adj):
        if len(comp) < 2:
            continue
        order = sorted(comp)
        for i, s in enumerate(order):
            allowed = set(order[i:])
            # the component of s within the nodes not smaller than s: reachable both ways
            fwd = _reach(s, lambda v: adj.get(v, ()), allowed)
            back = _reach(s, lambda v, a=allowed: [u for u in a if v in adj.get(u, ())], allowed)
            scc = fwd & back
            if len(scc) < 2:
                continue
            if _circuits(s, adj, scc, cycles, limit):
                cycles.sort()
                return cycles, True
    cycles.sort()
    return cycles, False


def _reach(s, nbrs, allowed: set) -> set:
    seen, todo = {s}, [s]
    while todo:
        v = todo.pop()
        for w in nbrs(v):
            if w in allowed and w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _circuits(s, adj: dict, scc: set, out: list, limit: int) -> bool:
    """Johnson's CIRCUIT from ``s`` inside ``scc``; True when ``limit`` cycles were reached."""
    blocked, parked = {s}, defaultdict(set)
    path = [s]
    stack = [(s, sorted(adj.get(s, set()) & scc, reverse=True))]
    found = [False]

    def unblock(u):
        todo = [u]
        while todo:
            x = todo.pop()
            if x in blocked:
                blocked.discard(x)
                todo.extend(parked.pop(x, ()))

    while stack:
        v, nbrs = stack[-1]
        if nbrs:
            w = nbrs.pop()
            if w == s:
                out.append(list(path))
                found[-1] = True
                if len(out) >= limit:
                    return True
            elif w not in blocked:
                path.append(w)
                blocked.add(w)
                stack.append((w, sorted(adj.get(w, set()) & scc, reverse=True)))
                found.append(False)
            continue
        stack.pop()
        closed = found.pop()
        if closed:
            unblock(v)
        else:
            for w in adj.get(v, set()) & scc:
                parked[w].add(v)
        path.pop()
        if found:
            found[-1] = found[-1] or closed
    return False


# --------------------------------------------------------------------------- blueprint


def blueprint(config, reader, series=None) -> Blueprint:
    """The routes; ``series`` is the server's ``SeriesStore`` (None when analytics are off: the
    critical-path routes still answer, ``/api/v1/dependencies`` answers 503)."""
    bp = Blueprint("analytics_graph", __name__)
    settings = getattr(config, "analytics", None)
    max_cycles = int(getattr(settings, "max_cycles", DEFAULT_MAX_CYCLES))

    @bp.errorhandler(ApiError)
    async def api_error(exc: ApiError):
        return _error(exc.status, exc.message)

    @bp.errorhandler(BadRequest)
    @bp.errorhandler(CriteriaError)
    async def bad_request(exc):
        return _error(400, str(exc))

    @bp.errorhandler(StoreClosed)
    async def closing(exc):
        return _error(503, str(exc))

    @bp.get("/api/v1/traces/<trace_id>/critical-path")
    async def critical_path(trace_id: str):
        """The critical path of one trace: segments in time order, per-span and per-service time."""
        try:
            tid = parse_trace_id(trace_id)
        except BadTraceId as exc:
            raise BadRequest(f"traceId: {exc}") from None
        out = await call(trace_critical_path, reader, tid)
        if out is None:
            raise ApiError(404, f"trace {tid.hex()} not found")
        return jsonify(out)

    @bp.get("/api/v1/critical-path/services")
    async def critical_path_services():
        """Time on the critical path per service over the traces a search finds, most first."""
        query = _search_query(request.args)
        return jsonify(await call(search_critical_paths, reader, query))

    @bp.get("/api/v1/dependencies")
    async def dependencies():
        """The service graph of ``[from, to]``: nodes, edges with calls, errors and latency, cycles."""
        args = request.args
        end_ns = _time_param("to", args["to"]) if args.get("to") else time.time_ns()
        start_ns = (_time_param("from", args["from"]) if args.get("from")
                    else max(0, end_ns - DEFAULT_GRAPH_WINDOW_NS))
        if start_ns >= end_ns:
            raise BadRequest("from: must be before to")
        if series is None:
            raise ApiError(503, "the service graph is off (analytics.enabled = false)")
        services = set(await call(reader.services, start_ns, end_ns))
        return jsonify(await call(dependency_graph, series, services, start_ns, end_ns, max_cycles))

    return bp
