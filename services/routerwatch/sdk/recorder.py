"""Recorders: the objects router code fills in while it handles a request.

They only store numbers and names; turning them into an event (a dict, then
JSON) happens later on the sender thread, so the router pays for a few
attribute writes and one queue append per request.
"""

from __future__ import annotations

import contextvars
import logging
import random
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from routerwatch.sdk.client import RouterWatch

log = logging.getLogger("routerwatch.sdk")

# The decision whose ``with`` / ``async with`` block is running: integrations read it to attach the
# model calls made inside the block to the request (copied into threads and tasks with the context).
_CURRENT: contextvars.ContextVar[DecisionRecorder | None] = contextvars.ContextVar("routerwatch_decision", default=None)


def current_decision() -> DecisionRecorder | None:
    """The decision whose ``with rw.decision(...)`` (or ``async with``) block runs in this context, else ``None``."""
    return _CURRENT.get()


class Collector(Protocol):
    """An integration that records a decision's attempts for the router (e.g. from LiteLLM callbacks).

    Attached with :meth:`DecisionRecorder.attach`. The SDK calls it on the router's path and
    swallows (and logs) whatever it raises: a broken integration never breaks a request.
    """

    def reject(self, decision: DecisionRecorder, reason: str, gate: dict[str, Any], extra: dict[str, Any]) -> bool:
        """Place a gate's rejection on the answer it is about; ``False`` if this collector has none."""
        ...

    def settle(self, decision: DecisionRecorder) -> None:
        """Add the attempts still pending to ``decision`` (a bounded wait); called once, before it is emitted."""
        ...

    async def asettle(self, decision: DecisionRecorder) -> None:
        """Wait (bounded, without blocking the event loop) for pending attempts; runs before ``settle`` under ``async with``."""
        ...


class AttemptRecorder:
    """One model call. Finish it with exactly one of accept / escalate / fail / shadow.

    Latency is measured from :meth:`DecisionRecorder.attempt` to the finishing
    call unless ``latency_ms`` is passed. Finishing twice raises ``RuntimeError``
    (a router bug, raised at the call site, not an event problem).
    """

    __slots__ = ("_decision_fields", "_started", "fields")

    def __init__(self, decision: DecisionRecorder, fields: dict[str, Any], started: float) -> None:
        # The decision's fields, not the decision: a reference back to the decision would make
        # every recorded request a reference cycle, freed only by the garbage collector instead
        # of the moment the sender has serialised it (full collections over a busy router's
        # heap then cost more than recording does).
        self._decision_fields = decision.fields
        self._started = started
        self.fields = fields

    # The finishing methods run on the router's request path: each sets its fields directly
    # (no kwargs dict, no loop), which keeps a three-attempt decision within a few microseconds.

    def _open(self, outcome: str, latency_ms: float | None) -> dict[str, Any]:
        fields = self.fields
        if "outcome" in fields:
            raise RuntimeError(
                f"attempt {fields['index']} at tier {fields['tier']!r} was already finished "
                f"as {fields['outcome']!r}"
            )
        fields["outcome"] = outcome
        fields["latency_ms"] = (time.perf_counter() - self._started) * 1000.0 if latency_ms is None else latency_ms
        return fields

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
        f = self._open("accepted", latency_ms)
        if input_tokens is not None:
            f["input_tokens"] = input_tokens
        if output_tokens is not None:
            f["output_tokens"] = output_tokens
        if cost_usd is not None:
            f["cost_usd"] = cost_usd
        if ttft_ms is not None:
            f["ttft_ms"] = ttft_ms
        if gate is not None:
            f["gate"] = gate
        if verify_latency_ms is not None:
            f["verify_latency_ms"] = verify_latency_ms
        if verify_cost_usd is not None:
            f["verify_cost_usd"] = verify_cost_usd
        if cache_hit is not None:
            f["cache_hit"] = cache_hit
        return self

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
        f = self._open("escalated", latency_ms)
        if input_tokens is not None:
            f["input_tokens"] = input_tokens
        if output_tokens is not None:
            f["output_tokens"] = output_tokens
        if cost_usd is not None:
            f["cost_usd"] = cost_usd
        if ttft_ms is not None:
            f["ttft_ms"] = ttft_ms
        if gate is not None:
            f["gate"] = gate
        if failure_mode is not None:
            f["failure_mode"] = failure_mode
        if verify_latency_ms is not None:
            f["verify_latency_ms"] = verify_latency_ms
        if verify_cost_usd is not None:
            f["verify_cost_usd"] = verify_cost_usd
        if reason is not None:
            f["escalation_reason"] = reason
        return self

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
        f = self._open("failed", latency_ms)
        if failure_mode is not None:
            f["failure_mode"] = failure_mode
        if input_tokens is not None:
            f["input_tokens"] = input_tokens
        if output_tokens is not None:
            f["output_tokens"] = output_tokens
        if cost_usd is not None:
            f["cost_usd"] = cost_usd
        return self

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
        f = self._open("shadow", latency_ms)
        self._decision_fields["shadow"] = True
        if input_tokens is not None:
            f["input_tokens"] = input_tokens
        if output_tokens is not None:
            f["output_tokens"] = output_tokens
        if cost_usd is not None:
            f["cost_usd"] = cost_usd
        if gate is not None:
            f["gate"] = gate
        if failure_mode is not None:
            f["failure_mode"] = failure_mode
        return self


class DecisionRecorder:
    """One request's routing decision; emitted once when the block ends.

    Use as ``with rw.decision(...) as d:`` or ``async with``. Leaving the block
    emits the event whether or not the router's code raised; an exception from
    the router propagates unchanged. If no attempt was accepted the request is
    recorded as not served. In strict (development) mode an event that breaks
    the contract raises :class:`routerwatch.events.InvalidEventError` here.

    Ids the router did not give are made when first needed: ``request_id`` when
    read (or on the sender thread), ``event_id`` when the event is built. Both
    are then kept, so every read and every build sees the same ids.
    """

    __slots__ = (
        "_client", "_started", "_closed", "_token", "collectors", "fields", "attempts", "occurred_at", "latency_ms"
    )

    def __init__(self, client: RouterWatch, fields: dict[str, Any], occurred_at: float | None) -> None:
        self._client = client
        self._started = time.perf_counter()
        self._closed = False
        self._token: contextvars.Token[DecisionRecorder | None] | None = None
        self.collectors: list[Collector] | None = None
        self.occurred_at = time.time() if occurred_at is None else occurred_at
        self.fields = fields
        self.attempts: list[AttemptRecorder] = []
        self.latency_ms: float | None = None

    @property
    def request_id(self) -> str:
        rid = self.fields.get("request_id")
        if rid is None:
            # setdefault is atomic: the router and the sender thread always agree on the id.
            rid = self.fields.setdefault("request_id", new_id())
        return rid

    def attempt(
        self, tier: str, *, tier_rank: int, model: str, provider: str, offset_ms: float | None = None
    ) -> AttemptRecorder:
        """Start an attempt at ``tier``; its offset is measured from the start of the request unless given."""
        now = time.perf_counter()
        attempts = self.attempts
        recorder = AttemptRecorder(
            self,
            {
                "index": len(attempts),
                "tier": tier,
                "tier_rank": tier_rank,
                "model": model,
                "provider": provider,
                "offset_ms": (now - self._started) * 1000.0 if offset_ms is None else offset_ms,
            },
            now,
        )
        attempts.append(recorder)
        return recorder

    def attach(self, collector: Collector) -> None:
        """Let an integration add attempts to this request (see :class:`Collector`). Attaching twice is a no-op."""
        collectors = self.collectors
        if collectors is None:
            self.collectors = [collector]
        elif collector not in collectors:
            collectors.append(collector)

    def reject(
        self,
        reason: str,
        *,
        score: float | None = None,
        threshold: float | None = None,
        kind: str = "confidence",
        verify_latency_ms: float | None = None,
        verify_cost_usd: float | None = None,
    ) -> None:
        """A gate rejected the answer the request got last; the request moves up a tier.

        The attempt that produced that answer is recorded as escalated (passthrough) with
        ``reason`` and the gate ``{kind, score, threshold, passed: false}``. With an integration
        attached (LiteLLM), that is the answer of the last model call made in this block, placed
        when its callback arrives. Otherwise it is the last attempt recorded with
        :meth:`attempt`, which must still be open (``RuntimeError`` if not: a router bug).
        """
        gate: dict[str, Any] = {"kind": kind, "passed": False}
        if score is not None:
            gate["score"] = score
        if threshold is not None:
            gate["threshold"] = threshold
        extra = {}
        if verify_latency_ms is not None:
            extra["verify_latency_ms"] = verify_latency_ms
        if verify_cost_usd is not None:
            extra["verify_cost_usd"] = verify_cost_usd
        for collector in self.collectors or ():
            try:
                if collector.reject(self, reason, gate, extra):
                    return
            except Exception:  # an integration's bug must not break the request
                log.exception("routerwatch: collector %r failed to place a rejection", collector)
                return
        if not self.attempts or "outcome" in self.attempts[-1].fields:
            raise RuntimeError("reject() needs an open attempt: start one with attempt() before the model call")
        self.attempts[-1].escalate(reason, gate=gate, **extra)

    def finish(self, *, latency_ms: float | None = None) -> None:
        """Close the decision and hand it to the sender. Called by the context managers.

        Attached collectors settle first (a bounded wait for their pending attempts); the request
        latency is then at least the end of its last attempt.
        """
        if self._closed:
            return
        self._closed = True
        collectors = self.collectors
        if collectors:
            for collector in collectors:
                try:
                    collector.settle(self)
                except Exception:  # an integration's bug must not break the request
                    log.exception("routerwatch: collector %r failed to settle", collector)
        self.latency_ms = (time.perf_counter() - self._started) * 1000.0 if latency_ms is None else latency_ms
        if collectors:
            # Collected attempts are timed by the integration's clock, not ours: the request ends
            # no earlier than its last attempt (the contract's final-latency rule).
            ends = [a.fields["offset_ms"] + a.fields.get("latency_ms", 0.0) for a in self.attempts]
            if ends and max(ends) > self.latency_ms:
                self.latency_ms = max(ends)
        self._client._submit_decision(self)

    def to_event(self) -> dict[str, Any]:
        """The RoutingDecision as a JSON-ready dict (built on the sender thread).

        Before :meth:`finish` the request latency is measured up to now.
        """
        fields = self.fields
        if "event_id" not in fields:
            fields.setdefault("event_id", new_id())
        if "request_id" not in fields:
            fields.setdefault("request_id", new_id())
        event = dict(fields)
        event["occurred_at"] = iso_ms(self.occurred_at)
        attempts = [a.fields for a in self.attempts]
        event["attempts"] = attempts
        cost = 0.0
        served = None
        for a in attempts:
            outcome = a.get("outcome")
            if outcome != "shadow":
                cost += a.get("cost_usd", 0.0) + a.get("verify_cost_usd", 0.0)
                if outcome == "accepted":
                    served = a
        latency = self.latency_ms
        final: dict[str, Any] = {
            "served": served is not None,
            "latency_ms": (time.perf_counter() - self._started) * 1000.0 if latency is None else latency,
            "cost_usd": cost,
        }
        if served is not None:
            final["tier"] = served["tier"]
            final["model"] = served["model"]
        event["final"] = final
        return event

    def __enter__(self) -> DecisionRecorder:
        self._token = _CURRENT.set(self)
        return self

    def _leave_context(self) -> None:
        token = self._token
        if token is not None:
            self._token = None
            try:
                _CURRENT.reset(token)
            except ValueError:  # exited in another context (e.g. a generator resumed elsewhere)
                _CURRENT.set(None)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._leave_context()
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
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        # Async integrations deliver on this event loop: let them, before the blocking settle in finish().
        for collector in self.collectors or ():
            try:
                await collector.asettle(self)
            except Exception:  # an integration's bug must not break the request
                log.exception("routerwatch: collector %r failed to settle", collector)
        return self.__exit__(exc_type, exc, tb)


# (whole second, its "YYYY-MM-DDTHH:MM:SS" text): events come in bursts within the same
# second, and strftime is most of the cost of a timestamp. Swapped as one tuple, so
# threads never see a half-updated pair.
_iso_second: tuple[int, str] = (-1, "")
_MS_SUFFIX = tuple(f".{ms:03d}Z" for ms in range(1000))


def iso_ms(epoch_seconds: float) -> str:
    """The contract's UTC time text at millisecond precision (``2026-12-07T10:00:00.123Z``), as the
    SDK writes every event's times (the canary prober too)."""
    global _iso_second
    millis = int(epoch_seconds * 1000)
    seconds, ms = divmod(millis, 1000)
    cached = _iso_second
    if cached[0] != seconds:
        cached = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        _iso_second = cached
    return cached[1] + _MS_SUFFIX[ms]


_randbits = random.getrandbits


def new_id() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())`` at a third of the cost.

    The bits come from the ``random`` module, as OpenTelemetry's trace ids do: a
    generator seeded from the OS and reseeded in a forked child, so ids stay unique
    across processes; they only need to be unique, not unpredictable.
    """
    h = "%032x" % (_randbits(128) & 0xFFFFFFFFFFFF0FFF3FFFFFFFFFFFFFFF | 0x40008000000000000000)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
