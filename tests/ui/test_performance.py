"""UI: the service performance page (`/performance`) over spans sent with the OpenTelemetry SDK.

The range shown is ten whole minutes starting at T (20 minutes ago, on a minute boundary):

* ``shop`` ``GET /cart`` (server): 6 calls of 20 ms at T+2m;
* ``shop`` ``POST /pay`` (server): 4 calls of 200 ms at T+5m, one of them failed.

Ten minutes before (the comparison with ``compare=10m``): ``GET /cart`` 3 calls of 10 ms at
T−8m, ``POST /pay`` 2 calls of 200 ms at T−5m.  Metrics are flushed every second
(``analytics.flush_interval_s=1``).
"""
from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import expect

from conftest import SdkServices, Server

MS = 1_000_000
MIN = 60 * 10**9


@pytest.fixture(scope="module")
def perf(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("perf") / "data", "analytics.flush_interval_s=1").start()
    t = (time.time_ns() - 20 * MIN) // MIN * MIN
    svc = SdkServices(srv.otlp_http, ["shop"])
    tracer = svc.tracer("shop")

    def spans(name, start, n, dur, errors=0):
        for i in range(n):
            s = tracer.start_span(name, kind=SpanKind.SERVER, start_time=start + i * MS)
            if i < errors:
                s.set_status(Status(StatusCode.ERROR, "declined"))
            s.end(end_time=start + i * MS + dur)

    spans("GET /cart", t + 2 * MIN, 6, 20 * MS)
    spans("POST /pay", t + 5 * MIN, 4, 200 * MS, errors=1)
    spans("GET /cart", t - 8 * MIN, 3, 10 * MS)
    spans("POST /pay", t - 5 * MIN, 2, 200 * MS)
    svc.flush()
    # The metrics are readable once the flush thread has written them.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = requests.get(srv.url("/api/v1/metrics"), params={"service": "shop", "from": t // 10**9 - 600,
                                                               "to": t // 10**9 + 600}).json()
        if got["series"][0]["totals"]["calls"] == 15:
            break
        time.sleep(0.2)
    srv.t = t // 10**9  # the range's start, unix seconds
    yield srv
    srv.stop()


def url(srv, **extra):
    params = {"service": "shop", "start": str(srv.t * 10**6), "end": str((srv.t + 600) * 10**6), **extra}
    return srv.url("/performance?" + "&".join(f"{k}={requests.utils.quote(v)}" for k, v in params.items()))


def op_row(page, operation):
    return page.get_by_role("table", name="Operations").locator(f'tbody tr[data-operation="{operation}"]')


def cell(page, operation, field):
    return op_row(page, operation).locator(f'td[data-field="{field}"]')


def test_charts_and_operations_of_a_service(page, perf):
    page.goto(url(perf))
    for name in ("chart-latency", "chart-errors", "chart-throughput"):
        expect(page.get_by_test_id(name)).to_be_visible()
    status = page.get_by_role("status")
    expect(status).to_contain_text("shop: 10 calls")
    expect(status).to_contain_text("1 errors (10%)")
    expect(status).to_contain_text("1-minute steps")
    # Ten one-minute steps; two of them hold calls.
    latency = page.get_by_test_id("chart-latency")
    expect(latency.get_by_test_id("chart-step")).to_have_count(10)
    expect(latency.locator(".chart-step.has-data")).to_have_count(2)
    expect(latency.locator('[data-series="p95"] path')).to_have_attribute("d", re.compile(r"^M"))

    rows = page.get_by_role("table", name="Operations").locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("All operations")
    expect(rows.first).to_have_attribute("aria-current", "true")
    expect(cell(page, "", "calls")).to_have_text("10")
    expect(cell(page, "GET /cart", "calls")).to_have_text("6")
    expect(cell(page, "POST /pay", "calls")).to_have_text("4")
    expect(cell(page, "POST /pay", "errorRate")).to_have_text("25%")
    expect(cell(page, "GET /cart", "errorRate")).to_have_text("0%")
    expect(cell(page, "POST /pay", "p50")).to_have_text(re.compile(r"^(199|200|201)(\.\d)?ms$"))
    expect(page.get_by_label("Operation", exact=True)).to_contain_text("POST /pay")

    # The pointer over a step reads its values out.
    latency.locator(f'[data-t="{perf.t + 120}"]').hover()
    expect(latency.get_by_test_id("chart-readout")).to_contain_text("p50 20")

    # The CSV export of the series is the API's.
    href = page.get_by_role("link", name="this series").get_attribute("href")
    assert href.startswith("/api/v1/metrics?") and "format=csv" in href and "service=shop" in href
    body = requests.get(perf.url(href)).text
    assert body.startswith("service,operation,kind,t,calls,errors,errorRate,rate,p50,p95,p99")
    assert f"shop,,,{perf.t + 300},4,1," in body


def test_selecting_an_operation_shows_its_charts(page, perf):
    page.goto(url(perf))
    op_row(page, "GET /cart").get_by_role("link", name="GET /cart: show its charts").click()
    expect(page).to_have_url(re.compile(r"operation=GET\+%2Fcart|operation=GET%20%2Fcart"))
    expect(page.get_by_role("status")).to_contain_text("shop · GET /cart: 6 calls")
    expect(op_row(page, "GET /cart")).to_have_attribute("aria-current", "true")
    expect(page.get_by_label("Operation", exact=True)).to_have_value("GET /cart")
    expect(page.get_by_test_id("chart-latency").locator(".chart-step.has-data")).to_have_count(1)
    # Back to every operation with the form, by keyboard.
    page.get_by_label("Operation", exact=True).select_option("")
    expect(page.get_by_role("status")).to_contain_text("shop: 10 calls")
    page.go_back()
    expect(page.get_by_role("status")).to_contain_text("shop · GET /cart: 6 calls")


def test_comparison_with_an_earlier_range(page, perf):
    page.goto(url(perf, compare="10m"))
    expect(page.get_by_label("Compare with")).to_have_value("10m")
    latency = page.get_by_test_id("chart-latency")
    expect(latency.locator('[data-series="p95 (10m earlier)"].dashed path')).to_have_attribute("d", re.compile(r"^M"))
    expect(page.get_by_role("status")).to_contain_text("dashed: the same range 10m earlier (5 calls)")
    # The earlier cart calls (T−8m) are drawn at the step ten minutes later (T+2m).
    latency.locator(f'[data-t="{perf.t + 120}"]').hover()
    expect(latency.get_by_test_id("chart-readout")).to_contain_text(re.compile(r"10m earlier p50 (9\.9\d?|10(\.\d+)?)ms"))
    expect(cell(page, "GET /cart", "calls").get_by_test_id("delta")).to_have_text("+3 (+100%)")
    p50 = cell(page, "GET /cart", "p50").get_by_test_id("delta")
    expect(p50).to_have_text(re.compile(r"^\+(9\.9|10(\.\d)?)ms \(\+(99|100|101)%\)$"))
    expect(p50).to_have_class(re.compile(r"\bworse\b"))
    expect(cell(page, "POST /pay", "errorRate").get_by_test_id("delta")).to_have_text("+25 pp")
    expect(cell(page, "", "calls").get_by_test_id("delta")).to_have_text("+5 (+100%)")
    # The offset is chosen in the form too, and kept in the URL.
    page.get_by_label("Compare with").select_option("1h")
    expect(page).to_have_url(re.compile(r"compare=1h"))
    expect(page.get_by_role("status")).to_contain_text("1h earlier (0 calls)")


def test_a_step_opens_the_search_for_its_traces(page, perf):
    page.goto(url(perf))
    step = perf.t + 300
    page.get_by_test_id("chart-latency").locator(f'[data-t="{step}"]').click()
    expect(page).to_have_url(re.compile(r"/search\?"))
    q = parse_qs(urlsplit(page.url).query)
    assert q["service"] == ["shop"] and "operation" not in q
    assert q["start"] == [str(step * 10**6)] and q["end"] == [str((step + 60) * 10**6)]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)ms", q["minDuration"][0])
    assert m and 198 <= float(m.group(1)) <= 201, q["minDuration"]
    # The search page runs it: the four slow payments (found among the stored traces).
    expect(page.get_by_label("Min duration", exact=False)).to_have_value(q["minDuration"][0])

    page.go_back()
    page.get_by_test_id("chart-errors").locator(f'[data-t="{step}"]').click()
    expect(page).to_have_url(re.compile(r"/search\?"))
    q = parse_qs(urlsplit(page.url).query)
    assert q["errors"] == ["true"] and q["start"] == [str(step * 10**6)] and "minDuration" not in q

    # The "traces" link of an operation: its search over the whole range.
    page.go_back()
    op_row(page, "POST /pay").get_by_role("link", name="traces").click()
    expect(page).to_have_url(re.compile(r"/search\?"))
    q = parse_qs(urlsplit(page.url).query)
    assert q == {"service": ["shop"], "operation": ["POST /pay"], "start": [str(perf.t * 10**6)],
                 "end": [str((perf.t + 600) * 10**6)]}


def test_keyboard_on_a_chart(page, perf):
    page.goto(url(perf, operation="GET /cart"))
    chart = page.get_by_test_id("chart-throughput").locator("svg")
    chart.focus()
    readout = page.get_by_test_id("chart-throughput").get_by_test_id("chart-readout")
    expect(readout).to_contain_text("(6 calls)")  # the cursor starts at the last step with calls
    page.keyboard.press("ArrowRight")
    expect(readout).to_contain_text("(0 calls)")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?"))
    q = parse_qs(urlsplit(page.url).query)
    assert q["operation"] == ["GET /cart"] and q["start"] == [str((perf.t + 120) * 10**6)]


def test_choosing_a_service_and_empty_ranges(page, perf):
    page.goto(perf.url("/performance"))
    expect(page.get_by_role("status")).to_contain_text("Choose a service")
    page.get_by_label("Service", exact=True).select_option("shop")
    expect(page).to_have_url(re.compile(r"/performance\?service=shop&lookback=1h$"))
    expect(page.get_by_role("status")).to_contain_text("shop: 15 calls")
    page.goto(perf.url("/performance?service=shop&start=2001-01-01T00:00:00Z&end=2001-01-01T01:00:00Z"))
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^No spans of shop in "))
    expect(page.get_by_test_id("chart-latency")).to_have_count(0)


def test_api_errors_are_shown(page, server_factory):
    srv = server_factory("analytics.enabled=false")
    page.goto(srv.url("/performance?service=shop"))
    expect(page.get_by_role("alert")).to_contain_text("Could not load the metrics: metrics are off")
