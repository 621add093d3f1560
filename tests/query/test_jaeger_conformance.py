"""Query stage through the real server: Jaeger's storage conformance suite, run through Clew's HTTP APIs.

``shared/conformance/jaeger/README.md`` §3–§4 describes the suite; this module drives it the way
the upstream harness (``internal/storage/integration/integration.go``) does, except that every
write and read goes over the wire:

* **Current corpus** — every OTLP fixture in ``traces/`` goes in through the OTLP/HTTP receiver
  after the harness's date rewrite (2017-01-25 → today−2, any other date → today−1, time of
  day kept, for span start/end and event times; the same text rewrite on ``queries.json``).
  All 25 cases then run through ``/api/traces`` (tags as Grafana sends them, a JSON map of
  strings, and again as repeated ``tag=k:v``) and through ``/api/v3/traces``.  Each must return
  exactly the expected traces, each whole (every span ID).  Loading *every* fixture, not only
  the ones the cases name, makes over-matching fail too.
* **Legacy corpus** — the Jaeger-model fixtures go in through Clew's Jaeger gRPC receiver
  (``jaeger.api_v2.CollectorService/PostSpans``), encoded by the api_v2 protobuf modules
  generated for the legacy OpenTelemetry Jaeger exporter and sent with grpcio, both from
  ``.venv-legacy`` (tests/legacy/env.py).  Its 22 cases run through both APIs.  As the
  harness does, only fixtures named by some case are written: the legacy ``default`` trace
  has the trace ID 0x11 of ``example_trace``, which is therefore not loaded there.
* **The other cases of §4**, each on its own fresh server: services, operations with span
  kinds, get trace and an unknown trace, the 10,008-span trace, 200 spans with repeated span
  IDs, trace summaries, search without a service name, dependencies.
"""
from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import requests

from conftest import CONFORMANCE, Server, json_shape

JAEGER = CONFORMANCE / "jaeger"
JSON = {"Content-Type": "application/json"}
GOLDEN = JAEGER / "query-api" / "apiv3-snapshots"

TODAY = datetime.now(timezone.utc).date()
YESTERDAY = TODAY - timedelta(days=1)
TWO_DAYS_AGO = TODAY - timedelta(days=2)
FIXTURE_EVE = date(2017, 1, 25)


# --------------------------------------------------------------------------- the harness's date rewrite


def shift_ns(ns: int) -> int:
    """A fixture timestamp moved to today−2 (if dated 2017-01-25) or today−1, time of day kept."""
    seconds, frac = divmod(ns, 10**9)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    day = TWO_DAYS_AGO if moment.date() == FIXTURE_EVE else YESTERDAY
    return int(datetime.combine(day, moment.time(), tzinfo=timezone.utc).timestamp()) * 10**9 + frac


def rewrite_otlp(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for span in spans_of(doc):
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            span[key] = str(shift_ns(int(span[key])))
        for event in span.get("events", ()):
            event["timeUnixNano"] = str(shift_ns(int(event["timeUnixNano"])))
    return doc


def rewrite_text(raw: str) -> str:
    """The harness's plain text rewrite of query files and legacy Jaeger-model fixtures."""
    return raw.replace("2017-01-26", YESTERDAY.isoformat()).replace("2017-01-25", TWO_DAYS_AGO.isoformat())


def spans_of(doc: dict):
    for rs in doc["resourceSpans"]:
        for ss in rs.get("scopeSpans", ()):
            yield from ss.get("spans", ())


# --------------------------------------------------------------------------- queries over HTTP


def ns_of(rfc3339: str) -> int:
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def as_jaeger_string(value) -> str:
    """A typed query value in the string form a Jaeger HTTP client sends."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def classic_params(q: dict, tag_style: str) -> list:
    params = [("service", q["ServiceName"]),
              ("start", ns_of(q["StartTimeMin"]) // 1000), ("end", ns_of(q["StartTimeMax"]) // 1000),
              ("limit", q["NumTraces"])]
    if q["OperationName"]:
        params.append(("operation", q["OperationName"]))
    if q["DurationMin"]:
        params.append(("minDuration", f"{q['DurationMin']}ns"))
    if q["DurationMax"]:
        params.append(("maxDuration", f"{q['DurationMax']}ns"))
    tags = {k: as_jaeger_string(v) for k, v in (q["Tags"] or {}).items()}
    if tags and tag_style == "tags":
        params.append(("tags", json.dumps(tags)))
    elif tags:
        params += [("tag", f"{k}:{v}") for k, v in tags.items()]
    return params


def v3_params(q: dict) -> dict:
    params = {"query.serviceName": q["ServiceName"], "query.startTimeMin": q["StartTimeMin"],
              "query.startTimeMax": q["StartTimeMax"], "query.searchDepth": q["NumTraces"]}
    if q["OperationName"]:
        params["query.operationName"] = q["OperationName"]
    if q["DurationMin"]:
        params["query.durationMin"] = f"{q['DurationMin']}ns"
    if q["DurationMax"]:
        params["query.durationMax"] = f"{q['DurationMax']}ns"
    if q["Tags"]:
        params["query.attributes"] = json.dumps({k: as_jaeger_string(v) for k, v in q["Tags"].items()})
    return params


def found_classic(server, params) -> dict:
    """{trace ID: sorted span IDs} of a classic search (IDs as integers)."""
    r = requests.get(server.url("/api/traces"), params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] is None
    out = {}
    for trace in body["data"]:
        tid = int(trace["traceID"], 16)
        assert tid not in out, f"trace {trace['traceID']} listed twice"
        assert {int(s["traceID"], 16) for s in trace["spans"]} == {tid}
        out[tid] = sorted(int(s["spanID"], 16) for s in trace["spans"])
    return out


def found_v3(server, params) -> dict:
    r = requests.get(server.url("/api/v3/traces"), params=params)
    if r.status_code == 404:
        assert r.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
        return {}
    assert r.status_code == 200, r.text
    return span_ids_by_trace(r.json()["result"])


def span_ids_by_trace(otlp: dict) -> dict:
    out: dict = {}
    for span in spans_of(otlp):
        out.setdefault(int(span["traceId"], 16), []).append(int(span["spanId"], 16))
    return {tid: sorted(ids) for tid, ids in out.items()}


def run_case(server, api: str, q: dict) -> dict:
    if api == "v3":
        return found_v3(server, v3_params(q))
    return found_classic(server, classic_params(q, "tags" if api == "v1-tags" else "tag"))


APIS = ("v1-tags", "v1-tag", "v3")


# --------------------------------------------------------------------------- current corpus (OTLP)


def otlp_fixtures() -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted((JAEGER / "traces").glob("*.json"))}


OTLP_CASES = json.loads(rewrite_text((JAEGER / "queries.json").read_text()))


@pytest.fixture(scope="module")
def otlp_corpus(tmp_path_factory):
    """A server holding every OTLP fixture; yields (server, {fixture: {trace ID: span IDs}})."""
    srv = Server(tmp_path_factory.mktemp("jaeger-otlp") / "data").start()
    expected = {}
    try:
        for name, doc in otlp_fixtures().items():
            doc = rewrite_otlp(doc)
            r = requests.post(srv.otlp_http, data=json.dumps(doc), headers=JSON)
            assert r.status_code == 200 and r.json() == {}, (name, r.text)
            expected[name] = span_ids_by_trace(doc)
        yield srv, expected
    finally:
        srv.stop()


def test_the_suite_has_25_cases_over_every_fixture():
    assert len(OTLP_CASES) == 25
    named = {f for c in OTLP_CASES for f in c["ExpectedFixtures"]}
    assert named <= set(otlp_fixtures())


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("case", OTLP_CASES, ids=[c["Caption"] for c in OTLP_CASES])
def test_find_traces_current_corpus(otlp_corpus, case, api):
    server, fixtures = otlp_corpus
    want = {}
    for name in case["ExpectedFixtures"]:
        want.update(fixtures[name])
    assert run_case(server, api, case["Query"]) == want


# --------------------------------------------------------------------------- legacy corpus (Jaeger gRPC)

LEGACY = JAEGER / "legacy-v1-model"
LEGACY_CASES = json.loads(rewrite_text((LEGACY / "queries.json").read_text()))

# Runs in .venv-legacy: the legacy exporter's generated api_v2 modules and grpcio send each
# trace as one PostSpans call.  Reads {"endpoint", "traces": [[span JSON, ...], ...]} on stdin.
SEND_LEGACY = """
import json, sys
import grpc
from google.protobuf import json_format
from opentelemetry.exporter.jaeger.proto.grpc.gen import collector_pb2, collector_pb2_grpc, model_pb2

job = json.load(sys.stdin)
with grpc.insecure_channel(job["endpoint"]) as channel:
    stub = collector_pb2_grpc.CollectorServiceStub(channel)
    sent = 0
    for spans in job["traces"]:
        batch = model_pb2.Batch(spans=[json_format.ParseDict(s, model_pb2.Span()) for s in spans])
        stub.PostSpans(collector_pb2.PostSpansRequest(batch=batch), timeout=30)
        sent += len(spans)
print(json.dumps({"sent": sent}))
"""


def canonical_durations(raw: str) -> str:
    """``"7000ns"`` (gogo jsonpb's Duration text in these files) → proto3's ``"0.000007000s"``."""
    def repl(m):
        seconds, nanos = divmod(int(m.group(1)), 10**9)
        return f'"duration": "{seconds}.{nanos:09d}s"'
    return re.sub(r'"duration":\s*"(\d+)ns"', repl, raw)


def b64_int(text: str) -> int:
    return int.from_bytes(base64.b64decode(text), "big")


@pytest.fixture(scope="module")
def legacy_corpus(tmp_path_factory):
    from legacy.env import legacy_python

    python = legacy_python()
    named = sorted({f for c in LEGACY_CASES for f in c["ExpectedFixtures"]})
    traces, expected = [], {}
    for name in named:
        doc = json.loads(canonical_durations(rewrite_text((LEGACY / "traces" / f"{name}.json").read_text())))
        traces.append(doc["spans"])
        ids: dict = {}
        for span in doc["spans"]:
            ids.setdefault(b64_int(span["traceId"]), []).append(b64_int(span["spanId"]))
        expected[name] = {tid: sorted(v) for tid, v in ids.items()}
    srv = Server(tmp_path_factory.mktemp("jaeger-legacy") / "data").start()
    try:
        job = json.dumps({"endpoint": srv.addr("jaeger_grpc"), "traces": traces})
        proc = subprocess.run([str(python), "-c", SEND_LEGACY], input=job, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout) == {"sent": sum(len(t) for t in traces)}
        yield srv, expected
    finally:
        srv.stop()


def test_the_legacy_suite_has_22_cases():
    assert len(LEGACY_CASES) == 22


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("case", LEGACY_CASES, ids=[c["Caption"] for c in LEGACY_CASES])
def test_find_traces_legacy_corpus_through_jaeger_grpc(legacy_corpus, case, api):
    server, fixtures = legacy_corpus
    want = {}
    for name in case["ExpectedFixtures"]:
        want.update(fixtures[name])
    assert run_case(server, api, case["Query"]) == want


# --------------------------------------------------------------------------- the other cases of §4


def example_trace() -> dict:
    return rewrite_otlp(json.loads((JAEGER / "traces" / "example_trace.json").read_text()))


def post(server, doc: dict) -> None:
    r = requests.post(server.otlp_http, data=json.dumps(doc), headers=JSON)
    assert r.status_code == 200 and r.json() == {}, r.text[:500]


@pytest.fixture(scope="module")
def example_server(tmp_path_factory):
    """A server holding only ``example_trace``."""
    srv = Server(tmp_path_factory.mktemp("jaeger-example") / "data").start()
    try:
        post(srv, example_trace())
        yield srv
    finally:
        srv.stop()


def test_get_services(example_server):
    want = ["example-service-1", "example-service-2", "example-service-3"]
    body = requests.get(example_server.url("/api/services")).json()
    assert body == {"data": want, "total": 3, "limit": 0, "offset": 0, "errors": None}
    assert requests.get(example_server.url("/api/v3/services")).json() == {"services": want}


def test_get_operations_with_span_kinds(example_server):
    body = requests.get(example_server.url("/api/operations"), params={"service": "example-service-1"}).json()
    assert body["data"] == [{"name": "example-operation-1", "spanKind": ""},
                            {"name": "example-operation-3", "spanKind": "server"},
                            {"name": "example-operation-4", "spanKind": "client"}]
    assert body["total"] == 3 and body["errors"] is None
    body = requests.get(example_server.url("/api/services/example-service-1/operations")).json()
    assert body["data"] == ["example-operation-1", "example-operation-3", "example-operation-4"]
    assert body["total"] == 3
    # api_v3 writes an unspecified kind as "internal", as Jaeger's gateway does.
    body = requests.get(example_server.url("/api/v3/operations"), params={"service": "example-service-1"}).json()
    assert body == {"operations": [{"name": "example-operation-1", "spanKind": "internal"},
                                   {"name": "example-operation-3", "spanKind": "server"},
                                   {"name": "example-operation-4", "spanKind": "client"}]}
    for path, key in (("/api/operations", "spanKind"), ("/api/v3/operations", "spanKind")):
        r = requests.get(example_server.url(path), params={"service": "example-service-1", key: "client"})
        ops = r.json()["data"] if path == "/api/operations" else r.json()["operations"]
        assert ops == [{"name": "example-operation-4", "spanKind": "client"}]


def test_get_trace_and_unknown_trace(example_server):
    want = span_ids_by_trace(example_trace())
    body = requests.get(example_server.url("/api/traces/0000000000000011")).json()
    assert len(body["data"]) == 1 and body["data"][0]["traceID"] == "0000000000000011"
    assert {0x11: sorted(int(s["spanID"], 16) for s in body["data"][0]["spans"])} == want
    r = requests.get(example_server.url("/api/v3/traces/00000000000000000000000000000011"))
    assert span_ids_by_trace(r.json()["result"]) == want
    r = requests.get(example_server.url("/api/traces/0000000000000001"))
    assert r.status_code == 404
    assert r.json() == {"data": None, "total": 0, "limit": 0, "offset": 0,
                        "errors": [{"code": 404, "msg": "trace not found"}]}
    r = requests.get(example_server.url("/api/v3/traces/00000000000000000000000000000001"))
    assert r.status_code == 404 and r.json()["error"]["httpCode"] == 404


shape = json_shape


def test_find_trace_summaries(example_server):
    doc = example_trace()
    starts = [int(s["startTimeUnixNano"]) for s in spans_of(doc)]
    ends = [int(s["endTimeUnixNano"]) for s in spans_of(doc)]
    fmt = lambda ns: datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    r = requests.get(example_server.url("/api/v3/trace-summaries"), params={
        "query.serviceName": "example-service-2", "query.searchDepth": 10,
        "query.startTimeMin": fmt(min(starts) - 60 * 10**9), "query.startTimeMax": fmt(max(ends) + 60 * 10**9)})
    assert r.status_code == 200, r.text
    summaries = r.json()["summaries"]
    assert len(summaries) == 1
    s = summaries[0]
    golden = json.loads((GOLDEN / "FindTraceSummaries.json").read_text())
    assert shape(r.json()) == shape(golden)  # exactly the snapshot's fields, with its types
    assert s["traceId"] == "00000000000000000000000000000011"
    assert s["spanCount"] == 5 and s["errorSpanCount"] == 0
    assert int(s["minStartTimeUnixNano"]) == min(starts) and int(s["maxEndTimeUnixNano"]) == max(ends)
    assert s["services"] == [{"errorSpanCount": 0, "name": f"example-service-{i}", "spanCount": n}
                             for i, n in ((1, 3), (2, 1), (3, 1))]


def clones(count: int, dup_every: int) -> tuple[dict, dict]:
    """The harness's generated trace: example_trace with its first scope's spans replaced by
    ``count`` clones of its first span, span IDs 1…count (every ``dup_every``-th, from the
    ``dup_every``-th on, keeping the original ID), each shifted by i+1 seconds."""
    doc = example_trace()
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    original = spans[0]
    out = []
    for i in range(count):
        span = copy.deepcopy(original)
        if dup_every and i > 0 and i % dup_every == 0:
            span["spanId"] = original["spanId"]
        else:
            span["spanId"] = f"{i + 1:016x}"
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            span[key] = str(int(span[key]) + (i + 1) * 10**9)
        out.append(span)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = out
    return doc, span_ids_by_trace(doc)


def read_both(server, trace_hex16: str) -> tuple[dict, dict]:
    r = requests.get(server.url(f"/api/traces/{trace_hex16}"))
    assert r.status_code == 200
    trace = r.json()["data"][0]
    classic = {int(trace["traceID"], 16): sorted(int(s["spanID"], 16) for s in trace["spans"])}
    r = requests.get(server.url(f"/api/v3/traces/{trace_hex16}"))
    assert r.status_code == 200
    return classic, span_ids_by_trace(r.json()["result"])


def test_get_large_trace(server_factory):
    server = server_factory("limits.max_spans_per_trace=20000")
    doc, want = clones(10_008, 0)
    assert len(want[0x11]) == 10_012  # the clones and example_trace's other four spans
    post(server, doc)
    classic, v3 = read_both(server, "0000000000000011")
    assert classic == want and v3 == want


def test_get_trace_with_duplicate_span_ids(server_factory):
    server = server_factory()
    doc, want = clones(200, 20)
    ids = want[0x11]
    assert len(ids) == 204 and ids.count(4) == 10  # span 4 itself (i = 3) and i = 20, 40 … 180
    post(server, doc)
    classic, v3 = read_both(server, "0000000000000011")
    assert classic == want and v3 == want


def one_span_resource(service: str, trace_id: int, span_id: int, start_ns: int, parent: int | None = None,
                      attributes: dict | None = None) -> dict:
    span = {"traceId": f"{trace_id:032x}", "spanId": f"{span_id:016x}", "name": f"{service}-op",
            "kind": 2, "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + 1_000_000),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in (attributes or {}).items()]}
    if parent is not None:
        span["parentSpanId"] = f"{parent:016x}"
    return {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {}, "spans": [span]}]}


def test_find_traces_without_service_name(server_factory):
    server = server_factory()
    now = time.time_ns()
    post(server, {"resourceSpans": [
        one_span_resource("cross-service-a", 0xA1, 1, now, attributes={"rfc0013.cross.service": "yes"}),
        one_span_resource("cross-service-b", 0xB1, 1, now, attributes={"rfc0013.cross.service": "yes"}),
        one_span_resource("cross-service-c", 0xC1, 1, now, attributes={"rfc0013.cross.service": "no"})]})
    want = {0xA1: [1], 0xB1: [1]}
    window = {"start": (now - 60 * 10**9) // 1000, "end": (now + 60 * 10**9) // 1000}
    assert found_classic(server, {"tags": json.dumps({"rfc0013.cross.service": "yes"}), **window}) == want
    fmt = lambda ns: datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    assert found_v3(server, {"query.attributes": json.dumps({"rfc0013.cross.service": "yes"}),
                             "query.startTimeMin": fmt(now - 60 * 10**9),
                             "query.startTimeMax": fmt(now + 60 * 10**9)}) == want


def test_get_dependencies(server_factory):
    server = server_factory()
    now = time.time_ns()
    # hello → world once; world → hello three times (spans whose parent is in the other service).
    post(server, {"resourceSpans": [
        one_span_resource("hello", 0xD1, 1, now),
        one_span_resource("world", 0xD1, 2, now, parent=1),
        one_span_resource("world", 0xD2, 1, now),
        *(one_span_resource("hello", 0xD2, 10 + i, now, parent=1) for i in range(3))]})
    now_ms = now // 1_000_000
    r = requests.get(server.url("/api/dependencies"), params={"endTs": now_ms + 300_000, "lookback": 300_000})
    assert r.status_code == 200
    assert r.json() == {"data": [{"parent": "hello", "child": "world", "callCount": 1, "errorCount": 0},
                                 {"parent": "world", "child": "hello", "callCount": 3, "errorCount": 0}],
                        "total": 0, "limit": 0, "offset": 0, "errors": None}
