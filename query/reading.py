"""Query stage: store calls from async handlers — run in worker threads so the event loop never waits on disk."""
from __future__ import annotations

import asyncio
import functools

from opentelemetry.proto.trace.v1 import trace_pb2


async def call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in the default executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def traces_data(reader, trace_id: bytes) -> trace_pb2.TracesData | None:
    """One stored trace as an OTLP ``TracesData`` message, or ``None``."""
    raw = await call(traces_data_bytes, reader, trace_id)
    return None if raw is None else trace_pb2.TracesData.FromString(raw)


def traces_data_bytes(reader, trace_id: bytes) -> bytes | None:
    """One stored trace as serialized OTLP ``TracesData``, or ``None`` (call from a worker thread)."""
    trace = reader.get_trace(trace_id)
    return None if trace is None else trace.to_traces_data()
