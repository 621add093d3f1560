"""Receive stage: how the Jaeger and Zipkin HTTP receivers answer (their clients expect 202 Accepted).

Neither protocol can report a partial success, so a request is accepted (202) when any of its
spans was stored or it held none; when every span was refused the answer is 400 with the reasons.
Busy and store failures answer 503 with ``Retry-After``; the message always names the problem.
"""
from __future__ import annotations

import time
from typing import Callable

from collector.errors import BodyTooLarge, Busy, DecodeError, StoreError
from collector.ingest import Ingest
from collector.receivers.http import Request, Response, UnsupportedEncoding, decoded_body

TEXT = [(b"Content-Type", b"text/plain; charset=utf-8")]


def text(status: int, message: str, extra=()) -> Response:
    return Response(status, [*TEXT, *extra], message.encode())


async def accept(ingest: Ingest, req: Request, protocol: str, what: str,
                 to_otlp: Callable[[bytes], bytes], limit: int, limit_key: str) -> Response:
    m = ingest.metrics
    if req.too_large:
        m.requests.labels(protocol, "too_large").inc()
        return text(413, f"body is over {limit} bytes ({limit_key})")
    started = time.perf_counter()
    try:
        outcome = await ingest.export(decoded_body(req, limit), protocol, to_otlp)
    except UnsupportedEncoding as exc:
        return text(415, str(exc))
    except BodyTooLarge as exc:
        m.requests.labels(protocol, "too_large").inc()
        return text(413, f"{exc} ({limit_key})")
    except DecodeError as exc:
        m.requests.labels(protocol, "invalid").inc()
        return text(400, f"body is not valid {what}: {exc}")
    except Busy as exc:
        m.requests.labels(protocol, "busy").inc()
        return text(503, str(exc), [(b"Retry-After", str(exc.retry_after).encode())])
    except StoreError as exc:
        m.requests.labels(protocol, "unavailable").inc()
        return text(503, f"spans were not stored: {exc}", [(b"Retry-After", b"1")])
    refused = outcome.refusals
    m.ack_seconds.labels(protocol).observe(time.perf_counter() - started)
    if refused.total and not outcome.accepted:
        m.requests.labels(protocol, "invalid").inc()
        return text(400, refused.message())
    m.requests.labels(protocol, "partial" if refused.total else "ok").inc()
    return text(202, refused.message() if refused.total else "")
