"""The span-metrics counters: batches kept on the loop, counted in bulk at flush or scrape."""
from __future__ import annotations

import numpy as np

from collector.analytics.spanmetrics import BOUNDS_MS, SpanMetrics


class FakeStore:
    def __init__(self):
        self.flush_hooks = []
        self.keys = [("span", "svc", f"op{i}", "server") for i in range(8)]

    def key_of(self, sid):
        return self.keys[sid]


def families(sm):
    calls, hist = {}, {}
    for fam in sm.collect():
        for s in fam.samples:
            labels = tuple(s.labels.get(k) for k in ("span_name", "status_code"))
            if s.name == "traces_span_metrics_calls_total":
                calls[labels] = s.value
            elif s.name.endswith("_bucket"):
                hist.setdefault(labels, {})[s.labels["le"]] = s.value
    return calls, hist


def test_counts_are_exact_whether_folded_by_the_flush_or_by_a_scrape():
    rng = np.random.default_rng(3)
    store = FakeStore()
    sm = SpanMetrics(store, max_series=100)
    assert store.flush_hooks == [sm.fold]
    sids = rng.integers(0, 4, 5000)
    dur = rng.integers(-5, 20_000_000_000, 5000)
    status = rng.integers(0, 3, 5000)
    for i in range(0, 5000, 250):
        sm.observe(sids[i:i + 250], dur[i:i + 250], dur[i:i + 250], status[i:i + 250])
        if i == 2500:
            store.flush_hooks[0]()  # the flush thread's fold, halfway
    calls, hist = families(sm)
    for sid in range(4):
        for st, label in enumerate(("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")):
            sel = (sids == sid) & (status == st)
            assert calls[(f"op{sid}", label)] == np.count_nonzero(sel)
            d = np.maximum(dur[sel], 0)
            got = hist[(f"op{sid}", label)]
            for b in BOUNDS_MS:
                assert got[str(float(b))] == np.count_nonzero(d <= b * 1_000_000)
            assert got["+Inf"] == len(d)


def test_label_sets_past_max_series_share_the_overflow_row():
    store = FakeStore()
    sm = SpanMetrics(store, max_series=3)
    sm.observe(np.arange(6), np.zeros(6), np.ones(6), np.zeros(6))
    calls, _ = families(sm)
    assert calls[("_other", "")] == 3  # three label sets kept, the other three in the overflow row
    assert sum(calls.values()) == 6 and sm.overflow_spans == 3
