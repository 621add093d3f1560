"""Correlation: link templates parsed and checked at config load, rendered per trace and span,
URL-encoded; ``GET /api/v1/traces/{id}/links`` on a real server configured by a TOML file."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from collector.config import load_config
from collector.correlation import SpanView, TraceView, parse_links, render_links
from collector.errors import ConfigError
from conftest import ROOT, SdkServices, Server, hex_span_id, hex_trace_id

MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z


def links(*tables) -> tuple:
    return parse_links("correlation.links", list(tables))


def span(sid, name="op", service="svc", start=T0, end=T0 + 10 * MS, parent="", attrs=None, resource=None):
    return SpanView(span_id=f"{sid:016x}", parent_id=f"{parent:016x}" if parent else "", service=service,
                    name=name, start=start, end=end, attrs=attrs or {}, resource=resource or {})


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def trace_of(*spans) -> TraceView:
    return TraceView(TRACE_ID, list(spans))


def urls(answer, where="trace"):
    return {link["name"]: link["url"] for link in answer[where]}


# --------------------------------------------------------------------------- rendering


def test_trace_template_uses_trace_times_and_root_span():
    root = span(1, "GET /checkout", "frontend", start=T0 + 123_456, end=T0 + 2 * S + 1)
    child = span(2, "charge", "payments", start=T0 - 5 * MS, end=T0 + 3 * S, parent=1)
    t = links({"name": "Dash", "scope": "trace",
               "url": "https://g.example/d?svc={service}&op={operation}&from={start_ms}&to={end_ms}"
                      "&f={start}&t={end}&s={start_s}&e={end_s}&us={start_us}&ns={end_ns}"})
    got = urls(render_links(t, trace_of(root, child)))["Dash"]
    # the trace's window: the earliest start (the child's) to the latest end, rounded outward
    assert got == ("https://g.example/d?svc=frontend&op=GET%20%2Fcheckout"
                   f"&from={(T0 - 5 * MS) // MS}&to={(T0 + 3 * S) // MS}"
                   "&f=2023-11-14T22:13:19.995Z&t=2023-11-14T22:13:23.000Z"
                   f"&s={T0 // S - 1}&e={T0 // S + 3}&us={(T0 - 5 * MS) // 1000}&ns={T0 + 3 * S}")


def test_end_rounds_up_and_padding_moves_the_window():
    s = span(1, start=T0 + 1, end=T0 + 1500 * MS + 1)
    t = links({"name": "L", "scope": "span",
               "url": "https://l.example/?a={start_ms-5m}&b={end_ms+5m}&c={start-1h}&d={end_s+2d}&e={end_ms}"})
    got = render_links(t, trace_of(s))["spans"][f"{1:016x}"][0]["url"]
    assert got == (f"https://l.example/?a={T0 // MS - 300_000}&b={T0 // MS + 1501 + 300_000}"
                   f"&c=2023-11-14T21:13:20.000Z&d={T0 // S + 2 + 2 * 86400}&e={T0 // MS + 1501}")


def test_values_are_percent_encoded_and_literals_kept():
    s = span(7, "pay/now?x=1&y", "check out", attrs={"http.route": "/a/{id} ü", "n": "50%"},
             resource={"k8s.pod.name": "pod-1"})
    t = links({"name": "K", "scope": "span",
               "url": "https://k.example/app/discover#/?_a=(query:'pod:{resource:k8s.pod.name} {{x}}')"
                      "&r={attr:http.route}&op={operation}&svc={service}&n={attr:n}&id={span_id}&t={trace_id}"})
    got = render_links(t, trace_of(s))["spans"][f"{7:016x}"][0]["url"]
    assert got == ("https://k.example/app/discover#/?_a=(query:'pod:pod-1%20%7Bx%7D')"
                   "&r=%2Fa%2F%7Bid%7D%20%C3%BC&op=pay%2Fnow%3Fx%3D1%26y&svc=check%20out&n=50%25"
                   f"&id={7:016x}&t={TRACE_ID}")


def test_attribute_lookup_span_then_resource_and_resource_only():
    s = span(1, attrs={"region": "span-eu"}, resource={"region": "res-us", "zone": "z1"})
    t = links({"name": "A", "scope": "span", "url": "https://x.example/{attr:region}/{attr:zone}"},
              {"name": "R", "scope": "span", "url": "https://x.example/{resource:region}"})
    got = {link["name"]: link["url"] for link in render_links(t, trace_of(s))["spans"][f"{1:016x}"]}
    assert got == {"A": "https://x.example/span-eu/z1", "R": "https://x.example/res-us"}


def test_missing_attribute_or_when_leaves_the_span_out():
    with_pod = span(1, resource={"k8s.pod.name": "pod-1"}, attrs={"payment.id": "p1"})
    without = span(2, parent=1)
    t = links({"name": "Pod", "scope": "span", "when": "k8s.pod.name", "url": "https://k.example/{span_id}"},
              {"name": "Pay", "scope": "span", "url": "https://p.example/{attr:payment.id}"})
    spans = render_links(t, trace_of(with_pod, without))["spans"]
    assert spans == {f"{1:016x}": [{"name": "Pod", "url": f"https://k.example/{1:016x}"},
                                   {"name": "Pay", "url": "https://p.example/p1"}]}


def test_trace_template_finds_attribute_on_root_then_other_spans():
    root = span(1, start=T0, attrs={"tenant": "root-t"})
    late = span(3, start=T0 + 20 * MS, parent=1, attrs={"ticket": "T-2"})
    early = span(2, start=T0 + 10 * MS, parent=1, attrs={"ticket": "T-1"})
    t = links({"name": "Ticket", "scope": "trace", "url": "https://t.example/{attr:ticket}/{attr:tenant}"},
              {"name": "Never", "scope": "trace", "url": "https://t.example/{attr:nope}"},
              {"name": "When", "scope": "trace", "when": "ticket", "url": "https://t.example/w"},
              {"name": "WhenNot", "scope": "trace", "when": "nope", "url": "https://t.example/n"})
    assert render_links(t, trace_of(late, root, early))["trace"] == [
        {"name": "Ticket", "url": "https://t.example/T-1/root-t"},
        {"name": "When", "url": "https://t.example/w"}]


def test_span_limits_and_single_span_and_url_length():
    spans = [span(i, start=T0 + i) for i in range(1, 11)]
    t = links({"name": "S", "scope": "span", "url": "https://s.example/{span_id}"})
    full = render_links(t, trace_of(*spans))
    assert len(full["spans"]) == 10 and not full["spansTruncated"]
    cut = render_links(t, trace_of(*spans), max_span_links=4)
    assert list(cut["spans"]) == [f"{i:016x}" for i in range(1, 5)] and cut["spansTruncated"]
    one = render_links(t, trace_of(*spans), span_id=f"{9:016x}", max_span_links=4)
    assert one["spans"] == {f"{9:016x}": [{"name": "S", "url": f"https://s.example/{9:016x}"}]}
    assert render_links(t, trace_of(*spans), max_url_length=20)["spans"] == {}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("table, message", [
    ({"name": "Logs", "scope": "trace", "url": "https://l.example/{traceid}"},
     "correlation.links[0] 'Logs': unknown placeholder {traceid}"),
    ({"name": "Logs", "scope": "trace", "url": "https://l.example/{attr:}"},
     "correlation.links[0] 'Logs': placeholder {attr:} names no attribute key"),
    ({"name": "Logs", "scope": "trace", "url": "https://l.example/{start_ms+5y}"},
     "correlation.links[0] 'Logs': unknown placeholder {start_ms+5y}"),
    ({"name": "Logs", "scope": "trace", "url": "https://l.example/{span_id}"},
     "correlation.links[0] 'Logs': placeholder {span_id} is only for scope = \"span\""),
    ({"name": "Logs", "scope": "trace", "url": "https://l.example/{trace_id"},
     "correlation.links[0] 'Logs': the placeholder at character 19 of url is not closed"),
    ({"name": "Logs", "scope": "trace", "url": "https://l.example/}"},
     "correlation.links[0] 'Logs': the '}' at character 19 of url closes no placeholder"),
    ({"name": "Logs", "scope": "trace", "url": "javascript:alert({trace_id})"},
     "correlation.links[0] 'Logs': url must start with http:// or https://"),
    ({"name": "Logs", "scope": "trace", "url": "{attr:link}"},
     "correlation.links[0] 'Logs': url must start with http:// or https://"),
    ({"name": "Logs", "scope": "page", "url": "https://l.example/"},
     "correlation.links[0] 'Logs': scope must be \"trace\" or \"span\""),
    ({"name": "Logs", "scope": "span", "url": "https://l.example/", "when": ""},
     "correlation.links[0] 'Logs': when must be an attribute key"),
    ({"name": "Logs", "scope": "span", "link": "https://l.example/"},
     "correlation.links[0] 'Logs': unknown field 'link'"),
    ({"scope": "span", "url": "https://l.example/"}, "correlation.links[0]: name must be a non-empty string"),
])
def test_bad_templates_are_refused_naming_template_and_problem(table, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides={"correlation.links": [table]}, environ={})
    assert str(err.value).startswith(message), str(err.value)


def test_duplicate_names_in_a_scope_are_refused_across_scopes_allowed():
    ok = links({"name": "Logs", "scope": "trace", "url": "https://l.example/"},
               {"name": "Logs", "scope": "span", "url": "https://l.example/"})
    assert [t.scope for t in ok] == ["trace", "span"]
    with pytest.raises(ConfigError, match=r"correlation.links\[1\] 'Logs': another span template"):
        links({"name": "Logs", "scope": "span", "url": "https://l.example/a"},
              {"name": "Logs", "scope": "span", "url": "https://l.example/b"})


def test_toml_file_env_and_flags(tmp_path):
    toml = tmp_path / "clew.toml"
    toml.write_text('[otlp]\nhttp_port = 5000\n\n[correlation]\nmax_span_links = 10\n\n'
                    '[[correlation.links]]\nname = "Logs"\nscope = "trace"\nurl = "https://l.example/{trace_id}"\n\n'
                    '[[correlation.links]]\nname = "Pod"\nscope = "span"\nwhen = "k8s.pod.name"\n'
                    'url = "https://k.example/{resource:k8s.pod.name}"\n')
    c = load_config(toml, environ={"CLEW_CORRELATION_MAX_URL_LENGTH": "100"})
    assert [(t.name, t.scope, t.when) for t in c.correlation.links] == [
        ("Logs", "trace", None), ("Pod", "span", "k8s.pod.name")]
    assert (c.otlp.http_port, c.correlation.max_span_links, c.correlation.max_url_length) == (5000, 10, 100)
    # a flag or the environment replaces the file's list with a TOML inline array
    c = load_config(toml, {"correlation.links": '[{name = "X", scope = "span", url = "https://x.example/{span_id}"}]',
                           "correlation.max_span_links": "7"}, environ={})
    assert [t.name for t in c.correlation.links] == ["X"] and c.correlation.max_span_links == 7
    c = load_config(environ={"CLEW_CORRELATION_LINKS": '[{name = "E", scope = "trace", url = "https://e.example/"}]'})
    assert [t.name for t in c.correlation.links] == ["E"]
    with pytest.raises(ConfigError, match="correlation.links: expected a TOML array of tables"):
        load_config(environ={"CLEW_CORRELATION_LINKS": "https://e.example/"})
    with pytest.raises(ConfigError, match="correlation.max_span_links: must be > 0"):
        load_config(overrides={"correlation.max_span_links": "0"}, environ={})


# --------------------------------------------------------------------------- a real server


CONFIG = '''
[correlation]
max_span_links = 1000

[[correlation.links]]
name = "Logs"
scope = "trace"
url = "https://grafana.example/explore?expr={{trace_id=\\"{trace_id}\\"}}&from={start_ms-5m}&to={end_ms+5m}"

[[correlation.links]]
name = "Service dashboard"
scope = "trace"
url = "https://grafana.example/d/red?var-service={service}&from={start_ms}&to={end_ms}"

[[correlation.links]]
name = "Pod logs"
scope = "span"
when = "k8s.pod.name"
url = "https://kibana.example/app/discover#/?_a=(query:(query:'k8s.pod.name:{resource:k8s.pod.name} and span.id:{span_id}'))&_g=(time:(from:'{start-1m}',to:'{end+1m}'))"

[[correlation.links]]
name = "Payment"
scope = "span"
url = "https://pay.example/payments/{attr:payment.id}"
'''


def config_server(tmp_path, text: str) -> Server:
    """``clew serve --config FILE`` with ``text`` as the file."""
    path = tmp_path / "clew.toml"
    path.write_text(text)
    return Server(tmp_path / "data", config=path)


def wait_links(srv: Server, trace_id: str, want_spans: int) -> dict:
    deadline = time.monotonic() + 15
    while True:
        r = requests.get(srv.url(f"/api/v1/traces/{trace_id}/links"))
        if r.status_code == 200 and len(r.json()["spans"]) >= want_spans:
            return r.json()
        assert time.monotonic() < deadline, f"the trace never became readable: {r.status_code} {r.text[:300]}"
        time.sleep(0.05)


def test_server_renders_configured_links(tmp_path):
    srv = config_server(tmp_path, CONFIG).start()
    try:
        pods = SdkServices(srv.otlp_http, ["frontend"], **{"k8s.pod.name": "frontend-7f9c/x"})
        plain = SdkServices(srv.otlp_http, ["payments"])
        base = (time.time_ns() // S - 60) * S + 123_456  # a minute ago, not on a millisecond
        root = pods.tracer("frontend").start_span("GET /checkout", start_time=base,
                                                  attributes={"http.route": "/checkout"})
        from opentelemetry import trace as otel
        child = plain.tracer("payments").start_span("charge", context=otel.set_span_in_context(root),
                                                    start_time=base + 10 * MS, attributes={"payment.id": "p 42"})
        child.end(end_time=base + 200 * MS)
        root.end(end_time=base + 250 * MS + 1)
        pods.flush()
        plain.flush()
        tid, root_id, child_id = hex_trace_id(root), hex_span_id(root), hex_span_id(child)

        got = wait_links(srv, tid, 2)
        start_ms, end_ms = base // MS, (base + 250 * MS + 1) // MS + 1
        assert got["traceId"] == tid and got["start"] == str(base) and got["end"] == str(base + 250 * MS + 1)
        assert got["trace"] == [
            {"name": "Logs", "url": f"https://grafana.example/explore?expr=%7Btrace_id=%22{tid}%22%7D"
                                    f"&from={start_ms - 300_000}&to={end_ms + 300_000}"},
            {"name": "Service dashboard",
             "url": f"https://grafana.example/d/red?var-service=frontend&from={start_ms}&to={end_ms}"}]
        pod_url = got["spans"][root_id][0]["url"]
        assert pod_url.startswith("https://kibana.example/app/discover#/?_a=(query:(query:"
                                  f"'k8s.pod.name:frontend-7f9c%2Fx%20and%20span.id:{root_id}'))")
        assert got["spans"] == {
            root_id: [{"name": "Pod logs", "url": pod_url}],
            child_id: [{"name": "Payment", "url": "https://pay.example/payments/p%2042"}]}
        assert got["incidents"] == [] and got["spansTruncated"] is False

        one = requests.get(srv.url(f"/api/v1/traces/{tid}/links"), params={"spanId": child_id.upper()}).json()
        assert one["spans"] == {child_id: got["spans"][child_id]}

        r = requests.post(srv.url("/api/v1/incidents"), json={
            "id": "inc-7", "title": "checkout 5xx", "link": "https://tickets.example/INC-7", "traceIds": [tid]})
        assert r.status_code == 201, r.text
        got = requests.get(srv.url(f"/api/v1/traces/{tid}/links")).json()
        assert [(i["id"], i["title"], i["link"]) for i in got["incidents"]] == [
            ("inc-7", "checkout 5xx", "https://tickets.example/INC-7")]

        r = requests.get(srv.url(f"/api/v1/traces/{'ab' * 16}/links"))
        assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
        r = requests.get(srv.url("/api/v1/traces/not-hex/links"))
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("traceId:")
        r = requests.get(srv.url(f"/api/v1/traces/{tid}/links"), params={"spanId": "xyz"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("spanId:")
    finally:
        srv.stop()


def test_serve_refuses_a_bad_template_naming_it(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[correlation.links]]\nname = "Logs"\nscope = "trace"\n'
                   'url = "https://l.example/?q={traceid}"\n')
    proc = subprocess.run([sys.executable, "-m", "collector", "serve", "--data-dir", str(tmp_path / "d"),
                           "--config", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "correlation.links[0] 'Logs': unknown placeholder {traceid}" in proc.stderr
