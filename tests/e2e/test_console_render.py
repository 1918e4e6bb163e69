"""The console's page in Chromium against canned endpoint answers: a firing alert is shown with its
figures, runbook link, query and Kitagawa split; silenced and resolved alerts beside it; the charts
over time draw their targets (CUSUM threshold, latency SLOs); the SQL box shows an answer and a
refusal; and text from the store is shown as text (never run as markup).

No serve, Kafka or store: Playwright answers the page's requests itself (the package's static files,
and JSON for /console/api/*). The figures' equality with the store is tests/e2e/test_console_browser.py's.
"""

from __future__ import annotations

import json

from routerwatch.console.routes import STATIC, static_file

CHROMIUM = "/usr/bin/chromium"
BASE = "http://127.0.0.1:9/"  # never reached: every request is answered by the route below
EVIL = '<img src=x onerror="window.__pwned=1">'
SINCE, UNTIL = "2026-12-07T06:00:00+00:00", "2026-12-07T12:00:00+00:00"

ANSWERS = {
    "now": {"detectors": True, "evaluated_at": UNTIL, "series_evaluated": 40, "firing": [{
        "labels": {"alertname": "RouterwatchEscalationDrift", "router": "r1", "tier": "small", "category": EVIL},
        "annotations": {"baseline": "0.16", "observed": "0.59", "magnitude": "0.43", "change_start": "2026-12-07T11:10:00+00:00",
                        "runbook_url": "https://runbooks.example/README.md#routerwatchescalationdrift",
                        "query": "SELECT * FROM escalation_series(since = '2026-12-07 10:10:00', until = '2026-12-07 12:00:00')"},
        "starts_at": "2026-12-07T11:10:00+00:00", "kitagawa": {"total": 0.43, "mix": 0.03, "within": 0.40}}],
        "silenced": {"available": True, "alerts": [{
            "labels": {"alertname": "RouterwatchCanaryTierFlip", "router": "r1", "canary": EVIL},
            "silenced_by": ["silence-1"], "inhibited_by": [], "starts_at": "2026-12-07T10:00:00+00:00"}]},
        "resolved": {"available": True, "alerts": [{"labels": {"alertname": "RouterwatchFailureShift", "router": "r1", "tier": EVIL},
                     "starts_at": "2026-12-07T08:00:00+00:00", "ends_at": "2026-12-07T09:00:00+00:00"}]}},
    "routers": {"since": SINCE, "until": UNTIL, "routers": ["r1"], "environments": ["prod", EVIL]},
    "escalation": {"since": SINCE, "until": UNTIL, "router": None, "step_minutes": 1, "tier": "small", "series_sql": "SELECT 1", "baselines": [
        {"router_id": "r1", "tier": "small", "category": EVIL, "p0": 0.16, "version": "b1"}],
        "tiers": [{"segment": "r1", "tier": EVIL, "attempts": 10, "accepted": 6, "escalated": 4, "failed": 0, "escalation_rate": 0.4,
                   "terminal_latency_ms": [100, 200, 300], "passthrough_latency_ms": [110, 220, 330]}],
        "series": [{"minute": "2026-12-07T11:00:00+00:00", "router_id": "r1", "tier": "small", "category": EVIL, "escalated": 4,
                    "accepted": 6, "escalation_rate": 0.4},
                   {"minute": "2026-12-07T11:30:00+00:00", "router_id": "r1", "tier": "small", "category": EVIL, "escalated": 6,
                    "accepted": 4, "escalation_rate": 0.6}],
        "reasons": [{"minute": "2026-12-07T11:00:00+00:00", "escalation_reason": EVIL, "escalations": 4},
                    {"minute": "2026-12-07T11:30:00+00:00", "escalation_reason": EVIL, "escalations": 6}],
        "statistics": {"since": SINCE, "until": UNTIL, "sql": "SELECT 2", "truncated": False, "rows": [
            {"minute": "2026-12-07T11:00:00+00:00", "signal": "escalation_drift", "router_id": "r1", "tier": "small",
             "category": EVIL, "statistic": 2.0, "threshold": 8.0, "firing": False},
            {"minute": "2026-12-07T11:30:00+00:00", "signal": "escalation_drift", "router_id": "r1", "tier": "small",
             "category": EVIL, "statistic": 9.0, "threshold": 8.0, "firing": True}]}},
    "latency_cost": {"since": SINCE, "until": UNTIL, "router": None, "latency": [], "mix": [], "step_minutes": 1,
                     "slo": {"kept_p95_ms": 5000.0, "escalated_p95_ms": 13000.0},
                     "cost": [{"segment": "r1", "requests": 10, "actual_cost_usd": 0.5, "counterfactual_cost_usd": 2.0,
                               "savings_share": 0.75}],
                     "tier_latency_series": [{"bucket": b, "router_id": "r1", "tier": EVIL, "outcome": o, "attempts": 3,
                                              "latency_ms": [100, 900, 1000]} for b in (SINCE, UNTIL) for o in ("accepted", "escalated")],
                     "request_series": [{"bucket": b, "router_id": "r1", "path": p, "requests": 3, "latency_ms": [100, 6000, 7000]}
                                        for b in (SINCE, UNTIL) for p in ("kept", "escalated")],
                     "spend_series": [{"bucket": SINCE, "router_id": "r1", "requests": 3, "actual_cost_usd": 0.1,
                                       "counterfactual_cost_usd": 0.4}],
                     "mix_series": [{"bucket": SINCE, "router_id": "r1", "final_tier": EVIL, "requests": 3, "share": 1.0}]},
    "canaries": {"since": SINCE, "until": UNTIL, "router": None, "series": [],
                 "canaries": [{"router_id": "r1", "side": "cheap", "canary_id": EVIL, "probes": 2, "answered": 2, "pass_rate": 0.5,
                               "tier_flip_rate": 0.0, "last_error": EVIL, "last_error_at": SINCE}],
                 "history": [{"bucket": b, "router_id": "r1", "side": "cheap", "canary_id": EVIL, "pass_rate": v, "tier_flip_rate": 0.0}
                             for b, v in ((SINCE, 1.0), (UNTIL, 0.0))]},
}


def test_a_firing_alert_is_shown_and_store_text_stays_text(tmp_path):
    from playwright.sync_api import sync_playwright

    files = {path: (static_file(name), ctype) for path, (name, ctype) in STATIC.items()}
    requested: list[str] = []

    def answer(route):
        url = route.request.url
        path = "/" + url.split("/", 3)[3].split("?")[0].split("#")[0]
        requested.append(path)
        if path in files:
            body, ctype = files[path]
            return route.fulfill(status=200, body=body, content_type=ctype)
        if path == "/query":
            sql = json.loads(route.request.post_data)["sql"]
            if "INSERT" in sql:
                return route.fulfill(status=400, body=json.dumps({"error": "only statements that read are allowed", "refused": True}),
                                     content_type="application/json")
            return route.fulfill(status=200, body=json.dumps({"columns": ["tier", "n"], "rows": [[EVIL, 3], [None, 4]]}),
                                 content_type="application/json")
        name = path.removeprefix("/console/api/")
        if name in ANSWERS:
            return route.fulfill(status=200, body=json.dumps(ANSWERS[name]), content_type="application/json")
        return route.fulfill(status=404, body=json.dumps({"error": f"no {path}"}), content_type="application/json")

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.route("**/*", answer)
            page.goto(BASE + "#range=6h&tier=small")
            page.wait_for_function("document.body.dataset.rendered === '1'", timeout=30000)
            assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
            assert page.locator("#now-status").inner_text().startswith("1 firing")
            cells = page.locator("#now-table tbody tr").first.locator("td")
            assert [cells.nth(i).inner_text() for i in range(7)] == [
                "RouterwatchEscalationDrift", "r1", "small", EVIL, "0.16", "0.59", "0.43"]
            link = cells.nth(8).locator("a")
            assert link.get_attribute("href") == "https://runbooks.example/README.md#routerwatchescalationdrift"
            assert "escalation_series(" in cells.nth(9).inner_text()
            # Store text is text: no element was made from it, nothing ran.
            assert page.locator("img").count() == 0
            assert page.evaluate("window.__pwned === undefined")
            assert page.locator("#escalation-chart svg line[data-baseline]").count() == 1
            # The Kitagawa split, silenced and resolved alerts beside the firing one.
            assert cells.nth(10).inner_text() == "+43.0 pp = mix +3.0 pp + within +40.0 pp"
            silenced = page.locator("#silenced-table tbody tr td")
            assert [silenced.nth(i).inner_text() for i in range(6)] == [
                "RouterwatchCanaryTierFlip", "r1", "", EVIL, "silenced", "silence-1"]
            resolved = page.locator("#resolved-table tbody tr td")
            assert [resolved.nth(i).inner_text() for i in range(3)] == ["RouterwatchFailureShift", "r1", EVIL]
            assert page.locator("#resolved-status").inner_text() == "1 resolved in the last 24 hours."
            # Targets drawn: the CUSUM threshold, both latency SLOs; every chart over time has its lines.
            assert page.locator("#statistic-chart svg line[data-target]").count() == 1
            assert page.locator("#statistic-chart svg path[data-series]").get_attribute("data-points") == "2"
            assert page.locator("#request-latency-chart svg line[data-target]").count() == 2
            for chart, lines in (("reasons-chart", 1), ("tier-latency-chart", 2), ("request-latency-chart", 2), ("spend-chart", 2),
                                 ("mix-chart", 1), ("canary-each-pass-chart", 1)):
                assert page.locator(f"#{chart} svg path[data-series]").count() == lines, chart
            # The environment filter is offered and goes into the link.
            page.select_option("#environment", "prod")
            page.wait_for_function("document.body.dataset.rendered === '2'", timeout=30000)
            assert "env=prod" in page.url
            # The SQL box: an answer as a table of text, a refusal as the server's message.
            page.fill("#sql-text", "SELECT tier, count() AS n FROM attempts GROUP BY tier")
            page.click("#sql-form button")
            page.wait_for_function("document.getElementById('sql-status').textContent.includes('row')", timeout=30000)
            assert page.locator("#sql-table thead th").all_inner_texts() == ["tier", "n"]
            assert page.locator("#sql-table tbody tr").first.locator("td").all_inner_texts() == [EVIL, "3"]
            page.fill("#sql-text", "INSERT INTO attempts SELECT 1")
            page.click("#sql-form button")
            page.wait_for_function("document.getElementById('sql-status').textContent.startsWith('Refused')", timeout=30000)
            assert "only statements that read" in page.locator("#sql-status").inner_text()
            page.screenshot(path=str(tmp_path / "firing.png"), full_page=True)
        finally:
            browser.close()
    print(f"console screenshot: {tmp_path / 'firing.png'}")
    # The refused statement's 400 is the one resource error the browser may log.
    refused = [m for m in problems if "status of 400" in m]
    assert len(refused) == 1 and len(problems) == 1, problems
    assert all(path in files or path.startswith("/console/api/") or path == "/query" for path in requested), requested
