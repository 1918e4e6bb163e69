"""One scheduler tick: read the series, run every detector, return verdicts.

Stateless on purpose: each tick re-reads ``lookback_minutes`` of per-minute
counts (and ``hourly_lookback_hours`` of hourly ones for the hourly CUSUMs of
wobbly series, which need days) and runs the CUSUMs from zero over them, so a restarted scheduler
reaches the same verdicts as one that never stopped, and the code path is the
one a replay of history takes. Baselines come from ClickHouse; with
``auto_baseline`` a series that has none gets its first one learned from the
preceding ``baseline_window_hours`` (until then its detectors say
``no_baseline``) as soon as it has ``baseline_min_trials`` trials over at least
an hour of its own history. The learned volume is per minute of that history
(from the series' first trial in the window), not per minute of the whole
window, so a deployment whose traffic began with serve is judged at its real
volume from its first hour on instead of freezing a baseline below ``min_volume``.
Each learned baseline also carries the series' hour-level random-effect sd
(``hour_sd``, from the window's clock hours), which the category escalation
CUSUMs are designed for.

One series never stops the run: each detector call judges one series (or one
tier, router, experiment) under :func:`_judge`, which logs an exception with
the series key, counts it in ``routerwatch_detector_series_errors_total`` and
lists it in :attr:`Evaluation.errors`, and goes on with the next series. Store
reads are outside it: a failed read fails the run, which the schedule retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from routerwatch import metrics
from routerwatch.drift.baseline import Baseline, learn_baseline
from routerwatch.drift.burn_rate import evaluate_burn_rate
from routerwatch.drift.confound import detect_experiment_confound
from routerwatch.drift.pipeline import detect_silent_routers
from routerwatch.drift.rate_drift import DriftConfig, FalseAlarmBudget, detect_rate_drift
from routerwatch.drift.risk_adjusted import detect_tier_drift
from routerwatch.drift.shadow import detect_shadow_quality
from routerwatch.drift.surge import SurgeConfig, detect_surge
from routerwatch.drift.tenant import TenantCounts, detect_tenant_anomalies
from routerwatch.drift.verdict import Severity, Signal, Verdict
from routerwatch.scheduler import series
from routerwatch.scheduler.baselines import series_key

log = logging.getLogger("routerwatch.scheduler")


@dataclass(frozen=True)
class SeriesError:
    """A series a detector failed on: its signal, its series key (``k=v,...``) and the exception as text."""

    signal: str
    series: str
    error: str


@dataclass
class Evaluation:
    """What one tick found: every verdict, baselines learned during the tick (to be saved), failed series."""

    now: datetime
    verdicts: list[Verdict] = field(default_factory=list)
    learned: dict[str, list[Baseline]] = field(default_factory=dict)
    errors: list[SeriesError] = field(default_factory=list)
    #: The fleet's false-alarm budget this tick shared among the CUSUMs it ran (None before they ran).
    budget: FalseAlarmBudget | None = None

    @property
    def firing(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.firing]


def _judge(
    evaluation: Evaluation, signal: Signal, labels: dict[str, str], judge: Callable[[], Verdict | list[Verdict]]
) -> None:
    """Add ``judge()``'s verdicts to ``evaluation``; if it raises, record the failed series and return.

    The exception is logged with the series key, counted in
    ``routerwatch_detector_series_errors_total{signal}`` and appended to
    ``evaluation.errors``; nothing is re-raised, so the caller goes on with the
    next series and the verdicts (and alerts) of every other series stand.
    """
    try:
        result = judge()
    except Exception as exc:  # docs/design-notes.md section 9: no single series can stop the detectors
        key = series_key(labels)
        log.exception("%s detector failed on series %s; the other series are still judged", signal.value, key)
        metrics.DETECTOR_SERIES_ERRORS.labels(signal.value).inc()
        evaluation.errors.append(SeriesError(signal.value, key, f"{type(exc).__name__}: {exc}"))
        return
    if isinstance(result, Verdict):
        evaluation.verdicts.append(result)
    else:
        evaluation.verdicts += result


def _labels(keys: tuple[str, ...], values: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in zip(keys, values) if v != ""}


def _baseline_for(
    signal: Signal,
    labels: dict[str, str],
    baselines: dict[tuple[str, str], Baseline],
    history: dict[Any, list] | None,
    key: Any,
    evaluation: Evaluation,
    cfg: Any,
    window: tuple[datetime, datetime],
) -> Baseline | None:
    found = baselines.get((signal.value, series_key(labels)))
    if found is not None or history is None or not cfg.auto_baseline:
        return found
    learned = learn_baseline(
        history.get(key, []), labels=labels, min_trials=cfg.baseline_min_trials, start=window[0], end=window[1]
    )
    if learned is not None:
        evaluation.learned.setdefault(signal.value, []).append(learned)
        baselines[(signal.value, series_key(labels))] = learned
    return learned


# The rate series with learned baselines: the signal, how to read its per-minute counts, its label names.
RATE_SERIES: dict[Signal, tuple[Any, tuple[str, ...]]] = {
    Signal.ESCALATION_DRIFT: (series.escalation_series, ("router", "tier", "category")),
    Signal.FAILURE_SHIFT: (series.failure_series, ("router", "tier", "failure_mode")),
}


def learn_all(reader: Any, since: datetime, until: datetime, min_trials: int) -> dict[str, list[Baseline]]:
    """Learn a baseline for every rate series with enough history in [since, until).

    The tier surge detector's baselines too (each tier's categories pooled), as the scheduler's
    automatic first learning does: re-baselining after an intended change covers every signal.
    """
    out: dict[str, list[Baseline]] = {}
    escalations = None
    for signal, (fetch, keys) in RATE_SERIES.items():
        history = fetch(reader, since, until)
        if signal is Signal.ESCALATION_DRIFT:
            escalations = history
        for key, counts in history.items():
            learned = learn_baseline(counts, labels=_labels(keys, key), min_trials=min_trials, start=since, end=until)
            if learned is not None:
                out.setdefault(signal.value, []).append(learned)
    for key, categories in series.tier_series(escalations or {}).items():
        labels = _labels(("router", "tier"), key)
        learned = learn_baseline(series.pooled(categories), labels=labels, min_trials=min_trials, start=since, end=until)
        if learned is not None:
            out.setdefault(Signal.ESCALATION_SURGE.value, []).append(learned)
    return out


def evaluate(reader: Any, baselines: dict[tuple[str, str], Baseline], now: datetime, cfg: Any) -> Evaluation:
    """Run the detectors for the minute ending at ``now`` (a whole minute, UTC)."""
    evaluation = Evaluation(now=now)
    start = now - timedelta(minutes=cfg.lookback_minutes)
    window = (now - timedelta(hours=cfg.baseline_window_hours), now)

    def history(fetch: Any) -> dict[Any, list] | None:
        # Only read the long baseline window when some series still lacks a baseline.
        return fetch(reader, *window) if cfg.auto_baseline else None

    escalations = series.escalation_series(reader, start, now)
    failures = series.failure_series(reader, start, now)
    tiers = {k[:2] for k in escalations}
    # One false-page budget for the whole fleet, shared by every one-sided CUSUM the run watches:
    # category drift (2 sides), failure modes (1), tier drift (2) and tier surge (1). Pages and
    # `routerwatch alerts` state it as people do: "1 false page per month across the 400 watched series".
    sides = 2 * len(escalations) + len(failures) + 3 * len(tiers)
    budget = FalseAlarmBudget(cfg.false_pages_per_month, series=max(1, len(escalations) + len(failures) + len(tiers)),
                              cusums=max(1, sides))
    evaluation.budget = budget
    arl0 = budget.arl0_minutes

    # Escalation rate per router x tier x category, both directions; failure modes per router x
    # tier x mode, only rising (a ticket, not a page). Same CUSUM, different series and settings.
    configs = {
        # Category escalation rates wobble from hour to hour (docs/design-notes.md section 8): each series is designed
        # for the hour-level sd its baseline measured (``Baseline.hour_sd``, learned with the baseline
        # below and by ``learn_all``), or for the prior while its history is too short to tell.
        Signal.ESCALATION_DRIFT: DriftConfig(
            delta=cfg.escalation_delta, arl0_minutes=arl0, min_volume=cfg.min_volume, overdispersion=True,
            hour_sd_prior=getattr(cfg, "hour_sd_prior", DriftConfig.hour_sd_prior), budget=budget,
        ),
        Signal.FAILURE_SHIFT: DriftConfig(
            delta=cfg.failure_delta, directions=("up",), arl0_minutes=arl0, min_volume=cfg.min_volume,
            severity=Severity.WARNING, budget=budget,
        ),
    }
    # The hourly CUSUM of a wobbly series needs days of hours, far more than the minute look-back.
    hour_floor = now.replace(minute=0, second=0, microsecond=0)
    hour_series = series.escalation_hour_series(
        reader, hour_floor - timedelta(hours=getattr(cfg, "hourly_lookback_hours", 168.0)), hour_floor)
    for signal, current in ((Signal.ESCALATION_DRIFT, escalations), (Signal.FAILURE_SHIFT, failures)):
        fetch, keys = RATE_SERIES[signal]
        missing = any((signal.value, series_key(_labels(keys, k))) not in baselines for k in current)
        long_history = history(fetch) if missing else None
        for key, counts in current.items():
            labels = _labels(keys, key)

            def judge_rate(signal=signal, labels=labels, key=key, counts=counts, long_history=long_history):
                baseline = _baseline_for(signal, labels, baselines, long_history, key, evaluation, cfg, window)
                escalation = signal is Signal.ESCALATION_DRIFT
                tenants = _tenant_reader(reader, key[0], key[1], [key[2]]) if escalation else None
                return detect_rate_drift(baseline, counts, now=now, config=configs[signal], signal=signal,
                                         labels=labels, tenants=tenants,
                                         hours=hour_series.get(key, []) if escalation else None)

            _judge(evaluation, signal, labels, judge_rate)
    _tier_level(reader, baselines, evaluation, escalations, budget, start, now, cfg, window)
    _latency(reader, evaluation, start, now, cfg)
    _tenants(reader, evaluation, start, now, cfg)
    _shadow(reader, baselines, evaluation, start, now, cfg, window, history)
    _experiments(reader, evaluation, start, now)
    _routers(reader, baselines, evaluation, now, cfg, window, history)
    return evaluation


def _tier_level(reader, baselines, evaluation, escalations, budget, start, now, cfg, window) -> None:
    """Per tier: the risk-adjusted drift (mix-proof, with the Kitagawa split) and the surge detector."""
    by_tier = series.tier_series(escalations)
    reasons = series.escalation_reason_series(reader, start, now) if by_tier else {}
    tier_keys = [k for k in by_tier if (Signal.ESCALATION_SURGE.value, series_key(_labels(("router", "tier"), k))) not in baselines]
    surge_history = None
    if tier_keys and cfg.auto_baseline:
        surge_history = {k: series.pooled(v) for k, v in series.tier_series(series.escalation_series(reader, *window)).items()}
    # Both wobble with their categories (docs/design-notes.md section 8): the tier drift is designed for its categories'
    # hour-level sd, the surge judged against the pooled series' own wobble tolerance.
    prior = getattr(cfg, "hour_sd_prior", DriftConfig.hour_sd_prior)
    arl0 = budget.arl0_minutes
    tier_config = DriftConfig(delta=cfg.escalation_delta, arl0_minutes=arl0, min_volume=cfg.min_volume, budget=budget,
                              overdispersion=True, hour_sd_prior=prior)
    surge_config = SurgeConfig(arl0_minutes=arl0, overdispersion=True, hour_sd_prior=prior, budget=budget)
    for (router, tier), categories in by_tier.items():
        labels = {"router": router, "tier": tier}
        category_baselines = {
            c: baselines.get((Signal.ESCALATION_DRIFT.value, series_key({**labels, "category": c}))) for c in categories
        }
        tenants = _tenant_reader(reader, router, tier, None)
        _judge(evaluation, Signal.ESCALATION_DRIFT, {**labels, "scope": "tier"},
               lambda: detect_tier_drift(category_baselines, categories, now=now, labels=labels, config=tier_config,
                                         tenants=tenants))

        def judge_surge(labels=labels, categories=categories, key=(router, tier), tenants=tenants):
            baseline = _baseline_for(Signal.ESCALATION_SURGE, labels, baselines, surge_history, key, evaluation, cfg, window)
            return detect_surge(baseline, series.pooled(categories), now=now, config=surge_config, labels=labels,
                                reason_counts=reasons.get(key), tenants=tenants)

        _judge(evaluation, Signal.ESCALATION_SURGE, labels, judge_surge)


#: Tenant breakdowns already read, by (store, router, tier, categories, since, until): each tick
#: re-folds the look-back window from zero, so a crossing seen once is seen again every minute it
#: stays in it. Only windows that ended :data:`_TENANT_SETTLED` before the wall clock are kept: a
#: younger one may still gain late attempts (ingest lag), and is read afresh each tick.
_TENANT_READS: dict[tuple[Any, ...], dict[str, dict[str, tuple[int, int]]]] = {}
_TENANT_READS_MAX = 4096
_TENANT_SETTLED = timedelta(hours=1)


def _tenant_reader(reader: Any, router: str, tier: str, categories: list[str] | None) -> Callable[..., Any]:
    """The tenant breakdown a detector reads at a crossing (``routerwatch.drift.attribution``), cached.

    Cached only once settled (:data:`_TENANT_SETTLED`). A failed read returns
    None: the alarm then stands (a page nobody could attribute is still a page).
    """

    def read(since: datetime, until: datetime) -> dict[str, dict[str, tuple[int, int]]] | None:
        key = (id(reader), router, tier, tuple(categories) if categories is not None else None, since, until)
        if key in _TENANT_READS:
            return _TENANT_READS[key]
        try:
            counts = series.tenant_breakdown(reader, router, tier, categories, since, until)
        except Exception:  # any store error: judge without the breakdown
            log.warning("tenant breakdown of %s/%s failed; the crossing is judged without it", router, tier,
                        exc_info=True)
            return None
        if until <= datetime.now(until.tzinfo) - _TENANT_SETTLED:
            if len(_TENANT_READS) >= _TENANT_READS_MAX:
                _TENANT_READS.clear()
            _TENANT_READS[key] = counts
        return counts

    return read


def _latency(reader, evaluation, start, now, cfg) -> None:
    """Latency SLOs per final tier of kept and escalated requests: multi-window burn rates (3 days back)."""
    since = min(start, now - timedelta(days=3))
    targets = {"kept": cfg.kept_p95_ms, "escalated": cfg.escalated_p95_ms}
    for (router, tier, path), counts in series.latency_slo_series(reader, since, now, targets).items():
        labels = {"router": router, "tier": tier, "path": path}
        _judge(evaluation, Signal.LATENCY_BURN, labels,
               lambda: evaluate_burn_rate(counts, now=now, objective=0.95, labels=labels))


def _tenants(reader, evaluation, start, now, cfg) -> None:
    """Tenants escalating far more than the rest of their router's fleet."""
    by_router: dict[str, list[TenantCounts]] = {}
    for (router, tenant), (requests, escalated, _cost) in series.tenant_counts(reader, now - timedelta(hours=1), now).items():
        by_router.setdefault(router, []).append(TenantCounts(tenant or "(none)", requests, escalated))
    for router, tenants in by_router.items():
        _judge(evaluation, Signal.TENANT_ANOMALY, {"router": router}, lambda: [
            v for v in detect_tenant_anomalies(tenants, now=now, window_start=now - timedelta(hours=1), labels={"router": router})
            if v.firing  # one verdict per tenant: keep only the anomalies
        ])


def _shadow(reader, baselines, evaluation, start, now, cfg, window, history) -> None:
    """The cheap tier's pass rate on the shadow slice falling."""
    shadow = series.shadow_quality_series(reader, start, now)
    missing = [k for k in shadow if (Signal.SHADOW_QUALITY.value, series_key(_labels(("router", "tier"), k))) not in baselines]
    shadow_history = history(series.shadow_quality_series) if missing else None
    for key, counts in shadow.items():
        labels = _labels(("router", "tier"), key)

        def judge_shadow(labels=labels, key=key, counts=counts):
            baseline = _baseline_for(Signal.SHADOW_QUALITY, labels, baselines, shadow_history, key, evaluation, cfg, window)
            return detect_shadow_quality(baseline, counts, now=now, labels=labels)

        _judge(evaluation, Signal.SHADOW_QUALITY, labels, judge_shadow)


def _experiments(reader, evaluation, start, now) -> None:
    """Running experiments whose variants differ in routing mix."""
    for experiment, counts in series.experiment_mix(reader, start, now).items():
        _judge(evaluation, Signal.EXPERIMENT_CONFOUND, {"experiment": experiment},
               lambda: detect_experiment_confound(counts, now=now, experiment_id=experiment))


def _routers(reader, baselines, evaluation, now, cfg, window, history) -> None:
    """Routers that used to send and went silent (by ingest time)."""
    recent = series.router_volume(reader, now - timedelta(minutes=60), now)
    volume_history = history(series.router_volume) if cfg.auto_baseline else None
    watched = set(recent) | {k[1].split("router=", 1)[1] for k in baselines if k[0] == Signal.PIPELINE_ROUTER_SILENT.value}
    for router in sorted(watched):
        labels = {"router": router}

        def judge_router(labels=labels, router=router):
            known = _baseline_for(
                Signal.PIPELINE_ROUTER_SILENT, labels, baselines, volume_history, router, evaluation, cfg, window
            )
            return detect_silent_routers({router: known}, {router: recent.get(router, [])}, now=now)

        _judge(evaluation, Signal.PIPELINE_ROUTER_SILENT, labels, judge_router)
