"""Store stage: spans held for a tail decision — durable, readable by ID, not searchable until
kept, moved into the chunk log (and indexed) when kept, deleted when dropped; reopened stores
still hold them and never index them on their own."""
from __future__ import annotations

import numpy as np
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.config import LimitsConfig, StoreConfig
from collector.store import criteria as C
from collector.store.hot import HotStore
from conformance import batch_of, fixture_request, flat_spans, trace_id_of

SMALL = StoreConfig(map_size_bytes=1 << 30)


def _search_all(store) -> set[bytes]:
    store._await_index()
    return {s.trace_id for s in store.find_traces(C.TraceQuery(limit=100))}


def _requests():
    a, b = fixture_request("example_trace"), fixture_request("tags_opname_trace")
    return a, b


def test_held_spans_are_readable_by_id_but_not_searchable_until_kept(tmp_path):
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    a, b = _requests()
    ba, bb = batch_of(a), batch_of(b)
    results = store.write([ba, bb], [np.ones(len(ba), bool), None])
    assert [r.accepted for r in results] == [len(ba), len(bb)]
    ta, tb = trace_id_of(a), trace_id_of(b)
    assert flat_spans(trace_pb2.TracesData.FromString(store.get_trace(ta).to_traces_data())) == flat_spans(a)
    assert _search_all(store) == {tb}
    assert store.pending_trace_ids() == [ta]

    batch, index, found = store.read_pending([ta, tb])
    assert found == [ta] and len(batch) == len(ba) and set(index.tolist()) == {0}

    assert store.resolve_pending([ta], []) == (len(ba), 0)
    assert _search_all(store) == {ta, tb}
    assert store.pending_trace_ids() == []
    got = trace_pb2.TracesData.FromString(store.get_trace(ta).to_traces_data())
    assert flat_spans(got) == flat_spans(a)  # moved, not copied: each span once
    store.close()


def test_a_dropped_trace_is_gone(tmp_path):
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    a, _b = _requests()
    ba = batch_of(a)
    store.write([ba], [np.ones(len(ba), bool)])
    assert store.resolve_pending([], [trace_id_of(a)]) == (0, len(ba))
    assert store.get_trace(trace_id_of(a)) is None
    assert _search_all(store) == set()
    store.close()
    again = HotStore(tmp_path, SMALL, LimitsConfig())
    assert again.get_trace(trace_id_of(a)) is None and again.pending_trace_ids() == []
    again.close()


def test_held_spans_survive_reopening_and_are_not_indexed_by_the_rebuild(tmp_path):
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    a, b = _requests()
    ba, bb = batch_of(a), batch_of(b)
    store.write([ba, bb], [np.ones(len(ba), bool), None])
    store._index_queue.put(None)  # stop indexing: what follows is found again only by re-indexing
    store._indexer.join()
    for part in store.partitions.values():
        part.close()
    again = HotStore(tmp_path, SMALL, LimitsConfig())
    assert again.pending_trace_ids() == [trace_id_of(a)]
    assert _search_all(again) == {trace_id_of(b)}
    assert again.get_trace(trace_id_of(a)) is not None
    again.resolve_pending([trace_id_of(a)], [])
    assert _search_all(again) == {trace_id_of(a), trace_id_of(b)}
    again.close()


def test_held_spans_count_against_the_per_trace_limit(tmp_path):
    store = HotStore(tmp_path, SMALL, LimitsConfig(max_spans_per_trace=6))
    a, _b = _requests()  # 5 spans
    ba = batch_of(a)
    store.write([ba], [np.ones(len(ba), bool)])
    store._trace_counts.clear()  # as after a restart: counted from the store
    result = store.write([batch_of(a)])[0]
    assert result.accepted == 1 and result.refusals.counts == {"trace_too_many_spans": 4}
    store.close()
