"""Test harness: builds the legacy-client environment (OpenTelemetry SDK 1.21 Jaeger/Zipkin exporters).

The Jaeger exporters were last released for SDK 1.21.0 and need ``protobuf<4``; the Zipkin
protobuf exporter of that release needs the same.  They cannot share the project's environment
(current SDK, protobuf 4+), so the end-to-end tests run them from ``<repo>/.venv-legacy``, built
here on first use and reused while its stamp matches ``PINS`` and the interpreter version.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-legacy"
STAMP = VENV / ".clew-legacy-stamp"
DRIVER = Path(__file__).resolve().parent / "driver.py"
# Outside the work tree, so nothing but the environment itself needs ignoring.
_LOCK = Path(tempfile.gettempdir()) / f"clew-venv-legacy-{hashlib.sha1(bytes(VENV)).hexdigest()[:12]}.lock"

# The real clients under test, and the few libraries whose version decides whether they work.
PINS = (
    "opentelemetry-api==1.21.0",
    "opentelemetry-sdk==1.21.0",
    "opentelemetry-semantic-conventions==0.42b0",
    "protobuf==3.20.3",
    "opentelemetry-exporter-jaeger-thrift==1.21.0",
    "opentelemetry-exporter-jaeger-proto-grpc==1.21.0",
    "opentelemetry-exporter-zipkin-json==1.21.0",
    "opentelemetry-exporter-zipkin-proto-http==1.21.0",
    "thrift==0.25.0",
    "googleapis-common-protos==1.59.1",
    "grpcio>=1.60,<2",
    "requests>=2.31,<3",
)

# Every module the driver imports: the environment is only stamped once all of them load.
_SELF_CHECK = (
    "import opentelemetry.sdk.trace, google.protobuf, thrift;"
    "from opentelemetry.exporter.jaeger.thrift import JaegerExporter;"
    "from opentelemetry.exporter.jaeger.proto.grpc import JaegerExporter;"
    "from opentelemetry.exporter.zipkin.json import ZipkinExporter;"
    "from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter;"
    "import google.protobuf as p; assert p.__version__ == '3.20.3', p.__version__"
)


def _stamp_text() -> str:
    return "\n".join((f"python {sys.version_info[0]}.{sys.version_info[1]}", *PINS)) + "\n"


def _python() -> Path:
    return VENV / "bin" / "python"


def _current() -> bool:
    try:
        return _python().exists() and STAMP.read_text() == _stamp_text()
    except OSError:
        return False


def _run(args: list, what: str) -> None:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"legacy environment: {what} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def legacy_python() -> Path:
    """Path of the legacy environment's python, building or refreshing the environment first.

    Idempotent and safe to call from concurrent processes (a file lock serialises builders).
    Raises ``RuntimeError`` with pip's output if the environment cannot be built.
    """
    if _current():
        return _python()
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _current():  # another process built it while we waited
                return _python()
            if VENV.exists():
                shutil.rmtree(VENV)
            _run([sys.executable, "-m", "venv", VENV], "python -m venv")
            env_pip = [_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            _run([*env_pip, *PINS], "pip install " + " ".join(PINS))
            _run([_python(), "-c", _SELF_CHECK], "import check")
            STAMP.write_text(_stamp_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _python()


if __name__ == "__main__":  # `python tests/legacy/env.py` builds it ahead of a test run
    print(legacy_python())
    sys.exit(0 if os.access(_python(), os.X_OK) else 1)
