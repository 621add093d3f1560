"""Index stage: term twins agree, search semantics beyond Jaeger's, and the index survives restarts and kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import lmdb
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.codec import decode_export_request
from collector.config import IndexConfig, LimitsConfig, StoreConfig
from collector.store import criteria as C
from collector.store import terms as py_terms
from collector.store.hot import HotStore
from conftest import ROOT, otlp_attributes

try:
    from _ext import _terms as cy_terms
except ImportError:  # the CI test for the compiled twins reports it
    cy_terms = None

SMALL = StoreConfig(map_size_bytes=1 << 28)
T0 = 1_700_000_000_000_000_000
needs_cy = pytest.mark.skipif(cy_terms is None, reason="compiled twin not built")


def test_compiled_terms_twin_loaded():
    if not (os.environ.get("CLEW_REQUIRE_EXTENSIONS") or os.environ.get("CI")):
        pytest.skip("set CLEW_REQUIRE_EXTENSIONS=1 (make test does) to require the compiled twin")
    assert cy_terms is not None


def span(req, trace: int, sid: int, *, service="svc", name="op", start=T0, dur=1000, parent=0,
         attrs=None, resource=None, kind=0, error=False, events=(), links=()):
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(otlp_attributes({"service.name": service, **(resource or {})}))
    sp = rs.scope_spans.add().spans.add(
        trace_id=trace.to_bytes(16, "big"), span_id=sid.to_bytes(8, "big"), name=name, kind=kind,
        start_time_unix_nano=start, end_time_unix_nano=start + dur)
    if parent:
        sp.parent_span_id = parent.to_bytes(8, "big")
    sp.attributes.extend(otlp_attributes(attrs or {}))
    if error:
        sp.status.code = 2
    for ev in events:
        sp.events.add(time_unix_nano=start, name="e").attributes.extend(otlp_attributes(ev))
    for ln in links:
        sp.links.add(trace_id=bytes(16), span_id=bytes(8)).attributes.extend(otlp_attributes(ln))
    return sp


values = st.one_of(st.text(max_size=40), st.booleans(), st.integers(-2**63, 2**63 - 1),
                   st.floats(allow_nan=True, allow_infinity=True), st.binary(max_size=8))


@needs_cy
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.text(max_size=12), st.dictionaries(st.text(max_size=10), values, max_size=5)),
                min_size=1, max_size=5), st.integers(0, 30))
def test_term_twins_agree(spans, max_len):
    req = ExportTraceServiceRequest()
    for i, (name, attrs) in enumerate(spans):
        span(req, 1, i + 1, name=name, attrs=attrs, events=[attrs], links=[attrs])
    batch = decode_export_request(req.SerializeToString())
    py = py_terms.span_terms(batch.buf, batch.spans, batch.attrs, max_len)
    cy = cy_terms.span_terms(batch.buf, batch.spans, batch.attrs, max_len)
    assert py[0].tolist() == cy[0].tolist() and py[1].tolist() == cy[1].tolist()


@needs_cy
@given(st.binary(max_size=200))
def test_compiled_xxh64_is_xxh64(data):
    assert cy_terms.xxh64_intdigest(data) == xxhash.xxh64_intdigest(data)


def test_values_compare_by_their_string_form():
    assert py_terms.double_text(72.5) == b"72.5"
    assert py_terms.double_text(1.0) == b"1"
    assert py_terms.double_text(1e21) == b"1000000000000000000000"
    assert py_terms.double_text(float("inf")) == b"+Inf"


# ---------------------------------------------------------------- semantics beyond Jaeger

@pytest.fixture(params=[1, 1000], ids=["bitmap-terms", "postings-terms"])
def shop(tmp_path, request, monkeypatch):
    """Three traces over two services with known attributes, durations, kinds and errors.

    Run twice: every term in a bitmap, and every term in the rare-term postings runs."""
    monkeypatch.setattr("collector.store.index.PROMOTE", request.param)
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    req = ExportTraceServiceRequest()
    # trace 1: frontend GET /cart (server, 50 ms) → cart (client call, error) — 3 spans
    span(req, 1, 1, service="frontend", name="GET /cart", start=T0, dur=50_000_000, kind=2,
         attrs={"http.status_code": 500, "http.method": "GET", "user": "alice"},
         resource={"deployment.environment": "prod"})
    span(req, 1, 2, service="frontend", name="call cart", start=T0 + 1000, dur=40_000_000, kind=3,
         parent=1, attrs={"peer.service": "cart"})
    span(req, 1, 3, service="cart", name="load", start=T0 + 2000, dur=30_000_000, kind=2, parent=2,
         error=True, attrs={"db.rows": 12.5}, events=[{"exception.type": "Timeout"}])
    # trace 2: frontend GET /home, fast, ok — 1 span, newer
    span(req, 2, 1, service="frontend", name="GET /home", start=T0 + 10**9, dur=2_000_000, kind=2,
         attrs={"http.status_code": 200, "http.method": "GET", "user": "bob"},
         resource={"deployment.environment": "staging"})
    # trace 3: batch job in cart only, long — newest
    span(req, 3, 1, service="cart", name="reindex", start=T0 + 2 * 10**9, dur=9_000_000_000,
         attrs={"http.method": "POST"}, links=[{"link.reason": "retry"}])
    store.write([decode_export_request(req.SerializeToString())])
    yield store
    store.close()


def ids(store, span_expr=None, **kw) -> list[int]:
    found = store.find_traces(C.TraceQuery(span=span_expr, **kw))
    return [int.from_bytes(s.trace_id, "big") for s in found]


def test_newest_first_and_limit_cuts(shop):
    assert ids(shop) == [3, 2, 1]
    assert ids(shop, limit=2) == [3, 2]


def test_service_less_search_and_negation(shop):
    assert ids(shop, C.Cond(C.Attr("any", "http.method"), "=", "GET")) == [2, 1]
    assert ids(shop, C.Cond(C.Attr("span", "http.method"), "!=", "GET")) == [3]
    # != needs the attribute: spans without user do not match "user != alice"
    assert ids(shop, C.Cond(C.Attr("span", "user"), "!=", "alice")) == [2]


def test_regex_and_existence(shop):
    assert ids(shop, C.Cond(C.NAME, "=~", "GET /.*")) == [2, 1]
    assert ids(shop, C.Cond(C.NAME, "!~", "GET.*")) == [3, 1]  # trace 1 has other spans
    assert ids(shop, C.Cond(C.Attr("any", "exception.type"), "exists")) == [1]
    assert ids(shop, C.Cond(C.Attr("span", "user"), "=~", "al.*")) == [1]
    assert ids(shop, C.Cond(C.Attr("span", "user"), "!~", "al.*")) == [2]
    assert ids(shop, C.Cond(C.Attr("span", "http.method"), "=~", "GET|POST")) == [3, 2, 1]
    assert ids(shop, C.Cond(C.Attr("resource", "deployment.environment"), "=~", "prod|dev")) == [1]
    assert ids(shop, C.Cond(C.Attr("link", "link.reason"), "=", "retry")) == [3]
    assert ids(shop, C.Cond(C.Attr("span", "link.reason"), "=", "retry")) == []


def test_numeric_comparisons_status_kind(shop):
    assert ids(shop, C.Cond(C.Attr("span", "http.status_code"), ">=", 500)) == [1]
    assert ids(shop, C.Cond(C.Attr("span", "db.rows"), "<", 20)) == [1]
    assert ids(shop, C.Cond(C.STATUS, "=", "error")) == [1]
    assert ids(shop, C.Cond(C.KIND, "=", "client")) == [1]
    assert ids(shop, C.Cond(C.DURATION, ">", 1_000_000_000)) == [3]


def test_conditions_hold_on_one_span(shop):
    # error and http.status_code=500 are on different spans of trace 1
    both = C.And((C.Cond(C.STATUS, "=", "error"), C.Cond(C.Attr("span", "http.status_code"), "=", 500)))
    assert ids(shop, both) == []
    either = C.Or((C.Cond(C.STATUS, "=", "error"), C.Cond(C.Attr("span", "user"), "=", "bob")))
    assert ids(shop, either) == [2, 1]


def test_trace_duration_and_root(shop):
    assert ids(shop, trace_min_duration_ns=40_000_000) == [3, 1]
    assert ids(shop, trace_max_duration_ns=10_000_000) == [2]
    assert ids(shop, root_service="cart") == [3]
    assert ids(shop, C.Cond(C.SERVICE, "=", "cart"), root_service="frontend") == [1]


def test_unknown_values_answer_empty(shop):
    assert ids(shop, C.Cond(C.SERVICE, "=", "nope")) == []
    assert ids(shop, C.Cond(C.Attr("any", "nope"), "exists")) == []


def test_listings(shop):
    assert shop.services() == ["cart", "frontend"]
    assert shop.operations("cart", "server") == [("load", "server")]
    assert ("retry", "string") in shop.tag_values(C.Attr("link", "link.reason"))
    assert shop.tag_values(C.Attr("span", "http.method"), service="cart") == [("POST", "string")]
    assert "deployment.environment" in shop.tag_keys("resource")
    assert shop.dependencies(None, None) == [("frontend", "cart", 1, 1)]  # cart failed


def test_key_lists_and_value_bound(tmp_path):
    config = IndexConfig(max_value_len=8, deny_keys="secret")
    store = HotStore(tmp_path, SMALL, LimitsConfig(), index=config)
    req = ExportTraceServiceRequest()
    span(req, 1, 1, attrs={"secret": "hunter2", "short": "abc", "long": "x" * 9})
    store.write([decode_export_request(req.SerializeToString())])
    assert ids(store, C.Cond(C.Attr("any", "short"), "=", "abc")) == [1]
    assert ids(store, C.Cond(C.Attr("any", "secret"), "=", "hunter2")) == []
    assert ids(store, C.Cond(C.Attr("any", "long"), "=", "x" * 9)) == []
    assert "secret" not in store.tag_keys("span")
    store.close()


# ---------------------------------------------------------------- persistence and crash recovery

def test_unreadable_checkpoint_is_rebuilt(tmp_path):
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    req = ExportTraceServiceRequest()
    span(req, 7, 1, attrs={"k": "v"})
    store.write([decode_export_request(req.SerializeToString())])
    store.close()
    [part] = (tmp_path / "hot").iterdir()
    env = lmdb.open(str(part), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(b"H", b"{not json", db=env.open_db(b"index", txn=txn))
    env.close()
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    assert ids(store, C.Cond(C.Attr("span", "k"), "=", "v")) == [7]
    store.close()


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from collector.codec import decode_export_request
    from collector.config import IndexConfig, LimitsConfig, StoreConfig
    from collector.store.hot import HotStore
    store = HotStore(Path(sys.argv[1]), StoreConfig(map_size_bytes=1 << 28), LimitsConfig(),
                     index=IndexConfig(checkpoint_s=float(sys.argv[2])))
    for n in range(1, 10**6):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = f"svc{n % 3}"
        for i in range(20):
            sp = rs.scope_spans.add().spans.add(trace_id=n.to_bytes(16, "big"),
                                                span_id=(i + 1).to_bytes(8, "big"), name="op",
                                                start_time_unix_nano=10**18 + n,
                                                end_time_unix_nano=10**18 + n + i)
            sp.attributes.add(key="batch").value.int_value = n
        store.write([decode_export_request(req.SerializeToString())])
        print(n, flush=True)  # acknowledged: committed and indexed
""")


@pytest.mark.parametrize("checkpoint_s", [0.05, 3600.0], ids=["checkpointing", "no-checkpoint"])
def test_index_is_rebuilt_past_the_watermark_after_kill_9(tmp_path, checkpoint_s):
    # the batch attribute repeats on all 20 spans: a bitmap term; service names are records
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(checkpoint_s)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    acked = 0
    for line in proc.stdout:
        acked = int(line)
        if acked >= 150:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    # every acknowledged batch is searchable by its own attribute, with all 20 spans
    for n in range(1, acked + 1, 7):
        [s] = store.find_traces(C.TraceQuery(span=C.Cond(C.Attr("span", "batch"), "=", n)))
        assert s.trace_id == n.to_bytes(16, "big") and s.span_count == 20
    found = store.find_traces(C.TraceQuery(span=C.Cond(C.SERVICE, "=", "svc1"), limit=10_000))
    assert len(found) >= len(range(1, acked + 1, 3)) - 0
    assert {s.trace_id for s in found} >= {n.to_bytes(16, "big") for n in range(1, acked + 1) if n % 3 == 1}
    store.close()


def test_newest_first_is_exact_when_the_walk_stops_early(tmp_path):
    """Over 4,096 matches the search walks spans newest ordinal first and stops early; the
    answer must still be the newest traces by first start, whatever order they arrived in."""
    import random
    rnd = random.Random(7)
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    starts = {}
    for batch in range(12):
        req = ExportTraceServiceRequest()
        for i in range(1000):
            n = batch * 1000 + i + 1
            start = T0 + rnd.randrange(0, 10**12)
            starts[n] = start
            span(req, n, 1, service="svc", start=start, attrs={"even": n % 2 == 0})
        store.write([decode_export_request(req.SerializeToString())])
    want = sorted(starts, key=lambda n: starts[n], reverse=True)
    assert ids(store, C.Cond(C.SERVICE, "=", "svc"), limit=10) == want[:10]
    evens = [n for n in want if n % 2 == 0]
    assert ids(store, C.Cond(C.Attr("span", "even"), "=", True), limit=7) == evens[:7]
    assert ids(store, limit=3) == want[:3]
    store.close()


def test_checkpoint_split_over_many_transactions_reads_back(tmp_path, monkeypatch):
    """Large checkpoint segments are written in parts over several transactions; parts left
    by an interrupted checkpoint never mix with the next one."""
    monkeypatch.setattr("collector.store.hot.CHECKPOINT_TXN_BYTES", 64)
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    for n in range(1, 40):
        req = ExportTraceServiceRequest()
        span(req, n, 1, service=f"svc{n % 4}", attrs={"n": n, "tag": f"t{n % 5}"})
        store.write([decode_export_request(req.SerializeToString())])
        if n % 10 == 0:
            store._snapshot()[0].checkpoint()
    [part] = store._snapshot()
    db = part.dbs[b"index"]
    with part.env.begin(write=True) as txn:  # a stale part from an interrupted checkpoint
        txn.put(b"P" + (99).to_bytes(4, "big") + (7).to_bytes(2, "big"), b"junk", db=db)
    store.close()
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    assert ids(store, C.Cond(C.Attr("span", "n"), "=", 17)) == [17]
    assert sorted(ids(store, C.Cond(C.Attr("span", "tag"), "=", "t2"), limit=100)) == [n for n in range(1, 40) if n % 5 == 2]
    assert store.services() == ["svc0", "svc1", "svc2", "svc3"]
    store.close()
