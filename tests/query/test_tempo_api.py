"""Query stage through the real server: spans sent by the OpenTelemetry SDK, read back through the Tempo API."""
from __future__ import annotations

import base64
import time

import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from conftest import Server

MS = 1_000_000
S = 1_000_000_000
# Trace IDs chosen so that Tempo's leading-zero trimming shows: A starts with eight zero digits.
TID_A = 0x00000000ab12cd34ef56ab78cd90ef12
TID_B = 0x7b1f2e3d4c5b6a7988776655443322aa
TID_C = 0x1c2d3e4f5a6b7c8d9eafb0c1d2e3f405  # the orphan: its parent span is never sent


class FixedTraceIds(RandomIdGenerator):
    """Random span IDs, trace IDs from a list (the SDK asks only when it starts a root span)."""

    def __init__(self, trace_ids):
        self.trace_ids = list(trace_ids)

    def generate_trace_id(self) -> int:
        return self.trace_ids.pop(0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("tempo") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def world(server):
    """Three traces with known services, kinds, statuses, durations and attributes.

    A (oldest, 1.2 s): frontend ``GET /checkout`` (server, GET 200) → frontend ``SELECT orders``
      (client, postgres, rows 42, ratio 0.75, cache.hit) and payments ``charge`` (server, error, 500).
    B (+5 s, 80 ms): cart ``POST /cart`` (server, ok, POST 201) → ``redis GET`` (client, 5 ms),
      ``render`` (internal, 20 ms).
    C (+10 s, 2.5 s): worker ``process job`` (consumer, job.id), child of a span never sent.
    """
    base = (int(time.time()) - 120) * S
    ids = FixedTraceIds([TID_A, TID_B])
    providers = {}

    def tracer(service: str, env: str):
        provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                            "deployment.environment": env}),
                                  id_generator=ids)
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.otlp_http)))
        providers[service] = provider
        return provider.get_tracer("clew-tests")

    frontend, payments = tracer("frontend", "prod"), tracer("payments", "staging")
    cart, worker = tracer("cart", "prod"), tracer("worker", "prod")
    spans = {}

    root = frontend.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=base,
                               attributes={"http.method": "GET", "http.status_code": 200})
    ctx = trace.set_span_in_context(root)
    db = frontend.start_span("SELECT orders", context=ctx, kind=SpanKind.CLIENT, start_time=base + 100 * MS,
                             attributes={"db.system": "postgres", "db.rows": 42, "ratio": 0.75,
                                         "cache.hit": True})
    db.end(end_time=base + 400 * MS)
    charge = payments.start_span("charge", context=ctx, kind=SpanKind.SERVER, start_time=base + 500 * MS,
                                 attributes={"http.status_code": 500, "region": "eu-west-1"})
    charge.set_status(Status(StatusCode.ERROR, "card declined"))
    charge.end(end_time=base + 1000 * MS)
    root.end(end_time=base + 1200 * MS)
    spans.update(a_root=root, a_db=db, a_charge=charge)

    b0 = base + 5 * S
    root = cart.start_span("POST /cart", kind=SpanKind.SERVER, start_time=b0,
                           attributes={"http.method": "POST", "http.status_code": 201})
    root.set_status(Status(StatusCode.OK))
    ctx = trace.set_span_in_context(root)
    redis = cart.start_span("redis GET", context=ctx, kind=SpanKind.CLIENT, start_time=b0 + 10 * MS,
                            attributes={"db.system": "redis"})
    redis.end(end_time=b0 + 15 * MS)
    render = cart.start_span("render", context=ctx, kind=SpanKind.INTERNAL, start_time=b0 + 50 * MS)
    render.end(end_time=b0 + 70 * MS)
    root.end(end_time=b0 + 80 * MS)
    spans.update(b_root=root, b_redis=redis, b_render=render)

    c0 = base + 10 * S
    missing_parent = SpanContext(TID_C, 0x0badc0ffee0ddf00, is_remote=True,
                                 trace_flags=TraceFlags(TraceFlags.SAMPLED))
    ctx = trace.set_span_in_context(NonRecordingSpan(missing_parent), otel_context.Context())
    job = worker.start_span("process job", context=ctx, kind=SpanKind.CONSUMER, start_time=c0,
                            attributes={"job.id": "j-1"})
    job.end(end_time=c0 + 2500 * MS)
    spans["c_job"] = job

    for provider in providers.values():
        provider.shutdown()
    world = {"base": base, "spans": spans,
             "A": tempo_id(TID_A), "B": tempo_id(TID_B), "C": tempo_id(TID_C)}
    # Ingest acknowledges after commit, so this should hold at once; allow a short retry.
    found = poll(server, {"q": "{}"}, lambda r: len(r["traces"]) == 3)
    assert len(found["traces"]) == 3, found
    return world


def tempo_id(tid: int) -> str:
    return f"{tid:032x}".lstrip("0")


def span_hex(span) -> str:
    return f"{span.get_span_context().span_id:016x}"


def search(server, **params) -> dict:
    r = requests.get(server.url("/api/search"), params=params, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def poll(server, params: dict, done, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = search(server, **params)
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def found(server, **params) -> list[str]:
    """Trace IDs a search lists, in order."""
    return [t["traceID"] for t in search(server, **params)["traces"]]


def ids(world, *names) -> set[str]:
    return {world[n] for n in names}


def bad(server, path: str, **params) -> str:
    r = requests.get(server.url(path), params=params, timeout=10)
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    return body["error"]


# --------------------------------------------------------------------------- echo and trace by ID


def test_echo(server):
    r = requests.get(server.url("/api/echo"))
    assert r.status_code == 200 and r.text == "echo"


def test_trace_by_id_v2_json_is_tempos_protobuf_json(server, world):
    r = requests.get(server.url(f"/api/v2/traces/{world['A']}"))
    assert r.status_code == 200
    body = r.json()
    assert set(body) <= {"trace", "metrics"}
    spans = [s for rs in body["trace"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"GET /checkout", "SELECT orders", "charge"}
    charge, sdk = by_name["charge"], world["spans"]["a_charge"]
    # Tempo's JSON is protobuf JSON: IDs in base64, enums by name, 64-bit integers as strings.
    assert base64.b64decode(charge["traceId"]).hex() == f"{TID_A:032x}"
    assert base64.b64decode(charge["spanId"]).hex() == span_hex(sdk)
    assert base64.b64decode(charge["parentSpanId"]).hex() == span_hex(world["spans"]["a_root"])
    assert charge["kind"] == "SPAN_KIND_SERVER"
    assert charge["status"] == {"message": "card declined", "code": "STATUS_CODE_ERROR"}
    assert charge["startTimeUnixNano"] == str(world["base"] + 500 * MS)
    services = {a["value"]["stringValue"] for rs in body["trace"]["resourceSpans"]
                for a in rs["resource"]["attributes"] if a["key"] == "service.name"}
    assert services == {"frontend", "payments"}


def trace_by_id_response():
    """Tempo's ``TraceByIDResponse { Trace trace = 1; }``, built here on OTLP's descriptors."""
    pool = descriptor_pool.DescriptorPool()

    def add(fd):
        for dep in fd.dependencies:
            add(dep)
        try:
            pool.FindFileByName(fd.name)
        except KeyError:
            proto = descriptor_pb2.FileDescriptorProto()
            fd.CopyToProto(proto)
            pool.Add(proto)

    add(trace_pb2.DESCRIPTOR)
    f = descriptor_pb2.FileDescriptorProto(name="tempo_test.proto", package="tempopb",
                                           dependency=[trace_pb2.DESCRIPTOR.name], syntax="proto3")
    msg = f.message_type.add(name="TraceByIDResponse")
    msg.field.add(name="trace", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                  type_name=".opentelemetry.proto.trace.v1.TracesData",
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tempopb.TraceByIDResponse"))


def test_trace_by_id_v2_protobuf(server, world):
    r = requests.get(server.url(f"/api/v2/traces/{world['B']}"), headers={"Accept": "application/protobuf"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/protobuf"
    resp = trace_by_id_response().FromString(r.content)
    spans = [s for rs in resp.trace.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(s.name for s in spans) == ["POST /cart", "redis GET", "render"]
    assert {s.span_id.hex() for s in spans} == {span_hex(world["spans"][k]) for k in ("b_root", "b_redis", "b_render")}
    assert all(s.trace_id.hex() == f"{TID_B:032x}" for s in spans)


def test_trace_by_id_v2_accepts_the_full_and_the_short_id(server, world):
    for tid in (world["A"], f"{TID_A:032x}", f"{TID_A:032X}"):
        r = requests.get(server.url(f"/api/v2/traces/{tid}"), params={"start": 1, "end": 2**31})
        assert r.status_code == 200, tid


def test_trace_by_id_v2_unknown_and_bad_ids(server, world):
    for accept in ("application/json", "application/protobuf"):
        r = requests.get(server.url("/api/v2/traces/1234abcd"), headers={"Accept": accept})
        assert r.status_code == 404
    assert "traceID" in bad(server, "/api/v2/traces/not-hex")
    assert "traceID" in bad(server, "/api/v2/traces/" + "1" * 33)
    assert "start" in bad(server, f"/api/v2/traces/{world['A']}", start="yesterday")


def test_tempo_protobuf_on_the_shared_v1_path(server, world):
    """``/api/traces/{id}`` belongs to the Jaeger blueprint; Tempo clients get protobuf there."""
    r = requests.get(server.url(f"/api/traces/{world['C']}"), headers={"Accept": "application/protobuf"})
    assert r.status_code == 200
    data = trace_pb2.TracesData.FromString(r.content)
    assert [s.name for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans] == ["process job"]


# --------------------------------------------------------------------------- search: shapes


def test_search_result_shape_for_tags(server, world):
    body = search(server, tags="service.name=payments")
    assert set(body) == {"traces", "metrics"}
    (t,) = body["traces"]
    assert t == {
        "traceID": world["A"],  # hex without leading zeros, as Tempo writes it
        "rootServiceName": "frontend",
        "rootTraceName": "GET /checkout",
        "startTimeUnixNano": str(world["base"]),
        "durationMs": 1200,
        "serviceStats": {"frontend": {"spanCount": 2}, "payments": {"spanCount": 1, "errorCount": 1}},
    }
    assert world["A"] == "ab12cd34ef56ab78cd90ef12"


def test_search_result_shape_for_traceql(server, world):
    body = search(server, q="{ status = error }")
    (t,) = body["traces"]
    charge = world["spans"]["a_charge"]
    spanset = {"spans": [{"spanID": span_hex(charge), "name": "charge",
                          "startTimeUnixNano": str(world["base"] + 500 * MS), "durationNanos": str(500 * MS),
                          "attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]}],
               "matched": 1}
    assert t["traceID"] == world["A"] and t["durationMs"] == 1200
    assert t["spanSet"] == spanset
    assert t["spanSets"] == [spanset]
    assert list(t) == ["traceID", "rootServiceName", "rootTraceName", "startTimeUnixNano", "durationMs",
                       "spanSet", "spanSets", "serviceStats"]


def test_trace_without_its_root_span(server, world):
    (t,) = search(server, q='{ span.job.id = "j-1" }')["traces"]
    assert t["traceID"] == world["C"]
    assert t["rootServiceName"] == "<root span not yet received>"
    assert "rootTraceName" not in t
    assert t["durationMs"] == 2500
    assert t["serviceStats"] == {"worker": {"spanCount": 1}}


def test_match_everything_newest_first_with_limit_and_spans_per_spanset(server, world):
    assert found(server, q="{}") == [world["C"], world["B"], world["A"]]
    assert found(server, q="{ true }") == [world["C"], world["B"], world["A"]]
    assert found(server) == [world["C"], world["B"], world["A"]]
    assert found(server, q="{}", limit=2) == [world["C"], world["B"]]
    assert found(server, tags="db.system=postgres", limit=1) == [world["A"]]
    traces = search(server, q="{}", spss=1)["traces"]
    b = next(t for t in traces if t["traceID"] == world["B"])
    assert len(b["spanSet"]["spans"]) == 1 and b["spanSet"]["matched"] == 3  # every span matches {}
    traces = search(server, q="{}")["traces"]
    b = next(t for t in traces if t["traceID"] == world["B"])
    assert {s["spanID"] for s in b["spanSet"]["spans"]} == \
        {span_hex(world["spans"][k]) for k in ("b_root", "b_redis", "b_render")}


# --------------------------------------------------------------------------- search: tags (logfmt)


@pytest.mark.parametrize("tags, expected", [
    ("service.name=payments", "A"),
    ("service.name=cart", "B"),
    ("http.status_code=500", "A"),  # an integer attribute, matched by its string form
    ('name="POST /cart"', "B"),
    ("name=charge service.name=payments", "A"),
    ("status.code=error", "A"),
    ("status.code=ok", "B"),
    ("root.service.name=cart", "B"),
    ('root.name="GET /checkout"', "A"),
    ("deployment.environment=staging", "A"),  # resource attributes count
    ("region=eu-west-1 http.status_code=500", "A"),
    ("job.id=j-1", "C"),
    ("cache.hit=true", "A"),
])
def test_tags_search(server, world, tags, expected):
    assert found(server, tags=tags) == [world[expected]]


def test_tags_must_hold_on_one_span(server, world):
    # frontend's spans are not in error; the error span is payments'.
    assert found(server, tags="service.name=frontend status.code=error") == []
    assert found(server, tags="http.method=GET http.status_code=500") == []


def test_min_and_max_duration_bound_the_whole_trace(server, world):
    assert set(found(server, minDuration="1s")) == ids(world, "A", "C")
    assert set(found(server, minDuration="1.2s")) == ids(world, "A", "C")  # inclusive
    assert found(server, minDuration="1201ms", maxDuration="2s") == []
    assert found(server, maxDuration="100ms") == [world["B"]]
    assert found(server, tags="service.name=frontend", maxDuration="1s") == []
    assert found(server, q="{ kind = server }", minDuration="1s") == [world["A"]]


def test_start_and_end_window(server, world):
    base_s = world["base"] // S
    assert found(server, start=base_s, end=base_s + 1) == [world["A"]]
    assert found(server, start=base_s + 5, end=base_s + 6) == [world["B"]]
    assert found(server, q="{}", start=base_s + 3, end=base_s + 30) == [world["C"], world["B"]]
    assert found(server, start=base_s - 100, end=base_s - 50) == []


# --------------------------------------------------------------------------- search: TraceQL


@pytest.mark.parametrize("q, expected", [
    # = on each scope
    ('{ resource.service.name = "payments" }', "A"),
    ('{ span.http.method = "POST" }', "B"),
    ('{ .deployment.environment = "staging" }', "A"),  # unscoped finds resource attributes
    ('{ .http.method = "GET" }', "A"),  # ... and span attributes
    ('{ span.deployment.environment = "staging" }', ""),  # span scope does not see the resource
    ('{ resource.http.method = "GET" }', ""),
    # !=: the attribute must be there with another value
    ('{ span.http.method != "GET" }', "B"),
    ('{ resource.service.name != "frontend" && kind = server }', "AB"),
    # regular expressions, anchored
    ('{ name =~ "GET.*" }', "A"),
    ('{ name =~ "GET" }', ""),
    ('{ span.db.system =~ "re.*" }', "B"),
    ('{ span.db.system !~ "post.*" }', "B"),
    ('{ name !~ ".*" }', ""),
    # numbers
    ("{ span.http.status_code >= 500 }", "A"),
    ("{ span.http.status_code > 500 }", ""),
    ("{ span.http.status_code < 300 }", "AB"),
    ("{ span.http.status_code <= 200 }", "A"),
    ("{ span.http.status_code = 201 }", "B"),
    ("{ span.http.status_code != 200 && kind = server }", "AB"),
    ("{ .db.rows > 40 }", "A"),
    ("{ .ratio <= 0.75 }", "A"),
    ("{ .ratio < 0.75 }", ""),
    ("{ .ratio = 0.75 }", "A"),
    # booleans and existence
    ("{ .cache.hit = true }", "A"),
    ("{ .cache.hit = false }", ""),
    ("{ .job.id != nil }", "C"),
    ("{ span.region != nil && status = error }", "A"),
    # span duration
    ("{ duration > 2s }", "C"),
    ("{ duration >= 2.5s }", "C"),
    ("{ duration < 10ms }", "B"),
    ("{ duration = 500ms }", "A"),
    ("{ duration > 100ms && duration < 400ms }", "A"),
    # status and kind
    ("{ status = error }", "A"),
    ("{ status = ok }", "B"),
    ("{ status != unset && kind = client }", ""),
    ("{ kind = consumer }", "C"),
    ("{ kind = internal }", "B"),
    ("{ kind = client }", "AB"),
    ("{ span:kind = server && span:status = error }", "A"),
    # trace-level intrinsics
    ("{ trace:duration > 1s }", "AC"),
    ("{ trace:duration < 1s }", "B"),
    ("{ traceDuration >= 1200ms && traceDuration <= 1200ms }", "A"),
    ('{ trace:rootService = "cart" }', "B"),
    ('{ rootServiceName = "frontend" }', "A"),
    ('{ trace:rootName = "GET /checkout" }', "A"),
    ('{ rootName = "POST /cart" && name = "redis GET" }', "B"),
    ('{ trace:rootService = "frontend" && resource.service.name = "payments" }', "A"),
    # || and parentheses
    ('{ resource.service.name = "cart" || kind = consumer }', "BC"),
    ('{ (name = "charge" || name = "render") && kind = server }', "A"),
    ('{ name = "charge" || (name = "render" && kind = server) }', "A"),
    ('{ trace:duration > 1s && (kind = consumer || status = error) }', "AC"),
    # && holds on one span
    ('{ resource.service.name = "frontend" && status = error }', ""),
])
def test_traceql_search(server, world, q, expected):
    assert set(found(server, q=q)) == {world[c] for c in expected}, q


def test_traceql_spansets_list_the_matching_spans(server, world):
    (t,) = search(server, q='{ resource.service.name = "frontend" }')["traces"]
    assert {s["spanID"] for s in t["spanSet"]["spans"]} == \
        {span_hex(world["spans"]["a_root"]), span_hex(world["spans"]["a_db"])}
    assert t["spanSet"]["matched"] == 2
    assert {s["name"] for s in t["spanSet"]["spans"]} == {"GET /checkout", "SELECT orders"}


# --------------------------------------------------------------------------- search: refusals


@pytest.mark.parametrize("q, named", [
    ("{ .a = 1 } | count() > 1", "pipelines"),
    ("{ .a = 1 } | select(span.b)", "pipelines"),
    ("{ .a = 1 } >> { .b = 1 }", "structural operators ('>>'"),
    ("{ .a = 1 } && { .b = 1 }", "spanset operators ('&&'"),
    ("{ event.name = \"x\" }", "'event.' scope"),
    ("{ link:traceID = \"x\" }", "intrinsic 'link:traceID'"),
    ("avg(duration)", "avg() is not supported"),
    ("{ .a = 1 || trace:duration > 1s }", "trace-level condition trace:duration"),
    ('{ name =~ "(" }', "bad regular expression"),
    ("{ status = \"error\" }", "status compares with one of"),
    ("{ .a = 1", "col 9"),
])
def test_traceql_outside_the_subset_is_refused(server, world, q, named):
    error = bad(server, "/api/search", q=q)
    assert error.startswith("q: ") and named in error, error


@pytest.mark.parametrize("params, named", [
    ({"q": "{}", "tags": "a=b"}, "q, tags"),
    ({"tags": "service.name"}, "tags"),
    ({"tags": "a=1 a=2"}, "set twice"),
    ({"tags": 'a="unterminated'}, "tags"),
    ({"tags": "a=b=c"}, "tags"),
    ({"tags": "status.code=broken"}, "status.code"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "1000000"}, "limit"),
    ({"spss": "-1"}, "spss"),
    ({"start": "yesterday"}, "start"),
    ({"end": "1.5"}, "end"),
    ({"start": "200", "end": "100"}, "end"),
    ({"minDuration": "fast"}, "minDuration"),
    ({"maxDuration": "-1s"}, "maxDuration"),
    ({"minDuration": "2s", "maxDuration": "1s"}, "maxDuration"),
])
def test_bad_search_parameters(server, world, params, named):
    assert named in bad(server, "/api/search", **params)


# --------------------------------------------------------------------------- tag names


def test_tag_names_v1(server, world):
    r = requests.get(server.url("/api/search/tags"))
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["tagNames"]
    names = body["tagNames"]
    assert {"http.method", "http.status_code", "db.system", "region", "job.id",
            "service.name", "deployment.environment"} <= set(names)
    assert names == sorted(set(names))
    assert "status" not in names  # intrinsics only when asked
    intrinsic = requests.get(server.url("/api/search/tags"), params={"scope": "intrinsic"}).json()["tagNames"]
    assert {"name", "status", "kind", "duration", "trace:duration", "trace:rootService"} <= set(intrinsic)
    resource = requests.get(server.url("/api/search/tags"), params={"scope": "resource"}).json()["tagNames"]
    assert "deployment.environment" in resource and "http.method" not in resource


def test_tag_names_v2(server, world):
    r = requests.get(server.url("/api/v2/search/tags"), params={"start": world["base"] // S - 60,
                                                                "end": world["base"] // S + 60})
    assert r.status_code == 200
    scopes = {s["name"]: s["tags"] for s in r.json()["scopes"]}
    assert [s["name"] for s in r.json()["scopes"]] == ["span", "resource", "intrinsic"]
    assert {"http.method", "db.system", "cache.hit", "job.id"} <= set(scopes["span"])
    assert "service.name" not in scopes["span"]
    assert {"service.name", "deployment.environment"} <= set(scopes["resource"])
    assert "http.method" not in scopes["resource"]
    assert {"name", "status", "kind", "duration", "trace:duration", "trace:rootService"} <= set(scopes["intrinsic"])
    only = requests.get(server.url("/api/v2/search/tags"), params={"scope": "span"}).json()
    assert [s["name"] for s in only["scopes"]] == ["span"]


def test_tag_names_outside_the_window_are_empty(server, world):
    base_s = world["base"] // S
    r = requests.get(server.url("/api/v2/search/tags"), params={"start": base_s - 7200, "end": base_s - 3600})
    scopes = {s["name"]: s["tags"] for s in r.json()["scopes"]}
    assert scopes["span"] == [] and scopes["resource"] == []


def test_bad_tag_name_parameters(server, world):
    assert "scope" in bad(server, "/api/search/tags", scope="everything")
    assert "scope" in bad(server, "/api/v2/search/tags", scope="spans")
    assert "end" in bad(server, "/api/v2/search/tags", start="100", end="50")


# --------------------------------------------------------------------------- tag values


def test_tag_values_v1(server, world):
    r = requests.get(server.url("/api/search/tag/service.name/values"))
    assert r.status_code == 200
    assert r.json() == {"tagValues": ["cart", "frontend", "payments", "worker"]}
    names = requests.get(server.url("/api/search/tag/name/values")).json()["tagValues"]
    assert {"GET /checkout", "charge", "POST /cart", "process job"} <= set(names)
    codes = requests.get(server.url("/api/search/tag/http.status_code/values")).json()["tagValues"]
    assert codes == ["200", "201", "500"]


def values_v2(server, tag, **params):
    r = requests.get(server.url(f"/api/v2/search/tag/{tag}/values"), params=params)
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["tagValues"]
    return r.json()["tagValues"]


def test_tag_values_v2_types(server, world):
    assert values_v2(server, "resource.service.name") == [
        {"type": "string", "value": v} for v in ("cart", "frontend", "payments", "worker")]
    assert values_v2(server, "span.http.status_code") == [
        {"type": "int", "value": v} for v in ("200", "201", "500")]
    assert values_v2(server, ".ratio") == [{"type": "float", "value": "0.75"}]
    assert values_v2(server, "span.cache.hit") == [{"type": "bool", "value": "true"}]
    assert values_v2(server, ".deployment.environment") == [
        {"type": "string", "value": "prod"}, {"type": "string", "value": "staging"}]
    assert values_v2(server, "resource.http.method") == []


def test_tag_values_v2_intrinsics(server, world):
    assert {v["value"] for v in values_v2(server, "status")} == {"error", "ok", "unset"}
    assert {v["type"] for v in values_v2(server, "kind")} == {"keyword"}
    assert {"server", "client", "consumer", "internal"} <= {v["value"] for v in values_v2(server, "kind")}
    names = values_v2(server, "name")
    assert {"type": "string", "value": "SELECT orders"} in names
    assert {v["value"] for v in values_v2(server, "trace:rootService")} >= {"frontend", "cart"}


def test_tag_values_v2_narrowed_by_the_service_in_q(server, world):
    q = '{ resource.service.name = "payments" }'
    assert values_v2(server, "span.http.status_code", q=q) == [{"type": "int", "value": "500"}]
    assert {v["value"] for v in values_v2(server, "name", q='{ resource.service.name = "cart" }')} == \
        {"POST /cart", "redis GET", "render"}
    # An incomplete query narrows nothing, as in Tempo.
    assert len(values_v2(server, "span.http.status_code", q="{ resource.service.name = }")) == 3


def test_bad_tag_value_names(server, world):
    assert "tagName" in bad(server, "/api/v2/search/tag/service.name/values")  # needs a scope
    assert "tagName" in bad(server, "/api/v2/search/tag/statusMessage/values")
    assert "limit" in bad(server, "/api/v2/search/tag/status/values", limit="0")
    assert "start" in bad(server, "/api/search/tag/service.name/values", start="x")
