"""Sample stage: the settings document — partial changes merged and validated whole, the change
log, and which of the saved document and the configuration wins on start."""
from __future__ import annotations

import json

import pytest

from collector.config import SamplingConfig
from collector.errors import SamplingError
from collector.sampling import settings as S


def test_a_partial_change_keeps_the_rest():
    base = S.from_config(SamplingConfig())
    new = S.merge(base, {"tail": {"decision_wait_s": 3}})
    doc = new.to_json()
    assert doc["tail"]["decision_wait_s"] == 3.0 and doc["tail"]["policies"] == base.policies.to_json()
    assert doc["head"] == base.to_json()["head"] and doc["adaptive"] == base.to_json()["adaptive"]
    assert S.diff(base.to_json(), doc) == ["tail.decision_wait_s: 10.0 → 3.0"]


@pytest.mark.parametrize("change, message", [
    ({"tail": {"max_pending_traces": 1.5}}, "tail.max_pending_traces: expected a whole number"),
    ({"tail": {"enabled": "yes"}}, "tail.enabled: expected true or false"),
    ({"adaptive": {"tolerance": 1}}, "adaptive.tolerance: must be < 1.0"),
    ({"adaptive": {"min_probability": 0.5, "max_probability": 0.1}}, "must not exceed"),
    ({"adaptive": {"interval_s": float("nan")}}, "adaptive.interval_s: must be a finite number"),
    ({"tail": []}, "tail: expected an object"),
])
def test_invalid_values_are_named(change, message):
    with pytest.raises(SamplingError, match=message.replace(".", r"\.").replace("(", r"\(")):
        S.merge(S.from_config(SamplingConfig()), change)


def test_saved_settings_win_until_the_configuration_changes(tmp_path):
    config = SamplingConfig(default_rate=0.5)
    store = S.Store(tmp_path)
    start, _state = store.load(config)
    changed = S.merge(start, {"tail": {"enabled": True}})
    store.save(changed, config, {"adaptive": {"x": 1}})
    again, state = store.load(config)
    assert again.tail["enabled"] is True and state == {"adaptive": {"x": 1}}
    # the operator edits the configuration: its values apply, the saved change is set aside
    edited, _ = store.load(SamplingConfig(default_rate=0.25))
    assert edited.tail["enabled"] is False
    assert edited.to_json()["head"]["default_strategy"]["param"] == 0.25


def test_an_unreadable_saved_file_falls_back_to_the_configuration(tmp_path):
    (tmp_path / S.FILE).write_text("{broken")
    settings, state = S.Store(tmp_path).load(SamplingConfig(default_rate=0.3))
    assert settings.to_json()["head"]["default_strategy"]["param"] == 0.3 and state == {}


def test_a_policies_file_is_read_and_its_errors_name_it(tmp_path):
    good = tmp_path / "p.json"
    good.write_text(json.dumps([{"name": "slow", "type": "latency", "threshold_ms": 250}]))
    settings = S.from_config(SamplingConfig(tail_policies_file=str(good)))
    assert settings.policies.names() == ["slow"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "slow", "type": "latency"}]))
    with pytest.raises(SamplingError, match="bad.json"):
        S.from_config(SamplingConfig(tail_policies_file=str(bad)))
    with pytest.raises(SamplingError, match="missing.json"):
        S.from_config(SamplingConfig(tail_policies_file=str(tmp_path / "missing.json")))
