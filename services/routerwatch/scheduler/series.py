"""Read the per-minute count series the drift detectors consume, from the rollups.

Every function returns plain data (dicts of lists of :class:`MinuteCount`,
one per minute, gaps filled with zeros) so that detectors stay pure and the
same detector code runs on live data and on replayed history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from routerwatch.drift.counts import MinuteCount


def _fmt(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _minute(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def minutes(since: datetime, until: datetime) -> list[datetime]:
    """Every whole minute in [since, until)."""
    start = since.astimezone(timezone.utc).replace(second=0, microsecond=0)
    out = []
    while start < until:
        out.append(start)
        start += timedelta(minutes=1)
    return out


def _fill(rows: dict[Any, dict[datetime, tuple[int, int]]], since: datetime, until: datetime) -> dict[Any, list[MinuteCount]]:
    grid = minutes(since, until)
    return {
        key: [MinuteCount(m, *by_minute.get(m, (0, 0))) for m in grid]
        for key, by_minute in rows.items()
    }


def escalation_series(reader: Any, since: datetime, until: datetime) -> dict[tuple[str, str, str], list[MinuteCount]]:
    """(router, tier, category) -> per minute escalated out of accepted + escalated (shadow and failures excluded)."""
    result = reader.query(
        "SELECT minute, router_id, tier, category, sumIf(m.attempts, outcome = 'escalated') AS esc, "
        "sum(m.attempts) AS gated FROM attempt_minute AS m "
        "WHERE minute >= {since:DateTime} AND minute < {until:DateTime} AND outcome IN ('accepted', 'escalated') "
        "GROUP BY minute, router_id, tier, category",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    rows: dict[Any, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    for minute, router, tier, category, esc, gated in result.rows:
        rows[(router, tier, category)][_minute(minute)] = (int(esc), int(gated))
    return _fill(rows, since, until)


def escalation_hour_series(
    reader: Any, since: datetime, until: datetime
) -> dict[tuple[str, str, str], list[tuple[datetime, int, int]]]:
    """(router, tier, category) -> ``(hour start, escalated, accepted + escalated)`` per complete clock hour.

    What the hourly CUSUM of a wobbly series folds (``routerwatch.drift.hourly``):
    the same attempts :func:`escalation_series` counts, from the hourly rollup, so
    that a week of hours costs a few thousand rows instead of a week of minutes.
    Hours with no traffic have no row (the CUSUM skips them anyway).
    """
    result = reader.query(
        "SELECT hour, router_id, tier, category, sumIf(h.attempts, outcome = 'escalated') AS esc, "
        "sum(h.attempts) AS gated FROM attempt_hour AS h "
        "WHERE hour >= {since:DateTime} AND hour < {until:DateTime} AND outcome IN ('accepted', 'escalated') "
        "GROUP BY hour, router_id, tier, category ORDER BY hour",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    out: dict[tuple[str, str, str], list[tuple[datetime, int, int]]] = defaultdict(list)
    for hour, router, tier, category, esc, gated in result.rows:
        out[(router, tier, category)].append((_minute(hour), int(esc), int(gated)))
    return dict(out)


def tenant_breakdown(
    reader: Any, router: str, tier: str, categories: list[str] | None, since: datetime, until: datetime
) -> dict[str, dict[str, tuple[int, int]]]:
    """tenant -> category -> (escalated, accepted + escalated) attempts of one tier in [since, until).

    What a drift detector asks at a crossing (``routerwatch.drift.attribution``):
    the same attempts :func:`escalation_series` counts (canary probes excluded,
    as the rollups exclude them), split by tenant, read from the raw
    ``attempts`` table (the rollups carry no tenant). ``categories``
    None: every category of the tier. One small query per crossing.
    """
    params: dict[str, Any] = {"since": _fmt(since), "until": _fmt(until), "router": router, "tier": tier}
    where = ""
    if categories is not None:
        where = " AND category IN {categories:Array(String)}"
        params["categories"] = list(categories)
    result = reader.query(
        "SELECT tenant, category, countIf(outcome = 'escalated') AS esc, count() AS gated FROM attempts "
        "WHERE occurred_at >= {since:DateTime64(3, 'UTC')} AND occurred_at < {until:DateTime64(3, 'UTC')} "
        "AND router_id = {router:String} AND tier = {tier:String} AND outcome IN ('accepted', 'escalated') "
        "AND canary_id = ''"
        + where + " GROUP BY tenant, category",
        params,
    )
    out: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for tenant, category, esc, gated in result.rows:
        out[str(tenant)][str(category)] = (int(esc), int(gated))
    return dict(out)


def escalation_reasons(reader: Any, since: datetime, until: datetime) -> dict[tuple[str, str], Counter[str]]:
    """(router, tier) -> escalations by reason in the range."""
    result = reader.query(
        "SELECT router_id, tier, escalation_reason, sum(m.attempts) FROM attempt_minute AS m "
        "WHERE minute >= {since:DateTime} AND minute < {until:DateTime} AND outcome = 'escalated' "
        "GROUP BY router_id, tier, escalation_reason",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    out: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for router, tier, reason, n in result.rows:
        out[(router, tier)][reason] += int(n)
    return dict(out)


def failure_series(reader: Any, since: datetime, until: datetime) -> dict[tuple[str, str, str], list[MinuteCount]]:
    """(router, tier, failure_mode) -> per minute failures of that mode out of the tier's non-shadow attempts."""
    result = reader.query(
        "SELECT minute, router_id, tier, failure_mode, sum(m.attempts) FROM attempt_minute AS m "
        "WHERE minute >= {since:DateTime} AND minute < {until:DateTime} AND outcome != 'shadow' "
        "GROUP BY minute, router_id, tier, failure_mode",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    totals: dict[tuple[str, str, datetime], int] = Counter()
    failures: dict[tuple[str, str, str, datetime], int] = Counter()
    modes: set[tuple[str, str, str]] = set()
    for minute, router, tier, mode, n in result.rows:
        m = _minute(minute)
        totals[(router, tier, m)] += int(n)
        if mode:
            failures[(router, tier, mode, m)] += int(n)
            modes.add((router, tier, mode))
    rows: dict[Any, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    for (router, tier, m), total in totals.items():
        for r, t, mode in modes:
            if (r, t) == (router, tier):
                rows[(r, t, mode)][m] = (failures[(r, t, mode, m)], total)
    return _fill(rows, since, until)


def latency_slo_series(
    reader: Any, since: datetime, until: datetime, targets_ms: dict[str, float]
) -> dict[tuple[str, str, str], list[MinuteCount]]:
    """(router, final tier, path) -> per minute requests within the path's latency target out of all.

    ``targets_ms`` maps ``kept`` / ``escalated`` to the p95 target. Read from the raw
    table: the rollups keep quantile sketches, not counts under an arbitrary bound.
    """
    result = reader.query(
        "SELECT toStartOfMinute(occurred_at) AS minute, router_id, final_tier, "
        "if(escalation_count > 0, 'escalated', 'kept') AS path, "
        "countIf(latency_ms <= if(path = 'escalated', {esc:Float64}, {kept:Float64})) AS good, count() AS total "
        "FROM decisions WHERE occurred_at >= {since:DateTime} AND occurred_at < {until:DateTime} "
        "AND canary_id = '' AND served AND (escalation_count > 0 OR final_tier = entry_tier) "
        "GROUP BY minute, router_id, final_tier, path",
        {"since": _fmt(since), "until": _fmt(until), "kept": targets_ms["kept"], "esc": targets_ms["escalated"]},
    )
    rows: dict[Any, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    for minute, router, tier, path, good, total in result.rows:
        rows[(router, tier, path)][_minute(minute)] = (int(good), int(total))
    return _fill(rows, since, until)


def tenant_counts(reader: Any, since: datetime, until: datetime) -> dict[tuple[str, str], tuple[int, int, float]]:
    """(router, tenant) -> (requests, escalated requests, spend) in the range."""
    result = reader.query(
        "SELECT router_id, tenant, sum(t.requests), sum(t.escalated_requests), sum(t.cost_usd) "
        "FROM tenant_minute AS t WHERE minute >= {since:DateTime} AND minute < {until:DateTime} "
        "GROUP BY router_id, tenant",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    return {(router, tenant): (int(n), int(e), float(c)) for router, tenant, n, e, c in result.rows}


def tier_series(by_category: dict[tuple[str, str, str], list[MinuteCount]]) -> dict[tuple[str, str], dict[str, list[MinuteCount]]]:
    """Regroup (router, tier, category) series as (router, tier) -> {category: series}."""
    out: dict[tuple[str, str], dict[str, list[MinuteCount]]] = defaultdict(dict)
    for (router, tier, category), counts in by_category.items():
        out[(router, tier)][category] = counts
    return dict(out)


def pooled(series_by_key: dict[str, list[MinuteCount]]) -> list[MinuteCount]:
    """Sum aligned per-minute series (same minute grid) into one."""
    columns = list(series_by_key.values())
    return [
        MinuteCount(column[0].minute, sum(c.successes for c in column), sum(c.trials for c in column))
        for column in zip(*columns)
    ]


def escalation_reason_series(
    reader: Any, since: datetime, until: datetime
) -> dict[tuple[str, str], dict[str, list[MinuteCount]]]:
    """(router, tier) -> reason -> per minute escalations with that reason out of gated attempts."""
    result = reader.query(
        "SELECT minute, router_id, tier, escalation_reason, sum(m.attempts) FROM attempt_minute AS m "
        "WHERE minute >= {since:DateTime} AND minute < {until:DateTime} AND outcome = 'escalated' "
        "GROUP BY minute, router_id, tier, escalation_reason",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    gated = {k: pooled(v) for k, v in tier_series(escalation_series(reader, since, until)).items()}
    rows: dict[tuple[str, str], dict[str, dict[datetime, int]]] = defaultdict(lambda: defaultdict(dict))
    for minute, router, tier, reason, n in result.rows:
        rows[(router, tier)][reason][_minute(minute)] = int(n)
    return {
        key: {reason: [MinuteCount(c.minute, by_minute.get(c.minute, 0), c.trials) for c in gated.get(key, [])]
              for reason, by_minute in reasons.items()}
        for key, reasons in rows.items()
    }


def experiment_mix(reader: Any, since: datetime, until: datetime) -> dict[str, dict[str, dict[str, int]]]:
    """experiment -> variant -> final tier -> requests (shadow slice excluded)."""
    result = reader.query(
        "SELECT experiment_id, experiment_variant, if(served, final_tier, '(not served)'), sum(r.requests) "
        "FROM request_minute AS r WHERE minute >= {since:DateTime} AND minute < {until:DateTime} "
        "AND experiment_id != '' AND NOT shadow GROUP BY 1, 2, 3",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for experiment, variant, tier, n in result.rows:
        out[experiment][variant][tier] = int(n)
    return {e: {v: dict(t) for v, t in variants.items()} for e, variants in out.items()}


def shadow_quality_series(reader: Any, since: datetime, until: datetime) -> dict[tuple[str, str], list[MinuteCount]]:
    """(router, tier) -> per minute passing grades out of graded shadow answers."""
    result = reader.query(
        "SELECT toStartOfMinute(occurred_at) AS minute, router_id, tier, countIf(grade_passed), count() "
        "FROM graded_attempts WHERE target = 'shadow' AND occurred_at >= {since:DateTime} "
        "AND occurred_at < {until:DateTime} GROUP BY minute, router_id, tier",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    rows: dict[Any, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    for minute, router, tier, passed, graded in result.rows:
        rows[(router, tier)][_minute(minute)] = (int(passed), int(graded))
    return _fill(rows, since, until)


def router_volume(reader: Any, since: datetime, until: datetime) -> dict[str, list[MinuteCount]]:
    """router -> requests stored per minute (``successes`` = ``trials`` = requests), by ingest time."""
    result = reader.query(
        "SELECT toStartOfMinute(ingested_at) AS minute, router_id, count() FROM decisions "
        "WHERE ingested_at >= {since:DateTime} AND ingested_at < {until:DateTime} GROUP BY minute, router_id",
        {"since": _fmt(since), "until": _fmt(until)},
    )
    rows: dict[Any, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    for minute, router, n in result.rows:
        rows[router][_minute(minute)] = (int(n), int(n))
    return _fill(rows, since, until)


def canary_outcomes(reader: Any, since: datetime, until: datetime) -> list[Any]:
    """Canary results with occurred_at in [since, until], oldest first, for the N-of-M detectors."""
    from routerwatch.canary.detect import ProbeOutcome

    result = reader.query(
        "SELECT canary_id, router_id, occurred_at, expected_tier, observed_tier, answer_passed, side, category, "
        "check_detail, error FROM canary_results FINAL "
        "WHERE occurred_at >= {since:DateTime64(3)} AND occurred_at <= {until:DateTime64(3)} ORDER BY occurred_at",
        {"since": since.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
         "until": until.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]},
    )
    return [
        ProbeOutcome(
            canary_id=canary, router=router, occurred_at=_minute(at), expected_tier=expected,
            observed_tier=observed or None, passed=passed, side=side, category=category, detail=detail, error=error,
        )
        for canary, router, at, expected, observed, passed, side, category, detail, error in result.rows
    ]
