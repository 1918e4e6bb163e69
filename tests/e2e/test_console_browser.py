"""The on-call console in a real browser: a real `routerwatch serve` with a token, known traffic, Chromium.

Two routers' simulated traffic goes through the real CLI, Kafka and serve into a fresh store. Debian's
headless Chromium (``/usr/bin/chromium``, driven by Playwright; no browser is downloaded) opens the
console with ``#token=...`` as an on-call engineer would from a page's link, and the test checks
that the figures on screen equal the SQL answers from serve's ``/query``, that the router filter
changes the URL and the numbers, that the request search lists a known request's attempts in order,
and that the page logs no console error. Screenshots are kept under the test's tmp folder.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from servicekit import Env, Serve

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TOKEN = "console-test-token-0123456789abcdef"
ROUTERS = {"console-alpha": 240, "console-beta": 120}


@pytest.fixture
def console(kafka_bootstrap, names, tmp_path):
    env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}",
              extra={"ROUTERWATCH_HTTP__TOKEN": TOKEN,
                     # Baselines are learned by the test (below), from this little traffic, and only then.
                     "ROUTERWATCH_SCHEDULER__AUTO_BASELINE": "false",
                     "ROUTERWATCH_SCHEDULER__BASELINE_MIN_TRIALS": "5"})
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        for seed, (router, requests) in enumerate(ROUTERS.items(), start=3):
            done = env.cli("simulate", "--requests", str(requests), "--seed", str(seed), "--router-id", router,
                           "--minutes", "90", "--escalation", "small=0.4")
            assert json.loads(done.stdout)["sdk"]["dropped"] == 0, done.stdout
        send_canaries(env)
        env.cli("wait", "--timeout", "240")  # every message stored or dead-lettered: a condition, not a sleep
        serve.wait_for("SELECT count() FROM canary_results FINAL", len(CANARY_PLAN) * CANARY_RUNS, timeout=180)
        for router, requests in ROUTERS.items():
            serve.wait_for(f"SELECT count() FROM decisions FINAL WHERE router_id = '{router}'", requests, timeout=180)
        learn = urllib.request.Request(f"http://127.0.0.1:{env.port}/baselines/learn?hours=3", data=b"{}",
                                       headers=env.headers(), method="POST")
        with urllib.request.urlopen(learn, timeout=120) as answer:
            assert json.loads(answer.read()).get("escalation_drift", 0) > 0
        yield env, serve
    finally:
        serve.stop()


# Canary probes of console-alpha: (canary, side, expected tier, runs that fail their check, runs without answer).
CANARY_PLAN = (("c-math", "cheap", "small", {1, 4, 7}, {9}), ("c-law", "strong", "large", {2}, set()))
CANARY_RUNS = 12


def send_canaries(env: Env) -> None:
    """Probe results every 5 minutes over the last hour; the tier observed flips on every third answered run."""
    from routerwatch.sdk import RouterWatch, SdkConfig

    rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id="console-alpha", decisions_topic=env.names["decisions"],
                               feedback_topic=env.names["feedback"], canary_topic=env.names["canary"], close_timeout_s=60))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for run in range(CANARY_RUNS):
        at = now - timedelta(minutes=5 * (CANARY_RUNS - run))
        for canary, side, expected, failing, unanswered in CANARY_PLAN:
            error = "timeout after 30 s" if run in unanswered else None
            observed = None if error else ("medium" if run % 3 == 0 else expected)
            rw.canary_result({
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{canary}-{run}")), "canary_id": canary, "run_id": f"run-{run}",
                "occurred_at": at.isoformat().replace("+00:00", "Z"), "router_id": "console-alpha", "category": "coding",
                "side": side, "expected_tier": expected, "observed_tier": observed,
                "tier_source": "header" if observed else None, "check_kind": "regex",
                "answer_passed": None if error else run not in failing, "check_detail": None,
                "latency_ms": None if error else 300.0 + run, "error": error, "request_id": f"canary-{canary}-{run}",
            })
    assert rw.close()["dropped"] == 0


def escalated_per_tier(serve: Serve, router: str | None = None) -> dict[tuple[str, str], int]:
    """Escalated attempts per router and tier, counted from the raw attempts (not through the views)."""
    where = f"router_id = '{router}'" if router else f"router_id IN ({', '.join(repr(r) for r in ROUTERS)})"
    rows = serve.query(
        f"SELECT router_id, tier, countIf(outcome = 'escalated') FROM attempts FINAL WHERE {where} "
        "AND occurred_at >= now() - INTERVAL 6 HOUR GROUP BY router_id, tier"
    )
    return {(r[0], r[1]): int(r[2]) for r in rows}


def alerts(env: Env) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{env.port}/alerts", headers=env.headers())
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def shown_per_tier(page) -> dict[tuple[str, str], int]:
    out = {}
    for cell in page.locator('#tiers-table td[data-testid^="escalated-"]').all():
        _, router_tier = cell.get_attribute("data-testid").split("-", 1)
        router = next(r for r in ROUTERS if router_tier.startswith(r + "-"))
        out[(router, router_tier[len(router) + 1:])] = int(cell.inner_text().replace(",", ""))
    return out


def wait_rendered(page, count: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.rendered || 0) >= {count} && document.body.dataset.loading === '0'",
                           timeout=60000)


def test_console_shows_the_stores_figures_filters_and_finds_a_request(console, tmp_path):
    from playwright.sync_api import sync_playwright

    env, serve = console
    # A request that escalated at least once: the search must list its attempts in order.
    (request_id,) = serve.query(
        "SELECT request_id FROM attempts FINAL WHERE router_id = 'console-alpha' GROUP BY request_id "
        "HAVING countIf(outcome = 'escalated') >= 1 AND count() >= 2 ORDER BY request_id LIMIT 1"
    )[0]
    expected_attempts = serve.query_dicts(
        "SELECT attempt_index, tier, outcome FROM attempts FINAL WHERE request_id = {id:String} ORDER BY attempt_index",
        {"id": request_id},
    )
    base = f"http://127.0.0.1:{env.port}/"
    problems: list[str] = []
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} {m.location}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            # Opened from a page's link: the token once, in the fragment; the page keeps it out of the URL.
            page.goto(base + "#range=6h&token=" + TOKEN)
            wait_rendered(page, 1)
            assert TOKEN not in page.url
            assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
            page.screenshot(path=str(shots / "all-routers.png"), full_page=True)

            # Every router's escalated attempts per tier equal the SQL answer.
            want = escalated_per_tier(serve)
            assert sum(want.values()) > 0
            assert shown_per_tier(page) == want
            # Now: as many firing rows as serve's /alerts lists (no baselines learned here: none).
            firing = alerts(env)["firing"]
            status = page.locator("#now-status").inner_text()
            if firing:
                assert page.locator("#now-table tbody tr").count() == len(firing), status
            else:
                assert status.startswith("Nothing is firing"), status
            # The chart has a line per router x tier that escalated or accepted (categories come with a
            # chosen tier, below).
            assert page.locator("#escalation-chart svg path[data-series]").count() > 0
            # Spend per router equals the SQL answer through the view the report uses.
            spend = {r["segment"]: r["actual_cost_usd"] for r in serve.query_dicts(
                "SELECT segment, actual_cost_usd FROM cost_summary(since = toString(toStartOfMinute(now() - INTERVAL 6 HOUR)), "
                "until = toString(toStartOfMinute(now()) + INTERVAL 1 MINUTE), by = 'router')")}
            for router in ROUTERS:
                shown = page.locator(f'td[data-testid="spend-{router}"]').inner_text()
                assert shown == f"${spend[router]:.4f}", (router, shown, spend[router])

            # Latency: kept and escalated p95 per tier are tier_scoreboard's (t-digest states merged again
            # by the second query may differ in the last digit); the routing mix is routing_mix's.
            window = ("since = toString(toStartOfMinute(now() - INTERVAL 6 HOUR)), "
                      "until = toString(toStartOfMinute(now()) + INTERVAL 1 MINUTE), by = 'router'")
            for row in serve.query_dicts(f"SELECT * FROM tier_scoreboard({window})"):
                for path, column in (("kept", "terminal_latency_ms"), ("escalated", "passthrough_latency_ms")):
                    cell = page.locator(f'td[data-testid="p95-{row["segment"]}-{row["tier"]} {path}"]')
                    if path == "escalated" and not row["escalated"]:
                        assert cell.count() == 0
                        continue
                    shown = float(cell.inner_text().replace(",", ""))
                    assert abs(shown - row[column][1]) <= max(1.0, 0.01 * row[column][1]), (row, path, shown)
            for row in serve.query_dicts(f"SELECT segment, path_group, requests FROM request_latency({window})"):
                shown = page.locator(f'td[data-testid="requests-{row["segment"]}-{row["path_group"]}"]').inner_text()
                assert int(shown.replace(",", "")) == row["requests"], row
            for row in serve.query_dicts(f"SELECT segment, final_tier, requests FROM routing_mix({window})"):
                shown = page.locator(f'td[data-testid="mix-{row["segment"]}-{row["final_tier"]}"]').inner_text()
                assert int(shown.replace(",", "")) == row["requests"], row

            # Canaries: probes and rates per side and canary equal the raw results; the history is drawn.
            for canary, side, probes, answered, passed, flips in serve.query(
                "SELECT canary_id, side, count(), countIf(error = ''), countIf(error = '' AND answer_passed), "
                "countIf(error = '' AND observed_tier != expected_tier) FROM canary_results FINAL GROUP BY canary_id, side"
            ):
                key = f"console-alpha-{side}-{canary}"
                assert page.locator(f'td[data-testid="probes-{key}"]').inner_text() == str(probes)
                assert page.locator(f'td[data-testid="pass-{key}"]').inner_text() == f"{100 * passed / answered:.1f}%"
                assert page.locator(f'td[data-testid="flip-{key}"]').inner_text() == f"{100 * flips / answered:.1f}%"
            assert page.locator("#canary-pass-chart svg path[data-series]").count() == 2  # console-alpha's two sides
            assert page.locator("#canary-flip-chart svg path[data-series]").count() == 2
            # Per canary (c-math on the cheap side, c-law on the strong one), and the charts over time.
            assert sorted(page.locator("#canary-each-pass-chart svg path[data-series]").evaluate_all(
                "ps => ps.map(p => p.dataset.series)")) == ["console-alpha / cheap / c-math", "console-alpha / strong / c-law"]
            assert page.locator("#request-latency-chart svg line[data-target]").count() == 2  # the kept and escalated SLOs
            for chart in ("reasons-chart", "tier-latency-chart", "request-latency-chart", "spend-chart", "mix-chart"):
                assert page.locator(f"#{chart} svg path[data-series]").count() > 0, chart
            # Each escalation line has a point per bucket its series had accepted or escalated attempts.
            points = {k: int(n) for k, n in page.locator("#escalation-chart svg path[data-series]").evaluate_all(
                "ps => ps.map(p => [p.dataset.series, p.dataset.points])")}
            step = int(page.locator("#escalation-note").inner_text().split("-minute steps")[0].rsplit(" ", 1)[1])
            minutes = {f"{r} / {t}": n for r, t, n in serve.query(
                f"SELECT router_id, tier, uniqExact(intDiv(toUnixTimestamp(occurred_at), {step * 60})) FROM attempts FINAL "
                "WHERE outcome IN ('accepted', 'escalated') AND occurred_at >= now() - INTERVAL 6 HOUR AND canary_id = '' "
                "GROUP BY router_id, tier")}
            assert points == minutes

            # The chart's tier chooser keeps to one tier's lines, in the URL too; auto-refresh is in the URL.
            page.select_option("#chart-tier", "small")
            page.wait_for_function("location.hash.includes('tier=small')", timeout=30000)
            wait_rendered(page, 2)
            keys = [page.locator("#escalation-chart svg path[data-series]").nth(i).get_attribute("data-series")
                    for i in range(page.locator("#escalation-chart svg path[data-series]").count())]
            assert keys and all(" / small / " in k for k in keys), keys
            # With a tier: its categories, and the frozen baseline of every series of it that has one, dashed.
            learned = serve.query("SELECT uniqExact(series_key) FROM baselines FINAL WHERE signal = 'escalation_drift' "
                                  "AND match(series_key, '(^|,)tier=small(,|$)')")[0][0]
            assert page.locator("#escalation-chart svg line[data-baseline]").count() == learned > 0
            page.check("#refresh")
            page.wait_for_function("location.hash.includes('refresh=1')", timeout=30000)
            wait_rendered(page, 3)
            page.uncheck("#refresh")
            page.select_option("#chart-tier", "")
            wait_rendered(page, 5)
            assert "tier=" not in page.url and "refresh=" not in page.url

            # The router filter: the URL says it, and the figures are that router's alone.
            page.select_option("#router", "console-beta")
            wait_rendered(page, 6)
            assert "router=console-beta" in page.url
            assert shown_per_tier(page) == escalated_per_tier(serve, "console-beta")
            assert page.locator('td[data-testid^="escalated-console-alpha-"]').count() == 0
            assert page.locator("#canaries-status").inner_text() == "No canary probes in this range."
            assert page.locator("#canary-history").is_hidden()
            page.screenshot(path=str(shots / "router-beta.png"), full_page=True)

            # A shared link: a fresh tab opened on the URL shows the same filter.
            shared = browser.new_page()
            shared.on("pageerror", lambda e: problems.append(f"pageerror (shared): {e}"))
            shared.goto(page.url)  # the token is in this tab's sessionStorage only: a new tab starts without it
            wait_rendered(shared, 1)
            assert "token" in shared.locator("#error").inner_text().lower() or "bearer" in shared.locator("#error").inner_text().lower()
            shared.close()

            # The request search: every attempt, in order, with its outcome; the id goes in the URL.
            page.fill("#request-id", request_id)
            page.click("#request-form button")
            page.wait_for_function("!document.getElementById('request-table').hidden", timeout=60000)
            wait_rendered(page, 7)
            assert "id=" + request_id in page.url
            rows = page.locator("#request-table tbody tr")
            assert rows.count() == len(expected_attempts)
            for i, attempt in enumerate(expected_attempts):
                cells = rows.nth(i).locator("td")
                assert int(cells.nth(0).inner_text()) == attempt["attempt_index"]
                assert cells.nth(1).inner_text() == attempt["tier"]
                assert cells.nth(5).inner_text() == attempt["outcome"]
            grades = serve.query("SELECT target, passed FROM feedback FINAL WHERE request_id = {id:String}", {"id": request_id})
            shown = page.locator("#request-grades").inner_text()
            if grades:
                assert shown.startswith("Grades: ") and shown.count(";") == len(grades) - 1, (shown, grades)
                for target, passed in grades:
                    assert f"{target} {'passed' if passed else 'failed'}" in shown, (shown, grades)
            else:
                assert shown == "No grades.", shown
            page.screenshot(path=str(shots / "request.png"), full_page=True)

            # A canary run id lists the run's probes; a probe's request id links to its trace.
            page.fill("#request-id", "run-3")
            page.click("#request-form button")
            page.wait_for_function("!document.getElementById('run-table').hidden", timeout=60000)
            assert page.locator("#request-table").is_hidden()
            probes = page.locator("#run-table tbody tr")
            assert probes.count() == len(CANARY_PLAN)
            assert sorted(probes.nth(i).locator("td").nth(2).inner_text() for i in range(probes.count())) == ["c-law", "c-math"]
            page.locator("#run-table a", has_text="canary-c-math-3").click()
            page.wait_for_function("location.hash.includes('id=canary-c-math-3')", timeout=30000)
            page.screenshot(path=str(shots / "canary-run.png"), full_page=True)

            # An unknown request says so.
            page.fill("#request-id", "no-such-request")
            page.click("#request-form button")
            page.wait_for_function("document.getElementById('request-status').textContent.startsWith('No request')", timeout=60000)
            assert page.locator("#run-table").is_hidden()

            # The SQL box answers through serve's /query with the token, and refuses a write.
            page.fill("#sql-text", "SELECT count() AS n FROM requests")
            page.click("#sql-form button")
            page.wait_for_function("document.getElementById('sql-status').textContent.includes('row')", timeout=60000)
            assert page.locator("#sql-table thead th").all_inner_texts() == ["n"]
            assert page.locator("#sql-table tbody td").first.inner_text() == str(serve.query("SELECT count() FROM requests")[0][0])
            page.fill("#sql-text", "INSERT INTO decisions SELECT * FROM decisions")
            page.click("#sql-form button")
            page.wait_for_function("document.getElementById('sql-status').textContent.startsWith('Refused')", timeout=60000)
            assert page.locator("#sql-table").is_hidden()
            problems[:] = [m for m in problems if "status of 400" not in m]  # the refusal's own 400, logged by the browser
        finally:
            browser.close()
    print(f"console screenshots: {shots}")
    # The main page logged nothing (the shared tab's expected 401s are not listened to).
    assert not problems, problems
