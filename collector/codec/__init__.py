"""Decode stage: picks each compiled or pure-Python twin once (``CLEW_NO_EXTENSIONS=1`` forces Python).

Each pair is a pure-Python reference module (``collector/codec/<name>.py``, or the stage's own
folder for twins outside decoding) and a Cython module ``_ext/_<name>.pyx`` with the same API.  Everything downstream asks ``twin(name)`` (or uses
``decode_export_request``) and never chooses itself.  The picked module is not stored under the
submodule's own name: importing ``collector.codec.<name>`` binds that attribute to the reference.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

NO_EXTENSIONS = bool(os.environ.get("CLEW_NO_EXTENSIONS"))

# Every twin pair: name → its pure-Python reference module.
TWINS = {
    "otlp": "collector.codec.otlp",
    "jaeger_thrift": "collector.codec.jaeger_thrift",
    "jaeger_proto": "collector.codec.jaeger_proto",
    "zipkin": "collector.codec.zipkin",
    "terms": "collector.store.terms",  # index terms (store stage)
    "frames": "collector.store.frames",  # stored spans re-assembled into requests (store stage)
}
_picked: dict[str, ModuleType] = {}


def _pick(name: str) -> ModuleType:
    """The compiled twin ``_ext._<name>`` unless disabled or not built, else the reference."""
    reference = importlib.import_module(TWINS[name])
    if NO_EXTENSIONS:
        return reference
    try:
        return importlib.import_module(f"_ext._{name}")
    except ImportError:  # not built: the reference serves, and the CI test for it fails
        return reference


def twin(name: str) -> ModuleType:
    """The implementation of twin pair ``name`` this process uses (picked on first use)."""
    module = _picked.get(name)
    if module is None:
        if name not in TWINS:
            raise KeyError(f"no twin pair named {name!r}")
        module = _picked[name] = _pick(name)
    return module


decode_export_request = twin("otlp").decode_export_request
COMPILED = twin("otlp").__name__.startswith("_ext.")
