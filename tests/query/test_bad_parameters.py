"""Query stage: every documented parameter of every route, fed garbage, never gets a 500.

The routes and their parameters come from the served OpenAPI document, so a new route or
parameter is covered as soon as it is documented (tests/query/test_openapi.py makes sure it is).
"""
from __future__ import annotations

import re

import pytest
import requests

from conftest import CONFORMANCE

GARBAGE = ["", "x", "-1", "0", "99999999999999999999999", "1e309", "NaN", "{", "[1,2]", '{"a":',
           "%ff", "\u00e9\u6f22", "a" * 5000, "1h-5m", "2024-13-45T99:99:99Z", ".*(", "k:v:w",
           "{ .a = }", "{} | count()"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from conftest import Server
    server = Server(tmp_path_factory.mktemp("bad") / "data").start()
    body = (CONFORMANCE / "jaeger" / "traces" / "example_trace.json").read_bytes()
    requests.post(server.otlp_http, data=body, headers={"Content-Type": "application/json"})
    yield server
    server.stop()


def routes(server):
    doc = requests.get(server.url("/api/openapi.json")).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "get":
                continue
            params = [p for p in op.get("parameters", []) + item.get("parameters", [])]
            yield path, params


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", requests.utils.quote(value, safe="") or "x", path)


def test_no_parameter_value_causes_a_server_error(loaded):
    failures = []
    for path, params in routes(loaded):
        query_params = [p["name"] for p in params if p.get("in") == "query"]
        for value in GARBAGE:
            url = loaded.url(fill(path, value if "{" in path else "x"))
            tries = [{name: value} for name in query_params] or [{}]
            for q in tries:
                r = requests.get(url, params=q, timeout=30)
                if r.status_code >= 500:
                    failures.append((path, q, r.status_code, r.text[:200]))
                elif r.status_code == 400 and "json" in r.headers.get("Content-Type", ""):
                    assert r.json(), (path, q)  # a 400 says what is wrong
    assert not failures, failures[:10]
