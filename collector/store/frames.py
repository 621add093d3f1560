"""Store stage: chunk entries as columns, and spans framed as ``ScopeSpans.spans`` fields —
the reference twin of ``_ext/_frames.pyx`` (picked with ``collector.codec.twin("frames")``).

Stored spans are re-assembled into an OTLP request (to index them again, or to read held traces
back for the tail policies) without a Python object per span:

* ``walk(body)`` — every entry of decompressed chunk bodies (joined: entries are self-delimiting,
  ``collector/store/chunk.py``) as four arrays: resource ID, scope ID, span offset, span length.
* ``frame(buf, off, ln, order)`` — the spans ``order`` picks, each as protobuf field 2
  (``ScopeSpans.spans``: key byte, length varint, the span bytes), concatenated.
"""
from __future__ import annotations

import numpy as np

from collector.errors import StoreError
from collector.store.chunk import HEADER


def walk(body) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(resource IDs u64, scope IDs u64, span offsets i64, span lengths u32) of every entry."""
    rids, sids, offs, lens = [], [], [], []
    unpack = HEADER.unpack_from
    pos, end = 0, len(body)
    while pos < end:
        if end - pos < HEADER.size:
            raise StoreError("chunk: truncated entry header")
        rid, sid, _start, _stop, _flags, n = unpack(body, pos)
        pos += HEADER.size
        if end - pos < n:
            raise StoreError("chunk: truncated span")
        rids.append(rid)
        sids.append(sid)
        offs.append(pos)
        lens.append(n)
        pos += n
    return (np.array(rids, np.uint64), np.array(sids, np.uint64), np.array(offs, np.int64),
            np.array(lens, np.uint32))


def frame(buf, off: np.ndarray, ln: np.ndarray, order: np.ndarray) -> bytes:
    """The spans ``buf[off[i]:off[i] + ln[i]]`` for ``i`` in ``order``, each framed as field 2."""
    out = bytearray()
    for i in np.asarray(order).tolist():
        o, n = int(off[i]), int(ln[i])
        if i < 0 or i >= len(off) or o < 0 or o + n > len(buf):
            raise IndexError(f"span {i} lies outside the buffer")
        out.append(0x12)
        while n >= 0x80:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        out += buf[o:o + int(ln[i])]
    return bytes(out)
