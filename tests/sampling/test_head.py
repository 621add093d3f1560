"""Head sampling through the real OTLP receiver: which traces a rate keeps (the OpenTelemetry
specification's threshold rule as judge), per-service and per-operation rates, run-time changes
through /api/v1/sampling that survive a restart, and tracestate randomness and thresholds."""
from __future__ import annotations

import json

import requests

from sampling.traffic import Span, by_id, send, spec_keeps, stored_ids, trace_id

N = 2_000


def roots(n: int, salt: str, service: str = "svc", name: str = "op") -> list[Span]:
    return [Span(trace_id(i, salt), 1, name=name, service=service) for i in range(n)]


def test_a_ten_percent_rate_keeps_exactly_the_traces_the_threshold_says(server_factory):
    server = server_factory("sampling.default_rate=0.1")
    spans = roots(N, "ten")
    for i in range(0, N, 500):
        send(server, spans[i:i + 500])
    expected = {s.trace.hex() for s in spans if spec_keeps(s.trace, 0.1)}
    assert 140 < len(expected) < 260  # the ID set is well spread (not a property of Clew)
    assert stored_ids(server, "svc") == expected
    dropped = next(s.trace for s in spans if not spec_keeps(s.trace, 0.1))
    assert by_id(server, dropped) == 0


def test_per_service_and_per_operation_rates(server_factory, tmp_path):
    strategies = tmp_path / "strategies.json"
    strategies.write_text(json.dumps({
        "default_strategy": {"type": "probabilistic", "param": 0.1},
        "service_strategies": [
            {"service": "checkout", "type": "probabilistic", "param": 0.5,
             "operation_strategies": [{"operation": "/health", "type": "probabilistic", "param": 0.0}]},
            {"service": "search", "type": "probabilistic", "param": 0.2},
        ]}))
    server = server_factory(f"sampling.strategies_file={strategies}")
    sent = {("checkout", "pay"): 0.5, ("checkout", "/health"): 0.0, ("search", "find"): 0.2,
            ("other", "x"): 0.1}
    expected: dict[str, set] = {}
    for (service, op), p in sent.items():
        spans = roots(600, f"{service}{op}", service=service, name=op)
        send(server, spans)
        expected.setdefault(service, set()).update(s.trace.hex() for s in spans if spec_keeps(s.trace, p))
    for service, ids in expected.items():
        assert stored_ids(server, service) == ids, service


def test_a_rate_change_applies_to_the_next_trace_and_survives_restart(server_factory, tmp_path):
    data = tmp_path / "data"
    server = server_factory(data_dir=data)
    first = roots(300, "before")
    send(server, first)
    assert len(stored_ids(server, "svc")) == 300  # the default keeps everything

    r = requests.put(server.url("/api/v1/sampling"), json={
        "head": {"default_strategy": {"type": "probabilistic", "param": 0.25},
                 "service_strategies": []}})
    assert r.status_code == 200, r.text
    assert r.json()["head"]["default_strategy"]["param"] == 0.25
    second = roots(400, "after")
    send(server, second)
    kept = {s.trace.hex() for s in second if spec_keeps(s.trace, 0.25)}
    assert stored_ids(server, "svc") == {s.trace.hex() for s in first} | kept
    assert "head.default_strategy.param: 1.0 → 0.25" in server.log()
    server.stop()

    again = server_factory(data_dir=data)
    assert again_settings(again)["head"]["default_strategy"]["param"] == 0.25
    third = roots(400, "restarted")
    send(again, third)
    kept |= {s.trace.hex() for s in third if spec_keeps(s.trace, 0.25)}
    assert stored_ids(again, "svc") == {s.trace.hex() for s in first} | kept


def again_settings(server) -> dict:
    r = requests.get(server.url("/api/v1/sampling"))
    assert r.status_code == 200
    return r.json()


def test_tracestate_randomness_and_an_sdk_threshold(server_factory):
    """``ot=rv`` replaces the trace ID's randomness; ``ot=th`` (the SDK's own threshold) decides
    how many traces a kept one stands for: 1/min(p_sdk, p_ours)."""
    server = server_factory("sampling.default_rate=0.25")
    lo, hi = "00000000000001", "ffffffffffffff"  # randomness that any rate below 1 drops / keeps
    ids = [trace_id(i, "rv") for i in range(4)]
    send(server, [Span(ids[0], 1, tracestate=f"ot=rv:{lo}"),  # dropped though its ID may pass
                  Span(ids[1], 1, tracestate=f"ot=th:8;rv:{hi}", service="sdk-half"),  # p_sdk .5
                  Span(ids[2], 1, tracestate=f"ot=th:e;rv:{hi}", service="sdk-eighth"),  # p_sdk 1/8
                  Span(ids[3], 1, tracestate=f"vendor=x,ot=rv:{hi}", service="plain")])
    assert by_id(server, ids[0]) == 0
    assert all(by_id(server, t) == 1 for t in ids[1:])
    stats = requests.get(server.url("/api/v1/sampling/stats")).json()["services"]
    assert stats["sdk-half"]["represented_traces"] == 4.0  # kept at our 1/4 (below the SDK's 1/2)
    assert stats["sdk-eighth"]["represented_traces"] == 8.0  # the SDK's 1/8 is the lower rate
    assert stats["plain"]["represented_traces"] == 4.0
    assert stats["svc"]["dropped"]["spans"] == 1
