"""Tail sampling through the real OTLP receiver: policies over whole traces whose spans arrive
out of order and late, held spans readable by ID and durable across kill -9, dropped traces gone
from search and by ID, late spans following the decision, and early decisions past the bound."""
from __future__ import annotations

import json
import time

import requests

from sampling.traffic import Span, by_id, send, spec_keeps, stored_ids, trace_id, wait_for

POLICIES = [
    {"name": "errors", "type": "status_code", "status_codes": ["ERROR"]},
    {"name": "slow", "type": "latency", "threshold_ms": 500},
    {"name": "vip", "type": "string_attribute", "key": "customer.tier", "values": ["gold", "plat.*"],
     "regex": True},
    {"name": "big", "type": "span_count", "min_spans": 6},
    {"name": "server-errors", "type": "numeric_attribute", "key": "http.status_code", "min": 500,
     "max": 599},
    {"name": "debug", "type": "boolean_attribute", "key": "debug", "value": True},
]


def tail_server(server_factory, tmp_path, *extra, policies=POLICIES, wait="1", data=None):
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(policies))
    return server_factory("sampling.tail=true", "sampling.default_rate=0",
                          f"sampling.tail_policies_file={path}", f"sampling.decision_wait_s={wait}",
                          "sampling.root_grace_s=0.5", *extra, data_dir=data)


def trace(tid: bytes, service: str = "svc", n: int = 3, **root) -> list[Span]:
    """A root (span 1) and ``n - 1`` children; ``root`` fields go on the last child."""
    spans = [Span(tid, 1, name="GET /", service=service)]
    for k in range(2, n + 1):
        spans.append(Span(tid, k, name=f"child{k}", service=service, parent=1))
    for key, value in root.items():
        setattr(spans[-1], key, value)
    return spans


def test_each_policy_keeps_its_traces_whole_and_drops_the_rest(server_factory, tmp_path):
    server = tail_server(server_factory, tmp_path)
    cases = {
        "errors": trace(trace_id(1, "p"), error=True),
        "slow": trace(trace_id(2, "p"), duration_ms=800),
        "vip": trace(trace_id(3, "p"), attrs={"customer.tier": "platinum"}),
        "big": trace(trace_id(4, "p"), n=7),
        "server-errors": trace(trace_id(5, "p"), attrs={"http.status_code": 503}),
        "debug": trace(trace_id(6, "p"), attrs={"debug": True}),
        "dropped-tier": trace(trace_id(7, "p"), attrs={"customer.tier": "silver"}),
        "dropped-status": trace(trace_id(8, "p"), attrs={"http.status_code": 404}),
        "dropped-plain": trace(trace_id(9, "p")),
    }
    # out of order: every child first (in one request per trace), the roots together afterwards
    for spans in cases.values():
        send(server, spans[1:])
    for name, spans in cases.items():
        assert by_id(server, spans[0].trace) == len(spans) - 1, f"{name}: held spans readable by ID"
    assert stored_ids(server, "svc") == set(), "held traces are not searchable"
    send(server, [spans[0] for spans in cases.values()])
    kept = {spans[0].trace.hex() for name, spans in cases.items() if not name.startswith("dropped")}
    assert wait_for(lambda: stored_ids(server, "svc") == kept, 15), stored_ids(server, "svc")
    for name, spans in cases.items():
        want = 0 if name.startswith("dropped") else len(spans)
        assert wait_for(lambda: by_id(server, spans[0].trace) == want, 10), name
    stats = requests.get(server.url("/api/v1/sampling/stats")).json()["services"]["svc"]
    assert stats["kept"]["by_reason"] == {name: 1 for name in cases if not name.startswith("dropped")}
    assert stats["dropped"]["traces"] == 3


def test_late_spans_follow_the_decision(server_factory, tmp_path):
    server = tail_server(server_factory, tmp_path)
    keep, drop = trace_id(1, "late"), trace_id(2, "late")
    send(server, trace(keep, error=True) + trace(drop))
    assert wait_for(lambda: by_id(server, drop) == 0 and stored_ids(server, "svc") == {keep.hex()}, 15)
    send(server, [Span(keep, 10, name="late", parent=1), Span(drop, 10, name="late", parent=1)])
    assert by_id(server, keep) == 4  # stored at once, and searchable
    assert by_id(server, drop) == 0  # not stored
    r = requests.get(server.url("/api/traces"), params={"service": "svc", "operation": "late"})
    assert [t["traceID"] for t in r.json()["data"]] == [keep.hex()]
    svc = requests.get(server.url("/api/v1/sampling/stats")).json()["services"]["svc"]
    assert (svc["kept"]["traces"], svc["dropped"]["traces"]) == (1, 1)  # each trace counted once
    assert (svc["kept"]["spans"], svc["dropped"]["spans"]) == (4, 4)


def test_spans_arriving_during_a_decision_wait_restart_the_quiet_period(server_factory, tmp_path):
    server = tail_server(server_factory, tmp_path, wait="2")
    tid = trace_id(1, "quiet")
    spans = trace(tid, n=4)
    for s in spans:  # one moment, so the latency policy does not keep it
        s.at_ns = time.time_ns()
    send(server, spans[1:2])
    for s in spans[2:]:  # keeps arriving more often than decision_wait: not decided yet
        time.sleep(1.0)
        send(server, [s])
        assert by_id(server, tid) > 0
    # never a root, no policy keeps it: decided (and dropped) 2 s after the last span
    assert wait_for(lambda: by_id(server, tid) == 0, 10)


def test_held_spans_survive_kill_9_and_are_decided_after_restart(server_factory, tmp_path):
    data = tmp_path / "data"
    server = tail_server(server_factory, tmp_path, wait="600", data=data)
    error, plain = trace_id(1, "kill"), trace_id(2, "kill")
    send(server, trace(error, error=True) + trace(plain))
    assert by_id(server, error) == 3 and by_id(server, plain) == 3
    server.kill()
    again = tail_server(server_factory, tmp_path, wait="1", data=data)
    assert by_id(again, error) == 3 and by_id(again, plain) == 3  # still held, still readable
    assert wait_for(lambda: stored_ids(again, "svc") == {error.hex()} and by_id(again, plain) == 0, 15)
    assert by_id(again, error) == 3


def test_past_the_pending_bound_the_oldest_traces_are_decided_early(server_factory, tmp_path):
    server = tail_server(server_factory, tmp_path, "sampling.max_pending_traces=50", wait="600")
    ids = [trace_id(i, "bound") for i in range(400)]
    errors = {t.hex() for i, t in enumerate(ids) if i % 10 == 0}
    for i in range(0, 400, 40):
        spans = []
        for k in range(i, i + 40):
            spans += trace(ids[k], error=k % 10 == 0)[1:]  # no roots: only the bound decides
        send(server, spans)
    assert wait_for(lambda: requests.get(server.url("/api/v1/sampling/stats")).json()
                    ["pending_traces"] <= 50, 10)
    stats = requests.get(server.url("/api/v1/sampling/stats")).json()
    decided = stats["services"]["svc"]["decisions"]
    assert decided["early"] >= 350 and decided["count"] == decided["early"]
    # every error trace is kept (whole) or still held; nothing else is kept; none is lost
    kept = stored_ids(server, "svc")
    assert kept <= errors
    held = {t.hex() for t in ids if t.hex() not in kept and by_id(server, t)}
    assert len(held) <= 50
    assert errors <= kept | held
    for hexid in kept:
        assert by_id(server, bytes.fromhex(hexid)) == 2


def test_errors_always_kept_at_one_percent_over_100k_traces(server_factory, tmp_path):
    """Head rate 1% with tail sampling on: every trace with an error span is kept, and the other
    traces are kept at 1% (within the binomial 3σ band, and exactly the threshold's set)."""
    server = tail_server(server_factory, tmp_path, "sampling.default_rate=0.01",
                         policies=[{"name": "errors", "type": "status_code", "status_codes": ["ERROR"]}])
    n = 100_000
    session = requests.Session()
    errors, plain_kept = set(), set()
    for start in range(0, n, 2_000):
        spans = []
        for i in range(start, start + 2_000):
            tid = trace_id(i, "100k")
            err = i % 50 == 7  # 2%
            spans += [Span(tid, 1, name="GET /"), Span(tid, 2, name="db", parent=1, error=err)]
            if err:
                errors.add(tid.hex())
            elif spec_keeps(tid, 0.01):
                plain_kept.add(tid.hex())
        send(server, spans, session)
    assert len(errors) == 2_000
    plain = n - len(errors)
    sigma = (plain * 0.01 * 0.99) ** 0.5
    assert abs(len(plain_kept) - plain * 0.01) <= 3 * sigma  # the ID set itself is fair

    def settled():
        s = requests.get(server.url("/api/v1/sampling/stats")).json()
        return s["pending_traces"] == 0 and s["services"]["svc"]["decisions"]["count"] == n and s
    stats = wait_for(settled, 120, 0.5)
    assert stats, "every trace decided"
    svc = stats["services"]["svc"]
    assert svc["kept"]["by_reason"]["errors"] == 2_000
    kept_plain = svc["kept"]["by_reason"].get("head", 0)
    assert abs(kept_plain - plain * 0.01) <= 3 * sigma
    assert stored_ids(server, "svc") == errors | plain_kept


def test_combined_probabilistic_and_rate_limited_policies_through_ingest(server_factory, tmp_path):
    policies = [
        {"name": "slow-gold", "type": "and", "policies": [
            {"type": "string_attribute", "key": "tier", "values": ["gold"]},
            {"type": "latency", "threshold_ms": 100}]},
        {"name": "half", "type": "probabilistic", "rate": 0.5},
        {"name": "limited", "type": "rate_limiting", "traces_per_s": 5},
    ]
    server = tail_server(server_factory, tmp_path, policies=policies)
    started = time.monotonic()
    slow_gold = trace(trace_id(0, "mix"), attrs={"tier": "gold"}, duration_ms=300)
    fast_gold = trace(trace_id(1, "mix"), attrs={"tier": "gold"})
    plain = [trace(trace_id(i, "mix")) for i in range(2, 202)]
    send(server, [s for t in [slow_gold, fast_gold, *plain] for s in t])

    def settled():
        s = requests.get(server.url("/api/v1/sampling/stats")).json()
        return s["pending_traces"] == 0 and s["services"]["svc"]["decisions"]["count"] == 202 and s
    stats = wait_for(settled, 15)
    elapsed = time.monotonic() - started
    by = stats["services"]["svc"]["kept"]["by_reason"]
    half = {t[0].trace.hex() for t in [fast_gold, *plain] if spec_keeps(t[0].trace, 0.5)}
    assert by["slow-gold"] == 1
    assert by["half"] == len(half)
    assert 1 <= by.get("limited", 0) <= 5 + 5 * elapsed
    kept = stored_ids(server, "svc")
    assert slow_gold[0].trace.hex() in kept and half <= kept
    assert len(kept) == 1 + len(half) + by.get("limited", 0)
