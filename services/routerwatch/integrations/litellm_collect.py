"""Grouping of LiteLLM deployment calls into routerwatch requests (no LiteLLM import here).

Two ways a call finds its request:

* inside ``with rw.decision(...)`` (or ``async with``): the decision is the request (a cascade
  makes several LiteLLM calls in one). The call is registered to it when it starts, from the
  context; its outcome may arrive later on another thread (LiteLLM runs sync success callbacks
  on a thread pool, async ones as tasks after the call returned), so leaving the block waits,
  bounded, for every call that started and has not reported yet.
* outside any block: one LiteLLM call (its ``litellm_trace_id``: a Router call's whole retry and
  fallback walk) is the request. It is emitted as served as soon as its successful call and every
  other call it started have reported; a walk that only failed is emitted as not served once it
  has been quiet for ``unserved_after_s`` (LiteLLM has no "walk failed" callback).

Each deployment call becomes one attempt, recorded once (LiteLLM may deliver the same outcome to
a sync and an async hook: the call id dedups). Events for a request already emitted are counted
as ``late_events`` and dropped, never made into a second request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from routerwatch.integrations.litellm_mapping import CallRecord, route_from_routing_decision
from routerwatch.sdk.recorder import DecisionRecorder, current_decision

if TYPE_CHECKING:
    from routerwatch.sdk.client import RouterWatch

log = logging.getLogger("routerwatch.integrations.litellm")

_DONE_REMEMBERED = 100_000  # emitted request ids kept to recognise late events
# The contract's limit on attempts per request (routerwatch.events.models.MAX_ATTEMPTS), restated
# so that the router's process needs no pydantic models here.
MAX_ATTEMPTS_HINT = 32


class _Trace:
    """One LiteLLM call (a trace id): its deployment calls, pending (None) or reported."""

    __slots__ = ("trace_id", "scope", "calls", "last", "succeeded")

    def __init__(self, trace_id: str, scope: _Scope | None) -> None:
        self.trace_id = trace_id
        self.scope = scope
        self.calls: dict[str, CallRecord | None] = {}
        self.last = time.monotonic()
        self.succeeded = False

    def pending(self) -> int:
        return sum(1 for record in self.calls.values() if record is None)


class _Scope:
    """The calls of one ``with rw.decision(...)`` block: a :class:`routerwatch.sdk.Collector`."""

    def __init__(self, tracker: Tracker, decision: DecisionRecorder) -> None:
        self.tracker = tracker
        self.decision = decision
        self.traces: list[_Trace] = []
        self.verdicts: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self.waited = False  # asettle already waited: settle must not block the event loop again

    def pending(self) -> int:
        return sum(trace.pending() for trace in self.traces)

    # -- the Collector protocol (called by the SDK) -------------------------------------

    def reject(self, decision: DecisionRecorder, reason: str, gate: dict[str, Any], extra: dict[str, Any]) -> bool:
        tracker = self.tracker
        with tracker._cond:
            if not self.traces:
                return False
            trace = self.traces[-1]
            if trace.trace_id in self.verdicts:
                tracker._count("repeated_rejections")
                return True
            self.verdicts[trace.trace_id] = (reason, gate, extra)
        return True

    def settle(self, decision: DecisionRecorder) -> None:
        tracker = self.tracker
        deadline = time.monotonic() + (0.0 if self.waited else tracker.settle_timeout_s)
        with tracker._cond:
            while self.pending():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                tracker._cond.wait(left)
            records, unsettled = tracker._close_traces(self.traces)
        if unsettled:
            tracker._count("unsettled_calls", unsettled)
        tracker._fill_scoped(decision, self, records)

    async def asettle(self, decision: DecisionRecorder) -> None:
        tracker = self.tracker
        deadline = time.monotonic() + tracker.settle_timeout_s
        pause = 0.0
        # The outcomes come as tasks on this loop (or from LiteLLM's thread pool): yield until
        # they are in, polling gently, never past the deadline.
        while time.monotonic() < deadline:
            with tracker._cond:  # calls are added from LiteLLM's executor threads too
                if not self.pending():
                    break
            await asyncio.sleep(pause)
            pause = min(0.02, pause * 2 or 0.0005)
        self.waited = True


class Tracker:
    """Everything the LiteLLM logger holds, fed by its hooks; thread-safe.

    ``rw`` emits the fallback-mode requests (calls outside any ``with rw.decision``); with
    ``scoped_only`` such calls are ignored (counted as ``unscoped_calls``).
    """

    def __init__(
        self,
        rw: RouterWatch | None,
        *,
        tiers: Mapping[str, int] | None = None,
        settle_timeout_s: float = 5.0,
        unserved_after_s: float = 30.0,
        max_call_s: float = 900.0,
        scoped_only: bool = False,
    ) -> None:
        if rw is None and not scoped_only:
            raise ValueError("give the RouterWatch client that emits fallback-mode requests, or scoped_only=True")
        self.rw = rw
        self.tiers = dict(tiers or {})
        self.settle_timeout_s = settle_timeout_s
        self.unserved_after_s = unserved_after_s
        self.max_call_s = max_call_s
        self.scoped_only = scoped_only
        self._cond = threading.Condition(threading.RLock())
        self._traces: dict[str, _Trace] = {}
        self._done: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._stats: collections.Counter[str] = collections.Counter()
        self._reaper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._closed = False

    # -- hooks ---------------------------------------------------------------------------

    def started(self, call_id: str, trace_id: str | None) -> None:
        """A deployment call is about to be made (LiteLLM's pre-call hook, on the caller's context)."""
        tid = trace_id or call_id
        decision = current_decision()
        with self._cond:
            if tid in self._done:
                self._count("late_events")
                return
            trace = self._traces.get(tid) or self._open(tid, decision)
            if trace is None:
                return
            trace.calls.setdefault(call_id, None)
            trace.last = time.monotonic()

    def finished(self, record: CallRecord) -> None:
        """A deployment call reported its outcome (success or failure hook, any thread)."""
        tid = record.trace_id or record.call_id
        emit: _Trace | None = None
        with self._cond:
            self._count("calls_succeeded" if record.ok else "calls_failed")
            if tid in self._done:
                self._count("late_events")
                return
            trace = self._traces.get(tid) or self._open(tid, current_decision())
            if trace is None:
                return
            if trace.calls.get(record.call_id) is not None:
                self._count("duplicate_events")
                return
            trace.calls[record.call_id] = record
            trace.last = time.monotonic()
            if record.ok:
                trace.succeeded = True
            self._cond.notify_all()
            if trace.scope is None and trace.succeeded and not trace.pending():
                emit = trace
                self._forget(trace)
        if emit is not None:
            self._emit_trace(emit)

    def _open(self, tid: str, decision: DecisionRecorder | None) -> _Trace | None:
        # Under the lock.
        scope = None
        if decision is not None and not decision._closed:
            for collector in decision.collectors or ():
                if isinstance(collector, _Scope) and collector.tracker is self:
                    scope = collector
                    break
            else:
                scope = _Scope(self, decision)
                decision.attach(scope)
        elif self.scoped_only:
            self._count("unscoped_calls")
            return None
        trace = _Trace(tid, scope)
        self._traces[tid] = trace
        if scope is not None:
            scope.traces.append(trace)
        else:
            self._start_reaper()
        return trace

    def _forget(self, trace: _Trace) -> None:
        # Under the lock.
        self._traces.pop(trace.trace_id, None)
        done = self._done
        done[trace.trace_id] = None
        if len(done) > _DONE_REMEMBERED:
            done.popitem(last=False)

    def _close_traces(self, traces: list[_Trace]) -> tuple[list[tuple[_Trace, CallRecord]], int]:
        # Under the lock: the reported calls of these traces, and how many never reported.
        records = []
        unsettled = 0
        for trace in traces:
            self._forget(trace)
            for record in trace.calls.values():
                if record is None:
                    unsettled += 1
                else:
                    records.append((trace, record))
        return records, unsettled

    # -- fallback mode: one LiteLLM call = one request ---------------------------------------

    def _emit_trace(self, trace: _Trace, unsettled: int = 0) -> None:
        try:
            records = [r for r in trace.calls.values() if r is not None]
            unsettled = unsettled or sum(1 for r in trace.calls.values() if r is None)
            if unsettled:
                self._count("unsettled_calls", unsettled)
            if not records or self.rw is None:
                return
            records.sort(key=lambda r: r.start)
            begin = records[0].start
            hints = {}
            routing = None
            for record in records:
                hints = {**record.hints, **hints}
                routing = routing or record.routing_decision
            decision = self.rw.decision(
                request_id=trace.trace_id,
                occurred_at=begin,
                category=hints.get("category", "default"),
                tenant=hints.get("tenant"),
                route=route_from_routing_decision(routing),
            )
            served = _last_success(records)
            ordered = [r for r in records if r is not served] + ([served] if served is not None else [])
            ordered = self._truncate(ordered)
            ranks = _order_ranks(records, by_depth=True)
            for record in ordered:
                attempt = decision.attempt(
                    record.tier or "unknown",
                    tier_rank=record.tier_rank if record.tier_rank is not None else ranks.get(record.tier, 0),
                    model=record.model,
                    provider=record.provider,
                    offset_ms=(record.start - begin) * 1000.0,
                )
                _finish_attempt(self, attempt, record, accepted=record is served, verdict=None)
            end = max(r.end for r in records)
            decision.finish(latency_ms=(end - begin) * 1000.0)
            self._count("requests_emitted")
        except Exception:  # never break the router; counted
            self._count("errors")
            log.exception("routerwatch: could not emit the request of LiteLLM trace %s", trace.trace_id)

    def _truncate(self, ordered: list[CallRecord]) -> list[CallRecord]:
        if len(ordered) <= MAX_ATTEMPTS_HINT:
            return ordered
        self._count("attempts_truncated", len(ordered) - MAX_ATTEMPTS_HINT)
        # Keep the end of the walk: the served call and the failures just before it.
        return ordered[-MAX_ATTEMPTS_HINT:]

    # -- scope mode: a with-block = one request -----------------------------------------------

    def _fill_scoped(self, decision: DecisionRecorder, scope: _Scope, records: list[tuple[_Trace, CallRecord]]) -> None:
        try:
            if not records:
                return
            records.sort(key=lambda tr: tr[1].start)
            begin = decision.occurred_at
            # Each LiteLLM call (trace) gave at most one answer: its last successful deployment call.
            answers: dict[str, CallRecord] = {}
            for trace, record in records:
                if record.ok:
                    answers[trace.trace_id] = record
            answer_ids = {id(r): tid for tid, r in answers.items()}
            served = None
            for trace, record in reversed(records):
                if record.ok and answer_ids.get(id(record)) is not None and trace.trace_id not in scope.verdicts:
                    served = record
                    break
            if "route" not in decision.fields:
                for _, record in records:
                    route = route_from_routing_decision(record.routing_decision)
                    if route is not None:
                        decision.fields["route"] = route
                        break
            ranks = _order_ranks([r for _, r in records], by_depth=False)
            collected = []
            for trace, record in records:
                tid = answer_ids.get(id(record))
                verdict = scope.verdicts.get(tid) if tid is not None else None
                if record.ok and tid is None:
                    # A success the same LiteLLM call superseded (e.g. a stream that failed over).
                    verdict = ("other", None, {})
                elif record.ok and verdict is None and record is not served:
                    # An answer the router moved on from without stating why (no d.reject()).
                    self._count("unexplained_escalations")
                    verdict = ("other", None, {})
                attempt = decision.attempt(
                    record.tier or "unknown",
                    tier_rank=record.tier_rank if record.tier_rank is not None else ranks.get(record.tier, 0),
                    model=record.model,
                    provider=record.provider,
                    offset_ms=max(0.0, (record.start - begin) * 1000.0),
                )
                _finish_attempt(self, attempt, record, accepted=record is served, verdict=verdict)
                collected.append(attempt)
            # Attempts recorded by hand and collected ones, in start order; the served one last
            # (the contract wants nothing after the accepted attempt).
            attempts = sorted(decision.attempts, key=lambda a: a.fields["offset_ms"])
            accepted = [a for a in attempts if a.fields.get("outcome") == "accepted"]
            if len(accepted) == 1:
                attempts.remove(accepted[0])
                attempts.append(accepted[0])
            if len(attempts) > MAX_ATTEMPTS_HINT:
                self._count("attempts_truncated", len(attempts) - MAX_ATTEMPTS_HINT)
                attempts = attempts[-MAX_ATTEMPTS_HINT:]
            for index, attempt in enumerate(attempts):
                attempt.fields["index"] = index
            decision.attempts[:] = attempts
            self._count("requests_settled")
        except Exception:  # never break the router; counted
            self._count("errors")
            log.exception("routerwatch: could not add LiteLLM calls to request %s", decision.fields.get("request_id"))

    # -- reaping quiet fallback walks -------------------------------------------------------

    def _start_reaper(self) -> None:
        if self._reaper is None and not self._closed:
            self._reaper = threading.Thread(target=self._reap_loop, name="routerwatch-litellm", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        tick = max(0.05, min(1.0, self.unserved_after_s / 4))
        while not self._stopping.wait(tick):
            self.reap()

    def reap(self, *, now: float | None = None, force: bool = False) -> int:
        """Emit the fallback-mode requests that are over: quiet walks (not served) and stuck ones.

        ``force`` emits every walk with nothing pending at once (shutdown). Returns how many were emitted.
        """
        now = time.monotonic() if now is None else now
        ready = []
        with self._cond:
            for trace in list(self._traces.values()):
                if trace.scope is not None:
                    continue
                pending = trace.pending()
                quiet = now - trace.last
                if (not pending and (force or quiet >= self.unserved_after_s or trace.succeeded)) or (
                    pending and quiet >= self.max_call_s
                ):
                    self._forget(trace)
                    ready.append(trace)
        for trace in ready:
            self._emit_trace(trace)
        return len(ready)

    def open_walks(self) -> int:
        """Fallback-mode requests held (calls outside any ``with`` block not emitted yet)."""
        with self._cond:
            return sum(1 for t in self._traces.values() if t.scope is None)

    def _walks_pending(self) -> int:
        with self._cond:
            return sum(t.pending() for t in self._traces.values() if t.scope is None)

    def flush(self, timeout: float = 5.0) -> int:
        """Wait (at most ``timeout`` s) for the calls in flight to report, then emit every held walk.

        A walk that failed so far is emitted as not served, so call this at shutdown, not while
        requests are running. Returns how many requests were emitted.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._walks_pending() and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
        return self.reap(force=True)

    async def aflush(self, timeout: float = 5.0) -> int:
        """:meth:`flush` for async routers: waits on the event loop (LiteLLM's async callbacks run there)."""
        deadline = time.monotonic() + timeout
        pause = 0.0
        while self._walks_pending() and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(0.02, pause * 2 or 0.0005)
        return self.reap(force=True)

    def close(self, timeout: float = 5.0) -> None:
        """Flush and stop the reaper thread. Safe twice."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._stopping.set()
        if self._reaper is not None:
            self._reaper.join(2.0)

    # -- counters ------------------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self._stats[key] += n

    def stats(self) -> dict[str, int]:
        """Counters: ``calls_succeeded``, ``calls_failed``, ``requests_emitted`` (fallback mode),
        ``requests_settled`` (with-blocks), ``errors`` (swallowed), ``late_events``,
        ``duplicate_events``, ``unsettled_calls`` (started, never reported in time),
        ``unexplained_escalations``, ``repeated_rejections``, ``attempts_truncated``, ``unscoped_calls``."""
        with self._cond:
            return dict(self._stats)


def _last_success(records: list[CallRecord]) -> CallRecord | None:
    for record in reversed(records):
        if record.ok:
            return record
    return None


def _order_ranks(records: list[CallRecord], *, by_depth: bool) -> dict[str | None, int]:
    """Ranks for tiers nothing named a rank for: the fallback depth of the walk (fallback mode),
    else the order in which the request first used them."""
    ranks: dict[str | None, int] = {}
    for record in records:
        if record.tier_rank is not None or record.tier in ranks:
            continue
        if by_depth and record.fallback_depth is not None:
            ranks[record.tier] = min(record.fallback_depth, 255)
        else:
            ranks[record.tier] = min(len(ranks), 255)
    return ranks


def _finish_attempt(
    tracker: Tracker,
    attempt: Any,
    record: CallRecord,
    *,
    accepted: bool,
    verdict: tuple[str, dict[str, Any] | None, dict[str, Any]] | None,
) -> None:
    latency = record.latency_ms
    if not record.ok:
        attempt.fail(record.failure_mode or "other", latency_ms=latency, cost_usd=record.cost_usd)
    elif accepted:
        attempt.accept(
            latency_ms=latency,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cost_usd=record.cost_usd,
            ttft_ms=record.ttft_ms,
            cache_hit=record.cache_hit or None,
        )
    else:
        reason, gate, extra = verdict if verdict is not None else ("other", None, {})
        attempt.escalate(
            reason,
            latency_ms=latency,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cost_usd=record.cost_usd,
            ttft_ms=record.ttft_ms,
            gate=gate,
            **extra,
        )
