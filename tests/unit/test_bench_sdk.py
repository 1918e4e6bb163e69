"""The SDK benchmark (bench/perf/sdk.py) in its quick mode: a well-formed section with positive figures.

Only the shape is checked, never the values: those depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.perf import sdk  # noqa: E402
from bench.perf.common import Context, Section  # noqa: E402


def test_quick_mode_gives_a_well_formed_section(kafka_bootstrap, tmp_path):
    section = sdk.run(Context(kafka=kafka_bootstrap, workdir=tmp_path, quick=True))

    assert isinstance(section, Section) and section.name == "sdk" and section.title
    assert section.setup and section.details and section.seconds > 0
    figures = [c.figure for c in section.comparisons]
    assert len(figures) == len(set(figures)) == 7
    for c in section.comparisons:
        assert c.goal and isinstance(c.met, bool) and c.baseline_name
        assert c.routerwatch.values and c.routerwatch.unit
        for value in c.routerwatch.values:
            assert math.isfinite(value)
        if c.baseline is not None:
            assert c.baseline.values and all(v > 0 for v in c.baseline.values)
            assert c.ratio is not None and c.ratio > 0
    timed = [c for c in section.comparisons if "memory" not in c.figure]
    assert all(v > 0 for c in timed for v in c.routerwatch.values)
    by_figure = {c.figure: c for c in section.comparisons}
    assert by_figure["throughput to Kafka, all acknowledged"].higher_is_better
    assert not by_figure["record one decision (3 attempts): wall p99"].higher_is_better

    # It round-trips through the JSON file the suite renders the results from.
    path = tmp_path / "sdk.json"
    path.write_text(json.dumps(section.to_json()))
    assert Section.load(path) == section
