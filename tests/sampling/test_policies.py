"""Sample stage: tail-sampling policies over real OTLP requests, decoded by Clew's decoder."""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.codec import decode_export_request
from collector.errors import SamplingError
from collector.sampling import consistent
from collector.sampling.policies import Policies
from conftest import otlp_attributes

BASE_NS = 1_700_000_000 * 10**9
STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def tid(k: int) -> bytes:
    return hashlib.sha256(f"trace-{k}".encode()).digest()[:16]


def span(service="svc", start_ms=0, dur_ms=1, status="UNSET", root=None, attrs=None,
         event_attrs=None, resource=None, trace_state=""):
    """One span of a trace; the first span of a trace is its root unless ``root`` says otherwise."""
    return dict(service=service, start_ms=start_ms, dur_ms=dur_ms, status=status, root=root,
                attrs=attrs or {}, event_attrs=event_attrs or {}, resource=resource or {},
                trace_state=trace_state)


def build(traces: list, ids: list | None = None):
    """(batch, trace_index, trace_ids) for ``traces`` (lists of ``span(...)``), sent through protobuf
    and Clew's decoder. Spans are grouped by resource, so a trace's rows are not contiguous."""
    ids = ids or [tid(k) for k in range(len(traces))]
    groups: dict = {}  # (service, resource attrs) → [Span]
    counter = 0
    for t, spans in enumerate(traces):
        root_id = None
        for j, s in enumerate(spans):
            counter += 1
            sid = counter.to_bytes(8, "big")
            is_root = s["root"] if s["root"] is not None else j == 0
            start = BASE_NS + int(s["start_ms"] * 1_000_000)
            msg = trace_pb2.Span(
                trace_id=ids[t], span_id=sid, name="op", trace_state=s["trace_state"],
                start_time_unix_nano=start, end_time_unix_nano=start + int(s["dur_ms"] * 1_000_000),
                attributes=otlp_attributes(s["attrs"]), status=trace_pb2.Status(code=STATUS[s["status"]]))
            if not is_root:
                msg.parent_span_id = root_id or b"\x99" * 8
            elif root_id is None:
                root_id = sid
            if s["event_attrs"]:
                msg.events.append(trace_pb2.Span.Event(name="e", attributes=otlp_attributes(s["event_attrs"])))
            key = (s["service"], tuple(sorted(s["resource"].items(), key=lambda kv: kv[0])))
            groups.setdefault(key, []).append(msg)
    req = ExportTraceServiceRequest()
    for (service, res), spans in groups.items():
        rs = req.resource_spans.add()
        rs.resource.CopyFrom(Resource(attributes=otlp_attributes({"service.name": service, **dict(res)})))
        rs.scope_spans.add().spans.extend(spans)
    batch = decode_export_request(req.SerializeToString())
    where = {t: i for i, t in enumerate(ids)}
    trace_index = np.array([where[t] for t in batch.spans["trace_id"].tolist()], dtype=np.int64)
    return batch, trace_index, ids


def decide(specs, traces, now=0.0, baseline=1.0, ids=None):
    policies = specs if isinstance(specs, Policies) else Policies.parse(specs)
    batch, ti, ids = build(traces, ids)
    return policies.evaluate(batch, ti, ids, now, baseline)


def kept(result) -> list[int]:
    return [i for i, name in enumerate(result) if name is not None]


def one(type_, **fields) -> list:
    return [{"name": "p", "type": type_, **fields}]


# --- single policies ---------------------------------------------------------------------------


def test_status_code_keeps_traces_with_any_span_of_the_listed_codes():
    traces = [[span(status="ERROR")],
              [span(), span(status="ERROR")],  # the error is on a child span
              [span(status="OK")],
              [span()]]
    assert decide(one("status_code", status_codes=["ERROR"]), traces) == ["p", "p", None, None]
    assert kept(decide(one("status_code", status_codes=["ok", "UNSET"]), traces)) == [1, 2, 3]


def test_latency_whole_trace_and_single_span():
    traces = [[span(start_ms=0, dur_ms=10), span(start_ms=1490, dur_ms=10)],  # trace 1500 ms, spans 10
              [span(dur_ms=999)],
              [span(dur_ms=1000)],  # exactly the threshold: kept (inclusive)
              [span(dur_ms=3000)]]
    assert kept(decide(one("latency", threshold_ms=1000), traces)) == [0, 2, 3]
    assert kept(decide(one("latency", threshold_ms=1000, scope="span"), traces)) == [2, 3]
    assert kept(decide(one("latency", threshold_ms=1000, upper_threshold_ms=2000), traces)) == [0, 2]
    assert kept(decide(one("latency", threshold_ms=0.5), [[span(dur_ms=0.4)], [span(dur_ms=0.6)]])) == [1]


STRING_TRACES = [
    [span(attrs={"http.route": "/api/users"})],
    [span(attrs={"http.route": "/health"})],
    [span(attrs={"http.status_code": 503})],
    [span(attrs={"ratio": 72.5})],
    [span(event_attrs={"http.route": "/api/users"})],  # only an event carries it
    [span(resource={"deployment.environment": "prod", "shard": 3})],
    [span()],
    [span(), span(service="other", attrs={"http.route": "/api/users"})],  # on a child span
]


def test_string_attribute_exact_match_by_jaeger_string_form():
    s = lambda key, values, **kw: decide(one("string_attribute", key=key, values=values, **kw),
                                         STRING_TRACES)
    assert kept(s("http.route", ["/api/users"])) == [0, 7]
    assert kept(s("http.route", ["/api"])) == []  # exact means the whole value
    assert kept(s("http.status_code", ["503"])) == [2]  # an int compares as its decimal text
    assert kept(s("ratio", ["72.5"])) == [3]
    assert kept(s("http.route", ["/nope", "/health"])) == [1]


def test_string_attribute_resource_attributes():
    s = lambda key, values, **kw: decide(one("string_attribute", key=key, values=values, **kw),
                                         STRING_TRACES)
    assert kept(s("deployment.environment", ["prod"])) == [5]
    assert kept(s("shard", ["3"])) == [5]
    assert kept(s("service.name", ["other"])) == [7]


def test_string_attribute_regex_is_a_search():
    s = lambda values: kept(decide(one("string_attribute", key="http.route", values=values,
                                       regex=True), STRING_TRACES))
    assert s(["^/api/"]) == [0, 7]
    assert s(["users"]) == [0, 7]  # unanchored, as Go's regexp.MatchString in OpenTelemetry
    assert s(["^users$"]) == []
    assert s(["h$", "^/api/u.*s$"]) == [0, 1, 7]
    assert kept(decide(one("string_attribute", key="http.status_code", values=["^5\\d\\d$"],
                           regex=True), STRING_TRACES)) == [2]


def test_string_attribute_invert_keeps_traces_without_a_match():
    r = decide(one("string_attribute", key="http.route", values=["/health"], invert=True),
               STRING_TRACES)
    assert kept(r) == [0, 2, 3, 4, 5, 6, 7]  # traces without the key are kept too
    r = decide(one("string_attribute", key="deployment.environment", values=["prod"], invert=True),
               STRING_TRACES)
    assert kept(r) == [0, 1, 2, 3, 4, 6, 7]


NUMERIC_TRACES = [
    [span(attrs={"n": 5})],
    [span(attrs={"n": 10})],
    [span(attrs={"n": 10.5})],
    [span(attrs={"n": "7"})],  # a string is not a number
    [span(attrs={"n": -1})],
    [span(resource={"n": 7})],
    [span()],
    [span(attrs={"n": math.nan})],
]


def test_numeric_attribute_ranges_are_inclusive_over_ints_and_doubles():
    n = lambda **kw: kept(decide(one("numeric_attribute", key="n", **kw), NUMERIC_TRACES))
    assert n(min=5, max=10) == [0, 1, 5]
    assert n(min=10) == [1, 2]
    assert n(max=0) == [4]
    assert n(min=10.25, max=10.75) == [2]
    assert n(min=5, max=10, invert=True) == [2, 3, 4, 6, 7]


def test_boolean_attribute():
    traces = [[span(attrs={"flag": True})], [span(attrs={"flag": False})],
              [span(attrs={"flag": "true"})], [span()], [span(resource={"flag": True})]]
    b = lambda **kw: kept(decide(one("boolean_attribute", key="flag", **kw), traces))
    assert b(value=True) == [0, 4]
    assert b(value=False) == [1]
    assert b(value=True, invert=True) == [1, 2, 3]


def test_span_count():
    traces = [[span()] * n for n in (1, 2, 3, 5)]
    assert kept(decide(one("span_count", min_spans=2), traces)) == [1, 2, 3]
    assert kept(decide(one("span_count", min_spans=2, max_spans=3), traces)) == [1, 2]


def test_always_sample_and_no_match():
    traces = [[span()], [span(status="ERROR")]]
    assert decide(one("always_sample"), traces) == ["p", "p"]
    assert decide(one("status_code", status_codes=["OK"]), traces) == [None, None]


# --- order and combinations ---------------------------------------------------------------------


def test_first_matching_policy_names_the_decision():
    specs = [{"name": "errors", "type": "status_code", "status_codes": ["ERROR"]},
             {"name": "slow", "type": "latency", "threshold_ms": 1000},
             {"name": "rest", "type": "always_sample"}]
    traces = [[span(status="ERROR", dur_ms=5000)], [span(dur_ms=5000)], [span()]]
    assert decide(specs, traces) == ["errors", "slow", "rest"]
    assert decide([specs[1], specs[0]], traces) == ["slow", "slow", None]


def test_and_or_nesting():
    specs = [
        {"name": "slow-checkout", "type": "and", "policies": [
            {"type": "latency", "threshold_ms": 500},
            {"type": "string_attribute", "key": "http.route", "values": ["/checkout"]}]},
        {"name": "bad", "type": "or", "policies": [
            {"type": "status_code", "status_codes": ["ERROR"]},
            {"type": "numeric_attribute", "key": "http.status_code", "min": 500}]},
        {"name": "nested", "type": "and", "policies": [
            {"type": "or", "policies": [
                {"type": "span_count", "min_spans": 3},
                {"type": "boolean_attribute", "key": "debug", "value": True}]},
            {"type": "string_attribute", "key": "http.route", "values": ["/health"], "invert": True}]},
    ]
    traces = [
        [span(dur_ms=900, attrs={"http.route": "/checkout"})],  # slow checkout
        [span(dur_ms=100, attrs={"http.route": "/checkout"})],  # fast checkout: no
        [span(dur_ms=900, attrs={"http.route": "/cart"})],  # slow, other route: no
        [span(attrs={"http.status_code": 502})],  # bad
        [span(status="ERROR", dur_ms=900, attrs={"http.route": "/checkout"})],  # first match wins
        [span(), span(), span()],  # nested: 3 spans and not /health
        [span(), span(), span(attrs={"http.route": "/health"})],  # nested: /health excluded
        [span(attrs={"debug": True})],  # nested via the boolean
        [span(attrs={"debug": False})],
    ]
    assert decide(specs, traces) == ["slow-checkout", None, None, "bad", "slow-checkout",
                                     "nested", None, "nested", None]


# --- probabilistic --------------------------------------------------------------------------------

IDS = [tid(k) for k in range(4000)]
ONE_SPAN_EACH = [[span()] for _ in IDS]


def _expected(p: float) -> set[int]:
    t = consistent.threshold(p)
    return {i for i, t_id in enumerate(IDS) if consistent.trace_randomness(t_id) >= t}


def test_probabilistic_keeps_exactly_randomness_at_or_above_threshold():
    at_25 = set(kept(decide(one("probabilistic", rate=0.25), ONE_SPAN_EACH, ids=IDS)))
    assert at_25 == _expected(0.25)
    assert 850 < len(at_25) < 1150
    at_10 = set(kept(decide(one("probabilistic", rate=0.1), ONE_SPAN_EACH, ids=IDS)))
    assert at_10 == _expected(0.1)
    assert at_10 < at_25  # a lower rate keeps a subset
    assert kept(decide(one("probabilistic", rate=0.0), ONE_SPAN_EACH, ids=IDS)) == []
    assert len(kept(decide(one("probabilistic", rate=1.0), ONE_SPAN_EACH, ids=IDS))) == len(IDS)


def test_baseline_lowers_every_probabilistic_policy_but_not_the_others():
    at_10 = _expected(0.1)
    r = decide(one("probabilistic", rate=0.25), ONE_SPAN_EACH, baseline=0.4, ids=IDS)
    assert set(kept(r)) == at_10
    nested = [{"name": "n", "type": "or", "policies": [
        {"type": "and", "policies": [{"type": "always_sample"},
                                     {"type": "probabilistic", "rate": 0.5}]}]}]
    assert set(kept(decide(nested, ONE_SPAN_EACH, baseline=0.2, ids=IDS))) == at_10
    traces = [[span(status="ERROR")] if i % 50 == 0 else [span()] for i in range(len(IDS))]
    r = decide(Policies.default(0.5), traces, baseline=0.001, ids=IDS)
    errors = {i for i in range(len(IDS)) if i % 50 == 0}
    assert {i for i, n in enumerate(r) if n == "errors"} == errors
    assert {i for i, n in enumerate(r) if n == "baseline"} == _expected(0.0005) - errors


def test_explicit_rv_in_tracestate_overrides_the_trace_id():
    low = lambda k: bytes([k]) + bytes(14) + b"\x01"  # R = 1: dropped at any rate below 1
    high = lambda k: bytes([k]) + b"\xff" * 15  # R = 2**56 - 1: kept at any rate above 0
    traces = [[span(trace_state="ot=rv:ffffffffffffff")],
              [span(trace_state="vendor=x,ot=th:8;rv:00000000000001"), span()],
              [span()], [span()]]
    r = decide(one("probabilistic", rate=0.01), traces, ids=[low(1), high(2), low(3), high(4)])
    assert kept(r) == [0, 3]


# --- rate limiting ----------------------------------------------------------------------------


def test_rate_limiting_per_service_token_bucket_over_simulated_time():
    policies = Policies.parse(one("rate_limiting", traces_per_s=2))
    a = lambda k: [[span(service="a")] for _ in range(k)]
    assert decide(policies, a(5), now=100.0) == ["p", "p", None, None, None]  # a full bucket: 2
    assert kept(decide(policies, a(3), now=100.0)) == []
    assert kept(decide(policies, a(3), now=100.5)) == [0]  # half a second: one token
    assert kept(decide(policies, a(3), now=100.6)) == []  # 0.2 of a token
    assert kept(decide(policies, a(3), now=100.9)) == []  # 0.8 of a token
    assert kept(decide(policies, a(3), now=101.0)) == [0]  # a whole one again
    assert kept(decide(policies, a(5), now=200.0)) == [0, 1]  # never more than one second's worth
    mixed = [[span(service="b")], [span(service="a")], [span(service="b")], [span(service="b")]]
    assert kept(decide(policies, mixed, now=200.0)) == [0, 2]  # b has its own bucket; a is empty


def test_rate_limiting_charges_the_root_service_else_the_first_span():
    policies = Policies.parse(one("rate_limiting", traces_per_s=1))
    traces = [[span(service="a", root=False), span(service="b", root=True)],  # root is b
              [span(service="b")],  # b's token is gone
              [span(service="a")]]  # a still has its own
    assert kept(decide(policies, traces, now=0.0)) == [0, 2]
    traces = [[span(service="c", root=False), span(service="a", root=False)],  # no root: first span
              [span(service="c")]]
    assert kept(decide(policies, traces, now=0.0)) == [0]


def test_rate_limiting_is_charged_only_when_asked():
    specs = [{"name": "errors", "type": "status_code", "status_codes": ["ERROR"]},
             {"name": "limit", "type": "rate_limiting", "traces_per_s": 1}]
    traces = [[span(status="ERROR")], [span(status="ERROR")], [span()], [span()]]
    assert decide(specs, traces) == ["errors", "errors", "limit", None]
    # inside or/and the stateless sub-policies are asked first, whatever their place in the list
    either = [{"name": "x", "type": "or", "policies": [
        {"type": "rate_limiting", "traces_per_s": 1}, {"type": "status_code", "status_codes": ["ERROR"]}]}]
    assert decide(either, traces) == ["x", "x", "x", None]
    both = [{"name": "x", "type": "and", "policies": [
        {"type": "rate_limiting", "traces_per_s": 1}, {"type": "latency", "threshold_ms": 1000}]}]
    assert kept(decide(both, [[span()], [span(dur_ms=2000)], [span(dur_ms=2000)]])) == [1]


# --- settings ------------------------------------------------------------------------------------

KNOWN = ("always_sample, and, boolean_attribute, latency, numeric_attribute, or, probabilistic, "
         "rate_limiting, span_count, status_code, string_attribute")


@pytest.mark.parametrize("specs, message", [
    ([{"name": "a", "type": "foo"}], f"tail.policies[0].type: unknown 'foo' (known: {KNOWN})"),
    ([{"name": "a"}], f"tail.policies[0].type: missing (known: {KNOWN})"),
    ([{"name": "a", "type": "always_sample"}, {"name": "b", "type": "always_sample"},
      {"name": "c", "type": "latency", "threshold_ms": 0}],
     "tail.policies[2].threshold_ms: must be > 0, got 0"),
    ([{"name": "a", "type": "latency", "threshold_ms": True}],
     "tail.policies[0].threshold_ms: must be a number, got a boolean"),
    ([{"name": "a", "type": "latency", "threshold_ms": 100, "upper_threshold_ms": 50}],
     "tail.policies[0].upper_threshold_ms: must be >= threshold_ms (100), got 50"),
    ([{"name": "a", "type": "latency", "threshold_ms": 100, "scope": "root"}],
     "tail.policies[0].scope: unknown 'root' (known: span, trace)"),
    ([{"type": "always_sample"}],
     "tail.policies[0].name: missing (every top-level policy needs a unique name)"),
    ([{"name": "a", "type": "always_sample"}, {"name": "a", "type": "always_sample"}],
     "tail.policies[1].name: 'a' is already the name of tail.policies[0]"),
    ([{"name": "a", "type": "latency", "threshold": 5}],
     "tail.policies[0].threshold: unknown field for latency "
     "(known: name, scope, threshold_ms, type, upper_threshold_ms)"),
    ([{"name": "a", "type": "and", "policies": [
        {"type": "always_sample"}, {"type": "probabilistic", "rate": 1.5}]}],
     "tail.policies[0].policies[1].rate: must be <= 1, got 1.5"),
    ([{"name": "a", "type": "or", "policies": []}], "tail.policies[0].policies: must hold at least one policy"),
    ([{"name": "a", "type": "status_code", "status_codes": ["ERROR", "FAIL"]}],
     "tail.policies[0].status_codes[1]: unknown 'FAIL' (known: ERROR, OK, UNSET)"),
    ([{"name": "a", "type": "string_attribute", "key": "k", "values": ["("], "regex": True}],
     "tail.policies[0].values[0]: not a regular expression: missing ), unterminated subpattern "
     "at position 0"),
    ([{"name": "a", "type": "string_attribute", "key": "k", "values": "x"}],
     "tail.policies[0].values: must be a list of strings, got a string"),
    ([{"name": "a", "type": "numeric_attribute", "key": "k"}],
     "tail.policies[0]: numeric_attribute needs min, max or both"),
    ([{"name": "a", "type": "span_count", "min_spans": 2.5}],
     "tail.policies[0].min_spans: must be a whole number, got 2.5"),
    ([{"name": "a", "type": "rate_limiting", "traces_per_s": -1}],
     "tail.policies[0].traces_per_s: must be > 0, got -1"),
    ([{"name": "a", "type": "boolean_attribute", "key": "", "value": True}],
     "tail.policies[0].key: must not be empty"),
    (["always_sample"], "tail.policies[0]: must be an object, got a string"),
    ({"name": "a"}, "tail.policies: must be a list of policies, got an object"),
    ([], "tail.policies: must hold at least one policy"),
])
def test_parse_errors_name_the_exact_path(specs, message):
    with pytest.raises(SamplingError) as info:
        Policies.parse(specs)
    assert str(info.value) == message


def test_parse_error_uses_the_given_path():
    with pytest.raises(SamplingError, match=r"^settings\.tail\[0\]\.rate: must be >= 0, got -0\.1$"):
        Policies.parse([{"name": "a", "type": "probabilistic", "rate": -0.1}], where="settings.tail")


def test_to_json_writes_defaults_and_round_trips():
    specs = [
        {"name": "errors", "type": "status_code", "status_codes": ["error"]},
        {"name": "slow", "type": "latency", "threshold_ms": 1500},
        {"name": "route", "type": "string_attribute", "key": "http.route", "values": ["^/api"],
         "regex": True},
        {"name": "n", "type": "numeric_attribute", "key": "x", "max": 3.5},
        {"name": "b", "type": "boolean_attribute", "key": "debug", "value": True},
        {"name": "big", "type": "span_count", "min_spans": 100, "max_spans": 1000},
        {"name": "both", "type": "and", "policies": [
            {"name": "inner", "type": "rate_limiting", "traces_per_s": 10},
            {"type": "or", "policies": [{"type": "always_sample"}]}]},
        {"name": "rest", "type": "probabilistic", "rate": 0.05},
    ]
    policies = Policies.parse(specs)
    out = policies.to_json()
    assert out[0] == {"name": "errors", "type": "status_code", "status_codes": ["ERROR"]}
    assert out[1] == {"name": "slow", "type": "latency", "threshold_ms": 1500, "scope": "trace"}
    assert out[2] == {"name": "route", "type": "string_attribute", "key": "http.route",
                      "values": ["^/api"], "regex": True, "invert": False}
    assert out[3] == {"name": "n", "type": "numeric_attribute", "key": "x", "max": 3.5, "invert": False}
    assert out[6]["policies"][1] == {"type": "or", "policies": [{"type": "always_sample"}]}
    assert Policies.parse(out).to_json() == out
    assert policies.names() == ["errors", "slow", "route", "n", "b", "big", "both", "rest"]


def test_default_keeps_errors_then_the_baseline():
    policies = Policies.default(0.25)
    assert policies.to_json() == [
        {"name": "errors", "type": "status_code", "status_codes": ["ERROR"]},
        {"name": "baseline", "type": "probabilistic", "rate": 0.25}]
    r = decide(policies, [[span(), span(status="ERROR")]] + ONE_SPAN_EACH[1:], ids=IDS)
    assert r[0] == "errors"
    assert {i for i, n in enumerate(r) if n == "baseline"} == _expected(0.25) - {0}
    with pytest.raises(SamplingError, match=r"tail.policies\[1\].rate"):
        Policies.default(2.0)


def test_evaluate_checks_its_arguments():
    policies = Policies.default(1.0)
    batch, ti, ids = build([[span()], [span()]])
    with pytest.raises(ValueError):
        policies.evaluate(batch, ti[:1], ids, 0.0)
    with pytest.raises(ValueError):
        policies.evaluate(batch, ti, ids[:1], 0.0)
    assert policies.evaluate(batch, ti, ids, 0.0) == ["baseline", "baseline"]


def test_every_example_in_the_docs_parses():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sampling-policies.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    assert len(blocks) >= 8
    for block in blocks:
        text = block.strip()
        if text.startswith("["):
            specs = json.loads(text)
        else:
            specs = [json.loads(obj) for obj in _json_objects(text)]
        assert Policies.parse(specs).to_json()


def _json_objects(text: str) -> list[str]:
    """A block of one or more JSON objects, each starting on a line of its own at column 0."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("{") or not out:
            out.append(line)
        else:
            out[-1] += "\n" + line
    return out


def test_vectorised_policies_agree_with_a_per_trace_reading_of_the_input():
    """Random traces, spans interleaved across resources: each policy against a plain reading."""
    rng = np.random.default_rng(7)
    routes = ["/a/1", "/a/2", "/b", "/ab"]
    traces = []
    for _ in range(300):
        spans = []
        for j in range(int(rng.integers(1, 8))):
            attrs = {}
            if rng.random() < 0.5:
                attrs["route"] = routes[int(rng.integers(len(routes)))]
            if rng.random() < 0.5:
                attrs["n"] = int(rng.integers(0, 30)) if rng.random() < 0.7 else float(rng.random() * 30)
            if rng.random() < 0.2:
                attrs["flag"] = bool(rng.random() < 0.5)
            status = ["UNSET", "OK", "ERROR"][int(rng.integers(3))] if rng.random() < 0.2 else "UNSET"
            spans.append(span(service=f"s{int(rng.integers(4))}", start_ms=float(rng.random() * 80),
                              dur_ms=float(rng.random() * 60), attrs=attrs, status=status))
        traces.append(spans)

    def expect(pred) -> list[int]:
        return [t for t, spans in enumerate(traces) if pred(spans)]

    def trace_ms(spans):
        return max(s["start_ms"] + s["dur_ms"] for s in spans) - min(s["start_ms"] for s in spans)

    cases = [
        (one("latency", threshold_ms=100), expect(lambda ss: trace_ms(ss) >= 100)),
        (one("latency", threshold_ms=50, scope="span"),
         expect(lambda ss: any(s["dur_ms"] >= 50 for s in ss))),
        (one("span_count", min_spans=3, max_spans=5), expect(lambda ss: 3 <= len(ss) <= 5)),
        (one("status_code", status_codes=["ERROR"]),
         expect(lambda ss: any(s["status"] == "ERROR" for s in ss))),
        (one("numeric_attribute", key="n", min=10, max=20),
         expect(lambda ss: any("n" in s["attrs"] and 10 <= s["attrs"]["n"] <= 20 for s in ss))),
        (one("string_attribute", key="route", values=["^/a/"], regex=True),
         expect(lambda ss: any(s["attrs"].get("route", "").startswith("/a/") for s in ss))),
        (one("string_attribute", key="route", values=["/b"], invert=True),
         expect(lambda ss: all(s["attrs"].get("route") != "/b" for s in ss))),
        (one("boolean_attribute", key="flag", value=False),
         expect(lambda ss: any(s["attrs"].get("flag") is False for s in ss))),
    ]
    batch, ti, ids = build(traces)
    assert not np.all(np.diff(ti) >= 0)  # the rows of a trace really are spread out
    for specs, want in cases:
        assert 0 < len(want) < len(traces), specs  # each case splits the set
        assert kept(Policies.parse(specs).evaluate(batch, ti, ids, 0.0)) == want, specs
