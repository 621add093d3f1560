"""Acknowledged means durable: SIGKILL mid-stream loses nothing acknowledged; SIGTERM drains gracefully."""
from __future__ import annotations

import os
import threading
import time

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from conftest import Server

PB = {"Content-Type": "application/x-protobuf"}
T0 = 1_700_000_000_000_000_000


def body_for(n: int, spans: int = 50) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(1, spans + 1):
        ss.spans.add(trace_id=(0x5000_0000 + n).to_bytes(16, "big"), span_id=i.to_bytes(8, "big"),
                     name="op", start_time_unix_nano=T0, end_time_unix_nano=T0 + i)
    return req.SerializeToString()


def span_count(server, n: int) -> int:
    r = requests.get(server.url(f"/api/v3/traces/{0x5000_0000 + n:032x}"))
    if r.status_code == 404:
        return 0
    return sum(len(ss["spans"]) for rs in r.json()["result"]["resourceSpans"] for ss in rs["scopeSpans"])


def sender(server, acked: list, stop: threading.Event, workers: int = 4):
    counter = iter(range(10**9))
    lock = threading.Lock()

    def run():
        session = requests.Session()
        while not stop.is_set():
            with lock:
                n = next(counter)
            try:
                r = session.post(server.otlp_http, data=body_for(n), headers=PB, timeout=10)
            except requests.RequestException:
                return  # the server died under us: this request was never acknowledged
            if r.status_code == 200:
                acked.append(n)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    return threads


def test_sigkill_loses_no_acknowledged_span(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    acked: list[int] = []
    stop = threading.Event()
    threads = sender(server, acked, stop)
    deadline = time.monotonic() + 30
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL while the senders are mid-request
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 200
    server = Server(data).start()
    try:
        missing = [n for n in acked if span_count(server, n) != 50]
        assert missing == [], f"{len(missing)} acknowledged requests lost or partial after kill -9"
    finally:
        server.stop()


def test_sigkill_then_every_acknowledged_trace_is_searchable(tmp_path):
    """The search index is rebuilt past its last checkpoint: after kill -9 a search by service
    finds every acknowledged trace (checkpoints every 0.2 s, so some spans are past one)."""
    data = tmp_path / "data"
    server = Server(data, "index.checkpoint_s=0.2").start()
    acked: list[int] = []
    stop = threading.Event()
    threads = sender(server, acked, stop)
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    stop.set()
    for t in threads:
        t.join()
    server = Server(data).start()
    try:
        r = requests.get(server.url("/api/v3/traces"), params={
            "query.startTimeMin": "2023-11-14T00:00:00Z", "query.startTimeMax": "2023-11-16T00:00:00Z",
            "query.searchDepth": 10_000})
        assert r.status_code == 200, r.text
        found = {sp["traceId"] for rs in r.json()["result"]["resourceSpans"]
                 for ss in rs["scopeSpans"] for sp in ss["spans"]}
        missing = [n for n in acked if f"{0x5000_0000 + n:032x}" not in found]
        assert missing == [], f"{len(missing)} acknowledged traces not found by search after kill -9"
        assert "re-indexed" in server.log()
    finally:
        server.stop()


def test_sigterm_answers_in_flight_requests_and_commits(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    acked: list[int] = []
    stop = threading.Event()
    threads = sender(server, acked, stop)
    while len(acked) < 50:
        time.sleep(0.01)
    code = server.stop()  # SIGTERM while the senders are mid-request
    stop.set()
    for t in threads:
        t.join()
    assert code == 0, server.log()
    assert "stopped" in server.log()
    assert not (data / "ports.json").exists()
    server = Server(data).start()
    try:
        assert all(span_count(server, n) == 50 for n in acked)
    finally:
        server.stop()
