"""The on-call console's page load in a browser, against the static HTML report, on a large store.

    python -m bench.perf.console                  # 8M attempts over 30 days: writes bench/RESULTS-console.md
    python -m bench.perf.console --quick          # 200k attempts, 3 loads each: a smoke run
    python -m bench.perf.console --rows 2000000 --repeats 5 --out /some/file.md

The goal (issue 18): the console's page loads in under 1 s over 24 hours and under 2 s over 30 days
at 8 million attempts.

A fresh embedded chDB store is filled by the query benchmark's generator (``bench/perf/query.py``'s
``generate``: production-shaped traffic through the raw tables, the materialized views building the
rollups; in a child process, so the generator's memory is not the measuring process's), then one
``routerwatch serve`` opens it (a fresh local broker and fresh topics; nothing is consumed; the
detectors are off, as in the other benchmarks, so the page's ``now`` answers "not running" and no
evaluation competes with the page).

**The console.** Headless Chromium (Playwright, the system ``/usr/bin/chromium``) opens
``/#range=24h`` and ``/#range=30d``, each load in a fresh browser context (no cache, as a page's link
opens it). A page load is the time from the navigation's start to the end of the page's first
complete render: the page sets ``document.body.dataset.rendered`` when every section is drawn, and a
script installed before the page's own records ``performance.now()`` (whose origin is the
navigation's start) at that moment. A load whose page shows an error does not count: the run stops.
Every ``/console/api/`` call the page made is read from the browser's resource timing entries, so
the set of calls is whatever the page calls today; each distinct call is then also timed alone over
HTTP (one at a time, no other call competing), so a slow endpoint is named both ways.

**The baseline**, run side by side on the same store, serve and range: ``routerwatch report --format
html --since 24h`` (and ``30d``), the static view the console replaces for on-call, as a user runs it
while serve holds the store (the CLI sends the report's queries to serve's ``/query``), timed from
the process's start to its exit with the file written. Console loads and report renders alternate,
after one warm-up of each per range that is not counted (reported as the first, cold load). The
report's own function (``scoreboard.build`` and ``render_html``, without the CLI's start) is timed
too, in a process of its own, as a detail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.perf.common import OUT, REPO, Comparison, Context, Measure, Section, fmt, machine, percentile

FULL_ROWS = 8_000_000
QUICK_ROWS = 200_000
FULL_REPEATS = 7
CHROMIUM = "/usr/bin/chromium"
API = "/console/api/"
# (label, the page's range / the report's --since, goal in ms)
RANGES = (("24 h", "24h", 1000.0), ("30 d", "30d", 2000.0))
LOAD_TIMEOUT_S = 120.0

# Installed before the page's own script: the moment of the first complete render (performance.now()
# counts from the navigation's start) and whether the page then showed an error.
MARK_RENDER = """
(() => {
  const mark = () => {
    const body = document.body;
    if (!body || !body.dataset.rendered || window.__rwRenderedAt !== undefined) return;
    window.__rwRenderedAt = performance.now();
    const error = document.getElementById("error");
    window.__rwError = error && !error.hidden ? error.textContent : "";
  };
  new MutationObserver(mark).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-rendered"] });
})();
"""
READ_LOAD = """
() => ({
  renderedAt: window.__rwRenderedAt,
  error: window.__rwError,
  calls: performance.getEntriesByType("resource").filter((e) => e.name.includes("/console/api/")).map((e) => ({
    url: e.name, start: e.startTime, duration: e.duration, end: e.responseEnd, bytes: e.encodedBodySize,
  })),
})
"""


# ---------------------------------------------------------------------------------------------
# The store (in a child process: chDB opens one store per process, and keeps its memory).


def generate_store(path: Path, rows: int, log: Any = print) -> dict[str, Any]:
    """Migrate a fresh store at ``path``, fill it with ~``rows`` attempts (the query benchmark's
    generator) and return its facts. Runs in the calling process: call it in a child."""
    from bench.perf.query import RESOLVED_GRADES_MIGRATION, generate, settle
    from routerwatch.storage.client import Store
    from routerwatch.storage.migrations import default_sql_dir, migrate_up

    store = Store(f"chdb://{path}", "routerwatch").start()
    try:
        # As the query benchmark does: grades are resolved to their attempts by the migration that
        # resolves an existing store's grades, applied once the traffic is there.
        migrate_up(store, default_sql_dir() / "migrations", target=RESOLVED_GRADES_MIGRATION - 1)
        gen = generate(store, rows, log)
        migrate_up(store, default_sql_dir() / "migrations")
        waited = settle(store, 120)
        return {"attempts": gen.attempts, "decisions": gen.decisions, "feedback": gen.feedback,
                "canary_results": gen.canary_results, "seconds": gen.seconds, "settle_s": waited,
                "t0": gen.t0.isoformat(), "t1": gen.t1.isoformat()}
    finally:
        store.stop()


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------------------------
# The measurements.


@dataclass
class Load:
    """One page load: navigation start to first complete render (in the page), and its API calls."""

    ms: float
    wall_ms: float
    calls: list[dict[str, Any]]

    @property
    def first_call_ms(self) -> float:
        """When the page issued its first API call (the HTML and the script loaded and ran)."""
        return min(c["start"] for c in self.calls)

    @property
    def api_phase_ms(self) -> float:
        """From the first API call issued to the last answer received."""
        return max(c["end"] for c in self.calls) - self.first_call_ms

    @property
    def after_last_answer_ms(self) -> float:
        """Page time after the last API answer arrived (parsing, tables, SVG)."""
        return self.ms - max((c["end"] for c in self.calls), default=0.0)


@dataclass
class RangeResult:
    label: str
    since: str
    goal_ms: float
    loads: list[Load] = field(default_factory=list)
    cold: Load | None = None
    report_s: list[float] = field(default_factory=list)
    report_cold_s: float = 0.0
    report_bytes: int = 0
    function_s: list[float] = field(default_factory=list)
    alone: dict[str, list[float]] = field(default_factory=dict)  # endpoint path+query -> ms, one at a time


def endpoint_of(url: str) -> str:
    """``/console/api/escalation?since=24h`` of a full URL: the call, as the page made it."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def page_load(browser: Any, url: str) -> Load:
    """Open ``url`` in a fresh context and wait for the page's first complete render."""
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    try:
        page = context.new_page()
        page.add_init_script(MARK_RENDER)
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_S * 1000)
        page.wait_for_function("window.__rwRenderedAt !== undefined", timeout=LOAD_TIMEOUT_S * 1000)
        wall = (time.perf_counter() - t0) * 1000
        got = page.evaluate(READ_LOAD)
        if got["error"]:
            raise RuntimeError(f"the console showed an error on {url}: {got['error']}")
        if not got["calls"]:
            raise RuntimeError(f"the console made no {API} call on {url}")
        return Load(ms=float(got["renderedAt"]), wall_ms=wall, calls=got["calls"])
    finally:
        context.close()


def report_cli(env: dict[str, str], since: str, out: Path, cwd: Path) -> tuple[float, int]:
    """``routerwatch report --format html --since ...`` as a user runs it: seconds, bytes written."""
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "routerwatch.cli", "report", "--format", "html", "--since", since,
                           "--output", str(out)], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"routerwatch report --since {since} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, out.stat().st_size


def report_function(env: dict[str, str], since: str, repeats: int, cwd: Path) -> list[float]:
    """The report's function alone (build + render_html through serve's /query), in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "bench.perf.console", "--report-function", since,
                           "--repeats", str(repeats)], env={**env, "PYTHONPATH": str(REPO)}, cwd=cwd,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"report function --since {since} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report_function_main(since: str, repeats: int) -> int:
    from routerwatch.config import load_settings
    from routerwatch.report import scoreboard
    from routerwatch.report.html import render_html
    from routerwatch.storage.reader import Reader

    reader = Reader(load_settings())
    times = []
    try:
        for _ in range(repeats + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            start, end = scoreboard.parse_range(since, None)
            html = render_html(scoreboard.build(reader, start, end))
            times.append(time.perf_counter() - t0)
            assert html and reader.via == "serve", reader.via
    finally:
        reader.close()
    print(json.dumps(times[1:]))
    return 0


def call_alone(port: int, path: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=LOAD_TIMEOUT_S) as answer:
        body = answer.read()
    ms = (time.perf_counter() - t0) * 1000
    if answer.status != 200 or not body:
        raise RuntimeError(f"{path}: HTTP {answer.status}")
    return ms


def measure(port: int, env: dict[str, str], workdir: Path, repeats: int, log: Any,
            warmup: bool = True) -> tuple[list[RangeResult], dict[str, Any]]:
    """Console loads and report renders, alternating, per range (after a warm-up of each, not counted);
    then each API call alone."""
    from playwright.sync_api import sync_playwright

    results = []
    loads_seen: list[float] = []
    base = f"http://127.0.0.1:{port}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            facts = {"chromium": browser.version}
            for label, since, goal in RANGES:
                r = RangeResult(label, since, goal)
                url = base + f"#range={since}"
                report_out = workdir / f"report-{since}.html"
                loads_seen.append(os.getloadavg()[0])
                if warmup:
                    r.cold = page_load(browser, url)
                    r.report_cold_s, r.report_bytes = report_cli(env, since, report_out, workdir)
                    log(f"  {label}: cold page {r.cold.ms:.0f} ms, cold report {r.report_cold_s:.2f} s")
                for i in range(repeats):
                    # Alternate which goes first, so neither always follows the other's caches.
                    order = ("page", "report") if i % 2 == 0 else ("report", "page")
                    for what in order:
                        if what == "page":
                            r.loads.append(page_load(browser, url))
                        else:
                            seconds, r.report_bytes = report_cli(env, since, report_out, workdir)
                            r.report_s.append(seconds)
                    loads_seen.append(os.getloadavg()[0])
                    log(f"  {label} #{i + 1}: page {r.loads[-1].ms:.0f} ms, report {r.report_s[-1]:.2f} s")
                # Each call the page made (from its resource timing entries), alone, one at a time.
                for path in sorted({endpoint_of(c["url"]) for load in r.loads for c in load.calls}):
                    r.alone[path] = [call_alone(port, path) for _ in range(repeats)]
                r.function_s = report_function(env, since, repeats, workdir)
                loads_seen.append(os.getloadavg()[0])
                results.append(r)
        finally:
            browser.close()
    facts["load_max"] = max(loads_seen)
    return results, facts


# ---------------------------------------------------------------------------------------------
# The section.


def _per_endpoint(r: RangeResult) -> list[tuple[str, float, float, float, float]]:
    """(call, in-page median ms, in-page max ms, alone median ms, median KiB), slowest in the page first."""
    by: dict[str, list[tuple[float, int]]] = {}
    for load in r.loads:
        for c in load.calls:
            by.setdefault(endpoint_of(c["url"]), []).append((c["duration"], c["bytes"]))
    rows = []
    for path, seen in by.items():
        durations = [d for d, _ in seen]
        rows.append((path, statistics.median(durations), max(durations),
                     statistics.median(r.alone.get(path, [float("nan")])),
                     statistics.median(b for _, b in seen) / 1024))
    return sorted(rows, key=lambda x: -x[1])


def build_section(results: list[RangeResult], store: dict[str, Any], facts: dict[str, Any], repeats: int,
                  seconds: float) -> Section:
    section = Section(name="console", title="Console page load: the on-call page in a browser vs the HTML report")
    for r in results:
        page = Measure([x.ms for x in r.loads], "ms")
        report = Measure([s * 1000 for s in r.report_s], "ms")
        p95 = percentile(page.values, 95)
        rows = _per_endpoint(r)
        slowest = rows[0]
        section.comparisons.append(Comparison(
            figure=f"console page load, {r.label} (navigation to first complete render)", routerwatch=page,
            baseline_name=f"routerwatch report --format html --since {r.since}", baseline=report,
            higher_is_better=False, goal=f"p95 < {r.goal_ms / 1000:.0f} s", met=p95 < r.goal_ms,
            note=f"p95 {fmt(p95)} ms; slowest call in the page {slowest[0]} ({fmt(slowest[1])} ms median, "
                 f"{fmt(slowest[3])} ms alone)"))
    section.setup = (
        f"One embedded chDB store of {store['attempts']:,} attempts ({store['decisions']:,} decisions, "
        f"{store['feedback']:,} grades, {store['canary_results']:,} canary results) over 30 days, "
        f"{_gib(store['bytes'])} on disk, filled by the query benchmark's generator; one `routerwatch serve` on it "
        "(fresh local broker and topics, detectors off). Console: headless Chromium "
        f"{facts.get('chromium', '')} opens `/#range=24h` and `/#range=30d`, a fresh browser context per load; "
        "a load is timed in the page from the navigation's start to the end of the first complete render "
        "(`document.body.dataset.rendered`). Baseline: `routerwatch report --format html --since <range>` "
        "against the same serve (its queries go through serve's `/query`), process start to exit. "
        f"Per range, one cold warm-up of each (not counted), then {repeats} console loads and {repeats} report "
        "renders alternating. Ranges end now; the traffic ends when generation finished."
    )
    for r in results:
        page = [x.ms for x in r.loads]
        rest = statistics.median(x.after_last_answer_ms for x in r.loads)
        func = Measure([s * 1000 for s in r.function_s], "ms")
        section.details.append(
            f"{r.label}: page load median {fmt(statistics.median(page))} ms, p95 {fmt(percentile(page, 95))} ms "
            f"(goal {r.goal_ms / 1000:.0f} s: {'met' if percentile(page, 95) < r.goal_ms else '**missed**'}); "
            + (f"first (cold) load {fmt(r.cold.ms)} ms; " if r.cold else "")
            + "wall time seen by the driver "
            f"{fmt(statistics.median(x.wall_ms for x in r.loads))} ms; page time after the last API answer "
            f"{fmt(rest)} ms median; {len(r.loads[0].calls)} API calls per load, the first issued at "
            f"{fmt(statistics.median(x.first_call_ms for x in r.loads))} ms, the last answered "
            f"{fmt(statistics.median(x.api_phase_ms for x in r.loads))} ms later (median; the same calls one at a time "
            f"sum to {fmt(sum(statistics.median(v) for v in r.alone.values()))} ms: in the page they run concurrently "
            "on serve)")
        section.details.append(
            f"{r.label}: report median {fmt(statistics.median(r.report_s) * 1000)} ms ("
            + (f"cold {fmt(r.report_cold_s * 1000)} ms, " if r.cold else "")
            + f"{r.report_bytes / 1024:.0f} KiB of HTML); the report's function alone (build + render_html through "
            f"serve's /query, no process start) {func.text()}, console / function "
            f"{statistics.median(page) / func.median:.2f}x")
        for path, median, worst, alone, kib in _per_endpoint(r):
            section.details.append(
                f"{r.label} `{path}`: {fmt(median)} ms in the page (max {fmt(worst)}), {fmt(alone)} ms alone, "
                f"{kib:.0f} KiB")
    misses = [(r, _per_endpoint(r)[0]) for r in results
              if percentile([x.ms for x in r.loads], 95) >= r.goal_ms]
    section.details.append("over the goal: " + ("; ".join(
        f"{r.label} (p95 {fmt(percentile([x.ms for x in r.loads], 95))} ms against {fmt(r.goal_ms)} ms; slowest call "
        f"`{row[0]}`, {fmt(row[1])} ms in the page, {fmt(row[3])} ms alone)" for r, row in misses) if misses else "none"))
    section.seconds = seconds
    return section


def render(section: Section, facts: dict[str, str]) -> str:
    from bench.perf.run import _row

    lines = [
        "# Console page load",
        "",
        "Generated by `python -m bench.perf.console` (see `bench/perf/console.py`); do not edit by hand.",
        "The on-call console (`routerwatch serve`, `/`) loaded in headless Chromium against the static HTML",
        "report (`routerwatch report --format html`), side by side on the same store, serve and range:",
        "median and spread (min..max) over repeated runs, their ratio (console / report), the goal and",
        "whether the p95 page load meets it.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in facts.items()],
        f"| wall time | {section.seconds / 60:.1f} min |",
        "",
        "## Summary",
        "",
        "| figure | routerwatch | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|",
        *[_row(c) for c in section.comparisons],
        "",
        *[f"- {c.figure}: {c.note}" for c in section.comparisons if c.note],
        "",
        "## Setup",
        "",
        section.setup,
        "",
        "## Detail",
        "",
        *[f"- {d}" for d in section.details],
    ]
    return "\n".join(lines) + "\n"


def run(ctx: Context, rows: int | None = None, repeats: int | None = None, log: Any = None,
        warmup: bool = True) -> tuple[Section, dict[str, str]]:
    """Generate the store, start serve on it, measure; returns the section and the results' facts.
    ``warmup`` False skips the uncounted first load and render of each range (the smoke test's speed)."""
    from bench.perf.ingest import Serve, _free_port, serve_env

    started = time.perf_counter()
    target = rows or (QUICK_ROWS if ctx.quick else FULL_ROWS)
    repeats = repeats or (3 if ctx.quick else FULL_REPEATS)
    log = log or ((lambda m: None) if ctx.quick else (lambda m: print(m, flush=True)))
    load_start = os.getloadavg()[0]
    store_path = ctx.workdir / "console-store"
    facts_path = ctx.workdir / "store.json"
    log(f"generating ~{target:,} attempts over 30 days")
    done = subprocess.run([sys.executable, "-m", "bench.perf.console", "--generate", str(store_path), "--rows",
                           str(target), "--facts", str(facts_path)] + (["--quiet"] if ctx.quick else []),
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=7200)
    if done.returncode != 0 or not facts_path.exists():
        raise RuntimeError(f"store generation failed (exit {done.returncode})")
    store = json.loads(facts_path.read_text())
    store["bytes"] = _store_bytes(store_path)
    log(f"store: {store['attempts']:,} attempts, {_gib(store['bytes'])}, generated in {store['seconds']:.0f} s")

    tag = uuid.uuid4().hex[:8]
    run_dir = ctx.workdir / "serve"
    run_dir.mkdir(exist_ok=True)
    env = serve_env(ctx.kafka, f"bench-console-{tag}", store_path, tag, _free_port())
    serve = Serve(env, run_dir, "serve.log")
    serve.migrate()
    serve.start()
    try:
        serve.wait_ready()
        results, browser_facts = measure(serve.port, env, run_dir, repeats, log, warmup)
    finally:
        serve.stop()
    section = build_section(results, store, browser_facts, repeats, time.perf_counter() - started)
    base = machine()
    facts = {
        "date": base["date"],
        "cpu": base["cpu"],
        "cores (os.cpu_count)": str(os.cpu_count()),
        "memory": base["memory"],
        "os": base["os"],
        "python": base["python"],
        "chdb": base.get("chdb", "-"),
        "browser": f"Chromium {browser_facts.get('chromium', '')} (headless, Playwright {_version('playwright')})",
        "store": f"embedded chDB, {store['attempts']:,} attempts / {store['decisions']:,} decisions over 30 days "
                 f"(query benchmark's generator), {_gib(store['bytes'])} on disk; generated in {store['seconds']:.0f} s",
        "load average (1 min) at start / end / max while measuring":
            f"{load_start:.2f} / {os.getloadavg()[0]:.2f} / {browser_facts['load_max']:.2f} on {os.cpu_count()} cores",
    }
    return section, facts


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} attempts, 3 loads each: a smoke run")
    p.add_argument("--rows", type=int, help=f"attempts to generate (default {FULL_ROWS:,}; quick {QUICK_ROWS:,})")
    p.add_argument("--repeats", type=int, help=f"console loads and report renders per range (median, p95; default "
                                               f"{FULL_REPEATS}, quick 3)")
    p.add_argument("--kafka", help="an existing broker (default: start a fresh local one)")
    p.add_argument("--out", help="results file (default bench/RESULTS-console.md; bench/out/RESULTS-console.quick.md "
                                 "with --quick)")
    # Internal: the child processes.
    p.add_argument("--generate", help=argparse.SUPPRESS)
    p.add_argument("--facts", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report-function", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.generate:
        facts = generate_store(Path(args.generate), args.rows or FULL_ROWS,
                               (lambda m: None) if args.quiet else (lambda m: print(m, flush=True)))
        Path(args.facts).write_text(json.dumps(facts))
        return 0
    if args.report_function:
        return _report_function_main(args.report_function, args.repeats or FULL_REPEATS)

    from bench.perf.common import local_broker

    out = Path(args.out) if args.out else (OUT / "RESULTS-console.quick.md" if args.quick
                                           else REPO / "bench" / "RESULTS-console.md")
    stop = None
    with tempfile.TemporaryDirectory(prefix="routerwatch-bench-console-") as tmp:
        kafka = args.kafka
        try:
            if not kafka:
                kafka, stop = local_broker(Path(tmp))
                print(f"== fresh local Kafka broker at {kafka}", flush=True)
            ctx = Context(kafka=kafka, workdir=Path(tmp), quick=args.quick)
            section, facts = run(ctx, rows=args.rows, repeats=args.repeats)
        finally:
            if stop is not None:
                stop()
    path = section.save()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(section, facts))
    for c in section.comparisons:
        ratio = f"{c.ratio:.2f}x" if c.ratio is not None else "-"
        print(f"{c.figure}: {c.routerwatch.text()} vs {c.baseline.text() if c.baseline else '-'} ({ratio}) "
              f"{'ok' if c.met else 'MISS'}; {c.note}")
    for d in section.details:
        print(f"- {d}")
    print(f"saved {path.relative_to(REPO)}, wrote {out} ({section.seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
