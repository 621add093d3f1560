"""Query stage: OTLP ``AnyValue`` rendered as text the way Jaeger and the Collector show it (pdata's AsString / AsRaw).

One home for the rendering both query/jaeger.py and query/zipkin.py use: strings as they are,
arrays and kvlists as Go-style compact JSON (sorted keys, Go's float text), bytes as base64.
"""
from __future__ import annotations

import base64
import json
import math
from decimal import Decimal

__all__ = ["as_string", "as_raw", "go_json", "go_float"]


def as_string(value) -> str:
    """An AnyValue as one string, as OTLP's ``AsString`` renders it (JSON for arrays/kvlists)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which is None or which == "string_value_strindex":  # empty, or a profiling-only index
        return ""
    return go_json(as_raw(value))


def as_raw(value):
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if which == "array_value":
        return [as_raw(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: as_raw(kv.value) for kv in value.kvlist_value.values}
    return None


def go_json(obj) -> str:
    """Compact JSON the way Go's encoding/json writes it: sorted keys, shortest floats with no
    trailing ``.0``, ``<``/``>``/``&`` escaped; so the tag text matches what Jaeger shows."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        return go_float(obj) if math.isfinite(obj) else "null"  # Go refuses NaN/Inf outright
    if isinstance(obj, str):
        return (
            json.dumps(obj, ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        )
    if isinstance(obj, list):
        return "[" + ",".join(go_json(v) for v in obj) + "]"
    return "{" + ",".join(f"{go_json(k)}:{go_json(obj[k])}" for k in sorted(obj)) + "}"


def go_float(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0 or 1e-6 <= abs(x) < 1e21:
        text = format(Decimal(repr(x)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    text = repr(x)  # exponent form, e.g. 1e-07 → Go writes 1e-7
    mantissa, _, exponent = text.partition("e")
    sign = exponent[0]
    digits = exponent[1:].lstrip("0") or "0"
    if sign == "+" and len(digits) < 2:
        digits = digits.rjust(2, "0")
    return f"{mantissa}e{sign}{digits}"
