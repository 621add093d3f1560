"""Query stage: the storage routes (``query/storage_api.py``, docs/api-storage.md) against a real
``clew serve`` fed by the OpenTelemetry SDK's OTLP exporter: the storage report, incidents and
pins, deletion by ID and by TraceQL (hot and cold tiers), and the audit log."""
from __future__ import annotations

import re
import time

import pytest
import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.config import Config
from collector.metrics import Metrics
from query.app import create_app
from query.openapi import document

MOVE_FAST = ("store.hot_window_s=1", "store.partition_s=1", "store.lifecycle_interval_s=0.2")
NEVER_STORED = "0123456789abcdef0123456789abcdef"


def send(server, customers: list[str], service: str = "shop") -> list[str]:
    """One trace per customer: a server span ``checkout`` (attribute ``customer``) and a client
    child ``charge``.  Returns the trace IDs (32 hex digits), in order."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.otlp_http)))
    tracer = provider.get_tracer("clew-tests")
    ids = []
    for customer in customers:
        with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER,
                                          attributes={"customer": customer}) as root:
            with tracer.start_as_current_span("charge", kind=trace.SpanKind.CLIENT):
                pass
        ids.append(format(root.get_span_context().trace_id, "032x"))
    provider.shutdown()
    return ids


def poll(fn, done, timeout: float = 30.0):
    """``fn()`` until ``done`` holds for its answer (or the time is up: the last answer)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def storage(server) -> dict:
    r = requests.get(server.url("/api/v1/storage"))
    assert r.status_code == 200, r.text
    return r.json()


def stored(server, trace_id: str) -> bool:
    r = requests.get(server.url(f"/api/traces/{trace_id}"))
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def search(server, q: str) -> set[str]:
    r = requests.get(server.url("/api/search"), params={"q": q, "limit": 100})
    assert r.status_code == 200, r.text
    return {t["traceID"].rjust(32, "0") for t in r.json()["traces"]}


def audit(server, **params) -> list[dict]:
    r = requests.get(server.url("/api/v1/audit"), params=params)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def error_of(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["httpCode"] == status
    return body["error"]["message"]


# --------------------------------------------------------------------------- report


def test_report_counts_the_spans_ingested_in_the_hot_tier(server_factory):
    server = server_factory()
    send(server, ["a", "b", "c"])
    report = poll(lambda: storage(server), lambda r: r["tiers"]["hot"]["spans"] == 6)
    hot, cold = report["tiers"]["hot"], report["tiers"]["cold"]
    assert hot["spans"] == 6 and hot["partitions"] == 1 and hot["bytes"] > 0
    assert hot["bytes_per_span"] == pytest.approx(hot["bytes"] / 6, abs=0.1)
    assert hot["oldest_s"] <= time.time()
    assert cold == {"partitions": 0, "spans": 0, "bytes": 0, "oldest_s": None, "bytes_per_span": None}
    (part,) = report["partitions"]
    assert part["tier"] == "hot" and part["spans"] == 6 and part["bytes"] == hot["bytes"]
    assert part["oldest_span_ns"] <= part["newest_span_end_ns"]
    assert report["data_dir_bytes"] >= hot["bytes"]
    assert report["budget"] == {"max_bytes": None, "used_bytes": report["data_dir_bytes"],
                                "used_fraction": None, "over": False}
    assert report["damaged_files"] == [] and report["pinned_traces"] == 0
    assert report["counters"]["moved_partitions"] == 0


def test_moved_partitions_are_reported_cold_and_their_traces_still_read(server_factory):
    server = server_factory(*MOVE_FAST)
    ids = send(server, ["a", "b"])
    report = poll(lambda: storage(server),
                  lambda r: r["tiers"]["cold"]["spans"] == 4 and r["tiers"]["hot"]["spans"] == 0)
    assert report["tiers"]["cold"]["spans"] == 4, report
    assert report["tiers"]["hot"]["spans"] == 0 and report["tiers"]["cold"]["bytes"] > 0
    cold = [p for p in report["partitions"] if p["tier"] == "cold"]
    assert cold and all(p["file"].endswith(".clew") and not p["damaged"] for p in cold)
    assert sum(p["traces"] for p in cold) == 2
    assert report["counters"]["moved_spans"] == 4 and report["last_move"]
    for tid in ids:
        r = requests.get(server.url(f"/api/traces/{tid}"))
        assert r.status_code == 200, r.text
        assert {s["operationName"] for s in r.json()["data"][0]["spans"]} == {"checkout", "charge"}


# --------------------------------------------------------------------------- incidents and pins


def test_incident_lifecycle_pins_and_unpins_its_traces(server_factory):
    server = server_factory()
    a, b = send(server, ["a", "b"])
    r = requests.post(server.url("/api/v1/incidents"), headers={"X-Clew-User": "oncall@example.com"},
                      json={"title": "checkout errors", "link": "https://tickets.example/INC-1",
                            "traceIds": [a.upper(), NEVER_STORED, a]})
    assert r.status_code == 201, r.text
    incident = r.json()
    assert re.fullmatch(r"inc-[0-9a-f]{12}", incident["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", incident["created"])
    assert incident["traceIds"] == [a, NEVER_STORED]  # normalised, duplicates dropped
    assert incident["title"] == "checkout errors" and incident["link"] == "https://tickets.example/INC-1"
    iid = incident["id"]

    listed = requests.get(server.url("/api/v1/incidents")).json()["incidents"]
    assert [i["id"] for i in listed] == [iid]
    assert listed[0]["traces"] == [{"traceId": a, "stored": True}, {"traceId": NEVER_STORED, "stored": False}]
    one = requests.get(server.url(f"/api/v1/incidents/{iid}")).json()
    assert one == listed[0]
    pins = requests.get(server.url("/api/v1/pins")).json()["pins"]
    assert {p["traceId"]: p["pinnedBy"] for p in pins} == {a: [iid], NEVER_STORED: [iid]}
    assert storage(server)["pinned_traces"] == 2

    # the same id again replaces it: created is kept, a trace no longer listed is unpinned
    r = requests.post(server.url("/api/v1/incidents"), json={"id": iid, "title": "checkout 5xx", "traceIds": [b]})
    assert r.status_code == 200, r.text
    assert r.json()["created"] == incident["created"] and r.json()["traceIds"] == [b]
    assert r.json()["link"] is None
    pins = requests.get(server.url("/api/v1/pins")).json()["pins"]
    assert {p["traceId"]: p["pinnedBy"] for p in pins} == {b: [iid]}

    r = requests.delete(server.url(f"/api/v1/incidents/{iid}"))
    assert r.status_code == 200 and r.json()["title"] == "checkout 5xx"
    assert requests.get(server.url("/api/v1/pins")).json() == {"pins": []}
    assert "not found" in error_of(requests.get(server.url(f"/api/v1/incidents/{iid}")), 404)
    assert iid in error_of(requests.delete(server.url(f"/api/v1/incidents/{iid}")), 404)
    assert requests.get(server.url("/api/v1/incidents")).json() == {"incidents": []}

    entries = audit(server)
    assert [e["action"] for e in entries] == ["incident_delete", "incident_update", "incident_create"]
    assert entries[2]["by"] == "oncall@example.com" and entries[2]["incident"] == iid
    assert entries[2]["trace_ids"] == [a, NEVER_STORED]
    assert audit(server, action="incident_create", limit=5) == [entries[2]]
    assert len(audit(server, limit=1)) == 1


def test_pins_of_their_own_and_of_incidents(server_factory):
    server = server_factory()
    (a,) = send(server, ["a"])
    r = requests.put(server.url(f"/api/v1/traces/{a}/pin"))
    assert r.status_code == 200, r.text
    assert r.json() == {"traceId": a, "pinnedBy": ["pin"], "stored": True}
    inc = requests.post(server.url("/api/v1/incidents"),
                        json={"id": "inc-7", "title": "t", "traceIds": [NEVER_STORED]}).json()
    r = requests.put(server.url(f"/api/v1/traces/{a}/pin"), json={"incident": "inc-7"})
    assert r.json()["pinnedBy"] == ["pin", "inc-7"]
    inc = requests.get(server.url("/api/v1/incidents/inc-7")).json()
    assert inc["traceIds"] == [NEVER_STORED, a]
    r = requests.put(server.url("/api/v1/traces/c0ffee/pin"))  # a short ID is left-padded
    assert r.json() == {"traceId": "c0ffee".rjust(32, "0"), "pinnedBy": ["pin"], "stored": False}
    pins = requests.get(server.url("/api/v1/pins")).json()["pins"]
    assert [(p["traceId"], p["pinnedBy"]) for p in pins] == sorted(
        [(a, ["pin", "inc-7"]), ("c0ffee".rjust(32, "0"), ["pin"]), (NEVER_STORED, ["inc-7"])])

    assert "inc-none" in error_of(requests.put(server.url(f"/api/v1/traces/{a}/pin"),
                                               json={"incident": "inc-none"}), 404)
    r = requests.delete(server.url(f"/api/v1/traces/{a}/pin"))
    assert r.status_code == 200 and r.json()["pinnedBy"] == ["inc-7"]
    assert "a pin of its own" in error_of(requests.delete(server.url(f"/api/v1/traces/{a}/pin")), 404)
    r = requests.delete(server.url(f"/api/v1/traces/{a}/pin"), params={"incident": "inc-7"})
    assert r.status_code == 200 and r.json()["pinnedBy"] == []
    assert requests.get(server.url("/api/v1/incidents/inc-7")).json()["traceIds"] == [NEVER_STORED]
    assert [p["traceId"] for p in requests.get(server.url("/api/v1/pins")).json()["pins"]] == [
        "c0ffee".rjust(32, "0"), NEVER_STORED]
    actions = [(e["action"], e["incident"]) for e in audit(server) if e["action"] in ("pin", "unpin")]
    assert actions == [("unpin", "inc-7"), ("unpin", None), ("pin", None), ("pin", "inc-7"), ("pin", None)]


BAD = [
    ("post", "/api/v1/incidents", {"traceIds": [NEVER_STORED]}, "title"),
    ("post", "/api/v1/incidents", {"title": "x", "traceIds": []}, "traceIds"),
    ("post", "/api/v1/incidents", {"title": "x"}, "traceIds"),
    ("post", "/api/v1/incidents", {"title": "x", "traceIds": ["xyz"]}, "traceIds[0]"),
    ("post", "/api/v1/incidents", {"title": "x", "traceIds": [NEVER_STORED, 5]}, "traceIds[1]"),
    ("post", "/api/v1/incidents", {"title": "x", "traceIds": ["1" * 33]}, "traceIds[0]"),
    ("post", "/api/v1/incidents", {"title": "x", "traceIds": [NEVER_STORED] * 1001}, "traceIds"),
    ("post", "/api/v1/incidents", {"title": "x", "link": "ftp://x/y", "traceIds": [NEVER_STORED]}, "link"),
    ("post", "/api/v1/incidents", {"title": "x", "link": "not a url", "traceIds": [NEVER_STORED]}, "link"),
    ("post", "/api/v1/incidents", {"id": "a b", "title": "x", "traceIds": [NEVER_STORED]}, "id"),
    ("post", "/api/v1/incidents", {"id": "pin", "title": "x", "traceIds": [NEVER_STORED]}, "id"),
    ("post", "/api/v1/incidents", {"title": "x", "traceIDs": [NEVER_STORED]}, "traceIDs"),
    ("post", "/api/v1/incidents", [1, 2], "body"),
    ("put", "/api/v1/traces/xyz/pin", None, "traceId"),
    ("put", "/api/v1/traces/0/pin", None, "traceId"),
    ("put", f"/api/v1/traces/{NEVER_STORED}/pin", {"incident": 7}, "incident"),
    ("delete", "/api/v1/traces/xyz/pin", None, "traceId"),
    ("delete", "/api/v1/traces/xyz", None, "traceId"),
    ("delete", f"/api/v1/traces/{NEVER_STORED}?force=maybe", None, "force"),
    ("post", "/api/v1/deletions", {}, "traceIds"),
    ("post", "/api/v1/deletions", {"traceIds": [NEVER_STORED], "q": "{}"}, "traceIds"),
    ("post", "/api/v1/deletions", {"traceIds": "abc"}, "traceIds"),
    ("post", "/api/v1/deletions", {"traceIds": ["g"]}, "traceIds[0]"),
    ("post", "/api/v1/deletions", {"traceIds": [NEVER_STORED], "start": 5}, "start"),
    ("post", "/api/v1/deletions", {"traceIds": [NEVER_STORED], "force": "yes"}, "force"),
    ("post", "/api/v1/deletions", {"traceIds": [NEVER_STORED], "reason": 5}, "reason"),
    ("post", "/api/v1/deletions", {"q": "{ name = }"}, "q"),
    ("post", "/api/v1/deletions", {"q": ""}, "q"),
    ("post", "/api/v1/deletions", {"q": "{}"}, "q"),  # every trace, no window: refused
    ("post", "/api/v1/deletions", {"q": "{ name = \"x\" }", "start": "yesterday"}, "start"),
    ("post", "/api/v1/deletions", {"q": "{ name = \"x\" }", "start": 20, "end": 10}, "end"),
    ("get", "/api/v1/audit?limit=0", None, "limit"),
    ("get", "/api/v1/audit?limit=lots", None, "limit"),
]


def test_bad_input_is_a_400_naming_the_field(server_factory):
    server = server_factory()
    for method, path, body, field in BAD:
        r = requests.request(method, server.url(path), json=body)
        message = error_of(r, 400)
        assert message.startswith(field), (method, path, body, message)
    r = requests.post(server.url("/api/v1/incidents"), data=b"{not json",
                      headers={"Content-Type": "application/json"})
    assert error_of(r, 400).startswith("body")
    assert requests.get(server.url("/api/v1/incidents")).json() == {"incidents": []}
    assert audit(server) == []  # nothing refused was recorded as done


# --------------------------------------------------------------------------- deletion


def test_deleting_one_trace_by_id(server_factory):
    server = server_factory()
    keep1, doomed, keep2 = send(server, ["acme", "initech", "globex"])
    before = poll(lambda: storage(server), lambda r: r["tiers"]["hot"]["spans"] == 6)
    assert search(server, '{ span.customer = "initech" }') == {doomed}
    r = requests.delete(server.url(f"/api/v1/traces/{doomed.upper()}"),
                        params={"reason": "GDPR request 42"}, headers={"X-Clew-User": "dpo@example.com"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["deleted"] == {"traces": 1, "spans": 2}
    assert out["hotPartitions"] == [str(p["start_s"]) for p in before["partitions"]]
    assert out["coldFiles"] == [] and out["unpinned"] == []
    assert not stored(server, doomed)
    assert stored(server, keep1) and stored(server, keep2)
    assert search(server, '{ span.customer = "initech" }') == set()
    assert search(server, '{ name = "checkout" }') == {keep1, keep2}
    assert storage(server)["tiers"]["hot"]["spans"] == 4
    (entry,) = audit(server, action="delete")
    assert entry == out["audit"]
    assert entry["trace_ids"] == [doomed] and entry["by"] == "dpo@example.com"
    assert entry["reason"] == "GDPR request 42" and entry["spans"] == 2 and entry["query"] is None
    # deleting it again removes nothing and says so (and is recorded too)
    r = requests.delete(server.url(f"/api/v1/traces/{doomed}"))
    assert r.json()["deleted"] == {"traces": 0, "spans": 0} and r.json()["hotPartitions"] == []
    assert len(audit(server, action="delete")) == 2


def test_deleting_by_traceql(server_factory):
    server = server_factory()
    a1, b, a2, c = send(server, ["acme", "initech", "acme", "globex"])
    poll(lambda: storage(server), lambda r: r["tiers"]["hot"]["spans"] == 8)
    now = int(time.time())
    r = requests.post(server.url("/api/v1/deletions"),
                      json={"q": '{ span.customer = "acme" }', "end": now - 3600})
    assert r.status_code == 200 and r.json()["deleted"] == {"traces": 0, "spans": 0}  # window before them
    assert stored(server, a1) and stored(server, a2)
    r = requests.post(server.url("/api/v1/deletions"),
                      json={"q": '{ span.customer = "acme" }', "start": now - 3600, "reason": "tenant left"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["deleted"] == {"traces": 2, "spans": 4}
    assert sorted(out["audit"]["trace_ids"]) == sorted([a1, a2])
    assert out["audit"]["query"] == '{ span.customer = "acme" }' and out["audit"]["reason"] == "tenant left"
    assert not stored(server, a1) and not stored(server, a2)
    assert stored(server, b) and stored(server, c)
    assert search(server, "{ }") == {b, c}
    r = requests.post(server.url("/api/v1/deletions"), json={"traceIds": [b, NEVER_STORED]})
    assert r.json()["deleted"] == {"traces": 1, "spans": 2}
    assert search(server, "{ }") == {c}
    assert [e["query"] for e in audit(server, action="delete")] == [None, '{ span.customer = "acme" }',
                                                                      '{ span.customer = "acme" }']


def test_pinned_traces_are_deleted_only_with_force(server_factory):
    server = server_factory()
    pinned, other = send(server, ["acme", "acme"])
    poll(lambda: storage(server), lambda r: r["tiers"]["hot"]["spans"] == 4)
    requests.post(server.url("/api/v1/incidents"), json={"id": "inc-1", "title": "t", "traceIds": [pinned]})
    assert pinned in error_of(requests.delete(server.url(f"/api/v1/traces/{pinned}")), 409)
    message = error_of(requests.post(server.url("/api/v1/deletions"), json={"q": '{ span.customer = "acme" }'}),
                       409)
    assert pinned in message and other not in message
    assert stored(server, pinned) and stored(server, other)  # a refused deletion deletes nothing
    assert audit(server, action="delete") == []

    r = requests.post(server.url("/api/v1/deletions"), json={"q": '{ span.customer = "acme" }', "force": True})
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == {"traces": 2, "spans": 4} and r.json()["unpinned"] == [pinned]
    assert not stored(server, pinned) and not stored(server, other)
    assert requests.get(server.url("/api/v1/pins")).json() == {"pins": []}
    assert requests.get(server.url("/api/v1/incidents/inc-1")).json()["traceIds"] == []
    (unpin,) = audit(server, action="unpin")
    assert unpin["trace_ids"] == [pinned]


def test_deleting_a_trace_moved_to_the_cold_tier(server_factory):
    server = server_factory(*MOVE_FAST)
    doomed, kept = send(server, ["initech", "globex"])
    report = poll(lambda: storage(server), lambda r: r["tiers"]["cold"]["spans"] == 4)
    assert report["tiers"]["cold"]["spans"] == 4 and report["tiers"]["hot"]["spans"] == 0, report
    files = {p["file"] for p in report["partitions"] if p["tier"] == "cold"}
    r = requests.delete(server.url(f"/api/v1/traces/{doomed}"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["deleted"] == {"traces": 1, "spans": 2} and out["hotPartitions"] == []
    assert out["coldFiles"] and set(out["coldFiles"]) <= files
    assert not stored(server, doomed) and stored(server, kept)
    assert search(server, '{ span.customer = "initech" }') == set()
    assert search(server, '{ span.customer = "globex" }') == {kept}
    report = storage(server)
    assert report["tiers"]["cold"]["spans"] == 2
    assert report["counters"]["deleted_spans"] == 2
    assert audit(server, action="delete")[0]["cold_files"] == out["coldFiles"]


# --------------------------------------------------------------------------- without a store


def test_an_app_without_a_store_serves_and_documents_no_storage_route():
    class NoReader:
        def __getattr__(self, name):
            raise AssertionError(f"the app read the store ({name}) while being built")

    def storage_paths(paths) -> list[str]:
        return [p for p in paths
                if p.startswith(("/api/v1/storage", "/api/v1/incidents", "/api/v1/pins", "/api/v1/deletions",
                                 "/api/v1/audit"))
                or re.fullmatch(r"/api/v1/traces/(<trace_id>|\{trace_id\})(/pin)?", p)]

    app = create_app(Config(), NoReader(), Metrics())  # a null sink: no lifecycle, no writer
    assert storage_paths(r.rule for r in app.url_map.iter_rules()) == []
    assert storage_paths(document(storage=False)["paths"]) == []
    assert "/api/v1/deletions" in storage_paths(document()["paths"])
