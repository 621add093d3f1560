"""UI: the compare page (`/compare`) over traces sent with the OpenTelemetry SDK.

Two checkout traces of the same shape — frontend → cart, which runs two SELECTs — where the
second SELECT takes 200 ms longer in B and B also calls payment; and a batch of catalog traces
for the comparison of one trace against the median of a search.
"""
from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from playwright.sync_api import expect

from conftest import SdkServices as Services

MS = 1_000_000
CHECKOUT = "frontend:GET /checkout#0/frontend:call cart#0/cart:load cart#0"
SLOW_SELECT = f"{CHECKOUT}/cart:SELECT items#1"
SAME_SELECT = f"{CHECKOUT}/cart:SELECT items#0"


def checkout(svc: Services, t0: int, slow_ms: int, pay: bool) -> str:
    """frontend GET /checkout → call cart → cart load cart → SELECT items ×2 (the second one
    `slow_ms` longer), and with `pay` a call to payment; returns the trace ID."""
    at = lambda ms: t0 + int(ms * MS)  # noqa: E731
    end = 300 + slow_ms + (150 if pay else 0)
    root = svc.tracer("frontend").start_span("GET /checkout", kind=SpanKind.SERVER, start_time=at(0))
    call = svc.span("frontend", "call cart", at(10), at(112 + slow_ms), root, SpanKind.CLIENT)
    load = svc.tracer("cart").start_span(
        "load cart", context=trace.set_span_in_context(call), kind=SpanKind.SERVER, start_time=at(11))
    svc.span("cart", "SELECT items", at(20), at(50), load)
    svc.span("cart", "SELECT items", at(55), at(100 + slow_ms), load)
    load.end(end_time=at(110 + slow_ms))
    if pay:
        pcall = svc.span("frontend", "call payment", at(130 + slow_ms), at(280 + slow_ms), root, SpanKind.CLIENT)
        svc.span("payment", "charge", at(131 + slow_ms), at(279 + slow_ms), pcall, SpanKind.SERVER)
    root.end(end_time=at(end))
    return f"{root.get_span_context().trace_id:032x}"


def catalog(svc: Services, t0: int, query_ms: int) -> str:
    root = svc.tracer("catalog").start_span("GET /list", kind=SpanKind.SERVER, start_time=t0)
    svc.span("catalog", "query", t0 + MS, t0 + (1 + query_ms) * MS, root)
    root.end(end_time=t0 + (5 + query_ms) * MS)
    return f"{root.get_span_context().trace_id:032x}"


@pytest.fixture(scope="module")
def data(ui_server):
    svc = Services(ui_server.otlp_http, ["frontend", "cart", "payment", "catalog"])
    now = time.time_ns() - 120 * 10**9
    ids = {"a": checkout(svc, now, 0, pay=False), "b": checkout(svc, now + 10**9, 200, pay=True)}
    ids["catalog"] = [catalog(svc, now + (10 + i) * 10**9, q) for i, q in enumerate((10, 20, 30, 40, 50))]
    ids["slow"] = catalog(svc, now + 20 * 10**9, 130)
    svc.flush()
    ui_server.ids = ids
    return ui_server


def row(page, key):
    return page.locator(f'[data-testid="compare-row"][data-key="{key}"]')


def test_two_traces_show_the_difference_per_node(page, data):
    ids = data.ids
    page.goto(data.url(f"/compare?a={ids['a']}&b={ids['b']}"))
    slow = row(page, SLOW_SELECT)
    expect(slow).to_contain_text("+200ms")
    expect(slow).to_contain_text("+444%")  # 45 ms → 245 ms
    expect(slow).to_have_class(re.compile(r"\bslower\b"))
    expect(slow).to_contain_text("slower in B")
    expect(slow).to_contain_text("changed most")
    same = row(page, SAME_SELECT)
    expect(same).to_contain_text("±0")
    expect(same).not_to_have_class(re.compile(r"\bslower\b"))
    # B's call to payment is in B only.
    for key in ("frontend:GET /checkout#0/frontend:call payment#0",
                "frontend:GET /checkout#0/frontend:call payment#0/payment:charge#0"):
        expect(row(page, key)).to_have_class(re.compile(r"\bonly-b\b"))
        expect(row(page, key)).to_contain_text("only in B")
    summary = page.get_by_test_id("compare-summary")
    expect(summary).to_contain_text("5 spans")  # A: root, call cart, load cart, 2 SELECTs
    expect(page.get_by_test_id("compare-total-diff")).to_contain_text("+350ms")
    expect(page.get_by_test_id("compare-most")).to_contain_text("cart: SELECT items")
    expect(summary).to_contain_text("5 in both, 0 only in A, 2 only in B")

    # Only changed nodes: the unchanged SELECT goes, the slow one and its ancestors stay.
    page.get_by_label("Only changed nodes").check()
    expect(same).to_have_count(0)
    expect(slow).to_be_visible()
    expect(row(page, "frontend:GET /checkout#0")).to_be_visible()
    assert parse_qs(urlsplit(page.url).query)["changed"] == ["1"]
    # Largest difference first lists the whole change with the biggest on top.
    page.get_by_label("Order").select_option("diff")
    expect(page.get_by_test_id("compare-row").first).to_have_attribute("data-key", "frontend:GET /checkout#0")


def test_the_form_puts_the_two_ids_in_the_url(page, data):
    ids = data.ids
    page.goto(data.url("/compare"))
    page.get_by_role("textbox", name="Trace A").fill(ids["a"])
    page.get_by_role("textbox", name="Trace B").fill(ids["b"])
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/compare\?"))
    assert parse_qs(urlsplit(page.url).query) == {"a": [ids["a"]], "b": [ids["b"]]}
    expect(row(page, SLOW_SELECT)).to_contain_text("+200ms")


def test_a_missing_trace_is_named(page, data):
    page.goto(data.url(f"/compare?a={data.ids['a']}&b={'f' * 32}"))
    expect(page.get_by_role("alert").filter(has_text="not found")).to_contain_text("f" * 32)


def test_one_trace_against_the_median_of_a_search(page, data):
    search = urlencode({"service": "catalog", "lookback": "1h"})
    page.goto(data.url(f"/compare?{urlencode({'a': data.ids['slow'], 'search': search})}"))
    expect(page.get_by_test_id("compare-b-label")).to_have_text("median of 5 traces")
    expect(page.get_by_role("columnheader", name="Median")).to_be_visible()
    query = row(page, "catalog:GET /list#0/catalog:query#0")
    cells = query.locator("td")
    expect(cells.nth(0)).to_have_text("130ms")   # A
    expect(cells.nth(1)).to_have_text("30ms")    # the median of 10…50 ms
    expect(cells.nth(2)).to_have_text("+100ms")
    expect(query).to_contain_text("slower than median")


def test_the_form_runs_a_median_comparison(page, data):
    page.goto(data.url("/compare"))
    page.get_by_role("textbox", name="Trace A").fill(data.ids["slow"])
    page.get_by_label("the median of a search's traces", exact=False).check()
    page.get_by_label("Search (the search page's query)").fill(data.url("/search?service=catalog&lookback=1h"))
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_test_id("compare-b-label")).to_have_text("median of 5 traces")
    assert parse_qs(urlsplit(page.url).query) == {"a": [data.ids["slow"]], "search": ["service=catalog&lookback=1h"]}


def test_matching_rules(page, data):
    """Repeated siblings match by order; the median keeps nodes found in at least half the traces."""
    page.goto(data.url("/compare"))
    got = page.evaluate("""async () => {
        const { parseOTLP } = await import("/ui/lib/model.js");
        const { compare, medianProfile, profile } = await import("/ui/lib/compare.js");
        const T0 = 1.7e12;  // ms; a zero start time means "unknown" in OTLP
        const doc = (tid, spans) => ({ resourceSpans: [{ resource: { attributes: [
            { key: "service.name", value: { stringValue: "svc" } }] },
          scopeSpans: [{ spans: spans.map(([id, parent, name, s, e]) => ({ traceId: tid, spanId: id,
            parentSpanId: parent, name, startTimeUnixNano: String((T0 + s) * 1e6), endTimeUnixNano: String((T0 + e) * 1e6) })) }] }] });
        const t = (tid, extra, dbs) => parseOTLP(doc(tid, [["0000000000000001", "", "root", 0, 100],
          ...dbs.map((d, i) => [`00000000000000a${i}`, "0000000000000001", "db", 10 + 20 * i, 10 + 20 * i + d]),
          ...(extra ? [["00000000000000ff", "0000000000000001", "cache", 90, 95]] : [])]))[0];
        const a = t("01", false, [5, 5, 5]), b = t("02", false, [5, 9]);
        const rows = compare(profile(a), profile(b)).rows.map((r) => [r.key, r.only, Number.isNaN(r.diff) ? null : r.diff]);
        const med = medianProfile([t("03", true, [4]), t("04", true, [6]), t("05", false, [8]), t("06", false, [100])]);
        const med3 = medianProfile([t("07", true, [1]), t("08", false, [1]), t("09", false, [1])]);
        return { rows, med: [...med.nodes.values()].map((n) => [n.key, n.duration, n.count]),
                 med3: [...med3.nodes.keys()] };
    }""")
    assert got["rows"] == [["svc:root#0", None, 0], ["svc:root#0/svc:db#0", None, 0],
                           ["svc:root#0/svc:db#1", None, 4000], ["svc:root#0/svc:db#2", "a", None]]
    assert got["med"] == [["svc:root#0", 100000, 4], ["svc:root#0/svc:db#0", 7000, 4],
                          ["svc:root#0/svc:cache#0", 5000, 2]]
    assert got["med3"] == ["svc:root#0", "svc:root#0/svc:db#0"]  # cache in 1 of 3: left out
