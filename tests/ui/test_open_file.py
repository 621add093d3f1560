"""UI: the open-file page (`/open`) reads OTLP, Jaeger and Zipkin JSON files in the browser.

The files are the third-party conformance data in /work/shared/conformance (see the READMEs
there): Zipkin Lens test traces, the Jaeger UI/HTTP-API JSON samples and the OTLP/JSON example.
Nothing is sent to the server: the test watches every request the page makes.
"""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from conftest import CONFORMANCE

LENS = CONFORMANCE / "zipkin" / "lens-testdata"
JAEGER = CONFORMANCE / "jaeger" / "query-api"


@pytest.fixture
def opened(page, ui_server):
    """The /open page, with a list of the requests the page sends after it loaded."""
    page.goto(ui_server.url("/open"))
    expect(page.get_by_role("heading", name="Open a trace file")).to_be_visible()
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url)))

    def choose(path):
        page.get_by_label("or choose a file:").set_input_files(str(path))

    yield choose
    # Only the UI's own static files may be fetched: the trace never leaves the browser.
    assert all(m == "GET" and "/ui/" in url for m, url in sent), sent


def services_list(page):
    return page.get_by_role("list", name="Services")


def test_zipkin_lens_big_trace(page, opened):
    opened(LENS / "smartthings-mobile-web-install.json")
    expect(page.get_by_test_id("span-count")).to_have_text("1041 spans")
    expect(page.get_by_role("status").first).to_contain_text("Zipkin v2 JSON, 1 trace, 1041 spans")
    items = services_list(page).get_by_role("listitem")
    expect(items).to_have_count(16)
    for name in ("coreSrv", "platformapi", "strongman"):
        expect(services_list(page)).to_contain_text(name)
    # The file's partial data is explained, not hidden.
    warnings = page.get_by_test_id("trace-warnings")
    expect(warnings).to_contain_text("84 spans have no start time")
    expect(warnings).to_contain_text("share their IDs")
    # Only the rows on screen are in the page.
    assert page.get_by_test_id("span-row").count() < 100
    page.get_by_role("searchbox", name="Find in trace").fill("coresrv")
    expect(page.get_by_test_id("search-count")).to_contain_text("1 of ")


def test_zipkin_shared_span_and_skew(page, opened):
    opened(LENS / "skew.json")
    expect(page.get_by_test_id("span-count")).to_have_text("4 spans")
    # serviceb's server half of the shared span sits under servicea's client half and starts
    # before it: shown with a skew marker.
    server = page.get_by_test_id("span-row").filter(has=page.locator(".wf-svc", has_text="serviceb")).filter(
        has=page.locator(".wf-op", has_text="post"))
    expect(server).to_have_attribute("aria-level", "3")
    expect(server.get_by_test_id("skew-marker")).to_contain_text("before its parent")


def test_jaeger_ui_json(page, opened):
    opened(JAEGER / "uimodel" / "ui_01.json")
    expect(page.get_by_test_id("span-count")).to_have_text("5 spans")
    expect(services_list(page)).to_contain_text("service-x")
    expect(services_list(page)).to_contain_text("service-y")
    expect(page.get_by_role("status").first).to_contain_text("Jaeger JSON")
    # The span tagged error=true is an error span.
    expect(page.locator(".wf-row[data-error=true]")).to_have_count(1)


def test_jaeger_http_api_envelope(page, opened):
    opened(JAEGER / "transform" / "otlp2jaeger-out.json")
    expect(page.get_by_test_id("span-count")).to_have_text("2 spans")
    expect(services_list(page)).to_contain_text("telemetrygen")


def test_otlp_example(page, opened):
    opened(CONFORMANCE / "otlp" / "trace.json")
    expect(page.get_by_test_id("span-count")).to_have_text("1 span")
    expect(services_list(page)).to_contain_text("my.service")
    expect(page.get_by_test_id("trace-warnings")).to_contain_text("missing from the trace")
    page.get_by_test_id("span-row").click()
    detail = page.get_by_role("complementary", name="Span details")
    expect(detail.get_by_role("heading", level=2)).to_have_text("I'm a server span")
    expect(detail).to_contain_text("my.span.attr")
    expect(detail).to_contain_text("my.library 1.0.0")
    expect(detail).to_contain_text("server")


def test_jaeger_api_v2_model_with_base64_ids(page, opened):
    # protobuf-JSON of the api_v2 model: base64 IDs, RFC 3339 start times, inline processes.
    opened(CONFORMANCE / "jaeger" / "legacy-v1-model" / "traces" / "example_trace.json")
    expect(page.get_by_test_id("span-count")).to_have_text("5 spans")
    expect(page.get_by_role("heading", level=1).last).to_contain_text("00000000000000000000000000000011")
    for name in ("example-service-1", "example-service-2", "example-service-3"):
        expect(services_list(page)).to_contain_text(name)


def test_otlp_with_base64_ids(page, opened, tmp_path):
    # OTLP/JSON as a generic protobuf-JSON encoder writes it: IDs in base64, enums by name.
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "b64"}}]},
                              "scopeSpans": [{"spans": [
                                  {"traceId": "AAECAwQFBgcICQoLDA0ODw==", "spanId": "AQIDBAUGBwg=", "name": "parent",
                                   "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": "1700000000000000000",
                                   "endTimeUnixNano": "1700000000100000000"},
                                  {"traceId": "AAECAwQFBgcICQoLDA0ODw==", "spanId": "CQoLDA0ODxA=", "parentSpanId": "AQIDBAUGBwg=",
                                   "name": "child", "startTimeUnixNano": 1700000000010000000, "endTimeUnixNano": 1700000000050000000,
                                   "status": {"code": "STATUS_CODE_ERROR", "message": "bad"}}]}]}]}
    path = tmp_path / "b64.json"
    path.write_text(json.dumps(doc))
    opened(path)
    expect(page.get_by_role("heading", level=1).last).to_contain_text("000102030405060708090a0b0c0d0e0f")
    child = page.get_by_test_id("span-row").filter(has_text="child")
    expect(child).to_have_attribute("aria-level", "2")
    expect(child).to_have_attribute("data-span-id", "090a0b0c0d0e0f10")
    expect(child).to_have_attribute("data-error", "true")
    expect(page.get_by_test_id("failed-first")).to_contain_text("b64 — child")


def test_file_with_several_traces_lists_them(page, opened, tmp_path):
    db = json.loads((LENS / "simple-db-p6.json").read_text())
    spans = json.loads((LENS / "messaging.json").read_text()) + db
    path = tmp_path / "two.json"
    path.write_text(json.dumps(spans))
    opened(path)
    table = page.get_by_role("table", name="Traces in the file")
    expect(table.get_by_role("row")).to_have_count(3)
    table.get_by_role("button", name=db[0]["traceId"]).click()
    expect(page.get_by_test_id("span-count")).to_have_text("5 spans")
    page.get_by_role("button", name="All 2 traces in two.json").click()
    expect(table.get_by_role("row")).to_have_count(3)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"hello": "world"}', "not a trace file"),
    ('[{"traceId": "abc", "name": "x"}]', "a list of Zipkin v2 spans"),
    ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "0102030405060708"}]}]}]}', "has no traceId"),
])
def test_broken_file_names_the_problem(page, opened, tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    opened(path)
    error = page.get_by_test_id("open-error")
    expect(error).to_contain_text("broken.json could not be opened")
    expect(error).to_contain_text(message)
    expect(page.get_by_test_id("span-row")).to_have_count(0)
