"""Measure stage: search and trace-by-ID latency over a loaded store, against the bitmap floor.

``python -m perf search --spans 10000000`` runs, in one go:

1. starts ``clew serve`` on a fresh data directory (or ``--data-dir`` to reuse one) and loads
   ``--spans`` synthetic spans over OTLP/HTTP (the load generator's trace shapes: services with
   their own attribute keys, errors, events, links), recording a sample of trace IDs;
2. measures, over HTTP from one client, trace by ID (``/api/traces/{id}``) and a search by
   service + tag + minimum duration over the last hour with limit 20 (``/api/traces``), each
   repeated ``--repeat`` times, rotating services;
3. stops the server and opens the same store in this process: the time to open (index
   checkpoint load), the index's memory (RSS before/after) and disk (the ``index`` databases),
   then the same searches through ``HotStore.find_traces`` (store only, no HTTP) and with
   bitmaps alone (pyroaring intersections of the service and tag bitmaps of every partition in
   the window: the floor).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import psutil

from perf.loadgen import SpawnedServer
from perf.traces import RequestPool, TraceShape, TraceSynth

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spans", type=int, default=10_000_000, help="spans to load (0: reuse --data-dir as is)")
    p.add_argument("--data-dir", type=Path, help="data directory (default: a new temporary one)")
    p.add_argument("--repeat", type=int, default=300, help="measured requests per query kind")
    p.add_argument("--concurrency", type=int, default=6, help="loader connections")
    p.add_argument("--min-duration-ms", type=float, default=1.0, help="the search's minDuration")
    p.add_argument("--server-set", action="append", default=[], metavar="K=V")
    p.add_argument("--out", type=Path, help="JSON report (default perf/results/search-<ts>.json)")


def _pct(values: list[float]) -> dict:
    a = np.array(values)
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "mean_ms": round(statistics.fmean(a), 3)}


def _load(port: int, spans: int, concurrency: int) -> tuple[list[bytes], float]:
    pool = RequestPool(TraceShape(), 256)
    lock = threading.Lock()
    sent = [0]
    sample: list[bytes] = []
    started = time.monotonic()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if sent[0] >= spans:
                    return
                body, n, group = pool.next_send()
                sent[0] += n
                if len(sample) < 5000 and sent[0] // n % 7 == 0:
                    sample.append(bytes(group.tids[0]))
            while True:
                conn.request("POST", "/v1/traces", body=bytes(body),
                             headers={"Content-Type": "application/x-protobuf"})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    break
                if r.status in (429, 503):
                    time.sleep(0.05)
                    continue
                raise SystemExit(f"load: HTTP {r.status}")

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    last = time.monotonic()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        if time.monotonic() - last >= 15:
            last = time.monotonic()
            el = last - started
            print(f"  loaded {sent[0]:,} spans in {el:.0f} s ({sent[0] / el:,.0f} spans/s)", flush=True)
    return sample, time.monotonic() - started


def _searches(shape: TraceShape) -> list[tuple[str, str, bool]]:
    """(service, boolean attribute key, value) per service: a tag every service's spans carry."""
    synth = TraceSynth(shape, 1)
    out = []
    for svc in synth.services:
        keys = [k for k, t in svc.attr_keys[:shape.attrs] if t == "b"]
        if keys:
            out.append((svc.name, keys[0], True))
    return out


def _anon_bytes(pid: int | None = None) -> int:
    """Anonymous resident memory (RssAnon): the heap, without the store's mapped files."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return psutil.Process(pid).memory_info().rss


def _settle(pid: int, idle_pct: float = 15.0, quiet_s: float = 3.0, limit_s: float = 300.0) -> float:
    """Seconds until the server's CPU stays under ``idle_pct`` for ``quiet_s`` (at most ``limit_s``)."""
    proc = psutil.Process(pid)
    started = time.monotonic()
    quiet_since = None
    proc.cpu_percent(None)
    while time.monotonic() - started < limit_s:
        time.sleep(0.5)
        if proc.cpu_percent(None) < idle_pct:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_s:
                break
        else:
            quiet_since = None
    return round(time.monotonic() - started, 1)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def run(args) -> int:
    from collector.config import IndexConfig, LimitsConfig, StoreConfig
    from collector.store import criteria as C
    from collector.store.hot import HotStore
    from collector.store.terms import W_SPAN, term_hash

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="clew-search-")) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    report = {"command": " ".join(sys.argv), "spans": args.spans, "data_dir": str(data_dir),
              "cpu": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    started = time.monotonic()
    server = SpawnedServer(args.server_set, timeout=3600, keep_data=True, data_dir=data_dir)
    print(f"server ready in {time.monotonic() - started:.1f} s (pid {server.pid})", flush=True)
    sample: list[bytes] = []
    if args.spans:
        sample, took = _load(server.ports["otlp_http"], args.spans, args.concurrency)
        report["load"] = {"seconds": round(took, 1), "spans_per_s": round(args.spans / took)}
        print(f"loaded {args.spans:,} spans in {took:.0f} s ({args.spans / took:,.0f} spans/s)", flush=True)
    report["server_anon_rss_mb_after_load"] = round(_anon_bytes(server.pid) / 2**20)
    if args.spans:  # let the index's background upkeep (merges, checkpoint) finish first
        report["settle_s"] = _settle(server.pid)
        print(f"server settled {report['settle_s']} s after the load", flush=True)
    searches = _searches(TraceShape())
    conn = http.client.HTTPConnection("127.0.0.1", server.ports["query"], timeout=60)
    if not sample:  # a store loaded earlier: take trace IDs from searches over every service
        for svc, _key, _value in searches:
            status, body = _get(conn, "/api/v3/trace-summaries?" + urlencode({
                "query.serviceName": svc, "query.searchDepth": 300,
                "query.startTimeMin": "2000-01-01T00:00:00Z", "query.startTimeMax": "2100-01-01T00:00:00Z"}))
            if status == 200:
                sample += [bytes.fromhex(s["traceId"]) for s in json.loads(body)["summaries"]]
    # trace by ID
    by_id, found = [], 0
    for i in range(args.repeat):
        if not sample:
            break
        tid = sample[(i * 7919) % len(sample)]
        t = time.perf_counter()
        status, body = _get(conn, f"/api/traces/{tid.hex()}")
        by_id.append((time.perf_counter() - t) * 1000)
        found += status == 200
    if by_id:
        report["trace_by_id_http"] = {**_pct(by_id), "found": found}
        print(f"trace by ID over HTTP: {report['trace_by_id_http']}", flush=True)
    # search: service + tag + minDuration, last hour, limit 20
    http_ms, hits = [], []
    for i in range(args.repeat):
        svc, key, value = searches[i % len(searches)]
        q = urlencode({"service": svc, "tags": json.dumps({key: "true" if value else "false"}),
                       "minDuration": f"{args.min_duration_ms}ms", "lookback": "1h", "limit": 20})
        t = time.perf_counter()
        status, body = _get(conn, f"/api/traces?{q}")
        http_ms.append((time.perf_counter() - t) * 1000)
        if status != 200:
            raise SystemExit(f"search answered {status}: {body[:300]!r}")
        hits.append(len(json.loads(body)["data"]))
    report["search_http"] = {**_pct(http_ms), "mean_traces": round(statistics.fmean(hits), 1)}
    print(f"search over HTTP: {report['search_http']}", flush=True)
    conn.close()
    server.stop()
    # in process: open time, index memory and disk, store-only and bitmap-only searches
    rss0 = _anon_bytes()
    t = time.perf_counter()
    store = HotStore(data_dir, StoreConfig(), LimitsConfig(), index=IndexConfig())
    report["open_s"] = round(time.perf_counter() - t, 2)
    rss1 = _anon_bytes()
    parts = store._snapshot()
    spans = sum(len(p.index) for p in parts)
    index_disk = 0
    total_disk = 0
    for p in parts:
        with p.env.begin() as txn:
            st = txn.stat(p.dbs[b"index"])
        index_disk += st["psize"] * (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"])
        total_disk += p.disk_bytes()
    per_m = 1e6 / max(spans, 1)
    report["index"] = {"spans": spans, "partitions": len(parts),
                       "memory_mb_per_million_spans": round((rss1 - rss0) / 2**20 * per_m, 1),
                       "server_memory_mb_per_million_spans": round(report["server_anon_rss_mb_after_load"] * per_m, 1),
                       "disk_mb_per_million_spans": round(index_disk / 2**20 * per_m, 1),
                       "store_disk_mb_per_million_spans": round(total_disk / 2**20 * per_m, 1)}
    print(f"index: {report['index']}, open {report['open_s']} s", flush=True)
    now = time.time_ns()
    store_ms, floor_ms = [], []
    for i in range(args.repeat):
        svc, key, value = searches[i % len(searches)]
        text = b"true" if value else b"false"
        end = max(p.max_end for p in parts)  # the last hour of the data, as the server saw it
        q = C.TraceQuery(span=C.all_of(C.Cond(C.SERVICE, "=", svc), C.Cond(C.Attr("any", key), "=", value),
                                       C.Cond(C.DURATION, ">=", int(args.min_duration_ms * 1e6))),
                         start_min_ns=end - 3600 * 10**9, start_max_ns=end, limit=20)
        t = time.perf_counter()
        store.find_traces(q)
        store_ms.append((time.perf_counter() - t) * 1000)
        h = term_hash(W_SPAN, key.encode(), text)
        t = time.perf_counter()
        for p in store._search_parts(q.start_min_ns, q.start_max_ns):
            ix = p.index
            o = ix.svc_map.get(svc)
            if o is not None:
                ix.svc_bm[o] & ix._term_spans(h, W_SPAN)
        floor_ms.append((time.perf_counter() - t) * 1000)
    del now
    report["search_store"] = _pct(store_ms)
    report["search_bitmaps_floor"] = _pct(floor_ms)
    report["ratio_http_p99_to_floor_p99"] = round(report["search_http"]["p99_ms"] / max(report["search_bitmaps_floor"]["p99_ms"], 1e-6), 1)
    print(f"search in the store: {report['search_store']}")
    print(f"bitmaps alone (floor): {report['search_bitmaps_floor']}")
    store.close()
    out = args.out or ROOT / "perf" / "results" / f"search-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")
    return 0
