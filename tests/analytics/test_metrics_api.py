"""Metrics query APIs on a real server fed by OpenTelemetry SDK services: /api/v1/metrics (JSON
and CSV), /api/v1/metrics/compare, Jaeger's Monitor API, the span-metrics names on /metrics, the
export of search results, and the 400s naming bad parameters."""
from __future__ import annotations

import csv
import io
import time

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import SdkServices, Server

NS = 1_000_000_000
MIN = 60 * NS
QS = (0.5, 0.95, 0.99)
NOW = time.time_ns()
T0 = NOW - 35 * MIN  # the checkout spans start in [T0, T0 + 30 min)
N_PAY, N_CART = 400, 200
RNG = np.random.default_rng(11)
PAY = np.round(RNG.lognormal(np.log(30e6), 0.6, N_PAY)).astype(np.int64)  # ~30 ms
CART = np.round(RNG.lognormal(np.log(8e6), 0.3, N_CART)).astype(np.int64)
CART_ERR = np.zeros(N_CART, bool)
CART_ERR[RNG.choice(N_CART, 20, replace=False)] = True  # exactly 10 %
# compare: a baseline range and a later range of the "api" service, on whole minutes (a range
# holds the one-minute buckets starting in it)
BASE = (NOW // MIN * MIN - 55 * MIN, NOW // MIN * MIN - 35 * MIN)
CUR = (NOW // MIN * MIN - 30 * MIN, NOW // MIN * MIN - 10 * MIN)
N_CMP = 150


def _exact(durations, q):
    return float(np.quantile(durations, q, method="inverted_cdf"))


def _close(got_ms, durations, q, tol=0.01):
    exact = _exact(durations, q) / 1e6
    assert got_ms is not None and abs(got_ms - exact) / exact <= tol, (q, got_ms, exact)


def _send(fleet, service, name, starts, durations, errors=None, kind=None):
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = fleet.tracer(service)
    for i, (s, d) in enumerate(zip(starts, durations)):
        span = tracer.start_span(name, kind=kind or SpanKind.SERVER, start_time=int(s))
        if errors is not None and errors[i]:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=int(s) + int(d))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("metrics") / "data", "analytics.flush_interval_s=1").start()
    try:
        fleet = SdkServices(server.otlp_http, ["checkout", "api"])
        _send(fleet, "checkout", "GET /pay", T0 + np.arange(N_PAY) * (30 * MIN // N_PAY), PAY)
        _send(fleet, "checkout", "GET /cart", T0 + np.arange(N_CART) * (30 * MIN // N_CART), CART, CART_ERR)
        rng = np.random.default_rng(3)
        for lo, hi, factor, err_p in ((*BASE, 1.0, 0.0), (*CUR, 2.0, 0.25)):
            starts = lo + np.arange(N_CMP) * ((hi - lo) // N_CMP)
            steady = np.round(20e6 * rng.lognormal(0, 0.3, N_CMP)).astype(np.int64)
            _send(fleet, "api", "steady", starts, steady)
            slow = np.round(20e6 * factor * rng.lognormal(0, 0.3, N_CMP)).astype(np.int64)
            _send(fleet, "api", "slow", starts, slow)
            flaky = np.round(20e6 * rng.lognormal(0, 0.3, N_CMP)).astype(np.int64)
            _send(fleet, "api", "flaky", starts, flaky, rng.random(N_CMP) < err_p)
        fleet.flush()
        deadline = time.monotonic() + 20
        while True:
            r = requests.get(server.url("/api/v1/metrics"), params={"service": "checkout", "from": T0 // NS - 60})
            if r.status_code == 200 and r.json()["series"][0]["totals"]["calls"] == N_PAY + N_CART:
                break
            assert time.monotonic() < deadline, r.text[:300]
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def _metrics(srv, **params):
    r = requests.get(srv.url("/api/v1/metrics"), params=params)
    assert r.status_code == 200, r.text
    return r


def test_quantiles_throughput_and_error_rate(srv):
    frm, to = T0 // NS - 60, NOW // NS + 60
    body = _metrics(srv, service="checkout", operation="GET /pay", **{"from": frm, "to": to}, step="1h").json()
    assert body["step"] == 3600 and body["quantiles"] == list(QS)
    (series,) = body["series"]
    tot = series["totals"]
    assert (tot["calls"], tot["errors"], tot["errorRate"]) == (N_PAY, 0, 0.0)
    for q in QS:
        _close(tot[f"p{int(q * 100)}"], PAY, q)
    span_s = len(series["points"]) * 3600
    assert tot["rate"] == pytest.approx(N_PAY / span_s)
    assert sum(p["calls"] for p in series["points"]) == N_PAY
    assert all(p["t"] % 3600 == 0 for p in series["points"])
    assert body["series"][0]["points"][0]["t"] <= frm < body["series"][0]["points"][0]["t"] + 3600

    # default step: at most 300 points, every span in one of them, quantile per busy step
    body = _metrics(srv, service="checkout", operation="GET /cart", **{"from": frm, "to": to}).json()
    (series,) = body["series"]
    assert body["step"] == 60 and len(series["points"]) <= 300
    pts = series["points"]
    assert sum(p["calls"] for p in pts) == N_CART and sum(p["errors"] for p in pts) == 20
    assert series["totals"]["errorRate"] == pytest.approx(0.1)
    for p in pts:
        assert p["rate"] == pytest.approx(p["calls"] / 60)
        assert (p["p50"] is None) == (p["calls"] == 0) == (p["errorRate"] is None)
    busy = [p for p in pts if p["calls"]]
    minute_s = (T0 + np.arange(N_CART) * (30 * MIN // N_CART)) // MIN * 60
    first_minute = CART[minute_s == busy[0]["t"]]
    assert busy[0]["calls"] == len(first_minute)
    _close(busy[0]["p99"], first_minute, 0.99)

    # the service's operations merged, then one series per operation
    merged = _metrics(srv, service="checkout", **{"from": frm, "to": to}, quantiles="0.5,0.999").json()
    (series,) = merged["series"]
    assert series["operation"] is None and series["totals"]["calls"] == N_PAY + N_CART
    both = np.concatenate([PAY, CART])
    _close(series["totals"]["p50"], both, 0.5)
    _close(series["totals"]["p99.9"], both, 0.999)
    grouped = _metrics(srv, service="checkout", groupBy="operation", **{"from": frm, "to": to}).json()
    assert [(s["operation"], s["totals"]["calls"]) for s in grouped["series"]] == [
        ("GET /pay", N_PAY), ("GET /cart", N_CART)]
    assert _metrics(srv, service="checkout", kind="client").json()["series"][0]["totals"]["calls"] == 0
    assert _metrics(srv, service="checkout", kind="SPAN_KIND_SERVER",
                    **{"from": frm}).json()["series"][0]["totals"]["calls"] == N_PAY + N_CART
    # an unknown service: one all-zero series, not an error
    nobody = _metrics(srv, service="nobody").json()["series"]
    assert len(nobody) == 1 and nobody[0]["totals"]["calls"] == 0


def test_csv_has_one_row_per_series_and_step(srv):
    frm, to = T0 // NS - 60, NOW // NS + 60
    params = {"service": "checkout", "groupBy": "operation", "from": frm, "to": to, "step": "5m"}
    as_json = _metrics(srv, **params).json()
    r = _metrics(srv, **params, format="csv")
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == ["service", "operation", "kind", "t", "calls", "errors", "errorRate", "rate",
                             "p50", "p95", "p99"]
    assert len(rows) == sum(len(s["points"]) for s in as_json["series"])
    for op, n in (("GET /pay", N_PAY), ("GET /cart", N_CART)):
        mine = [row for row in rows if row["operation"] == op]
        assert sum(int(row["calls"]) for row in mine) == n
        series = next(s for s in as_json["series"] if s["operation"] == op)
        for row, p in zip(mine, series["points"]):
            assert int(row["t"]) == p["t"] and row["service"] == "checkout"
            assert (row["p95"] == "") == (p["p95"] is None)
            if p["p95"] is not None:
                assert float(row["p95"]) == pytest.approx(p["p95"])
    assert sum(int(row["errors"]) for row in rows) == 20


def test_compare_flags_the_injected_regression_only(srv):
    params = {"service": "api", "baselineFrom": BASE[0] // NS, "baselineTo": BASE[1] // NS,
              "from": CUR[0] // NS, "to": CUR[1] // NS}
    r = requests.get(srv.url("/api/v1/metrics/compare"), params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {row["operation"]: row for row in body["rows"]}
    assert set(rows) == {"steady", "slow", "flaky"}
    assert body["regressions"] == 2
    assert [row["operation"] for row in body["rows"]][2] == "steady"
    slow, steady, flaky = rows["slow"], rows["steady"], rows["flaky"]
    assert slow["regression"] and slow["reasons"] == ["p95"]
    assert slow["relative"]["p95"] == pytest.approx(1.0, abs=0.35)
    assert slow["baseline"]["calls"] == slow["current"]["calls"] == N_CMP
    assert slow["delta"]["p95"] == pytest.approx(slow["current"]["p95"] - slow["baseline"]["p95"])
    assert not steady["regression"] and steady["reasons"] == []
    assert abs(steady["relative"]["p95"]) < 0.2
    assert flaky["regression"] and flaky["reasons"] == ["errorRate"]
    assert flaky["baseline"]["errorRate"] == 0 and flaky["delta"]["errorRate"] > 0.05
    # the same with a baseline offset: the later range moved back by 25 minutes
    r = requests.get(srv.url("/api/v1/metrics/compare"), params={
        "service": "api", "baseline": "25m", "from": CUR[0] // NS, "to": CUR[1] // NS})
    assert r.json()["baselineFrom"] == CUR[0] // NS - 1500
    assert {row["operation"] for row in r.json()["rows"] if row["regression"]} == {"slow", "flaky"}
    # a stricter minCalls hides everything; a huge threshold leaves the error-rate rise only
    strict = requests.get(srv.url("/api/v1/metrics/compare"), params={**params, "minCalls": 1000}).json()
    assert strict["regressions"] == 0
    loose = requests.get(srv.url("/api/v1/metrics/compare"), params={**params, "threshold": 5}).json()
    assert [row["operation"] for row in loose["rows"] if row["regression"]] == ["flaky"]


def test_jaeger_monitor_api(srv):
    end_ms = NOW // 1_000_000 + 120_000
    base = {"service": "checkout", "endTs": end_ms, "lookback": 600_000, "step": 60_000, "ratePer": 3_600_000}
    calls = requests.get(srv.url("/api/metrics/calls"), params=base).json()
    assert (calls["name"], calls["type"], calls["help"]) == (
        "service_call_rate", "GAUGE", "calls/sec, grouped by service")
    (metric,) = calls["metrics"]
    assert metric["labels"] == [{"name": "service_name", "value": "checkout"}]
    assert len(metric["metricPoints"]) == 11
    last = metric["metricPoints"][-1]
    assert last["gaugeValue"]["doubleValue"] == pytest.approx((N_PAY + N_CART) / 3600)
    assert last["timestamp"].endswith("Z") and last["timestamp"][:19] == time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.gmtime(end_ms // 1000))

    lat = requests.get(srv.url("/api/metrics/latencies"),
                       params={**base, "quantile": 0.95, "groupByOperation": "true"}).json()
    assert lat["name"] == "service_operation_latencies"
    assert lat["help"] == "0.95th quantile latency, grouped by service & operation"
    by_op = {m["labels"][0]["value"]: m for m in lat["metrics"]}
    assert set(by_op) == {"GET /pay", "GET /cart"}
    assert by_op["GET /pay"]["labels"][1] == {"name": "service_name", "value": "checkout"}
    _close(by_op["GET /pay"]["metricPoints"][-1]["gaugeValue"]["doubleValue"], PAY, 0.95)
    _close(by_op["GET /cart"]["metricPoints"][-1]["gaugeValue"]["doubleValue"], CART, 0.95)

    errs = requests.get(srv.url("/api/metrics/errors"), params={**base, "groupByOperation": "1"}).json()
    assert errs["name"] == "service_operation_error_rate"
    rates = {m["labels"][0]["value"]: m["metricPoints"][-1]["gaugeValue"]["doubleValue"] for m in errs["metrics"]}
    assert rates == {"GET /cart": pytest.approx(0.1), "GET /pay": 0.0}

    # two services; a span kind nobody sent; the minimum step
    two = requests.get(srv.url("/api/metrics/calls") + "?service=checkout&service=api&"
                       f"endTs={end_ms}&lookback=600000&step=60000&ratePer=3600000").json()
    assert sorted(m["labels"][0]["value"] for m in two["metrics"]) == ["api", "checkout"]
    client = requests.get(srv.url("/api/metrics/calls"), params={**base, "spanKind": "SPAN_KIND_CLIENT"}).json()
    assert client["metrics"] == []
    lower = requests.get(srv.url("/api/metrics/calls"), params={**base, "spanKind": "server"}).json()
    assert lower == calls
    minstep = requests.get(srv.url("/api/metrics/minstep")).json()
    assert minstep["data"] == 60_000 and minstep["errors"] is None


def test_span_metrics_on_prometheus_endpoint(srv):
    text = requests.get(srv.url("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    calls = families["traces_span_metrics_calls"]
    assert calls.type == "counter"
    got = {(s.labels["service_name"], s.labels["span_name"], s.labels["span_kind"], s.labels["status_code"]): s.value
           for s in calls.samples if s.name == "traces_span_metrics_calls_total"}
    assert got[("checkout", "GET /pay", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET")] == N_PAY
    assert got[("checkout", "GET /cart", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET")] == N_CART - 20
    assert got[("checkout", "GET /cart", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR")] == 20
    hist = families["traces_span_metrics_duration_milliseconds"]
    assert hist.type == "histogram"
    pay = [s for s in hist.samples if s.labels.get("span_name") == "GET /pay"]
    buckets = {s.labels["le"]: s.value for s in pay if s.name.endswith("_bucket")}
    bounds = [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]
    assert [float(le) for le in buckets if le != "+Inf"] == bounds
    for le, v in buckets.items():
        bound = float("inf") if le == "+Inf" else float(le) * 1e6
        assert v == np.count_nonzero(PAY <= bound), le
    (count,) = [s.value for s in pay if s.name.endswith("_count")]
    (total,) = [s.value for s in pay if s.name.endswith("_sum")]
    assert count == N_PAY and total == pytest.approx(PAY.sum() / 1e6)


def test_export_search_results(srv):
    params = {"query.serviceName": "checkout", "query.operationName": "GET /cart", "query.searchDepth": 1000}
    r = requests.get(srv.url("/api/v1/export/traces"), params=params)
    assert r.status_code == 200, r.text
    traces = r.json()["traces"]
    assert len(traces) == N_CART
    assert sum(t["errors"] for t in traces) == 20
    assert all(t["rootService"] == "checkout" and t["rootOperation"] == "GET /cart" and t["spans"] == 1
               and t["services"] == ["checkout"] and len(t["traceId"]) == 32 for t in traces)
    assert sorted(round(t["durationMs"] * 1e6) for t in traces) == sorted(CART.tolist())
    r = requests.get(srv.url("/api/v1/export/traces"), params={**params, "format": "csv"})
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == ["traceId", "rootService", "rootOperation", "start", "durationMs", "spans", "errors",
                             "services"]
    assert [row["traceId"] for row in rows] == [t["traceId"] for t in traces]
    assert sum(int(row["errors"]) for row in rows) == 20
    assert rows[0]["start"] == traces[0]["start"] and rows[0]["start"].endswith("Z")
    limited = requests.get(srv.url("/api/v1/export/traces"), params={**params, "limit": 5}).json()["traces"]
    assert len(limited) == 5


@pytest.mark.parametrize("path, params, name", [
    ("/api/v1/metrics", {}, "service"),
    ("/api/v1/metrics", {"service": "checkout", "step": "0"}, "step"),
    ("/api/v1/metrics", {"service": "checkout", "step": "10s"}, "step"),
    ("/api/v1/metrics", {"service": "checkout", "step": "1m", "from": "0"}, "step"),
    ("/api/v1/metrics", {"service": "checkout", "quantiles": "0.5,2"}, "quantiles"),
    ("/api/v1/metrics", {"service": "checkout", "kind": "sideways"}, "kind"),
    ("/api/v1/metrics", {"service": "checkout", "groupBy": "host"}, "groupBy"),
    ("/api/v1/metrics", {"service": "checkout", "format": "xml"}, "format"),
    ("/api/v1/metrics", {"service": "checkout", "from": "soon"}, "from"),
    ("/api/v1/metrics", {"service": "checkout", "from": "2000", "to": "1000"}, "from"),
    ("/api/v1/metrics/compare", {"baselineFrom": "1000"}, "baselineTo"),
    ("/api/v1/metrics/compare", {"baseline": "a week"}, "baseline"),
    ("/api/v1/metrics/compare", {"threshold": "x"}, "threshold"),
    ("/api/v1/metrics/compare", {"minCalls": "-1"}, "minCalls"),
    ("/api/v1/metrics/compare", {"errorThreshold": "2"}, "errorThreshold"),
    ("/api/metrics/latencies", {"service": "checkout"}, "quantile"),
    ("/api/metrics/latencies", {"service": "checkout", "quantile": "1.5"}, "quantile"),
    ("/api/metrics/calls", {}, "service"),
    ("/api/metrics/calls", {"service": "checkout", "lookback": "1h"}, "lookback"),
    ("/api/metrics/calls", {"service": "checkout", "spanKind": "SPAN_KIND_SIDEWAYS"}, "spanKind"),
    ("/api/metrics/calls", {"service": "checkout", "groupByOperation": "yes"}, "groupByOperation"),
    ("/api/metrics/errors", {"service": "checkout", "step": "1"}, "step"),
    ("/api/metrics/errors", {"service": "checkout", "ratePer": "0"}, "ratePer"),
    ("/api/v1/export/traces", {"format": "xlsx"}, "format"),
    ("/api/v1/export/traces", {"query.searchDepth": "0"}, "query.searchDepth"),
    ("/api/v1/export/traces", {"limit": "100000"}, "limit"),
])
def test_bad_parameters_are_named(srv, path, params, name):
    r = requests.get(srv.url(path), params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    message = body["errors"][0]["msg"] if path.startswith("/api/metrics/") else body["error"]["message"]
    assert name in message, message


def test_metrics_off_answers_503_and_jaeger_501(server_factory):
    srv = server_factory("analytics.enabled=false")
    assert requests.get(srv.url("/api/v1/metrics"), params={"service": "a"}).status_code == 503
    assert requests.get(srv.url("/api/v1/metrics/compare")).status_code == 503
    r = requests.get(srv.url("/api/metrics/calls"), params={"service": "a"})
    assert r.status_code == 501 and "analytics.enabled" in r.json()["errors"][0]["msg"]
    assert "traces_span_metrics_calls_total" not in requests.get(srv.url("/metrics")).text
    assert requests.get(srv.url("/api/v1/export/traces")).json() == {"traces": []}
