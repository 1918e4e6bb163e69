"""Recorders: the objects router code fills in while it handles a request.

They only store numbers and names; turning them into an event (a dict, then
JSON) happens later on the sender thread, so the router pays for a few
attribute writes and one queue append per request.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routerwatch.sdk.client import RouterWatch


class AttemptRecorder:
    """One model call. Finish it with exactly one of accept / escalate / fail / shadow.

    Latency is measured from :meth:`DecisionRecorder.attempt` to the finishing
    call unless ``latency_ms`` is passed. Finishing twice raises ``RuntimeError``
    (a router bug, raised at the call site, not an event problem).
    """

    __slots__ = ("_decision", "_started", "fields")

    def __init__(self, decision: DecisionRecorder, fields: dict[str, Any], started: float) -> None:
        self._decision = decision
        self._started = started
        self.fields = fields

    def _finish(self, outcome: str, extra: dict[str, Any]) -> AttemptRecorder:
        if "outcome" in self.fields:
            raise RuntimeError(
                f"attempt {self.fields['index']} at tier {self.fields['tier']!r} was already finished "
                f"as {self.fields['outcome']!r}"
            )
        if extra.get("latency_ms") is None:
            extra["latency_ms"] = (time.perf_counter() - self._started) * 1000.0
        self.fields["outcome"] = outcome
        for key, value in extra.items():
            if value is not None:
                self.fields[key] = value
        return self

    def accept(
        self,
        *,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        ttft_ms: float | None = None,
        gate: dict[str, Any] | None = None,
        verify_latency_ms: float | None = None,
        verify_cost_usd: float | None = None,
        cache_hit: bool | None = None,
    ) -> AttemptRecorder:
        """This attempt's answer is served: the tier is terminal for the request."""
        return self._finish("accepted", locals_without_self(locals()))

    def escalate(
        self,
        reason: str,
        *,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        ttft_ms: float | None = None,
        gate: dict[str, Any] | None = None,
        failure_mode: str | None = None,
        verify_latency_ms: float | None = None,
        verify_cost_usd: float | None = None,
    ) -> AttemptRecorder:
        """A gate rejected the answer and the request moves up: the tier is passthrough."""
        extra = locals_without_self(locals())
        extra["escalation_reason"] = extra.pop("reason")
        return self._finish("escalated", extra)

    def fail(
        self,
        failure_mode: str,
        *,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> AttemptRecorder:
        """The call errored (timeout, 429, 5xx, refusal...): a reliability event, not an escalation."""
        return self._finish("failed", locals_without_self(locals()))

    def shadow(
        self,
        *,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        gate: dict[str, Any] | None = None,
        failure_mode: str | None = None,
    ) -> AttemptRecorder:
        """A forced attempt in the shadow slice whose answer was not served."""
        self._decision.fields["shadow"] = True
        return self._finish("shadow", locals_without_self(locals()))


def locals_without_self(values: dict[str, Any]) -> dict[str, Any]:
    values.pop("self", None)
    return values


class DecisionRecorder:
    """One request's routing decision; emitted once when the block ends.

    Use as ``with rw.decision(...) as d:`` or ``async with``. Leaving the block
    emits the event whether or not the router's code raised; an exception from
    the router propagates unchanged. If no attempt was accepted the request is
    recorded as not served. In strict (development) mode an event that breaks
    the contract raises :class:`routerwatch.events.InvalidEventError` here.
    """

    __slots__ = ("_client", "_started", "_closed", "fields", "attempts", "occurred_at", "latency_ms")

    def __init__(self, client: RouterWatch, fields: dict[str, Any], occurred_at: float | None) -> None:
        self._client = client
        self._started = time.perf_counter()
        self._closed = False
        self.occurred_at = time.time() if occurred_at is None else occurred_at
        self.fields = fields
        self.attempts: list[AttemptRecorder] = []
        self.latency_ms: float | None = None

    @property
    def request_id(self) -> str:
        return self.fields["request_id"]

    def attempt(
        self, tier: str, *, tier_rank: int, model: str, provider: str, offset_ms: float | None = None
    ) -> AttemptRecorder:
        """Start an attempt at ``tier``; its offset is measured from the start of the request unless given."""
        now = time.perf_counter()
        recorder = AttemptRecorder(
            self,
            {
                "index": len(self.attempts),
                "tier": tier,
                "tier_rank": tier_rank,
                "model": model,
                "provider": provider,
                "offset_ms": (now - self._started) * 1000.0 if offset_ms is None else offset_ms,
            },
            now,
        )
        self.attempts.append(recorder)
        return recorder

    def finish(self, *, latency_ms: float | None = None) -> None:
        """Close the decision and hand it to the sender. Called by the context managers."""
        if self._closed:
            return
        self._closed = True
        self.latency_ms = (time.perf_counter() - self._started) * 1000.0 if latency_ms is None else latency_ms
        self._client._submit_decision(self)

    def to_event(self) -> dict[str, Any]:
        """The RoutingDecision as a JSON-ready dict (built on the sender thread).

        Before :meth:`finish` the request latency is measured up to now.
        """
        attempts = [a.fields for a in self.attempts]
        event = dict(self.fields)
        event["occurred_at"] = _iso_ms(self.occurred_at)
        event["attempts"] = attempts
        accepted = [a for a in attempts if a.get("outcome") == "accepted"]
        cost = 0.0
        for a in attempts:
            if a.get("outcome") != "shadow":
                cost += a.get("cost_usd", 0.0) + a.get("verify_cost_usd", 0.0)
        final: dict[str, Any] = {
            "served": bool(accepted),
            "latency_ms": (time.perf_counter() - self._started) * 1000.0 if self.latency_ms is None else self.latency_ms,
            "cost_usd": cost,
        }
        if accepted:
            final["tier"] = accepted[-1]["tier"]
            final["model"] = accepted[-1]["model"]
        event["final"] = final
        return event

    def __enter__(self) -> DecisionRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        # Never turn the router's own exception into ours: emit, then let it propagate.
        if exc_type is not None:
            # The exception interrupted any attempt still open (typically the model call
            # itself raised): record it as failed, or the event would have no outcome
            # and be dead-lettered instead of counted as a not-served request.
            for attempt in self.attempts:
                if "outcome" not in attempt.fields:
                    attempt.fail("other")
            try:
                self.finish()
            except Exception:  # noqa: BLE001 - strict-mode errors must not mask the router's error
                pass
            return False
        self.finish()
        return False

    async def __aenter__(self) -> DecisionRecorder:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)


def _iso_ms(epoch_seconds: float) -> str:
    millis = int(epoch_seconds * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def new_id() -> str:
    return str(uuid.uuid4())
