"""UI: the service graph page (`/graph`) over topologies sent with the OpenTelemetry SDK.

A shop: frontend → cart → db and frontend → payment, as client/server span pairs: each server
span is in the callee's service and its parent is the caller's client span (a remote parent),
which is what the dependency computation links.  One payment call in four fails.  And a mesh:
twelve services nearly all calling one another (cycles everywhere), drawn on a ring.
"""
from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import expect

from conftest import SdkServices as Services

MS = 1_000_000


def call(svc: Services, caller_span, caller: str, callee: str, op: str, start: int, dur: int, error=False):
    """A client span in the caller and the callee's server span under it; returns the server span
    (still open) so it can make calls of its own."""
    ctx = trace.set_span_in_context(caller_span)
    client = svc.tracer(caller).start_span(f"call {callee}", context=ctx, kind=SpanKind.CLIENT, start_time=start)
    server = svc.tracer(callee).start_span(op, context=trace.set_span_in_context(client),
                                           kind=SpanKind.SERVER, start_time=start + MS)
    if error:
        server.set_status(Status(StatusCode.ERROR, "declined"))
    return client, server, start + dur


@pytest.fixture(scope="module")
def shop(ui_server):
    svc = Services(ui_server.otlp_http, ["frontend", "cart", "db", "payment"])
    now = time.time_ns() - 60 * 10**9
    for i in range(4):
        t0 = now + i * 1000 * MS
        root = svc.tracer("frontend").start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t0)
        if i < 3:  # three cart calls, each querying the db twice
            client, cart, end = call(svc, root, "frontend", "cart", "load cart", t0 + MS, 80 * MS)
            for j in range(2):
                c2, db, e2 = call(svc, cart, "cart", "db", "SELECT items", t0 + (5 + 20 * j) * MS, 15 * MS)
                db.end(end_time=e2 - MS)
                c2.end(end_time=e2)
            cart.end(end_time=end - MS)
            client.end(end_time=end)
        client, pay, end = call(svc, root, "frontend", "payment", "charge", t0 + 100 * MS, 50 * MS, error=(i == 0))
        pay.end(end_time=end - MS)
        client.end(end_time=end)
        root.end(end_time=t0 + 200 * MS)
    svc.flush()
    return ui_server


def edge(page, parent, child):
    return page.locator(f'[data-testid="graph-edge"][data-parent="{parent}"][data-child="{child}"]')


def test_graph_shows_services_edges_counts_and_error_rates(page, shop):
    page.goto(shop.url("/graph?lookback=1h"))
    nodes = page.get_by_test_id("graph-node")
    expect(nodes).to_have_count(4)
    for name in ("frontend", "cart", "db", "payment"):
        expect(page.locator(f'[data-testid="graph-node"][data-service="{name}"]')).to_contain_text(name)
    expect(page.get_by_test_id("graph-edge")).to_have_count(3)
    expect(edge(page, "frontend", "cart")).to_contain_text("3 calls")
    expect(edge(page, "cart", "db")).to_contain_text("6 calls")
    pay = edge(page, "frontend", "payment")
    expect(pay).to_contain_text("4 calls · 25% errors")
    expect(pay).to_have_class(re.compile(r"\berror\b"))
    expect(edge(page, "frontend", "cart")).not_to_have_class(re.compile(r"\berror\b"))
    expect(page.get_by_role("status")).to_contain_text("4 services, 3 links")
    # Layered left to right: the callers stand left of their callees.
    xs = {n: page.locator(f'[data-testid="graph-node"][data-service="{n}"] rect').get_attribute("x")
          for n in ("frontend", "cart", "db")}
    assert float(xs["frontend"]) < float(xs["cart"]) < float(xs["db"])

    table = page.get_by_role("table", name="Service links")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(3)
    # Latency per link: the client spans' durations (50 ms to payment, 15 ms to db), within 0.5 %.
    about = lambda v: re.compile(rf"^{v - 1}\.[6-9]\d?ms$|^{v}(\.[0-4]\d?)?ms$")
    expect(table.locator('tr[data-parent="frontend"][data-child="payment"] td')).to_have_text(
        ["frontend", "payment", "4", "1", "25%", about(50), about(50), about(50)])
    expect(table.locator('tr[data-parent="cart"][data-child="db"] td')).to_have_text(
        ["cart", "db", "6", "0", "0%", about(15), about(15), about(15)])
    expect(table.locator("th")).to_have_text(["Parent", "Child", "Calls", "Errors", "Error rate", "p50", "p95", "p99"])
    # The link's tooltip tells the same.
    expect(edge(page, "frontend", "cart").locator("title")).to_have_text(
        re.compile(r"^frontend → cart: 3 calls, 0 errors \(0%\); latency p50 (79\.\d|80(\.\d)?)ms, p95 .*, p99 .*ms$"))
    # No cycle here: no list of them.
    expect(page.get_by_test_id("graph-cycle")).to_have_count(0)


def test_clicking_a_service_opens_its_search_over_the_same_range(page, shop):
    page.goto(shop.url("/graph?lookback=6h"))
    page.locator('[data-testid="graph-node"][data-service="payment"]').click()
    expect(page).to_have_url(re.compile(r"/search\?"))
    assert parse_qs(urlsplit(page.url).query) == {"service": ["payment"], "lookback": ["6h"]}
    page.go_back()
    expect(page).to_have_url(re.compile(r"/graph\?lookback=6h$"))
    expect(page.get_by_test_id("graph-node")).to_have_count(4)


def test_keyboard_enter_on_a_service_opens_its_search(page, shop):
    page.goto(shop.url("/graph"))  # default range: the last hour
    node = page.locator('[data-testid="graph-node"][data-service="cart"]')
    node.focus()
    expect(node).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?"))
    assert parse_qs(urlsplit(page.url).query) == {"service": ["cart"], "lookback": ["1h"]}


def test_time_range_lives_in_the_url(page, shop):
    page.goto(shop.url("/graph"))
    expect(page.get_by_test_id("graph-node")).to_have_count(4)
    page.get_by_label("Time range", exact=True).select_option("7d")
    expect(page).to_have_url(re.compile(r"/graph\?lookback=7d$"))
    expect(page.get_by_test_id("graph-edge")).to_have_count(3)
    # A custom range from long ago holds no calls.
    page.get_by_label("Time range", exact=True).select_option("custom")
    page.get_by_label("From").fill("2001-01-01T00:00")
    page.get_by_label("To").fill("2001-01-02T00:00")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"/graph\?start=\d+&end=\d+$"))
    expect(page.get_by_text("No calls between services")).to_be_visible()
    expect(page.get_by_test_id("graph-node")).to_have_count(0)
    page.go_back()
    expect(page).to_have_url(re.compile(r"/graph\?lookback=7d$"))
    expect(page.get_by_test_id("graph-edge")).to_have_count(3)


def test_layering_tolerates_cycles(page, shop):
    """Services calling each other back (a → b → c → a, d ↔ e) still get layers."""
    page.goto(shop.url("/graph"))
    expect(page.get_by_test_id("graph-node")).to_have_count(4)
    got = page.evaluate("""async () => {
        const { layered } = await import("/ui/pages/graph.js");
        const links = [["a", "b"], ["b", "c"], ["c", "a"], ["c", "x"], ["d", "e"], ["e", "d"]]
            .map(([parent, child]) => ({ parent, child }));
        const { layers, back } = layered(["a", "b", "c", "d", "e", "x"], links);
        return { layers, back: [...back].map((k) => k.split("\\u0000").join("->")) };
    }""")
    assert got["back"] == ["c->a", "e->d"]
    assert got["layers"] == [["a", "d"], ["b", "e"], ["c"], ["x"]]


def test_a_custom_range_carries_over_to_the_search(page, shop):
    start_us = (time.time_ns() - 2 * 3600 * 10**9) // 1000
    end_us = (time.time_ns() + 3600 * 10**9) // 1000
    page.goto(shop.url(f"/graph?start={start_us}&end={end_us}"))
    expect(page.get_by_label("Time range", exact=True)).to_have_value("custom")
    expect(edge(page, "frontend", "payment")).to_contain_text("4 calls · 25% errors")
    page.get_by_role("table", name="Service links").get_by_role("link", name="db").click()
    expect(page).to_have_url(re.compile(r"/search\?"))
    assert parse_qs(urlsplit(page.url).query) == {"service": ["db"], "start": [str(start_us)], "end": [str(end_us)]}


# ------------------------------------------------------------------------------ a dense mesh

MESH = ["accounts", "auth", "billing", "catalog", "checkout", "gateway", "inventory", "ledger",
        "notify", "orders", "search", "shipping"]


def mesh_links():
    """(caller, callee) → (calls, errors): every ordered pair but a few, so nearly every service
    calls nearly every other and most links are in cycles (A → B and B → A both present)."""
    links = {}
    for i, a in enumerate(MESH):
        for j, b in enumerate(MESH):
            if i == j or (3 * i + 5 * j) % 13 == 0:
                continue
            calls = 1 + (i + 2 * j) % 3
            links[(a, b)] = (calls, 1 if (i * j) % 7 == 1 else 0)
    return links


def send_mesh(endpoint: str):
    svc = Services(endpoint, MESH)
    t0 = time.time_ns() - 120 * 10**9
    k = 0
    for (a, b), (calls, errors) in mesh_links().items():
        for n in range(calls):
            start = t0 + k * 10 * MS
            k += 1
            # a root client span in the caller, the callee's server span under it
            client = svc.tracer(a).start_span(f"call {b}", kind=SpanKind.CLIENT, start_time=start)
            server = svc.tracer(b).start_span(f"serve {a}", context=trace.set_span_in_context(client),
                                              kind=SpanKind.SERVER, start_time=start + MS)
            if n < errors:
                server.set_status(Status(StatusCode.ERROR, "failed"))
            server.end(end_time=start + 4 * MS)
            client.end(end_time=start + 5 * MS)
    svc.flush()


def boxes_overlap(a, b):
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def visible_label_boxes(page):
    """Bounding boxes of the edge labels on screen, keyed by (parent, child)."""
    return {(e["parent"], e["child"]): e["box"] for e in page.evaluate("""() =>
        [...document.querySelectorAll('[data-testid="graph-edge"]')]
            .map((g) => ({ g, t: g.querySelector(".graph-edge-label") }))
            .filter(({ t }) => getComputedStyle(t).display !== "none")
            .map(({ g, t }) => { const r = t.getBoundingClientRect();
                return { parent: g.dataset.parent, child: g.dataset.child,
                         box: { x: r.x, y: r.y, width: r.width, height: r.height } }; })""")}


def assert_apart(boxes):
    items = list(boxes.items())
    for i, (ka, a) in enumerate(items):
        for kb, b in items[i + 1:]:
            assert not boxes_overlap(a, b), f"{ka} overlaps {kb}: {a} {b}"


def test_a_dense_graph_with_cycles_is_legible(page, server_factory):
    srv = server_factory()
    send_mesh(srv.otlp_http)
    links = mesh_links()
    page.goto(srv.url("/graph?lookback=1h"))
    nodes = page.get_by_test_id("graph-node")
    expect(nodes).to_have_count(len(MESH))
    expect(page.get_by_test_id("graph-edge")).to_have_count(len(links))
    expect(page.get_by_role("status")).to_contain_text(f"12 services, {len(links)} links")
    expect(page.get_by_role("status")).to_contain_text("Hover over or focus a service")
    assert page.locator("svg.graph-svg").get_attribute("data-layout") == "ring"

    # Every service is shown and no two overlap.
    boxes = {}
    for name in MESH:
        node = page.locator(f'[data-testid="graph-node"][data-service="{name}"]')
        expect(node).to_be_visible()
        expect(node).to_contain_text(name)
        boxes[name] = node.locator("rect").bounding_box()
    assert_apart(boxes)

    # At rest no label is drawn (they would not all fit); error links stay in the error colour.
    assert visible_label_boxes(page) == {}
    failing = [k for k, (_, e) in links.items() if e]
    assert failing
    for a, b in failing:
        expect(edge(page, a, b)).to_have_class(re.compile(r"\berror\b"))
    # Both directions of a pair are drawn, apart from each other.
    assert ("gateway", "ledger") in links and ("ledger", "gateway") in links
    there = edge(page, "gateway", "ledger").locator("path").first.bounding_box()
    back = edge(page, "ledger", "gateway").locator("path").first.bounding_box()
    assert there != back

    def check_highlight(name):
        own = {k: v for k, v in links.items() if name in k}
        shown = visible_label_boxes(page)
        assert set(shown) == set(own)
        assert_apart(shown)
        for box in shown.values():
            assert not any(boxes_overlap(box, b) for b in boxes.values())
        for (a, b), (calls, errors) in own.items():
            label = edge(page, a, b).locator(".graph-edge-label")
            expect(label).to_be_visible()
            expect(label).to_have_text(re.compile(rf"^{calls} calls?( · \d+(\.\d)?% errors)?$"))
            if errors:
                expect(label).to_contain_text("errors")
            expect(edge(page, a, b)).to_have_class(re.compile(r"\bhl\b"))

    # Hovering a service shows its links' labels, with their call counts, none overlapping.
    page.locator('[data-testid="graph-node"][data-service="gateway"]').hover()
    check_highlight("gateway")
    expect(edge(page, "billing", "ledger")).not_to_have_class(re.compile(r"\bhl\b"))
    page.mouse.move(1, 1)
    expect(page.locator("svg.graph-svg.focusing")).to_have_count(0)
    assert visible_label_boxes(page) == {}

    # So does keyboard focus, and Enter still opens the service's search.
    node = page.locator('[data-testid="graph-node"][data-service="ledger"]')
    node.focus()
    check_highlight("ledger")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?"))
    assert parse_qs(urlsplit(page.url).query) == {"service": ["ledger"], "lookback": ["1h"]}


def test_layout_choice_follows_the_shape_of_the_graph(page, shop):
    page.goto(shop.url("/graph"))
    expect(page.get_by_test_id("graph-node")).to_have_count(4)
    assert page.locator("svg.graph-svg").get_attribute("data-layout") == "layered"
    got = page.evaluate("""async () => {
        const { chooseLayout } = await import("/ui/pages/graph.js");
        const kind = (pairs) => {
            const links = pairs.map(([parent, child]) => ({ parent, child }));
            const nodes = [...new Set(pairs.flat())];
            return chooseLayout(nodes, links).kind;
        };
        const full = (names) => names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b]));
        return {
            chain: kind([["fe", "cart"], ["cart", "db"]]),
            tree: kind([["fe", "cart"], ["cart", "db"], ["fe", "pay"], ["pay", "bank"]]),
            oneCycle: kind([["a", "b"], ["b", "c"], ["c", "a"], ["c", "x"], ["d", "e"], ["e", "d"]]),
            mesh: kind(full(["a", "b", "c", "d", "e", "f"])),
            denseDag: kind(full(["a", "b", "c", "d", "e", "f"]).filter(([a, b]) => a < b)),
        };
    }""")
    assert got == {"chain": "layered", "tree": "layered", "oneCycle": "layered", "mesh": "ring", "denseDag": "ring"}


# ------------------------------------------------------------------------------- a cycle

def test_cycles_and_edge_latency(page, server_factory):
    """a → b → c → a (each call 30 ms on the client side) and c → d: one cycle, listed."""
    srv = server_factory("analytics.flush_interval_s=1")
    svc = Services(srv.otlp_http, ["a", "b", "c", "d"])
    t0 = time.time_ns() - 60 * 10**9
    for k, (x, y) in enumerate([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]):
        for n in range(2):
            start = t0 + (10 * k + n) * 100 * MS
            client = svc.tracer(x).start_span(f"call {y}", kind=SpanKind.CLIENT, start_time=start)
            server = svc.tracer(y).start_span(f"serve {x}", context=trace.set_span_in_context(client),
                                              kind=SpanKind.SERVER, start_time=start + MS)
            server.end(end_time=start + 29 * MS)
            client.end(end_time=start + 30 * MS)
    svc.flush()
    page.goto(srv.url("/graph?lookback=15m"))
    expect(page.get_by_test_id("graph-edge")).to_have_count(4)
    cycles = page.get_by_test_id("graph-cycle")
    expect(cycles).to_have_count(1)
    expect(cycles).to_have_text("a → b → c → a")
    expect(page.get_by_role("heading", name="Cycles")).to_be_visible()
    row = page.get_by_role("table", name="Service links").locator('tr[data-parent="c"][data-child="a"]')
    expect(row.locator('td[data-field="p95"]')).to_have_text(re.compile(r"^(29\.[89]\d?|30(\.[01]\d?)?)ms$"))
    expect(edge(page, "c", "a").locator("title")).to_contain_text("latency p50 ")


def test_without_analytics_the_stored_spans_give_the_links(page, server_factory):
    srv = server_factory("analytics.enabled=false")
    svc = Services(srv.otlp_http, ["web", "api"])
    root = svc.tracer("web").start_span("GET /", kind=SpanKind.SERVER, start_time=time.time_ns() - 10**9)
    client, server, end = call(svc, root, "web", "api", "list", time.time_ns() - 10**9 + MS, 20 * MS)
    server.end(end_time=end - MS)
    client.end(end_time=end)
    root.end(end_time=end + MS)
    svc.flush()
    page.goto(srv.url("/graph"))
    expect(edge(page, "web", "api")).to_contain_text("1 call")
    table = page.get_by_role("table", name="Service links")
    expect(table.locator("th")).to_have_text(["Parent", "Child", "Calls", "Errors", "Error rate"])
    expect(page.get_by_text("Latency per link needs the metrics store")).to_be_visible()
