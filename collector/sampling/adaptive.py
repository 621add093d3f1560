"""Sample stage: adaptive sampling — per-operation probabilities served to SDKs, and the overload
controller of the tail stage's probabilistic baseline.

``Adaptive`` (issue 5 (a)) works as Jaeger's adaptive sampler does (its post-aggregator with the
"percentage increase capped" calculation): SDKs fetch per-operation probabilities from the
remote-sampling endpoints, sample at the source, and the collector counts the root spans of the
traces that arrive — traces the SDKs *already sampled*. Every ``interval_s`` it recalculates:

* observed rate = root spans counted since the last recalculation / the seconds elapsed;
* no change while ``|observed - target| <= tolerance * target`` (the tolerance band);
* else new = old * target / observed: the observed rate was produced at the old probability, so
  this is the probability that would have given the target. A decrease applies at once (defends
  against oversampling); an increase is capped at ``old * max_increase`` per interval (defends
  against a burst of traffic right after a quiet interval);
* the result is clamped to ``[min_probability, max_probability]``;
* an operation with no traffic in an interval keeps its probability.

When the ingest path also passes what the root spans *stated* (OpenTelemetry ``tracestate``
``ot=th:``, the probability an SDK actually sampled at), "observed at the old probability" is
computed from their adjusted counts instead (see ``observe``), so traces an SDK sampled before it
fetched the latest probability, or with a fixed sampler of its own, are counted right.

The collector never applies these probabilities itself (the traces were sampled already; doing so
again would sample twice). See docs/sampling-adaptive.md for the choices where Jaeger differs.

``StoredRateController`` (issue 5 (b)) lowers the tail stage's probabilistic baseline under
overload so stored spans/s follow a target; error and latency keeps are never reduced.
"""
from __future__ import annotations

import math
import threading
import time

SNAPSHOT_VERSION = 1
# Jaeger's MinSamplesPerSecond default: an SDK's guaranteed-throughput sampler keeps at least one
# trace a minute per operation, so an operation at a tiny probability is still seen.
DEFAULT_LOWER_BOUND_TRACES_PER_S = 1.0 / 60.0


class _Op:
    """One (service, operation): its probability, its counts in the current interval and the rates
    of the last one."""

    __slots__ = ("probability", "count", "stated", "weight", "observed", "estimated")

    def __init__(self, probability: float):
        self.probability = probability
        self.count = 0  # root spans this interval
        self.stated = 0  # ... of which stated the probability they were sampled at
        self.weight = 0.0  # ... and the traces those represent (sum of adjusted counts)
        self.observed: float | None = None  # traces/s in the last interval; None before the first
        self.estimated: float | None = None  # traces/s before the SDKs sampled, last interval


class Adaptive:
    """Per-(service, operation) probabilities that make each operation yield ``target_traces_per_s``
    sampled traces per second (see the module docstring for the rules).

    ``observe`` is called on the event loop for every ingest batch and only adds counts;
    ``recalculate`` is called every ``interval_s`` by a timer. Every method takes one lock, so
    the timer, the ingest path and the query API may run on different threads.
    """

    def __init__(self, *, target_traces_per_s: float, min_probability: float, max_probability: float,
                 tolerance: float, max_increase: float, interval_s: float,
                 initial_probability: float = 0.001, clock=time.monotonic,
                 lower_bound_traces_per_s: float = DEFAULT_LOWER_BOUND_TRACES_PER_S):
        if not (target_traces_per_s > 0 and math.isfinite(target_traces_per_s)):
            raise ValueError(f"target_traces_per_s must be > 0, got {target_traces_per_s}")
        if not 0.0 <= min_probability <= max_probability <= 1.0 or max_probability <= 0:
            raise ValueError(f"need 0 <= min_probability <= max_probability <= 1 and max_probability > 0, "
                             f"got {min_probability}, {max_probability}")
        if not 0.0 <= tolerance < 1.0:
            raise ValueError(f"tolerance must be 0..1, got {tolerance}")
        if not max_increase >= 1.0:
            raise ValueError(f"max_increase must be >= 1, got {max_increase}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if not 0.0 < initial_probability <= 1.0:
            raise ValueError(f"initial_probability must be in (0, 1], got {initial_probability}")
        if not lower_bound_traces_per_s >= 0:
            raise ValueError(f"lower_bound_traces_per_s must be >= 0, got {lower_bound_traces_per_s}")
        self.target = float(target_traces_per_s)
        self.min_probability = float(min_probability)
        self.max_probability = float(max_probability)
        self.tolerance = float(tolerance)
        self.max_increase = float(max_increase)
        self.interval_s = float(interval_s)
        # what a new operation starts at, and the SDKs' default for operations not listed
        self.initial_probability = self._clamp(float(initial_probability))
        self.lower_bound = float(lower_bound_traces_per_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: dict[tuple[str, str], _Op] = {}
        self._services: dict[str, dict[str, _Op]] = {}  # the same _Op objects, by service
        self._since = clock()  # start of the interval being counted
        self.recalculations = 0

    # ---- counting (hot path) ----------------------------------------------------------------------

    def observe(self, counts: dict[tuple[str, str], int],
                adjusted: dict[tuple[str, str], tuple[int, float]] | None = None) -> None:
        """Add the root spans (sampled traces) of one ingest batch, per (service, operation).

        ``adjusted`` (optional) maps a key to ``(stated, weight)``: how many of its ``counts`` root
        spans stated the probability their SDK sampled them at (OpenTelemetry ``tracestate``
        ``ot=th:``), and the traces those represent (the sum of their adjusted counts, 1/p each).
        The rest are taken as sampled at the probability served. With it the calculation is right
        even when SDKs sampled at another probability (before they fetched the latest one, or
        with a sampler of their own)."""
        with self._lock:
            ops = self._ops
            for key, n in counts.items():
                op = ops.get(key)
                if op is None:
                    op = self._add(key, self.initial_probability)
                op.count += n
            if adjusted:
                for key, (stated, weight) in adjusted.items():
                    op = ops.get(key)
                    if op is None:
                        op = self._add(key, self.initial_probability)
                    op.stated += stated
                    op.weight += weight

    def _add(self, key: tuple[str, str], probability: float) -> _Op:
        op = _Op(probability)
        self._ops[key] = op
        self._services.setdefault(key[0], {})[key[1]] = op
        return op

    # ---- the calculation ----------------------------------------------------------------------------

    def recalculate(self) -> None:
        """Close the interval: observed rates from the counts, new probabilities from the rules.

        The rate is divided by the seconds actually elapsed since the last recalculation (a late
        timer does not inflate it). A call sooner than half an interval after the last one does
        nothing and the counts carry on into the next (a doubled timer tick cannot act on a
        handful of traces)."""
        with self._lock:
            now = self._clock()
            elapsed = now - self._since
            if elapsed < 0.5 * self.interval_s:
                return
            self._since = now
            self.recalculations += 1
            for op in self._ops.values():
                n, stated, weight = op.count, op.stated, op.weight
                op.count = op.stated = 0
                op.weight = 0.0
                if n <= 0:
                    op.observed = 0.0  # no traffic: the probability stays
                    op.estimated = None
                    continue
                old = op.probability
                op.observed = n / elapsed
                stated = min(stated, n)
                # the traffic before the SDKs sampled: what each root span stands for
                op.estimated = (weight + (n - stated) / old) / elapsed if stated else op.observed / old
                # the rate the SDKs would have sent at the probability served (= observed when no
                # root span stated another probability)
                op.probability = self._next_probability(old, op.estimated * old if stated else op.observed)

    def _next_probability(self, old: float, observed: float) -> float:
        """``observed``: sampled traces/s at probability ``old``."""
        target = self.target
        if observed <= 0 or abs(observed - target) <= self.tolerance * target:
            return old  # (<= 0: only stated weights of 0, nothing to go by)
        new = old * target / observed
        cap = old * self.max_increase
        if new > cap:
            new = cap
        return self._clamp(new)

    def _clamp(self, p: float) -> float:
        return min(max(p, self.min_probability), self.max_probability)

    # ---- what is served -----------------------------------------------------------------------------

    def probability(self, service: str, operation: str) -> float | None:
        """The probability served for one operation; None when it was never seen."""
        with self._lock:
            op = self._ops.get((service, operation))
            return None if op is None else op.probability

    def strategy(self, service: str, unseen: bool = False) -> dict | None:
        """The Jaeger adaptive strategy response for ``service`` (a fresh dict in Jaeger's JSON shape:
        ``strategyType`` PROBABILISTIC, which as a zero value is left out as Jaeger's JSON does, and
        ``operationSampling`` with the initial probability as the default for operations not listed,
        the SDK's lower bound in traces/s and one probabilistic strategy per operation seen), or
        None when no trace of the service was ever seen (with ``unseen``: the initial strategy,
        every operation at the initial probability, as Jaeger's adaptive provider answers).

        Jaeger's adaptive response carries no top-level ``probabilisticSampling``; this one repeats
        the default probability there, so a client that ignores ``operationSampling`` samples at it
        instead of failing (clients that read ``operationSampling`` ignore it)."""
        with self._lock:
            ops = self._services.get(service)
            if ops is None:
                if not unseen:
                    return None
                ops = {}
            per_op = [{"operation": name, "probabilisticSampling": _probabilistic(ops[name].probability)}
                      for name in sorted(ops)]
        default = self.initial_probability
        operation_sampling: dict = {}
        if default:
            operation_sampling["defaultSamplingProbability"] = default
        if self.lower_bound:
            operation_sampling["defaultLowerBoundTracesPerSecond"] = self.lower_bound
        if per_op:
            operation_sampling["perOperationStrategies"] = per_op
        return {"probabilisticSampling": _probabilistic(default), "operationSampling": operation_sampling}

    def stats(self) -> list[dict]:
        """Per (service, operation), sorted: the target, the rate observed in the last interval
        (None before the first recalculation), the probability served, and the estimated rate of
        traces before the SDKs sampled in the last interval (None without traffic)."""
        with self._lock:
            rows = []
            for (service, operation), op in sorted(self._ops.items()):
                observed, estimated = op.observed, op.estimated
                rows.append({
                    "service": service,
                    "operation": operation,
                    "target_traces_per_s": self.target,
                    "observed_traces_per_s": None if observed is None else round(observed, 6),
                    "probability": op.probability,
                    "estimated_traces_per_s": None if estimated is None else round(estimated, 3),
                })
            return rows

    # ---- persistence ------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """A JSON-able document of the served probabilities (and the last observed rates), for
        ``restore`` after a restart."""
        with self._lock:
            return {
                "version": SNAPSHOT_VERSION,
                "operations": [{"service": s, "operation": o, "probability": op.probability,
                                "observed_traces_per_s": op.observed}
                               for (s, o), op in sorted(self._ops.items())],
            }

    def restore(self, doc: dict) -> None:
        """Take the probabilities of a ``snapshot`` (clamped into the current bounds, which may have
        changed since). Operations not in it are left alone. A malformed document raises
        ``ValueError`` and changes nothing."""
        if not isinstance(doc, dict) or doc.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"adaptive snapshot: expected an object with version {SNAPSHOT_VERSION}")
        rows = doc.get("operations")
        if not isinstance(rows, list):
            raise ValueError("adaptive snapshot: operations must be a list")
        parsed = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ValueError(f"adaptive snapshot: operations[{i}] must be an object")
            service, operation, p = row.get("service"), row.get("operation"), row.get("probability")
            observed = row.get("observed_traces_per_s")
            if not isinstance(service, str) or not isinstance(operation, str):
                raise ValueError(f"adaptive snapshot: operations[{i}]: service and operation must be strings")
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
                raise ValueError(f"adaptive snapshot: operations[{i}].probability must be in (0, 1], got {p!r}")
            if observed is not None and (isinstance(observed, bool) or not isinstance(observed, (int, float))
                                         or not observed >= 0):
                raise ValueError(f"adaptive snapshot: operations[{i}].observed_traces_per_s must be >= 0")
            parsed.append(((service, operation), self._clamp(float(p)), observed))
        with self._lock:
            for key, p, observed in parsed:
                op = self._ops.get(key) or self._add(key, p)
                op.probability = p
                op.observed = None if observed is None else float(observed)


def _probabilistic(p: float) -> dict:
    # Go's omitempty, as in strategies.py: a zero probability is left out.
    return {"samplingRate": p} if p else {}


class StoredRateController:
    """Overload control of the tail stage: the factor (0, 1] that multiplies the probabilistic
    baseline so stored spans/s follow ``target_spans_per_s`` (0 turns it off: the factor stays 1).

    Each ``update`` splits the stored rate S into the baseline part B (spans kept only by a
    probabilistic policy, which the factor scales) and the rest O = S - B (error, latency and
    other keeps, never reduced). Outside the tolerance band the factor becomes
    ``factor * (target - O) / B``, the factor at which O + B would have met the target: a decrease
    applies at once, an increase is capped at ``max_increase`` per update, and the factor stays in
    ``[min_factor, 1]``. When O alone exceeds the target the factor drops to ``min_factor``; when
    nothing was kept by the baseline the factor can only be raised (by ``max_increase``, while the
    stored rate is below the target).
    """

    def __init__(self, target_spans_per_s: float, *, min_factor: float = 1e-4, max_increase: float = 2.0,
                 tolerance: float = 0.05):
        if not target_spans_per_s >= 0:
            raise ValueError(f"target_spans_per_s must be >= 0 (0: off), got {target_spans_per_s}")
        if not 0 < min_factor <= 1:
            raise ValueError(f"min_factor must be in (0, 1], got {min_factor}")
        if not max_increase >= 1:
            raise ValueError(f"max_increase must be >= 1 (1: never raised again), got {max_increase}")
        if not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be 0..1, got {tolerance}")
        self.target = float(target_spans_per_s)
        self.min_factor = float(min_factor)
        self.max_increase = float(max_increase)
        self.tolerance = float(tolerance)
        self._factor = 1.0

    @property
    def factor(self) -> float:
        return self._factor

    def update(self, stored_spans: int, baseline_spans: int, interval_s: float) -> float:
        """Account one interval and return the new factor. ``baseline_spans`` (spans kept only by a
        probabilistic policy) is part of ``stored_spans``; more is taken as all of them."""
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if stored_spans < 0 or baseline_spans < 0:
            raise ValueError("span counts must be >= 0")
        if not self.target:
            return self._factor
        baseline_spans = min(baseline_spans, stored_spans)
        target = self.target
        stored = stored_spans / interval_s
        if abs(stored - target) <= self.tolerance * target:
            return self._factor
        old = self._factor
        baseline = baseline_spans / interval_s
        other = stored - baseline
        if baseline <= 0:
            new = old * self.max_increase if stored < target else old  # nothing to scale down
        elif other >= target:
            new = self.min_factor  # the protected keeps alone fill the target
        else:
            new = old * (target - other) / baseline
            new = min(new, old * self.max_increase)
        self._factor = min(max(new, self.min_factor), 1.0)
        return self._factor
