"""The console's JSON endpoints refuse bad parameters with a message, before any query runs."""

from __future__ import annotations

import json

from datetime import datetime, timedelta, timezone

import pytest

from routerwatch.console import now as now_panel
from routerwatch.console import routes
from routerwatch.console.routes import BadRequest
from routerwatch.storage.client import QueryResult

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


class NoStore:
    """A reader that fails the test when a query runs: validation comes first."""

    def query(self, sql, parameters=None):
        raise AssertionError(f"a query ran: {sql}")

    rows = query


def test_windows_are_iso_times_or_durations():
    assert routes.parse_window({}, NOW) == (NOW - timedelta(hours=6), NOW)
    assert routes.parse_window({"since": "90m"}, NOW) == (NOW - timedelta(minutes=90), NOW)
    start, end = routes.parse_window({"since": "2026-12-07T10:00:00Z", "until": "2026-12-07T11:00:00Z"}, NOW)
    assert (start.hour, end.hour, start.tzinfo) == (10, 11, timezone.utc)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "since/until must be ISO times"),
        ({"since": "2026-12-07T11:00:00Z", "until": "2026-12-07T10:00:00Z"}, "empty time range"),
        ({"since": "40d"}, "at most 31 days"),
    ],
)
@pytest.mark.parametrize("endpoint", ["routers", "escalation", "latency_cost", "canaries"])
def test_bad_windows_are_refused_with_a_message(endpoint, query, message):
    with pytest.raises(BadRequest, match=message):
        routes.ENDPOINTS[endpoint](NoStore(), query)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "id is required"),
        ({"id": "x" * 201}, "longer than 200"),
        ({"id": "req 1"}, "printable ASCII without spaces"),
        ({"id": "req-\u00e9"}, "printable ASCII without spaces"),
    ],
)
def test_request_ids_are_checked(query, message):
    with pytest.raises(BadRequest, match=message):
        routes.request_trace(NoStore(), query)


def test_router_ids_are_checked():
    with pytest.raises(BadRequest, match="router is longer"):
        routes.escalation(NoStore(), {"router": "r" * 201})


def test_the_chart_step_fits_the_range():
    hours = lambda h: (NOW - timedelta(hours=h), NOW)  # noqa: E731
    # At most CONSOLE_BUCKETS (120) buckets: 1-5 minutes on recent ranges, whole hours beyond a day,
    # whole days beyond a week (the daily rollup answers a 30-day page).
    assert routes.console_step(*hours(1)) == 1
    assert routes.console_step(*hours(2)) == 1
    assert routes.console_step(*hours(6)) == 5
    assert routes.console_step(*hours(24)) == 15
    assert routes.console_step(*hours(24 * 7)) == 120
    assert routes.console_step(*hours(24 * 30)) == 1440
    assert routes.console_step(*hours(24 * 31)) == 1440
    for h in (1, 3, 6, 12, 24, 24 * 7, 24 * 31):
        assert h * 60 / routes.console_step(*hours(h)) <= routes.CONSOLE_BUCKETS


def test_the_static_files_ship_with_the_package():
    for path, (name, content_type) in routes.STATIC.items():
        body = routes.static_file(name)
        assert body, name
        offline = body.replace(b"http://www.w3.org/2000/svg", b"")  # the SVG namespace, not a download
        assert b"http://" not in offline and b"https://" not in offline and b"//cdn" not in offline, name
    index = routes.static_file("index.html").decode()
    for path in routes.STATIC:
        if path != "/":
            assert f'"{path}"' in index, path


def store_answer(rows: list[dict]) -> QueryResult:
    """The store's answer holding these rows (columns from the first)."""
    columns = list(rows[0]) if rows else ["segment"]
    return QueryResult(columns, [tuple(r[c] for c in columns) for r in rows])


class NoHistory:
    """A reader whose store cannot answer: Now still answers, saying the history is unavailable."""

    def rows(self, sql, parameters=None):
        raise RuntimeError("store down")

    def query(self, sql, parameters=None):
        raise RuntimeError("store down")

    def capped(self, sql, parameters=None):
        raise RuntimeError("store down")


def test_without_detectors_now_says_so():
    answer = now_panel.now(None, NoHistory())
    assert answer["detectors"] is False and answer["evaluated_at"] is None and answer["firing"] == []
    assert answer["silenced"]["available"] is False and answer["resolved"]["available"] is False


def test_now_lists_the_firing_alerts_with_figures_runbook_and_query():
    from types import SimpleNamespace

    from routerwatch.drift.verdict import Severity, Signal, Verdict

    firing = Verdict(
        signal=Signal.ESCALATION_DRIFT, labels={"router": "r1", "tier": "small", "category": "billing", "direction": "up"},
        firing=True, severity=Severity.CRITICAL, statistic=14.0, threshold=11.0, baseline_value=0.16, observed_value=0.59,
        magnitude=0.43, change_start=datetime(2026, 12, 7, 11, 10, tzinfo=timezone.utc), evaluated_at=NOW,
        summary="escalation rate rose", description="CUSUM crossed",
    )
    quiet = firing.model_copy(update={"firing": False, "labels": {**firing.labels, "category": "refunds"}})
    scheduler = SimpleNamespace(last=SimpleNamespace(firing=[firing], verdicts=[firing, quiet], now=NOW), client=None,
                                cfg=SimpleNamespace(runbook_base_url=None))
    answer = now_panel.now(scheduler, NoHistory(), "https://runbooks.example/README.md")
    assert answer["detectors"] is True and answer["evaluated_at"] == NOW.isoformat() and answer["series_evaluated"] == 2
    (alert,) = answer["firing"]
    assert alert["labels"]["alertname"] == "RouterwatchEscalationDrift" and alert["labels"]["router"] == "r1"
    notes = alert["annotations"]
    assert (notes["baseline"], notes["observed"], notes["magnitude"]) == ("0.16", "0.59", "0.43")
    assert notes["change_start"].startswith("2026-12-07T11:10")
    assert notes["runbook_url"].startswith("https://runbooks.example/README.md#")
    assert "escalation_series(" in notes["query"] and "router_id = 'r1'" in notes["query"]


def test_a_long_answer_is_cut_and_says_so(monkeypatch):

    class Store:
        def query(self, sql, parameters=None, readonly=False):
            assert readonly
            n = 5 if "FROM attempt_series(" in sql and "escalation_rate" in sql else 0
            return store_answer([{"minute": NOW, "rate": float("nan")}] * n)

    monkeypatch.setattr(routes, "ROW_CAP", 3)
    monkeypatch.setattr(routes, "escalation_baselines", lambda reader, router: [])
    answer = routes.escalation(routes.Reader(Store()), {"since": "1h"})
    assert answer["truncated"] is True and len(answer["series"]) == 3
    assert answer["series"][0] == {"minute": NOW.isoformat(), "rate": None}  # JSON-safe: times ISO, NaN null


def test_the_chart_tier_and_router_filter_the_series_as_parameters():

    seen = []

    class Store:
        def query(self, sql, parameters=None, readonly=False):
            seen.append((sql, parameters))
            return store_answer([])

    original = routes.escalation_baselines
    try:
        routes.escalation_baselines = lambda reader, router: [{"tier": "small"}, {"tier": "large"}]
        answer = routes.escalation(routes.Reader(Store()), {"since": "1h", "router": "r'1", "tier": "small",
                                                            "environment": "prod"})
    finally:
        routes.escalation_baselines = original
    (sql, parameters), = [(q, p) for q, p in seen if "escalation_rate" in q]
    assert "WHERE outcome IN ('accepted', 'escalated') AND router_id = {router_id:String} AND environment = {environment:String} " \
           "AND tier = {tier:String} GROUP BY" in sql
    assert parameters == {"router_id": "r'1", "environment": "prod", "tier": "small"}
    assert "router_id = 'r\\'1' AND environment = 'prod' AND tier = 'small' GROUP BY" in answer["series_sql"]
    (reasons_sql, reasons_parameters), = [(q, p) for q, p in seen if "escalation_reason" in q]
    assert "outcome = 'escalated' AND router_id = {router_id:String}" in reasons_sql and reasons_parameters == parameters
    assert answer["baselines"] == [{"tier": "small"}]
    # The tables read the figure view split by router (a router filter wins over the environment).
    assert any("tier_scoreboard(" in q and "by = 'router'" in q for q, _ in seen) and answer["tables_by"] == "router"


def test_an_environment_filter_alone_reads_the_tables_by_environment():

    class Store:
        def query(self, sql, parameters=None, readonly=False):
            rows = [{"segment": "prod", "tier": "small"}, {"segment": "staging", "tier": "small"}] if "by = 'environment'" in sql else []
            return store_answer(rows)

    answer = routes.latency_cost(routes.Reader(Store()), {"since": "1h", "environment": "prod"})
    assert answer["tables_by"] == "environment"
    assert answer["cost"] == [{"segment": "prod", "tier": "small"}]


def test_answers_are_json_plain_a_column_at_a_time():
    naive = datetime(2026, 12, 7, 11, 0)
    columns = routes.plain_columns([
        ["a", None, "c"], [1, 2, None], [0.5, float("nan"), None], [naive, NOW, None],
        [[1.0, float("nan")], None, [2.0, 3.0]], [{"k": float("nan")}, {}, None],
    ])
    assert columns == [
        ["a", None, "c"], [1, 2, None], [0.5, None, None],
        ["2026-12-07T11:00:00+00:00", NOW.isoformat(), None],  # times without a zone are UTC
        [[1.0, None], None, [2.0, 3.0]], [{"k": None}, {}, None],
    ]
    json.dumps(columns, allow_nan=False)  # nothing JSON cannot hold
