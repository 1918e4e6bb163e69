"""The text report (issue 17): every JSON section, at most 120 columns, rates as percent.

The reports here are built from rows as the views return them (no store): a wide one with two
routers, many tiers and categories and long names, and the HTML tests' sample report.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from routerwatch.report.scoreboard import (
    ELLIPSIS, TEXT_SECTIONS, TEXT_TITLES, UNPRICED, Report, text_cell, _fit_table, _width, render_json, render_text,
)
from test_report_html import sample_report

SINCE = datetime(2026, 11, 21, 5, 0, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 22, 5, 0, tzinfo=timezone.utc)
META = {"since", "until", "by", "routers", "pools_routers"}
ROUTERS = ["eu-west-production-cascade-router-with-a-very-long-identifier", "us-east-2-canary-deployment-router"]
TIERS = [f"tier-{i:02d}-" + "x" * (5 * i) for i in range(12)]  # up to 62 characters
CATEGORIES = [f"category-{i}-" + "\u6f22\u5b57" * (i % 4) for i in range(30)]  # wide (two-column) characters too
LONG_TENANT = "tenant-" + "y" * 150


def wide_report(by: str = "category") -> Report:
    """Two routers, 12 tiers, 30 categories, names far wider than a column, every section."""
    s: dict[str, list[dict]] = {}
    s["tiers"] = [
        {"segment": c, "tier": t, "tier_rank": i, "attempts": 123456, "accepted": 100000, "escalated": 20000, "failed": 3456,
         "shadow": 0, "escalation_rate": 0.16667, "failure_rate": 0.028, "terminal_share": 0.81, "passthrough_share": 0.16,
         "terminal_latency_ms": [452.4, 7891.2, 19887.7], "passthrough_latency_ms": [None, None, None],
         "terminal_ttft_ms": [None, None, None], "verify_latency_ms": [0.0, 0.0, 0.0],
         "model_cost_usd": 12345.678, "verify_cost_usd": 0.000123, "shadow_cost_usd": 0.0}
        for c in CATEGORIES[:5] for i, t in enumerate(TIERS)
    ]
    s["request_latency"] = [{"segment": c, "path_group": p, "requests": 1000, "latency_ms": [480.0, 1500.0, 2400.0]}
                            for c in CATEGORIES for p in ("kept", "escalated", "all")]
    s["routing_mix"] = [{"segment": c, "final_tier": t, "final_tier_rank": i, "requests": 10, "share": 1 / 12, "kept": 5,
                         "escalated": 5, "cost_usd": 0.5, "cost_per_request_usd": 0.05}
                        for c in CATEGORIES[:3] for i, t in enumerate(TIERS)]
    s["cost"] = [{"segment": c, "requests": 5000, "actual_cost_usd": 9.77, "counterfactual_cost_usd": 56.43,
                  "savings_share": 0.8269, "cost_per_request_usd": 0.00195, "routable_share": 0.92} for c in CATEGORIES]
    s["escalation_reasons"] = [{"router_id": r, "tier": t, "category": c, "escalation_reason": "reason-" + "z" * 40,
                                "escalations": 7, "share_of_tier_escalations": 0.5}
                               for r in ROUTERS for t in TIERS[:3] for c in CATEGORIES[:3]]
    s["failure_modes"] = [{"router_id": r, "tier": t, "failure_mode": "provider-error-" + "q" * 50, "failures": 3,
                           "rate": 0.00042} for r in ROUTERS for t in TIERS]
    s["quality"] = [{"segment": c, "tier": t, "target": "served", "graded": 10, "pass_rate": 0.9, "mean_score": 0.8}
                    for c in CATEGORIES[:2] for t in TIERS]
    s["gate_calibration"] = [{"tier": t, "gate_kind": "confidence-with-a-long-name", "score_bucket": 0.7, "graded": 347,
                              "accuracy": 0.755, "false_accepts": 85, "false_escalates": 0, "gate_passed_n": 347,
                              "gate_rejected_n": 0} for t in TIERS]
    s["experiment_slices"] = [{"router_id": r, "experiment_id": "experiment-" + "e" * 60, "experiment_variant": "variant-" + "v" * 30,
                               "slice": "entry_tier", "requests": 1924, "share": 0.76, "latency_ms": [483.5, 1455.6, 2341.3],
                               "cost_per_request_usd": 0.00052} for r in ROUTERS]
    s["experiment_mix"] = [{"router_id": r, "experiment_id": "experiment-" + "e" * 60, "experiment_variant": v,
                            "final_tier": t, "requests": 10} for r in ROUTERS for v in ("control", "treatment") for t in TIERS]
    s["escalation_series"] = [{"minute": f"2026-11-22T04:{m:02d}:00", "router_id": r, "tier": t, "category": c, "escalated": 1,
                               "accepted": 3, "escalation_rate": 0.25}
                              for m in range(3) for r in ROUTERS for t in TIERS for c in CATEGORIES[:2]]
    s["tenants"] = [{"router_id": r, "tenant": LONG_TENANT + str(i), "requests": 10, "escalated_requests": 1,
                     "escalation_rate": 0.1, "cost_usd": 1.0, "share_of_spend": 0.01} for r in ROUTERS for i in range(30)]
    s["dead_letters"] = [{"topic": "routerwatch.decisions.v1", "reason": "schema-" + "d" * 80, "messages": 12,
                          "last_received_at": "2026-11-22 04:30:00"}]
    s["canaries"] = [{"router_id": r, "side": "cheap", "canary_id": "canary-" + "c" * 70, "category": "billing",
                      "expected_tier": TIERS[-1], "probes": 12, "answered": 10, "no_answer": 2, "passed": 9, "pass_rate": 0.9,
                      "tier_flips": 1, "tier_flip_rate": 0.1, "observed_tiers": {TIERS[-1]: 9}, "most_common_observed_tier": TIERS[-1],
                      "latency_p50_ms": 420.0, "latency_p95_ms": 900.0, "last_error": "upstream said: " + "w" * 200}
                     for r in ROUTERS]
    s["canary_series"] = [{"bucket": "2026-11-22T04:00:00", "router_id": r, "side": "cheap", "probes": 8, "answered": 8,
                           "no_answer": 0, "passed": 6, "pass_rate": 0.75, "tier_flips": 0, "tier_flip_rate": 0.0} for r in ROUTERS]
    s["experiment_mix_test"] = [{"router_id": r, "experiment_id": "experiment-" + "e" * 60, "variants": 2, "chi2": 41.2, "dof": 11,
                                 "p_value": 1e-9, "mix_differs": True} for r in ROUTERS]
    s["gate_thresholds"] = [{"tier": t, "gate_kind": "confidence", "target_error": 0.1, "graded": 1326, "threshold": 0.77,
                             "error_at_threshold": 0.0949, "coverage": 0.61} for t in TIERS]
    s[UNPRICED] = [{"deployment": f"provider/model-{i}-" + "m" * 40, "attempts": 1000 + i, "requests": 900} for i in range(14)]
    pooled = {k: list(ROUTERS) for k in ("tiers", "request_latency", "routing_mix", "cost", "quality", "gate_calibration",
                                         "gate_thresholds")}
    return Report(SINCE, UNTIL, by, s, routers=list(ROUTERS), pooled=pooled)


def test_every_line_fits_120_columns():
    text = render_text(wide_report())
    too_wide = [line for line in text.splitlines() if _width(line) > 120]
    assert not too_wide, too_wide[:3]
    assert ELLIPSIS in text, "long names are cut with an ellipsis"
    assert LONG_TENANT not in text


def test_a_table_row_is_one_line_never_wrapped():
    """Every line of a table has the table's column layout: a row is never continued on a next line."""
    lines = _fit_table([{"router_id": ROUTERS[0], "tier": TIERS[-1], "failure_mode": "x" * 300, "failures": 3, "rate": 0.5}])
    assert len(lines) == 3  # header, rule, one row
    header, rule, row = lines
    assert len(rule) == _width(row) or _width(row) <= len(rule)
    assert all(_width(line) <= 120 for line in lines)
    assert row.rstrip().endswith("50.0 %")


def test_a_table_too_wide_is_split_into_parts_repeating_the_name_columns():
    row = {"router_id": "r1", "tier": "small", **{f"column_number_{i:02d}": i for i in range(12)}}
    lines = _fit_table([row])
    headers = [line for line in lines if line.startswith("  router_id")]
    assert len(headers) >= 2, lines
    assert all(_width(line) <= 120 for line in lines)
    for i in range(12):
        assert sum(f"column_number_{i:02d}" in h for h in headers) == 1


def test_every_json_section_is_in_the_text():
    for report in (wide_report(), sample_report()):
        data = json.loads(render_json(report))
        text = render_text(report)
        lines = set(text.splitlines())
        for key in set(data) - META:
            assert TEXT_TITLES[key] in lines, key
    assert set(TEXT_SECTIONS) | {UNPRICED} >= set(json.loads(render_json(sample_report()))) - META


def test_rates_are_percent_money_and_latency_rounded():
    assert text_cell("escalation_rate", 0.12345) == ("12.3 %", True)
    assert text_cell("share_of_spend", 1.0) == ("100.0 %", True)
    assert text_cell("rate", 0.00042) == ("0.042 %", True)
    assert text_cell("accuracy", 0.755) == ("75.5 %", True)
    assert text_cell("coverage", 0.61) == ("61.0 %", True)
    assert text_cell("model_cost_usd", 12345.678) == ("12,346", True)
    assert text_cell("actual_cost_usd", 9.771) == ("9.77", True)
    assert text_cell("cost_per_request_usd", 0.0019512) == ("0.00195", True)
    assert text_cell("latency_ms_p95", 7891.24) == ("7,891", True)
    assert text_cell("latency_p95_ms", 7.25) == ("7.2", True)
    assert text_cell("attempts", 123456) == ("123,456", True)
    assert text_cell("escalation_rate", None) == ("-", True)
    assert text_cell("escalation_rate", float("nan")) == ("-", True)
    text = render_text(sample_report())
    assert re.search(r"^  small .* 22\.2 % +5\.3 %$", text, re.M), "the tiers' escalation and failure rates as percent"
    assert "0.2222" not in text and "0.0526" not in text


def test_pooling_sections_say_which_routers_they_pool():
    text = render_text(wide_report())
    blocks = text.split("\n\n")
    for key in ("tiers", "request_latency", "routing_mix", "cost", "quality", "gate_calibration", "gate_thresholds"):
        (block,) = [b for b in blocks if b.startswith(TEXT_TITLES[key] + "\n")]
        assert "pools routers eu-west-production" in block, key
        assert "split by category here" in " ".join(block.split()) or key.startswith("gate"), key
    (failures,) = [b for b in blocks if b.startswith(TEXT_TITLES["failure_modes"] + "\n")]
    assert "pools routers" not in failures and "router_id" in failures


def test_one_router_shows_no_router_column():
    report = sample_report()
    report.routers = ["r1"]
    report.sections["failure_modes"] = [{"router_id": "r1", "tier": "small", "failure_mode": "timeout", "failures": 12,
                                         "rate": 0.0026}]
    text = render_text(report)
    (block,) = [b for b in text.split("\n\n") if b.startswith(TEXT_TITLES["failure_modes"] + "\n")]
    assert "router_id" not in block and "0.3 %" in block


@pytest.mark.parametrize("width", [80, 100, 120])
def test_any_width_is_kept(width):
    assert all(_width(line) <= width for line in render_text(wide_report(by=""), width=width).splitlines())
