"""Query stage: RED metrics read back from the series store (docs/api-analytics.md).

* ``GET /api/v1/metrics`` — time series of one service (all its operations merged, one
  operation, or one series per operation / kind): per step calls, errors, error rate, rate and
  latency quantiles; JSON or CSV.
* ``GET /api/v1/metrics/compare`` — two time ranges side by side per service, operation and
  kind, with deltas and regressions flagged, worst first.
* ``GET /api/metrics/latencies|calls|errors|minstep`` — Jaeger's Monitor API (the Jaeger UI's
  "Monitor" tab) in its JSON shape.
* ``GET /api/v1/export/traces`` — the summaries of a search's traces as CSV or JSON.

Every number comes from the ``("span", service, operation, kind)`` series that
``collector.analytics.red`` counts at ingest, before sampling.  Histograms are merged by adding
counts, so a quantile over operations, steps or windows keeps the histograms' 0.5 % bound.
Errors are ``{"error": {"httpCode", "message"}}`` (Jaeger's routes: its envelope) with a message
naming the parameter.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import time
from collections import deque
from datetime import datetime, timezone

import numpy as np
from quart import Blueprint, Response, jsonify, request

from collector.analytics.histogram import NBUCKETS, bucket_value
from collector.errors import StoreClosed
from collector.model import KIND_NAMES
from collector.store.criteria import CriteriaError
from query.analytics_api import _rfc3339, _time_param
from query.jaeger import envelope
from query.jaeger_api import v3_search
from query.params import ApiError, BadRequest, go_duration_ns, integer, MAX_LIMIT
from query.reading import call

SPAN = "span"
NS = 10**9
DEFAULT_WINDOW_S = 3600  # /api/v1/metrics and /compare without from: an hour before to
MAX_DEFAULT_POINTS = 300  # the default step keeps a series at most this long
MAX_POINTS = 11_000  # steps one series may have (7 days of minutes fit)
MAX_SERIES = 500  # series one /api/v1/metrics answer may hold (groupBy)
MAX_QUANTILES = 10
DEFAULT_QUANTILES = (0.5, 0.95, 0.99)
STEP_LADDER = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 7 * 86400)
CHUNK = 256  # steps read at once per series (bounds the dense histograms in memory)
GROUP_BY = ("operation", "kind")
COMPARE_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
DEFAULT_THRESHOLD = 0.2
DEFAULT_MIN_CALLS = 20
DEFAULT_ERROR_THRESHOLD = 0.05
# Jaeger's Monitor API (cmd/query/app: default_params.go, query_parser.go)
JAEGER_LOOKBACK_MS = 3_600_000
JAEGER_STEP_MS = 5_000
JAEGER_RATE_PER_MS = 600_000
JAEGER_MAX_RATE_PER_MS = 86_400_000
JAEGER_DEFAULT_KINDS = ("SPAN_KIND_SERVER",)
JAEGER_KINDS = {f"SPAN_KIND_{k.upper()}": k for k in KIND_NAMES}
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
EXPORT_DEFAULT_LIMIT = 100
EXPORT_COLUMNS = ("traceId", "rootService", "rootOperation", "start", "durationMs", "spans", "errors",
                  "services")


# --------------------------------------------------------------------------- parameters


def parse_kind(name: str, raw: str) -> str:
    """A span kind: ``server`` … or Jaeger's ``SPAN_KIND_SERVER`` style."""
    if raw in KIND_NAMES:
        return raw
    if raw in JAEGER_KINDS:
        return JAEGER_KINDS[raw]
    raise BadRequest(f"{name}: {raw[:60]!r} is not a span kind; one of {', '.join(KIND_NAMES)} "
                     "(or SPAN_KIND_SERVER style)")


_LONG = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(w|d)")


def duration_s(name: str, raw: str, *, minimum: float = 1.0) -> int:
    """Whole seconds from a number of seconds (``300``) or a duration (``5m``, ``1h30m``, ``7d``,
    ``2w``: Go's units plus ``d`` = 24 h and ``w`` = 7 d)."""
    s = raw.strip()
    if not s:
        raise BadRequest(f"{name}: empty")
    try:
        seconds = float(s)
    except ValueError:
        total, pos = 0.0, 0
        while True:
            m = _LONG.match(s, pos)
            if not m:
                break
            total += float(m.group(1)) * (604800 if m.group(2) == "w" else 86400)
            pos = m.end()
        rest = s[pos:]
        if rest:
            try:
                total += go_duration_ns(name, rest) / NS
            except BadRequest:
                raise BadRequest(f"{name}: {raw[:40]!r} is neither seconds nor a duration such as "
                                 "90s, 5m, 1h30m, 7d") from None
        seconds = total
    if not math.isfinite(seconds) or seconds != int(seconds):
        raise BadRequest(f"{name}: must be a whole number of seconds, got {raw[:40]!r}")
    if seconds < minimum:
        raise BadRequest(f"{name}: must be at least {minimum:g} s, got {raw[:40]!r}")
    if seconds > 10 * 365 * 86400:
        raise BadRequest(f"{name}: longer than ten years")
    return int(seconds)


def parse_quantiles(raw: str | None) -> tuple[float, ...]:
    if raw is None or raw.strip() == "":
        return DEFAULT_QUANTILES
    out = []
    for part in raw.split(","):
        try:
            q = float(part)
        except ValueError:
            raise BadRequest(f"quantiles: {part[:40]!r} is not a number") from None
        if not 0 < q <= 1:
            raise BadRequest(f"quantiles: each must be in (0, 1], got {part[:40]!r}")
        if q not in out:
            out.append(q)
    if len(out) > MAX_QUANTILES:
        raise BadRequest(f"quantiles: at most {MAX_QUANTILES}")
    return tuple(out)


def quantile_name(q: float) -> str:
    """``0.5`` → ``p50``, ``0.999`` → ``p99.9``."""
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".")


def _number(name: str, raw: str, *, minimum: float, maximum: float | None = None) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw[:40]!r} is not a number") from None
    if not math.isfinite(v) or v < minimum or (maximum is not None and v > maximum):
        raise BadRequest(f"{name}: must be in [{minimum:g}, {'∞' if maximum is None else f'{maximum:g}'}], "
                         f"got {raw[:40]!r}")
    return v


def time_range(args, prefix_from: str = "from", prefix_to: str = "to") -> tuple[int, int]:
    """``[from, to)`` in whole epoch seconds (from rounded down, to up); default the last hour."""
    end_ns = _time_param(prefix_to, args[prefix_to]) if args.get(prefix_to) else time.time_ns()
    start_ns = (_time_param(prefix_from, args[prefix_from]) if args.get(prefix_from)
                else end_ns - DEFAULT_WINDOW_S * NS)
    start, end = max(0, start_ns // NS), -(-end_ns // NS)
    if start >= end:
        raise BadRequest(f"{prefix_from}: must be before {prefix_to}")
    return start, end


def default_step(span_s: int, bucket_s: int) -> int:
    """The smallest step of the ladder (and at least the bucket width) giving ≤ 300 points."""
    for step in STEP_LADDER:
        if step >= bucket_s and -(-span_s // step) <= MAX_DEFAULT_POINTS:
            return step
    return max(bucket_s, -(-span_s // MAX_DEFAULT_POINTS))


# --------------------------------------------------------------------------- reading


def _series_ids(store, service: str | None, operation: str | None, kinds) -> list[tuple[int, tuple]]:
    """(id, key) of the span series of ``service`` (every service when None), optionally one
    operation and some kinds."""
    prefix = () if service is None else (service,) if operation is None else (service, operation)
    out = []
    for key in store.keys(SPAN, prefix):
        if len(key) != 4 or (kinds and key[3] not in kinds):
            continue
        out.append((store.series_id(key), key))
    return out


def row_quantiles(hist: np.ndarray, qs) -> np.ndarray:
    """Quantiles (ns) of each row of a 2-D array of dense histograms (NaN for empty rows): the
    value of the bucket holding the sample of rank max(1, ceil(q·N)), as ``histogram.quantiles``."""
    hist = np.asarray(hist)
    out = np.full((len(hist), len(qs)), np.nan)
    if not len(hist):
        return out
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1].astype(np.float64)
    for j, q in enumerate(qs):
        rank = np.maximum(1.0, np.ceil(q * total - 1e-9 * total))
        idx = (cum < rank[:, None]).sum(axis=1)
        out[:, j] = bucket_value(np.minimum(idx, NBUCKETS - 1))
    out[total <= 0] = np.nan
    return out


def _read_steps(store, sids, start_s: int, n: int, step_s: int, want_hist: bool = True):
    """Per chunk of steps: (first step index, calls, errors, duration sums, dense histograms)
    summed over ``sids`` (one series read at a time, ``CHUNK`` steps at a time)."""
    for c0 in range(0, n, CHUNK):
        m = min(CHUNK, n - c0)
        a = (start_s + c0 * step_s) * NS
        b = (start_s + (c0 + m) * step_s) * NS
        calls = np.zeros(m, np.int64)
        errors = np.zeros(m, np.int64)
        dsum = np.zeros(m, np.int64)
        hist = np.zeros((m, NBUCKETS), np.int64) if want_hist else None
        for sid in sids:
            points = store.read([sid], a, b, step_s)[sid]
            for k, p in enumerate(points[:m]):
                if p.calls:
                    calls[k] += p.calls
                    errors[k] += p.errors
                    dsum[k] += p.duration_sum_ns
                    if want_hist:
                        hist[k] += p.hist
        yield c0, calls, errors, dsum, hist


def _ms(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) / 1e6


def _summary(calls: int, errors: int, seconds: float, qvals, qs) -> dict:
    calls, errors = int(calls), int(errors)
    out = {"calls": int(calls), "errors": int(errors),
           "errorRate": (errors / calls) if calls else None,
           "rate": calls / seconds if seconds > 0 else 0.0}
    for q, v in zip(qs, qvals):
        out[quantile_name(q)] = _ms(v)
    return out


def metrics_series(store, service: str, operation: str | None, kind: str | None, group_by: tuple,
                   start_s: int, end_s: int, step_s: int, qs) -> dict:
    """The ``/api/v1/metrics`` answer (call from a worker thread).  Steps are aligned to
    multiples of ``step_s`` since the epoch: the first holds ``start_s``, the last ``end_s − 1``."""
    store.flush()
    first = start_s // step_s * step_s
    n = -(-(end_s - first) // step_s)
    if n > MAX_POINTS:
        raise BadRequest(f"step: {n} steps asked for; at most {MAX_POINTS} (use a larger step)")
    groups: dict[tuple, list[int]] = {}
    for sid, key in _series_ids(store, service, operation, {kind} if kind else None):
        g = tuple(key[2] if name == "operation" else key[3] for name in group_by)
        groups.setdefault(g, []).append(sid)
    if not group_by and not groups:
        groups[()] = []
    if len(groups) > MAX_SERIES:
        raise BadRequest(f"groupBy: {len(groups)} series; at most {MAX_SERIES} (filter by operation or kind)")
    series = []
    for g, sids in groups.items():
        labels = dict(zip(group_by, g))
        points = []
        tot_hist = np.zeros(NBUCKETS, np.int64)
        tot_calls = tot_errors = 0
        for c0, calls, errors, _dsum, hist in _read_steps(store, sids, first, n, step_s):
            qv = row_quantiles(hist, qs)
            tot_hist += hist.sum(axis=0)
            tot_calls += int(calls.sum())
            tot_errors += int(errors.sum())
            for k in range(len(calls)):
                p = {"t": first + (c0 + k) * step_s}
                p.update(_summary(calls[k], errors[k], step_s, qv[k], qs))
                points.append(p)
        totals = _summary(tot_calls, tot_errors, n * step_s, row_quantiles(tot_hist[None, :], qs)[0], qs)
        series.append({"operation": labels.get("operation", operation), "kind": labels.get("kind", kind),
                       "totals": totals, "points": points})
    series.sort(key=lambda s: (-s["totals"]["calls"], s["operation"] or "", s["kind"] or ""))
    return {"service": service, "operation": operation, "kind": kind,
            "groupBy": ",".join(group_by) or None, "from": start_s, "to": end_s, "step": step_s,
            "quantiles": list(qs), "series": series}


def metrics_csv(answer: dict) -> str:
    """One row per (series, step): service, operation, kind, t, calls, errors, errorRate, rate,
    then one column per quantile (ms); empty cells for nulls."""
    qcols = [quantile_name(q) for q in answer["quantiles"]]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["service", "operation", "kind", "t", "calls", "errors", "errorRate", "rate", *qcols])
    for s in answer["series"]:
        for p in s["points"]:
            w.writerow([answer["service"], s["operation"] or "", s["kind"] or "", p["t"], p["calls"], p["errors"],
                        _cell(p["errorRate"]), _cell(p["rate"]), *(_cell(p[c]) for c in qcols)])
    return out.getvalue()


def _cell(v) -> str:
    return "" if v is None else repr(float(v)) if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- compare


def _side(point, seconds: float) -> dict:
    qv = row_quantiles(point.hist[None, :], [q for _n, q in COMPARE_QUANTILES])[0] if point.calls else [None] * 3
    calls, errors = int(point.calls), int(point.errors)
    out = {"calls": calls, "rate": calls / seconds, "errorRate": errors / calls if calls else None}
    for (name, _q), v in zip(COMPARE_QUANTILES, qv):
        out[name] = _ms(v)
    return out


def _delta(a, b):
    return None if a is None or b is None else b - a


def _relative(a, b):
    return None if a is None or b is None or a == 0 else (b - a) / a


def compare(store, service: str | None, kind: str | None, base: tuple[int, int], cur: tuple[int, int],
            threshold: float, min_calls: int, error_threshold: float) -> dict:
    """The ``/api/v1/metrics/compare`` answer (worker thread)."""
    store.flush()
    found = _series_ids(store, service, None, {kind} if kind else None)
    ids = [sid for sid, _k in found]
    before = store.totals(ids, base[0] * NS, base[1] * NS) if ids else {}
    after = store.totals(ids, cur[0] * NS, cur[1] * NS) if ids else {}
    rows = []
    fields = ("calls", "rate", "errorRate") + tuple(n for n, _q in COMPARE_QUANTILES)
    for sid, key in found:
        pb, pa = before[sid], after[sid]
        if not pb.calls and not pa.calls:
            continue
        b, a = _side(pb, base[1] - base[0]), _side(pa, cur[1] - cur[0])
        reasons = []
        enough = b["calls"] >= min_calls and a["calls"] >= min_calls
        rel95 = _relative(b["p95"], a["p95"])
        if enough and rel95 is not None and rel95 > threshold:
            reasons.append("p95")
        de = _delta(b["errorRate"], a["errorRate"])
        if enough and de is not None and de > error_threshold:
            reasons.append("errorRate")
        rows.append({"service": key[1], "operation": key[2], "kind": key[3], "baseline": b, "current": a,
                     "delta": {f: _delta(b[f], a[f]) for f in fields},
                     "relative": {f: _relative(b[f], a[f]) for f in fields if f != "errorRate"},
                     "regression": bool(reasons), "reasons": reasons})

    def badness(r):
        rel = r["relative"]["p95"]
        de = r["delta"]["errorRate"]
        return (not r["regression"], -max(rel if rel is not None else -math.inf,
                                          (de / error_threshold * threshold) if de is not None else -math.inf),
                r["service"], r["operation"], r["kind"])
    rows.sort(key=badness)
    return {"baselineFrom": base[0], "baselineTo": base[1], "from": cur[0], "to": cur[1],
            "threshold": threshold, "minCalls": min_calls, "errorThreshold": error_threshold,
            "regressions": sum(r["regression"] for r in rows), "rows": rows}


# --------------------------------------------------------------------------- Jaeger Monitor API


def _jaeger_time(ms: int) -> str:
    secs, rest = divmod(ms, 1000)
    return datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:03d}Z"


def _window_rows(store, sids, first_s: int, last_s: int, want_hist: bool):
    """(bucket start s, calls, errors, histogram row or None) of every fine bucket in
    [first_s, last_s) with calls, summed over ``sids``, in time order."""
    b = store.bucket_s
    n = max(0, (last_s - first_s) // b)
    for c0, calls, errors, _dsum, hist in _read_steps(store, sids, first_s, n, b, want_hist):
        for k in np.flatnonzero(calls).tolist():
            yield first_s + (c0 + k) * b, int(calls[k]), int(errors[k]), hist[k] if want_hist else None


def sliding_windows(store, sids, points_ms: list[int], window_ms: int, want_hist: bool, q: float = 0.5):
    """Per point t (ms): (calls, errors, quantile q in ns or None) of the buckets starting in
    [t − window, t)."""
    b = store.bucket_s
    win_s = window_ms / 1000
    first = int(math.floor((points_ms[0] / 1000 - win_s) / b) * b)
    last = int(math.ceil(points_ms[-1] / 1000 / b) * b) + b
    rows = _window_rows(store, sids, max(0, first), last, want_hist)
    nxt = next(rows, None)
    window: deque = deque()
    calls = errors = 0
    hist = np.zeros(NBUCKETS, np.int64) if want_hist else None
    out = []
    cached = None
    for t_ms in points_ms:
        t = t_ms / 1000
        changed = False
        while nxt is not None and nxt[0] < t:
            window.append(nxt)
            calls += nxt[1]
            errors += nxt[2]
            if want_hist:
                hist += nxt[3]
            nxt = next(rows, None)
            changed = True
        while window and window[0][0] < t - win_s:
            old = window.popleft()
            calls -= old[1]
            errors -= old[2]
            if want_hist:
                hist -= old[3]
            changed = True
        if changed or cached is None:
            qv = row_quantiles(hist[None, :], [q])[0][0] if want_hist and calls else None
            cached = (calls, errors, None if qv is None or math.isnan(qv) else float(qv))
        out.append(cached)
    return out


def jaeger_metrics(store, what: str, services: list[str], by_operation: bool, kinds: set[str],
                   end_ms: int, lookback_ms: int, step_ms: int, rate_per_ms: int, q: float | None) -> dict:
    """One Jaeger ``MetricFamily`` (worker thread): ``what`` is latencies, calls or errors."""
    store.flush()
    points_ms = list(range(end_ms - lookback_ms, end_ms + 1, step_ms))
    groups: dict[tuple, list[int]] = {}
    for service in dict.fromkeys(services):
        for sid, key in _series_ids(store, service, None, kinds):
            groups.setdefault((key[1], key[2]) if by_operation else (key[1],), []).append(sid)
    scope = "service & operation" if by_operation else "service"
    prefix = "service_operation" if by_operation else "service"
    if what == "latencies":
        name, help_text = f"{prefix}_latencies", f"{q:.2f}th quantile latency, grouped by {scope}"
    elif what == "calls":
        name, help_text = f"{prefix}_call_rate", f"calls/sec, grouped by {scope}"
    else:
        name, help_text = (f"{prefix}_error_rate",
                           f"error rate, computed as a fraction of errors/sec over calls/sec, grouped by {scope}")
    metrics = []
    rate_s = rate_per_ms / 1000
    for g in sorted(groups):
        values = sliding_windows(store, groups[g], points_ms, rate_per_ms, what == "latencies", q or 0.5)
        if not any(c for c, _e, _q in values):
            continue
        mpoints = []
        for t_ms, (c, e, qv) in zip(points_ms, values):
            if what == "calls":
                v = c / rate_s
            elif not c:
                continue  # no calls in the window: no latency, no error rate (Prometheus: no sample)
            elif what == "errors":
                v = e / c
            else:
                v = qv / 1e6
            mpoints.append({"gaugeValue": {"doubleValue": v}, "timestamp": _jaeger_time(t_ms)})
        labels = [{"name": "operation", "value": g[1]}] if by_operation else []
        labels.append({"name": "service_name", "value": g[0]})
        metrics.append({"labels": labels, "metricPoints": mpoints})
    return {"name": name, "type": "GAUGE", "help": help_text, "metrics": metrics}


# --------------------------------------------------------------------------- export


def export_rows(reader, query) -> list[dict]:
    out = []
    for s in reader.find_traces(query):
        out.append({
            "traceId": s.trace_id.rjust(16, b"\0").hex(),
            "rootService": s.root_service, "rootOperation": s.root_name,
            "start": _rfc3339(s.start_ns), "durationMs": (s.end_ns - s.start_ns) / 1e6,
            "spans": s.span_count, "errors": s.error_count, "services": sorted(s.services),
        })
    return out


def export_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(EXPORT_COLUMNS)
    for r in rows:
        w.writerow([r["traceId"], r["rootService"], r["rootOperation"], r["start"], repr(r["durationMs"]),
                    r["spans"], r["errors"], ";".join(r["services"])])
    return out.getvalue()


def _export_query(args):
    args = args.copy()
    has_min = any(args.get(n) for n in ("query.startTimeMin", "query.start_time_min"))
    has_max = any(args.get(n) for n in ("query.startTimeMax", "query.start_time_max"))
    if not has_min and not has_max:
        now = time.time_ns()
        args["query.startTimeMin"] = _rfc3339(now - DEFAULT_WINDOW_S * NS)
        args["query.startTimeMax"] = _rfc3339(now)
    query = v3_search(args)
    if args.get("limit"):
        query = dataclasses.replace(query, limit=integer("limit", args["limit"], minimum=1, maximum=MAX_LIMIT))
    return query


def _format(args) -> str:
    fmt = args.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise BadRequest(f"format: {fmt[:20]!r} is not json or csv")
    return fmt


def _csv_response(body: str, filename: str) -> Response:
    return Response(body, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --------------------------------------------------------------------------- blueprint


def blueprint(config, reader, series=None) -> Blueprint:
    """The routes; ``series`` is the server's ``SeriesStore`` (None when analytics are off: the
    metrics routes answer 503, Jaeger's 501 as Jaeger does without a metrics store; the export
    still answers)."""
    bp = Blueprint("analytics_metrics", __name__)

    def jaeger_route() -> bool:
        return not request.path.startswith("/api/v1/")

    def error(status: int, message: str):
        if jaeger_route():
            return jsonify(envelope(None, [{"code": status, "msg": message}])), status
        return jsonify({"error": {"httpCode": status, "message": message}}), status

    @bp.errorhandler(ApiError)
    async def api_error(exc: ApiError):
        return error(exc.status, exc.message)

    @bp.errorhandler(BadRequest)
    @bp.errorhandler(CriteriaError)
    async def bad_request(exc):
        return error(400, str(exc))

    @bp.errorhandler(StoreClosed)
    async def closing(exc):
        return error(503, str(exc))

    def need_store():
        if series is None:
            if jaeger_route():
                raise ApiError(501, "metrics are off (analytics.enabled = false)")
            raise ApiError(503, "metrics are off (analytics.enabled = false)")
        return series

    @bp.get("/api/v1/metrics")
    async def metrics():
        """RED time series of one service (merged, one operation, or grouped), JSON or CSV."""
        args = request.args
        fmt = _format(args)
        service = args.get("service")
        if not service:
            raise BadRequest("service: required")
        operation = args.get("operation") or None
        kind = parse_kind("kind", args["kind"]) if args.get("kind") else None
        group_by: tuple = ()
        if args.get("groupBy"):
            parts = [p.strip() for p in args["groupBy"].split(",") if p.strip()]
            for p in parts:
                if p not in GROUP_BY:
                    raise BadRequest(f"groupBy: {p[:40]!r} is not one of {', '.join(GROUP_BY)}")
            group_by = tuple(g for g in GROUP_BY if g in parts)
        start, end = time_range(args)
        qs = parse_quantiles(args.get("quantiles"))
        store = need_store()
        step = duration_s("step", args["step"]) if args.get("step") else default_step(end - start, store.bucket_s)
        if step < store.bucket_s:
            raise BadRequest(f"step: must be at least analytics.bucket_s ({store.bucket_s} s), got {step} s")
        answer = await call(metrics_series, store, service, operation, kind, group_by, start, end, step, qs)
        if fmt == "csv":
            return _csv_response(metrics_csv(answer), "metrics.csv")
        return jsonify(answer)

    @bp.get("/api/v1/metrics/compare")
    async def metrics_compare():
        """Two time ranges per service, operation and kind: deltas, regressions first."""
        args = request.args
        cur = time_range(args)
        has_bf, has_bt = bool(args.get("baselineFrom")), bool(args.get("baselineTo"))
        if has_bf or has_bt:
            if args.get("baseline"):
                raise BadRequest("baseline: give either baseline or baselineFrom/baselineTo, not both")
            if not (has_bf and has_bt):
                raise BadRequest(f"{'baselineTo' if has_bf else 'baselineFrom'}: required with "
                                 f"{'baselineFrom' if has_bf else 'baselineTo'}")
            base = time_range(args, "baselineFrom", "baselineTo")
        else:
            offset = duration_s("baseline", args["baseline"]) if args.get("baseline") else cur[1] - cur[0]
            base = (cur[0] - offset, cur[1] - offset)
            if base[0] < 0:
                raise BadRequest("baseline: the baseline range would start before 1970")
        service = args.get("service") or None
        kind = parse_kind("kind", args["kind"]) if args.get("kind") else None
        threshold = _number("threshold", args["threshold"], minimum=0) if args.get("threshold") else DEFAULT_THRESHOLD
        min_calls = (integer("minCalls", args["minCalls"], minimum=0, maximum=2**62)
                     if args.get("minCalls") else DEFAULT_MIN_CALLS)
        err_t = (_number("errorThreshold", args["errorThreshold"], minimum=0, maximum=1)
                 if args.get("errorThreshold") else DEFAULT_ERROR_THRESHOLD)
        store = need_store()
        return jsonify(await call(compare, store, service, kind, base, cur, threshold, min_calls, err_t))

    def jaeger_params(args):
        services = [s for s in args.getlist("service")]
        if not services or not all(services):
            raise BadRequest("unable to parse param 'service': please provide at least one service name")
        raw = args.get("groupByOperation") or ""
        if raw and raw not in _GO_TRUE + _GO_FALSE:
            raise BadRequest(f"unable to parse param 'groupByOperation': {raw[:20]!r} is not a boolean")
        by_op = raw in _GO_TRUE
        kinds_raw = args.getlist("spanKind") or list(JAEGER_DEFAULT_KINDS)
        kinds = set()
        for k in kinds_raw:
            if k in KIND_NAMES:  # the lower-case names are taken too
                kinds.add(k)
            elif k in JAEGER_KINDS:
                kinds.add(JAEGER_KINDS[k])
            else:
                raise BadRequest(f"unable to parse param 'spanKind': unsupported span kind: {k[:40]!r}")

        def ms(name, default, minimum=1):
            raw = args.get(name)
            if not raw:
                return default
            try:
                v = int(raw)
            except ValueError:
                raise BadRequest(f"unable to parse param '{name}': {raw[:40]!r} is not an integer "
                                 "(milliseconds)") from None
            if v < minimum:
                raise BadRequest(f"unable to parse param '{name}': must be at least {minimum}")
            return v
        end_ms = ms("endTs", time.time_ns() // 1_000_000, 0)
        lookback = ms("lookback", JAEGER_LOOKBACK_MS)
        step = ms("step", JAEGER_STEP_MS)
        rate_per = ms("ratePer", JAEGER_RATE_PER_MS)
        if rate_per > JAEGER_MAX_RATE_PER_MS:
            raise BadRequest(f"unable to parse param 'ratePer': at most {JAEGER_MAX_RATE_PER_MS} ms")
        if lookback > end_ms:
            raise BadRequest("unable to parse param 'lookback': reaches before 1970")
        if lookback // step + 1 > MAX_POINTS:
            raise BadRequest(f"unable to parse param 'step': {lookback // step + 1} points; at most {MAX_POINTS}")
        return services, by_op, kinds, end_ms, lookback, step, rate_per

    async def jaeger(what: str, q: float | None = None):
        params = jaeger_params(request.args)
        store = need_store()
        return jsonify(await call(jaeger_metrics, store, what, *params, q))

    @bp.get("/api/metrics/latencies")
    async def jaeger_latencies():
        """Jaeger Monitor API: the latency quantile (ms) per service (and operation)."""
        raw = request.args.get("quantile")
        if not raw:
            raise BadRequest("unable to parse param 'quantile': required (a number in [0, 1])")
        try:
            q = float(raw)
        except ValueError:
            raise BadRequest(f"unable to parse param 'quantile': {raw[:40]!r} is not a number") from None
        if not 0 <= q <= 1:
            raise BadRequest(f"unable to parse param 'quantile': must be in [0, 1], got {raw[:40]!r}")
        return await jaeger("latencies", q)

    @bp.get("/api/metrics/calls")
    async def jaeger_calls():
        """Jaeger Monitor API: calls per second per service (and operation)."""
        return await jaeger("calls")

    @bp.get("/api/metrics/errors")
    async def jaeger_errors():
        """Jaeger Monitor API: the fraction of calls in error per service (and operation)."""
        return await jaeger("errors")

    @bp.get("/api/metrics/minstep")
    async def jaeger_minstep():
        """Jaeger Monitor API: the smallest step (ms) between two distinct values: one bucket."""
        store = need_store()
        return jsonify(envelope(store.bucket_s * 1000))

    @bp.get("/api/v1/export/traces")
    async def export_traces():
        """The summaries of a search's traces (api_v3 ``query.*``), one row per trace, CSV or JSON."""
        args = request.args
        fmt = _format(args)
        query = _export_query(args)
        rows = await call(export_rows, reader, query)
        if fmt == "csv":
            return _csv_response(export_csv(rows), "traces.csv")
        return jsonify({"traces": rows})

    return bp
