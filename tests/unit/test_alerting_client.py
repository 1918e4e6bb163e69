"""The Alertmanager client's bookkeeping, without any Alertmanager: nothing listens on the URLs.

What reaches a real Alertmanager is in tests/integration/test_alertmanager.py; here: the Alert
model, the lifecycle contract, the state file across restarts, expiry of pointless sends and
the back-off towards an unreachable Alertmanager.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest

from routerwatch.alerting import (
    Alert,
    AlertingError,
    AlertManagerClient,
    AlertStateError,
    ClientNotStarted,
)
from routerwatch.errors import PermanentError, RetryableError, RouterwatchError
from routerwatch.alerting.errors import AlertmanagerUnavailable, AlertRejected
from routerwatch.alerting.runbooks import DEFAULT_RUNBOOK_BASE_URL

# Nothing listens on port 1: every send fails fast with "connection refused".
DOWN = "http://127.0.0.1:1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def alert(name: str = "RouterwatchEscalationDrift", **kw) -> Alert:
    kw.setdefault("severity", "warning")
    kw.setdefault("summary", "drift")
    kw.setdefault("description", "rate moved")
    kw.setdefault("tier", "small")
    return Alert.build(name, **kw)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def make_client():
    made: list[AlertManagerClient] = []

    def factory(state_path: Path | None = None, urls=(DOWN,), **kw) -> AlertManagerClient:
        kw.setdefault("retry_initial_s", 60.0)  # unit tests look at queues, not at retries
        kw.setdefault("stop_timeout_s", 0.5)
        kw.setdefault("timeout_s", 0.5)
        client = AlertManagerClient(list(urls), state_path=state_path, **kw)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.stop()


# -- Alert ---------------------------------------------------------------------------------


def test_build_leaves_out_none_and_formats_figures() -> None:
    a = Alert.build(
        "RouterwatchEscalationDrift",
        severity="critical",
        summary="s",
        description="d",
        signal="escalation_rate",
        router="r1",
        tier="small",
        category=None,
        direction="up",
        scope="tier",
        query="SELECT 1",
        baseline=0.1,
        observed=0.1321234567,
        magnitude=0.0321234567,
        change_start=datetime(2026, 3, 1, 11, 42, 5, 123456, tzinfo=timezone.utc),
        mix_effect=0.004,
        within_effect=0.028,
    )
    assert a.labels == {
        "alertname": "RouterwatchEscalationDrift",
        "direction": "up",
        "router": "r1",
        "scope": "tier",
        "severity": "critical",
        "signal": "escalation_rate",
        "tier": "small",
    }
    assert list(a.labels) == sorted(a.labels)
    assert a.annotations["observed"] == "0.132123"
    assert a.annotations["change_start"] == "2026-03-01T11:42:05.123Z"
    assert a.annotations["query"] == "SELECT 1"
    assert "runbook_url" not in a.annotations  # the client fills it from its base
    assert a.name == "RouterwatchEscalationDrift" and a.severity == "critical"


def test_identity_is_the_label_set() -> None:
    a = alert(observed=0.1)
    b = alert(observed=0.2, starts_at=T0)
    assert a.key == b.key and a.fingerprint == b.fingerprint
    assert alert(category="math").fingerprint != a.fingerprint
    assert alert(severity="critical").fingerprint != a.fingerprint


@pytest.mark.parametrize(
    "kwargs",
    [
        {"labels": {"alertname": "EscalationDrift", "severity": "warning"}},
        {"labels": {"alertname": "RouterwatchX", "severity": "info"}},
        {"labels": {"alertname": "RouterwatchX", "severity": "warning", "tier": ""}},
        {"labels": {"alertname": "RouterwatchX", "severity": "warning", "bad-name": "x"}},
        {"labels": {"alertname": "RouterwatchX", "severity": "warning", "__reserved": "x"}},
        {"labels": {"alertname": "RouterwatchX", "severity": "warning"}, "annotations": {"summary": "s"}},
        {"labels": {"alertname": "RouterwatchX", "severity": "warning"}, "annotations": {"summary": "s", "description": "d"}, "starts_at": datetime(2026, 1, 1)},
    ],
)
def test_invalid_alerts_are_refused(kwargs) -> None:
    kwargs.setdefault("annotations", {"summary": "s", "description": "d"})
    with pytest.raises(pydantic.ValidationError):
        Alert(**kwargs)


def test_error_hierarchy() -> None:
    assert issubclass(AlertingError, RouterwatchError)
    assert issubclass(AlertmanagerUnavailable, RetryableError) and issubclass(AlertmanagerUnavailable, AlertingError)
    assert issubclass(AlertRejected, PermanentError) and issubclass(AlertRejected, AlertingError)


# -- lifecycle -----------------------------------------------------------------------------


def test_stop_is_safe_without_start_and_twice_and_start_is_idempotent(make_client, tmp_path) -> None:
    client = make_client(tmp_path / "s.json")
    client.stop()
    client.stop()
    assert client.start() is client
    assert client.start() is client
    client.stop()
    client.stop()
    assert client.start() is client  # a stopped client may start again
    client.stop()


def test_sync_outside_start_stop_raises(make_client) -> None:
    client = make_client()
    with pytest.raises(ClientNotStarted):
        client.sync([alert()], T0)
    client.start()
    client.stop()
    with pytest.raises(ClientNotStarted):
        client.sync([alert()], T0)


def test_bad_arguments() -> None:
    with pytest.raises(AlertingError):
        AlertManagerClient([])
    with pytest.raises(AlertingError):
        AlertManagerClient([DOWN, DOWN])
    with pytest.raises(AlertingError):
        AlertManagerClient(["127.0.0.1:9093"])
    with pytest.raises(AlertingError):
        AlertManagerClient(DOWN, resend_ttl=timedelta(0))


def test_naive_now_is_refused(make_client) -> None:
    client = make_client().start()
    with pytest.raises(AlertingError):
        client.sync([alert()], datetime(2026, 1, 1))


# -- firing set and state ------------------------------------------------------------------


def test_starts_at_is_kept_resends_move_ends_at_and_absent_alerts_resolve(make_client, tmp_path) -> None:
    clock = Clock(T0)
    state = tmp_path / "state.json"
    client = make_client(state, clock=clock, resend_ttl=timedelta(minutes=4)).start()
    a, b = alert(category="math"), alert(category="code")

    result = client.sync([a, b], T0)
    assert result.firing == 2 and len(result.started) == 2 and result.resolved == ()
    saved = json.loads(state.read_text())
    assert {r["starts_at"] for r in saved["firing"]} == {"2026-03-01T12:00:00.000Z"}
    assert {r["ends_at"] for r in saved["firing"]} == {"2026-03-01T12:04:00.000Z"}
    assert all(r["annotations"]["runbook_url"] == f"{DEFAULT_RUNBOOK_BASE_URL}#routerwatchescalationdrift" for r in saved["firing"])

    clock.now = T0 + timedelta(minutes=1)
    result = client.sync([a, a], clock.now)  # duplicates are one alert
    assert result.firing == 1 and result.started == ()
    assert [labels["category"] for labels in result.resolved] == ["code"]
    saved = json.loads(state.read_text())
    [firing] = saved["firing"]
    assert firing["starts_at"] == "2026-03-01T12:00:00.000Z" and firing["ends_at"] == "2026-03-01T12:05:00.000Z"
    [resolving] = saved["resolving"]
    assert resolving["labels"]["category"] == "code"
    assert resolving["ends_at"] == "2026-03-01T12:01:00.000Z"  # resolved: endsAt = now
    assert resolving["expires_at"] == "2026-03-01T12:04:00.000Z"  # Alertmanager ends it by itself then
    assert resolving["urls"] == [DOWN]
    assert [x.starts_at for x in client.firing()] == [T0]


def test_a_given_starts_at_is_used_once_and_never_in_the_future(make_client) -> None:
    client = make_client().start()
    earlier = T0 - timedelta(minutes=7)
    client.sync([alert(starts_at=earlier)], T0)
    assert client.firing()[0].starts_at == earlier
    client.sync([alert(starts_at=T0)], T0 + timedelta(minutes=1))
    assert client.firing()[0].starts_at == earlier
    client.sync([alert(category="x", starts_at=T0 + timedelta(hours=1))], T0)
    assert {x.labels.get("category"): x.starts_at for x in client.firing()}["x"] == T0


def test_restart_resumes_firing_set_and_pending_resolves(make_client, tmp_path) -> None:
    clock = Clock(T0)
    state = tmp_path / "state.json"
    first = make_client(state, clock=clock).start()
    first.sync([alert(category="math"), alert(category="code")], T0)
    clock.now = T0 + timedelta(seconds=30)
    first.sync([alert(category="math")], clock.now)  # "code" resolved, but Alertmanager is down
    first.stop()

    second = make_client(state, clock=clock).start()
    assert [(x.labels["category"], x.starts_at) for x in second.firing()] == [("math", T0)]
    stats = second.stats()
    assert stats["firing"] == 1 and stats["resolving"] == 1
    assert stats["alertmanagers"][0].pending == 1  # the resolve is queued again
    clock.now = T0 + timedelta(minutes=1)
    result = second.sync([alert(category="math")], clock.now)
    assert result.started == () and result.resolved == ()


def test_restart_resolves_alerts_that_stopped_while_down(make_client, tmp_path) -> None:
    state = tmp_path / "state.json"
    first = make_client(state).start()
    first.sync([alert(category="math"), alert(category="code")], T0)
    first.stop()
    second = make_client(state).start()
    result = second.sync([alert(category="math")], T0 + timedelta(minutes=2))
    assert [labels["category"] for labels in result.resolved] == ["code"]
    assert result.started == ()


def test_pointless_sends_expire(make_client, tmp_path) -> None:
    clock = Clock(T0)
    client = make_client(tmp_path / "s.json", clock=clock, retry_initial_s=0.01, retry_max_s=0.02).start()
    client.sync([alert(category="math")], T0)
    client.sync([], T0 + timedelta(minutes=1))
    assert client.stats()["resolving"] == 1
    # Past the endsAt last sent, Alertmanager has ended the alert itself: the resolve is dropped.
    clock.now = T0 + timedelta(minutes=6)
    assert client.flush(5)
    stats = client.stats()
    assert stats["resolving"] == 0 and stats["alertmanagers"][0].expired >= 1
    assert json.loads((tmp_path / "s.json").read_text())["resolving"] == []


def test_unreachable_alertmanager_backs_off_exponentially(make_client) -> None:
    client = make_client(retry_initial_s=0.05, retry_max_s=0.4).start()
    client.sync([alert()], datetime.now(timezone.utc))
    time.sleep(1.2)
    [stats] = client.stats()["alertmanagers"]
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... (±20%): a handful of attempts, not hundreds
    assert 3 <= stats.failures <= 8, stats
    assert stats.pending == 1 and stats.sent == 0
    assert "Connection refused" in stats.last_error or "refused" in stats.last_error.lower()
    assert 0 < stats.retry_in_s <= 0.5


def test_sync_does_not_wait_for_the_network(make_client) -> None:
    # A peer that accepts connections and never answers: each POST hangs for timeout_s.
    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(16)
        url = f"http://127.0.0.1:{stalled.getsockname()[1]}"
        client = make_client(urls=(url,), timeout_s=2.0, stop_timeout_s=0.2).start()
        started = time.monotonic()
        for i in range(20):
            client.sync([alert(category=f"c{i}")], datetime.now(timezone.utc))
            time.sleep(0.01)
        assert time.monotonic() - started < 0.6
        [stats] = client.stats()["alertmanagers"]
        assert stats.sent == 0 and stats.pending == 20
        started = time.monotonic()
        client.stop()  # bounded by stop_timeout_s, although a send is in flight
        assert time.monotonic() - started < 1.5


def test_corrupt_state_is_moved_aside(make_client, tmp_path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    client = make_client(state).start()
    assert client.firing() == []
    assert (tmp_path / "state.json.corrupt").read_text() == "{not json"
    client.sync([alert()], T0)
    assert json.loads(state.read_text())["version"] == 1


def test_unusable_state_directory_fails_start(make_client, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AlertStateError):
        make_client(blocker / "state.json").start()


def test_state_is_written_atomically_and_holds_no_credentials(make_client, tmp_path) -> None:
    state = tmp_path / "state.json"
    client = make_client(state, urls=("http://user:secret@127.0.0.1:1",)).start()
    client.sync([alert()], T0)
    client.sync([], T0 + timedelta(seconds=1))
    client.stop()
    assert "secret" not in state.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp files left behind
    assert client.stats()["alertmanagers"][0].url == "http://127.0.0.1:1"
