"""Turn validated events into column blocks for ClickHouse inserts.

Column-oriented on purpose: one Python list per column is what the insert
path wants, and timestamps go in as integer milliseconds (DateTime64(3))
instead of datetime objects built per row.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Sequence

from routerwatch.events.models import CanaryResult, QualityFeedback, RoutingDecision
from routerwatch.events.vocabulary import Outcome
from routerwatch.prices import PriceTable


class Located(NamedTuple):
    """An event with where it came from in Kafka (kept for lineage in the row)."""

    event: Any
    partition: int = -1
    offset: int = -1


def epoch_ms(value: Any) -> int:
    """A datetime as integer epoch milliseconds (a DateTime64(3) value)."""
    # Events carry whole milliseconds (models.UtcTime): rounding makes the float product exact.
    return round(value.timestamp() * 1000)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


_ACCEPTED, _ESCALATED, _FAILED, _SHADOW = Outcome.ACCEPTED, Outcome.ESCALATED, Outcome.FAILED, Outcome.SHADOW

DECISION_COLUMNS = (
    "event_id request_id occurred_at schema_version router_id router_version strategy policy_version "
    "environment category tenant source experiment_id experiment_variant shadow canary_id route_confidence "
    "route_rule route_features attempt_count escalation_count failure_count entry_tier entry_tier_rank served "
    "final_tier final_tier_rank final_model latency_ms cost_usd quality_score quality_passed prompt_hash "
    "prompt_length kafka_partition kafka_offset counterfactual_cost_usd price_version top_tier_rank unpriced_models"
).split()

ATTEMPT_COLUMNS = (
    "event_id request_id occurred_at attempt_index tier tier_rank model provider offset_ms latency_ms ttft_ms "
    "input_tokens output_tokens cost_usd outcome gate_kind gate_score gate_threshold gate_passed "
    "escalation_reason failure_mode verify_latency_ms verify_cost_usd cache_hit router_id environment category "
    "tenant experiment_id experiment_variant shadow canary_id"
).split()


def decision_columns(items: Sequence[Located], prices: PriceTable) -> dict[str, list[Any]]:
    """Columns of the ``decisions`` table for these RoutingDecisions, enriched from the price table."""
    cols: dict[str, list[Any]] = {name: [] for name in DECISION_COLUMNS}
    # One bound append per column, called once per event: no per-row tuple, no transpose.
    (
        event_id, request_id, occurred_at, schema_version, router_id, router_version, strategy, policy_version,
        environment, category, tenant, source, experiment_id, experiment_variant, shadow, canary_id,
        route_confidence, route_rule, route_features, attempt_count, escalation_count, failure_count, entry_tier,
        entry_tier_rank, served, final_tier, final_tier_rank, final_model, latency_ms, cost_usd, quality_score,
        quality_passed, prompt_hash, prompt_length, kafka_partition, kafka_offset, counterfactual_cost_usd,
        price_version, top_tier_rank, unpriced_models,
    ) = (cols[name].append for name in DECISION_COLUMNS)
    # The flagship-everywhere cost, as PriceTable.counterfactual defines it, from the prompt size and
    # answering attempt the loop below finds anyway: counterfactual() re-walked every event's
    # attempts (~3% of ingest's Python time at 10k events/s). The price lookup is cached per
    # (model, provider) in the table.
    counterfactual_of = prices.counterfactual_of
    resolve = prices.resolve
    version, top_rank = prices.version, prices.top_tier_rank
    for event, partition, offset in items:
        d: RoutingDecision = event
        router = d.router
        experiment = d.experiment
        route = d.route
        final = d.final
        quality = d.quality
        prompt = d.prompt
        entry = accepted = first_accepted = last = None
        escalations = failures = prompt_tokens = 0
        unpriced = None
        for a in d.attempts:
            if resolve(a.model, a.provider).input_usd_per_mtok is None:
                # One entry per attempt the price table cannot price (shadow ones too): never a silent zero.
                if unpriced is None:
                    unpriced = []
                unpriced.append(f"{a.provider}/{a.model}")  # prices.table.deployment_name
            outcome = a.outcome
            if outcome is _SHADOW:
                continue
            if entry is None:
                entry = a
            if not prompt_tokens:
                # The first non-zero count: a failed first call (a 429) reports 0 for the same prompt.
                prompt_tokens = a.input_tokens
            last = a
            if outcome is _ACCEPTED:
                accepted = a
                if first_accepted is None:
                    first_accepted = a
            elif outcome is _ESCALATED:
                escalations += 1
            elif outcome is _FAILED:
                failures += 1
        event_id(d.event_id)
        request_id(d.request_id)
        occurred_at(round(d.occurred_at.timestamp() * 1000))
        schema_version(d.schema_version)
        router_id(router.id)
        router_version(_str(router.version))
        strategy(router.strategy._value_)
        policy_version(_str(router.policy_version))
        environment(d.environment)
        category(d.category)
        tenant(_str(d.tenant))
        source(_str(d.source))
        experiment_id(experiment.id if experiment else "")
        experiment_variant(experiment.variant if experiment else "")
        shadow(d.shadow)
        canary_id(_str(d.canary_id))
        route_confidence(route.confidence if route else None)
        route_rule(_str(route.rule) if route else "")
        route_features(json.dumps(route.features, sort_keys=True) if route else "{}")
        attempt_count(len(d.attempts))
        escalation_count(escalations)
        failure_count(failures)
        entry_tier(entry.tier)  # type: ignore[union-attr]
        entry_tier_rank(entry.tier_rank)  # type: ignore[union-attr]
        served(final.served)
        final_tier(_str(final.tier))
        final_tier_rank(accepted.tier_rank if accepted else 0)
        final_model(_str(final.model))
        latency_ms(final.latency_ms)
        cost_usd(final.cost_usd)
        quality_score(quality.score if quality else None)
        quality_passed(quality.passed if quality else None)
        prompt_hash(prompt.hash if prompt else "")
        prompt_length(prompt.length if prompt else 0)
        kafka_partition(partition)
        kafka_offset(offset)
        answered = first_accepted or last
        counterfactual_cost_usd(counterfactual_of(prompt_tokens, answered))  # type: ignore[arg-type]
        price_version(version)
        top_tier_rank(top_rank)
        # Names hold no comma (the contract's Name pattern): a comma-separated list is unambiguous.
        unpriced_models(",".join(unpriced) if unpriced else "")
    return cols


def attempt_columns(items: Sequence[Located]) -> dict[str, list[Any]]:
    """Columns of the ``attempts`` table: one row per attempt of each decision."""
    cols: dict[str, list[Any]] = {name: [] for name in ATTEMPT_COLUMNS}
    (
        event_id, request_id, occurred_at, attempt_index, tier, tier_rank, model, provider, offset_ms, latency_ms,
        ttft_ms, input_tokens, output_tokens, cost_usd, outcome, gate_kind, gate_score, gate_threshold, gate_passed,
        escalation_reason, failure_mode, verify_latency_ms, verify_cost_usd, cache_hit, router_id, environment,
        category, tenant, experiment_id, experiment_variant, shadow, canary_id,
    ) = (cols[name].append for name in ATTEMPT_COLUMNS)
    for item in items:
        d: RoutingDecision = item[0]
        # Request context repeated per attempt: computed once per decision.
        eid, rid = d.event_id, d.request_id
        occurred = round(d.occurred_at.timestamp() * 1000)
        rtr, env, cat, ten = d.router.id, d.environment, d.category, _str(d.tenant)
        experiment = d.experiment
        exp_id, exp_variant = (experiment.id, experiment.variant) if experiment else ("", "")
        shd, can = d.shadow, _str(d.canary_id)
        for a in d.attempts:
            gate = a.gate
            reason = a.escalation_reason
            mode = a.failure_mode
            event_id(eid)
            request_id(rid)
            occurred_at(occurred)
            attempt_index(a.index)
            tier(a.tier)
            tier_rank(a.tier_rank)
            model(a.model)
            provider(a.provider)
            offset_ms(a.offset_ms)
            latency_ms(a.latency_ms)
            ttft_ms(a.ttft_ms)
            input_tokens(a.input_tokens)
            output_tokens(a.output_tokens)
            cost_usd(a.cost_usd)
            outcome(a.outcome._value_)
            if gate is None:
                gate_kind("")
                gate_score(None)
                gate_threshold(None)
                gate_passed(None)
            else:
                gate_kind(gate.kind._value_)
                gate_score(gate.score)
                gate_threshold(gate.threshold)
                gate_passed(gate.passed)
            escalation_reason(reason._value_ if reason else "")
            failure_mode(mode._value_ if mode else "")
            verify_latency_ms(a.verify_latency_ms)
            verify_cost_usd(a.verify_cost_usd)
            cache_hit(a.cache_hit)
            router_id(rtr)
            environment(env)
            category(cat)
            tenant(ten)
            experiment_id(exp_id)
            experiment_variant(exp_variant)
            shadow(shd)
            canary_id(can)
    return cols


def feedback_columns(items: Sequence[Located]) -> dict[str, list[Any]]:
    """Columns of the ``feedback`` table."""
    rows = []
    for item in items:
        f: QualityFeedback = item.event
        rows.append(
            (
                f.event_id,
                f.request_id,
                epoch_ms(f.occurred_at),
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
                epoch_ms(c.occurred_at),
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
