"""The read-only SQL guard (storage/sqlguard.py) and the limits of Store's read-only path.

Parsing needs the engine's own parser, so these tests open a chDB store (the session's path, as the
other store tests do): the guard parses through the store's read-only handle, exactly as /query does.
Issue 14, defects 1-3: a file written through INTO OUTFILE, USE switching the shared session,
SYSTEM / KILL accepted, and no execution, memory or result limits.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from routerwatch.config import QuerySettings, Settings
from routerwatch.errors import PermanentError
from routerwatch.report.scoreboard import BY_CHOICES, queries
from routerwatch.storage import sqlguard
from routerwatch.storage.client import Store
from routerwatch.storage.errors import QueryError, QueryLimitExceeded, StoreUnavailable, UnsafeQuery

REPO = Path(__file__).resolve().parents[2]
DATABASE = "sqlguard_test"


@pytest.fixture(scope="module")
def store(session_chdb_path):
    limits = QuerySettings(max_execution_time_s=2, max_result_rows=1000)
    with Store(f"chdb://{session_chdb_path}", DATABASE, limits) as s:
        s.command("CREATE TABLE IF NOT EXISTS t (a UInt64, b String) ENGINE = MergeTree ORDER BY a")
        s.command("TRUNCATE TABLE t")
        s.command("INSERT INTO t SELECT number, toString(number) FROM numbers(5000)")
        yield s


def guard(store: Store, sql: str, parameters: dict | None = None) -> str:
    return sqlguard.check_read_only(sql, parameters, store._parse)


# (statement, what the refusal must name)
ATTACKS = [
    ("SELECT 'x' INTO OUTFILE 'f.txt' APPEND", "INTO OUTFILE"),
    ("select 1 into   outfile 'f.txt'", "INTO OUTFILE"),
    ("SELECT 1 INTO/* a comment */OUTFILE 'f.txt' TRUNCATE", "INTO OUTFILE"),
    ("SELECT 1 INTO OUTFILE 'f.txt' AND STDOUT", "INTO OUTFILE"),
    ("SELECT 1 INTO OUTFILE 'f.gz' COMPRESSION 'gzip' FORMAT CSV", "INTO OUTFILE"),
    ("(SELECT 1) INTO OUTFILE 'f.txt'", "INTO OUTFILE"),
    ("SHOW TABLES INTO OUTFILE 'f.txt'", "INTO OUTFILE"),
    ("DESCRIBE t INTO OUTFILE 'f.txt'", "INTO OUTFILE"),
    ("EXPLAIN SELECT 1 INTO OUTFILE 'f.txt'", "INTO OUTFILE"),
    ("EXPLAIN AST SELECT 1 INTO OUTFILE 'f.txt'", "INTO OUTFILE"),
    ("USE system", "USE"),
    ("use `system`", "USE"),
    ("  -- leading comment\n USE default", "USE"),
    ("SYSTEM STOP MERGES", "SYSTEM"),
    ("SYSTEM DROP MARK CACHE", "SYSTEM"),
    ("KILL QUERY WHERE 1", "KILL"),
    ("KILL MUTATION WHERE 1", "KILL"),
    ("SET readonly = 0", "SET"),
    ("SET max_execution_time = 0", "SET"),
    ("INSERT INTO t VALUES (1, 'a')", "INSERT"),
    ("INSERT INTO t SELECT * FROM t", "INSERT"),
    ("ALTER TABLE t DELETE WHERE 1", "ALTER"),
    ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE"),
    ("DROP TABLE t", "DROP"),
    ("OPTIMIZE TABLE t FINAL", "OPTIMIZE"),
    ("TRUNCATE TABLE t", "TRUNCATE"),
    ("RENAME TABLE t TO u", "RENAME"),
    ("GRANT SELECT ON *.* TO someone", "GRANT"),
    ("EXPLAIN PLAN INSERT INTO t SELECT * FROM t", "INSERT"),
    ("SHOW PROCESSLIST", "SHOW PROCESSLIST"),
    ("SELECT 1; SELECT 2", "several statements"),
    ("SELECT 1; DROP TABLE t", "several statements"),
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS readonly"),
    ("SELECT count() FROM system.numbers SETTINGS max_execution_time = 0", "SETTINGS max_execution_time"),
    ("SELECT 1 SETTINGS max_result_rows = 0, result_overflow_mode = 'break'", "SETTINGS"),
    ("SELECT 1 UNION ALL SELECT 2 SETTINGS max_memory_usage = 0", "SETTINGS"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file()"),
    ("SELECT file('/etc/passwd')", "file()"),
    ("SELECT * FROM url('http://127.0.0.1:1/x', CSV)", "url()"),
    ("SELECT * FROM URL('http://127.0.0.1:1/x', CSV)", "URL()"),
    ("SELECT * FROM remote('127.0.0.1', system.one)", "remote()"),
    ("SELECT * FROM remoteSecure('127.0.0.1', system.one)", "remoteSecure()"),
    ("SELECT * FROM cluster('default', system.one)", "cluster()"),
    ("SELECT * FROM s3('http://127.0.0.1:1/b/k', CSV)", "s3()"),
    ("SELECT * FROM hdfs('hdfs://h/x', CSV)", "hdfs()"),
    ("SELECT * FROM executable('sh', TSV, 'a String')", "executable()"),
    ("SELECT * FROM mysql('h:3306', 'd', 't', 'u', 'p')", "mysql()"),
    ("SELECT * FROM postgresql('h:5432', 'd', 't', 'u', 'p')", "postgresql()"),
    ("SELECT * FROM jdbc('jdbc:x', 't')", "jdbc()"),
    ("SELECT * FROM odbc('DSN=x', 't')", "odbc()"),
    ("SELECT * FROM input('a Int8')", "input()"),
    ("SELECT * FROM Python(anything)", "Python()"),
    ("SELECT * FROM filesystem('/')", "filesystem()"),
    ("SELECT * FROM merge('system', '.*')", "merge()"),
    ("SELECT (SELECT count() FROM file('x.csv'))", "file()"),
    ("SELECT * FROM t WHERE a IN (SELECT a FROM url('http://x/y', CSV, 'a UInt64'))", "url()"),
    ("WITH x AS (SELECT * FROM remote('h', system.one)) SELECT * FROM x", "remote()"),
    ("EXPLAIN PLAN SELECT * FROM url('http://x/y', CSV)", "url()"),
    ("SELECT * FROM system.users", "system.users"),
    ("SELECT name FROM system.named_collections", "system.named_collections"),
    ("SELECT query FROM system.query_log", "system.query_log"),
    ("SELECT * FROM system.processes", "system.processes"),
    ("SELECT 1 FORMAT JSON", "FORMAT JSON"),
    ("", "no SQL statement"),
    ("-- only a comment", "no SQL statement"),
]

ALLOWED = [
    "SELECT count() FROM t",
    "select a, b from t where a < 10 order by a limit 3",
    "WITH 2 AS k SELECT a * k FROM t LIMIT 1",
    "SELECT a FROM t WHERE a = {x:UInt64}",
    "SELECT 'INTO OUTFILE ''x''' AS text, 'USE system' AS other",
    "SELECT `a` AS `INTO OUTFILE` FROM t LIMIT 1",
    "SELECT 1;",
    "SELECT 1 -- trailing comment",
    "SELECT 1 UNION ALL SELECT 2",
    "SELECT 1 EXCEPT SELECT 2",
    "SELECT count() FROM numbers(10)",
    "SELECT * FROM generateRandom('a Int8', 1) LIMIT 2",
    "SELECT name FROM system.tables WHERE database = currentDatabase()",
    "SELECT count() FROM system.parts",
    "SHOW TABLES",
    "SHOW CREATE TABLE t",
    "DESCRIBE TABLE t",
    "DESC t",
    "EXISTS TABLE t",
    "EXPLAIN SELECT 1",
    "EXPLAIN PIPELINE header = 1 SELECT count() FROM t",
    "EXPLAIN AST SELECT 1",
]


@pytest.mark.parametrize(("sql", "named"), ATTACKS, ids=[a[0][:50] for a in ATTACKS])
def test_statements_that_do_more_than_read_are_refused_with_a_reason(store, sql, named):
    with pytest.raises(UnsafeQuery) as refused:
        guard(store, sql)
    assert named.lower() in str(refused.value).lower(), str(refused.value)
    assert isinstance(refused.value, PermanentError)


@pytest.mark.parametrize("sql", ALLOWED)
def test_statements_that_only_read_pass_and_run(store, sql):
    statement = guard(store, sql, {"x": 3})
    assert statement and "\n" not in statement
    store.query(sql, {"x": 3}, readonly=True)  # and the same path runs it


def test_the_canonical_statement_is_returned(store):
    assert guard(store, "select  a\n  from t -- why\n where a = 1;") == "SELECT a FROM t WHERE a = 1"


def test_a_parameter_naming_a_refused_table_is_refused(store):
    with pytest.raises(UnsafeQuery, match="system.users"):
        guard(store, "SELECT * FROM {tb:Identifier}", {"tb": "system.users"})


def test_a_missing_parameter_is_the_engines_error_not_a_refusal(store):
    with pytest.raises(QueryError) as failed:
        guard(store, "SELECT {x:UInt64}")
    assert not isinstance(failed.value, UnsafeQuery)


def _sample(kind: str) -> str:
    return "x" if kind.startswith("String") else "2025-01-01 00:00:00" if kind.startswith("DateTime") else "5"


@pytest.mark.parametrize("path", sorted((REPO / "sql" / "queries").glob("*.sql")), ids=lambda p: p.name)
def test_every_cookbook_query_passes_the_guard(store, path):
    sql = path.read_text()
    parameters = {name: _sample(kind) for name, kind in re.findall(r"\{(\w+):([^}]+)\}", sql)}
    guard(store, sql, parameters)


def test_every_report_query_passes_the_guard(store):
    until = datetime(2025, 1, 2, tzinfo=timezone.utc)
    for by in BY_CHOICES:
        for key, sql, parameters in queries(until - timedelta(hours=24), until, by):
            try:
                guard(store, sql, parameters)
            except UnsafeQuery as exc:  # pragma: no cover - the assertion message
                raise AssertionError(f"report section {key} (by={by!r}) refused: {exc}") from exc


def test_explain_ast_of_an_into_outfile_query_writes_nothing(store, tmp_path, monkeypatch):
    # The guard's second parse step runs EXPLAIN AST on the canonical text: even with the
    # INTO OUTFILE clause in it (the textual layer would have refused it first), nothing is written.
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "written.txt"
    text = store._parse(f"EXPLAIN AST SELECT 1 INTO OUTFILE '{target}' APPEND")
    assert "SelectWithUnionQuery" in text
    assert not target.exists()
    with pytest.raises(UnsafeQuery):
        store.query(f"SELECT 'x' INTO OUTFILE '{target}' APPEND", readonly=True)
    assert not target.exists() and not any(tmp_path.iterdir())


def test_parsing_a_use_statement_changes_no_session(store):
    before = store.query("SELECT currentDatabase()", readonly=True).scalar()
    assert before == DATABASE
    store._parse("EXPLAIN AST USE system")
    with pytest.raises(UnsafeQuery):
        store.query("USE system", readonly=True)
    assert store.query("SELECT currentDatabase()", readonly=True).scalar() == DATABASE
    assert store.query("SELECT currentDatabase()").scalar() == DATABASE  # the writer's handle
    assert store.query("SELECT count() FROM t", readonly=True).scalar() == 5000


def test_the_read_only_handle_keeps_its_limits(store):
    for sql in ("SET max_execution_time = 0", "SET readonly = 0"):
        with pytest.raises(UnsafeQuery):
            store.query(sql, readonly=True)
    settings = dict(
        store.query(
            "SELECT name, value FROM system.settings WHERE name IN "
            "('readonly', 'max_execution_time', 'max_result_rows', 'result_overflow_mode', 'max_memory_usage')",
            readonly=True,
        ).rows
    )
    assert settings == {
        "readonly": "1",
        "max_execution_time": "2",
        "max_result_rows": "1000",
        "result_overflow_mode": "throw",
        "max_memory_usage": str(1 << 30),
    }
    # The engine itself refuses a change on that handle (the guard aside).
    with pytest.raises(QueryError, match="readonly"):
        store._call("command", "SET max_execution_time = 0", readonly=True)


def test_a_long_query_is_stopped_at_the_time_limit(store):
    started = time.monotonic()
    with pytest.raises(QueryLimitExceeded, match="MAX_EXECUTION_TIME_S") as stopped:
        store.query("SELECT count() FROM system.numbers", readonly=True)
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 10, elapsed
    assert "2 s" in str(stopped.value)
    assert store.query("SELECT count() FROM t", readonly=True).scalar() == 5000  # the handle still answers


def test_a_writer_waits_at_most_the_time_limit_behind_a_read_query(store):
    import threading

    failures: list[BaseException] = []

    def long_read() -> None:
        try:
            store.query("SELECT count() FROM system.numbers", readonly=True)
        except QueryLimitExceeded:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    reader = threading.Thread(target=long_read)
    reader.start()
    # Wait (on a condition, not a fixed sleep) until the read query is running in the engine.
    deadline = time.monotonic() + 10
    while not store._read_gate.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    store.command("INSERT INTO t SELECT 100000 + number, 'w' FROM numbers(1)")
    waited = time.monotonic() - started
    reader.join()
    store.command("ALTER TABLE t DELETE WHERE a >= 100000 SETTINGS mutations_sync = 1")
    assert not failures
    assert waited < 2 + 3, waited  # the 2 s limit, and slack for a loaded machine


def test_a_result_larger_than_the_row_limit_is_refused_not_truncated(store):
    with pytest.raises(QueryLimitExceeded, match="MAX_RESULT_ROWS"):
        store.query("SELECT a FROM t", readonly=True)
    assert len(store.query("SELECT a FROM t LIMIT 1000", readonly=True).rows) == 1000


def test_a_second_read_query_waits_for_the_first_then_gives_up(store):
    limits = store.query_limits
    assert store._read_gate.acquire(timeout=5)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="another read query"):
            store.query("SELECT 1", readonly=True)
        assert time.monotonic() - started >= limits.max_execution_time_s
    finally:
        store._read_gate.release()


def test_the_limits_are_settings_with_sensible_defaults(monkeypatch):
    for key in list(os.environ):
        if key.startswith("ROUTERWATCH_"):
            monkeypatch.delenv(key)
    defaults = Settings().query
    assert (defaults.max_execution_time_s, defaults.max_memory_bytes, defaults.max_result_rows) == (10.0, 1 << 30, 100_000)
    monkeypatch.setenv("ROUTERWATCH_QUERY__MAX_EXECUTION_TIME_S", "2")
    monkeypatch.setenv("ROUTERWATCH_QUERY__MAX_RESULT_ROWS", "50")
    assert Settings().query.max_execution_time_s == 2.0 and Settings().query.max_result_rows == 50
    monkeypatch.setenv("ROUTERWATCH_QUERY__MAX_EXECUTION_TIME_S", "0")  # "no limit" is not accepted
    with pytest.raises(Exception):
        Settings()
