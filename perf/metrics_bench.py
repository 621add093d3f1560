"""Measure stage: the 7-day metrics query of one service over a store of many services.

``python -m perf metrics`` builds a ``SeriesStore`` in this process (``--data-dir``, default a
fresh directory under ``perf/results/``): ``--services`` × ``--operations`` span series with
``--calls`` observations in every minute of ``--days`` days, durations drawn per series from a
lognormal around its own median (so every minute holds a small synthetic histogram and every
hour a wider one).  The store's clock is a fake one stepped through the days (``add`` then
``flush`` every six simulated hours, as the server's flush thread would), so the data lands in
both resolutions exactly as live ingest writes it.  ``analytics.fine_retention_s`` is set to
``--days`` + 1 days so no fine bucket is pruned.  With ``--data-dir`` pointing at a store built
before (``build.json`` in it), the build is skipped.

It then times ``--runs`` calls of ``query.metrics_api.metrics_series`` — the function
``GET /api/v1/metrics`` runs in its worker thread, with the route's defaults: all operations of
one service merged, the last 7 days, the default step (1 h, so at most 300 points), quantiles
0.5/0.95/0.99 — each for a different service, in process (no HTTP: the route adds parameter
parsing and JSON encoding of 169 points).  It reports p50/p95/max of those runs against the
target (p95 ≤ 200 ms), plus the same for ``groupBy=operation`` and a 1-hour query at 1-minute
steps, and writes ``perf/results/metrics-<ts>.json`` (or ``--out``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from collector.analytics.series import SeriesStore
from collector.config import AnalyticsConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "perf" / "results"
NS = 1_000_000_000
HOUR = 3600
TARGET_P95_MS = 200.0
QS = (0.5, 0.95, 0.99)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--services", type=int, default=500)
    p.add_argument("--operations", type=int, default=10, help="operations per service")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--calls", type=int, default=2, help="observations per series and minute")
    p.add_argument("--runs", type=int, default=50, help="timed queries (each for another service)")
    p.add_argument("--data-dir", type=Path, help="the store (built there unless build.json is present)")
    p.add_argument("--keep", action="store_true", help="keep a store built in a fresh directory")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, help="JSON report (default perf/results/metrics-<ts>.json)")


def _config(days: int) -> AnalyticsConfig:
    return dataclasses.replace(AnalyticsConfig(), fine_retention_s=(days + 1) * 86400.0,
                               retention_s=max(90, days + 2) * 86400.0, lateness_s=2 * HOUR,
                               max_series=1_000_000, map_size_bytes=64 * 2**30)


def build(path: Path, args, end_s: int) -> dict:
    """Write ``args.days`` days of minute data for every series, ending at ``end_s``."""
    clock = [0.0]
    store = SeriesStore(path, _config(args.days), clock=lambda: clock[0])
    rng = np.random.default_rng(args.seed)
    keys = [("span", f"svc-{s:04d}", f"op-{o:02d}", "server")
            for s in range(args.services) for o in range(args.operations)]
    sids = np.array([store.series_id(k) for k in keys], np.int64)
    medians = rng.lognormal(np.log(20e6), 0.8, len(sids))  # ~20 ms, per series
    start_s = end_s - args.days * 86400
    chunk_s = 6 * HOUR
    per_min = len(sids) * args.calls
    t0 = time.perf_counter()
    spans = 0
    for a in range(start_s, end_s, chunk_s):
        b = min(end_s, a + chunk_s)
        for h in range(a, b, HOUR):
            clock[0] = h + HOUR / 2  # observations of hour h arrive during hour h
            minutes = np.arange(h, min(b, h + HOUR), 60, dtype=np.int64)
            n = len(minutes) * per_min
            ids = np.tile(np.repeat(sids, args.calls), len(minutes))
            start = (np.repeat(minutes, per_min) * NS + rng.integers(0, 60 * NS, n))
            dur = np.round(np.tile(np.repeat(medians, args.calls), len(minutes)) * rng.lognormal(0, 0.35, n))
            err = rng.random(n) < 0.01
            store.add(ids, start, dur.astype(np.int64), err)
            spans += n
        clock[0] = b
        store.flush()
        done = (b - start_s) / (end_s - start_s)
        print(f"\rbuilt {done:6.1%}  {spans / 1e6:8.1f} M observations  {time.perf_counter() - t0:7.1f} s",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    stats = store.stats()
    store.close()
    info = {"services": args.services, "operations": args.operations, "days": args.days,
            "calls_per_minute": args.calls, "series": len(keys), "observations": spans,
            "end_s": end_s, "build_seconds": round(time.perf_counter() - t0, 1),
            "disk_bytes": stats["disk_bytes"]}
    (path / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _time(fn, runs: int) -> dict:
    times = []
    for i in range(runs):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"runs": runs, "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, int(np.ceil(0.95 * len(times))) - 1)], 2),
            "max_ms": round(times[-1], 2)}


def run(args) -> int:
    from query.metrics_api import default_step, metrics_series

    fresh = args.data_dir is None
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(args.data_dir or tempfile.mkdtemp(prefix="metrics-bench-", dir=RESULTS_DIR))
    marker = path / "build.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        print(f"using the store built in {path}", file=sys.stderr)
    else:
        end_s = int(time.time()) // HOUR * HOUR + 17 * 60  # "now": 17 minutes into an hour
        info = build(path, args, end_s)
    end_s = info["end_s"]
    store = SeriesStore(path, _config(info["days"]), clock=lambda: float(end_s))
    services = info["services"]
    week = (end_s - 7 * 86400, end_s)
    step = default_step(week[1] - week[0], store.bucket_s)

    def merged(i):
        out = metrics_series(store, f"svc-{(i * 37) % services:04d}", None, None, (), *week, step, QS)
        assert out["series"][0]["totals"]["calls"] > 0

    def grouped(i):
        metrics_series(store, f"svc-{(i * 41 + 3) % services:04d}", None, None, ("operation",), *week, step, QS)

    def last_hour(i):
        metrics_series(store, f"svc-{(i * 43 + 5) % services:04d}", None, None, (), end_s - HOUR, end_s, 60, QS)

    merged(0)  # warm the page cache once
    report = {"kind": "clew-perf metrics", "command": " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "store": info, "step_s": step,
              "how": "in process: query.metrics_api.metrics_series (the function GET /api/v1/metrics runs)",
              "week_one_service": _time(merged, args.runs),
              "week_one_service_by_operation": _time(grouped, args.runs),
              "hour_one_service_1m_steps": _time(last_hour, args.runs),
              "target_p95_ms": TARGET_P95_MS}
    store.close()
    ok = report["week_one_service"]["p95_ms"] <= TARGET_P95_MS
    report["target_met"] = ok
    out = args.out or RESULTS_DIR / f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    w = report["week_one_service"]
    print(f"store: {info['series']} series, {info['days']} days, {info['disk_bytes'] / 2**30:.2f} GiB")
    print(f"7-day query, one service (step {step} s): p50 {w['p50_ms']} ms, p95 {w['p95_ms']} ms, "
          f"max {w['max_ms']} ms over {w['runs']} runs (target p95 <= {TARGET_P95_MS:g} ms: "
          f"{'met' if ok else 'NOT met'})")
    g = report["week_one_service_by_operation"]
    h = report["hour_one_service_1m_steps"]
    print(f"7-day, groupBy=operation: p50 {g['p50_ms']} ms, p95 {g['p95_ms']} ms; "
          f"1 hour at 1-minute steps: p50 {h['p50_ms']} ms, p95 {h['p95_ms']} ms")
    print(f"report: {out}")
    if fresh and not args.keep:
        import shutil
        shutil.rmtree(path, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    sys.exit(run(p.parse_args()))
