"""Tenant anomaly: the one abusive tenant among fifty, and nobody else."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from routerwatch.drift import Status, TenantConfig, TenantCounts, detect_tenant_anomalies
from routerwatch.drift.tenant import binom_logsf

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def fleet(seed: int) -> list[TenantCounts]:
    rng = random.Random(seed)
    out = []
    for i in range(50):
        n = rng.randint(300, 5000)
        rate = rng.uniform(0.15, 0.25)  # tenants differ legitimately
        if i == 17:
            rate = 0.55  # crafting requests the cheap tier rejects
        x = sum(rng.random() < rate for _ in range(n))
        out.append(TenantCounts(f"t{i:02d}", n, x, escalation_cost_usd=x * (0.02 if i != 17 else 0.05)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_finds_the_abusive_tenant_and_only_it(seed):
    verdicts = detect_tenant_anomalies(fleet(seed), now=NOW, labels={"router": "r"})
    assert len(verdicts) == 50
    firing = [v for v in verdicts if v.firing]
    assert [v.labels["tenant"] for v in firing] == ["t17"]
    v = firing[0]
    assert v.labels == {"router": "r", "tenant": "t17"}
    assert v.observed_value > 2 * v.baseline_value and v.statistic > v.threshold
    assert "escalation_rate" in v.extra["reasons"] and v.extra["tenants_tested"] == 50
    assert v.alertname == "RouterwatchTenantAnomaly"


def test_small_tenants_are_not_judged_and_spend_share_flags_costly_ones():
    tenants = [TenantCounts(f"t{i}", 1000, 200, escalation_cost_usd=10.0) for i in range(10)]
    tenants.append(TenantCounts("tiny", 20, 15))
    tenants.append(TenantCounts("whale", 1000, 200, escalation_cost_usd=200.0))  # same rate, 20x the spend
    verdicts = {v.labels["tenant"]: v for v in detect_tenant_anomalies(tenants, now=NOW, config=TenantConfig())}
    assert verdicts["tiny"].status is Status.INSUFFICIENT_VOLUME and not verdicts["tiny"].firing
    assert verdicts["whale"].firing and verdicts["whale"].extra["reasons"] == ["escalation_spend"]
    assert not any(v.firing for k, v in verdicts.items() if k.startswith("t") and k != "tiny")


def test_exact_binomial_tail():
    # Against direct summation.
    for x, n, p in [(0, 10, 0.3), (3, 10, 0.3), (9, 10, 0.3), (60, 100, 0.3), (25, 100, 0.3), (1, 1, 0.5)]:
        direct = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(x, n + 1))
        assert math.exp(binom_logsf(x, n, p)) == pytest.approx(direct, rel=1e-9)
    assert binom_logsf(11, 10, 0.3) == -math.inf
    assert binom_logsf(900, 1000, 0.2) < -1000  # deep tail without underflow
