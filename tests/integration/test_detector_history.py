"""The live scheduler's history in ClickHouse (migration 0017), and the console's "Now" answers over it.

On the real embedded engine, no fakes of the store: a router's traffic (two hours at 15 %
escalations, an hour at 45 %, an hour back at 15 %) with baselines frozen from the first two hours,
judged by the real :class:`DriftScheduler` at three minutes (before, at the end of and an hour
after the incident). Checked:

- ``alert_events`` gets one ``started`` row per alert when the escalation drift fires and one
  ``resolved`` row when it recovers (same key and start), nothing in between, and nothing twice
  across a restart of the scheduler (the firing set is read back from the table);
- ``detector_statistics`` gets exactly one row per evaluated CUSUM series per run, with the
  verdicts' statistic, threshold, figures and firing;
- a dry run writes nothing; a store whose inserts fail stops no run, counts
  ``routerwatch_detector_history_write_errors_total`` and the transitions are written by the
  next run that can;
- :func:`routerwatch.console.now.now` and :func:`~routerwatch.console.now.statistics` read them
  back through the read-only path, and against a real Alertmanager list what a silence and an
  inhibition hold back, and say ``available: false`` once that Alertmanager is down.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from alertkit import Alertmanager
from prometheus_client import REGISTRY
from servicekit import REPO

from routerwatch.config import CanarySettings, SchedulerSettings
from routerwatch.console import now as console_now
from routerwatch.drift.verdict import Signal
from routerwatch.events.models import RoutingDecision
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.scheduler import baselines as baseline_store
from routerwatch.scheduler.alerts import to_alert
from routerwatch.scheduler.evaluate import learn_all
from routerwatch.scheduler.history import CUSUM_SIGNALS
from routerwatch.scheduler.service import DriftScheduler
from routerwatch.simulate import Profile, TierProfile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.errors import QueryError
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration
MIGRATIONS = default_sql_dir() / "migrations"
MINUTE = timedelta(minutes=1)
PER_MINUTE = 40


def one_category(router: str, rate: float, minutes: int) -> Profile:
    """billing only, entering the small tier (escalation ``rate``) with the large one above it."""
    small = TierProfile(name="small", rank=0, model="small-8b", provider="acme", fallback_provider="acme-eu",
                        price_in_per_1k=0.00015, price_out_per_1k=0.0006, latency_median_ms=450, failure_rate=0.0,
                        escalation_rate={"billing": rate})
    large = TierProfile(name="large", rank=1, model="large-frontier", provider="initech", fallback_provider="globex",
                        price_in_per_1k=0.005, price_out_per_1k=0.015, latency_median_ms=4200, failure_rate=0.0)
    return Profile(router_id=router, tiers=[small, large], categories={"billing": 1.0}, entry_rank_by_category={},
                   experiment_id=None, shadow_share=0.0, feedback_share=0.0, minutes=minutes)


class ReadOnly:
    """The console's reader: the store through the read-only path (sqlguard, readonly=1)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.store.query(sql, params, readonly=True).as_dicts()


@pytest.fixture
def incident(session_chdb_path):
    """A fresh migrated database holding one router's baseline, incident and recovery; baselines frozen.

    Times are relative to the wall clock (the tables keep 35 days): the incident is [t0, t0 + 60 min),
    the recovery [t0 + 60 min, end).
    """
    database = f"db_{uuid.uuid4().hex[:10]}"
    router = f"hist-{uuid.uuid4().hex[:8]}"
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 5 * MINUTE
    t0 = end - 120 * MINUTE
    with Store(f"chdb://{session_chdb_path}", database) as store:
        migrations.migrate_up(store, MIGRATIONS)
        sink = ClickHouseSink(store, load_prices(default_prices_file()))
        decisions = []
        for rate, minutes, until, seed in ((0.15, 120, t0, 11), (0.45, 60, t0 + 60 * MINUTE, 12), (0.15, 60, end, 13)):
            decisions += [RoutingDecision.model_validate(e) for e in
                          events(one_category(router, rate, minutes), PER_MINUTE * minutes, seed, now=until.timestamp())]
        for start in range(0, len(decisions), 5000):
            sink.store_batch("decision", [Located(d, 0, i) for i, d in enumerate(decisions[start:start + 5000])])
        cfg = SchedulerSettings(auto_baseline=False, lookback_minutes=180, min_volume=1.0)
        for signal, learned in learn_all(store, t0 - 120 * MINUTE, t0, cfg.baseline_min_trials).items():
            baseline_store.save(store, signal, learned)
        yield SimpleNamespace(store=store, router=router, t0=t0, peak=t0 + 60 * MINUTE, end=end, cfg=cfg)
        store.command(f"DROP DATABASE IF EXISTS `{database}`")


def scheduler_on(store: Any, cfg: SchedulerSettings) -> DriftScheduler:
    return DriftScheduler(SimpleNamespace(scheduler=cfg, canary=CanarySettings()), store)


def events_of(store: Store, router: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT state, alertname, severity, router, labels, annotations, starts_at, ends_at, alert_key, evaluated_at "
        "FROM alert_events WHERE router = {r:String} ORDER BY at, state DESC, alert_key", {"r": router}).as_dicts()


def statistics_at(store: Store, router: str, at: datetime) -> list[dict[str, Any]]:
    """The rows one run wrote (no FINAL: a second row of a series would show)."""
    return store.query(
        "SELECT * FROM detector_statistics WHERE router_id = {r:String} AND evaluated_at = {at:DateTime64(3, 'UTC')}",
        {"r": router, "at": at}).as_dicts()


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def cusum_verdicts(evaluation, router: str) -> dict[str, Any]:
    out = {}
    for v in evaluation.verdicts:
        if (v.signal in CUSUM_SIGNALS and v.evaluated and v.statistic is not None and v.threshold is not None
                and v.labels.get("router") == router):
            key = ",".join(f"{k}={v.labels[k]}" for k in sorted(v.labels))
            assert key not in out, key
            out[key] = v
    return out


def assert_statistics_are_the_verdicts(store: Store, router: str, evaluation) -> None:
    rows = statistics_at(store, router, evaluation.now)
    verdicts = cusum_verdicts(evaluation, router)
    assert verdicts, "the run judged the router's CUSUM series"
    assert sorted(r["series_key"] for r in rows) == sorted(verdicts), "one row per evaluated series"
    for row in rows:
        v = verdicts[row["series_key"]]
        assert (row["signal"], row["router_id"], row["tier"], row["category"], row["direction"]) == (
            v.signal.value, router, v.labels["tier"], v.labels.get("category", ""), v.labels.get("direction", ""))
        assert (row["statistic"], row["threshold"], row["firing"]) == (v.statistic, v.threshold, v.firing)
        assert (row["baseline_value"], row["observed_value"]) == (v.baseline_value, v.observed_value)


def history_errors(table: str) -> float:
    return REGISTRY.get_sample_value("routerwatch_detector_history_write_errors_total", {"table": table}) or 0.0


def test_an_incident_records_its_start_and_resolve_once_and_every_run_its_cusum_statistics(incident):
    store, router = incident.store, incident.router
    first = scheduler_on(store, incident.cfg)

    quiet = first.run_once(incident.t0)
    assert not [v for v in quiet.firing if v.labels.get("router") == router]
    assert events_of(store, router) == []
    assert_statistics_are_the_verdicts(store, router, quiet)

    paged = first.run_once(incident.peak - 2 * MINUTE)
    firing = [v for v in paged.firing if v.labels.get("router") == router]
    drift = [v for v in firing if v.signal is Signal.ESCALATION_DRIFT]
    assert {v.labels.get("scope", "category") for v in drift} == {"category", "tier"}, paged.firing
    assert_statistics_are_the_verdicts(store, router, paged)
    assert any(r["firing"] for r in statistics_at(store, router, paged.now))
    alerts = {a.key: a for a in (to_alert(v) for v in firing)}
    started = events_of(store, router)
    assert sorted(e["alert_key"] for e in started) == sorted(alerts), "one started row per firing alert"
    for e in started:
        alert = alerts[e["alert_key"]]
        assert e["state"] == "started" and e["ends_at"] is None
        assert (e["alertname"], e["severity"], e["router"]) == (alert.name, alert.severity, router)
        assert json.loads(e["labels"]) == alert.labels
        annotations = json.loads(e["annotations"])
        assert annotations["query"] == alert.annotations["query"] and annotations["runbook_url"].endswith(
            "#" + alert.name.lower())
        assert utc(e["starts_at"]) == alert.starts_at, "the page starts at the change start (in the past)"
        assert utc(e["evaluated_at"]) == paged.now

    # Still firing a minute later, and after a restart (the firing set is read back from the table): no new rows.
    first.run_once(incident.peak - MINUTE)
    restarted = scheduler_on(store, incident.cfg)
    again = restarted.run_once(incident.peak)
    assert {to_alert(v).key for v in again.firing if v.labels.get("router") == router} == set(alerts)
    assert len(events_of(store, router)) == len(alerts)
    assert_statistics_are_the_verdicts(store, router, again)

    before = datetime.now(timezone.utc)
    recovered = restarted.run_once(incident.end)
    assert not [v for v in recovered.firing if v.labels.get("router") == router]
    assert_statistics_are_the_verdicts(store, router, recovered)
    rows = events_of(store, router)
    resolved = [e for e in rows if e["state"] == "resolved"]
    assert sorted(e["alert_key"] for e in resolved) == sorted(alerts), "one resolved row per alert that stopped"
    starts = {e["alert_key"]: e["starts_at"] for e in rows if e["state"] == "started"}
    for e in resolved:
        assert e["starts_at"] == starts[e["alert_key"]]
        assert before - timedelta(seconds=1) <= utc(e["ends_at"]) <= datetime.now(timezone.utc) + timedelta(seconds=1)
    # A later run over a quiet store records nothing more.
    scheduler_on(store, incident.cfg).run_once(incident.end + MINUTE)
    assert len(events_of(store, router)) == 2 * len(alerts)

    # The console reads them back through the read-only path.
    reader = ReadOnly(store)
    page = console_now.now(restarted, reader)
    assert page["detectors"] and page["firing"] == [] and page["evaluated_at"] == incident.end.isoformat()
    assert page["silenced"]["configured"] is False and page["silenced"]["available"] is False
    mine = [a for a in page["resolved"]["alerts"] if a["labels"].get("router") == router]
    assert sorted(a["key"] for a in mine) == sorted(alerts)
    assert all(a["ends_at"] and a["starts_at"] < a["ends_at"] and a["runbook_url"] and a["query"] for a in mine)
    assert page["resolved"]["error"] is None and page["resolved"]["truncated"] is False
    json.dumps(page)  # plain JSON

    chart = console_now.statistics(reader, incident.t0, incident.end + 2 * MINUTE, router=router, tier="small")
    minutes = sorted({r["minute"] for r in chart["rows"]})
    runs = [incident.t0, incident.peak - 2 * MINUTE, incident.peak - MINUTE, incident.peak, incident.end,
            incident.end + MINUTE]
    assert minutes == [m.isoformat() for m in runs]
    assert len(chart["rows"]) == sum(len(statistics_at(store, router, m)) for m in runs)
    assert chart["truncated"] is False and f"router_id = '{router}'" in chart["sql"] and "tier = 'small'" in chart["sql"]
    peak = [r for r in chart["rows"] if r["minute"] == paged.now.isoformat() and r["firing"]]
    assert peak and all(r["statistic"] >= r["threshold"] for r in peak)
    assert console_now.statistics(reader, incident.t0, incident.end, router="no-such-router")["rows"] == []
    # The SQL shown runs as it is.
    assert len(reader.rows(chart["sql"])) == len(chart["rows"])


def test_a_dry_run_writes_nothing(incident):
    store, router = incident.store, incident.router
    scheduler = scheduler_on(store, incident.cfg)
    replay = scheduler.run_once(incident.peak, dry_run=True)
    assert [v for v in replay.firing if v.labels.get("router") == router], "the replay sees the incident"
    assert events_of(store, router) == []
    assert store.query("SELECT count() FROM detector_statistics").scalar() == 0
    # The same minute live writes both: the dry run's silence is its own.
    scheduler.run_once(incident.peak)
    assert events_of(store, router) and statistics_at(store, router, incident.peak)


class FailingInserts:
    """The real store, whose inserts into the history tables fail while ``failing`` is set."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failing = True

    def insert_columns(self, table: str, columns: dict) -> int:
        if self.failing and table in ("alert_events", "detector_statistics"):
            raise QueryError(f"Code: 241. DB::Exception: Memory limit exceeded while inserting into {table}")
        return self.store.insert_columns(table, columns)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_failing_history_write_stops_no_run_is_counted_and_the_transitions_follow_later(incident, caplog):
    store, router = incident.store, incident.router
    flaky = FailingInserts(store)
    scheduler = scheduler_on(flaky, incident.cfg)
    counted = {t: history_errors(t) for t in ("alert_events", "detector_statistics")}

    paged = scheduler.run_once(incident.peak)
    firing = [v for v in paged.firing if v.labels.get("router") == router]
    assert firing and scheduler.last is paged, "the run finished"
    assert {f["labels"]["router"] for f in scheduler.status()["firing"]} == {router}
    assert history_errors("alert_events") == counted["alert_events"] + 1
    assert history_errors("detector_statistics") == counted["detector_statistics"] + 1
    assert "could not write" in caplog.text
    assert events_of(store, router) == [] and statistics_at(store, router, paged.now) == []

    flaky.failing = False
    later = scheduler.run_once(incident.peak + MINUTE)
    rows = events_of(store, router)
    assert sorted(e["alert_key"] for e in rows) == sorted(to_alert(v).key for v in firing), "kept and written now"
    assert all(utc(e["evaluated_at"]) == incident.peak for e in rows), "with the run that found them"
    assert_statistics_are_the_verdicts(store, router, later)
    assert history_errors("alert_events") == counted["alert_events"] + 1


# --- the console's "Now" with a real Alertmanager ----------------------------------------------


def wait_for(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def am_alerts(url: str, router: str) -> list[dict[str, Any]]:
    matcher = urllib.parse.quote(f'router="{router}"')
    with urllib.request.urlopen(f"{url}/api/v2/alerts?filter={matcher}", timeout=5) as response:
        return json.loads(response.read())


def silence(url: str, **labels: str) -> str:
    now = datetime.now(timezone.utc)
    body = {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in labels.items()],
        "startsAt": (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "endsAt": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "createdBy": "test", "comment": "known: the verifier rollout",
    }
    request = urllib.request.Request(f"{url}/api/v2/silences", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["silenceID"]


def test_now_lists_what_alertmanager_holds_back_and_says_when_it_is_down(incident, tmp_path):
    store, router = incident.store, incident.router
    # The demo's Alertmanager configuration: a tier-wide alert inhibits its tier's per-category alerts.
    am = Alertmanager(tmp_path / "alertmanager", (REPO / "deploy/alertmanager/local.yml").read_text()).start()
    cfg = incident.cfg.model_copy(update={"alertmanager_urls": [am.url], "state_file": tmp_path / "alerts.json"})
    scheduler = scheduler_on(store, cfg)
    scheduler.client.start()
    try:
        paged = scheduler.run_once(incident.peak)
        firing = {to_alert(v).key: to_alert(v) for v in paged.firing if v.labels.get("router") == router}
        names = {(a.name, a.labels.get("scope")) for a in firing.values()}
        assert {("RouterwatchEscalationDrift", "category"), ("RouterwatchEscalationDrift", "tier"),
                ("RouterwatchEscalationSurge", None)} <= names, names
        wait_for(lambda: len(am_alerts(am.url, router)) == len(firing), "the alerts in Alertmanager")
        silence_id = silence(am.url, router=router, alertname="RouterwatchEscalationSurge")

        def states():
            got = {(a["labels"]["alertname"], a["labels"].get("scope")): a["status"]["state"] for a in am_alerts(am.url, router)}
            return got if got.get(("RouterwatchEscalationSurge", None)) == "suppressed" and got.get(
                ("RouterwatchEscalationDrift", "category")) == "suppressed" else None

        assert wait_for(states, "the silence and the inhibition")[("RouterwatchEscalationDrift", "tier")] == "active"

        reader = ReadOnly(store)
        page = console_now.now(scheduler, reader)
        # Firing: every alert of the run with its figures; the tier-wide drift with its Kitagawa split.
        assert sorted(json.dumps(f["labels"], sort_keys=True) for f in page["firing"]) == sorted(
            json.dumps(a.labels, sort_keys=True) for a in firing.values())
        for f in page["firing"]:
            assert f["baseline"] is not None and f["observed"] > f["baseline"] and f["magnitude"] > 0
            assert f["statistic"] >= f["threshold"] > 0 and f["change_start"] and f["starts_at"]
            assert f["runbook_url"].endswith("#" + f["alertname"].lower()) and f["query"].startswith("SELECT")
        (tier_wide,) = [f for f in page["firing"] if f["labels"].get("scope") == "tier"]
        split = tier_wide["kitagawa"]
        assert split is not None and abs(split["mix"] + split["within"] - split["total"]) < 1e-9
        assert abs(split["within"]) > abs(split["mix"]), "one category: the change is within it"
        # Silenced: the silenced surge and the inhibited per-category drift, not the active tier-wide page.
        held = page["silenced"]
        assert held["configured"] and held["available"] and held["error"] is None and held["alertmanager"] == am.url
        mine = {(a["alertname"], a["labels"].get("scope")): a for a in held["alerts"] if a["labels"].get("router") == router}
        assert set(mine) == {("RouterwatchEscalationSurge", None), ("RouterwatchEscalationDrift", "category")}
        assert mine[("RouterwatchEscalationSurge", None)]["silenced_by"] == [silence_id]
        assert mine[("RouterwatchEscalationDrift", "category")]["inhibited_by"]
        assert mine[("RouterwatchEscalationSurge", None)]["runbook_url"]
        assert page["resolved"]["available"] and not [a for a in page["resolved"]["alerts"]
                                                      if a["labels"].get("router") == router]
        json.dumps(page)

        # Alertmanager down: the page still answers, and says so.
        am.stop()
        down = console_now.now(scheduler, reader)
        assert down["silenced"]["configured"] is True and down["silenced"]["available"] is False
        assert down["silenced"]["alerts"] == [] and down["silenced"]["error"]
        assert len(down["firing"]) == len(firing) and down["resolved"]["available"]
    finally:
        scheduler.client.stop()
        am.stop()
