"""Decode stage: picks the compiled or pure-Python twin once (``CLEW_NO_EXTENSIONS=1`` forces Python).

Everything downstream imports ``decode_export_request`` from here and never chooses itself.
"""
from __future__ import annotations

import os

from collector.codec import otlp as _py_otlp

NO_EXTENSIONS = bool(os.environ.get("CLEW_NO_EXTENSIONS"))

if NO_EXTENSIONS:
    _impl = _py_otlp
else:
    try:
        from _ext import _otlp as _impl  # type: ignore[no-redef]
    except ImportError:  # compiled twin not built: fall back to the reference
        _impl = _py_otlp

decode_export_request = _impl.decode_export_request
COMPILED = _impl is not _py_otlp
