"""The answers behind the console's "Now" panel and its CUSUM chart: plain functions, no web server.

- :func:`now`: what fires in the scheduler's last live run, each alert with baseline vs observed,
  magnitude, change start, statistic and threshold, the Kitagawa split (tier-wide escalation
  drift), its runbook and the SQL that reproduces it; beside it the alerts of ours Alertmanager
  holds suppressed right now (a silence or an inhibition), and the alerts resolved in the last
  day (``alert_events``, written by the live scheduler: :mod:`routerwatch.scheduler.history`).
- :func:`statistics`: the CUSUM statistic against its threshold per series over a range
  (``detector_statistics``), for the chart under the escalation series.

Both read the store through a read-only reader (``.rows(sql, params)`` returning dicts, like
:class:`routerwatch.console.routes.Reader`). Answers are bounded (:data:`MAX_ALERTS`,
:data:`STATISTICS_ROW_CAP`) and plain JSON (times as ISO 8601 text in UTC). An Alertmanager that
does not answer, or a store without the history tables, is reported in the answer (``available``
false and ``error``): the page still loads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger("routerwatch.console")

#: Alerts listed per list (firing, silenced, resolved); a longer list is cut and says ``truncated``.
MAX_ALERTS = 200
#: Rows of one statistics answer; a longer one is cut and says ``truncated``.
STATISTICS_ROW_CAP = 50000
#: How far back the resolved alerts go.
RESOLVED_WINDOW = timedelta(hours=24)
#: Alert names of ours, as Alertmanager matches them (the scheduler's and the Prometheus rules').
OURS_MATCHER = 'alertname=~"Routerwatch.+"'


def _iso(value: Any) -> str | None:
    """A time as ISO 8601 in UTC (naive times are UTC); text is passed through; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.isoformat()
    return str(value)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _literal_time(value: datetime) -> str:
    """``toDateTime64('2026-12-07 10:00:00.000', 3, 'UTC')``: a time as a SQL literal (UTC)."""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return f"toDateTime64('{value.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC')"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _json_object(text: Any) -> dict[str, str]:
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _rows(reader: Any, sql: str, params: dict[str, Any] | None, cap: int) -> tuple[list[dict[str, Any]], bool]:
    """At most ``cap`` rows of ``sql`` (which asks for ``cap + 1``) and whether there were more."""
    capped = getattr(reader, "capped", None)
    if capped is not None:
        rows, more = capped(sql, params)
    else:
        rows, more = reader.rows(sql, params), False
    return list(rows[:cap]), more or len(rows) > cap


# --- now -------------------------------------------------------------------------------------


def _firing(scheduler: Any, base_url: str | None) -> tuple[list[dict[str, Any]], bool]:
    from routerwatch.alerting.runbooks import runbook_url
    from routerwatch.scheduler.alerts import to_alert

    last = getattr(scheduler, "last", None)
    history = getattr(scheduler, "history", None)
    out = []
    for verdict in (last.firing if last is not None else []):
        alert = to_alert(verdict)
        if alert is None:
            continue
        annotations = dict(alert.annotations)
        try:
            annotations.setdefault("runbook_url", runbook_url(alert.name, base_url))
        except ValueError:
            pass
        # The page's start as recorded (the first run it fired in), else the detector's change start.
        started = history.started_at(alert.key) if history is not None else None
        kitagawa = verdict.extra.get("kitagawa") if isinstance(verdict.extra.get("kitagawa"), Mapping) else None
        out.append({
            "alertname": alert.name,
            "severity": alert.severity,
            "signal": verdict.signal.value,
            "labels": dict(alert.labels),
            "annotations": annotations,
            "summary": annotations.get("summary"),
            "runbook_url": annotations.get("runbook_url"),
            "query": annotations.get("query"),
            "starts_at": _iso(started or alert.starts_at),
            "baseline": _number(verdict.baseline_value),
            "observed": _number(verdict.observed_value),
            "magnitude": _number(verdict.magnitude),
            "change_start": _iso(verdict.change_start),
            "statistic": _number(verdict.statistic),
            "threshold": _number(verdict.threshold),
            "kitagawa": {k: _number(kitagawa.get(k)) for k in ("total", "mix", "within")} if kitagawa else None,
        })
    out.sort(key=lambda a: (a["severity"] != "critical", a["alertname"], json.dumps(a["labels"], sort_keys=True)))
    return out[:MAX_ALERTS], len(out) > MAX_ALERTS


def silenced(alertmanager: Any) -> dict[str, Any]:
    """The alerts of ours (``Routerwatch...``) that Alertmanager holds suppressed now: silenced or inhibited.

    Asks each configured Alertmanager in turn until one answers. ``alertmanager`` is an
    :class:`~routerwatch.alerting.client.AlertManagerClient` (or None: not configured).
    """
    from routerwatch.alerting.api import redact_url
    from routerwatch.alerting.errors import AlertingError

    if alertmanager is None:
        return {"configured": False, "available": False, "error": "no Alertmanager configured "
                "(ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS)", "alertmanager": None, "alerts": [], "truncated": False}
    errors = []
    for url in getattr(alertmanager, "urls", [None]):
        try:
            found = alertmanager.alerts(url, active=False, silenced=True, inhibited=True, unprocessed=False,
                                        filters=[OURS_MATCHER])
        except (AlertingError, OSError, ValueError) as exc:
            errors.append(str(exc))
            continue
        alerts = []
        for item in found or []:
            status = item.get("status") or {}
            if status.get("state") != "suppressed":
                continue
            annotations = {str(k): str(v) for k, v in (item.get("annotations") or {}).items()}
            alerts.append({
                "alertname": (item.get("labels") or {}).get("alertname"),
                "severity": (item.get("labels") or {}).get("severity"),
                "labels": {str(k): str(v) for k, v in (item.get("labels") or {}).items()},
                "annotations": annotations,
                "summary": annotations.get("summary"),
                "runbook_url": annotations.get("runbook_url"),
                "query": annotations.get("query"),
                "starts_at": item.get("startsAt"),
                "ends_at": item.get("endsAt"),
                "silenced_by": list(status.get("silencedBy") or []),
                "inhibited_by": list(status.get("inhibitedBy") or []),
                "fingerprint": item.get("fingerprint"),
            })
        alerts.sort(key=lambda a: (str(a["alertname"]), json.dumps(a["labels"], sort_keys=True)))
        return {"configured": True, "available": True, "error": None,
                "alertmanager": redact_url(url) if url else None,
                "alerts": alerts[:MAX_ALERTS], "truncated": len(alerts) > MAX_ALERTS}
    return {"configured": True, "available": False, "error": "; ".join(errors) or "Alertmanager did not answer",
            "alertmanager": None, "alerts": [], "truncated": False}


def resolved_sql(since: datetime, limit: int = MAX_ALERTS + 1) -> str:
    """The alerts resolved since ``since``, newest first, one row per alert and start (several serves
    record the same resolve)."""
    return (
        "SELECT alert_key, alertname, severity, router, labels, annotations, starts_at, ends_at, at AS resolved_at "
        f"FROM alert_events WHERE state = 'resolved' AND at >= {_literal_time(since)} "
        f"ORDER BY at DESC LIMIT 1 BY alert_key, starts_at LIMIT {int(limit)}"
    )


def resolved(reader: Any, now_at: datetime | None = None) -> dict[str, Any]:
    """Alerts resolved in the last :data:`RESOLVED_WINDOW` (``alert_events``), newest first, with start and end."""
    since = (now_at or datetime.now(timezone.utc)) - RESOLVED_WINDOW
    sql = resolved_sql(since)
    out: dict[str, Any] = {"since": _iso(since), "available": True, "error": None, "alerts": [], "truncated": False,
                           "sql": sql}
    try:
        rows, more = _rows(reader, sql, None, MAX_ALERTS)
    except Exception as exc:  # noqa: BLE001 - a store without the table, or unreachable: the page still loads
        log.warning("console: resolved alerts unreadable: %s", exc)
        out.update(available=False, error=str(exc))
        return out
    for row in rows:
        labels = _json_object(row.get("labels"))
        annotations = _json_object(row.get("annotations"))
        out["alerts"].append({
            "alertname": row.get("alertname"),
            "severity": row.get("severity"),
            "labels": labels,
            "annotations": annotations,
            "summary": annotations.get("summary"),
            "runbook_url": annotations.get("runbook_url"),
            "query": annotations.get("query"),
            "starts_at": _iso(row.get("starts_at")),
            "ends_at": _iso(row.get("ends_at")),
            "resolved_at": _iso(row.get("resolved_at")),
            "key": row.get("alert_key"),
        })
    out["truncated"] = more
    return out


def now(scheduler: Any, reader: Any, base_url: str | None = None, alertmanager: Any = None) -> dict[str, Any]:
    """The "Now" panel: firing, silenced and resolved (see the module docstring for each).

    ``scheduler``: the serve's :class:`~routerwatch.scheduler.service.DriftScheduler` (None when
    serve runs without detectors: ``firing`` is empty, ``detectors`` false). ``base_url``: the
    runbook base (default: the scheduler's ``runbook_base_url``). ``alertmanager``: the client to
    ask about silences (default: the scheduler's). Never raises for an unreachable Alertmanager or
    an unreadable history: those parts say ``available: false`` and ``error``.
    """
    cfg = getattr(scheduler, "cfg", None)
    if base_url is None:
        base_url = getattr(cfg, "runbook_base_url", None)
    if alertmanager is None:
        alertmanager = getattr(scheduler, "client", None)
    out: dict[str, Any] = {"detectors": scheduler is not None, "evaluated_at": None, "series_evaluated": None,
                           "firing": [], "firing_truncated": False}
    if scheduler is not None:
        last = getattr(scheduler, "last", None)
        if last is not None:
            out["evaluated_at"] = _iso(last.now)
            out["series_evaluated"] = sum(1 for v in last.verdicts if v.evaluated)
        out["firing"], out["firing_truncated"] = _firing(scheduler, base_url)
    out["silenced"] = silenced(alertmanager)
    out["resolved"] = resolved(reader)
    return out


# --- statistics ------------------------------------------------------------------------------

STATISTICS_COLUMNS = ("minute", "signal", "router_id", "tier", "category", "direction", "series_key", "statistic",
                      "threshold", "baseline_value", "observed_value", "firing")


def statistics_sql(since: datetime, until: datetime, router: str | None = None, tier: str | None = None,
                   limit: int = STATISTICS_ROW_CAP + 1, step_minutes: int = 1,
                   signal: str | None = None) -> tuple[str, dict[str, str]]:
    """The query over ``detector_statistics`` (one row per minute and series: FINAL keeps the newest
    of a minute written twice) and its parameters. ``step_minutes`` > 1 buckets the minutes: each
    bucket holds the series' largest statistic in it (the one that decides whether it paged) with
    that minute's threshold; ``firing`` is whether any minute of the bucket fired."""
    params = {name: value for name, value in (("router_id", router), ("tier", tier), ("signal", signal)) if value}
    where = [f"evaluated_at >= {_literal_time(since)}", f"evaluated_at < {_literal_time(until)}"]
    where += [f"{name} = {{{name}:String}}" for name in params]
    step = max(1, int(step_minutes)) * 60
    sql = (
        f"SELECT toDateTime(intDiv(toUnixTimestamp(evaluated_at), {step}) * {step}, 'UTC') AS minute, signal, router_id, tier, "
        "category, direction, series_key, max(statistic) AS top, argMax(threshold, statistic) AS threshold_at_top, "
        "argMax(baseline_value, evaluated_at) AS baseline, argMax(observed_value, evaluated_at) AS observed, "
        "max(firing) AS fired FROM detector_statistics FINAL WHERE " + " AND ".join(where)
        + " GROUP BY minute, signal, router_id, tier, category, direction, series_key"
        + f" ORDER BY router_id, tier, signal, series_key, minute LIMIT {int(limit)}"
    )
    return sql, params


def statistics(reader: Any, since: datetime, until: datetime, router: str | None = None,
               tier: str | None = None, step_minutes: int = 1, signal: str | None = None) -> dict[str, Any]:
    """The CUSUM statistic and threshold per series in [since, until), from ``detector_statistics``.

    Rows (ordered by router, tier, signal, series, minute): ``minute`` (ISO), ``signal``,
    ``router_id``, ``tier``, ``category`` ('' for a tier-wide series), ``direction``, ``series_key``,
    ``statistic``, ``threshold``, ``baseline_value``, ``observed_value``, ``firing``. At most
    :data:`STATISTICS_ROW_CAP` rows (``truncated`` says when there were more); ``sql`` is the query
    with its values written in, to run as it is (``routerwatch sql``). Store errors are raised
    (the caller answers them as the other endpoints do).
    """
    sql, params = statistics_sql(since, until, router, tier, step_minutes=step_minutes, signal=signal)
    rows, truncated = _rows(reader, sql, params or None, STATISTICS_ROW_CAP)
    shown = sql
    for name, value in params.items():
        shown = shown.replace(f"{{{name}:String}}", _quote(value))
    out_rows = []
    for row in rows:
        out_rows.append({
            "minute": _iso(row.get("minute")),
            "signal": row.get("signal"),
            "router_id": row.get("router_id"),
            "tier": row.get("tier"),
            "category": row.get("category"),
            "direction": row.get("direction"),
            "series_key": row.get("series_key"),
            "statistic": _number(row.get("top")),
            "threshold": _number(row.get("threshold_at_top")),
            "baseline_value": _number(row.get("baseline")),
            "observed_value": _number(row.get("observed")),
            "firing": bool(row.get("fired")),
        })
    return {"since": _iso(since), "until": _iso(until), "router": router, "tier": tier, "step_minutes": step_minutes, "rows": out_rows,
            "truncated": truncated, "row_cap": STATISTICS_ROW_CAP, "sql": shown}
