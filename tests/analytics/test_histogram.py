"""Log-linear histograms: quantiles read back from bucket counts are within 1 % of the exact
sample quantiles (numpy's ``method="inverted_cdf"``: the sample of rank ceil(q·N)), and merging
is adding counts."""
from __future__ import annotations

import numpy as np
import pytest

from collector.analytics.histogram import ALPHA, NBUCKETS, bucket_of, bucket_value, quantiles

QS = (0.5, 0.95, 0.99)


def _samples(kind: str, rng) -> np.ndarray:
    if kind == "lognormal":
        return rng.lognormal(mean=np.log(20e6), sigma=1.2, size=50_000)  # ~20 ms, long tail
    if kind == "uniform":
        return rng.uniform(1e3, 5e9, size=50_000)  # 1 µs .. 5 s
    if kind == "bimodal":  # cache hits at ~200 µs, misses at ~80 ms
        return np.concatenate([rng.normal(200e3, 20e3, 40_000), rng.normal(80e6, 10e6, 10_000)])
    if kind == "tiny":  # integer nanoseconds, a few distinct values
        return rng.integers(1, 40, size=5_000).astype(np.float64)
    raise AssertionError(kind)


def _hist(x) -> np.ndarray:
    return np.bincount(bucket_of(x), minlength=NBUCKETS)


@pytest.mark.parametrize("kind", ["lognormal", "uniform", "bimodal", "tiny"])
def test_quantiles_within_one_percent(kind):
    rng = np.random.default_rng(7)
    x = np.round(_samples(kind, rng))
    got = quantiles(_hist(x), QS)
    for q, value in zip(QS, got):
        exact = np.quantile(x, q, method="inverted_cdf")
        assert abs(value - exact) / exact <= 0.01, (kind, q, value, exact)


def test_merge_is_adding_counts():
    rng = np.random.default_rng(11)
    a = rng.lognormal(np.log(5e6), 0.5, 20_000)
    b = rng.lognormal(np.log(90e6), 0.3, 5_000)
    merged = _hist(a) + _hist(b)
    assert np.array_equal(merged, _hist(np.concatenate([a, b])))
    both = np.concatenate([a, b])
    for q, value in zip(QS, quantiles(merged, QS)):
        exact = np.quantile(both, q, method="inverted_cdf")
        assert abs(value - exact) / exact <= 0.01


def test_every_value_is_within_alpha_of_its_bucket():
    rng = np.random.default_rng(3)
    x = np.exp(rng.uniform(0, np.log(1e13), 100_000))
    rel = np.abs(bucket_value(bucket_of(x)) - x) / x
    assert rel.max() <= ALPHA * 1.0001


def test_zero_negative_and_empty():
    assert bucket_of(np.array([0, -5, 1])).tolist()[:2] == [0, 0]
    assert bucket_of(np.array([1]))[0] != 0
    assert bucket_value(0) == 0.0
    assert quantiles(np.zeros(NBUCKETS, np.int64), QS) == [None, None, None]
    with pytest.raises(ValueError, match="quantile"):
        quantiles(np.ones(NBUCKETS), [1.5])


def test_huge_durations_are_clamped_not_lost():
    idx = bucket_of(np.array([1e18, 1e20]))
    assert (idx == NBUCKETS - 1).all()
