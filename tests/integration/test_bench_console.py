"""The console page-load benchmark (bench/perf/console.py) end to end at a tiny size: its shape, not its figures.

A tiny generated store, a real serve on the test broker, the page loaded in headless Chromium over both
ranges and the HTML report rendered beside it: every load must have rendered without an error, the page's
API calls must be read from the browser (not a fixed list), each timed alone too, and the section must
carry both goals with the report as the named baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.perf import console  # noqa: E402
from bench.perf.common import Context  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def measured(kafka_bootstrap, tmp_path_factory):
    ctx = Context(kafka=kafka_bootstrap, workdir=tmp_path_factory.mktemp("bench-console"), quick=True)
    # One counted load and report per range, no warm-ups: the smallest run that has every part.
    section, facts = console.run(ctx, rows=10_000, repeats=1, warmup=False)
    return section, facts


def test_both_ranges_are_loaded_in_the_browser_against_the_report(measured):
    section, _ = measured
    assert section.name == "console" and section.setup
    assert [c.goal for c in section.comparisons] == ["p95 < 1 s", "p95 < 2 s"]
    for c, (label, since, _) in zip(section.comparisons, console.RANGES):
        assert label in c.figure
        assert c.baseline_name == f"routerwatch report --format html --since {since}"
        # One measured render and one measured report per range, both real durations.
        assert len(c.routerwatch.values) == 1 and c.routerwatch.values[0] > 0
        assert c.baseline is not None and len(c.baseline.values) == 1 and c.baseline.values[0] > 0
        assert c.ratio is not None and c.ratio > 0 and c.met in (True, False)


def test_every_api_call_the_page_made_is_timed_and_the_slowest_named(measured):
    section, _ = measured
    for label, since, _ in console.RANGES:
        calls = [d for d in section.details if d.startswith(f"{label} `{console.API}")]
        assert calls, section.details
        # Read from the page: the calls carry the page's range, and the page's current endpoints are there.
        assert any(f"since={since}" in d for d in calls)
        assert {"escalation", "now"} <= {d.split(console.API, 1)[1].split("?")[0].split("`")[0] for d in calls}
    for c in section.comparisons:
        assert "slowest call in the page /console/api/" in c.note
    assert section.details[-1].startswith("over the goal: ")


def test_the_results_file_names_the_machine_the_store_and_the_load(measured):
    section, facts = measured
    text = console.render(section, facts)
    assert facts["cores (os.cpu_count)"].isdigit()
    assert "attempts" in facts["store"] and "load average" in text
    assert text.count("| console page load, ") >= 2 and "routerwatch report --format html --since 30d" in text
