"""The read-only SQL surface of the real `routerwatch serve` (issue 14, defects 1-3).

Each check is an attack that worked before: ``INTO OUTFILE`` wrote a file as serve's user, ``USE
system`` switched the shared session until a restart, ``SYSTEM STOP MERGES`` and ``KILL QUERY`` were
accepted, one long query froze ingest and a result had no size limit. The same guard must hold for
``routerwatch sql``, through serve and on its own store.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from servicekit import Env, Serve

from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit

pytestmark = pytest.mark.integration

TIME_LIMIT_S = 2
RESULT_ROWS = 1000


@pytest.fixture
def limited(kafka_bootstrap, names, tmp_path, store_backend):
    """A serve whose read queries are limited to 2 s and 1,000 rows (set through the environment)."""
    url = f"chdb://{tmp_path / 'store'}" if store_backend == "chdb" else store_backend
    env = Env(kafka=kafka_bootstrap, names=names, store_url=url, extra={
        "ROUTERWATCH_SCHEDULER__ENABLED": "false",
        "ROUTERWATCH_QUERY__MAX_EXECUTION_TIME_S": str(TIME_LIMIT_S),
        "ROUTERWATCH_QUERY__MAX_RESULT_ROWS": str(RESULT_ROWS),
    })
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        yield env, serve
    finally:
        serve.stop()


def post(env: Env, sql: str, parameters: dict | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{env.port}/query",
        data=json.dumps({"sql": sql, "parameters": parameters}).encode(),
        headers=env.headers(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def refused(env: Env, sql: str, named: str) -> dict[str, Any]:
    status, body = post(env, sql)
    assert status == 400, (sql, status, body)
    assert body.get("refused") is True and named in body["error"], (sql, body)
    return body


def send(env: Env, requests: int, seed: int) -> dict:
    rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id="query-guard",
                               decisions_topic=env.names["decisions"], feedback_topic=env.names["feedback"],
                               max_queue=100_000, close_timeout_s=60)).start()
    summary = emit(rw, Profile(router_id="query-guard"), requests, seed)
    assert rw.close()["dropped"] == 0
    return summary


def test_file_writes_session_changes_and_engine_control_are_refused(limited, tmp_path):
    env, serve = limited
    target = tmp_path / "written-through-query.txt"
    for sql in (
        f"SELECT 'x' INTO OUTFILE '{target}' APPEND",
        f"select 'x' into outfile '{target}'",
        f"SELECT 'x' INTO /* split */ OUTFILE '{target}' TRUNCATE",
        f"EXPLAIN SELECT 1 INTO OUTFILE '{target}'",
        f"SHOW TABLES INTO OUTFILE '{target}'",
    ):
        refused(env, sql, "INTO OUTFILE")
    assert not target.exists()

    refused(env, "USE system", "USE")
    # The session every later query runs in is unchanged: unqualified names still mean our database.
    assert serve.scalar("SELECT currentDatabase()") == env.names["database"]
    assert serve.scalar("SELECT count() FROM decisions") == 0

    refused(env, "SYSTEM STOP MERGES", "SYSTEM")
    refused(env, "KILL QUERY WHERE 1", "KILL")
    refused(env, "SET readonly = 0", "SET")
    refused(env, "SELECT 1 SETTINGS max_execution_time = 0", "SETTINGS")
    refused(env, "SELECT 1; DROP TABLE decisions", "several statements")
    refused(env, "SELECT * FROM file('/etc/passwd', 'LineAsString')", "file()")
    refused(env, "DROP TABLE decisions", "DROP")
    assert serve.scalar("SELECT count() FROM decisions") == 0  # still there

    # routerwatch sql goes through serve's /query: the same refusal, exit code 1.
    done = env.cli("sql", f"SELECT 'x' INTO OUTFILE '{target}'", check=False)
    assert done.returncode == 1 and "INTO OUTFILE refused" in done.stderr, done.stderr
    done = env.cli("sql", "USE system", check=False)
    assert done.returncode == 1 and "USE refused" in done.stderr, done.stderr
    assert env.cli("sql", "SELECT count() FROM decisions").stdout.strip() == "0"

    # With serve stopped, routerwatch sql opens the store itself: the same guard.
    serve.stop()
    for sql, named in ((f"SELECT 'x' INTO OUTFILE '{target}'", "INTO OUTFILE refused"), ("USE system", "USE refused"),
                       ("SYSTEM STOP MERGES", "SYSTEM refused"), ("KILL QUERY WHERE 1", "KILL refused")):
        done = env.cli("sql", sql, check=False)
        assert done.returncode == 1 and named in done.stderr, (sql, done.stderr)
    assert not target.exists()
    assert env.cli("sql", "SELECT count() FROM decisions").stdout.strip() == "0"


def test_a_long_query_is_cut_at_the_limit_and_ingest_goes_on(limited):
    env, serve = limited
    outcome: dict[str, Any] = {}

    def long_query() -> None:
        started = time.monotonic()
        outcome["answer"] = post(env, "SELECT count() FROM system.numbers")
        outcome["elapsed"] = time.monotonic() - started

    query = threading.Thread(target=long_query)
    query.start()
    summary = send(env, 300, seed=14)  # sent while the query runs
    query.join(timeout=60)
    status, body = outcome["answer"]
    assert status == 400 and body.get("limit") is True, body
    assert "MAX_EXECUTION_TIME_S" in body["error"] and f"{TIME_LIMIT_S} s" in body["error"], body
    assert outcome["elapsed"] < TIME_LIMIT_S + 8, outcome  # cut at the limit (slack for a loaded machine)
    # Ingest went on: every event is stored, and serve is healthy.
    serve.wait_for("SELECT count() FROM decisions", 300)
    assert serve.scalar("SELECT count() FROM attempts") == summary["attempts"]
    assert serve.health()["status"] == "ok"

    # A second long query while events arrive: ingest waits for it at most the limit.
    query = threading.Thread(target=long_query)
    query.start()
    started = time.monotonic()
    send(env, 200, seed=15)
    serve.wait_for("SELECT count() FROM decisions", 500)
    query.join(timeout=60)
    assert time.monotonic() - started < 60
    assert outcome["answer"][0] == 400 and outcome["answer"][1].get("limit") is True


def test_a_result_larger_than_the_row_limit_is_refused_not_truncated(limited):
    env, serve = limited
    status, body = post(env, "SELECT number FROM system.numbers LIMIT 5000")
    assert status == 400 and body.get("limit") is True, body
    assert "MAX_RESULT_ROWS" in body["error"], body
    assert len(serve.query(f"SELECT number FROM system.numbers LIMIT {RESULT_ROWS}")) == RESULT_ROWS
    done = env.cli("sql", "SELECT number FROM system.numbers LIMIT 5000", check=False)
    assert done.returncode == 1 and "MAX_RESULT_ROWS" in done.stderr, done.stderr
