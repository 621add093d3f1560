"""Measure stage: Clew's load generator and benchmarks (``python -m perf`` / ``clew-perf``)."""
