"""Self-observability: the Prometheus metrics every stage reports into (served at /metrics)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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

    def watch_lifecycle(self, lifecycle) -> None:
        """Report the tiers' lifecycle (budget, oldest data, moves and drops) at each scrape."""
        self.registry.register(_LifecycleCollector(lifecycle))

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
        tiers = stats.get("tiers", {})
        for name, help_text, key in (("clew_store_tier_bytes", "Bytes on disk per tier.", "disk_bytes"),
                                     ("clew_store_tier_spans", "Spans stored per tier.", "spans"),
                                     ("clew_store_tier_partitions", "Partitions (hot) or files (cold) per tier.",
                                      "partitions")):
            g = GaugeMetricFamily(name, help_text, labels=["tier"])
            for tier, values in tiers.items():
                g.add_metric([tier], values[key])
            yield g
        yield GaugeMetricFamily("clew_store_damaged_files", "Cold files skipped because a checksum failed.",
                                value=stats.get("broken_cold_files", 0))


class _LifecycleCollector:
    def __init__(self, lifecycle):
        self.lifecycle = lifecycle

    def describe(self):
        return []

    def collect(self):
        life = self.lifecycle
        yield GaugeMetricFamily("clew_store_budget_bytes", "The data directory's budget (0: none).",
                                value=life.config.max_disk_bytes)
        yield GaugeMetricFamily("clew_store_data_dir_bytes", "Bytes the data directory takes on disk.",
                                value=life.usage())
        oldest = GaugeMetricFamily("clew_store_oldest_partition_timestamp_seconds",
                                   "Start of the oldest partition per tier (epoch s).", labels=["tier"])
        for tier, start in life.oldest().items():
            oldest.add_metric([tier], start)
        yield oldest
        events = CounterMetricFamily("clew_store_lifecycle", "Lifecycle events: moves, drops, rewrites, "
                                     "deletions, expired held spans.", labels=["event"])
        for event, n in life.counters.items():
            events.add_metric([event], n)
        yield events
