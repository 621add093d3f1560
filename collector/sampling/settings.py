"""Sample stage: the run-time settings document — what ``GET/PUT /api/v1/sampling`` show and take.

```
{"head":     {Jaeger file-based strategies: default_strategy, service_strategies},
 "tail":     {"enabled", "decision_wait_s", "root_grace_s", "max_pending_traces",
              "decision_cache", "policies": [...]},
 "adaptive": {"enabled", "interval_s", "target_traces_per_s", "min_probability",
              "max_probability", "tolerance", "max_increase", "target_stored_spans_per_s"}}
```

The starting values come from ``[sampling]`` in the configuration (``strategies_file``,
``tail_policies_file`` and the scalar keys).  A change through the API is validated whole, saved
atomically in ``DATA_DIR/sampling.json`` and applies at once.  On start the saved document wins,
unless the configuration it was derived from has changed since (the operator edited the config
or the strategies file): then the configuration's values are taken, and the log says so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from collector.config import SamplingConfig
from collector.errors import SamplingError
from collector.sampling.policies import Policies
from collector.sampling.strategies import Strategies

log = logging.getLogger("clew.sampling")

FILE = "sampling.json"

# (key, kind, low, high) of the scalar settings; high None = unbounded.
TAIL_KEYS = {"enabled": ("bool", None, None), "decision_wait_s": ("float", 0.0, None),
             "root_grace_s": ("float", None, None), "max_pending_traces": ("int", 0, None),
             "decision_cache": ("int", 0, None)}
ADAPTIVE_KEYS = {"enabled": ("bool", None, None), "interval_s": ("float", 0.0, None),
                 "target_traces_per_s": ("float", 0.0, None), "min_probability": ("prob", None, None),
                 "max_probability": ("prob", None, None), "tolerance": ("float", None, 1.0),
                 "max_increase": ("float", None, None), "target_stored_spans_per_s": ("float", None, None)}


@dataclass(frozen=True)
class Settings:
    strategies: Strategies
    policies: Policies
    tail: dict  # TAIL_KEYS
    adaptive: dict  # ADAPTIVE_KEYS

    def to_json(self) -> dict:
        return {"head": self.strategies.to_jaeger(),
                "tail": {**self.tail, "policies": self.policies.to_json()},
                "adaptive": dict(self.adaptive)}


def from_config(config: SamplingConfig) -> Settings:
    """The settings the configuration describes (raises SamplingError naming the file)."""
    if config.strategies_file:
        strategies = Strategies.from_file(config.strategies_file)
    else:
        strategies = Strategies.default(config.default_rate)
    if config.tail_policies_file:
        try:
            specs = json.loads(Path(config.tail_policies_file).read_text())
        except (OSError, ValueError) as exc:
            raise SamplingError(f"sampling.tail_policies_file {config.tail_policies_file}: {exc}") from None
        policies = Policies.parse(specs, where=f"{config.tail_policies_file}")
    elif config.tail_baseline_rate > 0:
        policies = Policies.default(config.tail_baseline_rate)
    else:  # errors always; the rest as the head probabilities say
        policies = Policies.parse([{"name": "errors", "type": "status_code", "status_codes": ["ERROR"]}])
    tail = {"enabled": config.tail, "decision_wait_s": config.decision_wait_s,
            "root_grace_s": config.root_grace_s, "max_pending_traces": config.max_pending_traces,
            "decision_cache": config.decision_cache}
    adaptive = {"enabled": config.adaptive, "interval_s": config.adaptive_interval_s,
                "target_traces_per_s": config.target_traces_per_s,
                "min_probability": config.min_probability, "max_probability": config.max_probability,
                "tolerance": config.tolerance, "max_increase": config.max_increase,
                "target_stored_spans_per_s": config.target_stored_spans_per_s}
    return Settings(strategies, policies, tail, adaptive)


def _scalars(raw, keys: dict, base: dict, where: str) -> dict:
    if not isinstance(raw, dict):
        raise SamplingError(f"{where}: expected an object")
    out = dict(base)
    for key, value in raw.items():
        if key not in keys:
            raise SamplingError(f"{where}.{key}: unknown setting (known: {', '.join(keys)})")
        kind, low, high = keys[key]
        path = f"{where}.{key}"
        if kind == "bool":
            if not isinstance(value, bool):
                raise SamplingError(f"{path}: expected true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SamplingError(f"{path}: expected a number, got {value!r}")
        elif kind == "int":
            if value != int(value):
                raise SamplingError(f"{path}: expected a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if kind == "prob" and not 0.0 <= value <= 1.0:
            raise SamplingError(f"{path}: a probability must be 0..1, got {value}")
        if kind != "bool":
            if value != value or value in (float("inf"), float("-inf")):
                raise SamplingError(f"{path}: must be a finite number")
            if low is not None and value <= low:
                raise SamplingError(f"{path}: must be > {low}, got {value}")
            if value < 0:
                raise SamplingError(f"{path}: must be >= 0, got {value}")
            if high is not None and value >= high:
                raise SamplingError(f"{path}: must be < {high}, got {value}")
        out[key] = value
    return out


def merge(current: Settings, change) -> Settings:
    """``current`` with ``change`` applied: a partial document (any of head, tail, adaptive;
    within tail and adaptive any keys).  ``head`` and ``tail.policies`` are replaced whole.
    Raises SamplingError naming the first invalid path."""
    if not isinstance(change, dict):
        raise SamplingError("body: expected a JSON object with any of head, tail, adaptive")
    unknown = set(change) - {"head", "tail", "adaptive"}
    if unknown:
        raise SamplingError(f"{sorted(unknown)[0]}: unknown section (known: head, tail, adaptive)")
    strategies, policies = current.strategies, current.policies
    if "head" in change:
        strategies = Strategies.from_jaeger(change["head"])
    tail = current.tail
    if "tail" in change:
        raw = change["tail"]
        if isinstance(raw, dict) and "policies" in raw:
            policies = Policies.parse(raw["policies"], where="tail.policies")
            raw = {k: v for k, v in raw.items() if k != "policies"}
        tail = _scalars(raw, TAIL_KEYS, current.tail, "tail")
    adaptive = current.adaptive
    if "adaptive" in change:
        adaptive = _scalars(change["adaptive"], ADAPTIVE_KEYS, current.adaptive, "adaptive")
        if adaptive["min_probability"] > adaptive["max_probability"]:
            raise SamplingError("adaptive.min_probability: must not exceed adaptive.max_probability")
        if adaptive["max_increase"] < 1:
            raise SamplingError("adaptive.max_increase: must be >= 1")
    return Settings(strategies, policies, tail, adaptive)


def diff(before: dict, after: dict, prefix: str = "") -> list[str]:
    """``path: old → new`` lines for every leaf that changed (lists compared whole)."""
    lines = []
    for key in list(before) + [k for k in after if k not in before]:
        a, b = before.get(key), after.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            lines.extend(diff(a, b, path + "."))
        elif a != b:
            lines.append(f"{path}: {json.dumps(a)} → {json.dumps(b)}")
    return lines


def _digest(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class Store:
    """``DATA_DIR/sampling.json``: the settings in force, the digest of the configuration they
    started from, and state that must survive a restart (adaptive probabilities)."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / FILE

    def load(self, config: SamplingConfig) -> tuple[Settings, dict]:
        base = from_config(config)
        base_digest = _digest(base.to_json())
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return base, {}
        except (OSError, ValueError) as exc:
            log.error("%s is unreadable (%s); starting from the configuration", self.path, exc)
            return base, {}
        state = saved.get("state") or {}
        if saved.get("config_digest") != base_digest:
            log.info("sampling: the configuration changed since %s was saved; its values apply",
                     self.path)
            return base, state
        try:
            return merge(base, saved.get("settings") or {}), state
        except SamplingError as exc:
            log.error("%s holds invalid settings (%s); starting from the configuration", self.path, exc)
            return base, state

    def save(self, settings: Settings, config: SamplingConfig, state: dict) -> None:
        doc = {"settings": settings.to_json(), "config_digest": _digest(from_config(config).to_json()),
               "state": state}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
