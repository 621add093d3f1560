"""Sample stage: what was received, kept and dropped, per service, over a time window.

Counts go into 10-second buckets (an hour of them is kept); ``report(window_s)`` sums the
buckets inside the window.  The same events add to process-lifetime totals that /metrics reads
at each scrape (``clew_sampling_spans_total``, ``clew_sampling_traces_total``), so the ingest path
pays for one lock and a few dict updates per request, not for a Prometheus call per service.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict

from prometheus_client.core import CounterMetricFamily

BUCKET_S = 10
KEEP_S = 3600


def _service_counts() -> dict:
    return {"spans_received": 0, "traces_received": 0, "spans_kept": 0, "traces_kept": 0,
            "spans_dropped": 0, "traces_dropped": 0, "represented": 0.0,
            "kept_by": defaultdict(int), "dropped_by": defaultdict(int),
            "decisions": 0, "decision_s": 0.0, "decision_max_s": 0.0, "early": 0}


class SamplingStats:
    def __init__(self, metrics=None, clock=time.time):
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[str, dict]] = {}
        self._totals: dict[tuple[str, str, str], list] = {}  # (service, decision, reason) → [spans, traces]
        if metrics is not None:
            metrics.registry.register(_Totals(self))

    def _bucket(self) -> dict:
        b = int(self.clock()) // BUCKET_S * BUCKET_S
        bucket = self._buckets.get(b)
        if bucket is None:
            bucket = self._buckets[b] = defaultdict(_service_counts)
            for old in [k for k in self._buckets if k < b - KEEP_S]:
                del self._buckets[old]
        return bucket

    def record(self, entries) -> None:
        """Add ``(service, decision, spans, traces, reason, represented)`` entries; ``decision``
        is ``received``, ``kept`` or ``dropped`` (``reason`` and ``represented`` only count for
        the last two)."""
        with self._lock:
            bucket = self._bucket()
            totals = self._totals
            for service, decision, spans, traces, reason, represented in entries:
                c = bucket[service]
                c["spans_" + decision] += spans
                c["traces_" + decision] += traces
                if decision == "received":
                    continue
                c["represented"] += represented
                if traces:
                    c[decision + "_by"][reason] += traces
                t = totals.get((service, decision, reason))
                if t is None:
                    t = totals[(service, decision, reason)] = [0, 0]
                t[0] += spans
                t[1] += traces

    def received(self, service: str, spans: int, traces: int) -> None:
        self.record(((service, "received", spans, traces, "", 0.0),))

    def kept(self, service: str, spans: int, traces: int, reason: str, represented: float = 0.0) -> None:
        self.record(((service, "kept", spans, traces, reason, represented),))

    def dropped(self, service: str, spans: int, traces: int, reason: str) -> None:
        self.record(((service, "dropped", spans, traces, reason, 0.0),))

    def decided(self, service: str, latency_s: float, early: bool) -> None:
        with self._lock:
            c = self._bucket()[service]
            c["decisions"] += 1
            c["decision_s"] += latency_s
            c["decision_max_s"] = max(c["decision_max_s"], latency_s)
            c["early"] += int(early)
        if self.metrics is not None:
            self.metrics.sampling_decision_seconds.observe(latency_s)

    def report(self, window_s: float, service: str | None = None) -> dict:
        """Per service sums over the last ``window_s`` seconds (at most an hour)."""
        now = self.clock()
        since = now - min(window_s, KEEP_S)
        total: dict[str, dict] = defaultdict(_service_counts)
        with self._lock:
            for start, bucket in self._buckets.items():
                if start + BUCKET_S <= since:
                    continue
                for svc, c in bucket.items():
                    if service is not None and svc != service:
                        continue
                    t = total[svc]
                    for key, value in c.items():
                        if key in ("kept_by", "dropped_by"):
                            for k, v in value.items():
                                t[key][k] += v
                        elif key == "decision_max_s":
                            t[key] = max(t[key], value)
                        else:
                            t[key] += value
        span = max(now - since, 1e-9)
        out = {}
        for svc in sorted(total):
            c = total[svc]
            out[svc] = {
                "received": {"spans": c["spans_received"], "traces": c["traces_received"],
                             "traces_per_s": c["traces_received"] / span},
                "kept": {"spans": c["spans_kept"], "traces": c["traces_kept"],
                         "traces_per_s": c["traces_kept"] / span,
                         "by_reason": dict(c["kept_by"])},
                "dropped": {"spans": c["spans_dropped"], "traces": c["traces_dropped"],
                            "by_reason": dict(c["dropped_by"])},
                "represented_traces": round(c["represented"], 3),
                "kept_fraction": (c["traces_kept"] / c["traces_received"]) if c["traces_received"] else None,
                "decisions": {"count": c["decisions"], "early": c["early"],
                              "mean_latency_s": (c["decision_s"] / c["decisions"]) if c["decisions"] else None,
                              "max_latency_s": c["decision_max_s"] if c["decisions"] else None},
            }
        return {"window_s": window_s, "from": since, "to": now, "services": out}


class _Totals:
    """The Prometheus view of the totals, built at each scrape."""

    def __init__(self, stats: SamplingStats):
        self.stats = stats

    def describe(self):
        return []

    def collect(self):
        spans = CounterMetricFamily("clew_sampling_spans", "Spans by sampling decision and reason "
                                    "(head, a tail policy, no_policy, decided).",
                                    labels=["service", "decision", "reason"])
        traces = CounterMetricFamily("clew_sampling_traces", "Traces by sampling decision and reason.",
                                     labels=["service", "decision", "reason"])
        with self.stats._lock:
            rows = [(key, list(v)) for key, v in self.stats._totals.items()]
        for (service, decision, reason), (n_spans, n_traces) in sorted(rows):
            spans.add_metric([service, decision, reason], n_spans)
            traces.add_metric([service, decision, reason], n_traces)
        yield spans
        yield traces
