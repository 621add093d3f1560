"""Receive stage: Jaeger and Zipkin transports — bad input on each, UDP drops counted, Zipkin Lens data."""
from __future__ import annotations

import json
import socket
import time

import grpc
import pytest
import requests

from conftest import CONFORMANCE

LENS = sorted((CONFORMANCE / "zipkin" / "lens-testdata").glob("*.json"))
OTLP_EXAMPLE = (CONFORMANCE / "jaeger" / "traces" / "example_trace.json").read_bytes()


def still_serving(server):
    r = requests.post(server.otlp_http, data=OTLP_EXAMPLE, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert requests.get(server.url("/readyz")).status_code == 200


def metric(server, name: str, **labels) -> float:
    text = requests.get(server.url("/metrics")).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1:line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_jaeger_http_bad_input(server):
    url = server.http("jaeger_http", "/api/traces")
    r = requests.post(url, data=b"\x0c\x00\x01", headers={"Content-Type": "application/x-thrift"})
    assert r.status_code == 400 and "jaeger.Batch" in r.text
    r = requests.post(url, data=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 415 and "application/x-thrift" in r.text
    assert requests.get(url).status_code == 405
    assert requests.post(server.http("jaeger_http", "/api/other"), data=b"").status_code == 404
    still_serving(server)


def test_jaeger_grpc_bad_input(server):
    with grpc.insecure_channel(server.addr("jaeger_grpc")) as channel:
        post = channel.unary_unary("/jaeger.api_v2.CollectorService/PostSpans")
        with pytest.raises(grpc.RpcError) as err:
            post(b"\x0a\x05abc", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "PostSpansRequest" in err.value.details()
    still_serving(server)


def test_udp_garbage_is_counted_and_dropped(server_factory):
    server = server_factory("jaeger.max_datagram_bytes=1024")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for key in ("jaeger_compact", "jaeger_binary"):
            sock.sendto(b"\xff\x00garbage", ("127.0.0.1", server.ports[key]))
            sock.sendto(b"\x00" * 2000, ("127.0.0.1", server.ports[key]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counts = [metric(server, "clew_udp_datagrams_dropped_total", protocol=p, reason=r)
                  for p in ("jaeger_udp_compact", "jaeger_udp_binary") for r in ("invalid", "too_large")]
        if counts == [1.0, 1.0, 1.0, 1.0]:
            break
        time.sleep(0.05)
    assert counts == [1.0, 1.0, 1.0, 1.0]
    still_serving(server)


def test_zipkin_bad_input(server):
    v2 = server.http("zipkin", "/api/v2/spans")
    r = requests.post(v2, data=b"[{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.text
    bad_id = [{"traceId": "xyz", "id": "0000000000000001", "name": "x"}]
    r = requests.post(v2, json=bad_id)
    assert r.status_code == 400 and "traceId" in r.text
    r = requests.post(v2, data=b"<spans/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415
    r = requests.post(v2, data=b"\x0a\x05abc", headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    r = requests.post(server.http("zipkin", "/api/v1/spans"), data=b"\x0c\x00",
                      headers={"Content-Type": "application/x-thrift"})
    assert r.status_code == 400
    assert requests.get(v2).status_code == 405
    still_serving(server)


def span_count(server, trace_id: str) -> int:
    r = requests.get(server.url(f"/api/v3/traces/{trace_id}"))
    if r.status_code != 200:
        return 0
    return sum(len(ss.get("spans", [])) for rs in r.json()["result"]["resourceSpans"]
               for ss in rs.get("scopeSpans", []))


@pytest.mark.parametrize("path", LENS, ids=[p.stem for p in LENS])
def test_zipkin_lens_traces_posted_as_is(server, path):
    body = path.read_bytes()
    r = requests.post(server.http("zipkin", "/api/v2/spans"), data=body,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    spans = json.loads(body)
    distinct = {json.dumps(s, sort_keys=True) for s in spans}
    assert span_count(server, spans[0]["traceId"]) == len(distinct)


def test_zipkin_gzip_body(server):
    import gzip
    body = (CONFORMANCE / "zipkin" / "lens-testdata" / "skew.json").read_bytes()
    r = requests.post(server.http("zipkin", "/api/v2/spans"), data=gzip.compress(body),
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 202
    assert span_count(server, json.loads(body)[0]["traceId"]) == 4
