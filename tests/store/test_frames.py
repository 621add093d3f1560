"""Store stage: the chunk-entry walker and span framer — both twins against the chunk format's
own reader (``ChunkCodec.unpack``) and protobuf's parser, and against each other."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.errors import StoreError
from collector.store import frames as py_frames
from collector.store.chunk import HEADER, ChunkCodec

try:
    from _ext import _frames as cy_frames
except ImportError:  # reported by test_compiled_twin_built
    cy_frames = None

IMPLS = [pytest.param(py_frames, id="py"),
         pytest.param(cy_frames, id="cy", marks=pytest.mark.skipif(cy_frames is None,
                                                                   reason="compiled twin not built"))]


def test_compiled_twin_built():
    if not (os.environ.get("CLEW_REQUIRE_EXTENSIONS") or os.environ.get("CI")):
        pytest.skip("set CLEW_REQUIRE_EXTENSIONS=1 (make test does) to require the compiled twin")
    assert cy_frames is not None, "_ext._frames did not import: the Cython twin was not built"


entry = st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=300))


def _chunk(entries) -> bytes:
    return b"".join(HEADER.pack(rid, sid, 1, 2, 0, len(span)) + span for rid, sid, span in entries)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(entry, max_size=6), max_size=4))
def test_walk_reads_what_the_chunk_reader_reads(impl, chunks):
    codec = ChunkCodec(3)
    values = [codec.pack(_chunk(c)) for c in chunks]
    body = codec.bodies(values)
    rid, sid, off, ln = impl.walk(body)
    stored = [s for v in values for s in codec.unpack(v)]
    assert rid.tolist() == [s.resource_id for s in stored]
    assert sid.tolist() == [s.scope_id for s in stored]
    assert [body[o:o + n] for o, n in zip(off.tolist(), ln.tolist())] == [s.span for s in stored]


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=9_000), max_size=5), st.data())
def test_frame_writes_scope_spans_fields(impl, names, data):
    """Framed spans parse (protobuf's own parser) as ScopeSpans.spans, in the order asked for;
    names up to 9,000 characters give lengths of one, two and three varint bytes."""
    spans = [trace_pb2.Span(name=n, kind=2).SerializeToString() for n in names]
    body = _chunk([(1, 2, s) for s in spans])
    _rid, _sid, off, ln = impl.walk(body)
    order = data.draw(st.permutations(range(len(spans))))
    framed = impl.frame(body, off, ln, np.array(order, np.int64))
    parsed = trace_pb2.ScopeSpans.FromString(framed)
    assert [s.name for s in parsed.spans] == [names[i] for i in order]
    assert framed == py_frames.frame(body, off, ln, order)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cut", [1, 39, 41])
def test_a_truncated_body_is_an_error(impl, cut):
    body = _chunk([(1, 2, b"x" * 10)])
    with pytest.raises(StoreError, match="chunk: truncated"):
        impl.walk(body[:-cut] if cut < len(body) else body[:cut])


@pytest.mark.parametrize("impl", IMPLS)
def test_frame_refuses_offsets_outside_the_buffer(impl):
    with pytest.raises(IndexError):
        impl.frame(b"abc", np.array([2], np.int64), np.array([5], np.uint32), np.array([0]))
