"""Log-linear latency histograms with bounded relative error, in numpy.

A duration ``d`` (ns, ``d >= 1``) falls in bucket ``k = 1 + ceil(log_GAMMA(d))``, which covers
``(GAMMA**(k-2), GAMMA**(k-1)]``; its representative value ``2 * GAMMA**(k-1) / (GAMMA + 1)`` is
within ``ALPHA`` (0.5 %) of every duration in the bucket.  Durations of 0 or less fall in bucket
0 (value 0); durations above ``MAX_NS`` (about 27.8 hours) are clamped into the last bucket.

Histograms are arrays of counts per bucket: two of them merge by adding their counts, so the
per-minute histograms of a series add up to the hour's, and the hours' to a day's, with the same
error bound.  A quantile is read as the value of the bucket holding the sample of rank
``ceil(q * N)`` (numpy's ``method="inverted_cdf"``): it is within ``ALPHA`` of that sample.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

ALPHA = 0.005
GAMMA = (1 + ALPHA) / (1 - ALPHA)
MIN_NS = 1  # the smallest duration in a log bucket; smaller (0, negative) → bucket 0
MAX_NS = 10 ** 14  # larger durations are counted in the last bucket
_LOG_GAMMA = math.log(GAMMA)
NBUCKETS = 2 + math.ceil(math.log(MAX_NS) / _LOG_GAMMA)
_VALUES = np.concatenate(([0.0], 2.0 * GAMMA ** np.arange(NBUCKETS - 1, dtype=np.float64) / (GAMMA + 1)))


def bucket_of(ns: np.ndarray) -> np.ndarray:
    """Bucket index (uint16) of each duration in ``ns`` (integers or floats, nanoseconds)."""
    d = np.asarray(ns, dtype=np.float64)
    out = np.zeros(d.shape, dtype=np.uint16)
    pos = d >= MIN_NS
    if pos.any():
        k = np.ceil(np.log(d[pos]) / _LOG_GAMMA) + 1
        np.clip(k, 1, NBUCKETS - 1, out=k)
        out[pos] = k.astype(np.uint16)
    return out


def bucket_value(idx) -> float | np.ndarray:
    """The representative duration (ns) of bucket ``idx`` (an int or an array of them)."""
    if isinstance(idx, (int, np.integer)):
        return float(_VALUES[int(idx)])
    return _VALUES[np.asarray(idx, dtype=np.intp)]


def quantiles(counts: np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Quantiles ``qs`` (0..1) of a dense histogram (``NBUCKETS`` counts), in ns; None when empty.

    The sample of rank ``max(1, ceil(q * N))`` is located by the cumulative counts and reported as
    its bucket's value (so within ``ALPHA`` of numpy's ``quantile(..., method="inverted_cdf")``).
    """
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
    cum = np.cumsum(np.asarray(counts, dtype=np.int64))
    total = int(cum[-1]) if len(cum) else 0
    if total <= 0:
        return [None for _ in qs]
    # q * N computed in floating point can land a hair above an integer (0.95 * 100 → 95.000…01)
    ranks = [max(1, math.ceil(q * total - 1e-9 * total)) for q in qs]
    idx = np.searchsorted(cum, np.asarray(ranks, dtype=np.int64), side="left")
    return [float(_VALUES[min(int(i), NBUCKETS - 1)]) for i in idx]


def dense(idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A dense int64 histogram from sparse (bucket index, count) pairs (repeats add up)."""
    return np.bincount(np.asarray(idx, dtype=np.intp), weights=None if counts is None else counts,
                       minlength=NBUCKETS).astype(np.int64)[:NBUCKETS]


def mean_ns(counts: np.ndarray) -> float | None:
    """The mean of a histogram from its bucket values (None when empty)."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum()
    return None if n <= 0 else float((c * _VALUES).sum() / n)
