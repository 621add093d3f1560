"""Store stage: the hot LMDB store passes the storage conformance suite, plus partition behaviour."""
from __future__ import annotations

from collector.config import LimitsConfig, StoreConfig
from collector.store.hot import HotStore
from conformance import SearchConformance, StoreConformance, batch_of, fixture_request, flat_spans, trace_id_of

SMALL = StoreConfig(map_size_bytes=1 << 30)


class TestHotStoreConformance(StoreConformance, SearchConformance):
    def open_store(self, path):
        return HotStore(path, SMALL, LimitsConfig())


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_partitions_by_arrival_time_and_trace_spans_them(tmp_path):
    clock = Clock(1_700_000_000.0)
    store = HotStore(tmp_path, SMALL, LimitsConfig(), clock=clock)
    req = fixture_request("example_trace")
    rs = req.resource_spans
    first, second = type(req)(), type(req)()
    first.resource_spans.extend(rs[:1])
    second.resource_spans.extend(rs[1:])
    store.write([batch_of(first)])
    clock.now += 3600  # the next hour: a new partition
    store.write([batch_of(second)])
    assert store.stats()["partitions"] == 2
    assert sorted(p.name for p in (tmp_path / "hot").iterdir()) == ["1699999200", "1700002800"]
    got = store.get_trace(trace_id_of(req))
    from opentelemetry.proto.trace.v1 import trace_pb2
    assert flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data())) == flat_spans(req)
    store.close()
    # Reopened, both partitions are found again, with their time bounds.
    store = HotStore(tmp_path, SMALL, LimitsConfig(), clock=clock)
    assert store.stats()["partitions"] == 2 and store.stats()["spans"] == 5
    assert store.get_trace(trace_id_of(req)) is not None
    store.close()


def test_resources_are_stored_once_per_partition(tmp_path):
    store = HotStore(tmp_path, SMALL, LimitsConfig())
    req = fixture_request("example_trace")
    for _ in range(3):
        store.write([batch_of(req)])
    part = next(iter(store.partitions.values()))
    with part.env.begin() as txn:
        resources = txn.stat(part.dbs[b"resources"])["entries"]
    assert resources == len({r.resource.SerializeToString() for r in req.resource_spans})
    store.close()
