"""Column builders: the decisions table's enrichment matches its reference definitions."""

from __future__ import annotations

from routerwatch.events import RoutingDecision
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.simulate import Profile, events
from routerwatch.storage.rows import decision_columns


def _failure_heavy() -> Profile:
    # Unserved requests (no accepted attempt), fallbacks and shadow attempts all occur in a small sample.
    base = Profile()
    tiers = [t.model_copy(update={"failure_rate": 0.5}) for t in base.tiers]
    return base.model_copy(update={"tiers": tiers, "shadow_share": 0.5})


def test_counterfactual_column_is_the_price_tables_definition_for_every_kind_of_request():
    prices = load_prices(default_prices_file())
    decisions = [RoutingDecision.model_validate(e) for e in events(_failure_heavy(), 600, seed=3)]
    served = [d for d in decisions if d.final.served]
    assert served and len(served) < len(decisions), "the sample must hold served and unserved requests"
    assert any(a.outcome.value == "shadow" for d in decisions for a in d.attempts)

    cols = decision_columns([(d, 0, i) for i, d in enumerate(decisions)], prices)

    # Exactly the same float, not merely close: the column is the stored figure the report sums.
    assert cols["counterfactual_cost_usd"] == [prices.counterfactual(d) for d in decisions]
    assert all(v > 0 for v in cols["counterfactual_cost_usd"])
