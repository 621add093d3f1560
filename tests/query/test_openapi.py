"""Query stage: ``GET /api/openapi.json`` — a well-formed OpenAPI 3.1 document that lists exactly the
routes the query app serves, and whose schemas the live server's answers satisfy.

Neither ``openapi-spec-validator`` nor ``jsonschema`` is installed in the project's venv, so:

* the document's OpenAPI 3.1 structure is checked here (fields allowed per object, path
  templates against path parameters, unique operation IDs, declared tags, every ``$ref``
  resolving, every component schema used);
* responses are validated by ``check`` below, a small JSON Schema validator for the keywords
  the document uses — and a test fails if the document starts using a keyword it does not know,
  so a schema can never be silently half-checked.
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

import pytest
import requests

from collector.config import Config
from collector.metrics import Metrics
from conftest import Server, otlp_json_attributes
from query.app import create_app
from query.openapi import document

JSON = {"Content-Type": "application/json"}
PROTOBUF = {"Accept": "application/protobuf"}
NOW = time.time_ns()
BASE = NOW - 10 * 60 * 10**9  # the traces start ten minutes ago
MS = 1_000_000
T1 = "5b8efff798038103d269b633813fc60c"  # 128-bit
T2 = "00000000000000000000000000c0ffee"  # 64-bit: Jaeger and Zipkin write it with 16 digits
MISSING = "0123456789abcdef0123456789abcdef"
# link templates, so /api/v1/traces/{id}/links answers with links to check against the schema
LINKS = ('correlation.links=[{name = "Logs", scope = "trace", url = "https://logs.example/?q={trace_id}"},'
         ' {name = "Span", scope = "span", url = "https://apm.example/{service}/{span_id}"}]')
TAG_NAMES = {"Jaeger v1", "Jaeger api_v3", "Zipkin v2", "Tempo", "Operations", "Sampling", "Storage",
             "Trace structure", "Correlation", "Metrics", "Alerting"}


# --------------------------------------------------------------------------- the app's routes


class NoReader:
    """Stands in for the store: building the app must not read anything."""

    def __getattr__(self, name):
        raise AssertionError(f"the app read the store ({name}) while being built")


class NoSampling(NoReader):
    """Stands in for the sampling object: building the app must not call it."""


class NoLifecycle(NoReader):
    """Stands in for the storage lifecycle and the writer: building the app must not call them."""


def app_routes() -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every rule of the Quart app, HEAD/OPTIONS and static left out."""
    app = create_app(Config(), NoReader(), Metrics(), sampling=NoSampling(), lifecycle=NoLifecycle(),
                     writer=NoLifecycle())
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((path, method.lower()))
    return out


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def doc_operations(doc) -> dict[tuple[str, str], dict]:
    return {(path, method): op for path, item in doc["paths"].items()
            for method, op in item.items() if method in HTTP_METHODS}


# --------------------------------------------------------------------------- JSON Schema subset

ANNOTATIONS = {"description", "format", "examples", "default", "deprecated", "title", "contentMediaType"}
ASSERTIONS = {"$ref", "allOf", "type", "enum", "const", "required", "properties", "additionalProperties",
              "items", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern"}
TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


def resolve(root: dict, ref: str):
    assert ref.startswith("#/"), f"only local references are used, not {ref}"
    node = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _is(value, typ: str) -> bool:
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"object": dict, "array": list, "string": str, "boolean": bool,
                              "null": type(None)}[typ])


def check(value, schema: dict, root: dict, where: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (a subset of JSON Schema 2020-12), as messages."""
    errors = []
    unknown = set(schema) - ASSERTIONS - ANNOTATIONS
    assert not unknown, f"schema keyword(s) {unknown} not handled by this validator"
    if "$ref" in schema:
        errors += check(value, resolve(root, schema["$ref"]), root, where)
    for sub in schema.get("allOf", ()):
        errors += check(value, sub, root, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, t) for t in types):
            return errors + [f"{where}: {value!r:.80} is not of type {types}"]
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        errors.append(f"{where}: {value!r:.80} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r:.80} is not {schema['const']!r}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r:.80} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{where}: length {len(value)} out of bounds")
    if _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where}: {len(value)} items out of bounds")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += check(item, schema["items"], root, f"{where}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{where}: required {key!r} missing")
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += check(item, props[key], root, f"{where}.{key}")
            elif "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    errors.append(f"{where}: unexpected {key!r}")
                elif isinstance(extra, dict):
                    errors += check(item, extra, root, f"{where}.{key}")
    return errors


def test_check_catches_what_it_claims_to():
    """The validator is the test's eyes: it must fail bad values, not only pass good ones."""
    root = {"components": {"schemas": {"P": {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "integer", "minimum": 1}, "b": {"type": ["string", "null"], "pattern": "^x"},
        "c": {"type": "array", "items": {"enum": ["u", "v"]}, "maxItems": 2},
        "d": {"allOf": [{"$ref": "#/components/schemas/Q"}]}}}, "Q": {"const": True}}}}
    schema = {"$ref": "#/components/schemas/P"}
    assert check({"a": 1, "b": None, "c": ["u"], "d": True}, schema, root) == []
    for bad in ({}, {"a": 0}, {"a": True}, {"a": 1, "b": "y"}, {"a": 1, "c": ["w"]},
                {"a": 1, "c": ["u", "u", "u"]}, {"a": 1, "d": False}, {"a": "1"}, []):
        assert check(bad, schema, root), bad
    with pytest.raises(AssertionError, match="not handled"):
        check(1, {"oneOf": []}, root)


# --------------------------------------------------------------------------- fixtures


_attrs = otlp_json_attributes


def _span(tid, sid, name, kind, start_ms, end_ms, *, parent=None, **extra) -> dict:
    out = {"traceId": tid, "spanId": f"{sid:016x}", "name": name, "kind": kind,
           "startTimeUnixNano": str(BASE + start_ms * MS), "endTimeUnixNano": str(BASE + end_ms * MS)}
    if parent:
        out["parentSpanId"] = f"{parent:016x}"
    out.update(extra)
    return out


def traces() -> dict:
    """T1: frontend ``GET /checkout`` (server, with an event) → ``call payments`` (client,
    peer.service) → payments ``charge`` (server, ERROR, a link to T2).  T2: frontend ``GET /health`` (OK)."""
    scope = {"name": "shop", "version": "1.0"}
    frontend = [
        _span(T1, 1, "GET /checkout", 2, 0, 900, attributes=_attrs(http__method="GET", http__status_code=200),
              events=[{"timeUnixNano": str(BASE + 5 * MS), "name": "cache miss",
                       "attributes": _attrs(cache__key="cart")}]),
        _span(T1, 2, "call payments", 3, 100, 800, parent=1,
              attributes=_attrs(peer__service="payments", http__method="POST")),
        _span(T2, 7, "GET /health", 2, 2000, 2001, attributes=_attrs(http__method="GET"),
              status={"code": 1}),
    ]
    payments = [
        _span(T1, 3, "charge", 2, 150, 700, parent=2, attributes=_attrs(amount=42.5, retry=False),
              status={"code": 2, "message": "card declined"},
              links=[{"traceId": T2, "spanId": f"{7:016x}"}]),
    ]
    return {"resourceSpans": [
        {"resource": {"attributes": _attrs(service__name="frontend", deployment__environment="prod")},
         "scopeSpans": [{"scope": scope, "spans": frontend}]},
        {"resource": {"attributes": _attrs(service__name="payments", host__name="pay-1")},
         "scopeSpans": [{"scope": scope, "spans": payments}]},
    ]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("openapi") / "data", LINKS).start()
    try:
        r = requests.post(srv.otlp_http, data=json.dumps(traces()), headers=JSON)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while "payments" not in requests.get(srv.url("/api/v3/services")).json()["services"]:
            assert time.monotonic() < deadline, "the spans never became searchable"
            time.sleep(0.05)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def doc(server):
    r = requests.get(server.url("/api/openapi.json"))
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    body = r.json()
    assert body == document()
    return body


# --------------------------------------------------------------------------- OpenAPI 3.1 structure

ROOT_FIELDS = {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
               "security", "tags", "externalDocs"}
PATH_ITEM_FIELDS = {"$ref", "summary", "description", "servers", "parameters", *HTTP_METHODS}
OPERATION_FIELDS = {"tags", "summary", "description", "externalDocs", "operationId", "parameters",
                    "requestBody", "responses", "callbacks", "deprecated", "security", "servers"}
PARAMETER_FIELDS = {"name", "in", "description", "required", "deprecated", "allowEmptyValue", "style",
                    "explode", "allowReserved", "schema", "example", "examples", "content"}
STYLES = {"query": {"form", "spaceDelimited", "pipeDelimited", "deepObject"},
          "path": {"simple", "label", "matrix"}}
RESPONSE_FIELDS = {"description", "headers", "content", "links"}
MEDIA_TYPE_FIELDS = {"schema", "example", "examples", "encoding"}


def walk(node, where="$"):
    """(where, dict) of every object in the document."""
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from walk(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}[{i}]")


def schemas_in(doc):
    """(where, schema) of every top-level schema: components, parameters, media types."""
    for name, schema in doc["components"]["schemas"].items():
        yield f"components.schemas.{name}", schema
    for (path, method), op in doc_operations(doc).items():
        for p in op.get("parameters", ()):
            yield f"{method} {path} ?{p['name']}", p["schema"]
        for code, resp in op["responses"].items():
            for media, body in resp.get("content", {}).items():
                if "schema" in body:
                    yield f"{method} {path} {code} {media}", body["schema"]


def subschemas(schema):
    yield schema
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from subschemas(schema[key])
    for sub in schema.get("properties", {}).values():
        yield from subschemas(sub)
    for sub in schema.get("allOf", ()):
        yield from subschemas(sub)


def test_document_is_openapi_3_1(doc):
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert set(doc) <= ROOT_FIELDS and {"openapi", "info", "paths"} <= set(doc)
    assert isinstance(doc["info"]["title"], str) and isinstance(doc["info"]["version"], str)
    assert {t["name"] for t in doc["tags"]} == TAG_NAMES
    op_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/") and set(item) <= PATH_ITEM_FIELDS, path
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert set(op) <= OPERATION_FIELDS, where
            assert op["summary"] and "\n" not in op["summary"], where
            assert op["tags"] and set(op["tags"]) <= TAG_NAMES, where
            op_ids.append(op["operationId"])
            params = op.get("parameters", [])
            seen = set()
            for p in params:
                assert set(p) <= PARAMETER_FIELDS and p["in"] in STYLES, (where, p)
                assert p["description"] and ("schema" in p) != ("content" in p), (where, p)
                assert (p["name"], p["in"]) not in seen, (where, p["name"])
                seen.add((p["name"], p["in"]))
                if "style" in p:
                    assert p["style"] in STYLES[p["in"]], (where, p)
                if p["in"] == "path":
                    assert p.get("required") is True, (where, p)
            template = set(re.findall(r"\{([^{}]+)\}", path))
            assert template == {p["name"] for p in params if p["in"] == "path"}, where
            assert op["responses"], where
            for code, resp in op["responses"].items():
                assert re.fullmatch(r"[1-5][0-9][0-9]|[1-5]XX|default", code), (where, code)
                assert set(resp) <= RESPONSE_FIELDS and resp["description"], (where, code)
                for media, body in resp.get("content", {}).items():
                    assert re.fullmatch(r"[a-z]+/[a-z0-9.+-]+", media), (where, media)
                    assert set(body) <= MEDIA_TYPE_FIELDS, (where, media)
    assert len(op_ids) == len(set(op_ids)), "operationIds must be unique"


def test_every_reference_resolves_and_every_component_is_used(doc):
    refs = {node["$ref"] for _where, node in walk(doc) if "$ref" in node}
    for ref in refs:
        assert isinstance(resolve(doc, ref), dict), ref
    used = {ref.rsplit("/", 1)[1] for ref in refs}
    assert set(doc["components"]["schemas"]) - used == set(), "unused component schemas"


def test_schemas_use_only_keywords_the_validator_checks(doc):
    for where, schema in schemas_in(doc):
        for sub in subschemas(schema):
            assert set(sub) <= ASSERTIONS | ANNOTATIONS, (where, set(sub) - ASSERTIONS - ANNOTATIONS)
            types = sub.get("type", [])
            assert set(types if isinstance(types, list) else [types]) <= TYPES, where
            assert set(sub.get("required", ())) <= set(sub.get("properties", {})), (where, "required, not listed")


# --------------------------------------------------------------------------- routes ⇄ document


def test_every_route_is_documented_and_every_documented_path_is_a_route(doc):
    routes = app_routes()
    documented = set(doc_operations(doc))
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations the app does not serve"
    assert ("/api/openapi.json", "get") in routes


# --------------------------------------------------------------------------- live answers ⇄ schemas


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")


V3 = f"query.startTimeMin={rfc3339(NOW - 3600 * 10**9)}&query.startTimeMax={rfc3339(NOW + 60 * 10**9)}"
SHORT = T2.lstrip("0")

# (documented path, concrete URL, expected status, extra headers)
CASES = [
    ("/", "/", 200, {}),
    ("/search", "/search?service=frontend", 200, {}),
    ("/trace/{trace_id}", f"/trace/{T1}", 200, {}),
    ("/compare", "/compare", 200, {}),
    ("/graph", "/graph", 200, {}),
    ("/open", "/open", 200, {}),
    ("/performance", "/performance?service=frontend&lookback=1h", 200, {}),
    ("/alerts", "/alerts", 200, {}),
    ("/ui/{name}", "/ui/app.js", 200, {}),
    ("/ui/{name}", "/ui/lib/nav.js", 200, {}),
    ("/ui/{name}", "/ui/nothing-here.js", 404, {}),
    ("/healthz", "/healthz", 200, {}),
    ("/readyz", "/readyz", 200, {}),
    ("/metrics", "/metrics", 200, {}),
    ("/api/openapi.json", "/api/openapi.json", 200, {}),
    # Jaeger v1
    ("/api/services", "/api/services", 200, {}),
    ("/api/services/{service}/operations", "/api/services/frontend/operations", 200, {}),
    ("/api/operations", "/api/operations?service=frontend", 200, {}),
    ("/api/operations", "/api/operations", 200, {}),
    ("/api/operations", "/api/operations?spanKind=sideways", 400, {}),
    ("/api/traces", "/api/traces?service=frontend&tag=http.method:GET", 200, {}),
    ("/api/traces", f"/api/traces?traceID={T1}&traceID={MISSING}", 200, {}),
    ("/api/traces", "/api/traces?limit=0", 400, {}),
    ("/api/traces/{trace_id}", f"/api/traces/{T1}", 200, {}),
    ("/api/traces/{trace_id}", f"/api/traces/{SHORT}", 200, {}),
    ("/api/traces/{trace_id}", f"/api/traces/{T1}", 200, PROTOBUF),
    ("/api/traces/{trace_id}", f"/api/traces/{MISSING}", 404, {}),
    ("/api/traces/{trace_id}", f"/api/traces/{MISSING}", 404, PROTOBUF),
    ("/api/traces/{trace_id}", "/api/traces/xyz", 400, {}),
    ("/api/dependencies", "/api/dependencies", 200, {}),
    ("/api/dependencies", "/api/dependencies?endTs=soon", 400, {}),
    ("/api/sampling", "/api/sampling?service=frontend", 200, {}),
    ("/api/sampling", "/api/sampling", 400, {}),
    # Sampling
    ("/api/v1/sampling", "/api/v1/sampling", 200, {}),
    ("/api/v1/sampling/stats", "/api/v1/sampling/stats?window=1h", 200, {}),
    ("/api/v1/sampling/stats", "/api/v1/sampling/stats?window=-", 400, {}),
    # Jaeger api_v3
    ("/api/v3/services", "/api/v3/services", 200, {}),
    ("/api/v3/operations", "/api/v3/operations?service=payments", 200, {}),
    ("/api/v3/operations", "/api/v3/operations?span_kind=sideways", 400, {}),
    ("/api/v3/traces", f"/api/v3/traces?{V3}", 200, {}),
    ("/api/v3/traces", f"/api/v3/traces?{V3}&query.serviceName=nobody", 404, {}),
    ("/api/v3/traces", "/api/v3/traces", 400, {}),
    ("/api/v3/trace-summaries", f"/api/v3/trace-summaries?{V3}", 200, {}),
    ("/api/v3/trace-summaries", f"/api/v3/trace-summaries?{V3}&query.durationMin=fast", 400, {}),
    ("/api/v3/traces/{trace_id}", f"/api/v3/traces/{T1}", 200, {}),
    ("/api/v3/traces/{trace_id}", f"/api/v3/traces/{MISSING}", 404, {}),
    ("/api/v3/traces/{trace_id}", "/api/v3/traces/0", 400, {}),
    # Zipkin v2, both prefixes
    *[(p + "/services", p + "/services", 200, {}) for p in ("/api/v2", "/zipkin/api/v2")],
    *[(p + "/spans", p + "/spans?serviceName=frontend", 200, {}) for p in ("/api/v2", "/zipkin/api/v2")],
    ("/api/v2/spans", "/api/v2/spans", 400, {}),
    *[(p + "/remoteServices", p + "/remoteServices?serviceName=frontend", 200, {})
      for p in ("/api/v2", "/zipkin/api/v2")],
    ("/zipkin/api/v2/remoteServices", "/zipkin/api/v2/remoteServices?serviceName=", 400, {}),
    *[(p + "/traces", p + "/traces?serviceName=payments", 200, {}) for p in ("/api/v2", "/zipkin/api/v2")],
    ("/api/v2/traces", "/api/v2/traces?limit=many", 400, {}),
    *[(p + "/trace/{trace_id}", f"{p}/trace/{T1}", 200, {}) for p in ("/api/v2", "/zipkin/api/v2")],
    ("/api/v2/trace/{trace_id}", f"/api/v2/trace/{MISSING}", 404, {}),
    ("/zipkin/api/v2/trace/{trace_id}", "/zipkin/api/v2/trace/nothex", 400, {}),
    *[(p + "/traceMany", f"{p}/traceMany?traceIds={T1},{SHORT}", 200, {}) for p in ("/api/v2", "/zipkin/api/v2")],
    ("/api/v2/traceMany", "/api/v2/traceMany", 400, {}),
    *[(p + "/dependencies", p + "/dependencies", 200, {}) for p in ("/api/v2", "/zipkin/api/v2")],
    ("/api/v2/dependencies", "/api/v2/dependencies?lookback=0", 400, {}),
    *[(p + "/autocompleteKeys", p + "/autocompleteKeys", 200, {}) for p in ("/api/v2", "/zipkin/api/v2")],
    *[(p + "/autocompleteValues", p + "/autocompleteValues?key=http.method", 200, {})
      for p in ("/api/v2", "/zipkin/api/v2")],
    ("/zipkin/api/v2/autocompleteValues", "/zipkin/api/v2/autocompleteValues", 400, {}),
    # Tempo
    ("/api/echo", "/api/echo", 200, {}),
    ("/api/v2/traces/{trace_id}", f"/api/v2/traces/{T1}", 200, {}),
    ("/api/v2/traces/{trace_id}", f"/api/v2/traces/{T1}", 200, PROTOBUF),
    ("/api/v2/traces/{trace_id}", f"/api/v2/traces/{MISSING}", 404, {}),
    ("/api/v2/traces/{trace_id}", "/api/v2/traces/xyz", 400, {}),
    ("/api/search", '/api/search?q={ status = error }', 200, {}),
    ("/api/search", "/api/search?q={}", 200, {}),
    ("/api/search", "/api/search?tags=service.name=frontend", 200, {}),
    ("/api/search", "/api/search?q={ .a = 1 } | count() > 1", 400, {}),
    ("/api/search/tags", "/api/search/tags", 200, {}),
    ("/api/search/tags", "/api/search/tags?scope=galaxy", 400, {}),
    ("/api/v2/search/tags", "/api/v2/search/tags", 200, {}),
    ("/api/v2/search/tags", "/api/v2/search/tags?start=10&end=5", 400, {}),
    ("/api/search/tag/{tag}/values", "/api/search/tag/http.method/values", 200, {}),
    ("/api/search/tag/{tag}/values", "/api/search/tag/http.method/values?limit=-1", 400, {}),
    ("/api/v2/search/tag/{tag}/values", "/api/v2/search/tag/.http.status_code/values", 200, {}),
    ("/api/v2/search/tag/{tag}/values", "/api/v2/search/tag/status/values", 200, {}),
    ("/api/v2/search/tag/{tag}/values", "/api/v2/search/tag/nonsense/values", 400, {}),
    # Trace structure
    ("/api/v1/traces/{trace_id}/critical-path", f"/api/v1/traces/{T1}/critical-path", 200, {}),
    ("/api/v1/traces/{trace_id}/critical-path", f"/api/v1/traces/{MISSING}/critical-path", 404, {}),
    ("/api/v1/traces/{trace_id}/critical-path", "/api/v1/traces/xyz/critical-path", 400, {}),
    ("/api/v1/critical-path/services", f"/api/v1/critical-path/services?{V3}", 200, {}),
    ("/api/v1/critical-path/services", "/api/v1/critical-path/services?limit=500", 400, {}),
    ("/api/v1/dependencies", "/api/v1/dependencies", 200, {}),
    ("/api/v1/dependencies", "/api/v1/dependencies?from=soon", 400, {}),
    # Metrics
    ("/api/v1/metrics", "/api/v1/metrics?service=frontend", 200, {}),
    ("/api/v1/metrics", "/api/v1/metrics?service=frontend&groupBy=operation&format=csv", 200, {}),
    ("/api/v1/metrics", "/api/v1/metrics?service=frontend&step=fast", 400, {}),
    ("/api/v1/metrics/compare", "/api/v1/metrics/compare?minCalls=0&baseline=1d", 200, {}),
    ("/api/v1/metrics/compare", "/api/v1/metrics/compare?threshold=-1", 400, {}),
    ("/api/metrics/latencies", "/api/metrics/latencies?service=frontend&quantile=0.95&groupByOperation=true", 200, {}),
    ("/api/metrics/latencies", "/api/metrics/latencies?service=frontend", 400, {}),
    ("/api/metrics/calls", "/api/metrics/calls?service=frontend&service=payments", 200, {}),
    ("/api/metrics/calls", "/api/metrics/calls", 400, {}),
    ("/api/metrics/errors", "/api/metrics/errors?service=payments&spanKind=SPAN_KIND_SERVER", 200, {}),
    ("/api/metrics/errors", "/api/metrics/errors?service=payments&spanKind=SERVER", 400, {}),
    ("/api/metrics/minstep", "/api/metrics/minstep", 200, {}),
    ("/api/v1/export/traces", f"/api/v1/export/traces?{V3}", 200, {}),
    ("/api/v1/export/traces", f"/api/v1/export/traces?{V3}&format=csv", 200, {}),
    ("/api/v1/export/traces", "/api/v1/export/traces?format=xml", 400, {}),
    # Correlation
    ("/api/v1/traces/{trace_id}/links", f"/api/v1/traces/{T1}/links", 200, {}),
    ("/api/v1/traces/{trace_id}/links", f"/api/v1/traces/{T1}/links?spanId={3:016x}", 200, {}),
    ("/api/v1/traces/{trace_id}/links", f"/api/v1/traces/{MISSING}/links", 404, {}),
    ("/api/v1/traces/{trace_id}/links", "/api/v1/traces/xyz/links", 400, {}),
    ("/api/v1/traces/{trace_id}/links", f"/api/v1/traces/{T1}/links?spanId=12", 400, {}),
]


def documented_response(doc, template: str, status: int) -> dict:
    op = doc["paths"][template]["get"]
    assert str(status) in op["responses"], f"{template} answers {status}, which is not documented"
    return op["responses"][str(status)]


@pytest.mark.parametrize("template, url, status, headers", CASES,
                         ids=[f"{c[2]}{'-pb' if c[3] else ''} {c[1][:70]}" for c in CASES])
def test_live_answer_matches_its_documented_schema(server, doc, template, url, status, headers):
    r = requests.get(server.url(url), headers=headers)
    assert r.status_code == status, r.text[:500]
    media = r.headers["Content-Type"].split(";")[0].strip()
    content = documented_response(doc, template, status).get("content", {})
    assert media in content, f"{template} {status} answered {media}, documented {sorted(content)}"
    schema = content[media].get("schema")
    if schema is None:
        assert r.content, "an undocumented body must at least not be empty"
        return
    body = r.json() if media == "application/json" else r.text
    errors = check(body, schema, doc)
    assert errors == [], "\n".join(errors[:20])


# (documented path, JSON body, expected status) of the routes that take a body
PUT_CASES = [
    ("/api/v1/sampling", {"tail": {"decision_wait_s": 5}}, 200),
    ("/api/v1/sampling", {"tail": {"decision_wait_s": -1}}, 400),
]


@pytest.mark.parametrize("template, body, status", PUT_CASES, ids=[f"{c[2]} PUT {c[0]}" for c in PUT_CASES])
def test_live_put_answer_matches_its_documented_schema(server, doc, template, body, status):
    r = requests.put(server.url(template), json=body)
    assert r.status_code == status, r.text[:500]
    op = doc["paths"][template]["put"]
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    errors = check(r.json(), schema, doc)
    assert errors == [], "\n".join(errors[:20])


# (method, documented path, concrete URL, JSON body or None, expected status) of the storage
# routes, run in this order: an incident is made, pins come and go, deletions are refused for a
# pinned trace and run for a trace that is not stored (T1 and T2 stay for the tests below).
INCIDENT = "inc-openapi"
STORAGE_CASES = [
    ("get", "/api/v1/storage", "/api/v1/storage", None, 200),
    ("post", "/api/v1/incidents", "/api/v1/incidents",
     {"id": INCIDENT, "title": "checkout errors", "link": "https://tickets.example/1", "traceIds": [T1]}, 201),
    ("post", "/api/v1/incidents", "/api/v1/incidents", {"id": INCIDENT, "title": "checkout", "traceIds": [T1]}, 200),
    ("post", "/api/v1/incidents", "/api/v1/incidents", {"title": "no traces", "traceIds": []}, 400),
    ("get", "/api/v1/incidents", "/api/v1/incidents", None, 200),
    ("get", "/api/v1/incidents/{incident_id}", f"/api/v1/incidents/{INCIDENT}", None, 200),
    ("get", "/api/v1/incidents/{incident_id}", "/api/v1/incidents/inc-none", None, 404),
    ("put", "/api/v1/traces/{trace_id}/pin", f"/api/v1/traces/{SHORT}/pin", None, 200),
    ("put", "/api/v1/traces/{trace_id}/pin", f"/api/v1/traces/{T2}/pin", {"incident": INCIDENT}, 200),
    ("put", "/api/v1/traces/{trace_id}/pin", f"/api/v1/traces/{T2}/pin", {"incident": "inc-none"}, 404),
    ("put", "/api/v1/traces/{trace_id}/pin", "/api/v1/traces/xyz/pin", None, 400),
    ("get", "/api/v1/pins", "/api/v1/pins", None, 200),
    ("delete", "/api/v1/traces/{trace_id}", f"/api/v1/traces/{T2}", None, 409),
    ("delete", "/api/v1/traces/{trace_id}", "/api/v1/traces/xyz", None, 400),
    ("delete", "/api/v1/traces/{trace_id}", f"/api/v1/traces/{MISSING}?reason=test", None, 200),
    ("post", "/api/v1/deletions", "/api/v1/deletions", {"traceIds": [T1, MISSING]}, 409),
    ("post", "/api/v1/deletions", "/api/v1/deletions", {"traceIds": [MISSING], "reason": "test"}, 200),
    ("post", "/api/v1/deletions", "/api/v1/deletions", {"q": '{ name = "no such span" }'}, 200),
    ("post", "/api/v1/deletions", "/api/v1/deletions", {"q": "{ name = }"}, 400),
    ("delete", "/api/v1/traces/{trace_id}/pin", f"/api/v1/traces/{T2}/pin", None, 200),
    ("delete", "/api/v1/traces/{trace_id}/pin", f"/api/v1/traces/{T2}/pin", None, 404),
    ("delete", "/api/v1/traces/{trace_id}/pin", "/api/v1/traces/0/pin", None, 400),
    ("delete", "/api/v1/incidents/{incident_id}", f"/api/v1/incidents/{INCIDENT}", None, 200),
    ("delete", "/api/v1/incidents/{incident_id}", f"/api/v1/incidents/{INCIDENT}", None, 404),
    ("get", "/api/v1/audit", "/api/v1/audit?limit=50", None, 200),
    ("get", "/api/v1/audit", "/api/v1/audit?limit=0", None, 400),
]


@pytest.mark.parametrize("method, template, url, body, status", STORAGE_CASES,
                         ids=[f"{c[4]} {c[0].upper()} {c[2][:60]}" for c in STORAGE_CASES])
def test_live_storage_answer_matches_its_documented_schema(server, doc, method, template, url, body, status):
    r = requests.request(method, server.url(url), json=body)
    assert r.status_code == status, r.text[:500]
    op = doc["paths"][template][method]
    assert str(status) in op["responses"], f"{method.upper()} {template} answers {status}, not documented"
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    errors = check(r.json(), schema, doc)
    assert errors == [], "\n".join(errors[:20])


# (method, documented path, concrete URL, JSON body or None, expected status) of the alerting
# routes, run in this order: a rule is added, refused twice, read, replaced, listed and removed.
RULE = {"id": "openapi-errors", "name": "frontend errors", "type": "error_rate", "service": "frontend",
        "threshold": 0.5, "window": "5m", "labels": {"severity": "page"}, "webhooks": ["http://127.0.0.1:9/hook"]}
ALERT_CASES = [
    ("post", "/api/v1/alerts/rules", "/api/v1/alerts/rules", RULE, 201),
    ("post", "/api/v1/alerts/rules", "/api/v1/alerts/rules", RULE, 409),
    ("post", "/api/v1/alerts/rules", "/api/v1/alerts/rules", {**RULE, "id": "other", "threshold": 5}, 400),
    ("post", "/api/v1/alerts/rules", "/api/v1/alerts/rules",
     {"name": "slow", "type": "latency_spike", "service": "payments", "factor": 2, "baseline": "1d"}, 201),
    ("get", "/api/v1/alerts/rules", "/api/v1/alerts/rules", None, 200),
    ("get", "/api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/openapi-errors", None, 200),
    ("get", "/api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/none", None, 404),
    ("put", "/api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/openapi-errors", {**RULE, "for": "1m"}, 200),
    ("put", "/api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/openapi-errors", {**RULE, "kind": "x"}, 400),
    ("put", "/api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/none", {**RULE, "id": "none"}, 404),
    ("get", "/api/v1/alerts", "/api/v1/alerts", None, 200),
    ("delete", "/api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/openapi-errors", None, 200),
    ("delete", "/api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/openapi-errors", None, 404),
    ("get", "/api/v1/alerts/history", "/api/v1/alerts/history?limit=20", None, 200),
    ("get", "/api/v1/alerts/history", "/api/v1/alerts/history?limit=0", None, 400),
]


@pytest.mark.parametrize("method, template, url, body, status", ALERT_CASES,
                         ids=[f"{c[4]} {c[0].upper()} {c[2][:60]}" for c in ALERT_CASES])
def test_live_alerting_answer_matches_its_documented_schema(server, doc, method, template, url, body, status):
    r = requests.request(method, server.url(url), json=body)
    assert r.status_code == status, r.text[:500]
    op = doc["paths"][template][method]
    assert str(status) in op["responses"], f"{method.upper()} {template} answers {status}, not documented"
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    errors = check(r.json(), schema, doc)
    assert errors == [], "\n".join(errors[:20])


def test_every_documented_operation_has_a_live_case(doc):
    """Every documented 200, 201, 400, 404 and 409 is checked above against a live answer (a
    Zipkin route and its ``/zipkin`` twin count as one; 503 of ``/readyz`` and of a deletion
    during shutdown cannot be provoked here)."""
    def twin(path):
        return path.removeprefix("/zipkin")

    exercised = ({(twin(c[0]), "get", str(c[2])) for c in CASES}
                 | {(c[0], "put", str(c[2])) for c in PUT_CASES}
                 | {(c[1], c[0], str(c[4])) for c in STORAGE_CASES}
                 | {(c[1], c[0], str(c[4])) for c in ALERT_CASES})
    for (path, method), op in doc_operations(doc).items():
        for code in set(op["responses"]) & {"200", "201", "400", "404", "409"}:
            assert (twin(path), method, code) in exercised, f"no live case for {code} of {method.upper()} {path}"


def test_live_answers_exercise_the_optional_fields(server, doc):
    """The fixture traces reach the documented fields a sparse trace would leave out, so the
    schema checks above are not vacuous: a link, an event, an error, a remote endpoint, a spanset."""
    jaeger = requests.get(server.url(f"/api/traces/{T1}")).json()["data"][0]
    assert any(ref["refType"] == "FOLLOWS_FROM" for s in jaeger["spans"] for ref in s["references"])
    assert any(s["logs"] for s in jaeger["spans"])
    assert not check(jaeger, {"$ref": "#/components/schemas/JaegerTrace"}, doc)
    missing = requests.get(server.url(f"/api/traces?traceID={MISSING}")).json()["errors"]
    assert missing == [{"msg": "trace not found", "traceID": MISSING}]
    zipkin = requests.get(server.url(f"/api/v2/trace/{T1}")).json()
    assert {"annotations", "remoteEndpoint", "parentId", "kind", "tags"} <= {k for s in zipkin for k in s}
    otlp = requests.get(server.url(f"/api/v3/traces/{T1}")).json()["result"]
    spans = [s for rs in otlp["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {"links", "events", "parentSpanId"} <= {k for s in spans for k in s}
    tempo = requests.get(server.url("/api/search"), params={"q": "{ status = error }"}).json()
    assert tempo["traces"] and "spanSet" in tempo["traces"][0]
    stats = tempo["traces"][0]["serviceStats"]
    assert stats["payments"]["errorCount"] == 1
    links = requests.get(server.url("/api/dependencies")).json()["data"]
    assert {"parent": "frontend", "child": "payments", "callCount": 1, "errorCount": 1} in links
    graph = requests.get(server.url("/api/v1/dependencies")).json()
    assert [(e["source"], e["target"], e["calls"], e["errors"]) for e in graph["edges"]] == [
        ("frontend", "payments", 1, 1)]
    related = requests.get(server.url(f"/api/v1/traces/{T1}/links")).json()
    assert related["trace"] and related["spans"], related  # LINKS rendered: the link schema was checked
    path = requests.get(server.url(f"/api/v1/traces/{T1}/critical-path")).json()
    assert [s["operation"] for s in path["segments"]] == [
        "GET /checkout", "call payments", "charge", "call payments", "GET /checkout"]


def test_unknown_route_answers_the_documented_404(server, doc):
    r = requests.get(server.url("/api/no/such/route"))
    assert r.status_code == 404
    assert check(r.json(), {"$ref": "#/components/schemas/ApiV3Error"}, doc) == []
    assert "no such route" in doc["info"]["description"]
