"""Sample stage: Jaeger file-based strategies — every conformance config gives the responses Jaeger's
file provider gives (its fixtures and the expectations of its provider_test.go), bad input is
refused with a message naming the path, and the wire forms match Jaeger's HTTP handler."""
from __future__ import annotations

import json
import pytest

from collector.errors import SamplingError
from collector.sampling.strategies import Strategies, legacy_json, proto_json
from conftest import CONFORMANCE

FIXTURES = CONFORMANCE / "jaeger" / "sampling"


def load(name: str) -> Strategies:
    return Strategies.from_file(FIXTURES / name)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def prob(rate):
    return {"samplingRate": rate} if rate else {}


def op(name, rate):
    return {"operation": name, "probabilisticSampling": prob(rate)}


# --------------------------------------------------------------------------- Jaeger's expectations


def test_service_no_per_operation_matches_jaegers_snapshots():
    s = load("service_no_per_operation.json")
    assert s.response("ServiceA") == fixture("TestServiceNoPerOperationStrategies_ServiceA.json")
    assert s.response("ServiceB") == fixture("TestServiceNoPerOperationStrategies_ServiceB.json")
    # The older behaviour (no inheritance of the default's operations) is not what Jaeger does now.
    assert s.response("ServiceB") != fixture("TestServiceNoPerOperationStrategiesDeprecatedBehavior_ServiceB.json")
    # An unknown service gets the default strategy, with the default's operations.
    assert s.response("nobody") == {
        "probabilisticSampling": {"samplingRate": 0.2},
        "operationSampling": {"defaultSamplingProbability": 0.2, "perOperationStrategies": [op("/health", 0.1)]},
    }


def test_strategies_json():  # TestStrategyStoreWithFile
    s = load("strategies.json")
    assert s.response("foo") == {"probabilisticSampling": {"samplingRate": 0.8}}
    assert s.response("bar") == {"strategyType": 1, "rateLimitingSampling": {"maxTracesPerSecond": 5}}
    assert s.response("default") == {"probabilisticSampling": {"samplingRate": 0.5}}


def test_operation_strategies_json():  # TestPerOperationSamplingStrategies
    s = load("operation_strategies.json")
    # Own operations first (op2 is rate limiting: dropped), then the default's it does not name
    # (op6 is its own; spam is rate limiting: dropped).
    assert s.response("foo") == {
        "probabilisticSampling": {"samplingRate": 0.8},
        "operationSampling": {"defaultSamplingProbability": 0.8, "perOperationStrategies": [
            op("op6", 0.5), op("op1", 0.2), op("op0", 0.2), op("op7", 1.0)]},
    }
    # A rate-limited service's per-operation default is the fallback probability 0.001.
    assert s.response("bar") == {
        "strategyType": 1,
        "rateLimitingSampling": {"maxTracesPerSecond": 5},
        "operationSampling": {"defaultSamplingProbability": 0.001, "perOperationStrategies": [
            op("op3", 0.3), op("op5", 0.4), op("op0", 0.2), op("op6", 0), op("op7", 1.0)]},
    }
    assert s.response("default") == {
        "probabilisticSampling": {"samplingRate": 0.5},
        "operationSampling": {"defaultSamplingProbability": 0.5, "perOperationStrategies": [
            op("op0", 0.2), op("op6", 0), op("op7", 1.0)]},
    }
    # A zero probability is left out, as Go's omitempty does: the operation is still listed.
    assert s.response("default")["operationSampling"]["perOperationStrategies"][1] == {
        "operation": "op6", "probabilisticSampling": {}}


def test_missing_service_types():  # TestMissingServiceSamplingStrategyTypes
    s = load("missing-service-types.json")
    assert s.response("foo") == {
        "probabilisticSampling": {"samplingRate": 0.001},
        "operationSampling": {"defaultSamplingProbability": 0.001, "perOperationStrategies": [op("op1", 0.2)]},
    }
    assert s.response("bar") == {
        "probabilisticSampling": {"samplingRate": 0.001},
        "operationSampling": {"defaultSamplingProbability": 0.001,
                              "perOperationStrategies": [op("op3", 0.3), op("op5", 0.4)]},
    }
    assert s.response("default") == {"probabilisticSampling": {"samplingRate": 0.5}}


def test_sampling_strategies_example():  # Jaeger's documented example, by the same rules
    s = load("sampling_strategies_example.json")
    default_ops = [op("/health", 0), op("/metrics", 0)]
    assert s.response("foo") == {
        "probabilisticSampling": {"samplingRate": 0.8},
        "operationSampling": {"defaultSamplingProbability": 0.8,
                              "perOperationStrategies": [op("op1", 0.2), op("op2", 0.4), *default_ops]},
    }
    # No operations of its own: the default's, with the default's probability (it is rate limited).
    assert s.response("bar") == {
        "strategyType": 1,
        "rateLimitingSampling": {"maxTracesPerSecond": 5},
        "operationSampling": {"defaultSamplingProbability": 0.5, "perOperationStrategies": default_ops},
    }
    assert s.response("anything") == {
        "probabilisticSampling": {"samplingRate": 0.5},
        "operationSampling": {"defaultSamplingProbability": 0.5, "perOperationStrategies": default_ops},
    }


def test_rate_limit_is_truncated_to_an_integer():  # TestParseStrategy
    s = Strategies.from_jaeger({"service_strategies": [{"service": "svc", "type": "ratelimiting", "param": 3.5}]})
    assert s.response("svc") == {"strategyType": 1, "rateLimitingSampling": {"maxTracesPerSecond": 3}}


def test_probabilistic_service_inherits_default_operations_with_its_own_probability():
    s = Strategies.from_jaeger({
        "default_strategy": {"type": "ratelimiting", "param": 2,
                             "operation_strategies": [{"operation": "GET /", "type": "probabilistic", "param": 0.3}]},
        "service_strategies": [{"service": "a", "type": "probabilistic", "param": 0.6}],
    })
    assert s.response("a") == {
        "probabilisticSampling": {"samplingRate": 0.6},
        "operationSampling": {"defaultSamplingProbability": 0.6, "perOperationStrategies": [op("GET /", 0.3)]},
    }
    # The default itself is rate limited: its per-operation default is the fallback probability.
    assert s.response("b")["operationSampling"]["defaultSamplingProbability"] == 0.001
    assert s.response("b")["rateLimitingSampling"] == {"maxTracesPerSecond": 2}


def test_no_default_strategy_means_the_fallback_probability():
    s = Strategies.from_jaeger({"service_strategies": []})
    assert s.response("x") == {"probabilisticSampling": {"samplingRate": 0.001}}
    assert Strategies.from_jaeger({}, fallback=0.25).response("x") == {"probabilisticSampling": {"samplingRate": 0.25}}


def test_default_rate():
    s = Strategies.default(0.25)
    assert s.response("any") == {"probabilisticSampling": {"samplingRate": 0.25}}
    assert Strategies.default(0).response("any") == {"probabilisticSampling": {}}
    assert s.to_jaeger() == {"default_strategy": {"type": "probabilistic", "param": 0.25}, "service_strategies": []}
    with pytest.raises(SamplingError, match="0..1"):
        Strategies.default(1.5)


def test_response_is_a_fresh_dict():
    s = load("operation_strategies.json")
    first = s.response("foo")
    first["operationSampling"]["perOperationStrategies"].clear()
    first["probabilisticSampling"]["samplingRate"] = 0
    assert len(s.response("foo")["operationSampling"]["perOperationStrategies"]) == 4
    assert s.response("foo")["probabilisticSampling"] == {"samplingRate": 0.8}


# --------------------------------------------------------------------------- the normalized document


@pytest.mark.parametrize("name", ["strategies.json", "operation_strategies.json", "missing-service-types.json",
                                  "sampling_strategies_example.json", "service_no_per_operation.json"])
def test_to_jaeger_round_trips(name):
    s = load(name)
    again = Strategies.from_jaeger(json.loads(json.dumps(s.to_jaeger())))
    assert again == s
    for service in ("foo", "bar", "ServiceA", "ServiceB", "unknown"):
        assert again.response(service) == s.response(service)


def test_to_jaeger_is_normalized():
    s = Strategies.from_jaeger({
        "service_strategies": [
            {"service": "a", "operation_strategies": [{"operation": "x", "type": "ratelimiting", "param": 7.9}]},
            {"service": "b", "type": "ratelimiting", "param": 3.5},
        ],
        "default_strategy": {"type": "probabilistic", "param": 1},
    })
    assert s.to_jaeger() == {
        "default_strategy": {"type": "probabilistic", "param": 1.0},
        "service_strategies": [
            # no type: Jaeger's fallback, written out; rate-limited operations are kept as written
            {"service": "a", "type": "probabilistic", "param": 0.001,
             "operation_strategies": [{"operation": "x", "type": "ratelimiting", "param": 7}]},
            {"service": "b", "type": "ratelimiting", "param": 3},
        ],
    }
    # ... though Jaeger serves operation strategies as probabilities only.
    assert "operationSampling" in s.response("a")
    assert s.response("a")["operationSampling"] == {"defaultSamplingProbability": 0.001}


# --------------------------------------------------------------------------- refusals


def test_bad_strategies_fixture_is_refused_naming_the_file():
    path = FIXTURES / "bad_strategies.json"
    with pytest.raises(SamplingError) as err:
        Strategies.from_file(path)
    assert str(path) in str(err.value)
    assert "must be a JSON object" in str(err.value) and "got a string" in str(err.value)


def test_missing_and_invalid_files_are_refused_naming_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(SamplingError, match=f"strategies file {missing}: cannot read it"):
        Strategies.from_file(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"default_strategy": ')
    with pytest.raises(SamplingError, match=f"strategies file {broken}: not valid JSON"):
        Strategies.from_file(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"service_strategies": [{"service": "a", "type": "probabilistic", "param": 2}]}))
    with pytest.raises(SamplingError, match=rf"strategies file {wrong}: service_strategies\[0\].param: "
                                            r"a probability must be 0..1, got 2"):
        Strategies.from_file(wrong)


def svc(**kw):
    return {"service": "s", "type": "probabilistic", "param": 0.5, **kw}


BAD = [
    ({"service_strategies": [svc(), {"service": "t", "type": "probabilistic", "param": 1.5}]},
     "service_strategies[1].param: a probability must be 0..1, got 1.5"),
    ({"service_strategies": [svc(param=-0.1)]}, "service_strategies[0].param: a probability must be 0..1"),
    ({"default_strategy": {"type": "probabilistic", "param": "0.5"}},
     'default_strategy.param: must be a number, got "0.5"'),
    ({"default_strategy": {"type": "probabilistic", "param": True}}, "default_strategy.param: must be a number"),
    ({"default_strategy": {"type": "probabilistic"}}, "default_strategy.param: required for type probabilistic"),
    ({"default_strategy": {"param": 0.5}}, "default_strategy.type: required when param is given"),
    ({"default_strategy": {"type": "random", "param": 0.5}},
     'default_strategy.type: must be probabilistic or ratelimiting, got "random"'),
    ({"service_strategies": [svc(type="ratelimiting", param=-1)]},
     "service_strategies[0].param: traces per second must be 0..2147483647, got -1"),
    ({"service_strategies": [svc(type="ratelimiting", param=2**31)]}, "traces per second must be 0..2147483647"),
    ({"service_strategies": [svc(), svc()]}, "service_strategies[1].service: 's' appears twice"),
    ({"service_strategies": [{"type": "probabilistic", "param": 1}]},
     "service_strategies[0].service: a non-empty service name is required"),
    ({"service_strategies": [svc(service="")]}, "service_strategies[0].service: a non-empty service name"),
    ({"service_strategies": {"s": {}}}, "service_strategies: must be a list, got an object"),
    ({"service_strategies": ["s"]}, "service_strategies[0]: must be an object, got a string"),
    ({"service_strategies": [svc(operation_strategies=[{"type": "probabilistic", "param": 1}])]},
     "service_strategies[0].operation_strategies[0].operation: a non-empty operation name is required"),
    ({"service_strategies": [svc(operation_strategies=[{"operation": "a", "type": "probabilistic", "param": 1},
                                                       {"operation": "a", "type": "probabilistic", "param": 0}])]},
     "service_strategies[0].operation_strategies[1].operation: 'a' appears twice"),
    ({"default_strategy": {"type": "probabilistic", "param": 1,
                           "operation_strategies": [{"operation": "a", "type": "probabilistic", "param": 3}]}},
     "default_strategy.operation_strategies[0].param: a probability must be 0..1, got 3"),
    ({"default_strategy": {"type": "probabilistic", "param": 1, "operation_strategies": "a"}},
     "default_strategy.operation_strategies: must be a list, got a string"),
    ({"service_strategies": [svc(operation_strategy=[])]}, "service_strategies[0].operation_strategy: unknown key"),
    ({"default_strategy": {"service": "x", "type": "probabilistic", "param": 1}},
     "default_strategy.service: unknown key"),
    ({"defaultStrategy": {}}, "defaultStrategy: unknown key (allowed: default_strategy, service_strategies)"),
    ([], "strategies: must be a JSON object"),
    (None, "strategies: must be a JSON object with default_strategy and service_strategies, got null"),
]


@pytest.mark.parametrize("doc, message", BAD, ids=[m[:60] for _, m in BAD])
def test_invalid_documents_are_refused_naming_the_path(doc, message):
    with pytest.raises(SamplingError) as err:
        Strategies.from_jaeger(doc)
    assert message in str(err.value)


# --------------------------------------------------------------------------- wire forms


def test_proto_json_is_jaegers_sampling_endpoint_form():
    """Jaeger's ``SamplingStrategyResponseToJSON``: enum by name, every default written, absent
    top-level sub-messages left out."""
    s = load("operation_strategies.json")
    assert proto_json(load("strategies.json").response("foo")) == {
        "strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 0.8}}
    assert proto_json(load("strategies.json").response("bar")) == {
        "strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 5}}
    assert proto_json(s.response("default")) == {
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 0.5},
        "operationSampling": {
            "defaultSamplingProbability": 0.5,
            "defaultLowerBoundTracesPerSecond": 0,
            "perOperationStrategies": [
                {"operation": "op0", "probabilisticSampling": {"samplingRate": 0.2}},
                {"operation": "op6", "probabilisticSampling": {"samplingRate": 0}},
                {"operation": "op7", "probabilisticSampling": {"samplingRate": 1.0}},
            ],
            "defaultUpperBoundTracesPerSecond": 0,
        },
    }
    assert list(proto_json(s.response("bar"))) == ["strategyType", "rateLimitingSampling", "operationSampling"]


def test_legacy_json_is_the_old_agents_form():
    """Jaeger's handler test: ``{"strategyType":1,"rateLimitingSampling":{"maxTracesPerSecond":42}}``."""
    limited = Strategies.from_jaeger({"default_strategy": {"type": "ratelimiting", "param": 42}})
    assert json.dumps(legacy_json(limited.response("Y")), separators=(",", ":")) == \
        '{"strategyType":1,"rateLimitingSampling":{"maxTracesPerSecond":42}}'
    assert legacy_json(Strategies.default(0).response("x")) == {
        "strategyType": 0, "probabilisticSampling": {"samplingRate": 0}}
    huge = Strategies.from_jaeger({"default_strategy": {"type": "ratelimiting", "param": 100000}})
    assert legacy_json(huge.response("x"))["rateLimitingSampling"] == {"maxTracesPerSecond": 32767}
    assert proto_json(huge.response("x"))["rateLimitingSampling"] == {"maxTracesPerSecond": 100000}
