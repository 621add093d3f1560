"""Decode stage: CLEW_NO_EXTENSIONS=1 forces the pure-Python twin, and the server works on it."""
from __future__ import annotations

import subprocess
import sys

import requests

from conftest import CONFORMANCE, ROOT


def test_switch_forces_the_pure_python_decoder():
    code = "import collector.codec as c; print(c.COMPILED, c.decode_export_request.__module__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"CLEW_NO_EXTENSIONS": "1", "PATH": "/usr/bin:/bin"}, check=True).stdout
    assert out.split() == ["False", "collector.codec.otlp"]


def test_server_on_the_pure_python_decoder(server_factory):
    server = server_factory(env={"CLEW_NO_EXTENSIONS": "1"})
    body = (CONFORMANCE / "jaeger" / "traces" / "example_trace.json").read_bytes()
    r = requests.post(server.otlp_http, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    trace = requests.get(server.url("/api/traces/11")).json()["data"][0]
    assert len(trace["spans"]) == 5 and len(trace["processes"]) == 3
