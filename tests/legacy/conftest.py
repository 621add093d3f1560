"""Test harness: fixtures that run the real legacy Jaeger and Zipkin clients from .venv-legacy."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from legacy.env import DRIVER, legacy_python as _legacy_python


@pytest.fixture(scope="session")
def legacy_python() -> Path:
    """The legacy environment's python (built on first use, then reused between runs)."""
    return _legacy_python()


@pytest.fixture(scope="session")
def run_driver(legacy_python):
    """``run_driver(exporter, endpoint, spec=None, check=True) -> dict``: emit the trace, return
    what the driver says it sent.  With ``check`` a non-zero exit fails the test with its stderr."""

    def run(exporter: str, endpoint: str, spec: dict | None = None, *, check: bool = True,
            timeout: float = 60.0) -> dict:
        args = [str(legacy_python), str(DRIVER), "--exporter", exporter, "--endpoint", endpoint]
        with tempfile.NamedTemporaryFile("w", suffix=".json") as fh:
            if spec is not None:
                json.dump(spec, fh)
                fh.flush()
                args += ["--trace-file", fh.name]
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"driver {exporter} → {endpoint} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        out["returncode"] = proc.returncode
        out["stderr"] = proc.stderr
        return out

    return run
