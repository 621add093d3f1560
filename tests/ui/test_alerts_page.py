"""UI: the alerts page (`/alerts`): rules made with the form, their state as the server evaluates
them every second (``alerting.evaluation_interval_s=1`` over one-second buckets), and the history.
Spans are sent with the OpenTelemetry SDK; the failing ones make an error-rate rule fire.
"""
from __future__ import annotations

import re
import time

import pytest
import requests
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import expect

from conftest import SdkServices, hex_trace_id

MS = 1_000_000
SETTINGS = ("analytics.flush_interval_s=1", "alerting.evaluation_interval_s=1", "analytics.bucket_s=1")


@pytest.fixture
def alerting(server_factory):
    return server_factory(*SETTINGS)


def row(page, rule_id):
    return page.get_by_role("table", name="Alert rules").locator(f'tbody tr[data-rule-id="{rule_id}"]')


def send_failures(srv, n=5):
    """n failed server spans of `api` starting now; returns their trace IDs."""
    svc = SdkServices(srv.otlp_http, ["api"])
    ids = []
    now = time.time_ns()
    for i in range(n):
        s = svc.tracer("api").start_span("POST /orders", kind=SpanKind.SERVER, start_time=now + i * MS)
        s.set_status(Status(StatusCode.ERROR, "boom"))
        s.end(end_time=now + i * MS + 30 * MS)
        ids.append(hex_trace_id(s))
    svc.flush()
    return ids


def test_create_fire_history_and_delete(page, alerting):
    page.goto(alerting.url("/alerts"))
    expect(page.get_by_test_id("alerts-status")).to_contain_text("No alert rules yet")
    page.get_by_role("button", name="New rule").click()
    form = page.get_by_role("form", name="New rule")
    form.get_by_label("Rule ID (optional)").fill("api-errors")
    form.get_by_label("Name", exact=True).fill("api errors")
    expect(form.get_by_label("Type", exact=True)).to_have_value("error_rate")
    form.get_by_label("Service", exact=True).fill("api")
    form.get_by_label("Span kind", exact=True).select_option("server")
    form.get_by_label("Window", exact=True).fill("30s")
    threshold = form.get_by_label("Error-rate threshold")
    threshold.fill("1.5")
    form.get_by_role("button", name="Add rule").click()
    # The API's 400 message, next to the form, the field it names marked.
    expect(form.get_by_role("alert")).to_have_text(re.compile(r"^threshold: .*1\.5"))
    expect(threshold).to_have_attribute("aria-invalid", "true")
    expect(threshold).to_be_focused()
    assert requests.get(alerting.url("/api/v1/alerts/rules")).json()["rules"] == []

    threshold.fill("0.2")
    form.get_by_role("button", name="Add rule").click()
    expect(form).to_have_count(0)
    r = row(page, "api-errors")
    expect(r).to_contain_text("api errors")
    expect(r).to_contain_text("error_rate: error rate > 20% over 30s")
    expect(r.get_by_test_id("alert-state")).to_have_text("inactive")
    rule = requests.get(alerting.url("/api/v1/alerts/rules/api-errors")).json()
    assert (rule["service"], rule["kind"], rule["threshold"], rule["window"]) == ("api", "server", 0.2, "30s")

    ids = send_failures(alerting)
    expect(r.get_by_test_id("alert-state")).to_have_text("firing", timeout=30_000)
    expect(page.get_by_test_id("alerts-status")).to_contain_text("1 rule: 1 firing")
    expect(r).to_contain_text("100%")
    example = r.get_by_role("link", name=re.compile(r"^example trace "))
    expect(example.first).to_be_visible(timeout=15_000)
    href = example.first.get_attribute("href")
    assert href.removeprefix("/trace/") in ids

    history = page.get_by_role("table", name="Alert history")
    expect(history.locator("tbody tr").first).to_contain_text("inactive → firing")
    expect(history.locator("tr.to-firing")).to_contain_text("api errors")
    expect(history).to_contain_text("rule added")

    example.first.click()
    expect(page).to_have_url(re.compile(re.escape(href) + "$"))
    expect(page.get_by_text("POST /orders").first).to_be_visible()
    page.go_back()

    # Delete asks first; "Keep" keeps it.
    r = row(page, "api-errors")
    r.get_by_role("button", name="Delete").click()
    r.get_by_role("button", name="Keep").click()
    expect(r).to_have_count(1)
    r.get_by_role("button", name="Delete").click()
    r.get_by_role("button", name="Yes, delete").click()
    expect(r).to_have_count(0)
    expect(page.get_by_test_id("alerts-status")).to_contain_text("No alert rules yet")
    history = page.get_by_role("table", name="Alert history")
    expect(history.locator("tbody tr").first).to_contain_text(re.compile(r"firing → resolved|rule deleted"))
    expect(history).to_contain_text("rule deleted")
    expect(history).to_contain_text("the rule was deleted")
    assert requests.get(alerting.url("/api/v1/alerts/rules")).json()["rules"] == []


def test_every_rule_type_edit_and_disable(page, alerting):
    page.goto(alerting.url("/alerts"))
    page.get_by_role("button", name="New rule").click()
    form = page.get_by_role("form", name="New rule")
    kinds = form.get_by_label("Type", exact=True)
    visible = {
        "error_rate": {"Error-rate threshold", "Minimum calls"},
        "latency": {"Latency threshold (ms)", "Quantile", "Minimum calls"},
        "latency_spike": {"Factor (× baseline)", "Quantile", "Baseline", "Baseline window", "Minimum calls"},
        "throughput_drop": {"Calls per second below", "Fraction of the baseline's rate", "Baseline",
                            "Baseline window", "Minimum calls"},
        "missing": set(),
    }
    every = set().union(*visible.values())
    for kind, labels in visible.items():
        kinds.select_option(kind)
        for label in every:
            field = form.get_by_label(label, exact=True)
            if label in labels:
                expect(field).to_be_visible()
            else:
                expect(field).to_have_count(0) if label.startswith(("Error", "Latency", "Calls")) else expect(field).to_be_hidden()

    # A latency spike rule with labels and a webhook; a field of another type is not sent.
    kinds.select_option("latency_spike")
    form.get_by_label("Name", exact=True).fill("checkout slower")
    form.get_by_label("Service", exact=True).fill("checkout")
    form.get_by_label("Factor (× baseline)").fill("2")
    form.get_by_label("Baseline", exact=True).fill("1d")
    form.get_by_label("Labels").fill("severity=page\nteam = payments")
    form.get_by_label("Webhooks").fill("http://127.0.0.1:9/hook")
    form.get_by_role("button", name="Add rule").click()
    expect(form).to_have_count(0)
    rules = requests.get(alerting.url("/api/v1/alerts/rules")).json()["rules"]
    assert len(rules) == 1
    rule = rules[0]
    assert (rule["type"], rule["factor"], rule["baseline"], rule["quantile"]) == ("latency_spike", 2, "1d", 0.95)
    assert rule["labels"] == {"severity": "page", "team": "payments"}
    assert rule["webhooks"] == ["http://127.0.0.1:9/hook"]
    r = row(page, rule["id"])
    expect(r).to_contain_text("p95 > 2× its value 1d earlier over 5m")

    # Edit: the form holds the rule; a change is saved with PUT.
    r.get_by_role("button", name="Edit").click()
    form = page.get_by_role("form", name="Edit rule checkout slower")
    expect(form.get_by_label("Factor (× baseline)")).to_have_value("2")
    expect(form.get_by_label("Labels")).to_have_value("severity=page\nteam=payments")
    form.get_by_label("Factor (× baseline)").fill("0.5")
    form.get_by_role("button", name="Save rule").click()
    expect(form.get_by_role("alert")).to_contain_text("factor:")
    form.get_by_label("Factor (× baseline)").fill("3")
    form.get_by_role("button", name="Save rule").click()
    expect(form).to_have_count(0)
    expect(r).to_contain_text("p95 > 3× its value 1d earlier")

    # Disable and enable again.
    r.get_by_role("button", name="Disable").click()
    expect(r.get_by_test_id("alert-state")).to_have_text("disabled")
    assert requests.get(alerting.url(f"/api/v1/alerts/rules/{rule['id']}")).json()["enabled"] is False
    r.get_by_role("button", name="Enable").click()
    expect(r.get_by_test_id("alert-state")).to_have_text("inactive")
    history = page.get_by_role("table", name="Alert history")
    expect(history.locator("tbody tr")).to_have_count(4)  # added, changed, changed, changed
    expect(history.locator("tbody tr").first).to_contain_text("rule changed")


def test_alerting_off_is_explained(page, server_factory):
    srv = server_factory("alerting.enabled=false")
    page.goto(srv.url("/alerts"))
    expect(page.get_by_test_id("alerts-status")).to_contain_text("Could not load the alert rules: alerting is off")
