"""/api/v1/sampling (settings: validated, saved, logged) and /api/v1/sampling/stats, the
Prometheus metrics, adaptive probabilities served to SDKs, and the overload controller."""
from __future__ import annotations

import json
import time

import requests

from sampling.traffic import Span, send, trace_id, wait_for


def test_settings_show_every_section(server):
    doc = requests.get(server.url("/api/v1/sampling")).json()
    assert doc["head"]["default_strategy"] == {"type": "probabilistic", "param": 1.0}
    assert doc["tail"]["enabled"] is False and doc["tail"]["decision_wait_s"] == 10.0
    assert doc["tail"]["policies"] == [{"name": "errors", "type": "status_code",
                                        "status_codes": ["ERROR"]}]
    assert doc["adaptive"]["enabled"] is False and doc["adaptive"]["target_traces_per_s"] == 1.0


def test_invalid_changes_are_refused_naming_the_path_and_change_nothing(server):
    before = requests.get(server.url("/api/v1/sampling")).json()
    bad = [
        ({"tail": {"decision_wait_s": 0}}, "tail.decision_wait_s: must be > 0"),
        ({"tail": {"policies": [{"name": "x", "type": "latency", "threshold_ms": -1}]}},
         "tail.policies[0].threshold_ms"),
        ({"tail": {"policies": [{"name": "x", "type": "nope"}]}}, "tail.policies[0].type"),
        ({"adaptive": {"min_probability": 2}}, "adaptive.min_probability: a probability must be 0..1"),
        ({"adaptive": {"turbo": True}}, "adaptive.turbo: unknown setting"),
        ({"head": {"default_strategy": {"type": "probabilistic", "param": 1.5}}}, "param"),
        ({"heads": {}}, "heads: unknown section"),
        ([1, 2], "expected a JSON object"),
    ]
    for body, message in bad:
        r = requests.put(server.url("/api/v1/sampling"), json=body)
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["error"]["message"], (body, r.text)
    r = requests.put(server.url("/api/v1/sampling"), data=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert requests.get(server.url("/api/v1/sampling")).json() == before


def test_a_tail_change_applies_without_restart_and_is_saved(server_factory, tmp_path):
    data = tmp_path / "data"
    server = server_factory(data_dir=data)
    r = requests.put(server.url("/api/v1/sampling"), json={"tail": {
        "enabled": True, "decision_wait_s": 0.5,
        "policies": [{"name": "vip", "type": "string_attribute", "key": "tier", "values": ["gold"]}]},
        "head": {"default_strategy": {"type": "probabilistic", "param": 0}}})
    assert r.status_code == 200, r.text
    gold, plain = trace_id(1, "api"), trace_id(2, "api")
    send(server, [Span(gold, 1, attrs={"tier": "gold"}), Span(plain, 1)])
    assert wait_for(lambda: requests.get(server.url("/api/v1/sampling/stats")).json()
                    ["services"].get("svc", {}).get("decisions", {}).get("count") == 2, 10)
    log = server.log()
    assert "tail.enabled: false → true" in log and "tail.decision_wait_s: 10.0 → 0.5" in log
    saved = json.loads((data / "sampling.json").read_text())
    assert saved["settings"]["tail"]["policies"][0]["name"] == "vip"
    server.stop()
    again = server_factory(data_dir=data)
    assert requests.get(again.url("/api/v1/sampling")).json()["tail"]["policies"][0]["name"] == "vip"


def test_stats_and_metrics_report_what_was_received_kept_and_dropped(server_factory):
    server = server_factory("sampling.default_rate=0.5")
    ids = [trace_id(i, "stats") for i in range(400)]
    send(server, [Span(t, 1, service="shop") for t in ids])
    stats = requests.get(server.url("/api/v1/sampling/stats"), params={"window": "5m"}).json()
    shop = stats["services"]["shop"]
    assert shop["received"] == {"spans": 400, "traces": 400, "traces_per_s": shop["received"]["traces_per_s"]}
    assert shop["kept"]["traces"] + shop["dropped"]["traces"] == 400
    assert shop["dropped"]["by_reason"] == {"head": shop["dropped"]["traces"]}
    assert 150 < shop["kept"]["traces"] < 250
    assert shop["target"]["head_probability"] == 0.5
    assert abs(shop["kept_fraction"] - shop["kept"]["traces"] / 400) < 1e-9
    assert shop["represented_traces"] == shop["kept"]["traces"] * 2
    only = requests.get(server.url("/api/v1/sampling/stats"), params={"service": "none"}).json()
    assert only["services"] == {}
    assert requests.get(server.url("/api/v1/sampling/stats"), params={"window": "soon"}).status_code == 400
    metrics = requests.get(server.url("/metrics")).text
    kept = shop["kept"]["traces"]
    assert f'clew_sampling_traces_total{{decision="kept",reason="head",service="shop"}} {kept}.0' in metrics
    assert "clew_sampling_pending_traces 0.0" in metrics


def test_adaptive_probabilities_are_served_to_sdks(server_factory):
    server = server_factory("sampling.adaptive=true", "sampling.adaptive_interval_s=1",
                            "sampling.target_traces_per_s=10")
    # a service not seen yet starts at the initial probability, as in Jaeger
    fresh = requests.get(server.url("/api/sampling"), params={"service": "new"}).json()
    assert fresh["operationSampling"]["defaultSamplingProbability"] == 0.001
    # 200 root spans a second of "checkout /pay" for three seconds: 20x the target
    for k in range(3):
        send(server, [Span(trace_id(i, f"adaptive{k}"), 1, service="checkout", name="/pay")
                      for i in range(200)])
        time.sleep(1.0)

    def probability():
        body = requests.get(server.url("/api/sampling"), params={"service": "checkout"}).json()
        ops = {o["operation"]: o["probabilisticSampling"]["samplingRate"]
               for o in body.get("operationSampling", {}).get("perOperationStrategies", [])}
        return ops.get("/pay")
    p = wait_for(lambda: (probability() or 1) < 0.5 and probability(), 5)
    assert p, "an adaptive probability below 1 for the busy operation"
    stats = requests.get(server.url("/api/v1/sampling/stats")).json()
    rows = {(r["service"], r["operation"]): r for r in stats["adaptive"]}
    assert rows[("checkout", "/pay")]["probability"] == p
    assert stats["services"]["checkout"]["sdk_polled_s_ago"] is not None


def test_under_overload_the_probabilistic_baseline_is_lowered_but_errors_are_kept(server_factory, tmp_path):
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps([
        {"name": "errors", "type": "status_code", "status_codes": ["ERROR"]},
        {"name": "baseline", "type": "probabilistic", "rate": 1.0}]))
    server = server_factory("sampling.tail=true", "sampling.decision_wait_s=0.3",
                            "sampling.root_grace_s=0", f"sampling.tail_policies_file={policies}",
                            "sampling.default_rate=0", "sampling.adaptive_interval_s=1",
                            "sampling.target_stored_spans_per_s=50")
    errors = set()
    for k in range(6):
        spans = []
        for i in range(300):
            tid = trace_id(i, f"load{k}")
            err = i % 30 == 0
            errors.add(tid) if err else None
            spans.append(Span(tid, 1, error=err))
        send(server, spans)
        time.sleep(0.6)
    stats = wait_for(lambda: (s := requests.get(server.url("/api/v1/sampling/stats")).json())
                     ["pending_traces"] == 0 and s, 10)
    assert stats["baseline_factor"] < 0.5
    svc = stats["services"]["svc"]
    assert svc["kept"]["by_reason"]["errors"] == len(errors)  # never reduced
    assert svc["kept"]["by_reason"]["baseline"] < 1800 * 0.7
