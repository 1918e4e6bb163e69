"""Validate raw bytes into events, with errors that say what was wrong and where.

TypeAdapters are built once at import: building one per message would cost more
than the validation itself.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from pydantic import BaseModel, TypeAdapter, ValidationError

from routerwatch.errors import PermanentError
from routerwatch.events.models import CanaryResult, QualityFeedback, RoutingDecision

EVENT_TYPES: dict[str, type[BaseModel]] = {
    "RoutingDecision": RoutingDecision,
    "QualityFeedback": QualityFeedback,
    "CanaryResult": CanaryResult,
}
_ADAPTERS: dict[type, TypeAdapter[Any]] = {model: TypeAdapter(model) for model in EVENT_TYPES.values()}
# The core validators' bound methods: calling them skips the TypeAdapter wrapper (about 1 us per event).
# Strict, as the JSON Schema is: "510" is not a number and an epoch integer is not a time. (Strict
# JSON mode still reads enums, UUIDs and ISO times from their JSON strings, and integers as floats.)
_VALIDATORS: dict[type, Callable[[bytes | str], Any]] = {
    model: partial(adapter.validator.validate_json, strict=True) for model, adapter in _ADAPTERS.items()
}


class InvalidEventError(PermanentError):
    """An event that does not satisfy the contract.

    ``reason`` is a short machine-readable class (``undecodable``, ``invalid_json``,
    ``schema``); ``detail`` is the human sentence with field paths. The ingest
    service copies both onto the dead-lettered message.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def describe(error: ValidationError, limit: int = 5) -> str:
    """Render a ValidationError as ``path: message`` clauses, first ``limit`` of them."""
    clauses = []
    for item in error.errors(include_url=False)[:limit]:
        path = ".".join(str(part) for part in item["loc"]) or "<event>"
        clauses.append(f"{path}: {item['msg']}")
    extra = error.error_count() - len(clauses)
    if extra > 0:
        clauses.append(f"... and {extra} more")
    return "; ".join(clauses)


def decode(model: type, raw: bytes | str) -> Any:
    """Parse and validate one event of ``model`` from raw JSON bytes.

    Raises :class:`InvalidEventError` with reason ``undecodable`` (not UTF-8),
    ``invalid_json`` (not JSON) or ``schema`` (JSON that breaks the contract).
    """
    try:
        return _VALIDATORS[model](raw)
    except ValidationError as exc:
        raise invalid(exc, raw) from exc


def json_validator(model: type) -> Callable[[bytes | str], Any]:
    """The raw validate-JSON function of ``model``: fastest per call; raises pydantic's ValidationError.

    For loops over many messages (the ingest batch). Turn its error into the contract's
    :class:`InvalidEventError` with :func:`invalid`.
    """
    return _VALIDATORS[model]


def invalid(error: ValidationError, raw: bytes | str) -> InvalidEventError:
    """The :class:`InvalidEventError` for a payload that failed validation with ``error``."""
    # The JSON parser rejects any byte sequence that is not UTF-8, so the (rarely needed)
    # UTF-8 check runs only for payloads that failed: valid events never pay for it.
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return InvalidEventError("undecodable", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})")
    if any(item["type"] == "json_invalid" for item in error.errors()):
        return InvalidEventError("invalid_json", describe(error))
    return InvalidEventError("schema", describe(error))
