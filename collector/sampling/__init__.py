"""Sample stage: which traces are stored.

* ``consistent`` — the OpenTelemetry consistent-probability rules (randomness from the trace ID,
  thresholds as ``tracestate`` ``ot=th:`` carries them); every decision below uses them.
* ``strategies`` — Jaeger's strategy model (file-based strategies, the per-service responses of the
  remote-sampling endpoints).
* ``head`` — the head stage at ingest: per service and per operation probabilities.
* ``policies`` — tail-sampling policies, evaluated over whole traces.
* ``tail`` — the tail stage: pending traces, decisions, the decision cache.
* ``adaptive`` — per-operation probabilities from observed traffic (served to SDKs) and the
  overload controller that lowers the tail baseline.
* ``settings`` — the run-time settings document (``/api/v1/sampling``), validated and persisted.
* ``stats`` — what was received, kept and dropped, per service, over a window.
"""
