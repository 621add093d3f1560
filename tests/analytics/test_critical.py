"""Analytics: the critical path of a trace (``GET /api/v1/traces/{id}/critical-path``) and the
services that dominate the critical paths of a search's traces (``GET /api/v1/critical-path/services``).

Traces are sent by the OpenTelemetry SDK (one tracer provider per service) to a real server;
the expected segments are worked out by hand in the comments.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from google.protobuf import json_format
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.trace import SpanKind

from collector.analytics.critical import Node, critical_path, nodes_from_traces_data
from collector.codec.otlp_json import traces_to_json
from conftest import SdkServices, hex_span_id, hex_trace_id

MS = 1_000_000
SERVICES = ("frontend", "auth", "cart")


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkout(fleet: SdkServices, base: int, *, fast: bool = False) -> dict:
    """One checkout trace; returns its spans by short name.

    frontend  GET /checkout    server    0–100 ms
      frontend  call auth      client    5–25
        auth      verify       server    6–24
      frontend  call cart      client   20–90      (fast: 20–30)
        cart      POST /cart   server   22–88      (fast: 21–29)
          cart      compute    internal 25–40      (fast: 22–24)
          cart      db query   client   30–80      (fast: 25–26)
      frontend  render         internal 92–98
    """
    t = lambda ms: base + ms * MS  # noqa: E731
    cart = ((20, 30), (21, 29), (22, 24), (25, 26)) if fast else ((20, 90), (22, 88), (25, 40), (30, 80))
    s = {}
    s["root"] = fleet.span("frontend", "GET /checkout", t(0), t(100), kind=SpanKind.SERVER)
    s["auth_call"] = fleet.span("frontend", "call auth", t(5), t(25), s["root"], SpanKind.CLIENT)
    s["auth"] = fleet.span("auth", "verify", t(6), t(24), s["auth_call"], SpanKind.SERVER)
    s["cart_call"] = fleet.span("frontend", "call cart", *map(t, cart[0]), s["root"], SpanKind.CLIENT)
    s["cart"] = fleet.span("cart", "POST /cart", *map(t, cart[1]), s["cart_call"], SpanKind.SERVER)
    s["compute"] = fleet.span("cart", "compute", *map(t, cart[2]), s["cart"])
    s["db"] = fleet.span("cart", "db query", *map(t, cart[3]), s["cart"], SpanKind.CLIENT)
    s["render"] = fleet.span("frontend", "render", t(92), t(98), s["root"])
    return s


@pytest.fixture
def sent(server):
    base = time.time_ns() - 60_000 * MS
    fleet = SdkServices(server.otlp_http, SERVICES)
    spans = checkout(fleet, base)
    fleet.flush()
    return server, base, spans


def test_critical_path_of_a_known_trace(sent):
    server, base, s = sent
    r = requests.get(server.url(f"/api/v1/traces/{hex_trace_id(s['root'])}/critical-path"), timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    # From the root's end (100) back: render 92–98 is the last child to end; then call cart
    # (ends 90; call auth ends 25, after the cursor 20 once cart's call is on the path); inside
    # it POST /cart, inside that the db query (ends 80; compute ends 40, after the cursor 30).
    expected = [("root", 0, 20), ("cart_call", 20, 22), ("cart", 22, 30), ("db", 30, 80),
                ("cart", 80, 88), ("cart_call", 88, 90), ("root", 90, 92), ("render", 92, 98),
                ("root", 98, 100)]
    got = [(seg["spanId"], int(seg["start"]), int(seg["end"]), seg["selfOnPath"]) for seg in body["segments"]]
    assert got == [(hex_span_id(s[k]), base + a * MS, base + b * MS, (b - a) * MS) for k, a, b in expected]
    assert [seg["service"] for seg in body["segments"]] == [
        "frontend", "frontend", "cart", "cart", "cart", "frontend", "frontend", "frontend", "frontend"]
    assert body["segments"][3]["operation"] == "db query"
    assert body["total"] == 100 * MS
    assert body["rootSpanId"] == hex_span_id(s["root"])
    assert (int(body["start"]), int(body["end"])) == (base, base + 100 * MS)
    # cart: 8 + 50 + 8 ms; frontend: 20 + 2 + 2 + 2 + 6 + 2 ms; auth is never on the path.
    assert body["services"] == [{"service": "cart", "time": 66 * MS, "share": 0.66},
                                {"service": "frontend", "time": 34 * MS, "share": 0.34}]
    by_span = {e["spanId"]: (e["selfOnPath"], e["segments"]) for e in body["spans"]}
    assert by_span[hex_span_id(s["root"])] == (24 * MS, 3)
    assert by_span[hex_span_id(s["db"])] == (50 * MS, 1)
    assert hex_span_id(s["auth"]) not in by_span and hex_span_id(s["compute"]) not in by_span


def test_unknown_trace_is_404_and_a_bad_id_is_400(server):
    r = requests.get(server.url("/api/v1/traces/0123456789abcdef0123456789abcdef/critical-path"), timeout=10)
    assert r.status_code == 404
    assert "not found" in r.json()["error"]["message"]
    r = requests.get(server.url("/api/v1/traces/not-hex/critical-path"), timeout=10)
    assert r.status_code == 400
    assert "traceId" in r.json()["error"]["message"]


def test_services_dominating_the_critical_paths_of_a_search(server):
    base = time.time_ns() - 120_000 * MS
    fleet = SdkServices(server.otlp_http, SERVICES)
    # Three slow checkouts (cart 66 ms of 100 on the path, frontend 34) and two fast ones, where
    # the cart call lasts 10 ms: on their paths cart has 3 + 1 + 1 + 2 + 1 = 8 ms and frontend
    # 92.  Over the five: frontend 3 × 34 + 2 × 92 = 286 ms, cart 3 × 66 + 2 × 8 = 214 ms.
    # Over the three slow ones only, cart leads.
    slow = [checkout(fleet, base + i * 1000 * MS) for i in range(3)]
    fast = [checkout(fleet, base + (10 + i) * 1000 * MS, fast=True) for i in range(2)]
    # A trace of another root service, outside the search below.
    fleet.span("auth", "lonely", base, base + 500 * MS, kind=SpanKind.SERVER)
    fleet.flush()
    window = {"query.startTimeMin": rfc3339(base - 1000 * MS), "query.startTimeMax": rfc3339(base + 60_000 * MS)}

    r = requests.get(server.url("/api/v1/critical-path/services"),
                     params={**window, "query.serviceName": "frontend"}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["traces"] == 5
    assert sorted(body["traceIds"]) == sorted(hex_trace_id(t["root"]) for t in slow + fast)
    assert [(e["service"], e["time"], e["traces"]) for e in body["services"]] == [
        ("frontend", 286 * MS, 5), ("cart", 214 * MS, 5)]
    assert body["total"] == 500 * MS

    # Only the slow checkouts (the db call is longer than 10 ms): cart dominates.
    r = requests.get(server.url("/api/v1/critical-path/services"),
                     params={**window, "query.serviceName": "cart", "query.operationName": "db query",
                             "query.durationMin": "10ms"}, timeout=10)
    body = r.json()
    assert body["traces"] == 3
    assert body["services"][0]["service"] == "cart"
    assert body["services"][0]["share"] == pytest.approx(0.66)

    # limit caps the traces read (newest first).
    r = requests.get(server.url("/api/v1/critical-path/services"),
                     params={**window, "query.serviceName": "frontend", "limit": "2"}, timeout=10)
    assert r.json()["traces"] == 2
    assert sorted(r.json()["traceIds"]) == sorted(hex_trace_id(t["root"]) for t in fast)


@pytest.mark.parametrize("params, names", [
    ({"limit": "201"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"query.searchDepth": "500"}, "query.searchDepth"),
    ({"query.startTimeMin": "yesterday", "query.startTimeMax": "2024-01-02T03:04:05Z"}, "query.startTimeMin"),
    ({"query.durationMin": "fast"}, "query.durationMin"),
])
def test_bad_search_parameters_are_named(server, params, names):
    r = requests.get(server.url("/api/v1/critical-path/services"), params=params, timeout=10)
    assert r.status_code == 400
    assert names in r.json()["error"]["message"]


# --------------------------------------------------------------------------- the definition


def _node(sid, parent, start, end, name=None, service="svc"):
    return Node(span_id=sid, parent_id=parent, service=service, name=name or sid, start=start, end=end)


def test_children_are_clipped_to_their_parent_and_missing_parents_do_not_lead():
    spans = [
        _node("a", "", 0, 100),
        _node("b", "a", 50, 150),  # runs past its parent: clipped to 50–100
        _node("c", "b", 120, 140),  # wholly outside the clipped parent: off the path
        _node("orphan", "gone", 0, 1000),  # longer, but its parent is missing: not the main root
    ]
    segs = [(s.node.span_id, s.start, s.end) for s in critical_path(spans)]
    assert segs == [("a", 0, 50), ("b", 50, 100)]


def test_equal_ends_go_to_the_earlier_sibling_and_a_repeated_id_keeps_its_first_span():
    spans = [
        _node("r", "", 0, 10),
        _node("x", "r", 2, 8),
        _node("y", "r", 4, 8),  # ends with x, starts later: x is taken, y overlaps it
        _node("x", "r", 0, 1),  # shares x's ID: shown as x~2, children of x stay with the first
        _node("z", "x", 3, 5),
    ]
    segs = [(s.node.span_id, s.start, s.end) for s in critical_path(spans)]
    assert segs == [("x~2", 0, 1), ("r", 1, 2), ("x", 2, 3), ("z", 3, 5), ("x", 5, 8), ("r", 8, 10)]


NODE = shutil.which("node")
UI_MODEL = Path(__file__).resolve().parents[2] / "ui" / "lib" / "model.js"
NODE_SCRIPT = """
const { parseOTLP } = await import(process.argv[1]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((doc) => parseOTLP(doc)[0].criticalPath.map(
  (s) => [s.span.spanId, s.start, s.end]));
process.stdout.write(JSON.stringify(out));
"""


def random_trace(rng: random.Random, n: int) -> trace_pb2.TracesData:
    """A trace of ``n`` spans over three services with overlaps, children past their parents,
    missing parents, repeated IDs and spans without a start time."""
    data = trace_pb2.TracesData()
    tid = rng.randbytes(16)
    ids = []
    scopes = {}
    for svc in ("a", "b", "c"):
        rs = data.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = svc
        scopes[svc] = rs.scope_spans.add()
    base = 1_700_000_000_000_000_000
    times = {}
    for i in range(n):
        sid = rng.choice(ids) if ids and rng.random() < 0.05 else rng.randbytes(8)
        parent = b""
        if ids and rng.random() < 0.95:
            parent = rng.choice(ids[-6:]) if rng.random() < 0.97 else rng.randbytes(8)
        lo, hi = times.get(parent, (0, 40))
        # coarse times (ties are common), mostly inside the parent, sometimes past its ends
        start = rng.randrange(max(0, lo - 2), hi + 1)
        end = start + rng.randrange(0, max(1, hi - start + 3))
        ids.append(sid)
        times.setdefault(sid, (start, end))
        start_ns, end_ns = base + start * 1000, base + end * 1000
        if rng.random() < 0.03:
            start_ns = 0
        scopes[rng.choice("abc")].spans.add(trace_id=tid, span_id=sid, parent_span_id=parent,
                                            name=rng.choice(("x", "y")), start_time_unix_nano=start_ns,
                                            end_time_unix_nano=end_ns)
    return data


def test_the_same_path_as_the_ui_model():
    """``critical.py`` and the UI's ``criticalPath`` (ui/lib/model.js, run by node) agree on
    random traces, segment for segment.  Without node the test is skipped — and fails in CI
    (``CI`` set), where .ci/run installs it."""
    if NODE is None:
        message = "no node on PATH: the UI model cannot be run (apt-get install nodejs)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    rng = random.Random(8)
    traces = [random_trace(rng, rng.randrange(1, 40)) for _ in range(300)]
    docs = [traces_to_json(t) for t in traces]
    res = subprocess.run([NODE, "--input-type=module", "-e", NODE_SCRIPT, UI_MODEL.as_uri()],
                         input=json.dumps(docs), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    ui = json.loads(res.stdout)
    for t, want in zip(traces, ui):
        got = [[s.node.span_id, s.start / 1000, s.end / 1000] for s in critical_path(
            nodes_from_traces_data(t.SerializeToString()))]
        assert got == want, json_format.MessageToJson(t)
