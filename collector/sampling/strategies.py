"""Sample stage: Jaeger's file-based sampling strategies and the responses SDKs fetch from them.

A strategies document is Jaeger's ``--sampling.strategies-file`` format::

    {"default_strategy": {"type": "probabilistic", "param": 0.5,
                          "operation_strategies": [{"operation": "/health",
                                                    "type": "probabilistic", "param": 0}]},
     "service_strategies": [{"service": "foo", "type": "ratelimiting", "param": 5,
                             "operation_strategies": [...]}]}

``Strategies.response(service)`` answers what Jaeger's file provider answers for ``service``, as the
plain dict of Jaeger's JSON shape (``SamplingStrategyResponse`` with Go's ``omitempty`` rules: a
zero value is left out, so ``strategyType`` appears only for rate limiting, 1). Jaeger's rules:

* an unknown service gets the default strategy;
* a strategy without ``type`` is probabilistic at the *fallback* probability (Jaeger's
  ``DefaultSamplingProbability``, 0.001), whatever its ``param``;
* ``ratelimiting`` ``param`` is truncated to an integer (traces per second);
* per-operation strategies are probabilistic only: a ``ratelimiting`` operation strategy is
  dropped from the response (Jaeger logs a warning and does the same);
* ``operationSampling.defaultSamplingProbability`` is the service's own probability when the service
  is probabilistic, else the fallback probability;
* a service without operation strategies inherits the default strategy's (with its own probability
  as ``defaultSamplingProbability`` when it is probabilistic, else the default's); a service with
  its own gets the default's appended for every operation it does not name.

Clew is stricter than Jaeger about mistakes Jaeger ignores silently (unknown keys or types,
duplicates, out-of-range values): they raise ``SamplingError`` naming the path. See
docs/sampling-remote.md.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from collector.errors import SamplingError, json_kind

log = logging.getLogger("clew.sampling")

PROBABILISTIC = "probabilistic"
RATE_LIMITING = "ratelimiting"
TYPES = (PROBABILISTIC, RATE_LIMITING)
# Jaeger's DefaultSamplingProbability: the probability of a strategy written without a type, and the
# per-operation default of a rate-limited service.
FALLBACK_PROBABILITY = 0.001
STRATEGY_TYPE_RATE_LIMITING = 1  # SamplingStrategyType enum: PROBABILISTIC = 0, RATE_LIMITING = 1
_INT32_MAX = 2**31 - 1

_SERVICE_KEYS = frozenset({"service", "type", "param", "operation_strategies"})
_DEFAULT_KEYS = frozenset({"type", "param", "operation_strategies"})
_OPERATION_KEYS = frozenset({"operation", "type", "param"})


@dataclass(frozen=True)
class Strategy:
    """One sampler: ``probabilistic`` with a probability 0..1, or ``ratelimiting`` with traces/s."""

    type: str
    param: float

    def to_jaeger(self) -> dict:
        param = int(self.param) if self.type == RATE_LIMITING else self.param
        return {"type": self.type, "param": param}


@dataclass(frozen=True)
class OperationStrategy:
    operation: str
    strategy: Strategy

    def to_jaeger(self) -> dict:
        return {"operation": self.operation, **self.strategy.to_jaeger()}


@dataclass(frozen=True)
class ServiceStrategy:
    """A service's (or the default) strategy and its per-operation strategies, as written."""

    strategy: Strategy
    operations: tuple[OperationStrategy, ...] = ()

    def to_jaeger(self) -> dict:
        doc = self.strategy.to_jaeger()
        if self.operations:
            doc["operation_strategies"] = [op.to_jaeger() for op in self.operations]
        return doc


class Strategies:
    """Jaeger file-based strategies: ``default_strategy`` and ``services`` (name → strategy), as
    written; ``response(service)`` applies Jaeger's rules. Treat as immutable."""

    def __init__(self, default: ServiceStrategy, services: dict[str, ServiceStrategy] | None = None,
                 fallback: float = FALLBACK_PROBABILITY):
        self.default_strategy = default
        self.services = dict(services or {})
        self.fallback = fallback
        default_ops = self._operation_sampling(default)
        self._default_response = self._response(default.strategy, default_ops)
        self._responses = {name: self._service_response(s, default_ops)
                           for name, s in self.services.items()}

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def default(cls, rate: float) -> "Strategies":
        """Probabilistic ``rate`` for every service, no per-operation strategies."""
        _check_probability(rate, "default_strategy.param")
        return cls(ServiceStrategy(Strategy(PROBABILISTIC, float(rate))))

    @classmethod
    def from_jaeger(cls, doc, fallback: float = FALLBACK_PROBABILITY) -> "Strategies":
        """Parse a document in Jaeger's strategies-file format (already JSON-decoded).

        ``fallback`` is the probability of a strategy written without ``type`` and of the
        per-operation default of rate-limited services (Jaeger: 0.001). Raises ``SamplingError``
        naming the offending path.
        """
        if not isinstance(doc, dict):
            raise SamplingError(f"strategies: must be a JSON object with default_strategy and "
                                f"service_strategies, got {json_kind(doc)}")
        _no_unknown_keys(doc, frozenset({"default_strategy", "service_strategies"}), "")
        raw_default = doc.get("default_strategy")
        if raw_default is None:
            default = ServiceStrategy(Strategy(PROBABILISTIC, fallback))
        else:
            default = _parse_service(raw_default, "default_strategy", _DEFAULT_KEYS, fallback)
        services: dict[str, ServiceStrategy] = {}
        raw_services = doc.get("service_strategies")
        if raw_services is None:
            raw_services = []
        if not isinstance(raw_services, list):
            raise SamplingError(f"service_strategies: must be a list, got {json_kind(raw_services)}")
        for i, raw in enumerate(raw_services):
            path = f"service_strategies[{i}]"
            if not isinstance(raw, dict):
                raise SamplingError(f"{path}: must be an object, got {json_kind(raw)}")
            name = raw.get("service")
            if not isinstance(name, str) or not name:
                raise SamplingError(f"{path}.service: a non-empty service name is required")
            if name in services:
                raise SamplingError(f"{path}.service: {name!r} appears twice")
            services[name] = _parse_service(raw, path, _SERVICE_KEYS, fallback)
        return cls(default, services, fallback)

    @classmethod
    def from_file(cls, path, fallback: float = FALLBACK_PROBABILITY) -> "Strategies":
        """Read a Jaeger strategies file; a missing, unreadable or invalid file raises
        ``SamplingError`` naming the file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SamplingError(f"strategies file {path}: cannot read it: {exc}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise SamplingError(f"strategies file {path}: not valid JSON: {exc}") from None
        try:
            return cls.from_jaeger(doc, fallback)
        except SamplingError as exc:
            raise SamplingError(f"strategies file {path}: {exc}") from None

    # ---- output ---------------------------------------------------------------------------------

    def response(self, service: str) -> dict:
        """What Jaeger's file provider answers for ``service`` (a fresh dict in Jaeger's JSON
        shape, exactly the body of ``GET /api/sampling?service=``)."""
        return json.loads(json.dumps(self._responses.get(service, self._default_response)))

    def to_jaeger(self) -> dict:
        """The normalized strategies-file document: explicit types, rate limits as integers,
        services in the order given. ``Strategies.from_jaeger(s.to_jaeger())`` answers alike."""
        return {
            "default_strategy": self.default_strategy.to_jaeger(),
            "service_strategies": [{"service": name, **s.to_jaeger()}
                                   for name, s in self.services.items()],
        }

    def __eq__(self, other) -> bool:
        return (isinstance(other, Strategies) and self.default_strategy == other.default_strategy
                and self.services == other.services and self.fallback == other.fallback)

    def __repr__(self) -> str:
        return f"Strategies({json.dumps(self.to_jaeger())})"

    # ---- Jaeger's rules ---------------------------------------------------------------------------

    def _operation_sampling(self, s: ServiceStrategy) -> dict | None:
        """``operationSampling`` of a strategy's own operation strategies (None when it has none)."""
        if not s.operations:
            return None
        default_p = s.strategy.param if s.strategy.type == PROBABILISTIC else self.fallback
        per_op = [{"operation": op.operation,
                   "probabilisticSampling": _probabilistic(op.strategy.param)}
                  for op in s.operations if op.strategy.type == PROBABILISTIC]
        return _per_operation(default_p, per_op)

    def _service_response(self, s: ServiceStrategy, default_ops: dict | None) -> dict:
        own = self._operation_sampling(s)
        if default_ops is None:
            ops = own
        elif own is None:
            # Inherit the default's operation strategies; a probabilistic service's own probability
            # is the default for the operations not listed.
            default_p = (s.strategy.param if s.strategy.type == PROBABILISTIC
                         else default_ops.get("defaultSamplingProbability", 0.0))
            ops = _per_operation(default_p, default_ops.get("perOperationStrategies", []))
        else:
            named = {op["operation"] for op in own.get("perOperationStrategies", [])}
            merged = own.get("perOperationStrategies", []) + [
                op for op in default_ops.get("perOperationStrategies", [])
                if op["operation"] not in named]
            ops = _per_operation(own.get("defaultSamplingProbability", 0.0), merged)
        return self._response(s.strategy, ops)

    @staticmethod
    def _response(strategy: Strategy, ops: dict | None) -> dict:
        out: dict = {}
        if strategy.type == RATE_LIMITING:
            out["strategyType"] = STRATEGY_TYPE_RATE_LIMITING
            rate = int(strategy.param)
            out["rateLimitingSampling"] = {"maxTracesPerSecond": rate} if rate else {}
        else:
            out["probabilisticSampling"] = _probabilistic(strategy.param)
        if ops is not None:
            out["operationSampling"] = ops
        return out


def _probabilistic(p: float) -> dict:
    # Go's omitempty: a zero probability is left out ({}), as Jaeger's JSON does.
    return {"samplingRate": p} if p else {}


def _per_operation(default_p: float, per_op: list) -> dict:
    out: dict = {}
    if default_p:
        out["defaultSamplingProbability"] = default_p
    if per_op:
        out["perOperationStrategies"] = [dict(op, probabilisticSampling=dict(op["probabilisticSampling"]))
                                         for op in per_op]
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _no_unknown_keys(raw: dict, allowed: frozenset, path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise SamplingError(f"{_join(path, str(key))}: unknown key (allowed: "
                                f"{', '.join(sorted(allowed))})")


def _check_probability(value, path: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise SamplingError(f"{path}: a probability must be 0..1, got {value}")


def _parse_strategy(raw: dict, path: str, fallback: float) -> Strategy:
    kind = raw.get("type")
    has_param = "param" in raw and raw["param"] is not None
    if kind is None:
        if has_param:
            raise SamplingError(f"{path}.type: required when param is given "
                                f"({' or '.join(TYPES)})")
        # Jaeger: a strategy without a type is probabilistic at the fallback probability.
        return Strategy(PROBABILISTIC, fallback)
    if kind not in TYPES:
        raise SamplingError(f"{path}.type: must be {' or '.join(TYPES)}, got {json.dumps(kind)}")
    if not has_param:
        raise SamplingError(f"{path}.param: required for type {kind}")
    param = raw["param"]
    if isinstance(param, bool) or not isinstance(param, (int, float)) or not math.isfinite(param):
        raise SamplingError(f"{path}.param: must be a number, got {json.dumps(param)}")
    if kind == PROBABILISTIC:
        _check_probability(param, f"{path}.param")
        return Strategy(PROBABILISTIC, float(param))
    if not 0 <= param <= _INT32_MAX:
        raise SamplingError(f"{path}.param: traces per second must be 0..{_INT32_MAX}, got {param}")
    return Strategy(RATE_LIMITING, float(int(param)))  # Jaeger truncates to int32


def _parse_service(raw, path: str, allowed: frozenset, fallback: float) -> ServiceStrategy:
    if not isinstance(raw, dict):
        raise SamplingError(f"{path}: must be an object, got {json_kind(raw)}")
    _no_unknown_keys(raw, allowed, path)
    strategy = _parse_strategy(raw, path, fallback)
    raw_ops = raw.get("operation_strategies")
    if raw_ops is None:
        raw_ops = []
    if not isinstance(raw_ops, list):
        raise SamplingError(f"{path}.operation_strategies: must be a list, got {json_kind(raw_ops)}")
    ops: list[OperationStrategy] = []
    seen: set[str] = set()
    for j, raw_op in enumerate(raw_ops):
        op_path = f"{path}.operation_strategies[{j}]"
        if not isinstance(raw_op, dict):
            raise SamplingError(f"{op_path}: must be an object, got {json_kind(raw_op)}")
        _no_unknown_keys(raw_op, _OPERATION_KEYS, op_path)
        name = raw_op.get("operation")
        if not isinstance(name, str) or not name:
            raise SamplingError(f"{op_path}.operation: a non-empty operation name is required")
        if name in seen:
            raise SamplingError(f"{op_path}.operation: {name!r} appears twice")
        seen.add(name)
        op = OperationStrategy(name, _parse_strategy(raw_op, op_path, fallback))
        if op.strategy.type == RATE_LIMITING:
            log.warning("%s: operation strategies are probabilistic only; %r (ratelimiting) is not "
                        "served, as in Jaeger", op_path, name)
        ops.append(op)
    return ServiceStrategy(strategy, tuple(ops))


# ---- the wire forms of a response --------------------------------------------------------------
# ``response()`` (and ``Sampling.strategy_for``) give the canonical dict: Jaeger's Go struct JSON,
# zero values left out. Jaeger's HTTP endpoints put other forms on the wire; both are derived here
# from the canonical dict so every transport answers alike.

_TYPE_NAMES = {0: "PROBABILISTIC", STRATEGY_TYPE_RATE_LIMITING: "RATE_LIMITING"}
_INT16_MAX = 2**15 - 1


def strategy_type(response: dict) -> int:
    """The ``SamplingStrategyType`` number of a response (0 when left out; names accepted)."""
    value = response.get("strategyType", 0)
    if isinstance(value, str):
        return {v: k for k, v in _TYPE_NAMES.items()}.get(value, 0)
    return int(value)


def _wire_ops(ops: dict, rate_field) -> dict:
    return {
        "defaultSamplingProbability": ops.get("defaultSamplingProbability", 0),
        "defaultLowerBoundTracesPerSecond": ops.get("defaultLowerBoundTracesPerSecond", 0),
        "perOperationStrategies": [
            {"operation": op.get("operation", ""),
             "probabilisticSampling": {"samplingRate": rate_field(op.get("probabilisticSampling") or {})}}
            for op in ops.get("perOperationStrategies", [])],
        "defaultUpperBoundTracesPerSecond": ops.get("defaultUpperBoundTracesPerSecond", 0),
    }


def proto_json(response: dict) -> dict:
    """The body Jaeger's ``/sampling`` endpoint (agent, collector ``/api/sampling``) answers: protobuf
    JSON with every default written and the enum by name (``"strategyType": "PROBABILISTIC"``),
    minus the absent top-level sub-messages (Jaeger's ``SamplingStrategyResponseToJSON``). The
    OpenTelemetry JS remote sampler reads ``strategyType`` by name, so it needs this form."""
    rate = lambda m: m.get("samplingRate", 0)  # noqa: E731
    out: dict = {"strategyType": _TYPE_NAMES.get(strategy_type(response), "PROBABILISTIC")}
    if "probabilisticSampling" in response:
        out["probabilisticSampling"] = {"samplingRate": rate(response["probabilisticSampling"])}
    if "rateLimitingSampling" in response:
        out["rateLimitingSampling"] = {
            "maxTracesPerSecond": response["rateLimitingSampling"].get("maxTracesPerSecond", 0)}
    if "operationSampling" in response:
        out["operationSampling"] = _wire_ops(response["operationSampling"], rate)
    return out


def legacy_json(response: dict) -> dict:
    """The body of the Jaeger agent's legacy ``/`` endpoint (Thrift 0.9.2 JSON: the enum as a
    number, required fields always written). Thrift's ``maxTracesPerSecond`` is an i16: larger
    limits are capped at 32767 (Jaeger answers 500 instead)."""
    rate = lambda m: m.get("samplingRate", 0)  # noqa: E731
    out: dict = {"strategyType": strategy_type(response)}
    if "probabilisticSampling" in response:
        out["probabilisticSampling"] = {"samplingRate": rate(response["probabilisticSampling"])}
    if "rateLimitingSampling" in response:
        limit = response["rateLimitingSampling"].get("maxTracesPerSecond", 0)
        out["rateLimitingSampling"] = {"maxTracesPerSecond": min(limit, _INT16_MAX)}
    if "operationSampling" in response:
        out["operationSampling"] = _wire_ops(response["operationSampling"], rate)
    return out
