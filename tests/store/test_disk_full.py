"""Store stage: a full disk — ingest answers retryable busy, nothing acknowledged is lost, and
ingest recovers once space frees (a small tmpfs holds the data directory)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

MIB = 1 << 20


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a 24 MiB tmpfs needs root (CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def request(n: int = 20) -> tuple[bytes, bytes]:
    """One trace of ``n`` spans, each with 2 KiB of incompressible attribute bytes."""
    tid = os.urandom(16)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add(key="service.name")
    kv.value.string_value = "disk-filler"
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(n):
        sp = ss.spans.add(trace_id=tid, span_id=os.urandom(8), name=f"op-{i % 3}",
                          start_time_unix_nano=now - 1000, end_time_unix_nano=now)
        if i:
            sp.parent_span_id = ss.spans[0].span_id
        a = sp.attributes.add(key="payload")
        a.value.bytes_value = os.urandom(2048)
    return tid, req.SerializeToString()


def post(srv, body: bytes) -> requests.Response:
    return requests.post(srv.otlp_http, data=body, timeout=30,
                         headers={"Content-Type": "application/x-protobuf"})


def test_full_disk_answers_busy_keeps_what_was_acknowledged_and_recovers(small_disk, server_factory):
    data = small_disk / "data"
    filler = small_disk / "filler"
    filler.write_bytes(os.urandom(6 * MIB))  # the space the operator frees later
    srv = server_factory("store.map_size_bytes=1073741824", "index.checkpoint_s=0.5", data_dir=data)
    acked, refused = [], None
    for _ in range(1000):
        tid, body = request()
        r = post(srv, body)
        if r.status_code == 200:
            acked.append(tid)
            continue
        refused = r
        break
    assert refused is not None, "the 24 MiB disk never filled"
    assert refused.status_code == 503 and refused.headers.get("Retry-After"), refused.text
    assert "no space" in refused.text.lower() or "space" in refused.text.lower(), refused.text
    assert len(acked) > 10
    assert requests.get(srv.url("/healthz"), timeout=5).status_code == 200
    for tid in acked[-3:]:  # what was acknowledged stays readable
        assert requests.get(srv.url(f"/api/traces/{tid.hex()}"), timeout=10).status_code == 200

    filler.unlink()  # space frees: ingest resumes without a restart
    later = []
    deadline = time.monotonic() + 30
    while len(later) < 5 and time.monotonic() < deadline:
        tid, body = request()
        if post(srv, body).status_code == 200:
            later.append(tid)
        else:
            time.sleep(0.2)
    assert len(later) == 5, srv.log()

    assert srv.stop() == 0
    srv = server_factory("store.map_size_bytes=1073741824", data_dir=data)  # nothing corrupted
    for tid in acked + later:
        r = requests.get(srv.url(f"/api/traces/{tid.hex()}"), timeout=10)
        assert r.status_code == 200, tid.hex()
        assert len(r.json()["data"][0]["spans"]) == 20
    search = requests.get(srv.url("/api/traces"), params={"service": "disk-filler", "limit": 1000},
                          timeout=30).json()
    assert {t["traceID"] for t in search["data"]} >= {tid.hex() for tid in later}
