"""The drift replay benchmark (bench/replay.py) in its quick mode: structure and the headline claims."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import replay  # noqa: E402
from bench.naive import NAIVE, naive_firing  # noqa: E402
from bench.scenarios import SCENARIO_BY_NAME, minute, rate_stream  # noqa: E402
from routerwatch.drift import detect_escalation_drift  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "RESULTS-drift.md"
    args = replay.parse(["--quick", "--jobs", "1", "--scenarios", "broken_verifier,mix_shift,quiet_category",
                         "--out", str(out)])
    rows, quiet, elapsed = replay.run(args)
    return rows, quiet, replay.render(rows, quiet, args, elapsed), args


def by(rows):
    return {(r.scenario, r.detector): r for r in rows}


def test_quick_mode_rows_cover_every_detector_of_the_chosen_scenarios(quick):
    rows, quiet, _, args = quick
    table = by(rows)
    for det in (*replay.RW_RATE, *NAIVE):
        r = table[("broken_verifier", det)]
        assert r.runs == args.seeds == 5 and len(r.delays) == 5
    for det in (*replay.RW_MIX, *NAIVE):
        assert ("mix_shift", det) in table
    assert {r.scenario for r in rows} == {"broken_verifier", "mix_shift"}
    assert set(quiet) == {"quiet_category"}
    q = quiet["quiet_category"]
    assert q.units == 4 and q.minutes == 4 * 1440
    assert set(q.pages) >= {"rw.drift", "rw.surge", "rw.any", *NAIVE}
    # Every category-level row gets its false-alarm rate from the quiet streams, for the 100-series fleet.
    fa = table[("broken_verifier", "rw.any")].fa
    assert fa is not None and fa.fleet == replay.FLEET_SERIES and fa.unit_months == pytest.approx(4 * 1440 / 43_830)


def test_broken_verifier_is_caught_by_routerwatch_within_five_minutes(quick):
    rows, *_ = quick
    r = by(rows)[("broken_verifier", "rw.any")]
    assert r.detected == r.runs
    assert max(r.delays) < 5
    assert r.pre_pages == 0


def test_pure_mix_shift_pages_no_category_level_or_risk_adjusted_detector_but_pooled_ones(quick):
    rows, *_ = quick
    table = by(rows)
    for det in ("rw.cat_any", "rw.tier"):
        r = table[("mix_shift", det)]
        assert r.detected == 0 and r.pre_pages == 0 and r.post_pages == 0
        assert all(d == math.inf for d in r.delays)
    # The pooled tier rate moves from 18 % to 30 %: a detector that watches it pages.
    assert table[("mix_shift", "rw.pooled_cusum")].detected == 5
    assert table[("mix_shift", "naive.z60")].detected == 5


def test_rendered_markdown_has_the_machine_the_table_and_the_targets(quick):
    _, _, text, _ = quick
    assert "nproc" in text and "Python" in text and "seeds:" in text
    assert "| scenario | detector | detected | median delay (min) | p90 delay (min) |" in text
    assert "| broken verifier caught in under 5 minutes (every run) |" in text
    assert "**met**" in text
    assert "/work/" not in text and str(ROOT) not in text


def test_main_writes_the_results_file(tmp_path, capsys):
    out = tmp_path / "r.md"
    assert replay.main(["--quick", "--jobs", "1", "--seeds", "2", "--scenarios", "broken_verifier",
                        "--out", str(out)]) == 0
    assert out.read_text().startswith("# Drift detection: replay benchmark")
    assert "broken_verifier | rw.any" in capsys.readouterr().out


def test_resuming_from_state_minute_by_minute_pages_exactly_when_the_replay_does():
    """The benchmark replays a stream in one or two calls; live, the detector is called every minute."""
    scn = SCENARIO_BY_NAME["drift_10pt"]
    rng = random.Random("resume")
    xs, ns = rate_stream(rng, scn.history + 120, n=100, before=0.30, after=0.40, change=scn.history + 30)
    b = replay.baseline_of(xs, ns, scn.history, {"router": "r"})
    rows = replay.to_counts(xs, ns, scn.history, len(xs))
    one = detect_escalation_drift(b, rows, now=minute(len(xs)), config=replay.DRIFT)
    alarms = {v.labels["direction"]: v.extra["alarms_in_call"] for v in one}
    assert alarms["up"], "a 10-point drift must page within 90 minutes"
    states: dict = {}
    seen: dict[str, list[str]] = {"up": [], "down": []}
    for i, row in enumerate(rows):
        verdicts = detect_escalation_drift(b, [row], now=minute(scn.history + i + 1), config=replay.DRIFT,
                                           states=states)
        states = {v.labels["direction"]: v.state for v in verdicts}
        for v in verdicts:
            seen[v.labels["direction"]] += v.extra["alarms_in_call"]
    assert seen == alarms


def test_naive_detectors_fire_on_a_big_jump_and_page_counting_rearms():
    xs, ns = rate_stream(random.Random(1), 1440 + 120, n=100, before=0.30, after=0.90, change=1500)
    flags = naive_firing(xs, ns, base_start=0, base_end=1440, start=1440)
    for name in NAIVE:
        assert any(flags[name][60 + 5:]), name
    assert replay.page_onsets([1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]) == [0, 11]
    assert replay.flag_outcome([0, 1, 0, 0, 0, 0, 0, 0, 1], 3).delay == 6


def test_the_schedulers_stateless_six_hour_lookback_pages_at_the_same_minute_as_the_continuous_fold():
    """The scheduler re-folds the last 6 h from zero every tick; the benchmark folds continuously."""
    scn = SCENARIO_BY_NAME["drift_10pt"]
    change = scn.history + 400
    xs, ns = rate_stream(random.Random("lookback"), change + 90, n=100, before=0.30, after=0.40, change=change)
    b = replay.baseline_of(xs, ns, scn.history, {"router": "r"})
    rows = replay.to_counts(xs, ns, scn.history, len(xs))
    one = detect_escalation_drift(b, rows, now=minute(len(xs)), config=replay.DRIFT)
    alarm = next(v for v in one if v.labels["direction"] == "up").extra["alarms_in_call"][0]
    first = None
    for t in range(change, len(xs)):
        window = replay.to_counts(xs, ns, max(scn.history, t + 1 - 360), t + 1)
        verdicts = detect_escalation_drift(b, window, now=minute(t + 1), config=replay.DRIFT)
        if any(v.firing for v in verdicts):
            first = t
            break
    assert first is not None and minute(first).isoformat() == alarm


def test_part_selects_the_iid_or_the_realistic_sections(tmp_path):
    assert replay.parse([]).part == "all"
    out = tmp_path / "iid.md"
    assert replay.main(["--quick", "--part", "iid", "--jobs", "1", "--seeds", "1", "--scenarios", "broken_verifier",
                        "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Drift detection: replay benchmark") and "## Realistic traffic" not in text
    # The realistic part alone keeps the iid sections already in the file (tests/unit/test_bench_traffic.py
    # runs it in its quick mode).
    assert replay.REALISTIC_MARKER.strip() == "## Realistic traffic"
