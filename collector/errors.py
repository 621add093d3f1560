"""Errors shared by every stage; the one home for the exception types Clew raises."""


class ClewError(Exception):
    """Base of every error Clew raises on purpose."""


class ConfigError(ClewError):
    """A configuration value is invalid; the message names the key."""


class DecodeError(ClewError, ValueError):
    """A request body is not a valid encoding of what its protocol promises."""


class BodyTooLarge(ClewError):
    """A request body (or its decompressed form) is over the configured limit."""


class Busy(ClewError):
    """The writer's queue is past its bound: the client should retry later."""

    def __init__(self, message: str = "ingest queue is full, retry later", retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(ClewError):
    """The store could not commit a write; nothing of that write was acknowledged."""


class StoreClosed(StoreError):
    """The store is shutting down and takes no more writes."""


class SamplingError(ClewError, ValueError):
    """Sampling settings (strategies, policies, targets) are invalid; the message names the path,
    e.g. ``tail.policies[2].threshold_ms: must be > 0``."""


def json_kind(value) -> str:
    """The JSON name of a parsed value's type with its article ("a number", "an array"), for
    error messages that say what was found instead of what was expected."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
