"""The console's routes on serve's faust web app: the static page and its JSON endpoints.

Every figure comes from the views the report and the cookbook use (``tier_scoreboard``,
``escalation_series_step``, ``canary_scoreboard``, ``cost_summary``, ``routing_mix``; the request
trace is the cookbook's ``what_did_this_request_do``; a canary run's probes are read from
``canary_results`` as the canary alerts' reproducing query reads them), run read-only through the store. The
endpoints validate their parameters and answer errors as JSON ``{"error": "..."}`` with status 400.

The page, its script and its stylesheet (:data:`STATIC`) are open, like ``/health``: they hold no
data and every deployment ships the same ones. Every ``/console/api/`` call goes through the web
guard (CSRF checks; the bearer token beyond loopback), which the page sends when it was opened
with ``#token=...``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

from routerwatch.console import now as now_panel
from routerwatch.errors import UsageError
from routerwatch.report import scoreboard

# Path -> (file in console/static, content type). Served to anyone (see webguard.SERVE_OPEN).
STATIC: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console/console.css": ("console.css", "text/css; charset=utf-8"),
}
API_PREFIX = "/console/api/"
MAX_RANGE = timedelta(days=31)
MAX_REQUEST_ID = 200
MAX_ROUTER_ID = 200
CONSOLE_BUCKETS = 120  # buckets of a chart at most (console_step)
ROW_CAP = 50000  # rows of one table in an answer; a longer one is cut and the answer says so ("truncated")
_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces


class BadRequest(ValueError):
    """A parameter the endpoint refuses: answered with 400 and this message."""


def static_file(name: str) -> bytes:
    return (resources.files("routerwatch.console") / "static" / name).read_bytes()


def parse_window(query: Any, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``since``/``until`` (ISO times, or ``since`` a duration back from now: 90m, 6h, 7d; default 6h)."""
    now = now or datetime.now(timezone.utc)
    since, until = query.get("since") or "6h", query.get("until") or ""
    try:
        start, end = scoreboard.parse_range(since, until or None, now)
    except (ValueError, UsageError) as exc:
        raise BadRequest(
            f"since/until must be ISO times (2026-12-07T10:00:00Z) or since a duration (90m, 6h, 7d): {exc}"
        ) from None
    if end - start > MAX_RANGE:
        raise BadRequest(f"the range is {end - start}; the console shows at most {MAX_RANGE.days} days")
    return start, end


def parse_id(query: Any, name: str, limit: int, required: bool) -> str | None:
    value = query.get(name) or ""
    if not value:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    if not _ID.match(value):
        raise BadRequest(f"{name} must be printable ASCII without spaces")
    return value


def console_step(since: datetime, until: datetime) -> int:
    """Bucket width (minutes) of the console's charts: the report's rule
    (:func:`routerwatch.report.scoreboard.chart_step`) with at most CONSOLE_BUCKETS buckets, and whole
    days beyond a week. A page draws every chart at once on a screen ~900 points wide, so it needs
    fewer buckets than the report's 360; whole days let a 30-day page merge the daily rollup (~30
    rows per key) instead of ~720 hours of t-digest states (bench/RESULTS-console.md)."""
    minutes = (until - since).total_seconds() / 60
    if minutes > 7 * 1440:
        return 1440 * max(1, math.ceil(minutes / 1440 / CONSOLE_BUCKETS))
    return scoreboard.chart_step(since, until, max_buckets=CONSOLE_BUCKETS)


def _args(since: datetime, until: datetime) -> str:
    start, end = scoreboard.minute_range(since, until)
    return f"since = '{scoreboard.fmt_time(start)}', until = '{scoreboard.fmt_time(end)}'"


class Reader:
    """The store, read-only (the /query path: sqlguard and the query limits)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return self.store.query(sql, parameters, readonly=True)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.capped(sql, parameters)[0]

    def capped(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], bool]:
        """The rows (at most ROW_CAP) and whether there were more, JSON-plain (:func:`plain_columns`)."""
        result = self.query(sql, parameters)
        rows = result.rows[:ROW_CAP]
        columns = plain_columns([list(column) for column in zip(*rows)] if rows else [[] for _ in result.columns])
        return [dict(zip(result.columns, row)) for row in zip(*columns)], len(result.rows) > ROW_CAP


def plain_columns(columns: list[list[Any]]) -> list[list[Any]]:
    """Each column's values made JSON-plain (ISO times, NaN as null, arrays as lists), a column at a
    time: a ClickHouse column holds one type (or None), so a column of text or integers is passed
    as it is and only the others are converted (a 15-minute page holds some 10,000 cells)."""
    out = []
    for values in columns:
        kind = next((type(v) for v in values if v is not None), str)
        if kind in (str, int, bool):
            out.append(values)
        elif kind is float:
            out.append([None if v is not None and v != v else v for v in values])
        else:
            out.append([_plain(v) for v in values])
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _window(since: datetime, until: datetime) -> dict[str, str]:
    return {"since": since.isoformat(), "until": until.isoformat()}


# --- the endpoints' answers (plain functions of a Reader: testable without a server) ---


def routers(reader: Reader, query: Any) -> dict[str, Any]:
    """The routers and environments that sent traffic in the range (the filters' choices)."""
    since, until = parse_window(query)
    environments = reader.rows(f"SELECT segment FROM cost_summary({_args(since, until)}, by = 'environment') ORDER BY segment")
    return {**_window(since, until), "routers": scoreboard.routers_in_range(reader, since, until),
            "environments": [r["segment"] for r in environments]}


def filters(query: Any, *names: str) -> dict[str, str]:
    """The filters given among ``router``, ``environment`` and ``tier``, keyed by their column."""
    columns = {"router": "router_id", "environment": "environment", "tier": "tier"}
    out = {}
    for name in names:
        value = parse_id(query, name, MAX_ROUTER_ID, required=False)
        if value:
            out[columns[name]] = value
    return out


def where(conditions: dict[str, str], extra: str = "") -> str:
    """A WHERE clause binding each filter as a query parameter (``{router_id:String}`` ...)."""
    parts = [extra] if extra else []
    parts += [f"{column} = {{{column}:String}}" for column in conditions]
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def shown(sql: str, conditions: dict[str, str]) -> str:
    """``sql`` with its filter parameters inlined, for the page to show (and a reader to paste)."""
    for column, value in conditions.items():
        sql = sql.replace(f"{{{column}:String}}", _quote(value))
    return sql


def table_scope(reader: Reader, view: str, args: str, conditions: dict[str, str], order: str = "") -> tuple[list[dict[str, Any]], str]:
    """Rows of a figure view (``by`` segments) for the filters: the figure views split by one `by`, so
    a router filter reads ``by = 'router'`` and keeps that router, an environment filter alone reads
    ``by = 'environment'``; with both, the router's (every environment: said on the page)."""
    by, keep = ("router", conditions.get("router_id")) if "router_id" in conditions or "environment" not in conditions \
        else ("environment", conditions["environment"])
    rows = reader.rows(f"SELECT * FROM {view}({args}, by = '{by}'){order}")
    return [r for r in rows if not keep or r.get("segment") == keep], by


def escalation(reader: Reader, query: Any) -> dict[str, Any]:
    """Per tier (and router) in the range; per tier x category over time; escalation reasons over time."""
    since, until = parse_window(query)
    conditions = filters(query, "router", "environment")
    tier = parse_id(query, "tier", MAX_ROUTER_ID, required=False)  # the chart's tier only (the table has every tier)
    step = console_step(since, until)
    args = _args(since, until)
    tiers, by = table_scope(reader, "tier_scoreboard", args, conditions, " ORDER BY segment, tier_rank")
    chart = {**conditions, **({"tier": tier} if tier else {})}
    # A line per router and tier; with a tier chosen, per category of that tier (the drift detector's
    # series, whose frozen baselines are drawn): every tier x category at once is too many lines to
    # read and, over 30 days of a busy fleet, megabytes for the page.
    category = "category" if tier else "'' AS category"
    group = "minute, router_id, tier, category" if tier else "minute, router_id, tier"
    series_sql = (
        f"SELECT bucket AS minute, router_id, tier, {category}, sumIf(attempts, outcome = 'escalated') AS escalated, "
        "sumIf(attempts, outcome = 'accepted') AS accepted, escalated / nullIf(escalated + accepted, 0) AS escalation_rate "
        f"FROM attempt_series({args}, step_minutes = {step})"
        + where(chart, "outcome IN ('accepted', 'escalated')")
        + f" GROUP BY {group} ORDER BY {group}"
    )
    series, truncated = reader.capped(series_sql, chart or None)
    reasons_sql = (
        "SELECT bucket AS minute, escalation_reason, sum(attempts) AS escalations "
        f"FROM attempt_series({args}, step_minutes = {step})"
        + where(chart, "outcome = 'escalated'")
        + " GROUP BY minute, escalation_reason ORDER BY minute, escalation_reason"
    )
    reasons, reasons_truncated = reader.capped(reasons_sql, chart or None)
    baselines = [b for b in escalation_baselines(reader, conditions.get("router_id")) if tier and b["tier"] == tier]
    # The escalation-drift CUSUM of the chosen tier's series (recorded by the scheduler each run).
    stats = now_panel.statistics(reader, since, until, router=conditions.get("router_id"), tier=tier, step_minutes=step,
                                 signal="escalation_drift") if tier else None
    return {**_window(since, until), "router": conditions.get("router_id"), "environment": conditions.get("environment"),
            "tier": tier, "step_minutes": step, "tables_by": by, "tiers": tiers, "statistics": stats,
            "series": series, "truncated": truncated or reasons_truncated, "series_sql": shown(series_sql, chart),
            "reasons": reasons, "reasons_sql": shown(reasons_sql, chart), "baselines": baselines}


def escalation_baselines(reader: Reader, router: str | None) -> list[dict[str, Any]]:
    """The frozen escalation-drift baselines in force (the newest version per series): the rate p0 the
    detector tests against, per router, tier and category; drawn as a dashed line on the chart."""
    from routerwatch.drift.verdict import Signal
    from routerwatch.scheduler import baselines

    out = []
    for (signal, _), baseline in baselines.load(reader).items():
        labels = baseline.labels
        if signal != Signal.ESCALATION_DRIFT.value or (router and labels.get("router") != router):
            continue
        out.append({"router_id": labels.get("router"), "tier": labels.get("tier"), "category": labels.get("category"),
                    "p0": baseline.p0, "version": baseline.version,
                    "window_start": _plain(baseline.window_start), "window_end": _plain(baseline.window_end)})
    return sorted(out, key=lambda b: (str(b["router_id"]), str(b["tier"]), str(b["category"])))[:ROW_CAP]


def latency_cost(reader: Reader, query: Any, slo: dict[str, float] | None = None) -> dict[str, Any]:
    """Kept vs escalated latency per tier, spend vs the flagship counterfactual, the routing mix: for
    the range (the figure views) and over time (the bucketed series views), with the SLO targets."""
    since, until = parse_window(query)
    conditions = filters(query, "router", "environment")
    step = console_step(since, until)
    args = _args(since, until)
    out: dict[str, Any] = {**_window(since, until), "router": conditions.get("router_id"),
                           "environment": conditions.get("environment"), "step_minutes": step, "slo": slo or {}}
    for key, view in (("latency", "request_latency"), ("cost", "cost_summary"), ("mix", "routing_mix")):
        out[key], out["tables_by"] = table_scope(reader, view, args, conditions)
    series = f"step_minutes = {step}"
    # Every series is per router (tiers of the same name on two routers are two cascades, never pooled).
    # Terminal (kept at the tier) vs passthrough (escalated from it) attempt latency per tier.
    out["tier_latency_series"] = reader.rows(
        "SELECT bucket, router_id, tier, min(tier_rank) AS tier_rank, outcome, sum(attempts) AS attempts, "
        "quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS latency_ms "
        f"FROM attempt_latency_series({args}, {series})" + where(conditions)
        + " GROUP BY bucket, router_id, tier, outcome ORDER BY bucket, router_id, tier_rank, outcome", conditions or None)
    # Request latency by path (the SLOs are on requests: kept and escalated apart), spend, routing mix.
    out["request_series"] = reader.rows(
        "SELECT bucket, router_id, path, sum(requests) AS requests, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS latency_ms "
        f"FROM request_series({args}, {series})" + where(conditions, "path IN ('kept', 'escalated')")
        + " GROUP BY bucket, router_id, path ORDER BY bucket, router_id, path", conditions or None)
    # Spend and the routing mix from one read: requests, spend and counterfactual per final tier; a
    # bucket's spend is their sum and a tier's share its requests over the bucket's (as routing_mix).
    tiers = reader.rows(
        "SELECT bucket, router_id, if(served, final_tier, '(not served)') AS final_tier, min(final_tier_rank) AS final_tier_rank, "
        "sum(requests) AS requests, sum(cost_usd) AS actual_cost_usd, sum(counterfactual_cost_usd) AS counterfactual_cost_usd "
        f"FROM request_series({args}, {series})" + where(conditions)
        + " GROUP BY bucket, router_id, final_tier ORDER BY bucket, router_id, final_tier_rank, final_tier", conditions or None)
    spend: dict[tuple[str, str], dict[str, Any]] = {}
    for row in tiers:
        total = spend.setdefault((row["bucket"], row["router_id"]), {
            "bucket": row["bucket"], "router_id": row["router_id"], "requests": 0, "actual_cost_usd": 0.0,
            "counterfactual_cost_usd": 0.0})
        for column in ("requests", "actual_cost_usd", "counterfactual_cost_usd"):
            total[column] += row[column]
    out["spend_series"] = list(spend.values())
    out["mix_series"] = [
        {"bucket": row["bucket"], "router_id": row["router_id"], "final_tier": row["final_tier"],
         "final_tier_rank": row["final_tier_rank"], "requests": row["requests"],
         "share": row["requests"] / spend[(row["bucket"], row["router_id"])]["requests"]}
        for row in tiers if row["requests"]
    ]
    return out


def canaries(reader: Reader, query: Any) -> dict[str, Any]:
    """Per router, side and canary: the scoreboard, the history per canary (``canary_history``) and per
    router and side (its sums: :func:`per_side`)."""
    since, until = parse_window(query)
    conditions = filters(query, "router")  # probes have no environment: the router's canaries
    args = _args(since, until)
    board = reader.rows(f"SELECT * FROM canary_scoreboard({args})" + where(conditions), conditions or None)
    step = f"step_minutes = {console_step(since, until)}"
    history = reader.rows(f"SELECT * FROM canary_history({args}, {step})" + where(conditions), conditions or None) if board else []
    return {**_window(since, until), "router": conditions.get("router_id"), "canaries": board,
            "series": per_side(history), "history": history}


def per_side(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``canary_series`` rows (per bucket, router and side) from ``canary_history``'s per canary: the
    counts summed, the rates over answered probes (NULL when none), as canary_series computes them
    (one read of the raw results instead of two)."""
    sides: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in history:
        side = sides.setdefault((row["bucket"], row["router_id"], row["side"]), {
            "bucket": row["bucket"], "router_id": row["router_id"], "side": row["side"],
            "probes": 0, "answered": 0, "no_answer": 0, "passed": 0, "tier_flips": 0})
        for column in ("probes", "answered", "no_answer", "passed", "tier_flips"):
            side[column] += row[column]
    for side in sides.values():
        side["pass_rate"] = side["passed"] / side["answered"] if side["answered"] else None
        side["tier_flip_rate"] = side["tier_flips"] / side["answered"] if side["answered"] else None
    return sorted(sides.values(), key=lambda r: (r["bucket"], r["router_id"], r["side"]))


def request_trace(reader: Reader, query: Any) -> dict[str, Any]:
    """Every attempt of one request (the cookbook's what_did_this_request_do)."""
    from routerwatch import cookbook

    request_id = parse_id(query, "id", MAX_REQUEST_ID, required=True)
    sql = cookbook.find("what_did_this_request_do").text
    attempts = reader.rows(sql, {"request_id": request_id})
    # Not a request id: perhaps a canary run's, whose probes (each with its request id) are listed instead.
    probes = [] if attempts else reader.rows(CANARY_RUN_SQL, {"run_id": request_id})
    return {"request_id": request_id, "attempts": attempts, "canary_run": probes,
            "cookbook": f"routerwatch cookbook what_did_this_request_do --param request_id={request_id}"}


# The probes of one canary run (the prober's run_id), over the console's longest range.
CANARY_RUN_SQL = (
    "SELECT occurred_at, router_id, canary_id, side, expected_tier, observed_tier, answer_passed, latency_ms, error, "
    "request_id FROM canary_results FINAL WHERE run_id = {run_id:String} "
    f"AND occurred_at >= now() - INTERVAL {MAX_RANGE.days} DAY ORDER BY occurred_at, canary_id LIMIT 1000"
)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


ENDPOINTS = {"routers": routers, "escalation": escalation, "latency_cost": latency_cost, "canaries": canaries,
             "request": request_trace}


def register(app: Any, store: Any, scheduler: Any = None, settings: Any = None) -> None:
    """Add ``/`` (the page), its assets and the ``/console/api/*`` endpoints to serve's faust app.

    ``settings`` (serve's): the latency SLO targets drawn on the latency chart come from its
    scheduler section, the ones the burn-rate detector pages on."""
    from routerwatch.storage.errors import QueryError, QueryLimitExceeded, StoreUnavailable, UnsafeQuery

    reader = Reader(store)

    def add_static(path: str, name: str, content_type: str) -> None:
        body = static_file(name)

        async def view(web: Any, request: Any) -> Any:
            return web.bytes(body, content_type=content_type.split(";")[0],
                             headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

        view.__name__ = "console_" + re.sub(r"\W", "_", name)
        app.page(path, name=view.__name__)(view)

    for path, (name, content_type) in STATIC.items():
        add_static(path, name, content_type)

    def answer(web: Any, body: Any, status: int = 200) -> Any:
        return web.bytes(json.dumps(body, separators=(",", ":")).encode(), content_type="application/json", status=status)

    # One console answer at a time: the page asks for five at once, and on one store they only slow
    # each other down (bench/RESULTS-console.md: 9.2 s for the five together, 4.3 s one after another).
    gate = asyncio.Semaphore(1)

    def add_api(key: str, handler: Any) -> None:
        async def view(web: Any, request: Any) -> Any:
            try:
                async with gate:
                    body = await asyncio.to_thread(handler, reader, request.query)
            except BadRequest as exc:
                return answer(web, {"error": str(exc)}, 400)
            except (UnsafeQuery, QueryLimitExceeded, QueryError) as exc:
                return answer(web, {"error": str(exc)}, 400)
            except StoreUnavailable as exc:
                return answer(web, {"error": str(exc)}, 503)
            return answer(web, body)

        view.__name__ = f"console_api_{key}"
        app.page(API_PREFIX + key, name=view.__name__)(view)

    handlers = dict(ENDPOINTS)
    if settings is not None:
        slo = {"kept_p95_ms": settings.scheduler.kept_p95_ms, "escalated_p95_ms": settings.scheduler.escalated_p95_ms}
        handlers["latency_cost"] = functools.partial(latency_cost, slo=slo)
    for key, handler in handlers.items():
        add_api(key, handler)

    base_url = getattr(getattr(scheduler, "cfg", None), "runbook_base_url", None)

    async def now_view(web: Any, request: Any) -> Any:
        # Never fails for an unreachable Alertmanager or an unreadable history (console.now says so inside).
        async with gate:
            body = await asyncio.to_thread(now_panel.now, scheduler, reader, base_url)
        return answer(web, body)

    app.page(API_PREFIX + "now", name="console_api_now")(now_view)
