"""UI: the search page (`/search`, `/`) over traces sent with the OpenTelemetry SDK (OTLP/HTTP).

Three traces, all carrying the resource attribute ``run.id`` (so every span has it):

* checkout: frontend ``GET /checkout`` (200 ms, status 200, ``customer.tier="gold plan"``)
  → cart ``GetCart`` → cart ``SELECT carts`` — 3 spans, no error;
* pay: frontend ``POST /pay`` (120 ms, status 500) → payment ``Charge`` (error) — 2 spans, 1 error;
* report: frontend ``GET /report`` (3 s, status 404) → reports ``Render`` — 2 spans, slow.
"""
from __future__ import annotations

import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import expect

from conftest import SdkServices, hex_trace_id as trace_id

MS = 1_000_000
RUN = uuid.uuid4().hex[:12]


def Shop(endpoint: str) -> SdkServices:
    return SdkServices(endpoint, ("frontend", "cart", "payment", "reports"), **{"run.id": RUN})


@pytest.fixture(scope="module")
def shop(ui_server):
    shop = Shop(ui_server.otlp_http)
    t0 = time.time_ns() - 5 * 60 * 10**9
    ids = {}

    root = shop.tracer("frontend").start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t0, attributes={
        "http.status_code": 200, "http.route": "/checkout", "customer.tier": "gold plan"})
    ctx = trace.set_span_in_context(root)
    cart = shop.tracer("cart").start_span("GetCart", context=ctx, kind=SpanKind.SERVER, start_time=t0 + 10 * MS)
    db = shop.tracer("cart").start_span("SELECT carts", context=trace.set_span_in_context(cart),
                                        kind=SpanKind.CLIENT, start_time=t0 + 20 * MS)
    db.end(end_time=t0 + 40 * MS)
    cart.end(end_time=t0 + 60 * MS)
    root.end(end_time=t0 + 200 * MS)
    ids["checkout"] = trace_id(root)

    t1 = t0 + 60 * 10**9
    root = shop.tracer("frontend").start_span("POST /pay", kind=SpanKind.SERVER, start_time=t1, attributes={
        "http.status_code": 500, "http.route": "/pay"})
    pay = shop.tracer("payment").start_span("Charge", context=trace.set_span_in_context(root),
                                            kind=SpanKind.SERVER, start_time=t1 + 10 * MS)
    pay.set_status(Status(StatusCode.ERROR, "card declined"))
    pay.end(end_time=t1 + 100 * MS)
    root.end(end_time=t1 + 120 * MS)
    ids["pay"] = trace_id(root)

    t2 = t0 + 120 * 10**9
    root = shop.tracer("frontend").start_span("GET /report", kind=SpanKind.SERVER, start_time=t2, attributes={
        "http.status_code": 404, "http.route": "/report"})
    rep = shop.tracer("reports").start_span("Render", context=trace.set_span_in_context(root),
                                            kind=SpanKind.INTERNAL, start_time=t2 + 5 * MS)
    rep.end(end_time=t2 + 2990 * MS)
    root.end(end_time=t2 + 3000 * MS)
    ids["report"] = trace_id(root)
    shop.flush()

    # wait until the three traces are searchable
    deadline = time.monotonic() + 20
    params = {"query.attributes": '{"run.id": "%s"}' % RUN, "query.startTimeMin": "2000-01-01T00:00:00Z",
              "query.startTimeMax": "2100-01-01T00:00:00Z"}
    while True:
        found = requests.get(ui_server.url("/api/v3/trace-summaries"), params=params, timeout=5).json()["summaries"]
        if len(found) == 3:
            break
        assert time.monotonic() < deadline, f"only {len(found)} of 3 traces became searchable"
        time.sleep(0.1)
    return ui_server, ids


def row(page, tid):
    return page.locator(f'[data-testid="trace-list"] tbody tr[data-trace-id="{tid}"]')


def rows(page):
    return page.locator('[data-testid="trace-list"] tbody tr')


def search(page, **fields):
    """Fill the form (service, operation, tags, minDuration, maxDuration, errors) and submit."""
    if "service" in fields:
        page.get_by_label("Service").select_option(fields["service"])
    if "operation" in fields:
        expect(page.get_by_label("Operation").locator(f'option[value="{fields["operation"]}"]')).to_have_count(1)
        page.get_by_label("Operation").select_option(fields["operation"])
    if "tags" in fields:
        page.get_by_label("Tags").fill(fields["tags"])
    if "minDuration" in fields:
        page.get_by_label("Min duration").fill(fields["minDuration"])
    if "maxDuration" in fields:
        page.get_by_label("Max duration").fill(fields["maxDuration"])
    if "errors" in fields:
        page.get_by_label("Errors only").set_checked(fields["errors"])
    page.get_by_role("button", name="Find traces").click()


def query_of(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def test_selects_fill_from_the_api(shop, page):
    srv, _ = shop
    page.goto(srv.url("/search"))
    service = page.get_by_label("Service")
    expect(service).to_be_focused()
    for name in ("frontend", "cart", "payment", "reports"):
        expect(service.locator(f'option[value="{name}"]')).to_have_count(1)
    operation = page.get_by_label("Operation")
    expect(operation).to_be_disabled()
    service.select_option("cart")
    expect(operation).to_be_enabled()
    expect(operation.locator("option")).to_have_text(["All operations", "GetCart", "SELECT carts"])
    service.select_option("frontend")
    expect(operation.locator("option")).to_have_text(["All operations", "GET /checkout", "GET /report", "POST /pay"])


def test_search_by_service_shows_the_traces(shop, page):
    srv, ids = shop
    page.goto(srv.url("/"))
    search(page, service="frontend", tags=f"run.id={RUN}")
    expect(page.get_by_test_id("result-count")).to_have_text("3 traces found")
    expect(rows(page)).to_have_count(3)
    # newest first: report, pay, checkout
    expect(rows(page).locator(".root-op")).to_have_text(["GET /report", "POST /pay", "GET /checkout"])

    checkout = row(page, ids["checkout"])
    expect(checkout.locator(".root-service")).to_have_text("frontend")
    expect(checkout.locator(".dur-text")).to_have_text("200ms")
    expect(checkout.locator(".spans")).to_have_text("3")
    expect(checkout.locator(".errors")).to_have_text("–")
    expect(checkout.locator(".services")).to_contain_text("cart 2")
    expect(checkout.locator(".services")).to_contain_text("frontend 1")
    expect(checkout.get_by_role("link", name="frontend: GET /checkout", exact=True)).to_have_attribute(
        "href", f"/trace/{ids['checkout']}")

    pay = row(page, ids["pay"])
    expect(pay.locator(".dur-text")).to_have_text("120ms")
    expect(pay.locator(".spans")).to_have_text("2")
    expect(pay.locator(".errors")).to_have_text("1 error")
    expect(row(page, ids["report"]).locator(".dur-text")).to_have_text("3s")

    # the scatter plot has one point per trace, the error one in the error colour
    expect(page.locator(".scatter circle.point")).to_have_count(3)
    expect(page.locator(f'.scatter circle.point.error[data-trace-id="{ids["pay"]}"]')).to_have_count(1)

    # client-side sorting
    page.get_by_label("Sort").select_option("longest")
    expect(rows(page).locator(".root-op")).to_have_text(["GET /report", "GET /checkout", "POST /pay"])
    assert query_of(page)["sort"] == "longest"
    page.get_by_label("Sort").select_option("spans")
    expect(rows(page).first.locator(".root-op")).to_have_text("GET /checkout")

    q = query_of(page)
    assert q["service"] == "frontend" and q["tags"] == f"run.id={RUN}" and q["lookback"] == "1h" and q["limit"] == "20"


def test_operation_narrows(shop, page):
    srv, ids = shop
    page.goto(srv.url("/search"))
    search(page, service="frontend", operation="POST /pay", tags=f"run.id={RUN}")
    expect(rows(page)).to_have_count(1)
    expect(row(page, ids["pay"])).to_have_count(1)
    assert query_of(page)["operation"] == "POST /pay"


@pytest.mark.parametrize("tags, expected", [
    ("http.status_code=500", ["pay"]),
    ("http.status_code!=200", ["report", "pay"]),
    ("http.route=~/(check|rep).*", ["report", "checkout"]),
    ("http.route!~/check.*\nhttp.status_code", ["report", "pay"]),
    ('customer.tier="gold plan"', ["checkout"]),
])
def test_tag_search_narrows(shop, page, tags, expected):
    srv, ids = shop
    page.goto(srv.url("/search"))
    search(page, tags=f"run.id={RUN} {tags}")
    expect(rows(page)).to_have_count(len(expected))
    for name in expected:
        expect(row(page, ids[name])).to_have_count(1)


def test_errors_only(shop, page):
    srv, ids = shop
    page.goto(srv.url("/search"))
    search(page, tags=f"run.id={RUN}", errors=True)
    expect(rows(page)).to_have_count(1)
    expect(row(page, ids["pay"]).locator(".errors")).to_have_text("1 error")
    assert query_of(page)["errors"] == "true"


def test_min_and_max_duration(shop, page):
    srv, ids = shop
    page.goto(srv.url("/search"))
    search(page, tags=f"run.id={RUN}", minDuration="1s")
    expect(rows(page)).to_have_count(1)
    expect(row(page, ids["report"])).to_have_count(1)
    search(page, minDuration="", maxDuration="150ms")
    expect(rows(page)).to_have_count(1)
    expect(row(page, ids["pay"])).to_have_count(1)
    assert query_of(page)["maxDuration"] == "150ms"


def test_scatter_point_opens_the_trace(shop, page):
    srv, ids = shop
    page.goto(srv.url(f"/search?tags=run.id%3D{RUN}"))
    point = page.locator(f'.scatter circle.point[data-trace-id="{ids["report"]}"]')
    point.hover()
    expect(page.get_by_role("tooltip")).to_contain_text("frontend: GET /report")
    expect(page.get_by_role("tooltip")).to_contain_text("3s")
    point.click()
    expect(page).to_have_url(srv.url(f"/trace/{ids['report']}"))

    # keyboard: the plot is one tab stop (the earliest point); arrows move in time order
    page.go_back()
    expect(page.locator(".scatter circle.point")).to_have_count(3)
    expect(page.locator('.scatter circle.point[tabindex="0"]')).to_have_attribute("data-trace-id", ids["checkout"])
    page.locator(f'.scatter circle.point[data-trace-id="{ids["checkout"]}"]').focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator(f'.scatter circle.point[data-trace-id="{ids["pay"]}"]')).to_be_focused()
    expect(page.get_by_role("tooltip")).to_contain_text("frontend: POST /pay")
    page.keyboard.press("Enter")
    expect(page).to_have_url(srv.url(f"/trace/{ids['pay']}"))


def test_row_link_opens_the_trace(shop, page):
    srv, ids = shop
    page.goto(srv.url(f"/search?tags=run.id%3D{RUN}"))
    row(page, ids["pay"]).get_by_role("link", name="frontend: POST /pay", exact=True).click()
    expect(page).to_have_url(srv.url(f"/trace/{ids['pay']}"))


def test_url_holds_the_query(shop, page):
    srv, ids = shop
    page.goto(srv.url("/search"))
    search(page, service="frontend", tags=f"run.id={RUN}\nhttp.status_code!=200", maxDuration="10s",
           errors=False)
    page.get_by_label("Time range").select_option("3h")
    page.get_by_label("Limit").fill("5")
    page.get_by_role("button", name="Find traces").click()
    expect(page.get_by_test_id("result-count")).to_have_text("2 traces found")
    q = query_of(page)
    assert q == {"service": "frontend", "tags": f"run.id={RUN}\nhttp.status_code!=200", "lookback": "3h",
                 "maxDuration": "10s", "limit": "5"}

    page.reload()
    expect(page.get_by_label("Service")).to_have_value("frontend")
    expect(page.get_by_label("Tags")).to_have_value(f"run.id={RUN}\nhttp.status_code!=200")
    expect(page.get_by_label("Time range")).to_have_value("3h")
    expect(page.get_by_label("Max duration")).to_have_value("10s")
    expect(page.get_by_label("Limit")).to_have_value("5")
    expect(rows(page)).to_have_count(2)
    expect(row(page, ids["pay"])).to_have_count(1)
    expect(row(page, ids["report"])).to_have_count(1)


def test_custom_time_range(shop, page):
    srv, ids = shop
    page.goto(srv.url("/search"))
    page.get_by_label("Time range").select_option("custom")
    expect(page.get_by_label("From", exact=True)).to_be_visible()
    # a window that holds the traces (they started 5 to 3 minutes ago), local time
    page.get_by_label("From", exact=True).fill(time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 3600)))
    page.get_by_label("To", exact=True).fill(time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 120)))
    search(page, tags=f"run.id={RUN}")
    expect(rows(page)).to_have_count(3)
    q = query_of(page)
    assert "lookback" not in q and q["start"].endswith("Z") and q["end"].endswith("Z")
    page.reload()
    expect(page.get_by_label("Time range")).to_have_value("custom")
    expect(rows(page)).to_have_count(3)

    # an empty window: the helpful message
    page.get_by_label("From", exact=True).fill("2001-01-01T00:00")
    page.get_by_label("To", exact=True).fill("2001-01-02T00:00")
    page.get_by_role("button", name="Find traces").click()
    expect(page.get_by_test_id("no-results")).to_contain_text("No trace matched")
    # reversed window: an error on the field
    page.get_by_label("From", exact=True).fill("2001-01-03T00:00")
    page.get_by_role("button", name="Find traces").click()
    expect(page.get_by_role("alert")).to_contain_text("start time must be before the end time")


def test_back_button_restores_the_previous_search(shop, page):
    srv, ids = shop
    page.goto(srv.url("/search"))
    search(page, service="frontend", tags=f"run.id={RUN}")
    expect(rows(page)).to_have_count(3)
    search(page, service="payment")
    expect(rows(page)).to_have_count(1)
    expect(page.get_by_label("Service")).to_have_value("payment")
    page.go_back()
    expect(page.get_by_label("Service")).to_have_value("frontend")
    expect(rows(page)).to_have_count(3)
    assert query_of(page)["service"] == "frontend"
    page.go_forward()
    expect(page.get_by_label("Service")).to_have_value("payment")
    expect(rows(page)).to_have_count(1)


@pytest.mark.parametrize("tags, named", [
    ("run.id= x", "“run.id=”"),
    ('=frontend', "“=frontend”"),
    ('customer.tier="gold plan', "quote is not closed"),
    ("a=1 a=2", "“a=2”"),
])
def test_malformed_tag_shows_an_error(shop, page, tags, named):
    srv, _ = shop
    page.goto(srv.url("/search"))
    search(page, tags=tags)
    alert = page.locator("#tags-error")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text(named)
    expect(page.get_by_label("Tags")).to_have_attribute("aria-invalid", "true")
    assert "tags" not in query_of(page)  # nothing was searched


def test_bad_duration_shows_an_error(shop, page):
    srv, _ = shop
    page.goto(srv.url("/search"))
    search(page, minDuration="fast")
    expect(page.locator("#minDuration-error")).to_contain_text("“fast” is not a duration")
    expect(page.get_by_label("Min duration")).to_be_focused()
    search(page, minDuration="2s", maxDuration="1s")
    expect(page.locator("#maxDuration-error")).to_contain_text("less than min duration")
    # a URL with a bad duration fills the form and shows the error instead of searching
    page.goto(srv.url("/search?minDuration=10q"))
    expect(page.get_by_label("Min duration")).to_have_value("10q")
    expect(page.locator("#minDuration-error")).to_contain_text("“10q”")


def test_api_error_is_shown_with_the_servers_message(shop, page):
    srv, _ = shop
    page.goto(srv.url("/search"))
    search(page, tags="http.route=~(unclosed")
    alert = page.locator(".search-error")
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text("The search failed")
    expect(alert).to_contain_text("http.route")


def test_compare_links(shop, page):
    srv, ids = shop
    page.goto(srv.url(f"/search?tags=run.id%3D{RUN}&lookback=1h&limit=20"))
    expect(rows(page)).to_have_count(3)
    expect(page.locator(".compare-selected")).to_contain_text("Check two traces")
    row(page, ids["pay"]).get_by_role("checkbox").check()
    row(page, ids["checkout"]).get_by_role("checkbox").check()
    link = page.get_by_role("link", name="Compare the two selected traces")
    expect(link).to_have_attribute("href", f"/compare?a={ids['pay']}&b={ids['checkout']}")

    median = row(page, ids["report"]).get_by_role("link", name="against the median")
    href = median.get_attribute("href")
    q = parse_qs(urlsplit(href).query)
    assert q["a"] == [ids["report"]]
    inner = parse_qs(q["search"][0])
    assert inner["tags"] == [f"run.id={RUN}"] and inner["limit"] == ["20"]
    assert "lookback" not in inner and inner["start"][0].endswith("Z") and inner["end"][0].endswith("Z")
    median.click()
    expect(page).to_have_url(re.compile(r"/compare\?a="))


def test_keyboard_only_search(shop, page):
    srv, ids = shop
    page.goto(srv.url("/search"))
    expect(page.get_by_label("Service")).to_be_focused()
    page.get_by_label("Tags").focus()
    page.keyboard.type(f"run.id={RUN} http.status_code=500")
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(1)
    link = row(page, ids["pay"]).get_by_role("link", name="frontend: POST /pay", exact=True)
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(srv.url(f"/trace/{ids['pay']}"))
