"""A fixed-seed simulation run again later, past the re-emission window, stores nothing twice.

`make demo` run twice 13 minutes apart stored 5998 requests instead of 5000: the simulator
stamped events relative to now, so the re-run sent the same event ids at times more than the
re-emission window (60 s) away from the stored copies, and ingest stored them again. Here the
window is 2 s, the second run starts after it has passed, and everything goes through the real
CLI, Kafka and `routerwatch serve`.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
from pydantic_core import to_json
from servicekit import Env, Serve

from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, events

pytestmark = pytest.mark.integration

WINDOW_S = 2.0
REQUESTS = 300
ROUTER = Profile().router_id


@pytest.fixture
def serve(env: Env, tmp_path):
    env.extra["ROUTERWATCH_INGEST__REEMISSION_WINDOW_S"] = str(WINDOW_S)
    service = Serve(env, tmp_path / "serve.log").start()
    yield service
    service.stop()


def simulate(env: Env, *args: str) -> dict:
    done = env.cli("simulate", "--requests", str(REQUESTS), "--seed", "7", "--invalid", "6", "--duplicates", "20", *args)
    summary = json.loads(done.stdout)
    assert summary["sdk"]["dropped"] == 0, summary
    return summary


def caught_up(env: Env) -> None:
    """Every message on the input topics is stored or dead-lettered (a condition, not a sleep)."""
    env.cli("wait", "--timeout", "120")


def stored(serve: Serve) -> dict[str, int]:
    row = serve.query_dicts(
        f"SELECT count() AS requests, uniqExact(event_id) AS ids FROM requests WHERE router_id = '{ROUTER}'"
    )[0]
    row["attempts"] = serve.scalar("SELECT count() FROM attempts")
    row["feedback"] = serve.scalar("SELECT count() FROM feedback")
    return row


def test_a_replay_past_the_reemission_window_stores_nothing_twice(env, serve):
    first = simulate(env)  # as a user runs it: the timeline ends now; the summary gives its anchor
    serve.wait_for(f"SELECT count() FROM requests WHERE router_id = '{ROUTER}'", REQUESTS)
    caught_up(env)
    once = {"requests": REQUESTS, "ids": REQUESTS, "attempts": first["attempts"], "feedback": first["feedback"]}
    assert stored(serve) == once
    dlq = int(env.cli("dlq", "--count").stdout.strip())
    assert dlq == 6

    # Later than the window: a simulator that re-stamps events from the wall clock would now send
    # every event id more than WINDOW_S away from its stored copy.
    sent_at = time.time()
    while time.time() < sent_at + WINDOW_S + 0.5:
        time.sleep(0.1)

    replay = simulate(env, "--start", first["start"])
    assert replay["start"] == first["start"] and replay["end"] == first["end"]
    caught_up(env)
    assert stored(serve) == once
    assert int(env.cli("dlq", "--count").stdout.strip()) == dlq + 6  # invalid messages are dead-lettered per run

    # An unanchored run later is traffic of its own: new event ids, each stored once.
    other = simulate(env)
    assert other["start"] != first["start"]
    serve.wait_for(f"SELECT count() FROM requests WHERE router_id = '{ROUTER}'", 2 * REQUESTS)
    caught_up(env)
    both = stored(serve)
    assert both["requests"] == both["ids"] == 2 * REQUESTS
    assert both["attempts"] == first["attempts"] + other["attempts"]

    # The control: this ingest does store an event id re-sent 13 minutes away (what the
    # old simulator did), so the exact counts above are not an accident of a wide window.
    start = datetime.fromisoformat(first["start"].replace("Z", "+00:00")).timestamp()
    event = events(Profile(), REQUESTS, seed=7, start=start)[0]  # the library replays the CLI's run too
    by_id = f"SELECT count() FROM requests WHERE event_id = '{event['event_id']}'"
    assert serve.scalar(by_id) == 1
    at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")) + timedelta(minutes=13)  # as the demo re-run did
    event["occurred_at"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id=ROUTER, decisions_topic=env.names["decisions"],
                               feedback_topic=env.names["feedback"], close_timeout_s=30)).start()
    rw.emit_raw(env.names["decisions"], to_json(event), event["request_id"].encode())
    assert rw.close()["dropped"] == 0
    serve.wait_for(by_id, 2)
