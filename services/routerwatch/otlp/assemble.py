"""The trace assembler: spans in, in any order and late; one closed trace out per trace, exactly once.

Pure and single-threaded (the receiver calls it from its event loop); time comes in as ``now``
(seconds on any monotonic clock), so tests drive it with a fake clock.

- A trace opens with its first span. It is **due** ``grace_s`` after its root span (no parent) or
  its router span (``routerwatch.router.id``) arrived, or ``window_s`` after it opened, whichever
  comes first. Exporters send a parent after its children (a span is exported when it ends), so the
  grace only has to cover spans from other processes and batches still in flight.
- :meth:`TraceAssembler.due` closes the due traces: each becomes :class:`Assembled` (the decision's
  bytes), :class:`DeadTrace` (cannot be a valid decision: reason and detail) or :class:`Ignored`
  (no model call and no router span: not routing telemetry).
- Bounds: at most ``max_open_traces`` open traces (a span opening one more is dead-lettered,
  ``otlp_capacity``) and ``max_spans_per_trace`` spans in one (the trace is closed and dead-lettered
  whole, ``otlp_trace_too_large``). Nothing is dropped silently: every span is accepted, a
  duplicate of one accepted (same trace and span id: a redelivery), or dead-lettered.
- Closed traces are remembered (``remember_traces``, oldest forgotten first) with their span ids:
  a span of a closed trace that was already seen is a duplicate, a new one is dead-lettered
  (``otlp_late_span``; or with the trace's own reason when the trace was dead-lettered). A trace
  forgotten and sent again is assembled again with the same event_id, which ingest stores once.
- :meth:`TraceAssembler.flush` closes every open trace now (shutdown).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from routerwatch.otlp.errors import TraceRejected
from routerwatch.otlp.mapping import event_id, is_routing_trace, is_trigger
from routerwatch.otlp.spans import Span

Build = Callable[[str, list[Span]], tuple[bytes, bytes]]
"""trace id, spans -> (Kafka key, the decision's JSON bytes); raises TraceRejected (see mapping.build_decision)."""


@dataclass(frozen=True)
class Assembled:
    trace_id: str
    event_id: str
    key: bytes  # the request id, as the SDK keys decisions
    value: bytes
    spans: int
    trigger: str  # root (root or router span + grace), timeout (window), shutdown (flush)


@dataclass(frozen=True)
class DeadTrace:
    trace_id: str
    reason: str
    detail: str
    spans: list[Span]
    trigger: str = "arrival"  # as for Assembled; arrival: refused as its spans arrived


@dataclass(frozen=True)
class Ignored:
    trace_id: str
    spans: int
    trigger: str


Closed = Assembled | DeadTrace | Ignored


@dataclass
class AddResult:
    """What became of one request's spans: ``accepted + duplicates + rejected`` is their number.

    ``dead``: traces dead-lettered on arrival; a trace that grew too large carries the spans it held
    from earlier requests too (those were accepted then), so its letter holds the whole trace.
    """

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0  # this request's spans dead-lettered on arrival
    dead: list[DeadTrace] = field(default_factory=list)


@dataclass
class _Open:
    opened: float
    spans: dict[str, Span]
    ready_at: float | None = None


class TraceAssembler:
    """See the module docstring. ``build`` turns a trace's spans into decision bytes."""

    def __init__(
        self,
        build: Build,
        *,
        grace_s: float = 2.0,
        window_s: float = 30.0,
        max_open_traces: int = 10_000,
        max_spans_per_trace: int = 256,
        remember_traces: int = 20_000,
    ) -> None:
        self.build = build
        self.grace_s = grace_s
        self.window_s = window_s
        self.max_open_traces = max_open_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.remember_traces = remember_traces
        self._open: dict[str, _Open] = {}
        self._heap: list[tuple[float, str]] = []
        # trace id -> (span ids seen, reason it was dead-lettered with or None when assembled)
        self._closed: OrderedDict[str, tuple[frozenset[str], str | None]] = OrderedDict()

    @property
    def open_traces(self) -> int:
        return len(self._open)

    @property
    def open_spans(self) -> int:
        return sum(len(t.spans) for t in self._open.values())

    def add(self, spans: list[Span], now: float) -> AddResult:
        """Take one request's spans (any traces, any order)."""
        result = AddResult()
        by_trace: dict[str, list[Span]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        for trace_id, group in by_trace.items():
            closed = self._closed.get(trace_id)
            if closed is not None:
                self._late(trace_id, group, closed, result)
                continue
            trace = self._open.get(trace_id)
            if trace is None:
                if len(self._open) >= self.max_open_traces:
                    fresh = _unique(group)
                    result.duplicates += len(group) - len(fresh)
                    result.rejected += len(fresh)
                    self._remember(trace_id, frozenset(s.span_id for s in fresh), "otlp_capacity")
                    result.dead.append(DeadTrace(trace_id, "otlp_capacity", (
                        f"trace {trace_id}: {len(self._open)} traces open (ROUTERWATCH_OTLP__MAX_OPEN_TRACES="
                        f"{self.max_open_traces}); its spans are dead-lettered, later ones too"), fresh))
                    continue
                trace = self._open[trace_id] = _Open(now, {})
                heapq.heappush(self._heap, (now + self.window_s, trace_id))
            held = trace.spans
            taken = 0
            for span in group:
                if span.span_id in held:
                    result.duplicates += 1
                    continue
                held[span.span_id] = span
                taken += 1
                if trace.ready_at is None and is_trigger(span):
                    trace.ready_at = now + self.grace_s
                    heapq.heappush(self._heap, (trace.ready_at, trace_id))
            if len(held) <= self.max_spans_per_trace:
                result.accepted += taken
            else:
                result.rejected += taken
                del self._open[trace_id]
                spans_held = list(held.values())
                self._remember(trace_id, frozenset(held), "otlp_trace_too_large")
                result.dead.append(DeadTrace(trace_id, "otlp_trace_too_large", (
                    f"trace {trace_id}: more than {self.max_spans_per_trace} spans "
                    "(ROUTERWATCH_OTLP__MAX_SPANS_PER_TRACE); dead-lettered whole, later spans too"), spans_held))
        return result

    def next_due(self) -> float | None:
        """When the earliest open trace is due (None when none is open)."""
        while self._heap and self._heap[0][1] not in self._open:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[Closed]:
        """Close and return every trace due at ``now``."""
        out: list[Closed] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, trace_id = heapq.heappop(heap)
            trace = self._open.get(trace_id)
            if trace is None:
                continue  # closed already (an older heap entry of a trace that became ready)
            ready = trace.ready_at is not None and trace.ready_at <= now
            if not ready and trace.opened + self.window_s > now:
                continue  # a stale entry; the trace's own entry is still in the heap
            out.append(self._close(trace_id, "root" if ready else "timeout"))
        return out

    def flush(self) -> list[Closed]:
        """Close every open trace now (assembled when valid, else dead-lettered)."""
        out = [self._close(trace_id, "shutdown") for trace_id in list(self._open)]
        self._heap.clear()
        return out

    def _close(self, trace_id: str, trigger: str) -> Closed:
        trace = self._open.pop(trace_id)
        spans = list(trace.spans.values())
        if not is_routing_trace(spans):
            self._remember(trace_id, frozenset(trace.spans), None)
            return Ignored(trace_id, len(spans), trigger)
        try:
            key, value = self.build(trace_id, spans)
        except TraceRejected as exc:
            self._remember(trace_id, frozenset(trace.spans), exc.reason)
            return DeadTrace(trace_id, exc.reason, exc.detail, spans, trigger)
        except Exception as exc:  # noqa: BLE001 - no trace may stop the receiver, whatever it makes the mapping do
            self._remember(trace_id, frozenset(trace.spans), "otlp_invalid")
            return DeadTrace(trace_id, "otlp_invalid", f"trace {trace_id}: {type(exc).__name__}: {exc}"[:2000], spans, trigger)
        self._remember(trace_id, frozenset(trace.spans), None)
        return Assembled(trace_id, event_id(trace_id), key, value, len(spans), trigger)

    def _late(self, trace_id: str, group: list[Span], closed: tuple[frozenset[str], str | None], result: AddResult) -> None:
        seen, reason = closed
        late = [s for s in _unique(group) if s.span_id not in seen]
        result.duplicates += len(group) - len(late)
        result.rejected += len(late)
        if not late:
            return
        self._remember(trace_id, seen | {s.span_id for s in late}, reason)
        if reason is None:
            result.dead.append(DeadTrace(trace_id, "otlp_late_span", (
                f"trace {trace_id}: {len(late)} span(s) arrived after the trace was assembled "
                f"(grace {self.grace_s}s after its root, window {self.window_s}s)"), late))
        else:
            result.dead.append(DeadTrace(trace_id, reason, f"trace {trace_id}: span(s) of a trace dead-lettered as {reason}", late))

    def _remember(self, trace_id: str, span_ids: frozenset[str], reason: str | None) -> None:
        if self.remember_traces <= 0:
            return
        self._closed[trace_id] = (span_ids, reason)
        self._closed.move_to_end(trace_id)
        while len(self._closed) > self.remember_traces:
            self._closed.popitem(last=False)


def _unique(spans: list[Span]) -> list[Span]:
    seen: dict[str, Span] = {}
    for s in spans:
        seen.setdefault(s.span_id, s)
    return list(seen.values())

