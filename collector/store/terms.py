"""Index stage: search terms of a span batch — the pure-Python reference of ``_ext/_terms.pyx``.

A term is one attribute value in one place, hashed: ``xxh64(where ‖ key ‖ 0x00 ‖ text)`` where
``where`` is one byte (``W_SPAN``, ``W_EVENT``, ``W_LINK``, ``W_RESOURCE``, ``W_SCOPE``) and
``text`` is the value's string form as Jaeger compares it (``123``, ``72.5``, ``true``).  Only
string, bool, int and double values are terms; a string longer than the configured bound is not
(searching for it finds nothing, and the key still lists).  Span names are hashed too, so the
index groups spans by operation without a Python string per span.

``span_terms`` is the hot-path entry point; the compiled twin returns the same arrays.
"""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import xxhash

from collector.model import VT_BOOL, VT_DOUBLE, VT_INT, VT_STRING

W_SPAN, W_EVENT, W_LINK, W_RESOURCE, W_SCOPE = 0, 1, 2, 3, 4
WHERE_NAMES = ("span", "event", "link", "resource", "scope")
VALUE_TYPES = {VT_STRING: "string", VT_BOOL: "bool", VT_INT: "int", VT_DOUBLE: "double"}


def double_text(x: float) -> bytes:
    """A double as Go's ``strconv.FormatFloat(x, 'f', -1, 64)`` writes it (``72.5``, ``1``, ``1e21`` in full)."""
    if math.isnan(x):
        return b"NaN"
    if math.isinf(x):
        return b"+Inf" if x > 0 else b"-Inf"
    s = repr(x)
    if "e" in s or "E" in s:
        s = format(Decimal(s), "f")
    if s.endswith(".0"):
        s = s[:-2]
    if s == "-0":
        s = "0" if math.copysign(1.0, x) > 0 else "-0"
    return s.encode()


def double_bits_text(bits: int) -> bytes:
    """``double_text`` of a double given as its signed 64-bit IEEE-754 pattern (``ATTR_DTYPE.num``)."""
    return double_text(float(np.array([bits], np.int64).view(np.float64)[0]))


def value_text(vtype: int, payload: bytes, num: int, max_len: int) -> bytes | None:
    """The string form a term compares, or ``None`` when the value is not a term."""
    if vtype == VT_STRING:
        return payload if len(payload) <= max_len else None
    if vtype == VT_BOOL:
        return b"true" if num else b"false"
    if vtype == VT_INT:
        return str(num).encode()
    if vtype == VT_DOUBLE:
        return double_bits_text(num)
    return None


def term_hash(where: int, key: bytes, text: bytes) -> int:
    """The term's 64-bit hash; never 0 (0 marks "no term")."""
    return xxhash.xxh64_intdigest(bytes((where,)) + key + b"\x00" + text) or 1


def name_hash(name: bytes) -> int:
    return xxhash.xxh64_intdigest(name) or 1


def key_hash(where: int, key: bytes) -> int:
    """Hash of an attribute key in one place (groups a key's values without Python per row)."""
    return xxhash.xxh64_intdigest(bytes((where,)) + key) or 1


def span_terms(buf: bytes, spans: np.ndarray, attrs: np.ndarray, max_value_len: int):
    """``(name hash per span, term hash per attribute row, key hash per attribute row)`` as
    uint64 arrays (term hash 0 = not a term; key hashes are set on term rows only)."""
    names = np.empty(len(spans), np.uint64)
    for i, (off, n) in enumerate(zip(spans["name_off"].tolist(), spans["name_len"].tolist())):
        names[i] = name_hash(buf[off:off + n])
    terms = np.zeros(len(attrs), np.uint64)
    keys = np.zeros(len(attrs), np.uint64)
    rows = zip(attrs["where"].tolist(), attrs["vtype"].tolist(), attrs["key_off"].tolist(),
               attrs["key_len"].tolist(), attrs["val_off"].tolist(), attrs["val_len"].tolist(),
               attrs["num"].tolist())
    for i, (where, vtype, koff, klen, voff, vlen, num) in enumerate(rows):
        text = value_text(vtype, buf[voff:voff + vlen], num, max_value_len)
        if text is not None:
            terms[i] = term_hash(where, buf[koff:koff + klen], text)
            keys[i] = key_hash(where, buf[koff:koff + klen])
    return names, terms, keys
