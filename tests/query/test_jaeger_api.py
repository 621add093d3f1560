"""Query stage: the Jaeger v1 and api_v3 routes — their JSON shapes, Clew's extensions, and the 400s.

Most tests run against one real server holding a small shop (below), written over OTLP/HTTP;
the parsing of search parameters into the store's search model is also checked directly.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests
from opentelemetry.proto.trace.v1 import trace_pb2
from werkzeug.datastructures import MultiDict

from collector.store.criteria import DURATION, KIND, NAME, SERVICE, STATUS, And, Attr, Cond
from conftest import CONFORMANCE, Server, otlp_json_attributes, json_shape
from query.jaeger_api import classic_search, parse_tag_param, v3_search

GOLDEN = CONFORMANCE / "jaeger" / "query-api" / "apiv3-snapshots"
JSON = {"Content-Type": "application/json"}
MS = 1_000_000
NOW = time.time_ns()
BASE = NOW - 30 * 60 * 10**9  # the shop's traces start half an hour ago


attrs = otlp_json_attributes


def span(trace: int, sid: int, name: str, kind: int, start_ms: float, end_ms: float, *, parent=None,
         error=False, base=BASE, **attributes) -> dict:
    s = {"traceId": f"{trace:032x}", "spanId": f"{sid:016x}", "name": name, "kind": kind,
         "startTimeUnixNano": str(base + int(start_ms * MS)), "endTimeUnixNano": str(base + int(end_ms * MS)),
         "attributes": attrs(**attributes)}
    if parent:
        s["parentSpanId"] = f"{parent:016x}"
    if error:
        s["status"] = {"code": 2, "message": "boom"}
    return s


def resource(service: str, spans: list, **resource_attrs) -> dict:
    return {"resource": {"attributes": attrs(service__name=service, **resource_attrs)},
            "scopeSpans": [{"scope": {"name": "shop"}, "spans": spans}]}


SERVER, CLIENT, INTERNAL = 2, 3, 1
T1, T2, T3 = 0xA1, 0xA2, 0xA3
BATCH = [0xB1, 0xB2, 0xB3, 0xB4, 0xB5]  # oldest → newest


def shop() -> dict:
    """T1 (+0 s, 100 ms): GET /orders, 200, prod → SELECT orders (db.statement, postgresql).
    T2 (+60 s, 2 s): GET /pay, 500, status ERROR, staging → INSERT payment (mysql).
    T3 (+120 s, 5 ms): GET /health, 200, prod.  B1…B5 (+180 s, +190 s …): one 1 ms batch job each."""
    t2 = 60_000
    t3 = 120_000
    return {"resourceSpans": [
        resource("api-frontend", [
            span(T1, 1, "GET /orders", SERVER, 0, 100, http__route="/api/orders", http__status_code=200),
            span(T3, 1, "GET /health", SERVER, t3, t3 + 5, http__route="/health", http__status_code=200),
        ], deployment__environment="prod"),
        resource("api-frontend", [
            span(T2, 1, "GET /pay", SERVER, t2, t2 + 2000, error=True, http__route="/api/pay",
                 http__status_code=500),
        ], deployment__environment="staging"),
        resource("api-db", [
            span(T1, 2, "SELECT orders", CLIENT, 10, 40, parent=1, db__statement="SELECT * FROM orders",
                 db__system="postgresql"),
            span(T2, 2, "INSERT payment", CLIENT, t2 + 100, t2 + 300, parent=1, db__system="mysql"),
        ]),
        resource("api-batch", [
            span(tid, 1, "job", INTERNAL, 180_000 + 10_000 * i, 180_000 + 10_000 * i + 1, job__n=i)
            for i, tid in enumerate(BATCH)
        ]),
    ]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("jaeger-api") / "data").start()
    try:
        r = requests.post(srv.otlp_http, data=json.dumps(shop()), headers=JSON)
        assert r.status_code == 200 and r.json() == {}, r.text
        yield srv
    finally:
        srv.stop()


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")


WINDOW_V3 = {"query.startTimeMin": rfc3339(NOW - 3600 * 10**9), "query.startTimeMax": rfc3339(NOW + 60 * 10**9)}


def classic_ids(server, params) -> list[int]:
    """Trace IDs of a classic search, in the order returned."""
    r = requests.get(server.url("/api/traces"), params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"} and body["errors"] is None
    return [int(t["traceID"], 16) for t in body["data"]]


def v3_ids(server, params) -> list[int]:
    r = requests.get(server.url("/api/v3/traces"), params={**WINDOW_V3, **params})
    if r.status_code == 404:
        assert r.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
        return []
    assert r.status_code == 200, r.text
    seen = []
    for rs in r.json()["result"]["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                tid = int(s["traceId"], 16)
                if tid not in seen:
                    seen.append(tid)
    return seen


# --------------------------------------------------------------------------- listings


def test_services(server):
    body = requests.get(server.url("/api/services")).json()
    assert body == {"data": ["api-batch", "api-db", "api-frontend"], "total": 3, "limit": 0, "offset": 0,
                    "errors": None}
    assert requests.get(server.url("/api/v3/services")).json() == {"services": ["api-batch", "api-db",
                                                                                "api-frontend"]}


def test_operations(server):
    body = requests.get(server.url("/api/services/api-frontend/operations")).json()
    assert body["data"] == ["GET /health", "GET /orders", "GET /pay"] and body["total"] == 3
    body = requests.get(server.url("/api/operations"), params={"service": "api-db"}).json()
    assert body["data"] == [{"name": "INSERT payment", "spanKind": "client"},
                            {"name": "SELECT orders", "spanKind": "client"}]
    assert body["total"] == 2
    body = requests.get(server.url("/api/v3/operations"), params={"service": "api-batch"}).json()
    assert body == {"operations": [{"name": "job", "spanKind": "internal"}]}
    body = requests.get(server.url("/api/operations"), params={"service": "api-db", "spanKind": "server"}).json()
    assert body["data"] == [] and body["total"] == 0
    body = requests.get(server.url("/api/v3/operations"), params={"service": "api-frontend", "span_kind": "server"})
    assert [o["name"] for o in body.json()["operations"]] == ["GET /health", "GET /orders", "GET /pay"]


def test_v3_listing_shapes_match_the_golden_snapshots(server):
    for path, golden, params in (("/api/v3/services", "GetServices.json", {}),
                                 ("/api/v3/operations", "GetOperations.json", {"service": "api-db"})):
        got = requests.get(server.url(path), params=params).json()
        assert shape(got) == shape(json.loads((GOLDEN / golden).read_text())), path


shape = json_shape


def contains_shape(got, golden) -> bool:
    """Every field of the golden body is in ``got`` with the same JSON type.  A real trace has more
    fields, and OTLP/JSON leaves zero values out (an unset status has no ``code``), so a list
    conforms when one of its items does: the golden span is an error span of kind SERVER."""
    if isinstance(golden, dict):
        return isinstance(got, dict) and all(k in got and contains_shape(got[k], v) for k, v in golden.items())
    if isinstance(golden, list):
        return isinstance(got, list) and any(contains_shape(g, golden[0]) for g in got)
    return type(got) is type(golden)


def every_span_has_the_gateway_fields(result: dict) -> bool:
    return all("resource" in rs and all("scope" in ss and all(
        {"traceId", "spanId", "name", "status"} <= set(sp) for sp in ss["spans"]) for ss in rs["scopeSpans"])
        for rs in result["resourceSpans"])


# --------------------------------------------------------------------------- traces


def test_get_trace_classic_and_v3(server):
    body = requests.get(server.url("/api/traces/a2")).json()
    trace = body["data"][0]
    assert set(trace) == {"traceID", "spans", "processes", "warnings"} and trace["traceID"] == "00000000000000a2"
    assert sorted(s["operationName"] for s in trace["spans"]) == ["GET /pay", "INSERT payment"]
    pay = next(s for s in trace["spans"] if s["operationName"] == "GET /pay")
    assert pay["duration"] == 2_000_000 and {"key": "error", "type": "bool", "value": True} in pay["tags"]
    assert trace["processes"][pay["processID"]]["serviceName"] == "api-frontend"
    got = requests.get(server.url(f"/api/v3/traces/{T2:032x}")).json()
    golden = json.loads((GOLDEN / "GetTrace.json").read_text())
    assert contains_shape(got, golden) and every_span_has_the_gateway_fields(got["result"])


def test_get_trace_as_protobuf_for_tempo_clients(server):
    r = requests.get(server.url("/api/traces/a1"), headers={"Accept": "application/protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/protobuf"
    data = trace_pb2.TracesData.FromString(r.content)
    assert sorted(s.name for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans) == [
        "GET /orders", "SELECT orders"]


def test_search_returns_whole_traces_in_the_ui_model(server):
    r = requests.get(server.url("/api/traces"), params={"service": "api-db", "operation": "SELECT orders"})
    body = r.json()
    assert [t["traceID"] for t in body["data"]] == ["00000000000000a1"]
    # the frontend span is there too: the whole trace, not the matching span
    assert sorted(s["operationName"] for s in body["data"][0]["spans"]) == ["GET /orders", "SELECT orders"]


def test_v3_search_shape_and_404_when_nothing_is_found(server):
    r = requests.get(server.url("/api/v3/traces"), params={**WINDOW_V3, "query.serviceName": "api-db",
                                                           "query.operationName": "INSERT payment"})
    assert r.status_code == 200
    assert contains_shape(r.json(), json.loads((GOLDEN / "FindTraces.json").read_text()))
    assert every_span_has_the_gateway_fields(r.json()["result"])
    assert v3_ids(server, {"query.serviceName": "api-db"}) == [T2, T1]
    r = requests.get(server.url("/api/v3/traces"), params={**WINDOW_V3, "query.serviceName": "nobody"})
    assert r.status_code == 404
    assert r.json() == {"error": {"httpCode": 404, "message": "No traces found"}}


def test_search_by_trace_ids(server):
    r = requests.get(server.url("/api/traces"), params=[("traceID", "a1"), ("traceID", "ffff")])
    body = r.json()
    assert [t["traceID"] for t in body["data"]] == ["00000000000000a1"]
    assert body["errors"] == [{"msg": "trace not found", "traceID": "000000000000ffff"}]


def test_trace_summaries(server):
    r = requests.get(server.url("/api/v3/trace-summaries"),
                     params={**WINDOW_V3, "query.serviceName": "api-frontend", "query.searchDepth": 2})
    body = r.json()
    assert shape(body) == shape(json.loads((GOLDEN / "FindTraceSummaries.json").read_text()))
    assert [s["traceId"] for s in body["summaries"]] == [f"{T3:032x}", f"{T2:032x}"]  # newest first
    pay = body["summaries"][1]
    assert pay == {
        "errorSpanCount": 1,
        "maxEndTimeUnixNano": str(BASE + 62_000 * MS),
        "minStartTimeUnixNano": str(BASE + 60_000 * MS),
        "rootOperationName": "GET /pay",
        "rootServiceName": "api-frontend",
        "services": [{"errorSpanCount": 0, "name": "api-db", "spanCount": 1},
                     {"errorSpanCount": 1, "name": "api-frontend", "spanCount": 1}],
        "spanCount": 2,
        "traceId": f"{T2:032x}",
    }
    r = requests.get(server.url("/api/v3/trace-summaries"), params={**WINDOW_V3, "query.serviceName": "nobody"})
    assert r.status_code == 200 and r.json() == {"summaries": []}


def test_dependencies(server):
    end = NOW // MS + 60_000
    body = requests.get(server.url("/api/dependencies"), params={"endTs": end, "lookback": 3_600_000}).json()
    assert body["data"] == [{"parent": "api-frontend", "child": "api-db", "callCount": 2, "errorCount": 0}]
    body = requests.get(server.url("/api/dependencies"),
                        params={"endTs": end, "lookback": 3_600_000, "service": "api-batch"}).json()
    assert body["data"] == []
    # a window before the shop opened
    body = requests.get(server.url("/api/dependencies"), params={"endTs": BASE // MS - 1, "lookback": 60_000})
    assert body.json()["data"] == []


def test_dependencies_count_the_callee_errors(server_factory):
    """``errorCount`` (Clew's addition) counts the child spans of a link whose status is error;
    an error on the caller's side does not count against the callee."""
    srv = server_factory()
    web = [span(0xE0 + i, 1, "GET /buy", SERVER, i * 10, i * 10 + 9, error=(i == 0)) for i in range(4)]
    web += [span(0xE0 + i, 2, "call pay", CLIENT, i * 10 + 1, i * 10 + 8, parent=1) for i in range(4)]
    pay = [span(0xE0 + i, 3, "charge", SERVER, i * 10 + 2, i * 10 + 7, parent=2, error=(i in (1, 2)))
           for i in range(4)]
    stock = [span(0xE0, 4, "reserve", SERVER, 3, 4, parent=1)]
    body = {"resourceSpans": [resource("ec-web", web), resource("ec-pay", pay), resource("ec-stock", stock)]}
    r = requests.post(srv.otlp_http, data=json.dumps(body), headers=JSON)
    assert r.status_code == 200, r.text
    end = NOW // MS + 60_000
    got = requests.get(srv.url("/api/dependencies"), params={"endTs": end, "lookback": 3_600_000}).json()
    assert got["data"] == [{"parent": "ec-web", "child": "ec-pay", "callCount": 4, "errorCount": 2},
                           {"parent": "ec-web", "child": "ec-stock", "callCount": 1, "errorCount": 0}]


# --------------------------------------------------------------------------- Jaeger's own search semantics


def test_jaeger_tag_equality_compares_string_forms(server):
    assert classic_ids(server, {"service": "api-frontend", "tag": "http.status_code:200"}) == [T3, T1]
    assert classic_ids(server, {"service": "api-frontend", "tags": json.dumps({"http.status_code": "500"})}) == [T2]
    # all tags ANDed, each may sit in any spot of the one span (here: span and resource)
    assert classic_ids(server, [("service", "api-frontend"), ("tag", "http.status_code:200"),
                                ("tag", "deployment.environment:prod")]) == [T3, T1]
    assert classic_ids(server, [("service", "api-frontend"), ("tag", "http.status_code:500"),
                                ("tag", "deployment.environment:prod")]) == []
    # both conditions must hold on one span: T1's db span has db.system, its frontend span the route
    assert classic_ids(server, [("tag", "db.system:postgresql"), ("tag", "http.route:/api/orders")]) == []


def test_span_duration_bounds_are_inclusive(server):
    assert classic_ids(server, {"service": "api-frontend", "minDuration": "2s"}) == [T2]
    assert classic_ids(server, {"service": "api-frontend", "maxDuration": "5ms"}) == [T3]
    assert classic_ids(server, {"service": "api-db", "minDuration": "30ms", "maxDuration": "200ms"}) == [T2, T1]
    assert v3_ids(server, {"query.serviceName": "api-frontend", "query.durationMin": "100ms",
                           "query.durationMax": "2s"}) == [T2, T1]


def test_time_window(server):
    start_us = (BASE + 50_000 * MS) // 1000
    end_us = (BASE + 150_000 * MS) // 1000
    assert classic_ids(server, {"service": "api-frontend", "start": start_us, "end": end_us}) == [T3, T2]
    assert classic_ids(server, {"service": "api-frontend", "start": start_us, "end": end_us, "limit": 1}) == [T3]
    assert classic_ids(server, {"service": "api-frontend", "lookback": "1m"}) == []
    assert classic_ids(server, {"service": "api-frontend", "lookback": "1h"}) == [T3, T2, T1]


def test_limit_cuts_the_newest_first_list(server):
    assert classic_ids(server, {"service": "api-batch"}) == BATCH[::-1]
    assert classic_ids(server, {"service": "api-batch", "limit": 2}) == [0xB5, 0xB4]
    assert v3_ids(server, {"query.serviceName": "api-batch", "query.searchDepth": 3}) == [0xB5, 0xB4, 0xB3]


# --------------------------------------------------------------------------- beyond Jaeger


def test_negation(server):
    assert classic_ids(server, {"service": "api-frontend", "tag": "http.status_code!=200"}) == [T2]
    assert classic_ids(server, {"tags": json.dumps({"http.status_code": {"op": "!=", "value": 500}})}) == [T3, T1]
    attributes = json.dumps({"http.status_code": {"op": "!=", "value": "200"}})
    assert v3_ids(server, {"query.attributes": attributes}) == [T2]
    # != needs the attribute: spans without it never match
    assert classic_ids(server, {"service": "api-batch", "tag": "http.status_code!=200"}) == []


def test_regular_expressions(server):
    assert classic_ids(server, {"service": "api-frontend", "tag": "http.route=~/api/.*"}) == [T2, T1]
    assert classic_ids(server, {"service": "api-frontend", "tag": "http.route!~/api/.*"}) == [T3]
    # anchored: the whole value must match
    assert classic_ids(server, {"service": "api-frontend", "tag": "http.route=~api"}) == []
    attributes = json.dumps({"db.statement": {"op": "=~", "value": "SELECT .* FROM orders"}})
    assert v3_ids(server, {"query.attributes": attributes}) == [T1]


def test_existence(server):
    assert classic_ids(server, {"tag": "db.statement"}) == [T1]
    assert classic_ids(server, {"tags": json.dumps({"db.system": {"op": "exists"}})}) == [T2, T1]
    assert v3_ids(server, {"query.attributes": json.dumps({"job.n": {"op": "exists"}})}) == BATCH[::-1]


def test_search_without_a_service(server):
    assert classic_ids(server, {"tags": json.dumps({"db.system": "mysql"})}) == [T2]
    assert classic_ids(server, {"operation": "job", "limit": 1}) == [0xB5]
    assert v3_ids(server, {"query.operationName": "GET /health"}) == [T3]


def test_whole_trace_duration(server):
    assert classic_ids(server, {"service": "api-frontend", "minTraceDuration": "1s"}) == [T2]
    assert classic_ids(server, {"service": "api-frontend", "maxTraceDuration": "50ms"}) == [T3]
    assert classic_ids(server, {"service": "api-frontend", "minTraceDuration": "100ms",
                                "maxTraceDuration": "1s"}) == [T1]
    # the db span of T1 is 30 ms long, its trace 100 ms: span and trace bounds are different things
    assert classic_ids(server, {"service": "api-db", "maxDuration": "30ms", "minTraceDuration": "100ms"}) == [T1]
    assert v3_ids(server, {"query.serviceName": "api-frontend", "query.traceDurationMin": "1s"}) == [T2]


def test_error_only(server):
    assert classic_ids(server, {"tag": "error:true"}) == [T2]
    assert classic_ids(server, {"service": "api-frontend", "tags": json.dumps({"error": "false"})}) == [T3, T1]
    assert v3_ids(server, {"query.attributes": json.dumps({"error": "true"})}) == [T2]
    assert classic_ids(server, {"tag": "otel.status_code:ERROR"}) == [T2]


def test_special_keys_span_kind_and_resource(server):
    assert classic_ids(server, {"service": "api-db", "tag": "span.kind:client"}) == [T2, T1]
    assert classic_ids(server, {"service": "api-db", "tag": "span.kind:server"}) == []
    assert classic_ids(server, {"tag": "resource.deployment.environment:staging"}) == [T2]
    # resource.<key> looks at the resource only: http.route is a span attribute
    assert classic_ids(server, {"tag": "resource.http.route:/health"}) == []


# --------------------------------------------------------------------------- bad requests


CLASSIC_BAD = [
    ("/api/traces", {"service": "x", "limit": "0"}, "limit"),
    ("/api/traces", {"service": "x", "limit": "many"}, "limit"),
    ("/api/traces", {"service": "x", "limit": "100000"}, "limit"),
    ("/api/traces", {"service": "x", "start": "yesterday"}, "start"),
    ("/api/traces", {"service": "x", "start": "2000", "end": "1000"}, "start"),
    ("/api/traces", {"service": "x", "minDuration": "fast"}, "minDuration"),
    ("/api/traces", {"service": "x", "maxDuration": "1ms", "minDuration": "2ms"}, "maxDuration"),
    ("/api/traces", {"service": "x", "minTraceDuration": "-1s"}, "minTraceDuration"),
    ("/api/traces", {"service": "x", "maxDuration": "9999999999999h"}, "maxDuration"),
    ("/api/traces", {"service": "x", "lookback": "forever"}, "lookback"),
    ("/api/traces", {"service": "x", "tags": "{not json"}, "tags"),
    ("/api/traces", {"service": "x", "tags": "[1]"}, "tags"),
    ("/api/traces", {"service": "x", "tags": '{"k": {"op": "~"}}'}, "~"),
    ("/api/traces", {"service": "x", "tags": '{"k": {"op": "="}}'}, "value"),
    ("/api/traces", {"service": "x", "tags": '{"k": [1]}'}, "tags"),
    ("/api/traces", {"service": "x", "tag": ":value"}, "key"),
    ("/api/traces", {"service": "x", "tag": "error:maybe"}, "error"),
    ("/api/traces", {"service": "x", "tag": "span.kind:sideways"}, "kind"),
    ("/api/traces", {"service": "x", "tag": "k=~(unclosed"}, "regular expression"),
    ("/api/traces", {"traceID": "xyz"}, "traceID"),
    ("/api/traces", {"service": "x", "raw": "maybe"}, "raw"),
    ("/api/traces/xyz", {}, "xyz"),
    ("/api/traces/0", {}, "zero"),
    ("/api/traces/a1", {"start": "soon"}, "start"),
    ("/api/operations", {"service": "x", "spanKind": "sideways"}, "spanKind"),
    ("/api/dependencies", {"endTs": "now"}, "endTs"),
    ("/api/dependencies", {"lookback": "-5"}, "lookback"),
]


@pytest.mark.parametrize("path,params,named", CLASSIC_BAD, ids=[f"{p}-{'-'.join(q)}" for p, q, _ in CLASSIC_BAD])
def test_classic_bad_parameters_get_400_in_the_envelope(server, path, params, named):
    r = requests.get(server.url(path), params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"} and body["data"] is None
    assert len(body["errors"]) == 1 and body["errors"][0]["code"] == 400
    assert named in body["errors"][0]["msg"]


V3_BAD = [
    ("/api/v3/traces", {}, "query.startTimeMin"),
    ("/api/v3/traces", {"query.startTimeMin": WINDOW_V3["query.startTimeMin"]}, "query.startTimeMax"),
    ("/api/v3/traces", {**WINDOW_V3, "query.startTimeMin": "yesterday"}, "query.startTimeMin"),
    ("/api/v3/traces", {"query.startTimeMin": WINDOW_V3["query.startTimeMax"],
                        "query.startTimeMax": WINDOW_V3["query.startTimeMin"]}, "before"),
    ("/api/v3/traces", {**WINDOW_V3, "query.searchDepth": "deep"}, "query.searchDepth"),
    ("/api/v3/traces", {**WINDOW_V3, "query.num_traces": "0"}, "query.num_traces"),
    ("/api/v3/traces", {**WINDOW_V3, "query.durationMin": "NaN"}, "query.durationMin"),
    ("/api/v3/traces", {**WINDOW_V3, "query.duration_max": "1x"}, "query.duration_max"),
    ("/api/v3/traces", {**WINDOW_V3, "query.attributes": "k=v"}, "query.attributes"),
    ("/api/v3/traces", {**WINDOW_V3, "query.attributes": '{"k": {"op": "!~", "value": "("}}'}, "regular"),
    ("/api/v3/traces", {**WINDOW_V3, "query.attributes": '{"": "x"}'}, "query.attributes"),
    ("/api/v3/traces", {**WINDOW_V3, "query.rawTraces": "maybe"}, "query.rawTraces"),
    ("/api/v3/traces", {**WINDOW_V3, "query.traceDurationMax": "long"}, "query.traceDurationMax"),
    ("/api/v3/trace-summaries", {}, "query.startTimeMin"),
    ("/api/v3/trace-summaries", {**WINDOW_V3, "query.searchDepth": "-1"}, "query.searchDepth"),
    ("/api/v3/traces/xyz", {}, "xyz"),
    ("/api/v3/traces/a1", {"startTime": "soon"}, "startTime"),
    ("/api/v3/traces/a1", {"raw_traces": "maybe"}, "raw_traces"),
    ("/api/v3/operations", {"service": "x", "spanKind": "sideways"}, "spanKind"),
]


@pytest.mark.parametrize("path,params,named", V3_BAD, ids=[f"{p}-{'-'.join(q)}" for p, q, _ in V3_BAD])
def test_v3_bad_parameters_get_400_in_the_gateway_error_shape(server, path, params, named):
    r = requests.get(server.url(path), params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"httpCode", "message"}
    assert body["error"]["httpCode"] == 400 and named in body["error"]["message"]


# --------------------------------------------------------------------------- parameters → search model


def test_classic_parameters_translate_into_one_span_expression():
    args = MultiDict([("service", "svc"), ("operation", "op"), ("minDuration", "1.5ms"), ("maxDuration", "2s"),
                      ("tag", "a:b:c"), ("tag", "k!=v"), ("tags", '{"http.method": "GET", "n": 5}'),
                      ("start", "1000"), ("end", "3000"), ("limit", "7")])
    query, ids = classic_search(args)
    assert ids == []
    assert (query.start_min_ns, query.start_max_ns, query.limit) == (1_000_000, 3_000_000, 7)
    assert query.span == And((
        Cond(SERVICE, "=", "svc"), Cond(NAME, "=", "op"),
        Cond(DURATION, ">=", 1_500_000), Cond(DURATION, "<=", 2_000_000_000),
        Cond(Attr("any", "a"), "=", "b:c"), Cond(Attr("any", "k"), "!=", "v"),
        Cond(Attr("any", "http.method"), "=", "GET"), Cond(Attr("any", "n"), "=", "5")))


def test_classic_default_window_and_limit():
    query, _ = classic_search(MultiDict([("service", "s")]), now_ns=10 * 86_400 * 10**9)
    assert (query.start_min_ns, query.start_max_ns) == (8 * 86_400 * 10**9, 10 * 86_400 * 10**9)
    assert query.limit == 100
    query, _ = classic_search(MultiDict([("lookback", "2h")]), now_ns=10**13)
    assert query.start_min_ns == 10**13 - 7200 * 10**9 and query.span is None


def test_tag_syntax():
    assert parse_tag_param("k=~a:b") == Cond(Attr("any", "k"), "=~", "a:b")
    assert parse_tag_param("url:http://x!=y") == Cond(Attr("any", "url"), "=", "http://x!=y")
    assert parse_tag_param("k!~x") == Cond(Attr("any", "k"), "!~", "x")
    assert parse_tag_param("present") == Cond(Attr("any", "present"), "exists")
    assert parse_tag_param("error:true") == Cond(STATUS, "=", "error")
    assert parse_tag_param("error!=true") == Cond(STATUS, "!=", "error")
    assert parse_tag_param("error:false") == Cond(STATUS, "!=", "error")
    assert parse_tag_param("span.kind:SERVER") == Cond(KIND, "=", "server")
    assert parse_tag_param("span.status:Ok") == Cond(STATUS, "=", "ok")
    assert parse_tag_param("resource.host.name:h1") == Cond(Attr("resource", "host.name"), "=", "h1")


def test_v3_parameters_and_their_deprecated_aliases():
    args = MultiDict([("query.service_name", "s"), ("query.start_time_min", "2024-01-02T03:04:05Z"),
                      ("query.startTimeMax", "2024-01-02T04:04:05.5+01:00"), ("query.num_traces", "3"),
                      ("query.durationMin", "1us"), ("query.traceDurationMax", "1m")])
    query = v3_search(args)
    assert query.span == And((Cond(SERVICE, "=", "s"), Cond(DURATION, ">=", 1000)))
    start = int(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()) * 10**9
    assert (query.start_min_ns, query.start_max_ns) == (start, start + 500_000_000)
    assert query.limit == 3 and query.trace_max_duration_ns == 60 * 10**9
