"""Realistic traffic for the drift replay (bench/traffic.py) and its runner (bench/realistic.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import realistic, replay  # noqa: E402
from bench.traffic import (  # noqa: E402
    FLEET,
    FLEET_SERIES,
    FLEET_TIERS,
    MINUTES_PER_WEEK,
    TRAFFIC_BY_NAME,
    Change,
    TierSpec,
    Traffic,
    hour_of_week_profile,
    hourly,
    logit,
    mix_profile,
    seed_rng,
    tier_stream,
    wobble_moments,
)


def test_hour_of_week_profile_is_nine_to_one_day_night_with_quieter_weekends():
    prof = hour_of_week_profile()
    assert prof.shape == (168,) and prof.mean() == pytest.approx(1.0)
    for day in range(5):  # Monday..Friday
        d = prof[24 * day: 24 * (day + 1)]
        assert d.max() / d.min() == pytest.approx(9.0, rel=1e-9)
        assert 2 <= int(np.argmin(d)) <= 3 and 14 <= int(np.argmax(d)) <= 15
    assert prof[120:].max() < 0.6 * prof[:120].max()
    assert hour_of_week_profile(day_night=4.0)[:24].max() / hour_of_week_profile(day_night=4.0)[:24].min() == \
        pytest.approx(4.0)


def test_mix_profile_shares_sum_to_one_and_follow_the_clock():
    spec = FLEET[0]
    mix = mix_profile(spec.shares, spec.amplitudes, spec.phases)
    assert mix.shape == (len(spec.categories), 24)
    assert np.allclose(mix.sum(axis=0), 1.0)
    assert (mix.max(axis=1) / mix.min(axis=1) > 1.2).all()  # every category's share swings over the day


def test_the_fleet_is_three_routers_five_tiers_66_series():
    assert FLEET_TIERS == 15 and FLEET_SERIES == 66
    assert {t.router for t in FLEET} == {"r1", "r2", "r3"}
    assert len({t.key for t in FLEET}) == 15
    for t in FLEET:
        assert t.rates[0] == 0.30 and t.shares.sum() == pytest.approx(1.0)
    assert realistic.SIDES == 2 * 66 + 3 * 15


def _big_tier(rate: float = 0.30) -> TierSpec:
    return TierSpec("r", "t", 1e6, ("a", "b"), np.array([rate, 0.1]), np.array([0.5, 0.5]), np.zeros(2),
                    np.zeros(2))


@pytest.mark.parametrize("sd", [0.05, 0.10, 0.20])
def test_hour_level_random_effect_has_the_stated_sd_on_the_logit_scale(sd):
    # A million trials a minute: binomial noise on an hourly logit is ~2e-4, the random effect dominates.
    spec = _big_tier()
    traffic = Traffic("t", "t", diurnal=False, mix=False, wobble_sd=sd)
    xs, ns = tier_stream(spec, traffic, seed_rng("sd", sd), 2 * MINUTES_PER_WEEK)
    X, N = hourly(xs), hourly(ns)
    u = logit(X / N) - logit(spec.rates)[:, None]
    assert u.shape == (2, 336)
    assert np.std(u) == pytest.approx(sd, rel=0.08)
    assert abs(np.mean(u)) < 4 * sd / math.sqrt(u.size)
    # Constant within the hour: minute rates inside one hour agree far better than across hours.
    minute_logits = logit(xs[0, :120] / ns[0, :120])
    assert np.std(minute_logits[:60]) < 0.2 * sd + 0.01


def test_iid_traffic_has_no_extra_binomial_variance():
    spec = _big_tier()
    xs, ns = tier_stream(spec, TRAFFIC_BY_NAME["iid"], seed_rng("iid"), MINUTES_PER_WEEK)
    u = logit(hourly(xs) / hourly(ns)) - logit(spec.rates)[:, None]
    assert np.std(u) < 0.002


def test_streams_are_deterministic_by_seed():
    spec, traffic = FLEET[3], TRAFFIC_BY_NAME["wobble15_bursts"]
    a = tier_stream(spec, traffic, seed_rng("x", 1), 3000)
    b = tier_stream(spec, traffic, seed_rng("x", 1), 3000)
    c = tier_stream(spec, traffic, seed_rng("x", 2), 3000)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert (a[0] <= a[1]).all() and a[0].shape == (len(spec.categories), 3000)


def test_volume_follows_the_clock_and_bursts_add_single_category_batches():
    spec = FLEET[0]
    xs, ns = tier_stream(spec, TRAFFIC_BY_NAME["diurnal"], seed_rng("v"), MINUTES_PER_WEEK)
    per_hour = hourly(ns.sum(axis=0))
    assert per_hour.mean() / 60 == pytest.approx(spec.volume, rel=0.02)
    assert per_hour[14] / per_hour[2] > 7  # Monday 14:00 vs 02:00
    _, nb = tier_stream(spec, TRAFFIC_BY_NAME["bursts"], seed_rng("v"), MINUTES_PER_WEEK)
    extra = nb.sum() - ns.sum()
    assert extra > 0.005 * ns.sum()


def test_changes_apply_from_their_minute():
    spec = _big_tier()
    traffic = Traffic("t", "t", diurnal=False, mix=False)
    xs, ns = tier_stream(spec, traffic, seed_rng("c"), 240, change=Change(120, add={0: 0.10}))
    assert xs[0, :120].sum() / ns[0, :120].sum() == pytest.approx(0.30, abs=1e-3)
    assert xs[0, 120:].sum() / ns[0, 120:].sum() == pytest.approx(0.40, abs=1e-3)
    assert xs[1, 120:].sum() / ns[1, 120:].sum() == pytest.approx(0.10, abs=1e-3)
    xs, ns = tier_stream(spec, traffic, seed_rng("c"), 240, change=Change(120, shares=np.array([0.2, 0.8])))
    assert ns[0, 120:].sum() / ns[:, 120:].sum() == pytest.approx(0.2, abs=1e-3)


def test_wobble_moments_and_the_oracle_threshold():
    m, v = wobble_moments(0.30, 0.0)
    assert (m, v) == (0.30, 0.0)
    m, v = wobble_moments(0.30, 0.10)
    assert m == pytest.approx(0.30, abs=1e-3) and math.sqrt(v) == pytest.approx(0.30 * 0.70 * 0.10, rel=0.02)
    assert realistic.siegmund_arl0(realistic.ORACLE_K, realistic.ORACLE_H) == pytest.approx(
        realistic.ORACLE_ARL0_HOURS, rel=1e-6)


def test_exact_poisson_upper_bounds():
    assert realistic.poisson_upper(0) == pytest.approx(-math.log(0.05), rel=1e-9)
    assert realistic.poisson_upper(1) == pytest.approx(4.7439, abs=1e-3)
    assert realistic.poisson_upper(10) == pytest.approx(17.0, abs=0.05)
    # The large-count form agrees with the exact one where they meet.
    assert realistic.poisson_upper(399) == pytest.approx(realistic.poisson_upper(400) - 1, rel=2e-3)


def test_oracle_is_quiet_in_control_and_sees_a_shift():
    spec = FLEET[0]
    traffic = TRAFFIC_BY_NAME["wobble10"]
    xs, ns = tier_stream(spec, traffic, seed_rng("oracle"), 2 * MINUTES_PER_WEEK)
    assert realistic.oracle_alarms(xs[0], ns[0], 0.30, 0.10, 0, xs.shape[1]) == []
    xs, ns = tier_stream(spec, traffic, seed_rng("oracle"), 2 * MINUTES_PER_WEEK,
                         change=Change(MINUTES_PER_WEEK, add={0: 0.10}))
    alarms = realistic.oracle_alarms(xs[0], ns[0], 0.30, 0.10, 0, xs.shape[1])
    assert alarms and MINUTES_PER_WEEK <= alarms[0] < MINUTES_PER_WEEK + 6 * 60


def test_quick_realistic_mode_writes_its_sections_after_the_kept_iid_sections(tmp_path, capsys):
    out = tmp_path / "r.md"
    out.write_text("# Drift detection: replay benchmark\n\niid part\n\n## Realistic traffic (issue 15)\n\nold\n")
    assert replay.main(["--quick", "--part", "realistic", "--jobs", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Drift detection: replay benchmark\n\niid part\n")
    assert text.count("## Realistic traffic") == 1 and "\nold\n" not in text
    assert "### False pages per month, fleet-wide (budget 1)" in text
    for t in TRAFFIC_BY_NAME:
        assert f"| {t}: " in text
    for s in realistic.R_SCENARIOS:
        assert f"| wobble10 | {s.name} | rw.any |" in text
        assert f"| wobble10 | {s.name} | oracle |" in text
    assert "/work/" not in text and str(ROOT) not in text
    assert "realistic runtime" in capsys.readouterr().out


def test_quick_realistic_results_structure(tmp_path):
    size = realistic.Size(1, 0.25, (realistic.TARGET_TIER,), 1, ("diurnal",))
    res = realistic.run(quick=True, jobs=1, size=size)
    q = res.quiet["wobble20"]
    assert q.tier_minutes == 360 and set(q.pages) == set(realistic.DETECTORS)
    assert q.pages["rw.any"] == q.pages["rw.drift"] + q.pages["rw.tier"] + q.pages["rw.surge"]
    rate, upper = q.rate("oracle")
    assert upper > rate >= 0
    # A broken verifier (every category to 0.60) pages routerwatch within 5 minutes, night or peak.
    for name in ("broken_verifier_night", "broken_verifier_peak"):
        assert max(res.delays[("diurnal", name, "rw.any")]) < 5
    # Issue 15's targets are judged per traffic type, and the results survive a JSON round trip.
    judged = realistic.targets(res)
    assert {t for t, *_ in judged} == {t.name for t in realistic.TRAFFIC}
    assert any(text.startswith("a pure mix shift never pages") for _, text, _, _ in judged)
    path = tmp_path / "r.json"
    realistic.save(res, str(path))
    assert realistic.render(realistic.load(str(path))) == realistic.render(res)
