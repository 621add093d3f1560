"""Test harness: each legacy exporter, driven by driver.py, delivers its bytes to a throwaway listener.

These listeners stand in for Clew's receivers so the harness is proven on its own: a UDP socket
(Jaeger agent, Thrift compact), an HTTP server (Jaeger Thrift over HTTP, Zipkin JSON v1/v2 and
protobuf) and a gRPC server with a generic handler (Jaeger api_v2 ``PostSpans``).
"""
from __future__ import annotations

import json
import socket
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_listener():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.requests = []
    srv.status = 202
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


class _RawHandler(grpc.GenericRpcHandler):
    """Accepts any unary method and records (method, raw request bytes); no (de)serialisers."""

    def __init__(self):
        self.calls = []
        self.fail_with = None

    def service(self, details):
        method = details.method

        def unary(request: bytes, context):
            self.calls.append((method, request))
            if self.fail_with is not None:
                context.abort(self.fail_with, "listener told to refuse")
            return b""  # an empty PostSpansResponse

        return grpc.unary_unary_rpc_method_handler(unary)


@pytest.fixture
def grpc_listener():
    handler = _RawHandler()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    srv.add_generic_rpc_handlers((handler,))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    handler.endpoint = f"127.0.0.1:{port}"
    yield handler
    srv.stop(None)


def _names_in(sent: dict, payload: bytes) -> None:
    """Every span name and the service name travel as UTF-8 text in every one of these formats."""
    assert sent["service"].encode() in payload
    for span in sent["spans"]:
        assert span["name"].encode() in payload, span["name"]


def _check_described(sent: dict, exporter: str) -> None:
    assert sent["exporter"] == exporter and sent["result"] == "SUCCESS"
    assert len(sent["trace_id"]) == 32 and int(sent["trace_id"], 16)
    spans = sent["spans"]
    assert [s["kind"] for s in spans] == ["SERVER", "CLIENT", "INTERNAL", "PRODUCER"]
    root = spans[0]["span_id"]
    assert spans[0]["parent_span_id"] == "" and all(s["parent_span_id"] == root for s in spans[1:])
    assert all(s["end_ns"] > s["start_ns"] > 0 for s in spans)
    assert spans[0]["status"] == {"code": "ERROR", "message": "payment declined"}
    assert spans[1]["events"][0]["name"] == "retry"


def test_jaeger_thrift_udp_sends_emit_batch(run_driver):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    try:
        sent = run_driver("jaeger-thrift-udp", f"127.0.0.1:{sock.getsockname()[1]}")
        datagram, _ = sock.recvfrom(65535)
    finally:
        sock.close()
    _check_described(sent, "jaeger-thrift-udp")
    # Thrift compact message header: protocol id 0x82, then ONEWAY (4) in the type bits.
    assert datagram[0] == 0x82 and (datagram[1] >> 5) == 4
    assert b"emitBatch" in datagram[:16]
    _names_in(sent, datagram)


@pytest.mark.parametrize("exporter, path, content_type", [
    ("jaeger-thrift-http", "/api/traces", "application/x-thrift"),
    ("zipkin-json", "/api/v2/spans", "application/json"),
    ("zipkin-json-v1", "/api/v1/spans", "application/json"),
    ("zipkin-proto", "/api/v2/spans", "application/x-protobuf"),
])
def test_http_exporters_post_one_body(run_driver, http_listener, exporter, path, content_type):
    port = http_listener.server_address[1]
    sent = run_driver(exporter, f"http://127.0.0.1:{port}{path}")
    _check_described(sent, exporter)
    assert len(http_listener.requests) == 1
    got_path, got_type, body = http_listener.requests[0]
    assert got_path == path and got_type == content_type and body
    _names_in(sent, body)
    if exporter.startswith("zipkin-json"):
        spans = json.loads(body)
        ids = {s["id"] for s in spans}
        assert ids == {s["span_id"] for s in sent["spans"]}
        assert {s["traceId"] for s in spans} == {sent["trace_id"]}


@pytest.mark.parametrize("exporter, path", [("jaeger-thrift-http", "/api/traces"),
                                            ("zipkin-json", "/api/v2/spans"),
                                            ("zipkin-proto", "/api/v2/spans")])
def test_http_refusal_makes_the_driver_fail(run_driver, http_listener, exporter, path):
    http_listener.status = 503
    port = http_listener.server_address[1]
    sent = run_driver(exporter, f"http://127.0.0.1:{port}{path}", check=False)
    assert sent["returncode"] != 0 and sent["result"] == "FAILURE"


def test_jaeger_grpc_calls_post_spans(run_driver, grpc_listener):
    sent = run_driver("jaeger-grpc", grpc_listener.endpoint)
    _check_described(sent, "jaeger-grpc")
    assert [m for m, _ in grpc_listener.calls] == [POST_SPANS]
    body = grpc_listener.calls[0][1]
    assert body
    _names_in(sent, body)
    assert bytes.fromhex(sent["trace_id"]) in body


def test_jaeger_grpc_refusal_makes_the_driver_fail(run_driver, grpc_listener):
    grpc_listener.fail_with = grpc.StatusCode.UNAVAILABLE
    sent = run_driver("jaeger-grpc", grpc_listener.endpoint, check=False)
    assert sent["returncode"] != 0 and sent["result"] == "FAILURE"


def test_trace_file_fixes_ids_and_times(run_driver, grpc_listener):
    spec = {"service": "spec-svc", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "spans": [{"key": "a", "span_id": "00f067aa0ba902b7", "name": "a", "kind": "SERVER",
                       "start_ns": 1_700_000_000_123_456_789, "end_ns": 1_700_000_001_000_000_001},
                      {"key": "b", "parent": "a", "span_id": "00f067aa0ba902b8", "name": "b",
                       "start_ns": 1_700_000_000_200_000_000, "end_ns": 1_700_000_000_300_000_000}]}
    sent = run_driver("jaeger-grpc", grpc_listener.endpoint, spec)
    assert sent["trace_id"] == spec["trace_id"] and sent["service"] == "spec-svc"
    assert [(s["span_id"], s["parent_span_id"], s["start_ns"], s["end_ns"]) for s in sent["spans"]] == [
        ("00f067aa0ba902b7", "", 1_700_000_000_123_456_789, 1_700_000_001_000_000_001),
        ("00f067aa0ba902b8", "00f067aa0ba902b7", 1_700_000_000_200_000_000, 1_700_000_000_300_000_000)]
    body = grpc_listener.calls[0][1]
    assert bytes.fromhex(spec["trace_id"]) in body and bytes.fromhex("00f067aa0ba902b8") in body


def test_jaeger_grpc_body_parses_with_clews_api_v2_parser(run_driver, grpc_listener):
    """The real client's PostSpans bytes, read by the reference parser collector/codec/jaeger_proto.py."""
    from collector.codec.jaeger_proto import parse_post_spans

    sent = run_driver("jaeger-grpc", grpc_listener.endpoint)
    batch_process, spans = parse_post_spans(grpc_listener.calls[0][1])
    by_id = {s.span_id.hex(): s for s in spans}
    assert set(by_id) == {s["span_id"] for s in sent["spans"]}
    for want in sent["spans"]:
        got = by_id[want["span_id"]]
        assert got.trace_id.hex() == sent["trace_id"] and got.operation_name == want["name"]
        # Through the exporter's float conversion and the model's microseconds: within 1 µs.
        assert abs(got.start_ns - want["start_ns"]) <= 1000  # the exporter's float conversion
        assert abs(got.start_ns + got.duration_ns - want["end_ns"]) <= 2000
        parents = [r.span_id.hex() for r in got.references if r.ref_type == 0]
        assert parents == ([want["parent_span_id"]] if want["parent_span_id"] else [])
        assert {t.key for t in got.tags} >= set(want["attributes"])
        assert len(got.logs) == len(want["events"])
        # This exporter puts the process on every span, none on the batch.
        assert (batch_process, got.process.service_name) == (None, sent["service"])
