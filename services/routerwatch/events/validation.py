"""Validate raw bytes into events, with errors that say what was wrong and where.

TypeAdapters are built once at import: building one per message would cost more
than the validation itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from routerwatch.errors import PermanentError
from routerwatch.events.models import CanaryResult, QualityFeedback, RoutingDecision

EVENT_TYPES: dict[str, type] = {
    "RoutingDecision": RoutingDecision,
    "QualityFeedback": QualityFeedback,
    "CanaryResult": CanaryResult,
}
_ADAPTERS: dict[type, TypeAdapter[Any]] = {model: TypeAdapter(model) for model in EVENT_TYPES.values()}


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
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEventError("undecodable", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return _ADAPTERS[model].validate_json(raw)
    except ValidationError as exc:
        if any(item["type"] == "json_invalid" for item in exc.errors()):
            raise InvalidEventError("invalid_json", describe(exc)) from exc
        raise InvalidEventError("schema", describe(exc)) from exc
