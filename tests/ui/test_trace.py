"""UI: the trace page (`/trace/{id}`) over traces sent with the OpenTelemetry SDK (OTLP/HTTP).

Trace A (times in ms from its start; services frontend, checkout, inventory, payment, worker):

* frontend ``GET /checkout`` 0–100 (error)
  * frontend ``POST checkout`` 5–95 (error)
    * checkout ``checkout`` 10–90 (error)
      * checkout ``audit`` 8–11 — starts 2 ms before its parent (clock skew)
      * inventory ``reserve`` 13–29 — event ``cache miss`` at 20, a link to trace B's span
      * checkout ``charge`` 32–88 (error)
        * payment ``charge`` 35–85 (error)
          * payment ``authorize`` 40–60 — error "card declined", attributes, where the failure starts
  * frontend ``render`` 96–99
* worker ``orphan job`` 50–70 — its parent span was never sent

Trace B: batch ``process batch`` 0–30 → batch ``load`` 5–25.

Critical path of A: root → render, POST checkout → checkout → charge → payment charge →
authorize, reserve, audit (every span but the orphan).
"""
from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from playwright.sync_api import expect

from conftest import SdkServices, hex_span_id as sid, hex_trace_id as tid

MS = 1_000_000
SERVICES = ("frontend", "checkout", "inventory", "payment", "worker", "batch")




@pytest.fixture(scope="module")
def shop(ui_server):
    fleet = SdkServices(ui_server.otlp_http, SERVICES, **{"deployment.environment": "test"})

    def tracer(name):
        return fleet.tracer(name, "1.2.3")

    def ctx(span):
        return trace.set_span_in_context(span)

    ids = {}
    t0 = time.time_ns() - 10 * 60 * 10**9

    # Trace B first: trace A links to it.
    b_root = tracer("batch").start_span("process batch", kind=SpanKind.CONSUMER, start_time=t0 - 1000 * MS)
    b_load = tracer("batch").start_span("load", context=ctx(b_root), start_time=t0 - 995 * MS)
    b_load.end(end_time=t0 - 975 * MS)
    b_root.end(end_time=t0 - 970 * MS)
    ids["b"], ids["b_root"], ids["b_load"] = tid(b_root), sid(b_root), sid(b_load)

    root = tracer("frontend").start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t0,
                                         attributes={"http.request.method": "GET", "http.route": "/checkout"})
    post = tracer("frontend").start_span("POST checkout", context=ctx(root), kind=SpanKind.CLIENT, start_time=t0 + 5 * MS)
    co = tracer("checkout").start_span("checkout", context=ctx(post), kind=SpanKind.SERVER, start_time=t0 + 10 * MS)
    audit = tracer("checkout").start_span("audit", context=ctx(co), start_time=t0 + 8 * MS)
    audit.end(end_time=t0 + 11 * MS)
    reserve = tracer("inventory").start_span(
        "reserve", context=ctx(co), kind=SpanKind.SERVER, start_time=t0 + 13 * MS,
        links=[Link(b_load.get_span_context(), {"link.reason": "batch that filled the stock"})])
    reserve.add_event("cache miss", {"cache.key": "sku-42"}, timestamp=t0 + 20 * MS)
    reserve.end(end_time=t0 + 29 * MS)
    charge = tracer("checkout").start_span("charge", context=ctx(co), kind=SpanKind.CLIENT, start_time=t0 + 32 * MS)
    pcharge = tracer("payment").start_span("charge", context=ctx(charge), kind=SpanKind.SERVER, start_time=t0 + 35 * MS)
    auth = tracer("payment").start_span("authorize", context=ctx(pcharge), start_time=t0 + 40 * MS, attributes={
        "payment.provider": "acme-pay", "payment.amount": 12.5, "payment.retries": 2, "payment.card.debit": True,
        "peer.service": "acme"})
    auth.add_event("declined", {"reason": "insufficient funds"}, timestamp=t0 + 58 * MS)
    auth.set_status(Status(StatusCode.ERROR, "card declined"))
    auth.end(end_time=t0 + 60 * MS)
    for span, end in ((pcharge, 85), (charge, 88), (co, 90), (post, 95)):
        span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=t0 + end * MS)
    render = tracer("frontend").start_span("render", context=ctx(root), start_time=t0 + 96 * MS)
    render.end(end_time=t0 + 99 * MS)
    # A span whose parent was never sent.
    ghost = NonRecordingSpan(SpanContext(root.get_span_context().trace_id, 0x0BADC0FFEE0DDF00, is_remote=True,
                                         trace_flags=TraceFlags(1)))
    orphan = tracer("worker").start_span("orphan job", context=ctx(ghost), start_time=t0 + 50 * MS)
    orphan.end(end_time=t0 + 70 * MS)
    root.set_status(Status(StatusCode.ERROR))
    root.end(end_time=t0 + 100 * MS)
    fleet.flush()

    ids.update(a=tid(root), root=sid(root), co=sid(co), audit=sid(audit), reserve=sid(reserve),
               auth=sid(auth), render=sid(render), orphan=sid(orphan))
    ids["a_spans"] = 10
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the store answers with every span
        got = [requests.get(ui_server.url(f"/api/v3/traces/{ids[k]}"), timeout=10) for k in ("a", "b")]
        if all(r.status_code == 200 for r in got):
            counts = [sum(len(ss["spans"]) for rs in r.json()["result"]["resourceSpans"] for ss in rs["scopeSpans"]) for r in got]
            if counts == [10, 2]:
                return ids
        time.sleep(0.2)
    pytest.fail("the traces did not arrive")


def row(page, name, service=None):
    rows = page.get_by_test_id("span-row").filter(has=page.locator(".wf-op", has_text=name))
    if service:
        rows = rows.filter(has=page.locator(".wf-svc", has_text=service))
    return rows


def open_trace(page, ui_server, trace_id, query=""):
    page.goto(ui_server.url(f"/trace/{trace_id}{query}"))
    expect(page.get_by_test_id("span-count")).to_be_visible()


def test_header_names_services_and_first_failure(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("frontend: GET /checkout")
    expect(page.get_by_test_id("span-count")).to_have_text("10 spans")
    services = page.get_by_role("list", name="Services")
    for name in ("frontend", "checkout", "inventory", "payment", "worker"):
        expect(services).to_contain_text(name)
    # Six spans carry the error; the failure starts in payment's "authorize".
    expect(page.get_by_test_id("failed-first")).to_contain_text("Failed first: payment — authorize")


def test_waterfall_rows_and_collapse(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    expect(page.get_by_test_id("span-row")).to_have_count(10)
    expect(row(page, "authorize")).to_be_visible()
    checkout = row(page, "checkout", "checkout")
    expect(checkout).to_have_attribute("aria-expanded", "true")
    checkout.get_by_test_id("span-toggle").click()
    expect(checkout).to_have_attribute("aria-expanded", "false")
    expect(row(page, "authorize")).to_have_count(0)
    expect(row(page, "reserve")).to_have_count(0)
    expect(checkout).to_contain_text("+5")  # hidden descendants
    expect(page.get_by_test_id("span-row")).to_have_count(5)
    checkout.get_by_test_id("span-toggle").click()
    expect(row(page, "authorize")).to_be_visible()
    expect(page.get_by_test_id("span-row")).to_have_count(10)


def test_keyboard_moves_collapses_and_opens(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    tree = page.get_by_role("tree")
    tree.focus()
    page.keyboard.press("ArrowDown")  # root → POST checkout
    page.keyboard.press("ArrowDown")  # → checkout
    expect(tree).to_have_attribute("aria-activedescendant", f"span-row-{shop['co']}")
    page.keyboard.press("ArrowLeft")
    expect(row(page, "checkout", "checkout")).to_have_attribute("aria-expanded", "false")
    expect(row(page, "authorize")).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(row(page, "authorize")).to_be_visible()
    page.keyboard.press("Enter")
    detail = page.get_by_role("complementary", name="Span details")
    expect(detail.get_by_role("heading", level=2)).to_have_text("checkout")
    expect(page).to_have_url(f"{ui_server.url('/trace/' + shop['a'])}?span={shop['co']}")


def test_span_detail_shows_typed_attributes_events_and_status(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    row(page, "authorize").click()
    detail = page.get_by_role("complementary", name="Span details")
    expect(detail.get_by_role("heading", level=2)).to_contain_text("authorize")
    attrs = detail.get_by_role("table", name="Span attributes")
    expect(attrs.locator("tr[data-key='payment.provider']")).to_contain_text("acme-pay")
    expect(attrs.locator("tr[data-key='payment.provider']")).to_contain_text("string")
    expect(attrs.locator("tr[data-key='payment.amount']")).to_contain_text("12.5")
    expect(attrs.locator("tr[data-key='payment.amount']")).to_contain_text("double")
    expect(attrs.locator("tr[data-key='payment.retries']")).to_contain_text("int")
    expect(attrs.locator("tr[data-key='payment.card.debit']")).to_contain_text("bool")
    expect(attrs.get_by_role("rowheader", name="payment", exact=True)).to_be_visible()  # grouped by namespace
    expect(detail.get_by_role("table", name="Resource attributes")).to_contain_text("deployment.environment")
    expect(detail).to_contain_text("clew-tests 1.2.3")  # scope
    expect(detail.get_by_test_id("span-status")).to_have_text("✖ Error: card declined")
    events = detail.locator(".tr-events")
    expect(events).to_contain_text("declined")
    expect(events).to_contain_text("+58ms in trace · +18ms in span")
    expect(events).to_contain_text("insufficient funds")


def test_error_span_marked(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    auth = row(page, "authorize")
    expect(auth).to_have_attribute("data-error", "true")
    expect(auth).to_have_class(re.compile(r"\bis-error\b"))
    expect(auth).to_contain_text("error")  # text, not only colour
    expect(auth.locator(".wf-err-icon")).to_be_visible()
    expect(row(page, "render")).not_to_have_attribute("data-error", "true")


def test_critical_path_highlighted_and_toggled(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    critical = page.locator(".wf-row.is-critical")
    expect(critical).to_have_count(9)
    expect(row(page, "authorize")).to_have_attribute("data-critical", "true")
    expect(row(page, "orphan job")).not_to_have_attribute("data-critical", "true")
    expect(row(page, "orphan job")).not_to_have_class(re.compile(r"\bis-critical\b"))
    expect(row(page, "authorize").locator(".wf-crit")).to_have_count(1)
    page.get_by_label("Critical path").uncheck()
    expect(critical).to_have_count(0)
    page.get_by_label("Critical path").check()
    expect(critical).to_have_count(9)


def test_missing_parent_and_skew_shown(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    warnings = page.get_by_test_id("trace-warnings")
    expect(warnings).to_contain_text("1 span refers to a parent missing from the trace")
    expect(warnings).to_contain_text("1 span starts outside its parent")
    expect(row(page, "orphan job")).to_contain_text("parent missing")
    expect(row(page, "audit").get_by_test_id("skew-marker")).to_have_text("⚠ skew: starts 2ms before its parent")
    row(page, "orphan job").click()
    expect(page.get_by_role("complementary", name="Span details")).to_contain_text("0badc0ffee0ddf00 — missing from this trace")


def test_search_within_trace(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    box = page.get_by_role("searchbox", name="Find in trace")
    box.fill("acme-pay")  # an attribute value
    expect(page.get_by_test_id("search-count")).to_have_text("1 of 1 match")
    expect(page.locator(".wf-row.is-match")).to_have_count(1)
    expect(row(page, "authorize")).to_have_attribute("aria-selected", "true")
    box.fill("charge")  # names
    expect(page.get_by_test_id("search-count")).to_have_text("1 of 2 matches")
    expect(page.locator(".wf-row.is-match mark")).to_have_count(2)
    page.get_by_role("button", name="Next match").click()
    expect(page.get_by_test_id("search-count")).to_have_text("2 of 2 matches")
    page.get_by_role("button", name="Previous match").click()
    expect(page.get_by_test_id("search-count")).to_have_text("1 of 2 matches")
    box.fill("no such thing")
    expect(page.get_by_test_id("search-count")).to_have_text("no matches")
    expect(page.locator(".wf-row.is-match")).to_have_count(0)


def test_statistics_and_slowest(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    page.get_by_role("tab", name="Statistics").click()
    services = page.get_by_role("table", name="Time per service")
    for name in ("frontend", "checkout", "inventory", "payment", "worker"):
        expect(services).to_contain_text(name)
    ops = page.get_by_role("table", name="Time per operation")
    payment_charge = ops.get_by_role("row").filter(has_text="payment").filter(has_text="charge")
    # payment charge: 50 ms total, 30 ms self (authorize covers 20 ms).
    expect(payment_charge).to_contain_text("50ms")
    expect(payment_charge).to_contain_text("30ms")
    page.get_by_role("tab", name="Slowest spans").click()
    slowest = page.get_by_role("table", name="Slowest spans by duration")
    expect(slowest.get_by_role("row").nth(1)).to_contain_text("frontend: GET /checkout")
    slowest.get_by_role("button", name="payment: charge").click()
    expect(page.get_by_role("tabpanel", name="Timeline")).to_be_visible()
    expect(page.get_by_role("complementary", name="Span details").get_by_role("heading", level=2)).to_have_text("charge")


def test_download_as_otlp_json(page, ui_server, shop, tmp_path):
    open_trace(page, ui_server, shop["a"])
    with page.expect_download() as info:
        page.get_by_role("button", name="Download OTLP JSON").click()
    download = info.value
    assert download.suggested_filename == f"trace-{shop['a']}.json"
    path = tmp_path / "t.json"
    download.save_as(path)
    doc = json.loads(path.read_text())
    spans = [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == shop["a_spans"]
    assert {s["traceId"] for s in spans} == {shop["a"]}
    # The file is accepted by the OTLP/HTTP receiver as it is.
    r = requests.post(ui_server.otlp_http, data=path.read_bytes(), headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200


def test_deep_link_selects_span_and_selection_updates_url(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"], f"?span={shop['auth']}")
    expect(row(page, "authorize")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("complementary", name="Span details").get_by_role("heading", level=2)).to_contain_text("authorize")
    row(page, "render").click()
    expect(row(page, "render")).to_have_attribute("aria-selected", "true")
    assert parse_qs(urlsplit(page.url).query)["span"] == [shop["render"]]
    page.reload()
    expect(page.get_by_role("complementary", name="Span details").get_by_role("heading", level=2)).to_have_text("render")


def test_link_navigates_to_linked_trace(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"], f"?span={shop['reserve']}")
    detail = page.get_by_role("complementary", name="Span details")
    expect(detail.locator(".tr-events")).to_contain_text("cache miss")
    link = detail.get_by_role("link", name=f"trace {shop['b']}, span {shop['b_load']}")
    expect(detail.locator(".tr-links")).to_contain_text("batch that filled the stock")
    link.click()
    expect(page).to_have_url(ui_server.url(f"/trace/{shop['b']}?span={shop['b_load']}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("batch: process batch")
    expect(row(page, "load")).to_have_attribute("aria-selected", "true")
    page.go_back()
    expect(page.get_by_role("heading", level=1)).to_contain_text("frontend: GET /checkout")


def test_unknown_trace_says_so(page, ui_server):
    page.goto(ui_server.url("/trace/0123456789abcdef0123456789abcdef"))
    expect(page.get_by_role("alert")).to_contain_text("was not found")


def test_minimap_drag_zooms_and_reset(page, ui_server, shop):
    open_trace(page, ui_server, shop["a"])
    ruler = page.get_by_test_id("ruler")
    expect(ruler).to_contain_text("100ms")
    box = page.get_by_test_id("minimap").bounding_box()
    # Drag over the first fifth of the overview: the view becomes 0–20 ms.
    page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 5, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    reset = page.get_by_role("button", name="Reset zoom")
    expect(reset).to_be_visible()
    expect(ruler).not_to_contain_text("100ms")
    expect(ruler).to_contain_text("10ms")
    reset.click()
    expect(reset).to_be_hidden()
    expect(ruler).to_contain_text("100ms")
