"""Analytics: the service graph paired at ingest (``collector.analytics.graph``) and
``GET /api/v1/dependencies`` (calls, errors, latency per edge, cycles).

The server tests send spans with the OpenTelemetry SDK, one request per span (the SDK's simple
span processor), so every client/server pair is split across requests — in both orders.
"""
from __future__ import annotations

import time

import pytest
import requests
from opentelemetry import trace as otel_trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector.analytics.graph import EdgeTracker
from collector.codec import decode_export_request
from conftest import SdkServices, otlp_attributes

MS = 1_000_000
TOPOLOGY = ("frontend", "auth", "cart", "inventory", "payments", "notifications")


class Calls:
    """Sends spans of one trace; ``call`` makes a client (or producer) span and its server (or
    consumer) child in another service, sending the server half first when asked."""

    def __init__(self, fleet: SdkServices):
        self.fleet = fleet

    def start(self, service, name, start, parent=None, kind=SpanKind.INTERNAL):
        ctx = otel_trace.set_span_in_context(parent) if parent is not None else None
        return self.fleet.tracer(service).start_span(name, context=ctx, kind=kind, start_time=start)

    def call(self, parent, client, server, start, ms, *, client_error=False, server_error=False,
             server_first=False, messaging=False):
        kinds = (SpanKind.PRODUCER, SpanKind.CONSUMER) if messaging else (SpanKind.CLIENT, SpanKind.SERVER)
        c = self.start(client, f"call {server}", start, parent, kinds[0])
        if client_error:
            c.set_status(Status(StatusCode.ERROR))
        if not server_first:
            c.end(end_time=start + ms * MS)
        s = self.start(server, f"serve {server}", start + MS // 10, c, kinds[1])
        if server_error:
            s.set_status(Status(StatusCode.ERROR))
        s.end(end_time=start + ms * MS - MS // 10)
        if server_first:
            c.end(end_time=start + ms * MS)
        return s


def send_topology(endpoint: str, base: int, traces: int = 5) -> None:
    """``traces`` checkouts over six services; odd traces send every server half first.

    frontend → auth (20 ms), frontend → cart (60 ms), cart → inventory twice (10 ms each; the
    first call of trace 1 fails on the client side), cart → payments (30 ms; fails on the
    server side in traces 0 and 3), payments → notifications (producer/consumer, 5 ms).
    """
    fleet = SdkServices(endpoint, TOPOLOGY)
    calls = Calls(fleet)
    for i in range(traces):
        t0 = base + i * 1000 * MS
        first = i % 2 == 1
        root = calls.start("frontend", "GET /checkout", t0, kind=SpanKind.SERVER)
        calls.call(root, "frontend", "auth", t0 + 1 * MS, 20, server_first=first)
        cart = calls.call(root, "frontend", "cart", t0 + 25 * MS, 60, server_first=first)
        calls.call(cart, "cart", "inventory", t0 + 26 * MS, 10, client_error=i == 1, server_first=first)
        calls.call(cart, "cart", "inventory", t0 + 37 * MS, 10, server_first=first)
        pay = calls.call(cart, "cart", "payments", t0 + 50 * MS, 30, server_error=i in (0, 3),
                         server_first=first)
        calls.call(pay, "payments", "notifications", t0 + 52 * MS, 5, messaging=True, server_first=first)
        root.end(end_time=t0 + 100 * MS)
    fleet.flush()


def dependencies(server, **params) -> dict:
    r = requests.get(server.url("/api/v1/dependencies"), params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_dependency_graph_is_exact_with_halves_in_either_order(server):
    base = time.time_ns() - 120_000 * MS
    send_topology(server.otlp_http, base)
    body = dependencies(server, **{"from": str((base - 60_000 * MS) // 10**9), "to": str(time.time_ns() // 10**9 + 60)})
    got = {(e["source"], e["target"], e["connection"]): (e["calls"], e["errors"]) for e in body["edges"]}
    assert got == {
        ("frontend", "auth", "request"): (5, 0),
        ("frontend", "cart", "request"): (5, 0),
        ("cart", "inventory", "request"): (10, 1),
        ("cart", "payments", "request"): (5, 2),
        ("payments", "notifications", "messaging"): (5, 0),
    }
    edges = {(e["source"], e["target"]): e for e in body["edges"]}
    assert edges[("cart", "payments")]["errorRate"] == pytest.approx(0.4)
    # Latency is the client side's duration, within the histogram's relative error.
    for (src, dst), ms in {("frontend", "auth"): 20, ("frontend", "cart"): 60, ("cart", "inventory"): 10,
                           ("cart", "payments"): 30, ("payments", "notifications"): 5}.items():
        lat = edges[(src, dst)]["latency"]
        for q in ("p50", "p95", "p99"):
            assert lat[q] == pytest.approx(ms * MS, rel=0.01), (src, dst, q)
        assert lat["mean"] == ms * MS
    nodes = {n["name"]: n for n in body["nodes"]}
    assert sorted(nodes) == sorted(TOPOLOGY)
    assert not any(n["virtual"] for n in nodes.values())
    assert (nodes["cart"]["callsIn"], nodes["cart"]["callsOut"]) == (5, 15)
    assert nodes["payments"]["errorsIn"] == 2
    assert body["cycles"] == [] and body["cyclesTruncated"] is False

    # A window that ends before the traces started holds no edge.
    early = dependencies(server, **{"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"})
    assert early["edges"] == [] and early["nodes"] == []


def test_cycles_are_listed(server):
    base = time.time_ns() - 60_000 * MS
    fleet = SdkServices(server.otlp_http, ("a", "b", "c", "d"))
    calls = Calls(fleet)
    root = calls.start("a", "start", base, kind=SpanKind.SERVER)
    b = calls.call(root, "a", "b", base + MS, 50)
    c = calls.call(b, "b", "c", base + 2 * MS, 40, server_first=True)
    back = calls.call(c, "c", "a", base + 3 * MS, 30)  # a → b → c → a
    calls.call(back, "a", "d", base + 4 * MS, 5)
    calls.call(c, "c", "b", base + 40 * MS, 1)  # and b ⇄ c
    root.end(end_time=base + 100 * MS)
    fleet.flush()
    body = dependencies(server)
    assert body["cycles"] == [["a", "b", "c"], ["b", "c"]]
    assert body["cyclesTruncated"] is False
    assert {(e["source"], e["target"]) for e in body["edges"]} == {
        ("a", "b"), ("b", "c"), ("c", "a"), ("a", "d"), ("c", "b")}


def test_a_lone_client_naming_its_peer_becomes_an_edge_to_it(server_factory):
    server = server_factory("analytics.edge_wait_s=1")
    base = time.time_ns() - 60_000 * MS
    fleet = SdkServices(server.otlp_http, ("shop",))
    root = fleet.span("shop", "GET /", base, base + 50 * MS, kind=SpanKind.SERVER)
    ctx = otel_trace.set_span_in_context(root)
    db = fleet.tracer("shop").start_span("SELECT", context=ctx, kind=SpanKind.CLIENT, start_time=base + MS,
                                         attributes={"peer.service": "postgres", "server.address": "db-1"})
    db.end(end_time=base + 9 * MS)
    fleet.flush()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the half waits edge_wait_s, then a sweep counts it
        body = dependencies(server)
        if body["edges"]:
            break
        time.sleep(0.2)
    assert [(e["source"], e["target"], e["calls"]) for e in body["edges"]] == [("shop", "postgres", 1)]
    assert {n["name"]: n["virtual"] for n in body["nodes"]} == {"shop": False, "postgres": True}


@pytest.mark.parametrize("params, name", [
    ({"from": "yesterday"}, "from"),
    ({"to": "12:00"}, "to"),
    ({"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "from"),
])
def test_bad_window_is_named(server, params, name):
    r = requests.get(server.url("/api/v1/dependencies"), params=params, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(name)


# --------------------------------------------------------------------------- the tracker itself


class FakeSeries:
    def __init__(self):
        self.ids, self.rows = {}, []

    def series_id(self, key):
        return self.ids.setdefault(key, len(self.ids))

    def add(self, ids, start, duration, error):
        keys = {v: k for k, v in self.ids.items()}
        self.rows += [(keys[i][1:], int(s), int(d), bool(e)) for i, s, d, e in
                      zip(ids.tolist(), start.tolist(), duration.tolist(), error.tolist())]


def batch(*spans):
    """A decoded batch of ``(service, trace, span, parent, kind, start, end, error, attrs)``."""
    req = ExportTraceServiceRequest()
    for service, tid, sid, pid, kind, start, end, error, attrs in spans:
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(otlp_attributes({"service.name": service}))
        sp = rs.scope_spans.add().spans.add(
            trace_id=tid.to_bytes(16, "big"), span_id=sid.to_bytes(8, "big"),
            parent_span_id=pid.to_bytes(8, "big") if pid else b"", kind=kind, name="x",
            start_time_unix_nano=start, end_time_unix_nano=end)
        sp.attributes.extend(otlp_attributes(attrs))
        if error:
            sp.status.code = 2
    return decode_export_request(req.SerializeToString())


CLIENT, SERVER = 3, 2


def test_pairs_within_a_batch_and_across_batches_and_skips_same_service_pairs():
    series = FakeSeries()
    tracker = EdgeTracker(series, wait_s=10, max_pending=100, clock=lambda: 0.0)
    tracker.observe(batch(("a", 1, 10, 0, CLIENT, 100, 200, False, {}),
                          ("b", 1, 11, 10, SERVER, 110, 190, True, {}),  # same batch
                          ("b", 2, 20, 0, CLIENT, 300, 400, False, {}),  # its server comes later
                          ("c", 3, 31, 30, SERVER, 500, 550, False, {}),  # its client comes later
                          ("a", 4, 40, 0, CLIENT, 0, 0, False, {}),  # a pair inside one service
                          ("a", 4, 41, 40, SERVER, 1, 2, False, {})))
    assert series.rows == [(("a", "b", "request"), 100, 100, True)]
    tracker.observe(batch(("c", 2, 21, 20, SERVER, 310, 390, False, {}),
                          ("a", 3, 30, 0, CLIENT, 490, 490, False, {})))  # no client duration
    assert series.rows[1:] == [(("b", "c", "request"), 300, 100, False),
                               (("a", "c", "request"), 490, 50, False)]
    assert tracker.stats()["waiting_clients"] == tracker.stats()["waiting_servers"] == 0
    assert tracker.stats()["same_service"] == 1


def test_waiting_halves_expire_and_the_table_is_bounded():
    now = [0.0]
    series = FakeSeries()
    tracker = EdgeTracker(series, wait_s=5, max_pending=2, clock=lambda: now[0])
    tracker.observe(batch(("a", 1, 10, 0, CLIENT, 100, 200, False, {"server.address": "db", "peer.service": "pg"}),
                          ("a", 2, 20, 0, CLIENT, 100, 150, True, {"server.address": "cache"}),
                          ("a", 3, 30, 0, CLIENT, 100, 150, False, {})))
    # Three halves, room for two: the oldest is given up at once (and names its peer).
    assert series.rows == [(("a", "pg", "request"), 100, 100, False)]
    assert tracker.stats()["evicted"] == 1
    now[0] = 6.0
    # Past the wait: the lone halves are given up before the batch is paired, so the server
    # half of trace 3 finds no client (and waits in turn).
    tracker.observe(batch(("b", 3, 31, 30, SERVER, 110, 140, False, {})))
    assert series.rows[1:] == [(("a", "cache", "request"), 100, 50, True)]
    stats = tracker.stats()
    assert (stats["expired"], stats["peer_edges"]) == (2, 2)
    assert (stats["waiting_clients"], stats["waiting_servers"]) == (0, 1)


def test_one_server_per_client_and_the_last_of_repeated_client_spans_pairs():
    series = FakeSeries()
    tracker = EdgeTracker(series, wait_s=10, max_pending=100, clock=lambda: 0.0)
    tracker.observe(batch(("a", 1, 10, 0, CLIENT, 100, 200, False, {}),
                          ("b", 1, 11, 10, SERVER, 110, 190, False, {}),
                          ("c", 1, 12, 10, SERVER, 120, 180, False, {}),  # a second server: waits
                          ("a", 2, 20, 0, CLIENT, 300, 400, False, {}),  # the same span twice:
                          ("d", 2, 20, 0, CLIENT, 300, 450, True, {}),  # the last one pairs
                          ("b", 2, 21, 20, SERVER, 310, 390, False, {}),
                          ("e", 3, 31, 30, 5, 500, 520, False, {}),  # consumer before its producer
                          ("f", 3, 30, 0, 4, 490, 495, False, {})))
    assert sorted(series.rows) == [(("a", "b", "request"), 100, 100, False),
                                   (("d", "b", "request"), 300, 150, True),
                                   (("f", "e", "messaging"), 490, 5, False)]
    assert (tracker.stats()["waiting_clients"], tracker.stats()["waiting_servers"]) == (0, 1)


def test_bulk_pairs_match_pairing_one_span_at_a_time():
    """Many traces in one batch and the same spans one per batch give the same edges."""
    import random
    rnd = random.Random(7)
    spans = []
    for t in range(1, 60):
        svc = [rnd.choice("abcd") for _ in range(3)]
        kind = rnd.choice([(CLIENT, SERVER), (4, 5)])
        spans.append((svc[0], t, 100 * t, 0, kind[0], 10 * t, 10 * t + rnd.randrange(0, 50), rnd.random() < .2, {}))
        spans.append((svc[1], t, 100 * t + 1, 100 * t, kind[1], 10 * t + 1, 10 * t + 30, rnd.random() < .2, {}))
        spans.append((svc[2], t, 100 * t + 2, 0, CLIENT, 10 * t, 10 * t + 9, False, {"peer.service": "db"}))
    rnd.shuffle(spans)
    whole, single = FakeSeries(), FakeSeries()
    bulk = EdgeTracker(whole, wait_s=10, max_pending=1000, clock=lambda: 0.0)
    one = EdgeTracker(single, wait_s=10, max_pending=1000, clock=lambda: 0.0)
    bulk.observe(batch(*spans))
    for s in spans:
        one.observe(batch(s))
    assert whole.rows and sorted(whole.rows) == sorted(single.rows)
    assert bulk.stats() == one.stats()
