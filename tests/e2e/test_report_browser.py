"""The HTML report in a real browser: Debian's headless Chromium parses it, lays it out and paints it.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``; ``.ci/run`` installs it). The test fails,
never skips, when it is missing.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from routerwatch.report.html import render_html
from routerwatch.report.scoreboard import SECTIONS, Report

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLOTS = ("tier-latency", "request-latency", "escalation-series", "routing-mix", "cost")
EVIL_TIER = "<script>alert(1)</script>"
SINCE = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 22, 4, 30, tzinfo=timezone.utc)
TIERS = (("small", 0, 450.0), ("medium", 1, 1400.0), ("large", 2, 4200.0))
SEGMENTS = ("billing", "coding", "legal")


def build_report() -> Report:
    """A report split by category, as ``routerwatch report --by category`` builds it."""
    rng = random.Random(7)
    tiers, mix, cost, latency = [], [], [], []
    for segment in SEGMENTS:
        for tier, rank, p50 in TIERS:
            accepted, escalated = rng.randint(200, 900), (rng.randint(50, 300) if tier != "large" else 0)
            tiers.append({
                "segment": segment, "tier": tier, "tier_rank": rank, "attempts": accepted + escalated + 9,
                "accepted": accepted, "escalated": escalated, "failed": 9, "shadow": 0,
                "escalation_rate": escalated / (accepted + escalated), "failure_rate": 9 / (accepted + escalated + 9),
                "terminal_share": accepted / (accepted + escalated + 9), "passthrough_share": escalated / (accepted + escalated + 9),
                "terminal_latency_ms": [p50, p50 * 1.8, p50 * 2.2],
                "passthrough_latency_ms": [p50 * 1.05, p50 * 1.7, p50 * 2.3] if escalated else [None, None, None],
                "terminal_ttft_ms": [None, None, None], "verify_latency_ms": [0.0, 0.0, 0.0],
                "model_cost_usd": accepted * 0.001 * (rank + 1), "verify_cost_usd": 0.0, "shadow_cost_usd": 0.0,
            })
        shares = [0.7, 0.2, 0.08, 0.02]
        for (tier, rank, _), share in zip(list(TIERS) + [("(not served)", 0, 0)], shares):
            mix.append({"segment": segment, "final_tier": tier, "final_tier_rank": rank, "requests": int(share * 1000),
                        "share": share, "kept": int(share * 800), "escalated": int(share * 200),
                        "cost_usd": share * 3, "cost_per_request_usd": 0.003})
        actual, counterfactual = rng.uniform(2, 10), rng.uniform(20, 60)
        cost.append({"segment": segment, "requests": 1000, "actual_cost_usd": actual, "counterfactual_cost_usd": counterfactual,
                     "savings_share": 1 - actual / counterfactual, "cost_per_request_usd": actual / 1000, "routable_share": 0.9})
        for path, p50 in (("kept", 480.0), ("escalated", 2700.0), ("all", 560.0)):
            latency.append({"segment": segment, "path_group": path, "requests": 1000, "latency_ms": [p50, p50 * 3, p50 * 4]})
    series = []
    for i in range(90):
        minute = (SINCE + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S")
        for tier in ("small", "medium", "large", EVIL_TIER):
            if tier == EVIL_TIER and i % 10:
                continue
            for category in SEGMENTS:
                accepted = rng.randint(1, 12)
                escalated = 0 if tier == "large" else rng.randint(0, 6)
                series.append({"minute": minute, "tier": tier, "category": category, "escalated": escalated,
                               "accepted": accepted, "escalation_rate": escalated / (escalated + accepted)})
    canaries, canary_series = [], []
    for side, expected, names in (("cheap", "small", ("refund-policy", "greeting")), ("strong", "large", ("contract-clause",))):
        for name in names:
            probes = 18
            answered = probes - rng.randint(0, 2)
            passed, flips = answered - rng.randint(0, 2), rng.randint(0, 2)
            canaries.append({"router_id": "r1", "side": side, "canary_id": name, "category": "billing", "expected_tier": expected,
                             "probes": probes, "answered": answered, "no_answer": probes - answered, "passed": passed,
                             "pass_rate": passed / answered, "tier_flips": flips, "tier_flip_rate": flips / answered,
                             "observed_tiers": {expected: answered - flips, "medium": flips} if flips else {expected: answered},
                             "most_common_observed_tier": expected, "timed": answered, "latency_p50_ms": 400.0,
                             "latency_p95_ms": 900.0, "last_probe_at": "2026-11-22 04:25:00", "last_error_at": None,
                             "last_error": "", "last_check_detail": ""})
        for i in range(0, 90, 5):
            answered = rng.randint(3, 6)
            passed = answered - rng.randint(0, 1)
            canary_series.append({"bucket": (SINCE + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S"), "router_id": "r1",
                                  "side": side, "probes": answered, "answered": answered, "no_answer": 0, "passed": passed,
                                  "pass_rate": passed / answered, "tier_flips": 0, "tier_flip_rate": 0.0})
    sections = {
        "tiers": tiers,
        "request_latency": latency,
        "routing_mix": mix,
        "cost": cost,
        "escalation_reasons": [{"tier": "small", "category": "coding", "escalation_reason": "low_confidence",
                                "escalations": 440, "share_of_tier_escalations": 0.48}],
        "failure_modes": [{"tier": "small", "failure_mode": "timeout", "failures": 12, "rate": 0.003}],
        "quality": [],
        "gate_calibration": [],
        "experiment_slices": [],
        "experiment_mix": [{"experiment_id": "gate-test", "experiment_variant": v, "final_tier": "small", "requests": n}
                           for v, n in (("control", 1800), ("treatment", 900))],
        "experiment_mix_test": [{"experiment_id": "gate-test", "variants": 2, "chi2": 41.2, "dof": 2, "p_value": 1e-9,
                                 "mix_differs": True}],
        "escalation_series": series,
        "tenants": [{"tenant": f"tenant-{i:03d}", "requests": 900 - i, "escalated_requests": 10, "escalation_rate": 0.2,
                     "cost_usd": 9 - i * 0.2, "share_of_spend": 0.03} for i in range(30)],
        "dead_letters": [],
        "canaries": canaries,
        "canary_series": canary_series,
    }
    return Report(SINCE, UNTIL, "category", sections)


@pytest.fixture(scope="module")
def chromium() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} not found: install the Debian package `chromium` (apt-get install -y chromium); "
            ".ci/run installs it when missing",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
def page_url(tmp_path: Path) -> str:
    path = tmp_path / "report.html"
    path.write_text(render_html(build_report()), encoding="utf-8")
    return path.as_uri()


def run_chromium(chromium: str, tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{name}"
    profile.mkdir()
    try:
        done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"chromium did not finish in 180 s: {exc}")
    assert done.returncode == 0, f"chromium exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def test_browser_builds_the_plots_and_tables(chromium, page_url, tmp_path):
    dom = run_chromium(chromium, tmp_path, "dom", "--dump-dom", page_url).stdout
    assert re.match(r"\s*(<!DOCTYPE html>\s*)?<html\b", dom), dom[:500]
    svgs = re.findall(r"<svg\b[^>]*>", dom)
    assert [re.search(r'data-plot="([^"]+)"', s).group(1) for s in svgs if "data-plot=" in s] == list(PLOTS)
    # The other pictures: one canary pass-rate sparkline per side.
    assert [re.search(r'data-side="([^"]+)"', s).group(1) for s in svgs if 'class="sparkline"' in s] == ["cheap", "strong"]
    assert len(svgs) == len(PLOTS) + 2
    for plot in PLOTS:
        start = dom.index(f'data-plot="{plot}"')
        body = dom[start:dom.index("</svg>", start)]
        assert re.search(r"<title[^>]*>[^<]+</title>", body), plot
    # The browser parsed the marks as SVG: one polyline per tier, bars per segment, quantile marks.
    assert len(re.findall(r"<polyline\b", dom)) == 4
    assert len(re.findall(r'<rect class="bar"[^>]*data-tier=', dom)) == len(SEGMENTS) * 4
    assert len(re.findall(r'<rect class="bar"[^>]*data-series=', dom)) == len(SEGMENTS) * 2
    assert len(re.findall(r'class="q"', dom)) > 40
    # Tables: every section (two for the wide per-tier one, a per-side one more for canaries); empty ones say so.
    assert dom.count("<table>") == sum(1 for key, *_ in SECTIONS if build_report().sections.get(key)) + 1 + 1
    assert dom.count('<table class="canary-sides">') == 1
    assert len(re.findall(r'<path class="spark"', dom)) == 2
    for key, *_ in SECTIONS:
        assert f'id="section-{key}"' in dom
    dead = dom[dom.index('id="section-dead_letters"'):]
    assert "no data" in dead[: dead.index("</section>")]
    assert "variants differ in routing mix" in dom and 'class="warn"' in dom
    # The hostile tier name stayed text.
    assert "<script" not in dom.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_browser_paints_a_nontrivial_screenshot(chromium, page_url, tmp_path):
    shot = tmp_path / "page.png"
    run_chromium(chromium, tmp_path, "shot", f"--screenshot={shot}", "--window-size=1400,3000", page_url)
    assert shot.is_file(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 3000)
    assert len(data) > 20_000, f"screenshot is only {len(data)} bytes: a blank or near-blank page"
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50, "the page painted almost no distinct colours"


def wide_canary_report() -> Report:
    """build_report's, with every optional canary column filled: two routers, errors and check details."""
    report = build_report()
    canaries = report.sections["canaries"]
    for row in canaries:
        row.update(last_error="HTTP 503 from the upstream gateway: service unavailable, retry after 30 s",
                   last_error_at="2026-11-22 04:20:00", last_check_detail="regex 'refund within \\d+ days' did not match")
    canaries += [{**row, "router_id": "router-with-a-long-name-eu-west-1"} for row in canaries]
    return report


def test_per_canary_table_fits_a_1280_px_window(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "report.html"
    path.write_text(render_html(wide_canary_report()), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(path.as_uri())
            page.wait_for_function("document.readyState === 'complete' && document.querySelector('#section-canaries table')")
            section = page.locator("#section-canaries")
            section.scroll_into_view_if_needed()
            section.screenshot(path=str(tmp_path / "canaries-1280.png"))
            layout = page.evaluate("""() => {
                const section = document.querySelector('#section-canaries');
                return [...section.querySelectorAll('table')].map(table => {
                    const wrap = table.parentElement, box = table.getBoundingClientRect();
                    return {
                        right: box.right, wrapRight: wrap.getBoundingClientRect().right, viewport: window.innerWidth,
                        overflow: wrap.scrollWidth - wrap.clientWidth,
                        columns: table.querySelectorAll('thead th').length,
                        clipped: [...table.querySelectorAll('th, td')].filter(c => c.scrollWidth > c.clientWidth)
                                                                   .map(c => c.textContent),
                    };
                });
            }""")
        finally:
            browser.close()
    print(f"canary section screenshot: {tmp_path / 'canaries-1280.png'}")
    assert len(layout) == 2, layout  # per side, per canary
    per_canary = layout[1]
    assert per_canary["columns"] >= 14, "router, last error and check detail are shown"
    for table in layout:
        assert table["clipped"] == [], table
        assert table["overflow"] <= 0, table
        assert table["right"] <= table["wrapRight"] + 0.5 and table["right"] <= table["viewport"], table
