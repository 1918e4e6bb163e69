"""Per-tier Prometheus metrics from the routing decisions the ingest path stores.

:func:`observe_stored` is called by :class:`~routerwatch.ingest.processor.BatchProcessor`
after a batch is stored, with the sink's report: only the decisions inserted for
the first time are observed, so a Kafka redelivery, a replay or a router
re-emitting an event never inflates a counter. The metrics themselves are
declared in :mod:`routerwatch.metrics`.

What goes where (vocabulary of docs/design-notes.md section 2):

- every attempt: ``routerwatch_attempts_total{tier,category,outcome}`` and
  ``routerwatch_attempt_duration_seconds{tier,outcome}`` (model call plus its
  gate or verifier: the time the attempt cost the request). Shadow attempts are
  counted here with ``outcome="shadow"`` and nowhere else.
- non-shadow attempts: model and verifier cost by tier; escalated ones in
  ``routerwatch_escalations_total``, failed ones in
  ``routerwatch_attempt_failures_total``.
- every request: ``routerwatch_requests_total{final_tier}`` and
  ``routerwatch_request_duration_seconds{path}`` with path ``escalated`` (at least
  one escalation, whether or not an answer was served in the end), ``kept``
  (served by its entry tier, no escalation) or ``other`` (no escalation, and not
  served or moved to another tier by failures only). These are the SQL's paths
  (``request_minute.path``, migration 0003) and docs/design-notes.md's definitions, so
  the escalated requests counted here and by the views (``request_latency``,
  ``routing_mix``, ``tenant_scoreboard``) are the same requests.
- canary probes (``canary_id`` set) only in ``routerwatch_canary_decisions_total``.

The ``category`` label is bounded by a :class:`LabelCap`, so a router sending
free-form categories cannot grow the number of series without limit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from typing import Any, Sequence

from routerwatch import metrics
from routerwatch.events.models import RoutingDecision
from routerwatch.events.vocabulary import Outcome

log = logging.getLogger("routerwatch.ingest")

DEFAULT_LABEL_LIMIT = 50
OVERFLOW = "other"
NOT_SERVED = "not_served"
KEPT, ESCALATED, OTHER = "kept", "escalated", "other"

_SHADOW, _ESCALATED, _FAILED = Outcome.SHADOW, Outcome.ESCALATED, Outcome.FAILED


class LabelCap:
    """Bounds the distinct values of one label in this process.

    The first ``limit`` distinct values pass through unchanged; every value first
    seen after that is reported as ``overflow`` (``"other"``), for as long as the
    process lives. Thread-safe: the admitted values are an immutable frozenset,
    replaced under a lock when a value is admitted, so the common case (a known
    value) is a single membership test without locking.
    """

    __slots__ = ("limit", "overflow", "_admitted", "_lock")

    def __init__(self, limit: int = DEFAULT_LABEL_LIMIT, overflow: str = OVERFLOW) -> None:
        if limit < 0:
            raise ValueError(f"label cap must be >= 0, got {limit}")
        self.limit = limit
        self.overflow = overflow
        self._admitted: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        """``value`` if it is (or can still be) admitted, else ``overflow``."""
        if value in self._admitted:
            return value
        with self._lock:
            admitted = self._admitted
            if value in admitted:
                return value
            if len(admitted) >= self.limit:
                return self.overflow
            # Copying is O(limit), and happens at most `limit` times per process.
            self._admitted = admitted | {value}
            return value

    @property
    def admitted(self) -> frozenset[str]:
        """The values that pass through unchanged."""
        return self._admitted


# The process-wide cap on distinct `category` label values; see configure().
CATEGORIES = LabelCap(DEFAULT_LABEL_LIMIT)


def configure(max_categories: int = DEFAULT_LABEL_LIMIT) -> None:
    """Set the per-process cap on distinct ``category`` values (forgets those admitted so far).

    Call once at start-up, before ingest begins; values already exported keep their series.
    """
    global CATEGORIES
    CATEGORIES = LabelCap(max_categories)


def observe_stored(kind: str, report: Any) -> None:
    """Observe what one store call inserted for the first time.

    Called by the batch processor after the sink stored a batch of ``kind``;
    only decisions feed these metrics, through the report's ``fresh_decisions``.
    Never raises (see :func:`observe_decisions`).
    """
    if kind == "decision":
        fresh = getattr(report, "fresh_decisions", None) or ()
        observe_decisions(fresh)
        now = time.time()
        observe_many(metrics.INGEST_DELAY_SECONDS, [max(0.0, now - d.occurred_at.timestamp()) for d in fresh])


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each value, with one increment per bucket touched.

    Same result as observing one by one (sum and bucket counts), at a fraction of the cost
    for the tens of thousands of values a batch brings: no lock and no bucket search per value.
    """
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:  # pragma: no cover - a prometheus_client without these internals
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        # Buckets are "le" upper bounds, the last one +Inf: bisect_left finds the first bound >= value.
        counts[bisect_left(bounds, value)] += 1
    total.inc(math.fsum(values))
    for index, n in enumerate(counts):
        if n:
            buckets[index].inc(n)


def observe_decisions(decisions: Sequence[RoutingDecision], *, categories: LabelCap | None = None) -> None:
    """Update the per-tier metrics with ``decisions``, each exactly once.

    One pass over the attempts: counters are summed per label set locally and
    incremented once per label set and call; histograms are observed per attempt
    through label children looked up once per call. ``categories`` defaults to
    the process-wide :data:`CATEGORIES` cap.

    Never raises: the batch is already stored when this runs, and a bug in the
    telemetry must not stop ingestion (which would redeliver the batch and,
    since the events are then duplicates, still not observe them). It logs instead.
    """
    if not decisions:
        return
    try:
        _observe(decisions, CATEGORIES if categories is None else categories)
    except Exception:  # see the docstring
        log.exception("per-tier metrics: could not observe %d stored decisions", len(decisions))


def _observe(decisions: Sequence[RoutingDecision], categories: LabelCap) -> None:
    attempts: dict[tuple[str, str, str], int] = {}
    escalations: dict[tuple[str, str, str], int] = {}
    failures: dict[tuple[str, str], int] = {}
    model_cost: dict[str, float] = {}
    verifier_cost: dict[str, float] = {}
    requests: dict[str, int] = {}
    attempt_seconds: dict[tuple[str, str], list[float]] = {}
    request_seconds: dict[str, list[float]] = {}
    canaries = 0
    overflowed = 0

    for d in decisions:
        if d.canary_id is not None:
            canaries += 1
            continue
        category = categories(d.category)
        if category != d.category:
            overflowed += 1
        entry_tier: str | None = None
        escalated = False
        for a in d.attempts:
            tier = a.tier
            outcome = a.outcome
            # _value_ is the plain string; Enum's .value property costs a descriptor call per attempt.
            name = outcome._value_
            key = (tier, category, name)
            attempts[key] = attempts.get(key, 0) + 1
            hkey = (tier, name)
            avalues = attempt_seconds.get(hkey)
            if avalues is None:
                avalues = attempt_seconds[hkey] = []
            avalues.append((a.latency_ms + a.verify_latency_ms) / 1000.0)
            if outcome is _SHADOW:
                continue
            if entry_tier is None:
                entry_tier = tier
            model_cost[tier] = model_cost.get(tier, 0.0) + a.cost_usd
            verifier_cost[tier] = verifier_cost.get(tier, 0.0) + a.verify_cost_usd
            if outcome is _ESCALATED:
                escalated = True
                ekey = (tier, category, a.escalation_reason._value_)  # type: ignore[union-attr]
                escalations[ekey] = escalations.get(ekey, 0) + 1
            elif outcome is _FAILED:
                fkey = (tier, a.failure_mode._value_)  # type: ignore[union-attr]
                failures[fkey] = failures.get(fkey, 0) + 1
        final = d.final
        final_tier = final.tier if final.served else NOT_SERVED  # type: ignore[assignment]
        # An escalated request is one with at least one escalation, served or not (docs/design-notes.md
        # section 2; SQL's path): a request escalated and then left unserved is escalated here too.
        path = ESCALATED if escalated else KEPT if final.served and final_tier == entry_tier else OTHER
        requests[final_tier] = requests.get(final_tier, 0) + 1
        rvalues = request_seconds.get(path)
        if rvalues is None:
            rvalues = request_seconds[path] = []
        rvalues.append(final.latency_ms / 1000.0)

    for hkey, avalues in attempt_seconds.items():
        observe_many(metrics.ATTEMPT_SECONDS.labels(*hkey), avalues)
    for path, rvalues in request_seconds.items():
        observe_many(metrics.REQUEST_SECONDS.labels(path), rvalues)
    for key, n in attempts.items():
        metrics.ATTEMPTS.labels(*key).inc(n)
    for key, n in escalations.items():
        metrics.ESCALATIONS.labels(*key).inc(n)
    for fkey, n in failures.items():
        metrics.FAILURES.labels(*fkey).inc(n)
    for tier, usd in model_cost.items():
        metrics.MODEL_COST.labels(tier).inc(usd)
    for tier, usd in verifier_cost.items():
        metrics.VERIFIER_COST.labels(tier).inc(usd)
    for final_tier, n in requests.items():
        metrics.REQUESTS.labels(final_tier).inc(n)
    if canaries:
        metrics.CANARY_DECISIONS.inc(canaries)
    if overflowed:
        metrics.LABEL_OVERFLOW.labels("category").inc(overflowed)
