"""UI: related links on the trace page — the server's configured link templates rendered for the
trace (in the header) and for the selected span (in the detail panel), and the trace's incidents.

The server runs with a TOML config holding the templates; ``correlation.max_span_links = 2`` so
the trace's answer leaves one span out and the page asks for that span's links on its own.

Trace (times in ms): frontend ``GET /checkout`` 0–100 (resource ``k8s.pod.name``, route) →
payments ``charge`` 10–80 (route with characters a URL must encode), payments ``audit`` 85–95
(no attribute a span template needs).
"""
from __future__ import annotations

import time

import pytest
import requests
from opentelemetry import trace
from playwright.sync_api import expect

from conftest import SdkServices, Server, hex_span_id as sid, hex_trace_id as tid

MS = 1_000_000
CONFIG = '''
[correlation]
max_span_links = 2

[[correlation.links]]
name = "Logs"
scope = "trace"
url = "https://logs.example/search?trace={trace_id}&from={start_ms}&to={end_ms}"

[[correlation.links]]
name = "Service dashboard"
scope = "trace"
url = "https://grafana.example/d/red?var-service={service}"

[[correlation.links]]
name = "Pod logs"
scope = "span"
when = "k8s.pod.name"
url = "https://kibana.example/pod/{resource:k8s.pod.name}?span={span_id}"

[[correlation.links]]
name = "Route"
scope = "span"
url = "https://apm.example/route?r={attr:http.route}"
'''


@pytest.fixture(scope="module")
def links_server(tmp_path_factory):
    """``clew serve --config FILE`` with the templates above."""
    base = tmp_path_factory.mktemp("links")
    path = base / "clew.toml"
    path.write_text(CONFIG)
    srv = Server(base / "data", config=path).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def shop(links_server):
    pods = SdkServices(links_server.otlp_http, ["frontend"], **{"k8s.pod.name": "frontend-7f9c"})
    plain = SdkServices(links_server.otlp_http, ["payments"])
    t0 = (time.time_ns() // MS - 10 * 60 * 1000) * MS
    root = pods.tracer("frontend").start_span("GET /checkout", start_time=t0, attributes={"http.route": "/checkout"})
    ctx = trace.set_span_in_context(root)
    charge = plain.tracer("payments").start_span("charge", context=ctx, start_time=t0 + 10 * MS,
                                                 attributes={"http.route": "/pay/{id} now"})
    charge.end(end_time=t0 + 80 * MS)
    audit = plain.tracer("payments").start_span("audit", context=ctx, start_time=t0 + 85 * MS)
    audit.end(end_time=t0 + 95 * MS)
    root.end(end_time=t0 + 100 * MS)
    pods.flush()
    plain.flush()
    ids = {"trace": tid(root), "root": sid(root), "charge": sid(charge), "audit": sid(audit), "t0": t0}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = requests.get(links_server.url(f"/api/v3/traces/{ids['trace']}"), timeout=10)
        if r.status_code == 200 and sum(len(ss["spans"]) for rs in r.json()["result"]["resourceSpans"]
                                        for ss in rs["scopeSpans"]) == 3:
            return ids
        time.sleep(0.1)
    pytest.fail("the trace did not arrive")


def open_trace(page, srv, trace_id):
    page.goto(srv.url(f"/trace/{trace_id}"))
    expect(page.get_by_test_id("span-count")).to_have_text("3 spans")


def row(page, name):
    return page.get_by_test_id("span-row").filter(has=page.locator(".wf-op", has_text=name))


def test_trace_links_in_the_header(page, links_server, shop):
    open_trace(page, links_server, shop["trace"])
    nav = page.get_by_role("navigation", name="Related links")
    logs = nav.get_by_role("link", name="Logs")
    t0_ms = shop["t0"] // MS
    expect(logs).to_have_attribute(
        "href", f"https://logs.example/search?trace={shop['trace']}&from={t0_ms}&to={t0_ms + 100}")
    expect(logs).to_have_attribute("target", "_blank")
    expect(logs).to_have_attribute("rel", "noopener")
    expect(nav.get_by_role("link", name="Service dashboard")).to_have_attribute(
        "href", "https://grafana.example/d/red?var-service=frontend")
    expect(page.get_by_test_id("trace-incidents")).to_have_count(0)


def test_span_links_in_the_detail_panel(page, links_server, shop):
    open_trace(page, links_server, shop["trace"])
    expect(page.get_by_test_id("trace-link")).to_have_count(2)  # the answer has arrived
    row(page, "GET /checkout").click()
    panel = page.get_by_test_id("span-detail")
    expect(panel).to_have_attribute("data-span-id", shop["root"])
    related = panel.get_by_test_id("span-related-links")
    expect(related.get_by_role("link", name="Pod logs")).to_have_attribute(
        "href", f"https://kibana.example/pod/frontend-7f9c?span={shop['root']}")
    expect(related.get_by_role("link", name="Route")).to_have_attribute(
        "href", "https://apm.example/route?r=%2Fcheckout")
    expect(related.get_by_role("link", name="Pod logs")).to_have_attribute("target", "_blank")

    # Left out of the trace's answer (max_span_links = 2): the page asks for this span alone.
    row(page, "charge").click()
    expect(panel).to_have_attribute("data-span-id", shop["charge"])
    expect(panel.get_by_test_id("span-link")).to_have_count(1)
    expect(related.get_by_role("link", name="Route")).to_have_attribute(
        "href", "https://apm.example/route?r=%2Fpay%2F%7Bid%7D%20now")

    # No template renders for this span: no related-links section.
    row(page, "audit").click()
    expect(panel).to_have_attribute("data-span-id", shop["audit"])
    expect(panel.get_by_test_id("span-related-links")).to_be_hidden()
    expect(panel.get_by_test_id("span-link")).to_have_count(0)


def test_deep_link_to_a_span_shows_its_links(page, links_server, shop):
    page.goto(links_server.url(f"/trace/{shop['trace']}?span={shop['root']}"))
    expect(page.get_by_test_id("span-detail").get_by_role("link", name="Pod logs")).to_have_attribute(
        "href", f"https://kibana.example/pod/frontend-7f9c?span={shop['root']}")


def test_incident_shows_in_the_header(page, links_server, shop):
    r = requests.post(links_server.url("/api/v1/incidents"), json={
        "id": "inc-ui-1", "title": "Checkout failing after deploy", "link": "https://tickets.example/INC-1",
        "traceIds": [shop["trace"]]})
    assert r.status_code == 201, r.text
    try:
        open_trace(page, links_server, shop["trace"])
        incidents = page.get_by_test_id("trace-incidents")
        expect(incidents).to_contain_text("Incident:")
        link = incidents.get_by_role("link", name="Checkout failing after deploy")
        expect(link).to_have_attribute("href", "https://tickets.example/INC-1")
        expect(link).to_have_attribute("target", "_blank")
        expect(incidents).to_contain_text("inc-ui-1")
    finally:
        requests.delete(links_server.url("/api/v1/incidents/inc-ui-1"))
