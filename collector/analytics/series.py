"""The series store: per-series, per-time-bucket aggregates (calls, errors, duration sum, latency
histogram) kept in one LMDB environment at ``DATA_DIR/analytics/``.

A series is a tuple of strings whose first element is its family (``("span", service, operation,
kind)`` for RED metrics, ``("edge", ...)`` for dependencies); it is interned to a small integer id.

Writes: ``add`` aggregates observations in memory (numpy, no per-observation Python); ``flush``
(a background thread, every ``analytics.flush_interval_s`` and at shutdown) merges what was
gathered into the stored buckets of two resolutions in one transaction: fine buckets
(``analytics.bucket_s``, default one minute) and hourly ones.  Fine buckets older than
``analytics.fine_retention_s`` are deleted (the hourly ones hold the same data: that is the
rollup), hourly ones older than ``analytics.retention_s`` too.

Layout (docs/analytics.md): database ``data`` keyed ``resolution (u8) | series id (u32 BE) |
bucket start in epoch seconds (u32 BE)``, so one series' time range is one cursor scan; database
``series`` maps id (u32 BE) → the key as a JSON list; database ``meta`` holds the bucket width and
the pruning watermarks.  A value is one flag byte and a header (calls, errors, duration sum,
number of non-empty histogram buckets, first bucket index), then the histogram sparsely: bucket
index deltas (u8 or u16) and counts (u8, u16, u32 or u64), the narrowest that fits; the part
after the flag byte is zstd-compressed only when that saves at least an eighth.
"""
from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections import namedtuple
from pathlib import Path
from typing import Sequence

import lmdb
import numpy as np
import zstandard

from collector.analytics.histogram import NBUCKETS, bucket_of
from collector.errors import ConfigError

log = logging.getLogger("clew.analytics")

Point = namedtuple("Point", "t_ns calls errors duration_sum_ns hist")

FINE, HOUR = 0, 1
HOUR_S = 3600
NS = 1_000_000_000
MAX_POINTS = 100_000  # steps one read may ask for (per series)
_KEY = struct.Struct(">BII")  # resolution, series id, bucket start (epoch s)
_SID = struct.Struct(">I")
_HEAD = struct.Struct("<IIQHH")  # calls, errors, duration sum (ns), non-empty buckets, first bucket
_HEAD_WIDE = struct.Struct("<QQQHH")
_F_ZSTD, _F_WIDE, _F_DELTA16 = 1, 2, 4  # flag bits; bits 3-4: the counts' width code
_COUNT_DTYPES = (np.dtype("u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))
_ZSTD_MIN = 256  # values shorter than this are never compressed
_COMPACT_ROWS = 2_000_000  # pending rows that wake the flush thread early


def _overflow_key(key: tuple) -> tuple:
    if len(key) >= 3:
        return (key[0],) + ("_other",) * (len(key) - 2) + ("",)
    return (key[0], "_other")


def _sum_groups(inv: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Exact int64 sums of ``values`` per group ``inv`` (every group 0..n-1 non-empty)."""
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(n))
    return np.add.reduceat(values[order].astype(np.int64), starts)


def decode_value(value: bytes):
    """(calls, errors, duration sum ns, bucket indexes, counts) of one stored value."""
    flags = value[0]
    body = value[1:]
    if flags & _F_ZSTD:
        body = zstandard.ZstdDecompressor().decompress(body)
    head = _HEAD_WIDE if flags & _F_WIDE else _HEAD
    calls, errors, dsum, n, first = head.unpack_from(body)
    off = head.size
    dw = 2 if flags & _F_DELTA16 else 1
    deltas = np.frombuffer(body, "<u2" if dw == 2 else "u1", n - 1 if n else 0, off)
    off += dw * (n - 1 if n else 0)
    counts = np.frombuffer(body, _COUNT_DTYPES[(flags >> 3) & 3], n, off)
    idx = np.empty(n, np.intp)
    if n:
        idx[0] = first
        np.cumsum(deltas, out=idx[1:])
        idx[1:] += first
    return calls, errors, dsum, idx, counts


class SeriesStore:
    def __init__(self, path: Path, config, clock=time.time, readonly: bool = False):
        self.path = Path(path)
        self.config = config
        self.clock = clock
        self.bucket_s = int(config.bucket_s)
        self.readonly = readonly
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=config.map_size_bytes, max_dbs=4, max_readers=1024,
                             sync=False, metasync=False, readahead=False, readonly=readonly,
                             lock=True)
        self._data = self.env.open_db(b"data", create=not readonly)
        self._series = self.env.open_db(b"series", create=not readonly)
        self._meta = self.env.open_db(b"meta", create=not readonly)
        self._lock = threading.Lock()  # series registry and pending rows
        self._flush_lock = threading.Lock()  # one flush at a time
        self._keys: list[tuple] = []
        self._ids: dict[tuple, int] = {}
        self._refused: dict[tuple, int] = {}  # keys past max_series → their overflow series
        self._overflow_ids: set[int] = set()
        self._new_series: list[int] = []
        self._pending: list = []  # (ids, start, duration, error, clock) per add
        self._pending_rows = 0
        self.flush_hooks: list = []  # called at the start of every flush, on the flushing thread
        self.counters = {"late_spans": 0, "overflow_spans": 0, "overflow_series": 0, "flushes": 0}
        self.last_flush_s = 0.0
        self._zc = zstandard.ZstdCompressor(level=3)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        with self.env.begin() as txn:
            for k, v in txn.cursor(self._series):
                sid = _SID.unpack(k)[0]
                key = tuple(json.loads(v))
                while len(self._keys) <= sid:
                    self._keys.append(None)
                self._keys[sid] = key
                self._ids[key] = sid
            meta = {k.decode(): int(v) for k, v in txn.cursor(self._meta)}
        stored = meta.get("bucket_s")
        if stored is not None and stored != self.bucket_s:
            raise ConfigError(f"analytics.bucket_s: the metrics in {self.path} were written with "
                              f"bucket_s={stored}, got {self.bucket_s} (move that directory away to start anew)")
        self.fine_pruned = meta.get("fine_pruned_until", 0)
        self.hour_pruned = meta.get("hour_pruned_until", 0)
        for key, sid in self._ids.items():
            if key == _overflow_key(key) and len(key) > 1 and key[1] == "_other":
                self._overflow_ids.add(sid)
        if not readonly and stored is None:
            with self.env.begin(write=True) as txn:
                txn.put(b"bucket_s", str(self.bucket_s).encode(), db=self._meta)

    # ------------------------------------------------------------------ series

    def series_id(self, key: tuple[str, ...]) -> int:
        """The id of series ``key`` (interned; written with the next flush).  Past
        ``analytics.max_series`` new keys get the id of their family's overflow series."""
        sid = self._ids.get(key)
        if sid is not None:
            return sid
        sid = self._refused.get(key)
        if sid is not None:
            return sid
        key = tuple(str(k) for k in key)
        with self._lock:
            sid = self._ids.get(key)
            if sid is not None:
                return sid
            over = _overflow_key(key)
            if len(self._keys) >= self.config.max_series and key != over:
                if not self.counters["overflow_series"]:
                    log.warning("analytics.max_series (%d) reached: new series are counted under %s",
                                self.config.max_series, over)
                self.counters["overflow_series"] += 1
                sid = self._intern(over)
                self._overflow_ids.add(sid)
                if len(self._refused) < self.config.max_series:
                    self._refused[key] = sid
                return sid
            sid = self._intern(key)
            if key == over:
                self._overflow_ids.add(sid)
            return sid

    def _intern(self, key: tuple) -> int:
        sid = self._ids.get(key)
        if sid is None:
            sid = len(self._keys)
            self._keys.append(key)
            self._ids[key] = sid
            self._new_series.append(sid)
        return sid

    def key_of(self, sid: int) -> tuple | None:
        keys = self._keys
        return keys[sid] if 0 <= sid < len(keys) else None

    def keys(self, family: str, prefix: tuple = ()) -> list[tuple]:
        """Every series key of ``family`` whose elements after the family start with ``prefix``
        (e.g. ``keys("span", ("checkout",))``: the spans series of service checkout)."""
        prefix = tuple(prefix)
        n = len(prefix)
        return [k for k in list(self._keys)
                if k is not None and k[0] == family and k[1:1 + n] == prefix]

    # ------------------------------------------------------------------ writes

    def add(self, ids: np.ndarray, start_ns: np.ndarray, duration_ns: np.ndarray, error: np.ndarray) -> None:
        """Count one observation per row: series ``ids``, start time, duration (ns), error flag.

        Cheap on purpose (it runs on the event loop): the columns are copied into the pending
        list; the flush thread filters late rows and aggregates them in bulk."""
        n = len(ids)
        if not n:
            return
        chunk = (np.asarray(ids).astype(np.int64), np.asarray(start_ns).astype(np.int64),
                 np.asarray(duration_ns).astype(np.int64), np.asarray(error).astype(bool), self.clock())
        with self._lock:
            self._pending.append(chunk)
            self._pending_rows += n
            if self._pending_rows > _COMPACT_ROWS:
                self._wake.set()

    def _aggregate(self, chunks: list):
        """Pending chunks → (item keys, calls, errors, duration sums, histogram rows), items being
        (series << 32 | bucket start s); rows outside ``analytics.lateness_s`` are dropped."""
        ids = np.concatenate([c[0] for c in chunks])
        start = np.concatenate([c[1] for c in chunks])
        dur = np.concatenate([c[2] for c in chunks])
        err = np.concatenate([c[3] for c in chunks])
        lens = [len(c[0]) for c in chunks]
        late = self.config.lateness_s
        lo = np.repeat(np.array([int((c[4] - late) * NS) for c in chunks], np.int64), lens)
        hi = np.repeat(np.array([int((c[4] + late) * NS) for c in chunks], np.int64), lens)
        ok = (start >= lo) & (start < hi)
        if not ok.all():
            self.counters["late_spans"] += int(len(ok) - np.count_nonzero(ok))
            ids, start, dur, err = ids[ok], start[ok], dur[ok], err[ok]
            if not len(ids):
                return None
        if self._overflow_ids:
            self.counters["overflow_spans"] += int(np.isin(ids, list(self._overflow_ids)).sum())
        b = start // (self.bucket_s * NS)  # bucket number
        bmin = int(b.min())
        span = int(b.max()) - bmin + 1
        hb = bucket_of(dur).astype(np.int64)
        if (int(ids.max()) + 1) * span * NBUCKETS < 1 << 62:
            # one sort of (series, bucket, histogram bucket) codes gives items and histogram rows
            code = (ids * span + (b - bmin)) * NBUCKETS + hb
            order = np.argsort(code)
            cs = code[order]
            edge = np.empty(len(cs), bool)
            edge[0] = True
            np.not_equal(cs[1:], cs[:-1], out=edge[1:])
            hstart = np.flatnonzero(edge)
            icode = cs // NBUCKETS
            np.not_equal(icode[1:], icode[:-1], out=edge[1:])
            istart = np.flatnonzero(edge)
            calls = np.diff(np.append(istart, len(cs)))
            errors = np.add.reduceat(err[order].astype(np.int64), istart)
            dsum = np.add.reduceat(np.maximum(dur, 0)[order], istart)
            ic = icode[istart]
            uk = ((ic // span).astype(np.uint64) << np.uint64(32)) | \
                ((ic % span + bmin) * self.bucket_s).astype(np.uint64)
            counts = np.diff(np.append(hstart, len(cs)))
            rows = (uk[np.searchsorted(istart, hstart, side="right") - 1], cs[hstart] % NBUCKETS, counts)
        else:
            item = (ids.astype(np.uint64) << np.uint64(32)) | (b * self.bucket_s).astype(np.uint64)
            uk, inv = np.unique(item, return_inverse=True)
            n = len(uk)
            calls = np.bincount(inv, minlength=n).astype(np.int64)
            errors = np.bincount(inv, weights=err, minlength=n).astype(np.int64)
            dsum = _sum_groups(inv, n, np.maximum(dur, 0))
            uh, counts = np.unique(inv.astype(np.int64) * NBUCKETS + hb, return_counts=True)
            rows = (uk[uh // NBUCKETS], uh % NBUCKETS, counts.astype(np.int64))
        return uk, calls.astype(np.int64), errors, dsum, rows

    def flush(self) -> None:
        """Write what was gathered since the last flush (fine and hourly buckets, merged with
        what is stored), the new series, and drop buckets past their retention."""
        if self.readonly:
            return
        for hook in list(self.flush_hooks):  # aggregates kept by others (span-metrics counters)
            try:
                hook()
            except Exception:
                log.exception("analytics flush hook %r failed", hook)
        with self._flush_lock:
            t0 = time.perf_counter()
            with self._lock:
                pending, self._pending = self._pending, []
                new_series, self._new_series = self._new_series, []
                self._pending_rows = 0
                keys = self._keys
            agg = self._aggregate(pending) if pending else None
            now = self.clock()
            cut_f = int((now - self.config.fine_retention_s) // HOUR_S * HOUR_S)
            cut_h = int((now - self.config.retention_s) // HOUR_S * HOUR_S)
            prune = cut_f > self.fine_pruned or cut_h > self.hour_pruned
            if agg is None and not new_series and not prune:
                return
            with self.env.begin(write=True) as txn:
                for sid in new_series:
                    txn.put(_SID.pack(sid), json.dumps(list(keys[sid])).encode(), db=self._series)
                if agg is not None:
                    hk, hc, he, hs, (rk, rb, rc) = agg
                    self._merge(txn, FINE, hk, hc, he, hs, rk, rb, rc)
                    self._merge(txn, HOUR, _to_hour(hk), hc, he, hs, _to_hour(rk), rb, rc)
                if prune:
                    self._prune(txn, cut_f, cut_h, len(keys))
            self.counters["flushes"] += 1
            self.last_flush_s = time.perf_counter() - t0

    def _merge(self, txn, res, hk, hc, he, hs, rk, rb, rc) -> None:
        """Aggregate rows per item (series, bucket start), merge each with its stored value, write."""
        uk, inv = np.unique(hk, return_inverse=True)
        # stored values of these items join the rows
        xk, xc, xe, xs, xrk, xrb, xrc = [], [], [], [], [], [], []
        get = txn.get
        packs = [_KEY.pack(res, int(k >> 32), int(k & 0xFFFFFFFF)) for k in uk.tolist()]
        for k, p in zip(uk.tolist(), packs):
            v = get(p, db=self._data)
            if v is not None:
                calls, errors, dsum, idx, counts = decode_value(v)
                xk.append(k)
                xc.append(calls)
                xe.append(errors)
                xs.append(dsum)
                if len(idx):
                    xrk.append(np.full(len(idx), k, np.uint64))
                    xrb.append(idx.astype(np.int64))
                    xrc.append(counts.astype(np.int64))
        if xk:
            hk = np.concatenate([hk, np.asarray(xk, np.uint64)])
            hc = np.concatenate([hc, np.asarray(xc, np.int64)])
            he = np.concatenate([he, np.asarray(xe, np.int64)])
            hs = np.concatenate([hs, np.asarray(xs, np.uint64).astype(np.int64)])
            if xrk:
                rk = np.concatenate([rk] + xrk)
                rb = np.concatenate([rb] + xrb)
                rc = np.concatenate([rc] + xrc)
            inv = np.searchsorted(uk, hk)
        n = len(uk)
        calls = _sum_groups(inv, n, hc)
        errors = _sum_groups(inv, n, he)
        dsum = _sum_groups(inv, n, hs)
        item = np.searchsorted(uk, rk).astype(np.int64)
        hkey, hinv = np.unique(item * NBUCKETS + rb, return_inverse=True)
        hcount = _sum_groups(hinv, len(hkey), rc)
        hitem = hkey // NBUCKETS
        hb = hkey % NBUCKETS
        bounds = np.searchsorted(hitem, np.arange(n + 1))
        delta = np.zeros(len(hb), np.int64)
        if len(hb) > 1:
            delta[1:] = np.diff(hb)
        delta[bounds[:-1][bounds[:-1] < len(hb)]] = 0
        has = bounds[1:] > bounds[:-1]
        starts = np.minimum(bounds[:-1], max(len(hb) - 1, 0))
        if len(hb):
            maxd = np.maximum.reduceat(delta, starts)
            maxc = np.maximum.reduceat(hcount, starts)
        else:
            maxd = maxc = np.zeros(n, np.int64)
        put = txn.put
        zc = self._zc
        cl, el, sl = calls.tolist(), errors.tolist(), dsum.tolist()
        bl, hl, dl, cm = bounds.tolist(), has.tolist(), maxd.tolist(), maxc.tolist()
        for i in range(n):
            s, e = bl[i], bl[i + 1]
            cnt = e - s if hl[i] else 0
            flags = 0
            c, er = cl[i], el[i]
            if c >= 1 << 32 or er >= 1 << 32:
                flags |= _F_WIDE
                head = _HEAD_WIDE
            else:
                head = _HEAD
            if cnt:
                first = int(hb[s])
                mc = cm[i]
                code = 0 if mc < 1 << 8 else 1 if mc < 1 << 16 else 2 if mc < 1 << 32 else 3
                flags |= code << 3
                if dl[i] >= 256:
                    flags |= _F_DELTA16
                    dbytes = delta[s + 1:e].astype("<u2").tobytes()
                else:
                    dbytes = delta[s + 1:e].astype("u1").tobytes()
                body = head.pack(c, er, sl[i], cnt, first) + dbytes + \
                    hcount[s:e].astype(_COUNT_DTYPES[code]).tobytes()
            else:
                body = head.pack(c, er, sl[i], 0, 0)
            if len(body) >= _ZSTD_MIN:
                packed = zc.compress(body)
                if len(packed) <= len(body) - len(body) // 8:
                    flags |= _F_ZSTD
                    body = packed
            put(packs[i], bytes((flags,)) + body, db=self._data)

    def _prune(self, txn, cut_f: int, cut_h: int, nseries: int) -> None:
        cur = txn.cursor(self._data)
        for res, cut, name in ((FINE, cut_f, "fine_pruned_until"), (HOUR, cut_h, "hour_pruned_until")):
            if cut <= (self.fine_pruned if res == FINE else self.hour_pruned):
                continue
            cut = max(cut, 0)
            for sid in range(nseries):
                hi = _KEY.pack(res, sid, cut)
                if not cur.set_range(_KEY.pack(res, sid, 0)):
                    break
                while True:
                    k = cur.key()
                    if not k or k >= hi:
                        break
                    cur.delete()
            txn.put(name.encode(), str(cut).encode(), db=self._meta)
            if res == FINE:
                self.fine_pruned = cut
            else:
                self.hour_pruned = cut

    # ------------------------------------------------------------------ reads

    def _plan(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """Segments (resolution, from s, to s) whose stored buckets are exactly those starting in
        [a, b) s: hourly buckets for the whole hours inside, fine ones at the edges (hourly ones
        where the fine ones were already dropped)."""
        p = self.fine_pruned

        def edge(x: int, y: int) -> list:
            out = []
            if x < min(y, p):
                out.append((HOUR, x, min(y, p)))
            if max(x, p) < y:
                out.append((FINE, max(x, p), y))
            return out
        h1 = -(-a // HOUR_S) * HOUR_S
        h2 = b // HOUR_S * HOUR_S
        if h1 < h2:
            return edge(a, h1) + [(HOUR, h1, h2)] + edge(h2, b)
        return edge(a, b)

    @staticmethod
    def _coalesce(segments: list) -> list:
        out: list = []
        for seg in segments:
            if out and out[-1][0] == seg[0] and out[-1][2] == seg[1]:
                out[-1] = (seg[0], out[-1][1], seg[2])
            elif seg[1] < seg[2]:
                out.append(seg)
        return out

    def _scan(self, cur, res: int, sid: int, a: int, b: int):
        hi = _KEY.pack(res, sid, min(max(b, 0), 0xFFFFFFFF))
        if not cur.set_range(_KEY.pack(res, sid, min(max(a, 0), 0xFFFFFFFF))):
            return
        while True:
            k = cur.key()
            if not k or k >= hi:
                return
            yield _KEY.unpack(k)[2], cur.value()
            if not cur.next():
                return

    def read(self, ids: Sequence[int], start_ns: int, end_ns: int, step_s: float) -> dict[int, list[Point]]:
        """Per series, one Point per step of ``step_s`` from ``start_ns`` (the last step ends at
        ``end_ns``), empty steps included with calls 0.  A stored bucket counts in the step its
        start falls in; hourly buckets are read wherever a step holds whole hours (and where the
        fine ones are past ``analytics.fine_retention_s``).  Reads see flushed data only."""
        step_ns = int(round(float(step_s) * NS))
        if step_ns <= 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        start_ns, end_ns = int(start_ns), int(end_ns)
        n = max(0, -(-(end_ns - start_ns) // step_ns))
        if n > MAX_POINTS:
            raise ValueError(f"{n} steps asked for; at most {MAX_POINTS} (use a larger step)")
        edges = [start_ns + k * step_ns for k in range(n)] + [end_ns]
        secs = [-(-t // NS) for t in edges]
        segments = self._coalesce([s for k in range(n) for s in self._plan(secs[k], secs[k + 1])])
        out: dict[int, list[Point]] = {}
        with self.env.begin() as txn:
            cur = txn.cursor(self._data)
            for sid in ids:
                sid = int(sid)
                calls = np.zeros(n, np.int64)
                errors = np.zeros(n, np.int64)
                dsum = np.zeros(n, np.int64)
                hist = np.zeros((n, NBUCKETS), np.int64)
                for res, a, b in segments:
                    for bs, v in self._scan(cur, res, sid, a, b):
                        k = (bs * NS - start_ns) // step_ns
                        c, e, s, idx, cnt = decode_value(v)
                        calls[k] += c
                        errors[k] += e
                        dsum[k] += s
                        hist[k, idx] += cnt
                out[sid] = [Point(edges[k], int(calls[k]), int(errors[k]), int(dsum[k]), hist[k])
                            for k in range(n)]
        return out

    def totals(self, ids: Sequence[int], start_ns: int, end_ns: int) -> dict[int, Point]:
        """Per series, the buckets starting in [start_ns, end_ns) merged into one Point."""
        a, b = -(-int(start_ns) // NS), -(-int(end_ns) // NS)
        segments = self._plan(a, b) if a < b else []
        out: dict[int, Point] = {}
        with self.env.begin() as txn:
            cur = txn.cursor(self._data)
            for sid in ids:
                sid = int(sid)
                calls = errors = dsum = 0
                hist = np.zeros(NBUCKETS, np.int64)
                for res, x, y in segments:
                    for _bs, v in self._scan(cur, res, sid, x, y):
                        c, e, s, idx, cnt = decode_value(v)
                        calls += c
                        errors += e
                        dsum += s
                        hist[idx] += cnt
                out[sid] = Point(int(start_ns), calls, errors, dsum, hist)
        return out

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Flush every ``analytics.flush_interval_s`` in a background thread."""
        if self._thread is None and not self.readonly:
            self._thread = threading.Thread(target=self._run, name="clew-analytics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception:
                log.exception("analytics flush failed; retrying at the next interval")

    def close(self) -> None:
        """Stop the flush thread, write what is pending, close the environment."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.env is not None:
            try:
                self.flush()
            finally:
                self.env.close()
                self.env = None

    def disk_bytes(self) -> int:
        try:
            return (self.path / "data.mdb").stat().st_blocks * 512
        except OSError:
            return 0

    def stats(self) -> dict:
        return {"series": len(self._keys), "disk_bytes": self.disk_bytes(),
                "last_flush_seconds": self.last_flush_s, **self.counters}


def _to_hour(keys: np.ndarray) -> np.ndarray:
    """Item keys (series << 32 | bucket start s) moved to the start of their hour."""
    low = keys & np.uint64(0xFFFFFFFF)
    return (keys - low) | (low // np.uint64(HOUR_S) * np.uint64(HOUR_S))


class AnalyticsCollector:
    """Prometheus view of the store's own health (series, overflow, late spans, size)."""

    def __init__(self, store: SeriesStore):
        self.store = store

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        s = self.store.stats()
        yield GaugeMetricFamily("clew_analytics_series", "Metric series known (span and edge families).",
                                value=s["series"])
        yield GaugeMetricFamily("clew_analytics_bytes", "Bytes on disk of the metrics store.",
                                value=s["disk_bytes"])
        yield GaugeMetricFamily("clew_analytics_last_flush_seconds", "Duration of the last flush.",
                                value=s["last_flush_seconds"])
        yield CounterMetricFamily("clew_analytics_overflow_spans", "Observations counted under an "
                                  "overflow series because analytics.max_series was reached.",
                                  value=s["overflow_spans"])
        yield CounterMetricFamily("clew_analytics_late_spans", "Spans not counted in the metrics: "
                                  "their start was further than analytics.lateness_s from the clock.",
                                  value=s["late_spans"])
