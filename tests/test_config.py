"""Configuration: precedence of defaults, TOML, environment and flags; invalid values name their key."""
from __future__ import annotations

import subprocess
import sys

import pytest

from collector.cli import main
from collector.config import load_config
from collector.errors import ConfigError
from conftest import ROOT


def test_defaults_are_the_standard_ports():
    c = load_config(environ={})
    assert (c.otlp.grpc_port, c.otlp.http_port, c.query.port) == (4317, 4318, 16686)
    assert c.server.data_dir == "./data"
    assert c.limits.max_span_bytes == 65536 and c.limits.max_spans_per_trace == 10_000
    assert c.otlp.max_body_bytes == 16 * 1024 * 1024


def test_precedence_toml_env_flags(tmp_path):
    toml = tmp_path / "clew.toml"
    toml.write_text('[otlp]\nhttp_port = 5000\ngrpc_port = 5001\n[store]\nfsync = true\n')
    env = {"CLEW_OTLP_HTTP_PORT": "6000", "CLEW_STORE_COMPRESSION_LEVEL": "3"}
    c = load_config(toml, {"otlp.http_port": "7000"}, environ=env)
    assert c.otlp.http_port == 7000  # flag beats env beats file
    assert c.otlp.grpc_port == 5001  # file beats default
    assert c.store.compression_level == 3  # env beats default
    assert c.store.fsync is True


@pytest.mark.parametrize("key, value, message", [
    ("otlp.http_port", "70000", "otlp.http_port: port must be 0..65535"),
    ("store.fsync", "maybe", "store.fsync: expected bool"),
    ("limits.max_span_bytes", "0", "limits.max_span_bytes: must be > 0"),
    ("limits.max_span_bytes", "lots", "limits.max_span_bytes: expected int"),
    ("store.nope", "1", "store.nope: unknown key"),
    ("nosection.key", "1", "nosection.key: unknown section"),
])
def test_invalid_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides={key: value}, environ={})
    assert str(err.value).startswith(message)


def test_invalid_env_and_toml_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="ingest.max_queued_spans: expected int"):
        load_config(environ={"CLEW_INGEST_MAX_QUEUED_SPANS": "many"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[query]\nport = -1\n")
    with pytest.raises(ConfigError, match="query.port: port must be"):
        load_config(bad, environ={})


def test_serve_refuses_to_start_on_an_invalid_value(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "collector", "serve", "--data-dir", str(tmp_path),
                           "--set", "store.compression_level=99"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "store.compression_level: must be 0..22" in proc.stderr


def test_config_command_lists_every_key(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for key in ("otlp.grpc_port", "otlp.http_port", "query.port", "store.fsync", "limits.max_span_bytes"):
        assert key in out
