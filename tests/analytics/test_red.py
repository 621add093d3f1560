"""RED metrics at ingest: counted before sampling, persisted, rolled up and retained, bounded."""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from collector.analytics import NBUCKETS, SeriesStore, quantiles
from collector.config import AnalyticsConfig, load_config
from collector.errors import ConfigError
from conftest import SdkServices

QS = (0.5, 0.95, 0.99)
NS = 1_000_000_000


def _open(data_dir: Path) -> SeriesStore:
    return SeriesStore(Path(data_dir) / "analytics", AnalyticsConfig(), readonly=True)


def _within_1pct(hist, durations):
    for q, got in zip(QS, quantiles(hist, QS)):
        exact = np.quantile(durations, q, method="inverted_cdf")
        assert got is not None and abs(got - exact) / exact <= 0.01, (q, got, exact)


def test_red_metrics_from_sdk_spans_survive_a_restart(server_factory, tmp_path):
    from opentelemetry.trace import SpanKind, Status, StatusCode

    data = tmp_path / "red"
    srv = server_factory("analytics.flush_interval_s=1", data_dir=data)
    rng = np.random.default_rng(5)
    durations = np.round(rng.lognormal(np.log(30e6), 0.8, 300)).astype(np.int64)  # ~30 ms
    errors = rng.random(300) < 0.1
    fleet = SdkServices(srv.otlp_http, ["checkout", "payments"])
    t0 = time.time_ns() - 60 * NS
    for i, (d, bad) in enumerate(zip(durations.tolist(), errors.tolist())):
        span = fleet.tracer("checkout").start_span("GET /cart", kind=SpanKind.SERVER, start_time=t0 + i * NS // 10)
        if bad:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=t0 + i * NS // 10 + d)
    fleet.span("payments", "charge", t0, t0 + 5_000_000, kind=SpanKind.CLIENT)
    fleet.flush()

    def totals():
        store = _open(data)
        try:
            ids = {k: store.series_id(k) for k in store.keys("span")}
            return ids, store.totals(list(ids.values()), t0 - 120 * NS, time.time_ns() + NS)
        finally:
            store.close()

    cart = ("span", "checkout", "GET /cart", "server")
    deadline = time.monotonic() + 15
    while True:  # the periodic flush writes them while the server runs
        ids, tot = totals()
        if cart in ids and tot[ids[cart]].calls == 300:
            break
        assert time.monotonic() < deadline, f"metrics not flushed: {ids} {tot}"
        time.sleep(0.3)
    srv.stop()
    srv = server_factory("analytics.flush_interval_s=1", data_dir=data)  # restart: metrics kept
    srv.stop()
    ids, tot = totals()
    assert set(ids) == {cart, ("span", "payments", "charge", "client")}
    p = tot[ids[cart]]
    assert p.calls == 300 and p.errors == int(errors.sum())
    assert p.duration_sum_ns == int(durations.sum())
    _within_1pct(p.hist, durations)
    assert tot[ids[("span", "payments", "charge", "client")]].calls == 1


def _export_body(n: int, start_ns: int, rng) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="frontend")))
    spans = rs.scope_spans.add().spans
    trace_ids = rng.bytes(16 * n)
    span_ids = rng.bytes(8 * n)
    durs = rng.integers(1_000_000, 50_000_000, n).tolist()
    for i in range(n):
        s = spans.add()
        s.trace_id = trace_ids[16 * i:16 * i + 16]
        s.span_id = span_ids[8 * i:8 * i + 8]
        s.name = "GET /home"
        s.kind = 2
        s.start_time_unix_nano = start_ns + i
        s.end_time_unix_nano = start_ns + i + durs[i]
    return req.SerializeToString()


def test_head_sampling_at_one_percent_still_counts_every_call(server_factory, tmp_path):
    data = tmp_path / "sampled"
    srv = server_factory("sampling.default_rate=0.01", "analytics.flush_interval_s=1", data_dir=data)
    rng = np.random.default_rng(9)
    start = time.time_ns() - 30 * NS
    session = requests.Session()
    for _ in range(20):  # 100,000 one-span traces, 5,000 per request
        r = session.post(srv.otlp_http, data=_export_body(5000, start, rng),
                         headers={"Content-Type": "application/x-protobuf"}, timeout=60)
        assert r.status_code == 200, r.text
    text = requests.get(srv.url("/metrics"), timeout=10).text
    stored = sum(float(v) for v in re.findall(r'^clew_spans_accepted_total\{[^}]*\} (\S+)$', text, re.M))
    assert 700 <= stored <= 1300, stored  # ~1 % of the traces are stored
    srv.stop()
    store = _open(data)
    try:
        sid = store.series_id(("span", "frontend", "GET /home", "server"))
        assert store.totals([sid], start - 60 * NS, time.time_ns())[sid].calls == 100_000
    finally:
        store.close()


class FakeClock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_fine_buckets_roll_up_to_hours_then_expire(tmp_path):
    t0 = 1_800_000_000.0  # an hour boundary
    clock = FakeClock(t0 + 1800)
    config = AnalyticsConfig(lateness_s=600, fine_retention_s=2 * 3600, retention_s=5 * 3600)
    store = SeriesStore(tmp_path / "a", config, clock=clock)
    sid = store.series_id(("span", "svc", "op", "server"))
    rng = np.random.default_rng(1)
    n = 5000
    start = (t0 + 1500 + rng.uniform(0, 120, n)) * NS  # minutes 25 and 26 of the hour
    dur = np.round(rng.lognormal(np.log(3e6), 1.0, n)).astype(np.int64)
    err = rng.random(n) < 0.2
    store.add(np.full(n, sid), start.astype(np.int64), dur, err)
    store.add(np.full(3, sid), np.full(3, int((t0 - 7200) * NS)), np.ones(3, np.int64), np.zeros(3, bool))
    store.flush()
    assert store.counters["late_spans"] == 3  # older than lateness_s: not counted

    lo, hi = int(t0 * NS), int((t0 + 3600) * NS)
    minutes = store.read([sid], lo, hi, 60)[sid]
    assert len(minutes) == 60 and [p.t_ns for p in minutes[:2]] == [lo, lo + 60 * NS]
    assert sum(p.calls for p in minutes) == n
    assert [k for k, p in enumerate(minutes) if p.calls] == [25, 26]
    assert minutes[0].calls == 0 and minutes[0].hist.shape == (NBUCKETS,) and not minutes[0].hist.any()
    _within_1pct(store.totals([sid], lo, hi)[sid].hist, dur)

    clock.t = t0 + 4 * 3600  # past fine_retention_s: only the hourly bucket is left
    store.flush()
    assert store.read([sid], lo, hi, 3600)[sid][0].calls == n
    minutes = store.read([sid], lo, hi, 60)[sid]
    assert minutes[0].calls == n and sum(p.calls for p in minutes) == n  # the hour counts at its start
    total = store.totals([sid], lo, hi)[sid]
    assert (total.calls, total.errors, total.duration_sum_ns) == (n, int(err.sum()), int(dur.sum()))
    _within_1pct(total.hist, dur)
    with store.env.begin() as txn:
        assert txn.stat(store._data)["entries"] == 1  # the fine buckets are gone

    store.close()
    store = SeriesStore(tmp_path / "a", config, clock=clock)  # the watermarks are kept
    assert store.totals([sid], lo, hi)[sid].calls == n
    clock.t = t0 + 7 * 3600  # past retention_s: gone
    store.flush()
    assert store.totals([sid], lo, hi)[sid].calls == 0
    store.close()


def test_series_past_max_series_go_to_the_overflow_series(tmp_path):
    clock = FakeClock(1_800_000_000.0)
    store = SeriesStore(tmp_path / "o", AnalyticsConfig(max_series=3), clock=clock)
    ids = [store.series_id(("span", "svc", f"op{i}", "server")) for i in range(5)]
    assert len(set(ids[:3])) == 3 and ids[3] == ids[4] not in ids[:3]
    assert ("span", "_other", "_other", "") in store.keys("span")
    assert store.series_id(("span", "svc", "op0", "server")) == ids[0]  # known ones keep theirs
    now = int(clock.t * NS)
    store.add(np.array(ids), np.full(5, now), np.full(5, 1000), np.zeros(5, bool))
    store.flush()
    assert store.stats()["overflow_spans"] == 2
    tot = store.totals([ids[0], ids[3]], now - NS, now + NS)
    assert tot[ids[3]].calls == 2 and tot[ids[0]].calls == 1
    store.close()
    store = SeriesStore(tmp_path / "o", AnalyticsConfig(max_series=3), clock=clock)
    assert store.series_id(("span", "svc", "op9", "server")) == ids[3]  # still full after a restart
    store.close()


def test_keys_by_family_and_prefix(tmp_path):
    store = SeriesStore(tmp_path / "k", AnalyticsConfig())
    store.series_id(("span", "a", "x", "server"))
    store.series_id(("span", "b", "y", "client"))
    store.series_id(("edge", "a", "b"))
    assert store.keys("span", ("a",)) == [("span", "a", "x", "server")]
    assert store.keys("edge") == [("edge", "a", "b")]
    store.close()


@pytest.mark.parametrize("key, value, message", [
    ("analytics.bucket_s", "7", "analytics.bucket_s: must divide 3600"),
    ("analytics.lateness_s", "999999999", "analytics.lateness_s: must be < analytics.fine_retention_s"),
    ("analytics.retention_s", "60", "analytics.retention_s: must be >= analytics.fine_retention_s"),
    ("analytics.max_series", "0", "analytics.max_series: must be > 0"),
])
def test_invalid_analytics_settings_name_the_key(key, value, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides={key: value}, environ={})
    assert str(err.value).startswith(message)


def test_bucket_width_cannot_change_under_stored_metrics(tmp_path):
    SeriesStore(tmp_path / "w", AnalyticsConfig(bucket_s=60)).close()
    with pytest.raises(ConfigError, match="analytics.bucket_s"):
        SeriesStore(tmp_path / "w", AnalyticsConfig(bucket_s=300))
