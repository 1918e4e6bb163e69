"""Smoke runs of the ingest and soak benchmarks: tiny sizes, real broker, real serve.

They check that each benchmark runs end to end and returns a Section of the expected shape
(figures present, measures with values and units, the issue's goals named), not the values:
figures come from the serial `make bench` run.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.perf import ingest, soak  # noqa: E402
from bench.perf.common import Context, Section  # noqa: E402

pytestmark = pytest.mark.integration


def _check_shape(section: Section, name: str) -> None:
    assert section.name == name
    assert section.title and section.setup and section.seconds > 0
    assert section.comparisons
    for comparison in section.comparisons:
        assert comparison.figure
        assert comparison.routerwatch.values and comparison.routerwatch.unit
        assert all(isinstance(v, float | int) for v in comparison.routerwatch.values)
        if comparison.baseline is not None:
            assert comparison.baseline.values and comparison.baseline.unit
    round_trip = Section.load(section.save())
    assert [c.figure for c in round_trip.comparisons] == [c.figure for c in section.comparisons]


def test_ingest_quick_run_has_the_section_shape(kafka_bootstrap, tmp_path):
    # The Kafka-engine baseline runs only where an interpreter with a working chDB Kafka engine
    # is already there (the full run installs one); the routerwatch side always runs.
    section = ingest.run(Context(kafka=kafka_bootstrap, workdir=tmp_path, quick=True), events=3_000, repeats=1)
    _check_shape(section, "ingest")
    figures = [c.figure for c in section.comparisons]
    assert any("per core" in f for f in figures) and any("per million" in f for f in figures)
    per_core = section.comparisons[0]
    assert per_core.routerwatch.median > 0 and "50,000" in per_core.goal
    assert any(line.startswith("routerwatch run 1:") for line in section.details)


def test_soak_quick_run_has_the_section_shape(kafka_bootstrap, tmp_path):
    section = soak.run(
        Context(kafka=kafka_bootstrap, workdir=tmp_path, quick=True),
        run_seconds=12,
        low_seconds=3,
        ramp=[],
        ramp_seconds=3,
        backlog=5_000,
        backlog_window=10,
    )
    _check_shape(section, "soak")
    figures = " ".join(c.figure for c in section.comparisons)
    assert "p99 at 10k" in figures and "RSS slope" in figures and "backlog" in figures
    p99 = section.comparisons[0].routerwatch.values[0]
    assert not math.isnan(p99) and p99 >= 0
