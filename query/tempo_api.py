"""Query stage: the Tempo query API (being built)."""
from __future__ import annotations

from quart import Blueprint


def blueprint(config, reader) -> Blueprint:
    return Blueprint("tempo", __name__)
