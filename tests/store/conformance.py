"""Storage contract conformance suite: subclass ``StoreConformance`` and implement ``open_store``.

Every backend and tier runs the same checks over the shared Jaeger fixture traces
(../shared/conformance/jaeger/traces), through the public writer/reader contract only.
"""
from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.codec import decode_export_request
from collector.codec.otlp_json import json_to_protobuf
from collector.config import LimitsConfig
from collector.pipeline import validate
from conftest import CONFORMANCE

FIXTURES = CONFORMANCE / "jaeger" / "traces"


def fixture_request(name: str) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(json_to_protobuf((FIXTURES / f"{name}.json").read_bytes()))


def flat_spans(data) -> list[tuple]:
    """(resource, scope, span) triples, each serialized, sorted: comparable across regroupings."""
    out = []
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append((rs.resource.SerializeToString(deterministic=True), rs.schema_url,
                            ss.scope.SerializeToString(deterministic=True), ss.schema_url,
                            sp.SerializeToString(deterministic=True)))
    return sorted(out)


def batch_of(req: ExportTraceServiceRequest):
    batch, refusals = validate(decode_export_request(req.SerializeToString()), LimitsConfig())
    assert refusals.total == 0, refusals.message()
    return batch


def trace_id_of(req: ExportTraceServiceRequest) -> bytes:
    return req.resource_spans[0].scope_spans[0].spans[0].trace_id


class StoreConformance:
    """Mixin: ``open_store(path)`` returns a fresh SpanWriter+SpanReader over ``path``."""

    def open_store(self, path):
        raise NotImplementedError

    def read(self, store, trace_id):
        trace = store.get_trace(trace_id)
        return None if trace is None else trace_pb2.TracesData.FromString(trace.to_traces_data())

    def test_every_fixture_round_trips(self, tmp_path):
        store = self.open_store(tmp_path)
        reqs = [ExportTraceServiceRequest.FromString(json_to_protobuf(f.read_bytes()))
                for f in sorted(FIXTURES.glob("*.json"))]
        results = store.write([batch_of(r) for r in reqs])
        assert [r.accepted for r in results] == [sum(len(ss.spans) for rs in r.resource_spans
                                                     for ss in rs.scope_spans) for r in reqs]
        for req in reqs:
            got = self.read(store, trace_id_of(req))
            assert got is not None
            assert flat_spans(got) == flat_spans(req)
        store.close()

    def test_unknown_trace_is_none(self, tmp_path):
        store = self.open_store(tmp_path)
        store.write([batch_of(fixture_request("example_trace"))])
        assert store.get_trace(b"\x00" * 15 + b"\x01") is None
        store.close()

    def test_data_survives_reopen(self, tmp_path):
        store = self.open_store(tmp_path)
        req = fixture_request("example_trace")
        store.write([batch_of(req)])
        store.close()
        store = self.open_store(tmp_path)
        assert flat_spans(self.read(store, trace_id_of(req))) == flat_spans(req)
        # Writing after a reopen appends; nothing earlier is overwritten.
        req2 = fixture_request("multiple1_trace")
        store.write([batch_of(req2)])
        assert flat_spans(self.read(store, trace_id_of(req))) == flat_spans(req)
        assert flat_spans(self.read(store, trace_id_of(req2))) == flat_spans(req2)
        store.close()

    def test_identical_span_sent_twice_comes_back_once(self, tmp_path):
        store = self.open_store(tmp_path)
        req = fixture_request("example_trace")
        store.write([batch_of(req)])
        store.write([batch_of(req), batch_of(req)])  # client retries
        assert flat_spans(self.read(store, trace_id_of(req))) == flat_spans(req)
        store.close()

    def test_distinct_spans_sharing_a_span_id_are_all_kept(self, tmp_path):
        """Jaeger's GetTraceWithDuplicateSpans: 200 clones, every 20th reusing the span ID."""
        store = self.open_store(tmp_path)
        req = fixture_request("example_trace")
        template = req.resource_spans[0].scope_spans[0].spans[0]
        out = ExportTraceServiceRequest()
        rs = out.resource_spans.add()
        rs.resource.CopyFrom(req.resource_spans[0].resource)
        ss = rs.scope_spans.add()
        for i in range(200):
            sp = ss.spans.add()
            sp.CopyFrom(template)
            if i % 20:
                sp.span_id = (i + 1000).to_bytes(8, "big")
            sp.start_time_unix_nano += i
            sp.end_time_unix_nano += i
        store.write([batch_of(out)])
        got = self.read(store, template.trace_id)
        assert len(flat_spans(got)) == 200
        assert sum(1 for t in flat_spans(got) if trace_pb2.Span.FromString(t[4]).span_id == template.span_id) == 10
        store.close()

    def test_trace_limit_keeps_the_first_spans(self, tmp_path):
        """Jaeger's GetLargeTrace shape: one span cloned 10,008 times; 10,000 are kept."""
        store = self.open_store(tmp_path)
        template = fixture_request("example_trace").resource_spans[0].scope_spans[0].spans[0]
        out = ExportTraceServiceRequest()
        ss = out.resource_spans.add().scope_spans.add()
        for i in range(1, 10_009):
            sp = ss.spans.add()
            sp.CopyFrom(template)
            sp.span_id = i.to_bytes(8, "big")
            sp.start_time_unix_nano += i * 10**9
            sp.end_time_unix_nano += i * 10**9
        half = ExportTraceServiceRequest()
        half_ss = half.resource_spans.add().scope_spans.add()
        half_ss.spans.extend(ss.spans[:6000])
        rest = ExportTraceServiceRequest()
        rest.resource_spans.add().scope_spans.add().spans.extend(ss.spans[6000:])
        r1 = store.write([batch_of(half)])[0]
        r2 = store.write([batch_of(rest)])[0]
        assert (r1.accepted, r2.accepted, r2.refusals.total) == (6000, 4000, 8)
        assert "10000 spans" in r2.refusals.message()
        got = self.read(store, template.trace_id)
        ids = sorted(int.from_bytes(trace_pb2.Span.FromString(t[4]).span_id, "big") for t in flat_spans(got))
        assert ids == list(range(1, 10_001))  # the first 10,000 in arrival order
        store.close()


# ---------------------------------------------------------------- search (the SpanSearcher contract)

QUERIES = CONFORMANCE / "jaeger" / "queries.json"


def _rfc3339_ns(text: str) -> int:
    from datetime import datetime
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def jaeger_case_query(q: dict):
    """A queries.json case as the neutral search model (the Go harness's TraceQueryParameters)."""
    from collector.store import criteria as C
    conds = [C.Cond(C.SERVICE, "=", q["ServiceName"])]
    if q["OperationName"]:
        conds.append(C.Cond(C.NAME, "=", q["OperationName"]))
    for key, value in (q["Tags"] or {}).items():
        conds.append(C.Cond(C.Attr("any", key), "=", value))
    if q["DurationMin"]:
        conds.append(C.Cond(C.DURATION, ">=", q["DurationMin"]))
    if q["DurationMax"]:
        conds.append(C.Cond(C.DURATION, "<=", q["DurationMax"]))
    return C.TraceQuery(span=C.all_of(*conds), start_min_ns=_rfc3339_ns(q["StartTimeMin"]),
                        start_max_ns=_rfc3339_ns(q["StartTimeMax"]), limit=q["NumTraces"])


class SearchConformance:
    """Mixin: the search contract over the Jaeger storage conformance queries (README §3–§4)."""

    def open_store(self, path):
        raise NotImplementedError

    def loaded(self, path, reopen: bool = False):
        store = self.open_store(path)
        ids = {}
        for f in sorted(FIXTURES.glob("*.json")):
            req = fixture_request(f.stem)
            ids[f.stem] = trace_id_of(req)
            store.write([batch_of(req)])
        if reopen:
            store.close()
            store = self.open_store(path)
        return store, ids

    def run_cases(self, store, ids):
        failures = []
        for case in json.loads(QUERIES.read_text()):
            found = store.find_traces(jaeger_case_query(case["Query"]))
            got = sorted(s.trace_id for s in found)
            want = sorted(ids[name] for name in case["ExpectedFixtures"])
            if got != want:
                failures.append((case["Caption"], [g.hex() for g in got], [w.hex() for w in want]))
            for s in found:  # the whole trace is listed, not only the matching span
                trace = store.get_trace(s.trace_id)
                assert s.span_count == len(trace.spans), case["Caption"]
        assert not failures, failures

    def test_all_jaeger_query_cases(self, tmp_path):
        store, ids = self.loaded(tmp_path)
        self.run_cases(store, ids)
        store.close()

    def test_all_jaeger_query_cases_after_reopen(self, tmp_path):
        store, ids = self.loaded(tmp_path, reopen=True)
        self.run_cases(store, ids)
        store.close()

    def test_services_and_operations_with_kinds(self, tmp_path):
        store = self.open_store(tmp_path)
        store.write([batch_of(fixture_request("example_trace"))])
        assert store.services() == ["example-service-1", "example-service-2", "example-service-3"]
        assert store.operations("example-service-1") == [
            ("example-operation-1", "unspecified"), ("example-operation-3", "server"),
            ("example-operation-4", "client")]
        assert store.operations("example-service-1", "server") == [("example-operation-3", "server")]
        assert store.operations("no-such-service") == []
        store.close()

    def test_summary_counts_the_whole_trace(self, tmp_path):
        from collector.store import criteria as C
        store = self.open_store(tmp_path)
        store.write([batch_of(fixture_request("example_trace"))])
        [s] = store.find_traces(C.TraceQuery(span=C.Cond(C.SERVICE, "=", "example-service-2")))
        assert s.span_count == 5 and s.start_ns > 0 and s.end_ns >= s.start_ns
        assert set(s.services) == {"example-service-1", "example-service-2", "example-service-3"}
        assert [m.service for m in s.matched] == ["example-service-2"]
        store.close()
