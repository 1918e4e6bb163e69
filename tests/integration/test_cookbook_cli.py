"""`routerwatch cookbook` / `routerwatch sql` on an embedded store holding known past traffic.

Issue 17: on-call reads the incident's window hours later, so a cookbook query takes an absolute
window (--since/--until) and answers for that window only; a person reads an aligned table (NULL
and NaN as '-'), a script still gets TSV; a parameter that cannot be meant (by='tier', --since
banana, a reversed window, an old --param recent_minutes) is refused with exit 2 and one line
saying what is accepted.

The store is filled in-process through the ingest sink (no Kafka), closed, then read by the CLI as
a subprocess (one process at a time may open an embedded store).
"""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic_core import to_json

from routerwatch.events import decode
from routerwatch.events.models import RoutingDecision
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.simulate import Profile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# The incident: 30 minutes of traffic on 2026-11-02 from 10:00 UTC; a later, unrelated half hour at 14:00.
INCIDENT = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
LATER = datetime(2026, 11, 2, 14, 0, tzinfo=timezone.utc)
PROFILE = Profile(router_id="incident-router", minutes=30, shadow_share=0.0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cookbook") / "store"
    incident = events(PROFILE, 60, 1, start=INCIDENT.timestamp())
    later = events(PROFILE, 40, 2, start=LATER.timestamp())
    store = Store(f"chdb://{path}", "routerwatch").start()
    try:
        migrations.migrate_up(store, default_sql_dir() / "migrations")
        sink = ClickHouseSink(store, load_prices(default_prices_file()))
        batch = [Located(decode(RoutingDecision, to_json(e)), 0, i) for i, e in enumerate(incident + later)]
        sink.store_batch("decision", batch)
    finally:
        store.stop()
    return f"chdb://{path}"


@pytest.fixture(scope="module")
def incident_events():
    return events(PROFILE, 60, 1, start=INCIDENT.timestamp())


def _env(store_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERWATCH_")}
    env.update({
        "ROUTERWATCH_CLICKHOUSE_URL": store_url,
        "ROUTERWATCH_DATABASE": "routerwatch",
        "ROUTERWATCH_HTTP__PORT": str(_closed_port()),  # no serve answers: the CLI opens the store itself
        "PYTHONUNBUFFERED": "1",
    })
    return env


def cli(store_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "routerwatch.cli", *args], env=_env(store_url), cwd=REPO,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def cli_on_a_terminal(store_url: str, *args: str) -> tuple[int, str]:
    """Run with stdout on a pseudo-terminal (what a person at a shell has); returns (exit code, output)."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.Popen([sys.executable, "-m", "routerwatch.cli", *args], env=_env(store_url), cwd=REPO,
                                stdout=follower, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = done.wait(timeout=120)
    finally:
        os.close(leader)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


def _attempts_by_tier(evs) -> Counter:
    return Counter(a["tier"] for e in evs for a in e["attempts"])


def test_a_cookbook_query_over_a_past_window_answers_for_that_window(store_url, incident_events):
    done = cli(store_url, "cookbook", "attempts_by_tier_outcome",
               "--since", "2026-11-02T10:00", "--until", "2026-11-02T10:30", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["tier"]: r["attempts"] for r in rows} == dict(_attempts_by_tier(incident_events))

    # The same through `sql @FILE`, the later half hour only.
    later = events(PROFILE, 40, 2, start=LATER.timestamp())
    done = cli(store_url, "sql", "@sql/queries/attempts_by_tier_outcome.sql",
               "--since", "2026-11-02T14:00Z", "--until", "2026-11-02T14:30Z", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert {r["tier"]: r["attempts"] for r in json.loads(done.stdout)} == dict(_attempts_by_tier(later))

    # A duration back from --until: the 30 minutes before 10:30 are the incident's.
    done = cli(store_url, "cookbook", "requests_by_final_tier", "--until", "2026-11-02T10:30", "--since", "30m",
               "--format", "json")
    assert done.returncode == 0, done.stderr
    assert sum(r["requests"] for r in json.loads(done.stdout)) == 60


def test_a_baseline_query_compares_the_window_with_the_one_before(store_url, incident_events):
    gated = Counter(a["tier"] for e in incident_events for a in e["attempts"] if a["outcome"] in ("accepted", "escalated"))
    done = cli(store_url, "cookbook", "why_did_escalations_jump",
               "--since", "2026-11-02T10:00", "--until", "2026-11-02T10:30", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    per_tier = Counter()
    for r in rows:
        per_tier[r["tier"]] += r["recent_gated_attempts"]
        assert r["baseline_rate"] is None  # 09:30-10:00 holds no traffic
    assert per_tier == gated

    # The incident as the baseline of the later half hour: both sides have rows.
    done = cli(store_url, "cookbook", "why_did_escalations_jump", "--since", "2026-11-02T14:00",
               "--until", "2026-11-02T14:30", "--baseline-since", "2026-11-02T10:00", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert any(r["baseline_rate"] is not None for r in json.loads(done.stdout))


def test_on_a_terminal_the_answer_is_an_aligned_table_with_nulls_as_dashes(store_url):
    code, out = cli_on_a_terminal(store_url, "cookbook", "why_did_escalations_jump",
                                  "--since", "2026-11-02T10:00", "--until", "2026-11-02T10:30")
    assert code == 0, out
    lines = out.rstrip("\n").splitlines()
    assert lines[0] == "why_did_escalations_jump 2026-11-02 10:00 .. 2026-11-02 10:30 UTC, baseline from 2026-11-02 09:30"
    header, rule, body = lines[1], lines[2], lines[3:-1]
    assert header.split() == ["tier", "category", "recent_rate", "baseline_rate", "delta", "top_recent_reason",
                              "recent_gated_attempts"]
    assert set(rule) <= {"-", " "} and lines[-1] == f"({len(body)} rows)" and body
    # Every column starts where its rule starts; numbers end where it ends.
    spans, at = [], 0
    for dashes in rule.split("  "):
        spans.append((at, at + len(dashes)))
        at += len(dashes) + 2
    for line in body:
        padded = line.ljust(len(rule))
        for start, _ in spans[1:]:
            assert padded[start - 2:start] == "  ", (line, rule)
        baseline = padded[spans[3][0]:spans[3][1]]
        assert baseline.strip() == "-" and baseline.endswith("-")  # NULL, right-aligned as a number
        rate = padded[spans[2][0]:spans[2][1]].strip()
        assert len(rate.replace("0.", "").lstrip("0")) <= 3, rate  # three significant digits

    # Piped, the same query prints TSV (scripts keep working); --format table forces the table.
    piped = cli(store_url, "cookbook", "why_did_escalations_jump", "--since", "2026-11-02T10:00", "--until", "2026-11-02T10:30")
    assert piped.returncode == 0 and "\t" in piped.stdout and "\\N" in piped.stdout and "---" not in piped.stdout
    forced = cli(store_url, "cookbook", "why_did_escalations_jump", "--since", "2026-11-02T10:00",
                 "--until", "2026-11-02T10:30", "--format", "table")
    assert forced.stdout.splitlines()[1:] == lines[1:]
    csv_out = cli(store_url, "sql", "SELECT 1 AS a, NULL AS b", "--format", "csv")
    assert csv_out.stdout == "a,b\n1,\n"


@pytest.mark.parametrize(("args", "says"), [
    (("sql", "SELECT * FROM tier_scoreboard(since = '2026-11-02', until = '2026-11-03', by = 'tier')"),
     "by must be one of '' (none), 'category', 'variant', 'router', 'environment'; got 'tier'"),
    (("sql", "SELECT * FROM routing_mix(since = '2030-01-01', until = '2030-01-02', by = 'tier')"), "got 'tier'"),
    (("cookbook", "canary_health", "--since", "banana"),
     "--since 'banana' is not a time: give an ISO 8601 time in UTC such as 2026-12-07T10:00"),
    (("cookbook", "canary_health", "--since", "2026-11-02T11:00", "--until", "2026-11-02T10:00"), "must be before --until"),
    (("cookbook", "canary_health", "--param", "minutes=60"), "instead of --param minutes=N"),
    (("cookbook", "what_did_this_request_do"), "needs --param request_id=VALUE"),
    (("cookbook", "what_did_this_request_do", "--param", "request_id=x", "--since", "1h"), "takes no since"),
    (("cookbook", "no_such_query"), "no cookbook query 'no_such_query'"),
])
def test_parameters_that_cannot_be_meant_are_refused_with_exit_2(store_url, args, says):
    done = cli(store_url, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("routerwatch: usage error: "), done.stderr
    assert says in done.stderr, done.stderr


def test_a_known_by_still_splits(store_url):
    done = cli(store_url, "sql", "SELECT segment, sum(attempts) AS n FROM tier_scoreboard(since = '2026-11-02', "
               "until = '2026-11-03', by = 'router') GROUP BY segment", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"segment": "incident-router", "n": sum(_attempts_by_tier(
        events(PROFILE, 60, 1, start=INCIDENT.timestamp()) + events(PROFILE, 40, 2, start=LATER.timestamp())).values())}]


def test_the_cookbook_lists_its_queries_with_their_question():
    done = subprocess.run([sys.executable, "-m", "routerwatch.cli", "cookbook", "--format", "tsv"], capture_output=True,
                          text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("ROUTERWATCH_")})
    assert done.returncode == 0, done.stderr
    listed = {line.split("\t")[0]: line.split("\t") for line in done.stdout.splitlines()}
    assert set(listed) == {p.stem for p in (REPO / "sql/queries").glob("*.sql")}
    assert listed["why_did_escalations_jump"][1:] == ["--since --until --baseline-since", "Why did escalations jump?"]
    assert listed["what_did_this_request_do"][1] == "--param request_id=..."
