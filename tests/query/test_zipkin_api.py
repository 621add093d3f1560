"""Query stage through the real server: Zipkin Lens test data in over the Zipkin receiver, out through ``/api/v2``.

Expectations are computed from the Zipkin JSON files themselves with a small reference of
Zipkin's query semantics (``reference_traces``: one span of the trace must satisfy every
condition, its timestamp inside ``[endTs - lookback, endTs]``; names compared ignoring case), so
each route is judged against what Zipkin would answer for the same data, not against Clew's code.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import requests

from conftest import CONFORMANCE, Server

LENS = sorted((CONFORMANCE / "zipkin" / "lens-testdata").glob("*.json"))
FILES = {p.name: json.loads(p.read_bytes()) for p in LENS}
SPANS = [s for spans in FILES.values() for s in spans]
TRACE_OF = {name: spans[0]["traceId"] for name, spans in FILES.items()}
SPANS_OF = {spans[0]["traceId"]: spans for spans in FILES.values()}
JSON = {"Content-Type": "application/json"}


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000)


END = ms("2020-01-01")  # after every file
ALL = {"endTs": END, "lookback": END - ms("2015-01-01"), "limit": 100}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("zipkin-api") / "data").start()
    try:
        for path in LENS:
            r = requests.post(server.http("zipkin", "/api/v2/spans"), data=path.read_bytes(), headers=JSON)
            assert r.status_code == 202, (path.name, r.text)
        yield server
    finally:
        server.stop()


def get(srv, path, **params):
    r = requests.get(srv.url(path), params=params, timeout=30)
    assert r.headers["Content-Type"].startswith("application/json"), (path, r.text[:200])
    return r


def ok(srv, path, **params):
    r = get(srv, path, **params)
    assert r.status_code == 200, (path, params, r.text[:300])
    return r.json()


def multiset(spans) -> list:
    return sorted(json.dumps(s, sort_keys=True, ensure_ascii=False) for s in spans)


# --------------------------------------------------------------------------- reference semantics


def service(span) -> str:
    return span.get("localEndpoint", {}).get("serviceName", "")


def remote(span) -> str:
    return (span.get("remoteEndpoint") or {}).get("serviceName", "")


def span_matches(span, q: dict) -> bool:
    ts = span.get("timestamp")
    end, lookback = q.get("endTs", ALL["endTs"]), q.get("lookback", ALL["lookback"])
    if not ts or not (end - lookback) * 1000 <= ts <= end * 1000:
        return False
    if "serviceName" in q and service(span).lower() != q["serviceName"].lower():
        return False
    if "remoteServiceName" in q and remote(span).lower() != q["remoteServiceName"].lower():
        return False
    if q.get("spanName", "all") != "all" and span.get("name", "").lower() != q["spanName"].lower():
        return False
    if "minDuration" in q and span.get("duration", 0) < q["minDuration"]:
        return False
    if "maxDuration" in q and span.get("duration", 0) > q["maxDuration"]:
        return False
    tags = span.get("tags", {})
    for term in q.get("annotationQuery", "").split(" and "):
        if not term:
            continue
        key, eq, value = term.partition("=")
        if eq and tags.get(key) != value or not eq and key not in tags:
            return False
    return True


def reference_traces(q: dict) -> list[str]:
    """Trace IDs Zipkin returns for ``q``, nearest to endTs first (by the trace's first timestamp)."""
    hits = {s["traceId"] for s in SPANS if span_matches(s, q)}
    first = {t: min(s["timestamp"] for s in SPANS_OF[t] if s.get("timestamp")) for t in hits}
    return sorted(hits, key=lambda t: -first[t])[: q.get("limit", 10)]


# --------------------------------------------------------------------------- names


def test_services_are_every_local_service_name(srv):
    assert ok(srv, "/api/v2/services") == sorted({service(s) for s in SPANS} - {""})


def test_span_names_of_every_service(srv):
    for name in {service(s) for s in SPANS} - {""}:
        want = sorted({s["name"] for s in SPANS if service(s).lower() == name.lower() and s.get("name")})
        assert ok(srv, "/api/v2/spans", serviceName=name) == want, name


def test_span_names_match_the_service_ignoring_case(srv):
    # one smartthings file says "stLogin", the other "stlogin": Zipkin stores both as "stlogin"
    both = sorted({s["name"] for s in SPANS if service(s).lower() == "stlogin" and s.get("name")})
    assert ok(srv, "/api/v2/spans", serviceName="STLOGIN") == both
    assert ok(srv, "/api/v2/spans", serviceName="stLogin") == both
    found = {t[0]["traceId"] for t in ok(srv, "/api/v2/traces", **ALL, serviceName="STLOGIN")}
    assert found == {TRACE_OF["smartthings-mobile-web-install.json"], TRACE_OF["smartthings-oauth-authorization.json"]}
    assert ok(srv, "/api/v2/spans", serviceName="no-such-service") == []


def test_remote_services_of_every_service(srv):
    some = 0
    for name in {service(s) for s in SPANS} - {""}:
        want = sorted({remote(s) for s in SPANS if service(s).lower() == name.lower()} - {""})
        some += bool(want)
        assert ok(srv, "/api/v2/remoteServices", serviceName=name) == want, name
    assert some >= 5


def test_autocomplete_keys_and_values(srv):
    keys = ok(srv, "/api/v2/autocompleteKeys")
    assert keys == sorted({k for s in SPANS for k in s.get("tags", {})})
    assert not {"peer.service", "net.host.ip", "zipkin.shared"} & set(keys)
    for key in ("http.method", "kafka.topic", "error"):
        want = sorted({s["tags"][key] for s in SPANS if key in s.get("tags", {})})
        assert ok(srv, "/api/v2/autocompleteValues", key=key) == want, key
    assert ok(srv, "/api/v2/autocompleteValues", key="no.such.key") == []


# --------------------------------------------------------------------------- traces by ID


def test_every_trace_by_id_is_returned_as_sent(srv):
    for name, spans in FILES.items():
        got = ok(srv, f"/api/v2/trace/{TRACE_OF[name]}")
        assert multiset(got) == multiset(spans), name
    # a 64-bit ID asked for as 32 digits is the same trace; 128-bit IDs come back with 32 digits
    skew = TRACE_OF["skew.json"]
    assert len(ok(srv, f"/api/v2/trace/{skew.rjust(32, '0')}")) == len(FILES["skew.json"])
    messaging = ok(srv, f"/api/v2/trace/{TRACE_OF['messaging.json']}")
    assert {s["traceId"] for s in messaging} == {TRACE_OF["messaging.json"]} and len(TRACE_OF["messaging.json"]) == 32


def test_unknown_and_bad_trace_ids(srv):
    r = get(srv, "/api/v2/trace/00000000000000ff")
    assert r.status_code == 404 and "not found" in r.json()["error"]
    for bad in ("xyz", "1" * 33, "0000000000000000"):
        r = get(srv, f"/api/v2/trace/{bad}")
        assert r.status_code == 400 and "trace ID" in r.json()["error"], bad


def test_trace_many(srv):
    ids = [TRACE_OF["yelp.json"], "00000000000000ff", TRACE_OF["skew.json"], TRACE_OF["yelp.json"]]
    got = ok(srv, "/api/v2/traceMany", traceIds=",".join(ids))
    assert [t[0]["traceId"] for t in got] == [TRACE_OF["yelp.json"], TRACE_OF["skew.json"]]
    assert multiset(got[1]) == multiset(FILES["skew.json"])
    assert ok(srv, "/api/v2/traceMany", traceIds="00000000000000ff,00000000000000fe") == []
    for params in ({}, {"traceIds": ""}, {"traceIds": "abc,zz"}):
        r = get(srv, "/api/v2/traceMany", **params)
        assert r.status_code == 400 and "trace" in r.json()["error"].lower(), params


# --------------------------------------------------------------------------- search


QUERIES = [
    {},
    {"serviceName": "servicea"},
    {"serviceName": "SERVICEB"},
    {"serviceName": "frontend", "spanName": "GET /"},
    {"serviceName": "stlogin"},
    {"spanName": "Insert"},
    {"spanName": "all", "serviceName": "bootifulmeters"},
    {"remoteServiceName": "KAFKA"},
    {"remoteServiceName": "yelp-main.mobile_api"},
    {"serviceName": "frontend", "remoteServiceName": "rabbitmq"},
    {"annotationQuery": "http.method=GET"},
    {"annotationQuery": "http.method=GET and http.path=/locations"},
    {"annotationQuery": "error"},
    {"annotationQuery": "error=some error"},
    {"annotationQuery": "error and http.method=POST"},
    {"annotationQuery": "sql.query"},
    {"annotationQuery": "ttl="},
    {"annotationQuery": "host=<host>"},
    {"serviceName": "transfer-service", "annotationQuery": "http.method=POST"},
    {"serviceName": "paperboy", "annotationQuery": "http.method=DELETE"},
    {"minDuration": 1_000_000},
    {"serviceName": "bootifulmeters", "minDuration": 100_000},
    {"minDuration": 500_000, "maxDuration": 2_000_000},
    {"endTs": ms("2018-11-28"), "lookback": ms("2018-11-28") - ms("2018-11-01")},
    {"endTs": ms("2018-11-28"), "lookback": ms("2018-11-28") - ms("2018-11-01"), "serviceName": "auth"},
    {"limit": 2},
]


@pytest.mark.parametrize("q", QUERIES, ids=lambda q: json.dumps(q))
def test_search_matches_zipkin_semantics(srv, q):
    want = reference_traces({**ALL, **q})
    got = ok(srv, "/api/v2/traces", **{**ALL, **q})
    assert isinstance(got, list) and all(isinstance(t, list) and t for t in got)
    assert {t[0]["traceId"] for t in got} == set(want)
    for trace in got:  # whole traces, each span as sent
        tid = trace[0]["traceId"]
        assert {s["traceId"] for s in trace} == {tid}
        assert multiset(trace) == multiset(SPANS_OF[tid])


def test_search_queries_are_not_vacuous():
    """Each query above selects some traces but not all of them (except the first two)."""
    everything = set(reference_traces({**ALL}))
    assert len(everything) == len(FILES)
    for q in QUERIES[1:]:
        found = set(reference_traces({**ALL, **q}))
        assert found and (found != everything or q.get("limit")), q


def test_search_order_is_nearest_to_end_ts(srv):
    timed = [t for t in TRACE_OF.values() if all(s.get("timestamp") for s in SPANS_OF[t])]
    got = [t[0]["traceId"] for t in ok(srv, "/api/v2/traces", **ALL)]
    assert [t for t in got if t in timed] == [t for t in reference_traces(ALL) if t in timed]
    assert len(got) == len(FILES)


def test_search_order_ignores_spans_without_timestamp(srv):
    got = [t[0]["traceId"] for t in ok(srv, "/api/v2/traces", **ALL)]
    assert got == reference_traces(ALL)


def test_duration_bounds_are_inclusive_microseconds(srv):
    span = next(s for s in FILES["skew.json"] if s["name"] == "get")
    d = span["duration"]
    exact = {**ALL, "serviceName": "servicea", "minDuration": d, "maxDuration": d}
    assert [t[0]["traceId"] for t in ok(srv, "/api/v2/traces", **exact)] == [span["traceId"]]
    for q in ({**exact, "minDuration": d + 1, "maxDuration": d + 10}, {**exact, "minDuration": d - 10, "maxDuration": d - 1}):
        assert reference_traces(q) == [] and ok(srv, "/api/v2/traces", **q) == [], q


def test_conditions_hold_on_one_span(srv):
    # the trace has a servicea span and a span named "async", but the "async" span is serviceb's
    q = {**ALL, "serviceName": "servicea", "spanName": "async"}
    assert reference_traces(q) == []
    assert ok(srv, "/api/v2/traces", **q) == []
    assert len(ok(srv, "/api/v2/traces", **{**q, "serviceName": "serviceb"})) == 1


def test_limit_and_window(srv):
    got = ok(srv, "/api/v2/traces", **{**ALL, "limit": 2})
    assert len(got) == 2
    # the default window is the last day: these years-old traces are outside it
    assert ok(srv, "/api/v2/traces") == []
    assert ok(srv, "/api/v2/traces", endTs=ms("2016-08-02"), lookback=1) == []


def test_prefix_alias(srv):
    assert ok(srv, "/zipkin/api/v2/services") == ok(srv, "/api/v2/services")
    assert ok(srv, f"/zipkin/api/v2/trace/{TRACE_OF['skew.json']}") == ok(srv, f"/api/v2/trace/{TRACE_OF['skew.json']}")


# --------------------------------------------------------------------------- dependencies


def reference_links(spans) -> dict:
    by_id = {}
    for s in spans:
        by_id.setdefault(s["id"], set()).add(service(s))
    links = {}
    for s in spans:
        for parent in by_id.get(s.get("parentId"), ()):
            if parent != service(s):
                calls, errors = links.get((parent, service(s)), (0, 0))
                links[(parent, service(s))] = (calls + 1, errors + ("error" in s.get("tags", {})))
    return links


def zipkin_link(parent: str, child: str, calls: int, errors: int) -> dict:
    """A DependencyLink as Zipkin writes it: ``errorCount`` only when above zero."""
    return {"parent": parent, "child": child, "callCount": calls, **({"errorCount": errors} if errors else {})}


def test_dependencies_of_a_trace_crossing_services(srv):
    # messaging.json (2018-03-16) is alone on its day and has no shared span IDs: exact counts
    spans = FILES["messaging.json"]
    assert len({s["id"] for s in spans}) == len(spans)
    day_end = ms("2018-03-17")
    got = ok(srv, "/api/v2/dependencies", endTs=day_end, lookback=86_400_000)
    want = [zipkin_link(p, c, *n) for (p, c), n in sorted(reference_links(spans).items())]
    assert want and got == want


def test_dependencies_over_all_data(srv):
    got = ok(srv, "/api/v2/dependencies", endTs=ALL["endTs"], lookback=ALL["lookback"])
    assert all({"parent", "child", "callCount"} <= set(link) <= {"parent", "child", "callCount", "errorCount"}
               for link in got)
    # the callee's error tag counts: the Lens traces hold failed calls
    assert any(link.get("errorCount", 0) > 0 for link in got)
    pairs = {(link["parent"], link["child"]) for link in got}
    want = {pair for spans in FILES.values() for pair in reference_links(spans)}
    # shared span IDs make a child's parent ambiguous (client or server side of one ID): Clew takes
    # one of them, so every link it reports is a real one, and every unambiguous link is reported
    assert pairs <= want
    unambiguous = {pair for spans in FILES.values() if len({s["id"] for s in spans}) == len(spans)
                   for pair in reference_links(spans)}
    assert unambiguous <= pairs
    assert ("servicea", "serviceb") in pairs  # skew.json: client servicea → shared server serviceb
    assert ok(srv, "/api/v2/dependencies", endTs=ms("2015-01-01"), lookback=1000) == []


# --------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("path,params,word", [
    ("/api/v2/traces", {"minDuration": "abc"}, "minDuration"),
    ("/api/v2/traces", {"minDuration": "-5"}, "minDuration"),
    ("/api/v2/traces", {"minDuration": "1.5"}, "minDuration"),
    ("/api/v2/traces", {"minDuration": "10", "maxDuration": "5"}, "maxDuration"),
    ("/api/v2/traces", {"endTs": "yesterday"}, "endTs"),
    ("/api/v2/traces", {"endTs": "0"}, "endTs"),
    ("/api/v2/traces", {"lookback": "0"}, "lookback"),
    ("/api/v2/traces", {"limit": "0"}, "limit"),
    ("/api/v2/traces", {"limit": "ten"}, "limit"),
    ("/api/v2/traces", {"annotationQuery": "=GET"}, "annotationQuery"),
    ("/api/v2/spans", {}, "serviceName"),
    ("/api/v2/remoteServices", {}, "serviceName"),
    ("/api/v2/autocompleteValues", {}, "key"),
    ("/api/v2/dependencies", {"endTs": "x"}, "endTs"),
    ("/api/v2/dependencies", {"lookback": "-1"}, "lookback"),
])
def test_bad_parameters_get_400_naming_them(srv, path, params, word):
    r = get(srv, path, **params)
    assert r.status_code == 400, r.text
    assert word in r.json()["error"]


# --------------------------------------------------------------------------- OTLP-native data


def test_otlp_span_through_the_zipkin_api(server):
    """A span sent over OTLP/HTTP reads back as the Collector's Zipkin exporter would write it
    (its own server: the Lens data of the other tests stays alone in theirs)."""
    start = ms("2019-06-01") * 1_000_000 + 123_456_789
    doc = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "Checkout"}},
                                    {"key": "host.name", "value": {"stringValue": "h1"}}]},
        "scopeSpans": [{"scope": {"name": "lib"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "charge",
            "kind": "SPAN_KIND_INTERNAL", "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 1_500_000),
            "attributes": [{"key": "amount", "value": {"doubleValue": 12.5}},
                           {"key": "peer.service", "value": {"stringValue": "bank"}},
                           {"key": "net.peer.port", "value": {"intValue": "443"}}],
            "events": [{"timeUnixNano": str(start + 1000), "name": "retry",
                        "attributes": [{"key": "n", "value": {"intValue": "2"}}]}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "declined"}}]}]}]}
    r = requests.post(server.otlp_http, data=json.dumps(doc), headers=JSON)
    assert r.status_code == 200, r.text
    assert ok(server, "/api/v2/trace/5b8efff798038103d269b633813fc60c") == [{
        "traceId": "5b8efff798038103d269b633813fc60c", "id": "eee19b7ec3c1b174", "name": "charge",
        "timestamp": start // 1000, "duration": 1500,
        "localEndpoint": {"serviceName": "Checkout"},
        "remoteEndpoint": {"serviceName": "bank", "port": 443},
        "annotations": [{"timestamp": start // 1000 + 1, "value": 'retry|{"n":2}|0'}],
        "tags": {"amount": "12.5", "error": "true", "host.name": "h1", "otel.scope.name": "lib",
                 "otel.status_code": "STATUS_CODE_ERROR", "otel.status_description": "declined",
                 "span.kind": "internal"},
    }]
    window = {"endTs": ms("2019-06-02"), "lookback": 86_400_000}
    assert "Checkout" in ok(server, "/api/v2/services")
    assert ok(server, "/api/v2/remoteServices", serviceName="checkout") == ["bank"]
    for q in ({"serviceName": "checkout", "annotationQuery": "error"},
              {"remoteServiceName": "Bank", "minDuration": 1500, "maxDuration": 1500},
              {"annotationQuery": "amount=12.5 and host.name=h1"},
              {"annotationQuery": "error=true and n=2"}):  # status ERROR; an event attribute
        got = ok(server, "/api/v2/traces", **window, **q)
        assert [t[0]["traceId"] for t in got] == ["5b8efff798038103d269b633813fc60c"], q
