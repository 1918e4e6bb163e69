"""Turn validated events into column blocks for ClickHouse inserts.

Column-oriented on purpose: one Python list per column is what the insert
path wants, and timestamps go in as integer milliseconds (DateTime64(3))
instead of datetime objects built per row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from routerwatch.events.models import CanaryResult, QualityFeedback, RoutingDecision
from routerwatch.events.vocabulary import Outcome
from routerwatch.prices import PriceTable


@dataclass(frozen=True)
class Located:
    """An event with where it came from in Kafka (kept for lineage in the row)."""

    event: Any
    partition: int = -1
    offset: int = -1


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


DECISION_COLUMNS = (
    "event_id request_id occurred_at schema_version router_id router_version strategy policy_version "
    "environment category tenant source experiment_id experiment_variant shadow canary_id route_confidence "
    "route_rule route_features attempt_count escalation_count failure_count entry_tier entry_tier_rank served "
    "final_tier final_tier_rank final_model latency_ms cost_usd quality_score quality_passed prompt_hash "
    "prompt_length kafka_partition kafka_offset counterfactual_cost_usd price_version top_tier_rank"
).split()

ATTEMPT_COLUMNS = (
    "event_id request_id occurred_at attempt_index tier tier_rank model provider offset_ms latency_ms ttft_ms "
    "input_tokens output_tokens cost_usd outcome gate_kind gate_score gate_threshold gate_passed "
    "escalation_reason failure_mode verify_latency_ms verify_cost_usd cache_hit router_id environment category "
    "tenant experiment_id experiment_variant shadow canary_id"
).split()


def decision_columns(items: Sequence[Located], prices: PriceTable) -> dict[str, list[Any]]:
    """Columns of the ``decisions`` table for these RoutingDecisions, enriched from the price table."""
    rows = []
    for item in items:
        d: RoutingDecision = item.event
        entry = d.entry_attempt
        accepted = next((a for a in d.attempts if a.outcome is Outcome.ACCEPTED), None)
        values = (
            d.event_id,
            d.request_id,
            _ms(d.occurred_at),
            d.schema_version,
            d.router.id,
            _str(d.router.version),
            d.router.strategy.value,
            _str(d.router.policy_version),
            d.environment,
            d.category,
            _str(d.tenant),
            _str(d.source),
            d.experiment.id if d.experiment else "",
            d.experiment.variant if d.experiment else "",
            d.shadow,
            _str(d.canary_id),
            d.route.confidence if d.route else None,
            _str(d.route.rule) if d.route else "",
            json.dumps(d.route.features, sort_keys=True) if d.route else "{}",
            len(d.attempts),
            sum(1 for a in d.attempts if a.outcome is Outcome.ESCALATED),
            sum(1 for a in d.attempts if a.outcome is Outcome.FAILED),
            entry.tier,
            entry.tier_rank,
            d.final.served,
            _str(d.final.tier),
            accepted.tier_rank if accepted else 0,
            _str(d.final.model),
            d.final.latency_ms,
            d.final.cost_usd,
            d.quality.score if d.quality else None,
            d.quality.passed if d.quality else None,
            d.prompt.hash if d.prompt else "",
            d.prompt.length if d.prompt else 0,
            item.partition,
            item.offset,
            prices.counterfactual(d),
            prices.version,
            prices.top_tier_rank,
        )
        rows.append(values)
    return _transpose(DECISION_COLUMNS, rows)


def attempt_columns(items: Sequence[Located]) -> dict[str, list[Any]]:
    """Columns of the ``attempts`` table: one row per attempt of each decision."""
    rows = []
    for item in items:
        d: RoutingDecision = item.event
        context = (
            d.router.id,
            d.environment,
            d.category,
            _str(d.tenant),
            d.experiment.id if d.experiment else "",
            d.experiment.variant if d.experiment else "",
            d.shadow,
            _str(d.canary_id),
        )
        occurred = _ms(d.occurred_at)
        for a in d.attempts:
            gate = a.gate
            values = (
                d.event_id,
                d.request_id,
                occurred,
                a.index,
                a.tier,
                a.tier_rank,
                a.model,
                a.provider,
                a.offset_ms,
                a.latency_ms,
                a.ttft_ms,
                a.input_tokens,
                a.output_tokens,
                a.cost_usd,
                a.outcome.value,
                gate.kind.value if gate else "",
                gate.score if gate else None,
                gate.threshold if gate else None,
                gate.passed if gate else None,
                a.escalation_reason.value if a.escalation_reason else "",
                a.failure_mode.value if a.failure_mode else "",
                a.verify_latency_ms,
                a.verify_cost_usd,
                a.cache_hit,
                *context,
            )
            rows.append(values)
    return _transpose(ATTEMPT_COLUMNS, rows)


def feedback_columns(items: Sequence[Located]) -> dict[str, list[Any]]:
    """Columns of the ``feedback`` table."""
    rows = []
    for item in items:
        f: QualityFeedback = item.event
        rows.append(
            (
                f.event_id,
                f.request_id,
                _ms(f.occurred_at),
                _str(f.router_id),
                f.target.value,
                f.attempt_index,
                _str(f.tier),
                f.score,
                f.passed,
                f.source.value,
                _str(f.grader),
            )
        )
    names = "event_id request_id occurred_at router_id target attempt_index tier score passed source grader"
    return _transpose(names.split(), rows)


def canary_columns(items: Sequence[Located]) -> dict[str, list[Any]]:
    """Columns of the ``canary_results`` table."""
    rows = []
    for item in items:
        c: CanaryResult = item.event
        rows.append(
            (
                c.event_id,
                c.canary_id,
                c.run_id,
                _ms(c.occurred_at),
                c.router_id,
                _str(c.category),
                _str(c.side),
                c.expected_tier,
                _str(c.observed_tier),
                _str(c.tier_source),
                c.check_kind.value,
                c.answer_passed,
                _str(c.check_detail),
                c.latency_ms,
                _str(c.error),
                _str(c.request_id),
            )
        )
    names = (
        "event_id canary_id run_id occurred_at router_id category side expected_tier observed_tier tier_source "
        "check_kind answer_passed check_detail latency_ms error request_id"
    )
    return _transpose(names.split(), rows)


def _transpose(names: list[str], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        for name, value in zip(names, row):
            columns[name].append(value)
    return columns
