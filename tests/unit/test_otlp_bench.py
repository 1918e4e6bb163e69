"""bench/otlp.py at a small size: both paths run and record every request as one decision."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import otlp  # noqa: E402


def test_the_otlp_benchmark_runs_and_compares_both_paths():
    result = otlp.measure(120, repeats=1)
    assert result["requests"] == 120
    for path in ("protobuf", "json", "sdk"):
        assert result["paths"][path]["decisions"] == 120
        assert result["paths"][path]["spans_per_s"] > 0
    assert result["paths"]["protobuf"]["spans"] == result["spans"]
    assert "spans/s per core" in otlp.render(result)
