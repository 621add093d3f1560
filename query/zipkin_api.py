"""Query stage: the Zipkin query API (being built)."""
from __future__ import annotations

from quart import Blueprint


def blueprint(config, reader) -> Blueprint:
    return Blueprint("zipkin", __name__)
