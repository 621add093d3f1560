"""Sample stage: adaptive probabilities (``Adaptive``) driven by simulated SDK traffic, and the
overload controller of the tail baseline (``StoredRateController``)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from collector.sampling import consistent
from collector.sampling.adaptive import Adaptive, StoredRateController


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class SDK:
    """One service's SDKs: ``loads`` traces/s offered per operation; before each stretch of traffic it
    fetches the strategy the collector serves (``Adaptive.strategy``) and samples every trace by the
    OpenTelemetry consistent rule (keep when the trace's randomness R >= threshold(p), R uniform
    over 56 bits as for random trace IDs). What it keeps reaches the collector as root spans, in
    several ingest batches (``Adaptive.observe``)."""

    def __init__(self, adaptive: Adaptive, service: str, loads: dict[str, float], seed: int = 7,
                 state: bool = False):
        self.adaptive = adaptive
        self.service = service
        self.loads = dict(loads)
        self.rng = np.random.default_rng(seed)
        self.state = state  # the ingest path reads each root's tracestate ot=th: (observe's adjusted)

    def served(self) -> dict[str, float]:
        doc = self.adaptive.strategy(self.service)
        if doc is None:  # never seen: the SDK's own initial probability
            return {op: self.adaptive.initial_probability for op in self.loads}
        ops = doc["operationSampling"]
        listed = {s["operation"]: s["probabilisticSampling"].get("samplingRate", 0.0)
                  for s in ops.get("perOperationStrategies", [])}
        return {op: listed.get(op, ops.get("defaultSamplingProbability", 0.0)) for op in self.loads}

    def run(self, seconds: float, batches: int = 10, probs: dict[str, float] | None = None) -> dict[str, int]:
        """Offer ``seconds`` of traffic; returns the traces sampled (and sent) per operation.
        ``probs``: sample at these instead of fetching (an SDK that has not polled yet, or one
        with a sampler of its own)."""
        probs = probs or self.served()
        sent = {}
        for op, load in self.loads.items():
            n = int(self.rng.poisson(load * seconds))
            r = self.rng.integers(0, consistent.MAX, size=n, dtype=np.uint64)
            th = consistent.threshold(probs[op])
            kept = int(np.count_nonzero(r >= np.uint64(th)))
            sent[op] = kept
            for part in np.array_split(np.arange(kept), batches):
                if len(part):
                    key = (self.service, op)
                    adjusted = ({key: (len(part), len(part) * consistent.adjusted_count(th))}
                                if self.state else None)
                    self.adaptive.observe({key: len(part)}, adjusted)
        return sent


def make(clock, **kw) -> Adaptive:
    params = dict(target_traces_per_s=200.0, min_probability=1e-5, max_probability=1.0, tolerance=0.05,
                  max_increase=5.0, interval_s=10.0, initial_probability=0.001, clock=clock)
    params.update(kw)
    return Adaptive(**params)


def interval(adaptive: Adaptive, clock: FakeClock, sdk: SDK, fraction: float = 1.0) -> dict[str, float]:
    """``fraction`` of an interval of SDK traffic; the recalculation runs when the interval ends."""
    sent = sdk.run(adaptive.interval_s * fraction)
    clock.t += adaptive.interval_s * fraction
    if fraction >= 1.0:
        adaptive.recalculate()
    return {op: n / (adaptive.interval_s * fraction) for op, n in sent.items()}


def within(rate: float, target: float, band: float = 0.10) -> bool:
    return abs(rate - target) <= band * target


def converge(adaptive, clock, sdk, op, max_intervals=12) -> int:
    """Intervals until the probability the collector serves gives the target (expected rate within
    5%) — then returns how many it took."""
    for i in range(1, max_intervals + 1):
        interval(adaptive, clock, sdk)
        if within(sdk.loads[op] * adaptive.probability(sdk.service, op), adaptive.target, 0.05):
            return i
    raise AssertionError(f"no convergence in {max_intervals} intervals: "
                         f"p={adaptive.probability(sdk.service, op)}")


# ---- (a) per-operation probabilities -----------------------------------------------------------------

def test_new_operation_converges_from_the_initial_probability_with_bounded_increases():
    clock = FakeClock()
    a = make(clock, max_increase=2.0)
    sdk = SDK(a, "shop", {"checkout": 20_000.0})  # needs p = 0.01, starts at 0.001
    probs = [a.initial_probability]
    for _ in range(6):
        interval(a, clock, sdk)
        probs.append(a.probability("shop", "checkout"))
    ratios = [b / a_ for a_, b in zip(probs, probs[1:])]
    assert all(r <= 2.0 + 1e-12 for r in ratios), ratios
    assert ratios[:3] == pytest.approx([2.0, 2.0, 2.0])  # far below target: capped doublings
    # 0.001 → 0.008 after three doublings, then one uncapped step of x1.25 to the target
    assert within(20_000 * probs[4], 200, 0.05)
    sent = interval(a, clock, sdk)
    assert within(sent["checkout"], 200)


@pytest.mark.parametrize("step", [5.0, 0.2], ids=["x5-up", "div5-down"])
def test_step_change_of_load_is_followed_within_two_intervals(step):
    clock = FakeClock()
    a = make(clock)  # max_increase 5: a ÷5 step needs a x5 increase
    sdk = SDK(a, "shop", {"checkout": 20_000.0, "health": 2_000.0})
    converge(a, clock, sdk, "checkout")
    converge(a, clock, sdk, "health")
    p_health = a.probability("shop", "health")
    sdk.loads["checkout"] *= step
    first = interval(a, clock, sdk)  # the step's interval: the SDK still samples at the old probability
    assert not within(first["checkout"], 200, 0.5)
    rates = [interval(a, clock, sdk)["checkout"] for _ in range(4)]
    # second interval after the step: on target, and stays there
    assert all(within(r, 200) for r in rates), rates
    assert within(sdk.loads["checkout"] * a.probability("shop", "checkout"), 200)
    # the other operation of the same service was not disturbed
    assert a.probability("shop", "health") == pytest.approx(p_health, rel=0.1)


def test_step_in_the_middle_of_an_interval_is_followed_within_two_recalculations():
    clock = FakeClock()
    a = make(clock)
    sdk = SDK(a, "shop", {"checkout": 20_000.0})
    converge(a, clock, sdk, "checkout")
    sdk.run(a.interval_s / 2)  # half an interval at the old load...
    clock.t += a.interval_s / 2
    sdk.loads["checkout"] *= 5
    sdk.run(a.interval_s / 2)  # ...half at five times as much: observed = 3 x target
    clock.t += a.interval_s / 2
    a.recalculate()
    partial = sdk.loads["checkout"] * a.probability("shop", "checkout")
    assert 1.5 * 200 < partial < 2 * 200  # corrected for the mix it saw: 5/3 x target
    interval(a, clock, sdk)  # a whole interval at the new load corrects the rest
    assert within(interval(a, clock, sdk)["checkout"], 200)


def test_a_fivefold_drop_with_doubling_increases_takes_three_intervals():
    clock = FakeClock()
    a = make(clock, max_increase=2.0)
    sdk = SDK(a, "shop", {"checkout": 100_000.0})
    converge(a, clock, sdk, "checkout", max_intervals=20)
    sdk.loads["checkout"] /= 5
    before = a.probability("shop", "checkout")
    probs = []
    for _ in range(4):
        interval(a, clock, sdk)
        probs.append(a.probability("shop", "checkout"))
    assert probs[0] == pytest.approx(2 * before) and probs[1] == pytest.approx(4 * before)
    assert not within(sdk.loads["checkout"] * probs[1], 200)  # 0.8 x target after two
    assert within(sdk.loads["checkout"] * probs[2], 200, 0.05)  # the third is uncapped (x1.25)


@pytest.mark.parametrize("state", [False, True], ids=["counts-only", "stated-thresholds"])
def test_sdks_that_poll_late_mislead_counts_but_not_stated_thresholds(state):
    clock = FakeClock()
    a = make(clock)
    sdk = SDK(a, "shop", {"checkout": 20_000.0}, state=state)
    converge(a, clock, sdk, "checkout")
    p_old = a.probability("shop", "checkout")
    sdk.loads["checkout"] *= 5
    interval(a, clock, sdk)  # the step, at the old probability; the recalculation cuts it by 5
    p_new = a.probability("shop", "checkout")
    # the SDKs fetch the new probability only after a fifth of the next interval
    sdk.run(a.interval_s * 0.2, probs={"checkout": p_old})
    sdk.run(a.interval_s * 0.8, probs={"checkout": p_new})
    clock.t += a.interval_s
    a.recalculate()
    expected = sdk.loads["checkout"] * a.probability("shop", "checkout")
    if state:  # the stale traces said what they were sampled at: nothing to correct
        assert a.probability("shop", "checkout") == p_new
    else:  # read as 1.8 x target at p_new: over-corrected to 0.56 x target
        assert expected < 0.6 * 200


@pytest.mark.parametrize("state", [False, True], ids=["counts-only", "stated-thresholds"])
def test_an_sdk_with_its_own_sampler(state):
    clock = FakeClock()
    a = make(clock, max_increase=2.0)
    own = SDK(a, "legacy", {"op": 20_000.0}, state=state)
    for _ in range(5):  # it samples everything, whatever is served
        own.run(a.interval_s, probs={"op": 1.0})
        clock.t += a.interval_s
        a.recalculate()
    if state:  # climbs (x2 per interval) to what it needs when it switches: 200 of 20,000 traces/s
        assert a.probability("legacy", "op") == pytest.approx(0.01, rel=0.05)
        assert a.stats()[0]["estimated_traces_per_s"] == pytest.approx(20_000, rel=0.02)
    else:  # 20,000/s read as sampled at 0.001: driven to the floor
        assert a.probability("legacy", "op") == a.min_probability


def test_tolerance_band_leaves_the_probability_alone():
    clock = FakeClock()
    a = make(clock, target_traces_per_s=100.0, tolerance=0.25, initial_probability=0.1)
    for count, changed in ((1250, False), (750, False), (1100, False), (1260, True), (740, True)):
        before = a.probability("s", "op") or a.initial_probability
        a.observe({("s", "op"): count})
        clock.t += 10
        a.recalculate()
        after = a.probability("s", "op")
        if changed:
            assert after == pytest.approx(before * 100 / (count / 10))
        else:
            assert after == before, count


def test_probabilities_are_clamped_to_min_and_max():
    clock = FakeClock()
    a = make(clock, min_probability=1e-3, max_probability=0.5, max_increase=100.0)
    flood = SDK(a, "big", {"op": 1_000_000.0})  # would need 2e-4
    trickle = SDK(a, "small", {"op": 50.0})  # would need 4 (every trace and more)
    for _ in range(5):
        interval(a, clock, flood)
        interval(a, clock, trickle)
    assert a.probability("big", "op") == 1e-3
    assert a.probability("small", "op") == 0.5


def test_an_operation_without_traffic_keeps_its_probability():
    clock = FakeClock()
    a = make(clock)
    sdk = SDK(a, "shop", {"checkout": 20_000.0})
    converge(a, clock, sdk, "checkout")
    p = a.probability("shop", "checkout")
    for _ in range(3):
        clock.t += a.interval_s
        a.recalculate()
    assert a.probability("shop", "checkout") == p
    row = a.stats()[0]
    assert row["observed_traces_per_s"] == 0.0 and row["probability"] == p


def test_rate_uses_the_time_elapsed_and_a_doubled_tick_does_nothing():
    clock = FakeClock()
    a = make(clock, target_traces_per_s=10.0, tolerance=0.0, initial_probability=0.5)
    a.observe({("s", "op"): 300})
    clock.t += 15.0  # the timer fired late: 300 traces over 15 s is 20/s, not 30/s
    a.recalculate()
    assert a.probability("s", "op") == pytest.approx(0.25)
    a.observe({("s", "op"): 1})
    clock.t += 0.1
    a.recalculate()  # 0.1 s after the last: ignored, the count carries over
    assert a.probability("s", "op") == pytest.approx(0.25)
    a.observe({("s", "op"): 99})
    clock.t += 9.9
    a.recalculate()  # 100 traces in 10 s → 10/s: on target
    assert a.probability("s", "op") == pytest.approx(0.25)
    assert a.stats()[0]["observed_traces_per_s"] == pytest.approx(10.0)


def test_strategy_is_jaegers_adaptive_response():
    clock = FakeClock()
    a = make(clock, initial_probability=0.002)
    assert a.strategy("shop") is None and a.probability("shop", "checkout") is None
    a.observe({("shop", "GET /b"): 3, ("shop", "GET /a"): 1, ("other", "x"): 1})
    doc = a.strategy("shop")
    assert doc == {
        "probabilisticSampling": {"samplingRate": 0.002},
        "operationSampling": {
            "defaultSamplingProbability": 0.002,
            "defaultLowerBoundTracesPerSecond": pytest.approx(1 / 60),
            "perOperationStrategies": [
                {"operation": "GET /a", "probabilisticSampling": {"samplingRate": 0.002}},
                {"operation": "GET /b", "probabilisticSampling": {"samplingRate": 0.002}},
            ],
        },
    }
    assert "strategyType" not in doc  # PROBABILISTIC is 0: left out, as Jaeger's JSON does
    doc["operationSampling"]["perOperationStrategies"].clear()  # a fresh dict each time
    assert len(a.strategy("shop")["operationSampling"]["perOperationStrategies"]) == 2
    json.dumps(a.strategy("shop"))


def test_stats_report_target_observed_and_probability():
    clock = FakeClock()
    a = make(clock, initial_probability=0.01)
    a.observe({("shop", "checkout"): 4000})
    assert a.stats()[0]["observed_traces_per_s"] is None  # nothing measured yet
    clock.t += 10
    a.recalculate()
    [row] = a.stats()
    assert row == {"service": "shop", "operation": "checkout", "target_traces_per_s": 200.0,
                   "observed_traces_per_s": 400.0, "probability": pytest.approx(0.005),
                   "estimated_traces_per_s": pytest.approx(40_000, rel=1e-6)}  # 400/s sampled at 0.01


def test_snapshot_restore_round_trip_keeps_the_probabilities():
    clock = FakeClock()
    a = make(clock)
    sdk = SDK(a, "shop", {"checkout": 20_000.0, "health": 2_000.0})
    for _ in range(5):
        interval(a, clock, sdk)
    doc = json.loads(json.dumps(a.snapshot()))
    b = make(FakeClock(5.0))
    b.restore(doc)
    assert b.strategy("shop") == a.strategy("shop")
    assert [r["probability"] for r in b.stats()] == [r["probability"] for r in a.stats()]
    # the restarted collector serves the learnt probabilities at once: SDK traffic is on target
    clock_b = FakeClock(5.0)
    b = make(clock_b)
    b.restore(doc)
    sdk_b = SDK(b, "shop", dict(sdk.loads), seed=99)
    assert within(interval(b, clock_b, sdk_b)["checkout"], 200)


def test_restore_clamps_to_current_bounds_and_rejects_malformed_documents():
    a = make(FakeClock())
    a.observe({("s", "op"): 1})
    doc = {"version": 1, "operations": [{"service": "s", "operation": "op", "probability": 0.9,
                                         "observed_traces_per_s": 12.0}]}
    b = make(FakeClock(), max_probability=0.5)
    b.restore(doc)
    assert b.probability("s", "op") == 0.5
    for bad in ({}, {"version": 2, "operations": []}, {"version": 1, "operations": {}},
                {"version": 1, "operations": [{"service": "s", "operation": "op", "probability": 0}]},
                {"version": 1, "operations": [{"service": "s", "operation": "op", "probability": 0.5},
                                              {"service": 1, "operation": "op", "probability": 0.5}]}):
        with pytest.raises(ValueError):
            a.restore(bad)
    assert a.probability("s", "op") == a.initial_probability  # nothing half-applied


def test_invalid_parameters_are_refused():
    for bad in (dict(target_traces_per_s=0), dict(min_probability=0.5, max_probability=0.1),
                dict(tolerance=1.0), dict(max_increase=0.5), dict(interval_s=0), dict(initial_probability=0)):
        with pytest.raises(ValueError):
            make(FakeClock(), **bad)


# ---- (b) the overload controller -------------------------------------------------------------------

class TailSim:
    """The tail stage in one interval: ``traces`` traces of ``spans`` spans; ``error_share`` of them
    have an error span (always kept), the rest are kept by the probabilistic baseline at
    ``baseline_rate * factor`` (consistent rule on random randomness)."""

    def __init__(self, baseline_rate: float, spans: int = 10, error_share: float = 0.02, seed: int = 3):
        self.baseline_rate = baseline_rate
        self.spans = spans
        self.error_share = error_share
        self.rng = np.random.default_rng(seed)

    def interval(self, traces: int, factor: float) -> tuple[int, int, int, int]:
        errors = int(self.rng.binomial(traces, self.error_share))
        others = traces - errors
        r = self.rng.integers(0, consistent.MAX, size=others, dtype=np.uint64)
        kept = int(np.count_nonzero(r >= np.uint64(consistent.threshold(self.baseline_rate * factor))))
        stored = (errors + kept) * self.spans
        return stored, kept * self.spans, errors, errors * self.spans


def test_controller_is_off_with_a_zero_target():
    c = StoredRateController(0)
    assert c.update(10**9, 10**9, 1.0) == 1.0 and c.factor == 1.0


def test_controller_lowers_the_baseline_under_overload_and_keeps_every_error():
    c = StoredRateController(10_000.0)  # stored spans/s wanted
    tail = TailSim(baseline_rate=0.5)
    # normal load: 1,000 traces/s x 10 spans, half kept → about 5,100 spans/s, under the target
    for _ in range(3):
        stored, base, _, _ = tail.interval(1_000 * 10, c.factor)
        c.update(stored, base, 10.0)
    assert c.factor == 1.0
    # a surge to 20x: 100,000+ spans/s would be stored without the controller
    history = []
    for _ in range(4):
        stored, base, errors, error_spans = tail.interval(20_000 * 10, c.factor)
        history.append(stored / 10.0)
        assert stored - base == error_spans  # every error trace's spans were stored
        c.update(stored, base, 10.0)
    assert history[0] > 9 * 10_000
    assert all(within(r, 10_000) for r in history[1:]), history  # on target from the next interval
    assert c.factor < 0.07


def test_controller_raises_the_factor_back_in_bounded_steps():
    c = StoredRateController(10_000.0, max_increase=2.0)
    tail = TailSim(baseline_rate=0.5)
    for _ in range(3):
        stored, base, _, _ = tail.interval(20_000 * 10, c.factor)
        c.update(stored, base, 10.0)
    low = c.factor
    factors = [low]
    for _ in range(8):  # the surge is over
        stored, base, _, _ = tail.interval(1_000 * 10, c.factor)
        factors.append(c.update(stored, base, 10.0))
    steps = [b / a for a, b in zip(factors, factors[1:])]
    assert all(s <= 2.0 + 1e-12 for s in steps), steps
    assert steps[0] == pytest.approx(2.0)
    assert factors[-1] == 1.0


def test_controller_goes_to_the_floor_when_protected_keeps_alone_exceed_the_target():
    c = StoredRateController(1_000.0, min_factor=1e-3)
    # 1,500 spans/s from errors and latency alone, 500 from the baseline
    assert c.update(20_000, 5_000, 10.0) == 1e-3
    # nothing kept by the baseline, over target: nothing to lower, the factor stays
    assert c.update(20_000, 0, 10.0) == 1e-3
    # under the target with no baseline keeps: raised by max_increase
    assert c.update(0, 0, 10.0) == pytest.approx(2e-3)


def test_controller_tolerance_band():
    c = StoredRateController(1_000.0, tolerance=0.05)
    c.update(30_000, 25_000, 10.0)  # 3,000/s → factor (1000-500)/2500 = 0.2
    assert c.factor == pytest.approx(0.2)
    assert c.update(10_400, 5_000, 10.0) == pytest.approx(0.2)  # 1,040/s: inside the band
    assert math.isclose(c.update(9_000, 4_000, 10.0), 0.2 * 500 / 400)  # 900/s: raised
