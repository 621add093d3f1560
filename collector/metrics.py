"""Self-observability: the Prometheus metrics every stage reports into (served at /metrics)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

_LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
                    0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    """One registry per server, so tests can run several servers in one process."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.spans_received = Counter("clew_spans_received", "Spans received, before validation.",
                                      ["protocol"], registry=r)
        self.spans_accepted = Counter("clew_spans_accepted", "Spans committed to the store.",
                                      ["protocol"], registry=r)
        self.spans_refused = Counter("clew_spans_refused", "Spans refused, by reason.",
                                     ["protocol", "reason"], registry=r)
        self.requests = Counter("clew_ingest_requests", "Ingest requests by outcome.",
                                ["protocol", "outcome"], registry=r)
        self.commit_seconds = Histogram("clew_commit_seconds", "Time to write and commit one group.",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.writer_task_seconds = Histogram("clew_writer_task_seconds", "Time the writer thread spent on "
                                             "other work between commits (tail-sampling decisions).",
                                             buckets=_LATENCY_BUCKETS, registry=r)
        self.commit_batches = Histogram("clew_commit_batches", "Requests committed per transaction.",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.ack_seconds = Histogram("clew_ack_seconds", "Time from a request's body to its answer.",
                                     ["protocol"], buckets=_LATENCY_BUCKETS, registry=r)
        self.udp_received = Counter("clew_udp_datagrams_received", "UDP datagrams received.",
                                    ["protocol"], registry=r)
        self.udp_dropped = Counter("clew_udp_datagrams_dropped",
                                   "UDP datagrams dropped, by reason (UDP cannot be refused).",
                                   ["protocol", "reason"], registry=r)
        self.queue_spans = Gauge("clew_ingest_queue_spans", "Spans waiting for the writer.", registry=r)
        # clew_sampling_spans_total / clew_sampling_traces_total: collector/sampling/stats.py
        self.sampling_decision_seconds = Histogram(
            "clew_sampling_decision_seconds", "Time from a trace's first span to its tail decision.",
            buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120), registry=r)
        self.sampling_pending = Gauge("clew_sampling_pending_traces", "Traces awaiting a tail decision.",
                                      registry=r)
        self.sampling_baseline = Gauge("clew_sampling_baseline_factor", "Factor applied to the tail "
                                       "stage's probabilistic policies to hold stored spans/s to target.",
                                       registry=r)
        self.sampling_probability = Gauge("clew_sampling_adaptive_probability", "Adaptive probability "
                                          "served per service and operation.", ["service", "operation"],
                                          registry=r)

    def watch_store(self, stats_fn) -> None:
        """Report the store's own counters (bytes on disk, spans, partitions) at each scrape."""
        self.registry.register(_StoreCollector(stats_fn))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector:
    def __init__(self, stats_fn):
        self.stats_fn = stats_fn

    def describe(self):
        return []

    def collect(self):
        stats = self.stats_fn()
        yield GaugeMetricFamily("clew_store_bytes", "Bytes on disk in the store.",
                                value=stats["disk_bytes"])
        yield GaugeMetricFamily("clew_store_spans", "Spans stored (before de-duplication).",
                                value=stats["spans"])
        yield GaugeMetricFamily("clew_store_partitions", "Hot partitions.", value=stats["partitions"])
