"""Errors of the OTLP receiver: one permanent error per broken trace or request, with a short reason."""

from __future__ import annotations

from routerwatch.errors import PermanentError


class TraceRejected(PermanentError):
    """A trace that cannot become a valid RoutingDecision: dead-lettered with ``reason`` and ``detail``.

    ``reason`` is one of :data:`routerwatch.otlp.mapping.DEAD_LETTER_REASONS`.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BadPayload(PermanentError):
    """An OTLP request body that cannot be decoded at all (400; nothing of it is kept)."""
