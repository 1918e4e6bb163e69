"""routerwatch.cookbook: windows, parameter binding and refusals, the packaged queries, the output format."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest

from routerwatch import cli, cookbook
from routerwatch.errors import UsageError
from routerwatch.storage.client import QueryResult

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 7, 12, 34, 56, tzinfo=timezone.utc)
WINDOWED = "SELECT count() FROM attempts WHERE occurred_at >= {since:DateTime('UTC')} AND occurred_at < {until:DateTime('UTC')}"
BASELINE = WINDOWED + " AND occurred_at >= {baseline_since:DateTime('UTC')}"


def test_placeholders_outside_strings_and_comments():
    sql = "-- {nope:String}\nSELECT '{nor:String}', {a:UInt32}, { b : DateTime('UTC') } /* {c:String} */ FROM t"
    assert cookbook.placeholders(sql) == {"a": "UInt32", "b": "DateTime('UTC')"}


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-07T10:00", datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)),
    ("2026-12-07T10:00Z", datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)),
    ("2026-12-07T11:00+01:00", datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)),
    ("2026-12-07 10:00:30", datetime(2026, 12, 7, 10, 0, 30, tzinfo=timezone.utc)),
    ("90m", datetime(2026, 12, 7, 11, 4, 56, tzinfo=timezone.utc)),
    ("6h", datetime(2026, 12, 7, 6, 34, 56, tzinfo=timezone.utc)),
    ("7d", datetime(2026, 11, 30, 12, 34, 56, tzinfo=timezone.utc)),
])
def test_parse_time_accepts_iso_utc_and_durations(text, expected):
    assert cookbook.parse_time(text, option="--since", anchor=NOW, anchor_name="--until") == expected


def test_a_time_that_is_not_one_says_what_is_accepted():
    with pytest.raises(UsageError) as caught:
        cookbook.parse_time("banana", option="--since", anchor=NOW, anchor_name="--until")
    message = str(caught.value)
    assert message.startswith("--since 'banana' is not a time")
    assert "ISO 8601 time in UTC such as 2026-12-07T10:00" in message and "90m, 6h, 7d" in message
    assert "back from --until" in message


def test_window_defaults_alignment_and_baseline():
    w = cookbook.resolve_window(None, None, None, NOW)
    assert (w.since, w.until) == (datetime(2026, 12, 7, 11, 34, tzinfo=timezone.utc), datetime(2026, 12, 7, 12, 35, tzinfo=timezone.utc))
    w = cookbook.resolve_window("2026-12-07T10:00", "2026-12-07T11:00", None, NOW)
    assert w.baseline_since == datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    w = cookbook.resolve_window("15m", "2026-12-07T11:00", "120m", NOW)
    assert (w.since, w.baseline_since) == (datetime(2026, 12, 7, 10, 45, tzinfo=timezone.utc),
                                           datetime(2026, 12, 7, 8, 45, tzinfo=timezone.utc))


@pytest.mark.parametrize(("since", "until", "baseline", "says"), [
    ("2026-12-07T11:00", "2026-12-07T10:00", None, "must be before --until"),
    ("2026-12-07T10:00", "2026-12-07T10:00", None, "must be before --until"),
    ("2026-12-07T10:00", "2026-12-07T11:00", "2026-12-07T10:30", "must be before --since"),
    (None, "tomorrow", None, "--until 'tomorrow' is not a time"),
])
def test_empty_or_reversed_windows_are_refused(since, until, baseline, says):
    with pytest.raises(UsageError, match=says):
        cookbook.resolve_window(since, until, baseline, NOW)


def test_bind_gives_the_window_only_to_the_placeholders_the_query_has():
    bound = cookbook.bind(WINDOWED, since="2026-12-07T10:00", until="2026-12-07T11:00", now=NOW)
    assert bound.parameters == {"since": "2026-12-07 10:00:00", "until": "2026-12-07 11:00:00"}
    bound = cookbook.bind(BASELINE, ["since=2026-12-07T10:00"], until="2026-12-07T11:00", now=NOW)
    assert bound.parameters["baseline_since"] == "2026-12-07 09:00:00" and bound.with_baseline
    assert cookbook.bind("SELECT {id:String}", ["id=a=b"]).parameters == {"id": "a=b"}
    assert cookbook.bind("SELECT 1").parameters == {} and cookbook.bind("SELECT 1").window is None


@pytest.mark.parametrize(("sql", "params", "options", "says"), [
    ("SELECT 1", ["x"], {}, "--param wants NAME=VALUE"),
    (WINDOWED, ["recent_minutes=15"], {}, "the cookbook's windows are absolute now"),
    (WINDOWED, ["other=1"], {}, "--param other: the query has no {other:Type} placeholder (its parameters: since, until)"),
    ("SELECT {id:String}", [], {}, "the query needs --param id=VALUE (String)"),
    ("SELECT 1", [], {"since": "1h"}, "--since: this query takes no since"),
    (WINDOWED, [], {"baseline_since": "1h"}, "--baseline-since: this query takes no baseline_since"),
    (WINDOWED, ["since=1h"], {"since": "2h"}, "since is given twice"),
    ("SELECT 1", [], {"since": "banana"}, "--since 'banana' is not a time"),
])
def test_bind_refuses_what_cannot_be_meant(sql, params, options, says):
    with pytest.raises(UsageError) as caught:
        cookbook.bind(sql, params, now=NOW, **options)
    assert says in str(caught.value)


def test_every_packaged_query_says_its_question_and_parameters():
    queries = cookbook.available()
    assert {q.name for q in queries} == {p.stem for p in (REPO / "sql/queries").glob("*.sql")}
    for q in queries:
        assert q.question.endswith(("?", ".")), q.name
        params = q.parameters
        assert set(params) <= {"since", "until", "baseline_since", "request_id"}, q.name
        assert ("since" in params) == ("until" in params), q.name
        header = " ".join(q.header)
        for name in params:
            assert name in header, f"{q.name}: the header comment does not name {name}"
        assert "minutes" not in params, q.name
        if "since" in params:
            assert params["since"] == "DateTime('UTC')" and "[since, until)" in header, q.name
    assert cookbook.find("why_did_escalations_jump.sql").name == "why_did_escalations_jump"
    with pytest.raises(UsageError, match="known: attempts_by_tier_outcome, "):
        cookbook.find("nope")


def test_engine_refusal_is_the_views_message():
    engine = ("Code: 395. DB::Exception: by must be one of '' (none), 'category'; got 'tier': while executing "
              "'FUNCTION throwIf(_CAST(1_UInt8, 'UInt8'_String) :: 1, ...) UInt8 : 3'. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)")
    assert cookbook.engine_refusal(engine) == "by must be one of '' (none), 'category'; got 'tier'"
    assert cookbook.engine_refusal("Code: 62. DB::Exception: Syntax error (SYNTAX_ERROR)") is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_default_format_is_a_table_on_a_terminal_and_tsv_otherwise():
    assert cookbook.default_format(_Tty()) == "table"
    assert cookbook.default_format(io.StringIO()) == "tsv"


@pytest.fixture
def fake_reader(monkeypatch):
    seen = {}

    class Reader:
        def __init__(self, settings):
            pass

        def query(self, sql, parameters=None):
            seen["parameters"] = parameters
            return QueryResult(columns=["tier", "rate", "n"], rows=[("small", 0.0029587000000000003, 12), ("large", None, 3)])

        def close(self):
            pass

    monkeypatch.setattr(cli, "_settings", lambda: None)
    monkeypatch.setattr("routerwatch.storage.reader.Reader", Reader)
    return seen


def test_sql_prints_a_table_on_a_terminal(fake_reader, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdout", _Tty())
    import sys

    assert cli.main(["sql", "SELECT 1"]) == 0
    out = sys.stdout.getvalue()
    assert out.splitlines() == ["tier      rate   n", "-----  -------  --", "small  0.00296  12", "large        -   3", "(2 rows)"]


def test_sql_formats_on_request_and_tsv_to_a_pipe(fake_reader, capsys):
    assert cli.main(["sql", "SELECT 1"]) == 0
    assert capsys.readouterr().out == "small\t0.0029587000000000003\t12\nlarge\t\\N\t3\n"
    assert cli.main(["sql", "SELECT 1", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "tier,rate,n\nsmall,0.0029587000000000003,12\nlarge,,3\n"
    assert cli.main(["sql", "SELECT 1", "--format", "table"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "small  0.00296  12"


def test_cookbook_runs_a_packaged_query_with_its_window(fake_reader, capsys):
    assert cli.main(["cookbook", "canary_health", "--since", "2026-12-07T10:00", "--until", "2026-12-07T11:00",
                     "--format", "table"]) == 0
    assert fake_reader["parameters"] == {"since": "2026-12-07 10:00:00", "until": "2026-12-07 11:00:00"}
    assert capsys.readouterr().out.splitlines()[0] == "canary_health 2026-12-07 10:00 .. 2026-12-07 11:00 UTC"


def test_sql_with_since_banana_exits_2_with_what_is_accepted(fake_reader, capsys):
    assert cli.main(["sql", "@" + str(REPO / "sql/queries/canary_health.sql"), "--since", "banana"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ISO 8601 time in UTC such as 2026-12-07T10:00" in err and "90m, 6h, 7d" in err
