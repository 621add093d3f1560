"""Decode stage: picks each compiled or pure-Python twin once (``CLEW_NO_EXTENSIONS=1`` forces Python).

Everything downstream imports decoders from here and never chooses itself.  Each pair is a
pure-Python reference module in ``collector/codec/`` and a Cython module of the same name with a
leading underscore in ``_ext/``.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

NO_EXTENSIONS = bool(os.environ.get("CLEW_NO_EXTENSIONS"))


def _pick(name: str) -> ModuleType:
    """The compiled twin ``_ext._<name>`` unless disabled or not built, else the reference."""
    reference = importlib.import_module(f"collector.codec.{name}")
    if NO_EXTENSIONS:
        return reference
    try:
        return importlib.import_module(f"_ext._{name}")
    except ImportError:  # not built: the reference serves, and the CI test for it fails
        return reference


# The translators of foreign formats, picked on first use.
TWINS = ("jaeger_thrift", "jaeger_proto", "zipkin")


def __getattr__(name: str) -> ModuleType:
    if name in TWINS:
        module = globals()[name] = _pick(name)
        return module
    raise AttributeError(f"module 'collector.codec' has no attribute {name!r}")


otlp = _pick("otlp")
decode_export_request = otlp.decode_export_request
COMPILED = otlp.__name__.startswith("_ext.")
