"""Query stage through the real server: conformance fixtures in over OTLP/JSON, out through both APIs."""
from __future__ import annotations

import json

import pytest
import requests

from conftest import CONFORMANCE

TRACES = sorted((CONFORMANCE / "jaeger" / "traces").glob("*.json"))
JSON = {"Content-Type": "application/json"}


def normalise(doc: dict) -> list:
    """Spans as (resource, scope, span) JSON texts, IDs lower-case, int64 as strings, sorted."""
    def norm(value):
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                    v = v.lower()
                elif k in ("startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue"):
                    v = str(v)
                out[k] = norm(v)
            return {k: v for k, v in out.items() if v not in ({}, [], "", 0) or k == "intValue"}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    rows = []
    for rs in doc["resourceSpans"]:
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                rows.append(json.dumps([norm(rs.get("resource", {})), norm(ss.get("scope", {})), norm(sp)],
                                       sort_keys=True))
    return sorted(rows)


def trace_id(doc: dict) -> str:
    return doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"].lower()


def test_every_jaeger_fixture_round_trips_over_otlp_json(server):
    for path in TRACES:
        r = requests.post(server.otlp_http, data=path.read_bytes(), headers=JSON)
        assert r.status_code == 200 and r.json() == {}, (path.name, r.text)
    for path in TRACES:
        sent = json.loads(path.read_bytes())
        r = requests.get(server.url(f"/api/v3/traces/{trace_id(sent)}"))
        assert r.status_code == 200, path.name
        assert normalise(r.json()["result"]) == normalise(sent), path.name
        # The same trace in the Jaeger UI model: every span, with its operation name.
        r = requests.get(server.url(f"/api/traces/{trace_id(sent)}"))
        assert r.status_code == 200
        ui = r.json()["data"][0]
        names = sorted(sp["name"] for rs in sent["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"])
        assert sorted(s["operationName"] for s in ui["spans"]) == names


def test_jaeger_transform_fixture_through_the_server(server):
    """OTLP in over HTTP, Jaeger UI JSON out: Jaeger's own otlp2jaeger fixture pair.

    The input holds the same span twice, byte for byte. Jaeger's stateless transform shows it
    twice; a store treats identical spans as one (a client retry), so it comes back once.
    """
    src = CONFORMANCE / "jaeger" / "query-api" / "transform"
    body = (src / "otlp2jaeger-in.json").read_bytes()
    expected = json.loads((src / "otlp2jaeger-out.json").read_bytes())
    r = requests.post(server.otlp_http, data=body, headers=JSON)
    assert r.status_code == 200
    want = expected["data"][0]
    r = requests.get(server.url(f"/api/traces/{want['traceID']}"))
    assert r.status_code == 200
    got = r.json()
    assert set(got) == {"data", "total", "limit", "offset", "errors"} and got["errors"] is None
    trace = got["data"][0]
    unique = {json.dumps(s, sort_keys=True): s for s in want["spans"]}
    assert len(unique) < len(want["spans"])  # the fixture's duplicate
    key = lambda s: json.dumps(s, sort_keys=True)
    assert sorted(trace["spans"], key=key) == sorted(unique.values(), key=key)
    assert trace["processes"] == want["processes"]
    assert trace["traceID"] == want["traceID"]


def test_upper_case_hex_otlp_example(server):
    body = (CONFORMANCE / "otlp" / "trace.json").read_bytes()
    assert requests.post(server.otlp_http, data=body, headers=JSON).status_code == 200
    r = requests.get(server.url("/api/v3/traces/5B8EFFF798038103D269B633813FC60C"))
    assert r.status_code == 200
    span = r.json()["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["spanId"] == "eee19b7ec3c1b174" and span["parentSpanId"] == "eee19b7ec3c1b173"


def test_a_retried_request_is_returned_once(server):
    body = (CONFORMANCE / "jaeger" / "traces" / "example_trace.json").read_bytes()
    for _ in range(3):
        assert requests.post(server.otlp_http, data=body, headers=JSON).status_code == 200
    r = requests.get(server.url("/api/traces/11"))
    assert len(r.json()["data"][0]["spans"]) == 5


def test_health_readiness_metrics_and_ui(server):
    assert requests.get(server.url("/healthz")).json() == {"status": "ok"}
    assert requests.get(server.url("/readyz")).status_code == 200
    body = (CONFORMANCE / "jaeger" / "traces" / "example_trace.json").read_bytes()
    requests.post(server.otlp_http, data=body, headers=JSON)
    metrics = requests.get(server.url("/metrics")).text
    assert 'clew_spans_received_total{protocol="otlp_http"} 5.0' in metrics
    assert 'clew_spans_accepted_total{protocol="otlp_http"} 5.0' in metrics
    assert "clew_commit_seconds_bucket" in metrics and "clew_ingest_queue_spans" in metrics
    store_bytes = [l for l in metrics.splitlines() if l.startswith("clew_store_bytes ")]
    assert store_bytes and float(store_bytes[0].split()[1]) > 0
    r = requests.get(server.url("/"))
    assert r.status_code == 200 and "Clew" in r.text
