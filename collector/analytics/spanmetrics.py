"""RED metrics on ``/metrics`` under the OpenTelemetry Collector span-metrics connector's names.

The connector's metrics as its Prometheus exporter writes them (default namespace
``traces.span.metrics``, duration unit ms, default explicit buckets), so dashboards and Jaeger's
Prometheus-backed Monitor tab built for the connector read Clew's ``/metrics`` unchanged:

* ``traces_span_metrics_calls_total{service_name, span_name, span_kind, status_code}`` — counter;
* ``traces_span_metrics_duration_milliseconds_bucket|_sum|_count{...same labels, le}`` —
  histogram with bounds 2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000,
  15000 ms.

``span_kind`` is ``SPAN_KIND_SERVER`` style, ``status_code`` ``STATUS_CODE_UNSET|OK|ERROR``.
The values are cumulative since the server started (Prometheus's ``rate`` handles restarts).
They are fed by ``RedMetrics`` (a hook it calls with every batch's columns, before sampling)
and kept in memory: one row per (series, status code), at most ``analytics.max_series`` rows;
past that, new label sets are counted in one overflow row (``service_name="_other"``).  The
event loop only keeps each batch's columns; they are counted in bulk off the loop (by the
series store's flush thread, and by every scrape before it reads).
"""
from __future__ import annotations

import threading

import numpy as np

from collector.model import STATUS_ERROR

BOUNDS_MS = (2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000)
_BOUNDS_NS = np.array([b * 1_000_000 for b in BOUNDS_MS], np.int64)
_NB = len(BOUNDS_MS) + 1  # the last bucket is +Inf
STATUS_LABELS = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")
LABELS = ["service_name", "span_name", "span_kind", "status_code"]
CALLS = "traces_span_metrics_calls"
DURATION = "traces_span_metrics_duration_milliseconds"
_OVERFLOW = -1
_FOLD_ROWS = 1_000_000  # columns kept past this many rows are folded at once


class SpanMetrics:
    """Cumulative calls and duration histograms per (series, status code); a Prometheus collector.

    ``observe`` (on the event loop, once per batch) only keeps the batch's columns; ``fold``
    counts what was kept in bulk — the series store's flush thread calls it before every flush,
    and ``collect`` calls it before reading, so a scrape sees every span received until then."""

    def __init__(self, store, max_series: int):
        self.store = store
        self.max_series = int(max_series)
        self._lock = threading.Lock()  # the cumulative rows (fold, collect)
        self._pending_lock = threading.Lock()  # the columns kept since the last fold
        self._pending: list = []  # (series ids, duration ns, status code) per batch
        self._pending_rows = 0
        self._rows: dict[int, int] = {}  # series id * 3 + status → row
        self._table = np.full(0, -1, np.int64)  # the same map as an array (-1: no row yet)
        self._keys: list[int] = []  # row → that code (or _OVERFLOW)
        self._calls = np.zeros(16, np.int64)
        self._buckets = np.zeros((16, _NB), np.int64)  # per bucket, not cumulative
        self._sum_ms = np.zeros(16, np.float64)
        self.overflow_spans = 0
        hooks = getattr(store, "flush_hooks", None)
        if hooks is not None:
            hooks.append(self.fold)

    def _row(self, code: int) -> int:
        row = self._rows.get(code)
        if row is not None:
            return row
        if len(self._keys) >= self.max_series:
            code = _OVERFLOW
            row = self._rows.get(code)
            if row is not None:
                return row
        row = len(self._keys)
        self._keys.append(code)
        self._rows[code] = row
        if row >= len(self._calls):
            n = 2 * len(self._calls)
            self._calls = np.concatenate([self._calls, np.zeros(n - len(self._calls), np.int64)])
            self._sum_ms = np.concatenate([self._sum_ms, np.zeros(n - len(self._sum_ms))])
            self._buckets = np.concatenate([self._buckets, np.zeros((n - len(self._buckets), _NB), np.int64)])
        return row

    def observe(self, sids: np.ndarray, start_ns: np.ndarray, duration_ns: np.ndarray,
                status: np.ndarray) -> None:
        """Keep one batch (the columns ``RedMetrics`` gives the series store, plus the status)
        for the next ``fold``.  Past ``_FOLD_ROWS`` rows kept, fold at once."""
        n = len(sids)
        if not n:
            return
        chunk = (np.asarray(sids, np.int64), np.asarray(duration_ns, np.int64), np.array(status, np.int8))
        with self._pending_lock:
            self._pending.append(chunk)
            self._pending_rows += n
            full = self._pending_rows > _FOLD_ROWS
        if full:
            self.fold()

    def fold(self) -> None:
        """Add the kept columns to the cumulative rows: a few numpy calls over all of them."""
        with self._lock:
            with self._pending_lock:
                pending, self._pending = self._pending, []
                self._pending_rows = 0
            if not pending:
                return
            if len(pending) == 1:
                sids, dur, st = pending[0]
            else:
                sids = np.concatenate([c[0] for c in pending])
                dur = np.concatenate([c[1] for c in pending])
                st = np.concatenate([c[2] for c in pending])
            code = sids * 3 + np.clip(st, 0, STATUS_ERROR)
            dur = np.maximum(dur, 0)
            bucket = np.searchsorted(_BOUNDS_NS, dur, side="left")  # le semantics: d <= bound
            top = int(code.max()) + 1
            if top > len(self._table):
                grown = np.full(max(top, 2 * len(self._table), 64), -1, np.int64)
                grown[:len(self._table)] = self._table
                self._table = grown
            table = self._table
            r = table[code]
            new = r < 0
            if new.any():  # label sets not seen before: rows in code order
                for k in np.unique(code[new]).tolist():
                    table[k] = self._row(k)
                r = table[code]
            n = len(self._keys)
            over = self._rows.get(_OVERFLOW)
            if over is not None:
                self.overflow_spans += int(np.count_nonzero(r == over))
            self._calls[:n] += np.bincount(r, minlength=n)
            self._sum_ms[:n] += np.bincount(r, weights=dur / 1e6, minlength=n)
            self._buckets.reshape(-1)[:n * _NB] += np.bincount(r * _NB + bucket, minlength=n * _NB)

    # ------------------------------------------------------------------ Prometheus collector

    def describe(self):
        return []

    def _labels(self, code: int) -> list[str]:
        if code == _OVERFLOW:
            return ["_other", "_other", "", ""]
        key = self.store.key_of(code // 3)
        if key is None or len(key) != 4:
            return ["_other", "_other", "", STATUS_LABELS[code % 3]]
        _family, service, name, kind = key
        return [service, name, f"SPAN_KIND_{kind.upper()}" if kind else "", STATUS_LABELS[code % 3]]

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        self.fold()
        with self._lock:
            n = len(self._keys)
            keys = list(self._keys)
            calls = self._calls[:n].copy()
            buckets = self._buckets[:n].copy()
            sums = self._sum_ms[:n].copy()
            overflow = self.overflow_spans
        counter = CounterMetricFamily(CALLS, "Spans received (before sampling), by service, span name, "
                                      "kind and status code.", labels=LABELS)
        hist = HistogramMetricFamily(DURATION, "Span durations in milliseconds (before sampling).",
                                     labels=LABELS)
        les = [floatToGoString(float(b)) for b in BOUNDS_MS] + ["+Inf"]
        cum = np.cumsum(buckets, axis=1)
        for i, code in enumerate(keys):
            labels = self._labels(code)
            counter.add_metric(labels, float(calls[i]))
            hist.add_metric(labels, buckets=list(zip(les, cum[i].astype(float).tolist())),
                            sum_value=float(sums[i]))
        yield counter
        yield hist
        yield GaugeMetricFamily("clew_analytics_spanmetrics_series", "Label sets of the span-metrics "
                                "families (at most analytics.max_series).", value=n)
        yield CounterMetricFamily("clew_analytics_spanmetrics_overflow_spans", "Spans counted under the "
                                  "span-metrics overflow label set (analytics.max_series reached).",
                                  value=overflow)
