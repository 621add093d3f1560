"""Configuration: per-stage frozen dataclasses composed from defaults, TOML, ``CLEW_*`` env and flags.

This is the only module that reads the environment for settings (``CLEW_NO_EXTENSIONS``, the
switch between decoder twins, is read once in ``collector.codec``).  Precedence, lowest first:
defaults < TOML file < ``CLEW_SECTION_KEY`` environment variables < command-line flags
(``--set section.key=value`` and the named flags).  Every value is checked at start; an invalid
one raises ``ConfigError`` naming the key.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from collector.correlation import parse_links
from collector.errors import ConfigError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


def _port(section: str, name: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{section}.{name}: port must be 0..65535 (0 picks a free port), got {value}")


def _positive(section: str, name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{section}.{name}: must be > 0, got {value}")


@dataclass(frozen=True)
class ServerConfig:
    """Process-wide settings."""

    host: str = "0.0.0.0"
    data_dir: str = "./data"
    log_level: str = "info"
    shutdown_timeout_s: float = 30.0
    gil_switch_interval_s: float = 0.001  # how soon the loop thread gets the GIL back from the writer

    def validate(self) -> None:
        if not self.host:
            raise ConfigError("server.host: must not be empty")
        if not self.data_dir:
            raise ConfigError("server.data_dir: must not be empty")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"server.log_level: one of debug, info, warning, error, got {self.log_level!r}")
        _positive("server", "shutdown_timeout_s", self.shutdown_timeout_s)
        _positive("server", "gil_switch_interval_s", self.gil_switch_interval_s)


@dataclass(frozen=True)
class OtlpConfig:
    """The OTLP receivers (gRPC and HTTP)."""

    grpc_port: int = 4317
    http_port: int = 4318
    max_body_bytes: int = 16 * MiB  # compressed and decompressed; larger bodies get 413
    grpc_max_concurrent_rpcs: int = 256

    def validate(self) -> None:
        _port("otlp", "grpc_port", self.grpc_port)
        _port("otlp", "http_port", self.http_port)
        _positive("otlp", "max_body_bytes", self.max_body_bytes)
        _positive("otlp", "grpc_max_concurrent_rpcs", self.grpc_max_concurrent_rpcs)


@dataclass(frozen=True)
class JaegerConfig:
    """The Jaeger receivers: agent UDP (Thrift compact and binary), collector HTTP and gRPC."""

    compact_port: int = 6831  # UDP, agent.emitBatch in Thrift compact
    binary_port: int = 6832  # UDP, agent.emitBatch in Thrift binary
    http_port: int = 14268  # POST /api/traces, Thrift binary Batch
    grpc_port: int = 14250  # jaeger.api_v2.CollectorService/PostSpans
    max_datagram_bytes: int = 65_000  # larger UDP datagrams are counted and dropped

    def validate(self) -> None:
        for name in ("compact_port", "binary_port", "http_port", "grpc_port"):
            _port("jaeger", name, getattr(self, name))
        if not 512 <= self.max_datagram_bytes <= 65_535:
            raise ConfigError(f"jaeger.max_datagram_bytes: must be 512..65535, got {self.max_datagram_bytes}")


@dataclass(frozen=True)
class ZipkinConfig:
    """The Zipkin receiver: /api/v2/spans (JSON, proto3) and /api/v1/spans (JSON, Thrift)."""

    port: int = 9411

    def validate(self) -> None:
        _port("zipkin", "port", self.port)


@dataclass(frozen=True)
class LimitsConfig:
    """Validation limits applied to every span before it is stored (collector/pipeline.py)."""

    max_span_bytes: int = 64 * 1024
    max_spans_per_trace: int = 10_000

    def validate(self) -> None:
        _positive("limits", "max_span_bytes", self.max_span_bytes)
        _positive("limits", "max_spans_per_trace", self.max_spans_per_trace)


@dataclass(frozen=True)
class IngestConfig:
    """The path from receivers to the writer."""

    null_sink: bool = False  # answer success without decoding or storing: the transport ceiling
    max_queued_spans: int = 200_000  # past this the receivers answer busy (429 / RESOURCE_EXHAUSTED)
    retry_after_s: int = 1

    def validate(self) -> None:
        _positive("ingest", "max_queued_spans", self.max_queued_spans)
        _positive("ingest", "retry_after_s", self.retry_after_s)


@dataclass(frozen=True)
class StoreConfig:
    """The hot LMDB store (collector/store/)."""

    partition_s: int = 3600  # arrival-time width of one partition (one LMDB environment)
    map_size_bytes: int = 64 * GiB  # address space reserved per partition; files grow as needed
    fsync: bool = False  # False: durable against a process crash; True: against power loss too
    compression_level: int = 3  # zstd level for chunks; 0 stores them uncompressed
    max_batch_spans: int = 100_000  # spans written in one transaction (group commit)
    trace_count_cache: int = 100_000  # traces whose span counts are kept for the per-trace limit
    hot_dict_bytes: int = 112_640  # zstd dictionary trained per hot partition for its chunks; 0: none
    # tiers, retention and budget (docs/storage.md, docs/cold-format.md)
    hot_window_s: float = 7 * 86400.0  # a partition older than this (by its end) moves to a cold file
    cold_window_s: float = 90 * 86400.0  # data older than this (by its partition's end) is deleted
    max_disk_bytes: int = 0  # the data directory's budget; past it the oldest data goes; 0: none
    lifecycle_interval_s: float = 10.0  # how often the mover, retention and budget run
    cold_block_bytes: int = 256 * KiB  # uncompressed bytes of spans per cold block
    cold_dict_bytes: int = 112_640  # zstd dictionary trained per cold file; 0: none
    cold_compression_level: int = 3  # zstd level of cold blocks and sections (9: ~6% smaller, 4x the CPU)
    cold_index_cache_spans: int = 5_000_000  # spans whose cold indexes stay loaded for search
    mover_duty: float = 0.25  # share of wall time the mover and rewrites may work (they pause between)

    def validate(self) -> None:
        _positive("store", "partition_s", self.partition_s)
        for name in ("hot_window_s", "cold_window_s", "lifecycle_interval_s", "cold_block_bytes",
                     "cold_index_cache_spans"):
            _positive("store", name, getattr(self, name))
        if self.cold_window_s < self.hot_window_s:
            raise ConfigError(f"store.cold_window_s: must be >= store.hot_window_s ({self.hot_window_s}), "
                              f"got {self.cold_window_s}")
        if not 0 < self.mover_duty <= 1:
            raise ConfigError(f"store.mover_duty: must be in (0, 1], got {self.mover_duty}")
        if self.max_disk_bytes < 0:
            raise ConfigError(f"store.max_disk_bytes: must be >= 0 (0: no budget), got {self.max_disk_bytes}")
        if self.hot_dict_bytes < 0:
            raise ConfigError(f"store.hot_dict_bytes: must be >= 0 (0: no dictionary), got {self.hot_dict_bytes}")
        if self.cold_dict_bytes < 0:
            raise ConfigError(f"store.cold_dict_bytes: must be >= 0 (0: no dictionary), got {self.cold_dict_bytes}")
        if not 1 <= self.cold_compression_level <= 22:
            raise ConfigError(f"store.cold_compression_level: must be 1..22, got {self.cold_compression_level}")
        if self.map_size_bytes < 16 * MiB:
            raise ConfigError(f"store.map_size_bytes: must be >= {16 * MiB}, got {self.map_size_bytes}")
        if not 0 <= self.compression_level <= 22:
            raise ConfigError(f"store.compression_level: must be 0..22, got {self.compression_level}")
        _positive("store", "max_batch_spans", self.max_batch_spans)
        _positive("store", "trace_count_cache", self.trace_count_cache)


@dataclass(frozen=True)
class IndexConfig:
    """The search indexes (collector/store/index.py)."""

    max_value_len: int = 256  # longer string values are not search terms (their key still lists)
    allow_keys: str = ""  # comma-separated attribute keys; when set, only these are indexed
    deny_keys: str = ""  # comma-separated attribute keys never indexed (e.g. secrets, huge payloads)
    checkpoint_s: float = 10.0  # how often the indexes are persisted; newer spans are re-indexed on start

    def validate(self) -> None:
        _positive("index", "max_value_len", self.max_value_len)
        _positive("index", "checkpoint_s", self.checkpoint_s)

    def key_list(self, which: str) -> tuple[str, ...]:
        raw = getattr(self, which)
        return tuple(k.strip() for k in raw.split(",") if k.strip())


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling (collector/sampling/): the starting settings; ``PUT /api/v1/sampling`` changes them at
    run time and the changes are saved in ``DATA_DIR/sampling.json`` (see docs/sampling.md)."""

    default_rate: float = 1.0  # head: probability for services without their own strategy
    strategies_file: str = ""  # Jaeger file-based strategies (JSON): the head and SDK strategies
    remote_port: int = 5778  # Jaeger remote sampling over HTTP (GET /sampling?service=)
    tail: bool = False  # tail sampling: hold each trace until it is decided by the policies
    tail_policies_file: str = ""  # JSON list of tail policies; empty: keep every trace with an error
    tail_baseline_rate: float = 0.0  # adds a probabilistic policy to the default set (0: none)
    decision_wait_s: float = 10.0  # a trace quiet this long is decided
    root_grace_s: float = 2.0  # ... or this long after its root span arrived
    max_pending_traces: int = 100_000  # past this the oldest pending traces are decided early
    decision_cache: int = 200_000  # decided traces remembered, so late spans follow the decision
    adaptive: bool = False  # serve SDKs per-operation probabilities computed from traffic
    adaptive_interval_s: float = 60.0  # how often adaptive probabilities are recalculated
    target_traces_per_s: float = 1.0  # adaptive: sampled traces per second wanted per operation
    min_probability: float = 1e-5
    max_probability: float = 1.0
    tolerance: float = 0.3  # adaptive: no change while within this fraction of the target
    max_increase: float = 2.0  # adaptive: largest factor a probability may grow by per interval
    target_stored_spans_per_s: float = 0.0  # overload: lower the tail baseline to keep to this; 0 off
    stats_window_s: float = 300.0  # default window of /api/v1/sampling/stats

    def validate(self) -> None:
        def prob(name: str) -> None:
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"sampling.{name}: must be a probability 0..1, got {v}")
        for name in ("default_rate", "tail_baseline_rate", "min_probability", "max_probability"):
            prob(name)
        if self.min_probability > self.max_probability:
            raise ConfigError("sampling.min_probability: must not exceed sampling.max_probability")
        _port("sampling", "remote_port", self.remote_port)
        for name in ("decision_wait_s", "max_pending_traces", "decision_cache", "adaptive_interval_s",
                     "target_traces_per_s", "max_increase", "stats_window_s"):
            _positive("sampling", name, getattr(self, name))
        if self.root_grace_s < 0:
            raise ConfigError(f"sampling.root_grace_s: must be >= 0, got {self.root_grace_s}")
        if not 0 <= self.tolerance < 1:
            raise ConfigError(f"sampling.tolerance: must be 0..1, got {self.tolerance}")
        if self.max_increase < 1:
            raise ConfigError(f"sampling.max_increase: must be >= 1, got {self.max_increase}")
        if self.target_stored_spans_per_s < 0:
            raise ConfigError("sampling.target_stored_spans_per_s: must be >= 0 (0 turns it off)")


@dataclass(frozen=True)
class QueryConfig:
    """The query API and UI (query/)."""

    port: int = 16686
    ui_dir: str = ""  # empty: the ui/ folder shipped beside query/

    def validate(self) -> None:
        _port("query", "port", self.port)


@dataclass(frozen=True)
class AnalyticsConfig:
    """RED metrics computed at ingest and their series store (collector/analytics/, docs/analytics.md)."""

    enabled: bool = True  # compute calls, errors and latency histograms per service and operation
    bucket_s: int = 60  # width of the fine time buckets; must divide 3600 (the coarse buckets)
    lateness_s: float = 3600.0  # spans starting longer ago (or further ahead) than this are not counted
    flush_interval_s: float = 10.0  # aggregates in memory are written this often (and at shutdown)
    fine_retention_s: float = 7 * 86400.0  # fine buckets older than this are dropped; hourly ones stay
    retention_s: float = 90 * 86400.0  # hourly buckets older than this are dropped
    max_series: int = 100_000  # past this new series are counted under one overflow series
    map_size_bytes: int = 32 * GiB  # address space reserved for the metrics store; the file grows as needed
    edge_wait_s: float = 10.0  # a client or server half waits this long for its other half
    max_pending_edges: int = 100_000  # halves waiting at most; past it the oldest are given up
    max_cycles: int = 1000  # cycles listed at most by /api/v1/dependencies

    def validate(self) -> None:
        if self.bucket_s <= 0 or 3600 % self.bucket_s:
            raise ConfigError(f"analytics.bucket_s: must divide 3600 (e.g. 10, 60, 300), got {self.bucket_s}")
        for name in ("lateness_s", "flush_interval_s", "fine_retention_s", "retention_s", "max_series",
                     "edge_wait_s", "max_pending_edges", "max_cycles"):
            _positive("analytics", name, getattr(self, name))
        if self.fine_retention_s < 3600:
            raise ConfigError(f"analytics.fine_retention_s: must be >= 3600, got {self.fine_retention_s}")
        if self.lateness_s >= self.fine_retention_s:
            raise ConfigError(f"analytics.lateness_s: must be < analytics.fine_retention_s "
                              f"({self.fine_retention_s}), got {self.lateness_s}")
        if self.retention_s < self.fine_retention_s:
            raise ConfigError(f"analytics.retention_s: must be >= analytics.fine_retention_s "
                              f"({self.fine_retention_s}), got {self.retention_s}")
        if self.map_size_bytes < 16 * MiB:
            raise ConfigError(f"analytics.map_size_bytes: must be >= {16 * MiB}, got {self.map_size_bytes}")


@dataclass(frozen=True)
class CorrelationConfig:
    """Link templates rendered per trace and span (collector/correlation.py, docs/correlation.md)."""

    links: tuple = ()  # [[correlation.links]] tables: name, url, scope ("trace" | "span"), when
    max_span_links: int = 50_000  # span links one /api/v1/traces/{id}/links answer holds at most
    max_url_length: int = 8192  # a rendered URL longer than this is left out

    def validate(self) -> None:
        _positive("correlation", "max_span_links", self.max_span_links)
        _positive("correlation", "max_url_length", self.max_url_length)


@dataclass(frozen=True)
class AlertingConfig:
    """Alert rules evaluated on the RED metrics and their webhooks (collector/analytics/alerts.py,
    docs/alerting.md).  Alerting runs when ``analytics.enabled`` is true."""

    enabled: bool = True  # evaluate the rules of DATA_DIR/alerts/rules.json
    evaluation_interval_s: float = 15.0  # every rule is evaluated this often
    default_webhook: str = ""  # where rules without webhooks of their own notify (empty: nowhere)
    external_url: str = ""  # base URL of the query port in notifications (empty: http://host:port)
    webhook_timeout_s: float = 10.0  # one delivery attempt waits this long for an answer
    max_retries: int = 5  # a failed delivery is tried again at most this many times
    retry_backoff_s: float = 1.0  # wait before the first retry; doubled for each later one
    repeat_interval_s: float = 4 * 3600.0  # a firing alert is notified again this often
    max_queue: int = 1000  # deliveries waiting (or being retried) at most; past it new ones are dropped
    delivery_workers: int = 2  # threads delivering notifications
    max_rules: int = 1000
    max_history: int = 10_000  # transitions and delivery attempts kept (DATA_DIR/alerts/history.jsonl)

    def validate(self) -> None:
        for name in ("evaluation_interval_s", "webhook_timeout_s", "retry_backoff_s", "repeat_interval_s",
                     "max_queue", "delivery_workers", "max_rules", "max_history"):
            _positive("alerting", name, getattr(self, name))
        if self.max_retries < 0:
            raise ConfigError(f"alerting.max_retries: must be >= 0, got {self.max_retries}")
        for name in ("default_webhook", "external_url"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise ConfigError(f"alerting.{name}: must be an http:// or https:// URL, got {value!r}")


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    jaeger: JaegerConfig = field(default_factory=JaegerConfig)
    zipkin: ZipkinConfig = field(default_factory=ZipkinConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _section_class(name: str):
    return {f.name: f.default_factory for f in dataclasses.fields(Config)}[name]


def _coerce(key: str, value: Any, kind: str) -> Any:
    """Turn a TOML, environment or flag value into the field's type, naming the key on failure."""
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return int(str(value).strip().replace("_", ""))
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "str":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{key}: expected {kind}, got {value!r}")


def _field_kinds(section: str) -> dict[str, str]:
    cls = _section_class(section)
    return {f.name: (f.type if isinstance(f.type, str) else f.type.__name__)
            for f in dataclasses.fields(cls)}


def _apply(values: dict[str, dict[str, Any]], key: str, raw: Any) -> None:
    if "." not in key:
        raise ConfigError(f"{key}: expected section.key (sections: {', '.join(SECTIONS)})")
    section, name = key.split(".", 1)
    if section not in SECTIONS:
        raise ConfigError(f"{key}: unknown section {section!r} (sections: {', '.join(SECTIONS)})")
    kinds = _field_kinds(section)
    if name not in kinds:
        raise ConfigError(f"{key}: unknown key (known in [{section}]: {', '.join(kinds)})")
    if key == "correlation.links":  # TOML tables, or a TOML inline array as text (env, --set)
        values.setdefault(section, {})[name] = parse_links(key, raw)
        return
    values.setdefault(section, {})[name] = _coerce(key, raw, kinds[name])


def load_config(path: str | os.PathLike | None = None,
                overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Compose the configuration: defaults < TOML ``path`` < ``CLEW_*`` env < ``overrides``.

    ``overrides`` maps ``section.key`` to a value (from flags).  Raises ``ConfigError``.
    """
    values: dict[str, dict[str, Any]] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for section, table in doc.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{section}: expected a [{section}] table in {path}")
            for name, raw in table.items():
                _apply(values, f"{section}.{name}", raw)
    env = os.environ if environ is None else environ
    for var, raw in env.items():
        if not var.startswith("CLEW_") or var == "CLEW_NO_EXTENSIONS":
            continue
        rest = var[5:].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue
        _apply(values, f"{section}.{rest[len(section) + 1:]}", raw)
    for key, raw in (overrides or {}).items():
        _apply(values, key, raw)
    sections = {name: _section_class(name)(**values.get(name, {})) for name in SECTIONS}
    config = Config(**sections)
    config.validate()
    return config


def describe() -> list[tuple[str, str, Any]]:
    """(key, type, default) of every setting, for the docs and ``clew config``."""
    rows = []
    for section in SECTIONS:
        cls = _section_class(section)
        for f in dataclasses.fields(cls):
            rows.append((f"{section}.{f.name}", _field_kinds(section)[f.name], f.default))
    return rows
