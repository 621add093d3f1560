"""Alerting: rules over the RED metrics fire to a real webhook receiver, resolve, retry, persist.

The server runs with one-second metric buckets, flushes and evaluations, so a rule with a
three-second window reacts within seconds; spans come from OpenTelemetry SDK tracer providers
over OTLP/HTTP; notifications go to an HTTP server on loopback run by the test."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from collector.analytics.alerts import Alerting, parse_rule, RuleError
from collector.analytics.series import SeriesStore
from collector.config import Config, load_config
from conftest import SdkServices, hex_trace_id

FAST = ("analytics.flush_interval_s=1", "analytics.bucket_s=1", "alerting.evaluation_interval_s=1",
        "alerting.retry_backoff_s=0.3")
RULES = "/api/v1/alerts/rules"
MS = 1_000_000


class Receiver:
    """An Alertmanager-webhook receiver on loopback: records every POST; the first ``fail``
    requests are answered 500."""

    def __init__(self, fail: int = 0):
        self.posts: list[dict] = []  # {"body", "status", "at"}
        self.fail = fail
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    status = 500 if outer.fail > 0 else 200
                    outer.fail -= 1
                    outer.posts.append({"body": json.loads(body), "status": status, "at": time.monotonic(),
                                        "type": self.headers.get("Content-Type")})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self, status: str | None = None) -> list[dict]:
        with self.lock:
            return [p["body"] for p in self.posts
                    if p["status"] == 200 and (status is None or p["body"]["status"] == status)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def wait_for(what: str, check, timeout: float = 30.0, step=None):
    """Poll ``check`` until it returns something truthy (``step`` runs between polls)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if step is not None:
            step()
        time.sleep(0.1)


def spans(svc: SdkServices, service: str, *, error: bool = False, duration_ms: float = 1.0,
          name: str = "work", count: int = 1) -> list[str]:
    """``count`` one-span traces of ``service`` starting now; their trace IDs."""
    from opentelemetry.trace import Status, StatusCode
    ids = []
    for _ in range(count):
        start = time.time_ns()
        s = svc.tracer(service).start_span(name, start_time=start)
        if error:
            s.set_status(Status(StatusCode.ERROR, "boom"))
        s.end(end_time=start + int(duration_ms * MS))
        ids.append(hex_trace_id(s))
    return ids


def alert_of(srv, rule_id: str) -> dict:
    alerts = requests.get(srv.url("/api/v1/alerts")).json()["alerts"]
    return next(a for a in alerts if a["ruleId"] == rule_id)


def add_rule(srv, **rule) -> dict:
    r = requests.post(srv.url(RULES), json=rule)
    assert r.status_code == 201, r.text
    return r.json()


def check_alertmanager_shape(msg: dict, status: str, rule: dict, base_url: str) -> dict:
    assert msg["version"] == "4"
    assert msg["status"] == status
    assert isinstance(msg["groupKey"], str) and msg["groupKey"]
    assert msg["receiver"] and isinstance(msg["groupLabels"], dict)
    assert msg["externalURL"] == base_url
    assert msg["commonLabels"]["alertname"] == rule["name"]
    assert isinstance(msg["commonAnnotations"], dict)
    [alert] = msg["alerts"]
    assert set(alert) >= {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert alert["status"] == status
    labels = alert["labels"]
    assert labels["alertname"] == rule["name"] and labels["service"] == rule["service"]
    assert labels["severity"] in ("warning", rule["labels"].get("severity"))
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    assert alert["startsAt"].endswith("Z")
    if status == "firing":
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    else:
        assert alert["endsAt"] > alert["startsAt"]
    assert alert["generatorURL"].startswith(base_url)
    assert all(isinstance(v, str) for v in {**labels, **alert["annotations"]}.values())
    return alert


# --------------------------------------------------------------------------- over a real server


def test_error_rate_rule_fires_with_examples_and_resolves(server_factory, receiver):
    srv = server_factory(*FAST)
    base = srv.url("")
    rule = add_rule(srv, name="checkout errors", type="error_rate", service="checkout", threshold=0.5,
                    window="3s", labels={"severity": "page", "team": "shop"},
                    annotations={"runbook": "https://runbooks.example/checkout"}, webhooks=[receiver.url])
    svc = SdkServices(srv.otlp_http, ["checkout"])
    spans(svc, "checkout", count=3)  # healthy: the rule stays inactive
    wait_for("an evaluation that saw the healthy calls", lambda: alert_of(srv, rule["id"])["calls"] >= 3)
    assert alert_of(srv, rule["id"])["state"] == "inactive" and receiver.posts == []

    failed: list[str] = []
    wait_for("the firing notification", lambda: receiver.delivered("firing"),
             step=lambda: failed.extend(spans(svc, "checkout", error=True, count=2)))
    msg = receiver.delivered("firing")[0]
    alert = check_alertmanager_shape(msg, "firing", rule, base)
    assert alert["labels"]["severity"] == "page" and alert["labels"]["team"] == "shop"
    assert alert["labels"]["rule_id"] == rule["id"]
    assert alert["annotations"]["runbook"] == "https://runbooks.example/checkout"
    assert float(alert["annotations"]["value"]) > 0.5
    examples = alert["annotations"]["example_trace_ids"].split(",")
    assert 1 <= len(examples) <= 5 and set(examples) <= set(failed), examples
    for tid in examples:
        assert requests.get(srv.url(f"/api/v3/traces/{tid}")).status_code == 200
    assert alert["annotations"]["example_trace_urls"].split(" ")[0] == f"{base}/trace/{examples[0]}"
    state = alert_of(srv, rule["id"])
    assert state["state"] == "firing" and state["value"] > 0.5 and state["exampleTraceIds"]

    # the errors stop; healthy traffic goes on; once the window has passed the alert resolves
    wait_for("the resolved notification", lambda: receiver.delivered("resolved"),
             step=lambda: spans(svc, "checkout", count=2))
    resolved = receiver.delivered("resolved")[0]
    r_alert = check_alertmanager_shape(resolved, "resolved", rule, base)
    assert r_alert["fingerprint"] == alert["fingerprint"] and r_alert["startsAt"] == alert["startsAt"]
    assert resolved["groupKey"] == msg["groupKey"]
    assert len(receiver.delivered("firing")) == 1, "one notification per transition"
    assert alert_of(srv, rule["id"])["state"] == "inactive"

    history = requests.get(srv.url("/api/v1/alerts/history"), params={"ruleId": rule["id"]}).json()["entries"]
    moves = [(e["from"], e["to"]) for e in reversed(history) if e["event"] == "transition"]
    assert moves == [("inactive", "firing"), ("firing", "resolved")]
    sent = [(e["status"], e["outcome"]) for e in reversed(history) if e["event"] == "notification"]
    assert sent == [("firing", "delivered"), ("resolved", "delivered")]
    assert history[0]["time"] >= history[-1]["time"], "newest first"
    svc.flush()


def test_for_keeps_a_rule_pending(server_factory, receiver):
    srv = server_factory(*FAST)
    rule = add_rule(srv, name="slow burn", type="error_rate", service="api", threshold=0.1, window="3s",
                    **{"for": "1h"}, webhooks=[receiver.url])
    svc = SdkServices(srv.otlp_http, ["api"])
    pending = wait_for("the pending state", lambda: alert_of(srv, rule["id"])["state"] == "pending"
                       and alert_of(srv, rule["id"]), step=lambda: spans(svc, "api", error=True))
    assert pending["activeAt"] == pending["since"]
    # several more evaluations with the condition still true: still pending, nothing sent
    stamps = {pending["lastEvaluation"]}

    def evaluated_three_more_times():
        stamps.add(alert_of(srv, rule["id"])["lastEvaluation"])
        return len(stamps) >= 4
    wait_for("three more evaluations", evaluated_three_more_times, step=lambda: spans(svc, "api", error=True))
    state = alert_of(srv, rule["id"])
    assert state["state"] == "pending" and state["activeAt"] == pending["activeAt"]
    assert state["value"] > 0.1
    assert receiver.posts == []
    svc.flush()


def test_latency_rule_fires_with_the_slow_traces(server_factory, receiver):
    srv = server_factory(*FAST)
    rule = add_rule(srv, name="checkout slow", type="latency", service="shop", operation="checkout",
                    quantile=0.5, threshold=200, window="3s", webhooks=[receiver.url])
    svc = SdkServices(srv.otlp_http, ["shop"])
    fast = spans(svc, "shop", name="checkout", duration_ms=5, count=3)
    fast += spans(svc, "shop", name="browse", duration_ms=900, count=3)  # another operation: not counted
    wait_for("an evaluation of the fast calls", lambda: alert_of(srv, rule["id"])["calls"] >= 3)
    assert alert_of(srv, rule["id"])["state"] == "inactive"
    slow: list[str] = []
    wait_for("the firing notification", lambda: receiver.delivered("firing"),
             step=lambda: slow.extend(spans(svc, "shop", name="checkout", duration_ms=400, count=2)))
    alert = check_alertmanager_shape(receiver.delivered("firing")[0], "firing", rule, srv.url(""))
    assert alert["labels"]["operation"] == "checkout"
    assert 300 < float(alert["annotations"]["value"]) < 500  # the median is a 400 ms call (±0.5 %)
    examples = alert["annotations"]["example_trace_ids"].split(",")
    assert examples and set(examples) <= set(slow), "the examples are the slow checkouts"
    svc.flush()


def test_missing_rule_fires_when_a_service_goes_quiet(server_factory, receiver):
    srv = server_factory(*FAST)
    rule = add_rule(srv, name="batch gone", type="missing", service="batch", window="3s",
                    webhooks=[receiver.url])
    svc = SdkServices(srv.otlp_http, ["batch"])
    spans(svc, "batch")
    wait_for("an evaluation that saw the batch's spans",
             lambda: (alert_of(srv, rule["id"])["value"] or 0) >= 1, step=lambda: spans(svc, "batch"))
    assert receiver.posts == [] and alert_of(srv, rule["id"])["state"] == "inactive"
    # the service stops sending: once the window has passed without a span, the rule fires
    wait_for("the firing notification", lambda: receiver.delivered("firing"))
    alert = check_alertmanager_shape(receiver.delivered("firing")[0], "firing", rule, srv.url(""))
    assert alert["labels"]["type"] == "missing" and alert["annotations"]["value"] == "0"
    # it comes back: resolved
    wait_for("the resolved notification", lambda: receiver.delivered("resolved"),
             step=lambda: spans(svc, "batch"))
    svc.flush()


def test_failing_webhook_is_retried_with_back_off_and_delivered_once(server_factory):
    receiver = Receiver(fail=2)
    try:
        srv = server_factory(*FAST)
        rule = add_rule(srv, name="retry me", type="error_rate", service="pay", threshold=0.2, window="3s",
                        webhooks=[receiver.url])
        svc = SdkServices(srv.otlp_http, ["pay"])
        wait_for("the delivered notification", lambda: receiver.delivered("firing"),
                 step=lambda: spans(svc, "pay", error=True))
        time.sleep(1.5)  # room for a wrong extra delivery to show up
        with receiver.lock:
            posts = list(receiver.posts)
        assert [p["status"] for p in posts] == [500, 500, 200]
        assert posts[0]["body"] == posts[1]["body"] == posts[2]["body"], "the same notification, retried"
        assert posts[0]["type"] == "application/json"
        gaps = [b["at"] - a["at"] for a, b in zip(posts, posts[1:])]
        assert gaps[0] >= 0.3 * 0.9 and gaps[1] >= 0.6 * 0.9, f"back-off doubles from 0.3 s: {gaps}"
        history = requests.get(srv.url("/api/v1/alerts/history"), params={"ruleId": rule["id"]}).json()["entries"]
        attempts = [(e["attempt"], e["outcome"], e.get("httpStatus"))
                    for e in reversed(history) if e["event"] == "notification"]
        assert attempts == [(1, "retrying", 500), (2, "retrying", 500), (3, "delivered", 200)]
        svc.flush()
    finally:
        receiver.close()


def test_rules_and_history_survive_a_restart(server_factory, tmp_path):
    data = tmp_path / "data"
    srv = server_factory(*FAST, data_dir=data)
    a = add_rule(srv, id="errors-1", name="errors", type="error_rate", service="x", threshold=0.05)
    b = add_rule(srv, name="spike", type="latency_spike", service="x", operation="GET /", kind="server",
                 factor=3, baseline="1d", window="10m", **{"for": "2m"}, enabled=False,
                 labels={"severity": "critical"}, annotations={"summary": "x is slow"},
                 webhooks=["https://hooks.example/alerts"])
    assert b["id"].startswith("rule-") and b["quantile"] == 0.95
    assert (data / "alerts" / "rules.json").exists()
    before = requests.get(srv.url(RULES)).json()["rules"]
    assert [r["id"] for r in before] == ["errors-1", b["id"]]
    assert srv.stop() == 0
    srv = server_factory(*FAST, data_dir=data)
    assert requests.get(srv.url(RULES)).json()["rules"] == before
    assert requests.get(srv.url(f"{RULES}/errors-1")).json() == a
    history = requests.get(srv.url("/api/v1/alerts/history")).json()["entries"]
    assert [(e["event"], e["action"], e["ruleId"]) for e in history] == [
        ("rule", "create", b["id"]), ("rule", "create", "errors-1")]
    assert {x["ruleId"]: x["state"] for x in requests.get(srv.url("/api/v1/alerts")).json()["alerts"]} == {
        "errors-1": "inactive", b["id"]: "inactive"}


BAD_RULES = [
    ({}, "name"),
    ({"name": "x", "type": "errors", "service": "s"}, "type"),
    ({"name": "x", "type": "error_rate", "threshold": 0.1}, "service"),
    ({"name": "x", "type": "error_rate", "service": "s"}, "threshold"),
    ({"name": "x", "type": "error_rate", "service": "s", "threshold": 1.5}, "threshold"),
    ({"name": "x", "type": "error_rate", "service": "s", "threshold": "high"}, "threshold"),
    ({"name": "x", "type": "latency", "service": "s", "threshold": -3}, "threshold"),
    ({"name": "x", "type": "latency", "service": "s", "threshold": 100, "quantile": 1.5}, "quantile"),
    ({"name": "x", "type": "error_rate", "service": "s", "threshold": 0.1, "quantile": 0.9}, "quantile"),
    ({"name": "x", "type": "latency_spike", "service": "s"}, "factor"),
    ({"name": "x", "type": "latency_spike", "service": "s", "factor": 2, "baseline": "yesterday"}, "baseline"),
    ({"name": "x", "type": "throughput_drop", "service": "s"}, "threshold"),
    ({"name": "x", "type": "throughput_drop", "service": "s", "threshold": 1, "fraction": 0.5}, "threshold"),
    ({"name": "x", "type": "throughput_drop", "service": "s", "fraction": 2}, "fraction"),
    ({"name": "x", "type": "missing", "service": "s", "window": "5 minutes"}, "window"),
    ({"name": "x", "type": "missing", "service": "s", "window": "2d"}, "window"),
    ({"name": "x", "type": "missing", "service": "s", "for": "-1m"}, "for"),
    ({"name": "x", "type": "missing", "service": "s", "kind": "sideways"}, "kind"),
    ({"name": "x", "type": "missing", "service": "s", "labels": {"service": "y"}}, "labels.service"),
    ({"name": "x", "type": "missing", "service": "s", "labels": {"team": 3}}, "labels.team"),
    ({"name": "x", "type": "missing", "service": "s", "annotations": ["a"]}, "annotations"),
    ({"name": "x", "type": "missing", "service": "s", "webhooks": ["ftp://h/x"]}, "webhooks[0]"),
    ({"name": "x", "type": "missing", "service": "s", "webhooks": "http://h/x"}, "webhooks"),
    ({"name": "x", "type": "missing", "service": "s", "enabled": "yes"}, "enabled"),
    ({"name": "x", "type": "missing", "service": "s", "id": "no spaces"}, "id"),
    ({"name": "x", "type": "missing", "service": "s", "severity": "high"}, "severity"),
    ({"name": "x", "type": "error_rate", "service": "s", "threshold": 0.1, "minCalls": 0}, "minCalls"),
]


@pytest.mark.parametrize("body, field", BAD_RULES, ids=[f"{f}-{i}" for i, (_b, f) in enumerate(BAD_RULES)])
def test_bad_rules_are_refused_naming_the_field(body, field):
    with pytest.raises(RuleError) as info:
        parse_rule(body, bucket_s=60)
    assert str(info.value).startswith(f"{field}:"), str(info.value)


def test_rule_crud_over_http(server_factory):
    srv = server_factory(*FAST)
    r = requests.post(srv.url(RULES), json={"name": "x", "type": "error_rate", "service": "s", "threshold": 2})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("threshold:")
    r = requests.post(srv.url(RULES), data=b"not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("body:")
    r = requests.post(srv.url(RULES), json={"name": "x", "type": "missing", "service": "s", "window": "500ms"})
    assert r.status_code == 400 and "analytics.bucket_s" in r.json()["error"]["message"]
    rule = add_rule(srv, id="r1", name="x", type="missing", service="s", window="1m")
    assert rule["window"] == "1m" and rule["for"] == "0" and rule["enabled"] is True
    r = requests.post(srv.url(RULES), json={"id": "r1", "name": "y", "type": "missing", "service": "s"})
    assert r.status_code == 409 and "r1" in r.json()["error"]["message"]
    assert requests.get(srv.url(f"{RULES}/r1")).json() == rule
    assert requests.get(srv.url(f"{RULES}/nope")).status_code == 404
    r = requests.put(srv.url(f"{RULES}/r1"), json={"name": "x2", "type": "error_rate", "service": "s",
                                                    "threshold": 0.2, "window": 90})
    assert r.status_code == 200 and r.json()["name"] == "x2" and r.json()["window"] == "90s"
    r = requests.put(srv.url(f"{RULES}/r1"), json={"id": "r2", "name": "x", "type": "missing", "service": "s"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("id:")
    assert requests.put(srv.url(f"{RULES}/nope"), json={"name": "x", "type": "missing",
                                                        "service": "s"}).status_code == 404
    assert requests.get(srv.url(f"{RULES}/r1")).json()["type"] == "error_rate"
    assert requests.delete(srv.url(f"{RULES}/r1")).status_code == 200
    assert requests.delete(srv.url(f"{RULES}/r1")).status_code == 404
    assert requests.get(srv.url(RULES)).json() == {"rules": []}
    r = requests.get(srv.url("/api/v1/alerts/history"), params={"limit": 0})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("limit:")


def test_alerting_is_off_without_analytics(server_factory):
    srv = server_factory("analytics.enabled=false")
    r = requests.get(srv.url(RULES))
    assert r.status_code == 503 and "alerting is off" in r.json()["error"]["message"]


# --------------------------------------------------------------------------- baselines, in process


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class NoSearch:
    def find_traces(self, query):
        return []


@pytest.fixture
def alerting(tmp_path):
    config = load_config(overrides={"analytics.bucket_s": 10, "server.data_dir": str(tmp_path)})
    clock = Clock(1_700_000_000.0)
    series = SeriesStore(tmp_path / "analytics", config.analytics, clock=clock)
    al = Alerting(config, series, NoSearch(), tmp_path, clock=clock)
    yield al, series, clock
    al.close()
    series.close()


def _observe(series, service: str, start_s: float, seconds: int, per_s: int, duration_ms: float) -> None:
    """``per_s`` calls a second of ``duration_ms`` for ``seconds`` from ``start_s``, as if they had
    been received as they ended (the store's clock is moved there for the call)."""
    clock, now = series.clock, series.clock.t
    clock.t = start_s + seconds
    sid = series.series_id(("span", service, "GET /", "server"))
    n = seconds * per_s
    start = (start_s + np.arange(n) / per_s) * 1e9
    series.add(np.full(n, sid), start.astype(np.int64), np.full(n, int(duration_ms * MS)), np.zeros(n, bool))
    series.flush()
    clock.t = now


def test_latency_spike_compares_with_the_baseline(alerting):
    al, series, clock = alerting
    now = clock.t
    rule = al.create_rule({"name": "spike", "type": "latency_spike", "service": "api", "factor": 2,
                           "quantile": 0.9, "window": "5m", "baseline": "previous", "baselineWindow": "1h"})
    day_ago = al.create_rule({"name": "vs yesterday", "type": "latency_spike", "service": "api", "factor": 2,
                              "window": "5m", "baseline": "1d"})
    _observe(series, "api", now - 3600 - 300, 3600, 1, 100)  # the hour before: 100 ms
    _observe(series, "api", now - 86400 - 300, 600, 1, 400)  # a day ago: 400 ms
    _observe(series, "api", now - 290, 280, 1, 150)  # now: 150 ms, 1.5× the hour before
    al.evaluate()
    states = {a["ruleId"]: a for a in al.alerts()}
    assert states[rule["id"]]["state"] == "inactive"
    assert states[rule["id"]]["baseline"] == pytest.approx(100, rel=0.01)
    _observe(series, "api", now - 290, 280, 3, 250)  # most calls now take 250 ms: 2.5×
    al.evaluate()
    states = {a["ruleId"]: a for a in al.alerts()}
    assert states[rule["id"]]["state"] == "firing"
    assert states[rule["id"]]["value"] == pytest.approx(250, rel=0.01)
    assert states[rule["id"]]["threshold"] == pytest.approx(200, rel=0.01)
    assert states[day_ago["id"]]["state"] == "inactive"  # slower yesterday
    assert states[day_ago["id"]]["baseline"] == pytest.approx(400, rel=0.01)
    message = al.payload(al.get_rule(rule["id"]), al.states[rule["id"]], "firing", clock.t)
    assert message["alerts"][0]["annotations"]["summary"] == \
        "spike: api: p90 latency 249.5 ms > 2 × baseline 100.4 ms over 5m"  # bucket values (±0.5 %)


def test_throughput_drop_by_rate_and_by_fraction(alerting):
    al, series, clock = alerting
    now = clock.t
    by_rate = al.create_rule({"name": "slow", "type": "throughput_drop", "service": "api", "threshold": 2,
                              "window": "5m"})
    by_fraction = al.create_rule({"name": "drop", "type": "throughput_drop", "service": "api", "fraction": 0.5,
                                  "window": "5m", "baseline": "previous", "baselineWindow": "30m"})
    _observe(series, "api", now - 300 - 1800, 1800, 4, 10)  # 4 calls/s before
    _observe(series, "api", now - 300, 300, 3, 10)  # 3 calls/s now
    al.evaluate()
    states = {a["ruleId"]: a for a in al.alerts()}
    assert states[by_rate["id"]]["state"] == "inactive" and states[by_fraction["id"]]["state"] == "inactive"
    assert states[by_fraction["id"]]["baseline"] == pytest.approx(4, rel=0.05)
    clock.t = now + 300  # the next five minutes bring 1 call/s
    _observe(series, "api", now, 300, 1, 10)
    al.evaluate()
    states = {a["ruleId"]: a for a in al.alerts()}
    assert states[by_rate["id"]]["state"] == "firing"
    assert states[by_rate["id"]]["value"] == pytest.approx(1, rel=0.1)
    assert states[by_fraction["id"]]["state"] == "firing"  # 1/s < 0.5 × the previous half hour's rate


def test_config_validates_alerting():
    from collector.errors import ConfigError
    assert Config().alerting.evaluation_interval_s == 15
    with pytest.raises(ConfigError, match="alerting.evaluation_interval_s"):
        load_config(overrides={"alerting.evaluation_interval_s": 0})
    with pytest.raises(ConfigError, match="alerting.default_webhook"):
        load_config(overrides={"alerting.default_webhook": "hooks.example"})
