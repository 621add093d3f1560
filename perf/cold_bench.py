"""Measure stage: the cold tier on the harness's corpus — bytes per span, trace by ID, 7-day search,
ingest while partitions move.

``python -m perf cold --part all`` runs four parts (each selectable with ``--part``) and writes
one JSON report (``perf/results/cold-<ts>.json``) and a summary to stdout:

1. **bytes**: a ``HotStore`` in this process (fake clock, ``store.partition_s=3600``) takes
   ``--spans`` spans of the load generator's corpus (``perf.traces.RequestPool`` with the
   default ``TraceShape``), each request decoded as the receivers do
   (``collector.codec.decode_export_request``) and written with ``store.write``.  Reported per
   span: the raw OTLP protobuf bytes, the hot partition on disk after an index checkpoint (and
   per LMDB database), the cold file after ``Lifecycle.move`` (and per section; the index section
   per key tag and, for its postings, per attribute key; the blocks split into entry headers
   and span bytes), each against the raw size and the targets.  A smaller control store
   (``--control-spans``) holds the same corpus with every padding value re-drawn at random per
   send (see "The corpus's padding" below).
2. **trace**: ``--repeat`` random trace IDs of that cold file read with ``store.get_trace`` in
   process, then over HTTP (``GET /api/traces/{id}``) from a ``clew serve`` on the same data
   directory.
3. **search**: ``--hours`` hourly partitions (``--spans-per-hour`` each) built in process with a
   fake clock stepping an hour per partition and ending at the current hour, span times inside
   their partition's hour, every partition moved to a cold file; then a ``clew serve`` on that
   directory answers a Jaeger search (``/api/traces?service=&tags=&lookback=7d&limit=20``) and a
   TraceQL search (``/api/search?q=&start=&end=``, 7 days), the first query after the server
   starts (its cold-index cache empty) apart from the ``--search-repeat`` that follow, for each
   ``store.cold_index_cache_spans`` in ``--cache-spans``; server RSS after each.
4. **ingest**: the load generator (``perf.loadgen.LoadRun``) at ``--ingest-rate`` spans/s for
   ``--ingest-duration`` s against fresh servers with ``store.partition_s=60`` and
   ``store.lifecycle_interval_s=1``: ones whose partitions never move (``store.hot_window_s``
   huge) and ones whose partitions move a second after they close (``store.hot_window_s=1``),
   alternating for ``--ingest-rounds`` pairs.  Ack latency p99 of the two kinds of run, side by
   side; and the requests answered while a move ran (a move runs from its partition's due time
   until its cold file appears, watched in the data directory; one still running when the run
   ends counts until the end) against the rest of those runs, and against the same seconds
   after a partition closed in the runs without moves (a new partition opens then too); pooled
   over rounds.

The corpus's padding: ``TraceSynth`` pads every span to ``span_bytes`` with a string cut from one
128 KiB random text shared by the whole corpus.  Random per byte, but each padding value repeats
pieces of that text, so a compressor with a long window or a trained dictionary (the cold tier
has both) finds matches no real payload would offer.  The control store shows what the same
corpus costs when every padding value is fresh random text of the same length and alphabet.

The OS page cache is warm throughout (files were just written; caches are not dropped on a
shared machine): "first query" means the server's own caches are empty, not the disk's.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import psutil
import zstandard

from perf import loadgen
from perf.loadgen import SpawnedServer
from perf.traces import PAD_KEY, RequestPool, TraceShape, TraceSynth, _varint

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600
TEMPO_VPARQUET_BYTES_PER_SPAN = 57  # the published figure the targets are set against
TARGETS = {"cold_ratio": 0.15, "hot_ratio": 0.6, "trace_p99_ms": 20.0, "search_p95_ms": 1000.0,
           "ingest_p99_ratio": 1.5}
# Settings for a server reading the benchmark's data: nothing moves or expires while it runs.
KEEP = ["store.hot_window_s=864000", "store.cold_window_s=2592000"]
_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8)
_PAD_MARK = b"\x0a" + bytes((len(PAD_KEY),)) + PAD_KEY.encode() + b"\x12"
INDEX_TAGS = {"C": "span columns", "T": "trace IDs", "S": "service names", "O": "operations",
              "R": "resource/scope records", "D": "value dictionary", "K": "attribute keys",
              "P": "postings rows (rare terms)", "A": "postings arena (rare values)",
              "B": "term bitmaps", "o": "operation bitmaps", "k": "kind bitmaps",
              "t": "status bitmaps", "r": "record bitmaps", "s": "service bitmaps", "H": "header"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--part", choices=("bytes", "trace", "search", "ingest", "all"), default="all")
    g = p.add_argument_group("bytes and trace")
    g.add_argument("--spans", type=int, default=1_000_000, help="spans in the one-partition store")
    g.add_argument("--control-spans", type=int, default=200_000,
                   help="spans in the control store with fresh random padding (0: none)")
    g.add_argument("--repeat", type=int, default=2000, help="trace-by-ID reads, in process and over HTTP")
    g = p.add_argument_group("search")
    g.add_argument("--hours", type=int, default=168, help="hourly cold files (168: 7 days)")
    g.add_argument("--spans-per-hour", type=int, default=20_000)
    g.add_argument("--search-repeat", type=int, default=30,
                   help="queries of each kind after the first, per cache setting")
    g.add_argument("--cache-spans", default="default,all,1000000",
                   help="store.cold_index_cache_spans values to run with: numbers, 'default' "
                        "(the configured default) and 'all' (every span of the search data)")
    g = p.add_argument_group("ingest")
    g.add_argument("--ingest-rate", type=float, default=20_000, help="spans/s, open loop")
    g.add_argument("--ingest-duration", type=float, default=150, help="measured seconds per run")
    g.add_argument("--ingest-warmup", type=float, default=10)
    g.add_argument("--ingest-partition-s", type=int, default=60)
    g.add_argument("--ingest-rounds", type=int, default=2,
                   help="pairs of runs (without moves, with moves), alternating in order")
    g = p.add_argument_group("general")
    g.add_argument("--pool", type=int, default=256, help="distinct request bodies of the corpus")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--work-dir", type=Path, help="where the data directories go (default: a new temp dir)")
    g.add_argument("--keep-data", action="store_true", help="keep the data directories")
    g.add_argument("--out", type=Path, help="JSON report (default perf/results/cold-<ts>.json)")


# ---------------------------------------------------------------------------- helpers

class FakeClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _pct(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    if not len(a):
        return {"n": 0}
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "mean_ms": round(statistics.fmean(a), 3)}


def _say(msg: str) -> None:
    print(msg, flush=True)


def _rss(pid: int) -> dict:
    """RSS and anonymous RSS (the process's own memory, without mapped store files), MB."""
    out = {"rss_mb": round(psutil.Process(pid).memory_info().rss / 2**20, 1)}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            out["rss_anon_mb"] = round(int(line.split()[1]) / 1024, 1)
    return out


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


class Corpus:
    """The load generator's request bodies, re-identified per send and stamped at a chosen time.

    ``body(at_ns)`` copies the next pooled body, gives its traces and spans fresh random IDs (as
    ``RequestPool.next_send`` does) and shifts every timestamp so its spans end shortly before
    ``at_ns``.  With ``fresh_padding`` every padding value (``app.payload``) is overwritten with
    new random text of the same length and alphabet, so no two spans share padding."""

    def __init__(self, pool: RequestPool, seed: int, fresh_padding: bool = False):
        self.pool = pool
        self.rng = np.random.default_rng(seed + 104729)
        self.fresh_padding = fresh_padding
        self._i = 0
        self._pads = [self._pad_positions(t.body) for t in pool.templates] if fresh_padding else None

    @staticmethod
    def _pad_positions(body: bytes) -> np.ndarray:
        """Byte positions of every padding string in a serialized request."""
        spans = []
        at = body.find(_PAD_MARK)
        while at >= 0:
            pos = at + len(_PAD_MARK)
            _n, pos = _varint(body, pos)  # AnyValue length
            if body[pos] != 0x0A:  # AnyValue.string_value
                raise ValueError("unexpected padding value type")
            n, pos = _varint(body, pos + 1)
            spans.append(np.arange(pos, pos + n))
            at = body.find(_PAD_MARK, pos + n)
        return np.concatenate(spans) if spans else np.zeros(0, np.intp)

    def padding_bytes(self) -> float:
        """Mean padding bytes per span over the pool."""
        return sum(len(self._pad_positions(t.body)) for t in self.pool.templates) / \
            sum(t.nspans for t in self.pool.templates)

    def body(self, at_ns: int) -> tuple[bytes, int]:
        t = self.pool.templates[self._i]
        pads = self._pads[self._i] if self._pads else None
        self._i = (self._i + 1) % len(self.pool.templates)
        out = bytearray(t.body)
        view = np.frombuffer(out, dtype=np.uint8)
        rnd = np.frombuffer(self.rng.bytes(16 * t.ntraces + 8 * t.nids), dtype=np.uint8)
        view[t.tid_pos] = rnd[: 16 * t.ntraces].reshape(t.ntraces, 16)[t.tid_of]
        view[t.sid_pos] = rnd[16 * t.ntraces:].reshape(t.nids, 8)[t.sid_of]
        stamps = (t.ts_base.astype(np.int64) + (at_ns - self.pool.built_ns)).astype("<u8")
        view[t.ts_pos] = stamps.view(np.uint8).reshape(-1, 8)
        if pads is not None and len(pads):
            view[pads] = _B64[self.rng.integers(0, 64, len(pads))]
        del view
        return bytes(out), t.nspans


def _write_hour(store, clock: FakeClock, corpus: Corpus, start_s: int, spans: int) -> tuple[int, int]:
    """Write ``spans`` spans arriving through the hour from ``start_s``, clock and span times in
    step; returns (spans, raw OTLP bytes)."""
    from collector.codec import decode_export_request

    per = corpus.pool.shape.spans_per_request
    requests = max(1, -(-spans // per))
    written = raw = 0
    for i in range(requests):
        at_s = start_s + 5 + (HOUR - 10) * (i + 1) / (requests + 1)
        clock.now = at_s
        body, n = corpus.body(int(at_s * 1e9))
        raw += len(body)
        written += n
        store.write([decode_export_request(body)])
    return written, raw


def _new_store(data_dir: Path, clock: FakeClock, **kw):
    from collector.config import LimitsConfig, StoreConfig
    from collector.store.hot import HotStore
    from collector.store.lifecycle import Lifecycle

    cfg = StoreConfig(partition_s=HOUR, **kw)
    store = HotStore(data_dir, cfg, LimitsConfig(), clock=clock)
    return store, Lifecycle(store, data_dir, cfg, clock=clock), cfg


# ---------------------------------------------------------------------------- part 1: bytes

def _hot_breakdown(part) -> dict:
    """Pages per named LMDB database of a hot partition, in bytes."""
    out = {}
    with part.env.begin() as txn:
        for name, db in part.dbs.items():
            st = txn.stat(db)
            out[name.decode()] = st["psize"] * (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"])
    return out


def _index_breakdown(cold, spans: int, level: int) -> tuple[list, list]:
    """The index section per key tag (raw bytes; zstd estimate on each group) and the postings
    (rare terms) per attribute key."""
    from collector.store.index import RARE

    zc = zstandard.ZstdCompressor(level=level)
    groups: dict[str, list] = {}
    for key, value in cold.index_entries():
        groups.setdefault(chr(key[0]), []).append(bytes(value))
    tags = []
    for tag, values in groups.items():
        raw = sum(len(v) for v in values)
        tags.append({"tag": tag, "what": INDEX_TAGS.get(tag, "?"), "entries": len(values),
                     "raw_bytes_per_span": round(raw / spans, 2),
                     "zstd_bytes_per_span": round(len(zc.compress(b"".join(values))) / spans, 2)})
    tags.sort(key=lambda r: -r["zstd_bytes_per_span"])
    keys = []
    rows = np.frombuffer(b"".join(groups.get("P", [])), RARE)
    arena = b"".join(groups.get("A", []))
    names = {}
    for value in groups.get("K", []):
        for k, _where, name in json.loads(value):
            names[k] = name
    if len(rows):
        order = np.argsort(rows["key"], kind="stable")
        ks, first = np.unique(rows["key"][order], return_index=True)
        bounds = list(first) + [len(order)]
        for i, k in enumerate(ks.tolist()):
            sel = rows[order[bounds[i]:bounds[i + 1]]]
            values = b"".join(arena[o:o + n] for o, n in zip(sel["toff"].tolist(), sel["tlen"].tolist()))
            keys.append({"key": names.get(k, f"#{k:x}"), "rows": len(sel),
                         "row_bytes_per_span": round(len(sel) * RARE.itemsize / spans, 2),
                         "value_bytes_per_span": round(len(values) / spans, 2),
                         "values_zstd_bytes_per_span": round(len(zc.compress(values)) / spans, 2) if values else 0.0})
        keys.sort(key=lambda r: -(r["row_bytes_per_span"] + r["value_bytes_per_span"]))
    return tags, keys


def _block_breakdown(cold, spans: int, level: int, sample: int = 32) -> dict:
    """Blocks: stored bytes per span, split (estimated on ``sample`` blocks, compressed apart
    with the file's dictionary) into the entry-header columns and the span bytes."""
    from collector.store.chunk import HEADER_DTYPE

    zc = zstandard.ZstdCompressor(level=level)
    zd = zstandard.ZstdCompressor(level=level, dict_data=cold._zdict) if cold._zdict else zc
    picks = np.unique(np.linspace(0, len(cold.blocks) - 1, min(sample, len(cold.blocks))).astype(int))
    cols = area = cols_z = area_z = area_plain = stored = n = 0
    for b in picks.tolist():
        hdr, _offs, span_area = cold.block(b)
        raw = b"".join(np.ascontiguousarray(hdr[f]).tobytes() for f in HEADER_DTYPE.names)
        cols += len(raw)
        cols_z += len(zc.compress(raw))
        area += len(span_area)
        area_z += len(zd.compress(bytes(span_area)))
        area_plain += len(zc.compress(bytes(span_area)))
        stored += int(cold.blocks["stored"][b])
        n += len(hdr)
    total = float(cold.blocks["stored"].sum())
    share = (cols_z / (cols_z + area_z)) if cols_z + area_z else 0.0
    return {"stored_bytes_per_span": round(total / spans, 2),
            "raw_bytes_per_span": round(float(cold.blocks["raw"].sum()) / spans, 2),
            "blocks": len(cold.blocks), "sampled_blocks": len(picks),
            "entry_headers_raw_bytes_per_span": round(cols / n, 2),
            "span_bytes_raw_per_span": round(area / n, 2),
            "est_entry_headers_bytes_per_span": round(total / spans * share, 2),
            "est_span_bytes_per_span": round(total / spans * (1 - share), 2),
            "span_bytes_zstd_without_dictionary_per_span": round(area_plain / n, 2),
            "span_bytes_zstd_with_dictionary_per_span": round(area_z / n, 2)}


def build_one(data_dir: Path, spans: int, corpus: Corpus, detail: bool) -> tuple[dict, object]:
    """One hourly partition of ``spans`` spans, checkpointed, measured, moved, measured.
    Returns the figures and the open store (its cold file in place)."""
    end = int(time.time()) // HOUR * HOUR
    start_s = end - 3 * HOUR  # well inside any server's cold window
    clock = FakeClock(start_s + 1)
    store, life, cfg = _new_store(data_dir, clock)
    t = time.perf_counter()
    written, raw = _write_hour(store, clock, corpus, start_s, spans)
    write_s = time.perf_counter() - t
    store._await_index()  # every acknowledged write indexed (the move waits the same way)
    part = store.partitions[start_s]
    part.checkpoint()
    hot = part.disk_bytes()
    hot_dbs = _hot_breakdown(part)
    clock.now = start_s + HOUR + 1
    t = time.perf_counter()
    cold = life.move(part)
    move_s = time.perf_counter() - t
    if cold is None:
        raise SystemExit("the move failed (see the log)")
    life._close_retired(force=True)  # the moved partition's environment (no thread runs)
    n = written
    out = {"spans": n, "traces": cold.traces, "write_s": round(write_s, 1),
           "write_spans_per_s": round(n / write_s), "move_s": round(move_s, 1),
           "raw_otlp_bytes_per_span": round(raw / n, 1),
           "hot_bytes_per_span": round(hot / n, 1), "hot_ratio": round(hot / raw, 3),
           "cold_bytes_per_span": round(cold.size / n, 1), "cold_ratio": round(cold.size / raw, 3)}
    if detail:
        out["hot_databases_bytes_per_span"] = {k: round(v / n, 1) for k, v in hot_dbs.items()}
        out["hot_files_vs_pages_bytes_per_span"] = round((hot - sum(hot_dbs.values())) / n, 1)
        out["cold_sections"] = {name: {"stored_bytes_per_span": round(s[1] / n, 2),
                                       "raw_bytes_per_span": round(s[2] / n, 2)}
                                for name, s in cold.sections.items()}
        out["cold_blocks"] = _block_breakdown(cold, n, cfg.cold_compression_level)
        tags, keys = _index_breakdown(cold, n, cfg.cold_compression_level)
        out["cold_index_by_tag"] = tags
        out["cold_index_postings_by_key"] = keys[:12]
        out["cold_dictionary_bytes"] = int(cold.meta.get("dictionary_bytes", 0))
    return out, store


def part_bytes(args, root: Path, pool: RequestPool, report: dict) -> object:
    corpus = Corpus(pool, args.seed)
    pad = corpus.padding_bytes()
    _say(f"[bytes] writing {args.spans:,} spans into one hourly partition ...")
    figures, store = build_one(root / "bytes" / "data", args.spans, corpus, detail=True)
    figures["padding_bytes_per_span"] = round(pad, 1)
    figures["tempo_vparquet_bytes_per_span"] = TEMPO_VPARQUET_BYTES_PER_SPAN
    report["bytes"] = figures
    _print_bytes(figures)
    if args.control_spans and args.part in ("bytes", "all"):
        _say(f"[bytes] control: {args.control_spans:,} spans with fresh random padding ...")
        control, cstore = build_one(root / "control" / "data", args.control_spans,
                                    Corpus(pool, args.seed + 1, fresh_padding=True), detail=True)
        cstore.close()
        report["bytes_control_fresh_padding"] = control
        _print_bytes(control, control=True)
    return store


def _print_bytes(f: dict, control: bool = False) -> None:
    label = "control (fresh padding)" if control else "corpus"
    _say(f"  {label}: {f['spans']:,} spans, {f['traces']:,} traces; written in {f['write_s']} s "
         f"({f['write_spans_per_s']:,} spans/s in process), moved in {f['move_s']} s")
    _say(f"    raw OTLP {f['raw_otlp_bytes_per_span']} B/span | hot {f['hot_bytes_per_span']} B/span "
         f"({f['hot_ratio']}x raw, target <= {TARGETS['hot_ratio']}x) | cold {f['cold_bytes_per_span']} "
         f"B/span ({f['cold_ratio']}x raw, target <= {TARGETS['cold_ratio']}x) | Tempo vParquet "
         f"~{TEMPO_VPARQUET_BYTES_PER_SPAN} B/span")
    if "hot_databases_bytes_per_span" in f:
        _say("    hot LMDB pages per span: " + ", ".join(
            f"{k} {v}" for k, v in f["hot_databases_bytes_per_span"].items() if v)
             + f"; files beyond those pages {f['hot_files_vs_pages_bytes_per_span']}")
        _say("    cold sections per span (stored/raw): " + ", ".join(
            f"{k} {v['stored_bytes_per_span']}/{v['raw_bytes_per_span']}" for k, v in f["cold_sections"].items()))
        b = f["cold_blocks"]
        _say(f"    cold blocks {b['stored_bytes_per_span']} B/span: entry headers ~{b['est_entry_headers_bytes_per_span']} "
             f"(raw {b['entry_headers_raw_bytes_per_span']}), span bytes ~{b['est_span_bytes_per_span']} "
             f"(raw {b['span_bytes_raw_per_span']}; zstd without the dictionary "
             f"{b['span_bytes_zstd_without_dictionary_per_span']}, with it {b['span_bytes_zstd_with_dictionary_per_span']})")
        _say("    cold index by key tag (zstd estimate / raw, B/span): " + ", ".join(
            f"{r['tag']} {r['what']} {r['zstd_bytes_per_span']}/{r['raw_bytes_per_span']}"
            for r in f["cold_index_by_tag"] if r["raw_bytes_per_span"] >= 0.05))
        _say("    postings by attribute key (rows + values raw, values zstd, B/span): " + ", ".join(
            f"{r['key']} {r['row_bytes_per_span']}+{r['value_bytes_per_span']} ({r['values_zstd_bytes_per_span']})"
            for r in f["cold_index_postings_by_key"][:8]))
    if "padding_bytes_per_span" in f:
        _say(f"    of each raw span, {f['padding_bytes_per_span']} bytes are padding (app.payload)")


# ---------------------------------------------------------------------------- part 2: trace by ID

def part_trace(args, root: Path, store, report: dict) -> None:
    data_dir = root / "bytes" / "data"
    cold = next(iter(store.cold.values()))
    ids = cold.trace_ids()
    rnd = random.Random(args.seed)
    picks = [ids[rnd.randrange(len(ids))] for _ in range(args.repeat)]
    times, spans = [], 0
    for tid in picks:
        t = time.perf_counter()
        trace = store.get_trace(tid)
        times.append((time.perf_counter() - t) * 1e3)
        spans += len(trace.spans) if trace else 0
    store.close()
    inproc = {**_pct(times), "mean_spans": round(spans / len(picks), 1)}
    _say(f"[trace] in process over {len(picks):,} random traces of the cold file: p50 {inproc['p50_ms']} "
         f"p95 {inproc['p95_ms']} p99 {inproc['p99_ms']} ms (target p99 <= {TARGETS['trace_p99_ms']} ms)")
    server = SpawnedServer(KEEP, timeout=120, keep_data=True, data_dir=data_dir)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.ports["query"], timeout=60)
        times, found = [], 0
        for tid in picks:
            t = time.perf_counter()
            status, _body = _get(conn, f"/api/traces/{tid.hex()}")
            times.append((time.perf_counter() - t) * 1e3)
            found += status == 200
        conn.close()
        over_http = {**_pct(times), "found": found, "server": _rss(server.pid)}
    finally:
        server.stop()
    _say(f"[trace] over HTTP (/api/traces/{{id}}, Jaeger JSON): p50 {over_http['p50_ms']} p95 "
         f"{over_http['p95_ms']} p99 {over_http['p99_ms']} ms, {found}/{len(picks)} found")
    report["trace"] = {"in_process": inproc, "http": over_http, "traces_in_file": len(ids)}


# ---------------------------------------------------------------------------- part 3: 7-day search

def build_week(args, data_dir: Path, pool: RequestPool) -> dict:
    corpus = Corpus(pool, args.seed + 2)
    end = int(time.time()) // HOUR * HOUR  # the clock ends at the current hour
    first = end - args.hours * HOUR
    clock = FakeClock(first + 1)
    store, life, _cfg = _new_store(data_dir, clock)
    t0 = time.perf_counter()
    spans = raw = 0
    sizes = []
    for h in range(args.hours):
        start_s = first + h * HOUR
        n, r = _write_hour(store, clock, corpus, start_s, args.spans_per_hour)
        spans += n
        raw += r
        clock.now = start_s + HOUR + 1
        cold = life.move(store.partitions[start_s])
        if cold is None:
            raise SystemExit(f"moving partition {start_s} failed")
        life._close_retired(force=True)
        sizes.append(cold.size)
        if (h + 1) % 24 == 0 or h + 1 == args.hours:
            el = time.perf_counter() - t0
            _say(f"  {h + 1}/{args.hours} hours written and moved ({spans:,} spans, {el:.0f} s)")
    store.close()
    return {"hours": args.hours, "spans": spans, "first_partition_s": first, "end_s": end,
            "build_s": round(time.perf_counter() - t0, 1),
            "cold_bytes_per_span": round(sum(sizes) / spans, 1), "raw_otlp_bytes_per_span": round(raw / spans, 1),
            "cold_files_bytes": sum(sizes)}


def _search_terms(shape: TraceShape) -> list[tuple[str, str]]:
    """(service, a boolean span attribute that service's spans carry), per service."""
    out = []
    for svc in TraceSynth(shape, 1).services:
        keys = [k for k, t in svc.attr_keys[:shape.attrs] if t == "b"]
        if keys:
            out.append((svc.name, keys[0]))
    return out


def _queries(kind: str, terms, i: int, now_s: int) -> str:
    svc, key = terms[i % len(terms)]
    if kind == "jaeger":
        return "/api/traces?" + urlencode({"service": svc, "tags": json.dumps({key: "true"}),
                                           "lookback": "7d", "limit": 20})
    q = f'{{ resource.service.name = "{svc}" && status = error }}'
    return "/api/search?" + urlencode({"q": q, "start": now_s - 7 * 86400, "end": now_s, "limit": 20})


def _hits(kind: str, body: bytes) -> int:
    doc = json.loads(body)
    return len(doc["data"] if kind == "jaeger" else doc["traces"])


def part_search(args, root: Path, pool: RequestPool, report: dict) -> None:
    from collector.config import StoreConfig

    data_dir = root / "week" / "data"
    _say(f"[search] building {args.hours} hourly cold files of {args.spans_per_hour:,} spans ...")
    week = build_week(args, data_dir, pool)
    _say(f"  built in {week['build_s']} s: {week['spans']:,} spans, {week['cold_bytes_per_span']} B/span cold")
    default = StoreConfig().cold_index_cache_spans
    settings = []
    for item in args.cache_spans.split(","):
        item = item.strip()
        value = default if item == "default" else week["spans"] + 1 if item == "all" else int(item)
        label = item if item in ("default", "all") else "given"
        if any(v == value for v, _ in settings):
            for i, (v, names) in enumerate(settings):
                if v == value:
                    settings[i] = (v, f"{names}, {label}")
            continue
        settings.append((value, label))
    terms = _search_terms(TraceShape())
    runs = []
    for value, label in settings:
        holds = value >= week["spans"]
        row = {"cold_index_cache_spans": value, "as": label, "holds_every_file": holds}
        for kind in ("jaeger", "traceql"):
            # a fresh server per query kind: its first query finds every cold index unloaded
            server = SpawnedServer([*KEEP, f"store.cold_index_cache_spans={value}"], timeout=300,
                                   keep_data=True, data_dir=data_dir)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.ports["query"], timeout=600)
                now_s = int(time.time())
                rss0 = _rss(server.pid)
                t = time.perf_counter()
                status, body = _get(conn, _queries(kind, terms, 0, now_s))
                first = (time.perf_counter() - t) * 1e3
                if status != 200:
                    raise SystemExit(f"{kind} search answered {status}: {body[:300]!r}")
                first_hits = _hits(kind, body)
                times, hits = [], []
                for i in range(1, args.search_repeat + 1):
                    t = time.perf_counter()
                    status, body = _get(conn, _queries(kind, terms, i, now_s))
                    times.append((time.perf_counter() - t) * 1e3)
                    if status != 200:
                        raise SystemExit(f"{kind} search answered {status}: {body[:300]!r}")
                    hits.append(_hits(kind, body))
                conn.close()
                row[kind] = {"first_ms": round(first, 1), "first_traces": first_hits,
                             "repeated": {**_pct(times), "mean_traces": round(statistics.fmean(hits), 1) if hits else 0},
                             "server_at_start": rss0, "server_after": _rss(server.pid)}
            finally:
                server.stop()
            r = row[kind]
            _say(f"[search] cache {value:,} spans ({label}), {kind}: first {r['first_ms']} ms "
                 f"({r['first_traces']} traces); then p50 {r['repeated'].get('p50_ms')} p95 "
                 f"{r['repeated'].get('p95_ms')} p99 {r['repeated'].get('p99_ms')} ms "
                 f"(mean {r['repeated'].get('mean_traces')} traces); server RSS {r['server_after']['rss_mb']} MB "
                 f"(anon {r['server_after'].get('rss_anon_mb')} MB)")
        runs.append(row)
    report["search"] = {"data": week, "queries": {
        "jaeger": "/api/traces?service=S&tags={\"<boolean key of S>\":\"true\"}&lookback=7d&limit=20",
        "traceql": "/api/search?q={ resource.service.name = \"S\" && status = error }&start=now-7d&end=now&limit=20",
        "services_rotated": len(terms)}, "runs": runs}


# ---------------------------------------------------------------------------- part 4: ingest during moves

class _Stamped(array):
    """Latencies (s) with the ``perf_counter`` time each was recorded."""

    def __new__(cls):
        self = super().__new__(cls, "d")
        self.at = array("d")
        return self

    def append(self, value) -> None:
        super().append(value)
        self.at.append(time.perf_counter())


class _MoveWatch(threading.Thread):
    """Watches a data directory 20 times a second: the hot partitions seen, and when each cold
    file appeared (its move finished)."""

    def __init__(self, data_dir: Path):
        super().__init__(daemon=True)
        self.hot = data_dir / "hot"
        self.cold = data_dir / "cold"
        self.hot_seen: set[int] = set()
        self.moved: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            now = time.perf_counter()
            try:
                self.hot_seen.update(int(n) for n in os.listdir(self.hot) if n.isdigit())
                for name in os.listdir(self.cold):
                    if name.endswith(".clew") and name[:-5].isdigit():
                        self.moved.setdefault(int(name[:-5]), now)
            except OSError:
                continue


def _load_run(args, settings: list[str], pool: RequestPool) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    """One load run against a fresh server: (load report, latencies ms, the ``perf_counter`` time
    each was recorded, what the data directory showed: partitions and when their moves ended)."""
    a = argparse.ArgumentParser()
    loadgen.add_arguments(a)
    server = SpawnedServer(settings, timeout=120, keep_data=False)
    watch = _MoveWatch(server.data_dir)
    watch.start()
    try:
        la = a.parse_args(["--endpoint", f"127.0.0.1:{server.ports['otlp_http']}",
                           "--rate", str(args.ingest_rate), "--duration", str(args.ingest_duration),
                           "--warmup", str(args.ingest_warmup), "--quiet"])
        monitor = loadgen.ServerMonitor(server.pid, False)
        lr = loadgen.LoadRun(la, pool, "127.0.0.1", server.ports["otlp_http"], monitor,
                             f"127.0.0.1:{server.ports['query']}")
        lr.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        lr.meas.latency = stamped = _Stamped()
        try:
            import uvloop
            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        offset = time.time() - time.perf_counter()
        try:
            result = loop.run_until_complete(lr.run())
        finally:
            loop.close()
        ended = time.perf_counter()
        metrics = loadgen.scrape_metrics(f"127.0.0.1:{server.ports['query']}")
        moved = sum(v for lb, v in loadgen.metric_samples(metrics, "clew_store_lifecycle_total")
                    if lb.get("event") == "moved_partitions")
    finally:
        watch.stop.set()
        server.stop()
    result["moved_partitions"] = int(moved)
    seen = {"partitions": sorted(watch.hot_seen | set(watch.moved)), "moved": dict(watch.moved),
            "offset": offset, "ended": ended}
    return result, np.frombuffer(stamped, np.float64) * 1e3, np.frombuffer(stamped.at, np.float64), seen


def _windows(seen: dict, partition_s: int, after_s: float, length: float | None = None) -> list:
    """``perf_counter`` intervals ``(start, end, finished)``: from each partition's close +
    ``after_s`` until its cold file appeared (a move; one not finished when the run ended lasts
    until the end), or, with ``length``, for that many seconds (the same phase in a run where
    nothing moves)."""
    out = []
    for start_s in seen["partitions"]:
        lo = start_s + partition_s + after_s - seen["offset"]
        if lo >= seen["ended"]:
            continue
        if length is not None:
            out.append((lo, lo + length, True))
        elif start_s in seen["moved"]:
            out.append((lo, seen["moved"][start_s], True))
        else:
            out.append((lo, seen["ended"], False))
    return out


def _inside(at: np.ndarray, windows: list) -> np.ndarray:
    inside = np.zeros(len(at), bool)
    for lo, hi, _done in windows:
        inside |= (at >= lo) & (at <= hi)
    return inside


def _p99(values: np.ndarray) -> float | None:
    return round(float(np.percentile(values, 99)), 3) if len(values) else None


def part_ingest(args, pool: RequestPool, report: dict) -> None:
    ps = args.ingest_partition_s
    base = [f"store.partition_s={ps}", "store.lifecycle_interval_s=1"]
    hot_windows = {"no_moves": 10 * 86400, "moves": 1}
    order = []
    for r in range(args.ingest_rounds):  # alternating, so drift of the machine hits both alike
        order += [(r + 1, "no_moves"), (r + 1, "moves")] if r % 2 == 0 else [(r + 1, "moves"), (r + 1, "no_moves")]
    done = []
    for rnd, label in order:
        _say(f"[ingest] round {rnd}, {label}: {args.ingest_rate:,.0f} spans/s for {args.ingest_duration:g} s "
             f"(+{args.ingest_warmup:g} s warm-up), store.hot_window_s={hot_windows[label]} ...")
        result, lat, at, seen = _load_run(args, [*base, f"store.hot_window_s={hot_windows[label]}"], pool)
        moves = _windows(seen, ps, hot_windows["moves"]) if label == "moves" else []
        lm = result["latency_ms"]
        _say(f"  acked {result['throughput']['acked_spans_per_s']:,.0f} spans/s, p50 {lm['p50']} p99 {lm['p99']} "
             f"max {lm['max']} ms, busy {result['requests']['busy']}, moved {result['moved_partitions']}"
             + (f" (move windows {[round(hi - lo, 1) for lo, hi, _d in moves]} s)" if moves else ""))
        done.append((rnd, label, result, lat, at, seen, moves))
    # The same phase without a move: partition close + 1 s, for as long as a move took (median).
    lengths = [hi - lo for *_r, moves in done for lo, hi, fin in moves if fin]
    phase = float(np.median(lengths)) if lengths else None
    runs, pooled = [], {k: [] for k in ("no_moves", "moves", "during", "outside", "same_phase")}
    for rnd, label, result, lat, at, seen, moves in done:
        row = {"round": rnd, "run": label, "latency_ms": result["latency_ms"],
               "server_ack_ms": result.get("server_ack_ms"),
               "acked_spans_per_s": result["throughput"]["acked_spans_per_s"],
               "busy": result["requests"]["busy"], "errors": result["requests"]["errors"],
               "server_cpu_percent": result["server"]["cpu_percent"] if result.get("server") else None,
               "moved_partitions": result["moved_partitions"]}
        pooled[label].append(lat)
        if label == "moves":
            inside = _inside(at, moves)
            row.update(move_windows_s=[round(hi - lo, 1) for lo, hi, _d in moves],
                       moves_unfinished_at_end=sum(1 for *_w, fin in moves if not fin),
                       during_moves=_pct(lat[inside]), outside_moves=_pct(lat[~inside]))
            pooled["during"].append(lat[inside])
            pooled["outside"].append(lat[~inside])
        elif phase is not None:
            inside = _inside(at, _windows(seen, ps, hot_windows["moves"], phase))
            row["same_phase_as_moves"] = _pct(lat[inside])
            pooled["same_phase"].append(lat[inside])
        if len(at):  # p99 per 10 s of the measured window (index checkpoints, moves show up here)
            edges = np.arange(at.min(), at.max() + 10, 10)
            row["p99_ms_by_10s"] = [round(float(np.percentile(lat[(at >= lo) & (at < lo + 10)], 99)), 1)
                                    for lo in edges[:-1] if ((at >= lo) & (at < lo + 10)).any()]
        runs.append(row)
    p = {k: _p99(np.concatenate(v)) if v else None for k, v in pooled.items()}

    def ratio(x, y):
        return round(p[x] / p[y], 2) if p[x] and p[y] else None

    report["ingest"] = {"rate_spans_per_s": args.ingest_rate, "duration_s": args.ingest_duration,
                        "rounds": args.ingest_rounds, "partition_s": ps, "runs": runs,
                        "median_move_s": round(phase, 1) if phase is not None else None,
                        "pooled_p99_ms": {"runs_without_moves": p["no_moves"], "runs_with_moves": p["moves"],
                                          "while_a_move_ran": p["during"],
                                          "runs_with_moves_otherwise": p["outside"],
                                          "runs_without_moves_same_phase": p["same_phase"]},
                        "p99_ratio_moves_to_no_moves": ratio("moves", "no_moves"),
                        "p99_ratio_during_moves_to_same_phase": ratio("during", "same_phase"),
                        "p99_ratio_during_to_outside_moves": ratio("during", "outside")}
    ing = report["ingest"]
    _say(f"[ingest] pooled over {args.ingest_rounds} round(s), p99 (ms): runs without moves {p['no_moves']}, "
         f"with moves {p['moves']}; while a move ran {p['during']}, the same seconds after a partition closed "
         f"in runs without moves {p['same_phase']} (median move {ing['median_move_s']} s), runs with moves "
         f"otherwise {p['outside']}")
    _say(f"[ingest] p99 ratios (target <= {TARGETS['ingest_p99_ratio']}): runs with moves / without "
         f"{ing['p99_ratio_moves_to_no_moves']}; while a move ran / same phase without moves "
         f"{ing['p99_ratio_during_moves_to_same_phase']}; while a move ran / otherwise "
         f"{ing['p99_ratio_during_to_outside_moves']}")


# ---------------------------------------------------------------------------- the run

def _verdicts(report: dict) -> list[tuple[str, str, str, str]]:
    out = []

    def row(what, value, target, ok):
        out.append((what, value, target, "met" if ok else "missed"))

    b = report.get("bytes")
    if b:
        row("cold bytes/span vs raw OTLP", f"{b['cold_bytes_per_span']} B ({b['cold_ratio']}x)",
            f"<= {TARGETS['cold_ratio']}x", b["cold_ratio"] <= TARGETS["cold_ratio"])
        row("hot bytes/span vs raw OTLP", f"{b['hot_bytes_per_span']} B ({b['hot_ratio']}x)",
            f"<= {TARGETS['hot_ratio']}x", b["hot_ratio"] <= TARGETS["hot_ratio"])
    tr = report.get("trace")
    if tr:
        for where in ("in_process", "http"):
            p99 = tr[where]["p99_ms"]
            row(f"trace by ID from cold, {where.replace('_', ' ')}, p99", f"{p99} ms",
                f"<= {TARGETS['trace_p99_ms']:g} ms", p99 <= TARGETS["trace_p99_ms"])
    s = report.get("search")
    if s:
        for r in s["runs"]:
            for kind in ("jaeger", "traceql"):
                p95 = r[kind]["repeated"].get("p95_ms")
                if p95 is not None:
                    row(f"7-day {kind} search, cache {r['cold_index_cache_spans']:,} ({r['as']}), p95 "
                        f"(first {r[kind]['first_ms']} ms)", f"{p95} ms",
                        f"<= {TARGETS['search_p95_ms']:g} ms", p95 <= TARGETS["search_p95_ms"])
    ing = report.get("ingest")
    if ing:
        for key, what in (("p99_ratio_moves_to_no_moves", "ingest ack p99, runs with moves / runs without"),
                          ("p99_ratio_during_moves_to_same_phase",
                           "ingest ack p99, while a move ran / same phase, no moves"),
                          ("p99_ratio_during_to_outside_moves", "ingest ack p99, while a move ran / otherwise")):
            if ing.get(key) is not None:
                row(what, f"{ing[key]}x", f"<= {TARGETS['ingest_p99_ratio']}x", ing[key] <= TARGETS["ingest_p99_ratio"])
    return out


def run(args) -> int:
    parts = ("bytes", "trace", "search", "ingest") if args.part == "all" else (args.part,)
    root = args.work_dir or Path(tempfile.mkdtemp(prefix="clew-cold-"))
    root.mkdir(parents=True, exist_ok=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    report = {"kind": "clew-perf cold", "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "nproc": os.cpu_count(), "cpu": cpu, "work_dir": str(root),
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("func", "command")},
              "targets": TARGETS}
    started = time.monotonic()
    t = time.perf_counter()
    pool = RequestPool(TraceShape(), args.pool, args.seed)
    _say(f"corpus: {args.pool} request bodies x {pool.shape.spans_per_request} spans, "
         f"{pool.mean_body_bytes / 1024:.1f} KiB each (built in {time.perf_counter() - t:.1f} s); work dir {root}")
    try:
        store = None
        if "bytes" in parts or "trace" in parts:
            store = part_bytes(args, root, pool, report)
        if "trace" in parts:
            part_trace(args, root, store, report)
        elif store is not None:
            store.close()
        if "search" in parts:
            part_search(args, root, pool, report)
        if "ingest" in parts:
            part_ingest(args, pool, report)
    finally:
        if not args.keep_data and args.work_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["verdicts"] = [dict(zip(("figure", "value", "target", "status"), v)) for v in _verdicts(report)]
    _say(f"\nclew-perf cold: {', '.join(parts)} in {report['seconds']:.0f} s on {os.cpu_count()} x {cpu}")
    width = max((len(v[0]) for v in _verdicts(report)), default=10)
    for what, value, target, status in _verdicts(report):
        _say(f"  {what:<{width}}  {value:>18}  target {target:<10} {status}")
    out = args.out or ROOT / "perf" / "results" / f"cold-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    _say(f"report: {out}")
    return 0
