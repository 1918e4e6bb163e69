"""Smoke run of the dead-letter benchmark (bench/perf/dlq.py): tiny sizes, real broker, real serve.

It checks that the benchmark runs end to end and returns a Section of the expected shape (both
paths measured, the goal named, every invalid message dead-lettered with its reason and on the DLQ
topic), not the values: figures come from the serial `make bench` run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.perf import dlq  # noqa: E402
from bench.perf.common import Context, Section  # noqa: E402

pytestmark = pytest.mark.integration


def test_invalid_messages_mix_every_kind():
    messages, reasons = dlq.invalid_messages(300)
    assert len(messages) == 300 and sum(reasons.values()) == 300
    assert set(reasons) == {"undecodable", "invalid_json", "schema"}
    tombstones = [key for key, value in messages if value is None]
    assert len(tombstones) == 3 and all(tombstones)  # keyed: a null key and value cannot be dead-lettered
    assert all(key is None for key, value in messages if value is not None)


def test_dlq_quick_run_has_the_section_shape(kafka_bootstrap, tmp_path):
    section = dlq.run(Context(kafka=kafka_bootstrap, workdir=tmp_path, quick=True), messages=2_000, repeats=1)
    assert section.name == "dlq"
    assert section.title and section.setup and section.seconds > 0
    figures = [c.figure for c in section.comparisons]
    assert len(figures) == len(set(figures)) == 3
    for comparison in section.comparisons:
        assert comparison.routerwatch.values and comparison.routerwatch.unit
        assert comparison.baseline is not None and comparison.baseline.values
        assert all(v > 0 for v in comparison.routerwatch.values + comparison.baseline.values)
    throughput = section.comparisons[0]
    assert throughput.higher_is_better and throughput.ratio is not None and throughput.ratio > 0
    assert "1.0x the valid path" in throughput.goal and isinstance(throughput.met, bool)
    assert throughput.routerwatch.unit == throughput.baseline.unit == "messages/s"
    assert any(line.startswith("valid run 1:") for line in section.details)
    dead = [line for line in section.details if line.startswith("dead-letter run 1:")]
    assert dead and "DLQ topic 2,000 messages" in dead[0]
    round_trip = Section.load(section.save())
    assert [c.figure for c in round_trip.comparisons] == figures
