"""N-of-M detection over canary results: pure functions, probe outcomes in, verdicts out.

A single odd probe is noise (a provider blip, a sampled answer); N bad probes out of the last M
of the same canary is a change. Three signals (docs/design-notes.md section 8):

- **tier flip** (``RouterwatchCanaryTierFlip``): of a canary's last M *answered* probes, at
  least N were served by a tier other than the expected one. Per canary, and per side of the
  routing boundary when at least ``side_min`` canaries and ``side_fraction`` of that side's
  canaries flip together (the side alert inhibits its per-canary alerts in Alertmanager).
- **answer failure** (``RouterwatchCanaryAnswerFailure``): same windows, the answer check failed.
- **no answer** (``RouterwatchCanaryNoAnswer``): of the router's last M probes (all canaries),
  at least N got no usable answer (refused, timed out, HTTP error). A router that answers nothing
  is one alert, not one per canary; probes without an answer count in neither of the others.

Only results inside the caller's lookback window are passed in, so an old flip cannot keep an
alert alive once the canary has not been probed for a long time.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, fmt_labels


@dataclass(frozen=True)
class ProbeOutcome:
    """One stored canary result, as the detectors need it."""

    canary_id: str
    router: str
    occurred_at: datetime
    expected_tier: str
    observed_tier: str | None  # None: no answer
    passed: bool | None  # None: no answer
    side: str = ""
    category: str = ""
    detail: str = ""  # why the check failed
    error: str = ""  # why there was no answer

    @property
    def answered(self) -> bool:
        return not self.error and self.observed_tier is not None

    @property
    def flipped(self) -> bool:
        return self.answered and self.observed_tier != self.expected_tier


class NofM(BaseModel):
    """The N-of-M windows. ``n`` bad probes among the last ``m`` fire an alert."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int = Field(default=3, ge=1, description="Bad probes that fire.")
    m: int = Field(default=5, ge=1, description="Latest probes looked at.")
    side_fraction: float = Field(default=0.5, gt=0, le=1, description="Share of a side's canaries that must fire.")
    side_min: int = Field(default=2, ge=1, description="At least this many canaries for a side-level alert.")

    @model_validator(mode="after")
    def _n_within_m(self) -> NofM:
        if self.n > self.m:
            raise ValueError(f"n ({self.n}) cannot exceed m ({self.m})")
        return self


def detect_canaries(outcomes: Iterable[ProbeOutcome], *, now: datetime, config: NofM = NofM()) -> list[Verdict]:
    """Every canary verdict at ``now``: per canary and per side (flip, answer) and per router (no answer).

    ``outcomes`` may come in any order; only their ``occurred_at`` order matters. A canary with
    fewer than N answered probes yields a silent ``insufficient_volume`` verdict.
    """
    ordered = sorted(outcomes, key=lambda o: o.occurred_at)
    by_canary: dict[tuple[str, str], list[ProbeOutcome]] = defaultdict(list)
    by_router: dict[str, list[ProbeOutcome]] = defaultdict(list)
    for o in ordered:
        by_canary[(o.router, o.canary_id)].append(o)
        by_router[o.router].append(o)

    verdicts: list[Verdict] = []
    sides: dict[tuple[Signal, str, str], list[Verdict]] = defaultdict(list)
    for (router, canary_id), probes in sorted(by_canary.items()):
        answered = [o for o in probes if o.answered][-config.m :]
        last = probes[-1]
        labels = {"router": router, "canary": canary_id, "scope": "canary"}
        if last.side:
            labels["side"] = last.side
        for signal, bad in ((Signal.CANARY_TIER_FLIP, _flipped), (Signal.CANARY_ANSWER_FAILURE, _failed)):
            verdict = _judge(signal, bad, answered, labels, last, now, config)
            verdicts.append(verdict)
            if verdict.evaluated:
                sides[(signal, router, last.side)].append(verdict)
    for (signal, router, side), members in sorted(sides.items()):
        if side:
            verdicts.append(_side_verdict(signal, router, side, members, now, config))
    for router, probes in sorted(by_router.items()):
        verdicts.append(_no_answer(router, probes[-config.m :], now, config))
    return verdicts


def _flipped(o: ProbeOutcome) -> bool:
    return o.flipped


def _failed(o: ProbeOutcome) -> bool:
    return o.answered and o.passed is False


def _judge(
    signal: Signal,
    bad: callable,
    answered: Sequence[ProbeOutcome],
    labels: dict[str, str],
    last: ProbeOutcome,
    now: datetime,
    config: NofM,
) -> Verdict:
    what = fmt_labels(labels)
    if len(answered) < config.n:
        return Verdict(
            signal=signal,
            labels=labels,
            status=Status.INSUFFICIENT_VOLUME,
            evaluated_at=now,
            summary=f"{signal.value} not evaluated for {what}",
            description=f"{len(answered)} answered probe(s) in the window; {config.n} needed",
        )
    hits = [o for o in answered if bad(o)]
    firing = len(hits) >= config.n
    if signal is Signal.CANARY_TIER_FLIP:
        tiers = Counter(o.observed_tier for o in answered)
        seen = ", ".join(f"{t} x{c}" for t, c in tiers.most_common())
        summary = (
            f"canary {last.canary_id} of router {last.router} served off its expected tier "
            f"{last.expected_tier} in {len(hits)} of its last {len(answered)} probes"
        )
        description = (
            f"Canary {last.canary_id} ({last.side or 'no'} side, category {last.category or '-'}) expects tier "
            f"{last.expected_tier}; the last {len(answered)} answered probes were served by: {seen}. "
            f"N-of-M rule: {config.n} of {config.m}."
        )
    else:
        reasons = Counter(o.detail or "check failed" for o in hits)
        worst = "; ".join(f"{r[:160]} (x{c})" for r, c in reasons.most_common(2)) or "none"
        summary = (
            f"canary {last.canary_id} of router {last.router} failed its answer check in {len(hits)} "
            f"of its last {len(answered)} probes"
        )
        description = (
            f"Canary {last.canary_id} ({last.side or 'no'} side, category {last.category or '-'}): "
            f"{len(hits)} of the last {len(answered)} answers failed the check. Reasons: {worst}. "
            f"N-of-M rule: {config.n} of {config.m}."
        )
    return Verdict(
        signal=signal,
        labels=labels,
        firing=firing,
        severity=Severity.CRITICAL,
        statistic=float(len(hits)),
        threshold=float(config.n),
        observed_value=len(hits) / len(answered),
        change_start=hits[0].occurred_at if hits else None,
        evaluated_at=now,
        summary=summary,
        description=description,
        extra={"expected_tier": last.expected_tier, "window": len(answered)},
    )


def _side_verdict(
    signal: Signal, router: str, side: str, members: list[Verdict], now: datetime, config: NofM
) -> Verdict:
    """A side fires when enough of its canaries fire: the boundary itself moved, not one query."""
    firing = [v for v in members if v.firing]
    need = max(config.side_min, math.ceil(config.side_fraction * len(members)))
    labels = {"router": router, "side": side, "scope": "side"}
    names = ", ".join(sorted(v.labels["canary"] for v in firing)) or "none"
    what = "served off their expected tier" if signal is Signal.CANARY_TIER_FLIP else "failed their answer checks"
    starts = [v.change_start for v in firing if v.change_start is not None]
    return Verdict(
        signal=signal,
        labels=labels,
        status=Status.OK if len(members) >= config.side_min else Status.INSUFFICIENT_VOLUME,
        firing=len(members) >= config.side_min and len(firing) >= need,
        severity=Severity.CRITICAL,
        statistic=float(len(firing)),
        threshold=float(need),
        observed_value=len(firing) / len(members),
        change_start=min(starts) if starts else None,
        evaluated_at=now,
        summary=f"{len(firing)} of {len(members)} {side}-side canaries of router {router} {what}",
        description=(
            f"The {side} side of router {router}'s routing boundary: canaries firing: {names}. "
            f"A side fires when at least {need} of its {len(members)} canaries do."
        ),
    )


def _no_answer(router: str, probes: Sequence[ProbeOutcome], now: datetime, config: NofM) -> Verdict:
    labels = {"router": router, "scope": "router"}
    missing = [o for o in probes if not o.answered]
    last_error = missing[-1].error if missing else ""
    return Verdict(
        signal=Signal.CANARY_NO_ANSWER,
        labels=labels,
        status=Status.OK if len(probes) >= config.n else Status.INSUFFICIENT_VOLUME,
        firing=len(missing) >= config.n,
        severity=Severity.CRITICAL,
        statistic=float(len(missing)),
        threshold=float(config.n),
        observed_value=len(missing) / len(probes) if probes else None,
        change_start=missing[0].occurred_at if missing else None,
        evaluated_at=now,
        summary=f"router {router} gave no answer to {len(missing)} of its last {len(probes)} canary probes",
        description=(
            f"Router {router}: {len(missing)} of the last {len(probes)} canary probes got no usable answer. "
            f"Last error: {last_error[:300] or 'none'}. N-of-M rule: {config.n} of {config.m}."
        ),
    )
