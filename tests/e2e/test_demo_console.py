"""The console issue's "done when": `make demo` ends with the console's URL; on it, `make incident`
shows the page within a tick and the request search finds a demo request.

The same scripts as the make targets run with the demo's own settings (only ports, topics and the
run directory are the test's): ``deploy/demo.sh`` (`make demo`), ``deploy/incident.sh start`` (`make
incident`) and ``deploy/demo-stop.sh`` (`make stop`, also when the test fails). The last line of the
demo's closing message is the console's URL, and the line before names a demo request id. The test
checks that the URL answers with the console, then opens it in Debian's headless Chromium
(``/usr/bin/chromium``, driven by Playwright; no browser is downloaded).

The request search: the demo request id typed in the page's form lists that request's attempts,
and every row on screen equals, cell by cell (formatted as the page formats them), what
``routerwatch cookbook what_did_this_request_do --param request_id=<id>`` returns.

"Within a tick", measured here: the incident's traffic is a replay placed hours back, so the
detectors need no minutes of live evidence; the evidence is in when the script's second ``routerwatch
wait`` returns (its "detectors as of the end of the incident" line). From then the incident pages by
the script's own live evaluation or by the scheduler's next tick. While the script runs, a thread
polls Alertmanager's API (active alerts of router ``incident-router``) and serve's ``/alerts`` (what
``routerwatch alerts`` prints) every quarter second and takes t0 = the first moment either has the
incident's alert firing. From when the evidence is in, the console is reloaded (each time once its
render is done) until the Now section has a ``firing`` row of that router; the test fails when that
row is on screen later than one scheduler interval (the demo's ``ROUTERWATCH_SCHEDULER__INTERVAL_S``,
read from the demo's closing message) after t0, render time included. It also fails when t0 is more
than one interval plus a margin for the detectors' runs after the evidence is in (when nothing pages,
the message lists the incident router's escalation baselines: a scheduler tick that loaded the
baselines before the script froze its own and saved its automatic first ones after them replaces
them, since the newest version is in force, and the page is lost). Screenshots are
kept under the test's tmp folder, next to the incident script's output (``incident.log``) and the
demo's run folder (``run/``, its logs).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from servicekit import REPO, free_port

# The demo, the incident's 18,000 requests and the browser: minutes on a loaded two-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

CHROMIUM = "/usr/bin/chromium"
INCIDENT_ROUTER = "incident-router"
# The detectors' runs between the evidence being in and the page: the script's dry run as of the
# incident's end, then its live run (or the scheduler's), each with a CLI start; generous for a
# loaded two-core machine. It bounds when Alertmanager pages, not when the console shows it.
DETECTOR_RUNS_MARGIN_S = 60.0
POLL_S = 0.25
# The incident script's line once its traffic is stored: from here on the detectors can page.
EVIDENCE_IN = "== detectors as of the end of the incident"


def demo_env(kafka_bootstrap: str, names: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The demo's environment: its defaults, with this test's ports, topics, store and run directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERWATCH_")}
    env.update(
        ROUTERWATCH_BIN=str(Path(sys.executable).parent),
        ROUTERWATCH_RUN_DIR=str(tmp_path / "run"),
        ROUTERWATCH_KAFKA_BOOTSTRAP=kafka_bootstrap,
        ROUTERWATCH_CLICKHOUSE_URL=f"chdb://{tmp_path / 'store'}",
        ROUTERWATCH_HTTP__PORT=str(free_port()),
        ROUTERWATCH_TOPICS__DECISIONS=names["decisions"],
        ROUTERWATCH_TOPICS__FEEDBACK=names["feedback"],
        ROUTERWATCH_TOPICS__CANARY=names["canary"],
        ROUTERWATCH_TOPICS__DLQ=names["dlq"],
        ROUTERWATCH_INGEST__APP_ID=names["group"],
        ROUTERWATCH_INGEST__BATCH_SECONDS="0.3",
        ALERTMANAGER_PORT=str(free_port()),
        EXAMPLE_ROUTER_PORT=str(free_port()),
        ROUTERWATCH_CANARY__LEASE_TOPIC=names["decisions"] + ".lease",
        ROUTERWATCH_CANARY__LEASE_GROUP=names["group"] + "-lease",
        DEMO_REQUESTS="1500",
        DEMO_INVALID="12",
        DEMO_DUPLICATES="40",
    )
    return env


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def incident_firing(serve_url: str, am_url: str) -> set[str]:
    """Where the incident's alert fires now: "alertmanager" (active there), "serve" (serve's /alerts)."""
    where = set()
    query = urllib.parse.urlencode({"filter": f'router="{INCIDENT_ROUTER}"', "silenced": "false", "inhibited": "false"})
    try:
        if any((a.get("status") or {}).get("state") == "active" for a in get_json(f"{am_url}/api/v2/alerts?{query}")):
            where.add("alertmanager")
    except OSError:
        pass  # not answering this instant: asked again at the next poll
    try:
        if any(a["labels"].get("router") == INCIDENT_ROUTER for a in get_json(f"{serve_url}alerts")["firing"]):
            where.add("serve")
    except OSError:
        pass
    return where


def serve_log_tail(env: dict[str, str], lines: int = 40) -> str:
    log = Path(env["ROUTERWATCH_RUN_DIR"]) / "serve.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no serve.log)"


def incident_baselines(env: dict[str, str]) -> str:
    """The escalation baselines of the incident's router, oldest first: says whether a tick's automatic first
    baselines (a week's window up to that tick) were saved after the ones the script froze (two hours, 6h to 4h
    ago), and so replaced them."""
    done = subprocess.run(
        [sys.executable, "-m", "routerwatch.cli", "sql", "--header",
         "SELECT series_key, created_at, window_start, window_end FROM baselines FINAL WHERE signal = 'escalation_drift' "
         f"AND series_key LIKE '%router={INCIDENT_ROUTER},%' ORDER BY series_key, created_at"],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    return done.stdout or done.stderr


def wait_rendered(page, count: int = 1) -> None:
    page.wait_for_function(f"Number(document.body.dataset.rendered || 0) >= {count} && document.body.dataset.loading === '0'",
                           timeout=120000)


def now_rows(page) -> list[list[str]]:
    """The Now section's firing rows, as the texts of their cells."""
    rows = page.locator("#now-table tbody tr.firing")
    return [[c.inner_text() for c in rows.nth(i).locator("td").all()] for i in range(rows.count())]


def incident_row(page) -> list[str] | None:
    """The Now section's row of an alert of the incident's router, if there is one."""
    return next((r for r in now_rows(page) if len(r) > 1 and r[1] == INCIDENT_ROUTER), None)


def shown_as_the_page_does(attempt: dict) -> list[str]:
    """A cookbook row's cells as console.js writes them (ms, $ with 4 decimals, scores with 3, '–' for null)."""
    dash = "\u2013"

    def text(v):
        return "" if v is None else str(v)

    def ms(v):
        return dash if v is None else f"{math.floor(float(v) + 0.5):,}"

    def fixed(v, places):
        return dash if v is None else f"{float(v):.{places}f}"

    return [str(attempt["attempt_index"]), text(attempt["tier"]), text(attempt["model"]), text(attempt["provider"]),
            ms(attempt["latency_ms"]), text(attempt["outcome"]), text(attempt["gate_kind"]), fixed(attempt["gate_score"], 3),
            fixed(attempt["gate_threshold"], 3), text(attempt["escalation_reason"]), text(attempt["failure_mode"]),
            dash if attempt["cost_usd"] is None else "$" + fixed(attempt["cost_usd"], 4)]


class FirstFiring:
    """Polls Alertmanager and serve's /alerts in its own thread; ``t0``: when either first had the incident firing."""

    def __init__(self, serve_url: str, am_url: str) -> None:
        self.t0: float | None = None
        self.where: set[str] = set()
        self.found = threading.Event()
        self._stop = threading.Event()
        self._args = (serve_url, am_url)
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            where = incident_firing(*self._args)
            if where:
                self.t0, self.where = time.monotonic(), where
                self.found.set()
                return
            self._stop.wait(POLL_S)

    def stop(self) -> None:
        self._stop.set()


class Script:
    """A script run in the background, its output lines kept with the time each was read."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        # Its own process group: a failed test stops the script and the commands it started, only those.
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def seen(self, prefix: str) -> float | None:
        return next((t for t, line in list(self.lines) if line.startswith(prefix)), None)

    def output(self) -> str:
        return "\n".join(line for _, line in list(self.lines))

    def finish(self, timeout: float) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        return rc

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the script and everything it started are over
        self.proc.wait(timeout=30)


def test_demo_ends_with_the_console_which_shows_the_incident_within_a_tick_and_finds_a_demo_request(
        kafka_bootstrap, names, tmp_path):
    from playwright.sync_api import sync_playwright

    env = demo_env(kafka_bootstrap, names, tmp_path)
    am_url = f"http://127.0.0.1:{env['ALERTMANAGER_PORT']}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    incident: Script | None = None
    watcher: FirstFiring | None = None
    problems: list[str] = []
    try:
        started = time.monotonic()
        done = subprocess.run([str(REPO / "deploy/demo.sh")], env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
        assert done.returncode == 0, f"the demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        demo_s = time.monotonic() - started
        lines = done.stdout.rstrip().splitlines()
        # The closing message ends with the console's URL, after a demo request id to search for.
        last = re.fullmatch(r"Console: (http://127\.0\.0\.1:(\d+)/)", lines[-1])
        assert last and last.group(2) == env["ROUTERWATCH_HTTP__PORT"], lines[-4:]
        url = last.group(1)
        found = re.fullmatch(r"A demo request to search for in it: (\S+) \(or open (\S+)\)", lines[-2])
        assert found and found.group(2) == f"{url}#id={found.group(1)}", lines[-4:]
        request_id = found.group(1)
        tick = re.search(r"within a detector tick,\s*\n?\s*([\d.]+) s", done.stdout)
        assert tick, lines[-6:]
        tick_s = float(tick.group(1))

        # The printed URL answers: the console's page, which loads its own script.
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.status == 200 and "console.js" in answer.read().decode()

        cookbook = subprocess.run(
            [sys.executable, "-m", "routerwatch.cli", "cookbook", "what_did_this_request_do", "--param",
             f"request_id={request_id}", "--format", "json"],
            env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
        )
        assert cookbook.returncode == 0, cookbook.stderr
        expected = [shown_as_the_page_does(a) for a in json.loads(cookbook.stdout)]
        assert len(expected) >= 2, f"the demo request {request_id} should have escalated: {expected}"

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} {m.location}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
                page.goto(url)
                wait_rendered(page)
                assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
                assert incident_row(page) is None, "no incident before make incident"

                # The request search finds the demo request: its attempts, as the cookbook answers.
                page.fill("#request-id", request_id)
                page.click("#request-form button")
                page.wait_for_function("!document.getElementById('request-table').hidden", timeout=120000)
                wait_rendered(page, 2)
                assert "id=" + request_id in page.url
                rows = page.locator("#request-table tbody tr")
                shown = [[c.inner_text() for c in rows.nth(i).locator("td").all()] for i in range(rows.count())]
                assert shown == expected
                assert f"what_did_this_request_do --param request_id={request_id}" in page.locator("#request-status").inner_text()
                page.screenshot(path=str(shots / "demo-request.png"), full_page=True)

                # `make incident`; t0 is taken by the watcher (its own thread), the page reloaded from here.
                incident = Script([str(REPO / "deploy/incident.sh"), "start"], env)
                watcher = FirstFiring(url, am_url)
                give_up = time.monotonic() + 900
                # Until the evidence is in there is nothing for the console to show yet.
                while incident.seen(EVIDENCE_IN) is None and watcher.t0 is None and incident.proc.poll() is None:
                    assert time.monotonic() < give_up, f"the incident's traffic was not in after 15 minutes:\n{incident.output()[-3000:]}"
                    time.sleep(POLL_S)
                evidence_in = incident.seen(EVIDENCE_IN)
                assert evidence_in is not None, incident.output()[-3000:]
                page.goto(url)  # without the request: the Now section is what is looked at
                wait_rendered(page)
                renders = 0
                while (row := incident_row(page)) is None:
                    now = time.monotonic()
                    assert incident.proc.poll() in (None, 0), incident.output()[-3000:]
                    assert now < evidence_in + tick_s + DETECTOR_RUNS_MARGIN_S or watcher.t0 is not None, (
                        f"no page {now - evidence_in:.0f} s after the evidence was in:\n{incident.output()[-3000:]}\n"
                        f"serve's log:\n{serve_log_tail(env)}\nincident-router's escalation baselines (newest in force):\n"
                        f"{incident_baselines(env)}")
                    assert watcher.t0 is None or now < watcher.t0 + tick_s, (
                        f"the console had no firing row of {INCIDENT_ROUTER} {now - watcher.t0:.1f} s after it fired in "
                        f"{sorted(watcher.where)}: {now_rows(page)} / {page.locator('#now-status').inner_text()}")
                    page.reload()
                    wait_rendered(page)
                    renders += 1
                shown_at = time.monotonic()
                page.screenshot(path=str(shots / "incident-now.png"), full_page=True)
                # Shown on screen means serve has it: the watcher sees it too, at its next poll.
                assert watcher.found.wait(timeout=60), "the console shows a page that neither Alertmanager nor /alerts has"
                t0, where = watcher.t0, sorted(watcher.where)
                paged_after_evidence, shown_after = t0 - evidence_in, shown_at - t0
                assert paged_after_evidence <= tick_s + DETECTOR_RUNS_MARGIN_S, (paged_after_evidence, incident.output())
                assert shown_after <= tick_s, f"the console showed the page {shown_after:.1f} s after {where} had it (tick {tick_s} s)"

                rc = incident.finish(timeout=900)
                out = incident.output()
                assert rc == 0, out[-3000:]
                active = [a for a in get_json(f"{am_url}/api/v2/alerts?" + urllib.parse.urlencode(
                    {"filter": f'router="{INCIDENT_ROUTER}"', "silenced": "false", "inhibited": "false"}))
                    if a["status"]["state"] == "active"]
                assert active and row[0] in {a["labels"]["alertname"] for a in active}, (row, active)
                assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
            finally:
                browser.close()
        print(f"demo {demo_s:.0f} s; paged {paged_after_evidence:.1f} s after the evidence was in; console showed it "
              f"{shown_after:.1f} s after {where} had it ({renders} reload(s); tick {tick_s:g} s); screenshots: {shots}")
    finally:
        if watcher is not None:
            watcher.stop()
        if incident is not None:
            incident.kill()
            (tmp_path / "incident.log").write_text(incident.output() + "\n")  # kept with the screenshots
        stopped = subprocess.run([str(REPO / "deploy/demo-stop.sh")], env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped routerwatch serve" in stopped.stdout
    assert not problems, problems
