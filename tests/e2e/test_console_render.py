"""The console's page in Chromium against canned endpoint answers: a firing alert is shown with its
figures, runbook link and query, and text from the store is shown as text (never run as markup).

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
        "starts_at": "2026-12-07T11:10:00+00:00"}]},
    "routers": {"since": SINCE, "until": UNTIL, "routers": ["r1"]},
    "escalation": {"since": SINCE, "until": UNTIL, "router": None, "step_minutes": 1, "series_sql": "SELECT 1", "baselines": [
        {"router_id": "r1", "tier": "small", "category": EVIL, "p0": 0.16, "version": "b1"}],
        "tiers": [{"segment": "r1", "tier": EVIL, "attempts": 10, "accepted": 6, "escalated": 4, "failed": 0, "escalation_rate": 0.4,
                   "terminal_latency_ms": [100, 200, 300], "passthrough_latency_ms": [110, 220, 330]}],
        "series": [{"minute": "2026-12-07T11:00:00+00:00", "router_id": "r1", "tier": "small", "category": EVIL, "escalated": 4,
                    "accepted": 6, "escalation_rate": 0.4},
                   {"minute": "2026-12-07T11:30:00+00:00", "router_id": "r1", "tier": "small", "category": EVIL, "escalated": 6,
                    "accepted": 4, "escalation_rate": 0.6}]},
    "latency_cost": {"since": SINCE, "until": UNTIL, "router": None, "latency": [], "mix": [],
                     "cost": [{"segment": "r1", "requests": 10, "actual_cost_usd": 0.5, "counterfactual_cost_usd": 2.0,
                               "savings_share": 0.75}]},
    "canaries": {"since": SINCE, "until": UNTIL, "router": None, "canaries": [], "series": []},
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
            page.goto(BASE + "#range=6h")
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
            page.screenshot(path=str(tmp_path / "firing.png"), full_page=True)
        finally:
            browser.close()
    print(f"console screenshot: {tmp_path / 'firing.png'}")
    assert not problems, problems
    assert all(path in files or path.startswith("/console/api/") for path in requested), requested
