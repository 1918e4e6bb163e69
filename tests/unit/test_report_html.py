"""``routerwatch report --format html``: one self-contained page whose plots show the report's numbers."""

from __future__ import annotations

import html
import math
import re
from collections import defaultdict
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest

from routerwatch.report.html import render_html
from routerwatch.report.scoreboard import SECTIONS, Report

EVIL_TIER = "<script>alert(1)</script>"
EVIL_TENANT = '"><img src=x onerror=alert(2)>'
SINCE = datetime(2026, 11, 21, 5, 0, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 22, 5, 0, tzinfo=timezone.utc)
PLOTS = ("tier-latency", "request-latency", "escalation-series", "routing-mix", "cost")

# (minute, tier, category, escalated, accepted): "large" has no traffic at 04:10, EVIL_TIER only at 04:09.
SERIES = [
    ("2026-11-22T04:08:00", "small", "billing", 2, 8),
    ("2026-11-22T04:08:00", "small", "coding", 3, 7),
    ("2026-11-22T04:08:00", "medium", "coding", 1, 3),
    ("2026-11-22T04:08:00", "large", "coding", 0, 4),
    ("2026-11-22T04:09:00", "small", "billing", 1, 9),
    ("2026-11-22T04:09:00", "medium", "billing", 2, 2),
    ("2026-11-22T04:09:00", "medium", "coding", 0, 4),
    ("2026-11-22T04:09:00", "large", "billing", 0, 2),
    ("2026-11-22T04:09:00", EVIL_TIER, "coding", 1, 1),
    ("2026-11-22T04:10:00", "small", "coding", 5, 5),
    ("2026-11-22T04:10:00", "medium", "coding", 1, 1),
]


# Canary scoreboard rows as canary_scoreboard(...) returns them, and the pass-rate series per side.
CANARIES = [
    {"router_id": "r1", "side": "cheap", "canary_id": "refund-policy", "category": "billing", "expected_tier": "small",
     "probes": 12, "answered": 10, "no_answer": 2, "passed": 9, "pass_rate": 0.9, "tier_flips": 1, "tier_flip_rate": 0.1,
     "observed_tiers": {"small": 9, "large": 1}, "most_common_observed_tier": "small", "timed": 10,
     "latency_p50_ms": 420.0, "latency_p95_ms": 900.0, "last_probe_at": "2026-11-22 04:50:00",
     "last_error_at": "2026-11-22 04:40:00", "last_error": "timeout after 30 s", "last_check_detail": "regex did not match"},
    {"router_id": "r1", "side": "cheap", "canary_id": "greeting", "category": "chitchat", "expected_tier": "small",
     "probes": 12, "answered": 12, "no_answer": 0, "passed": 12, "pass_rate": 1.0, "tier_flips": 0, "tier_flip_rate": 0.0,
     "observed_tiers": {"small": 12}, "most_common_observed_tier": "small", "timed": 12,
     "latency_p50_ms": 380.0, "latency_p95_ms": 610.0, "last_probe_at": "2026-11-22 04:50:00",
     "last_error_at": None, "last_error": "", "last_check_detail": ""},
    {"router_id": "r1", "side": "strong", "canary_id": "contract-<clause>", "category": "legal", "expected_tier": "large",
     "probes": 6, "answered": 0, "no_answer": 6, "passed": 0, "pass_rate": None, "tier_flips": 0, "tier_flip_rate": None,
     "observed_tiers": {}, "most_common_observed_tier": None, "timed": 0,
     "latency_p50_ms": None, "latency_p95_ms": None, "last_probe_at": "2026-11-22 04:45:00",
     "last_error_at": "2026-11-22 04:45:00", "last_error": "HTTP 503", "last_check_detail": ""},
]
CANARY_SERIES = [
    {"bucket": "2026-11-22T04:00:00", "router_id": "r1", "side": "cheap", "probes": 8, "answered": 8, "no_answer": 0,
     "passed": 8, "pass_rate": 1.0, "tier_flips": 0, "tier_flip_rate": 0.0},
    {"bucket": "2026-11-22T04:30:00", "router_id": "r1", "side": "cheap", "probes": 16, "answered": 14, "no_answer": 2,
     "passed": 13, "pass_rate": 13 / 14, "tier_flips": 1, "tier_flip_rate": 1 / 14},
    {"bucket": "2026-11-22T04:30:00", "router_id": "r1", "side": "strong", "probes": 6, "answered": 0, "no_answer": 6,
     "passed": 0, "pass_rate": None, "tier_flips": 0, "tier_flip_rate": None},
]


def tier_row(tier, rank, terminal, passthrough, **extra):
    row = {
        "segment": "", "tier": tier, "tier_rank": rank, "attempts": 100, "accepted": 70, "escalated": 20, "failed": 5,
        "shadow": 5, "escalation_rate": 20 / 90, "failure_rate": 5 / 95, "terminal_share": 70 / 95,
        "passthrough_share": 20 / 95, "terminal_latency_ms": terminal, "passthrough_latency_ms": passthrough,
        "terminal_ttft_ms": [math.nan, math.nan, math.nan], "verify_latency_ms": [0.0, 0.0, 0.0],
        "model_cost_usd": 1.5, "verify_cost_usd": 0.0, "shadow_cost_usd": 0.01,
    }
    row.update(extra)
    return row


def sample_sections() -> dict[str, list[dict]]:
    return {
        "tiers": [
            tier_row("small", 0, [452.4, 789.2, 988.7], [441.2, 762.2, 1015.0]),
            tier_row("medium", 1, [1396.2, 2566.3, 3189.2], [1459.1, 2409.9, 3039.8]),
            tier_row("large", 2, [4168.4, 7506.4, 9192.3], [math.nan, math.nan, math.nan], escalation_rate=math.nan),
            tier_row(EVIL_TIER, 3, [5000.0, 6000.0, 7000.0], [None, None, None]),
        ],
        "request_latency": [
            {"segment": "", "path_group": "kept", "requests": 3873, "latency_ms": [483.3, 1535.9, 2437.8]},
            {"segment": "", "path_group": "escalated", "requests": 1118, "latency_ms": [2731.6, 8272.9, 10472.2]},
            {"segment": "", "path_group": "all", "requests": 5000, "latency_ms": [556.8, 5680.7, 8587.8]},
        ],
        "routing_mix": [
            {"segment": "", "final_tier": "small", "final_tier_rank": 0, "requests": 3582, "share": 0.7164, "kept": 3582,
             "escalated": 0, "cost_usd": 1.40, "cost_per_request_usd": 0.00039},
            {"segment": "", "final_tier": "medium", "final_tier_rank": 1, "requests": 1034, "share": 0.2068, "kept": 291,
             "escalated": 735, "cost_usd": 2.85, "cost_per_request_usd": 0.00276},
            {"segment": "", "final_tier": EVIL_TIER, "final_tier_rank": 3, "requests": 300, "share": 0.06, "kept": 0,
             "escalated": 300, "cost_usd": 5.0, "cost_per_request_usd": 0.0167},
            {"segment": "", "final_tier": "(not served)", "final_tier_rank": 0, "requests": 84, "share": 0.0168, "kept": 0,
             "escalated": 0, "cost_usd": 0.1, "cost_per_request_usd": 0.0012},
        ],
        "cost": [
            {"segment": "", "requests": 5000, "actual_cost_usd": 9.77, "counterfactual_cost_usd": 56.43,
             "savings_share": 1 - 9.77 / 56.43, "cost_per_request_usd": 0.00195, "routable_share": 0.92},
        ],
        "escalation_reasons": [
            {"tier": "small", "category": "coding", "escalation_reason": "low_confidence", "escalations": 440,
             "share_of_tier_escalations": 0.476},
        ],
        "failure_modes": [{"tier": "small", "failure_mode": "timeout", "failures": 12, "rate": 0.0026}],
        "quality": [{"segment": "", "tier": "small", "target": "served", "graded": 1046, "pass_rate": 0.871, "mean_score": 0.73}],
        "gate_calibration": [
            {"tier": "small", "gate_kind": "confidence", "score_bucket": 0.7, "graded": 347, "accuracy": 0.755,
             "false_accepts": 85, "false_escalates": 0, "gate_passed_n": 347, "gate_rejected_n": 0},
        ],
        "experiment_slices": [
            {"experiment_id": "gate-test", "experiment_variant": "control", "slice": "entry_tier", "requests": 1924,
             "share": 0.76, "latency_ms": [483.5, 1455.6, 2341.3], "cost_per_request_usd": 0.00052},
        ],
        "experiment_mix": [
            {"experiment_id": "gate-test", "experiment_variant": "control", "final_tier": "small", "requests": 1800},
            {"experiment_id": "gate-test", "experiment_variant": "treatment", "final_tier": "small", "requests": 900},
        ],
        "gate_thresholds": [
            {"tier": "small", "gate_kind": "confidence", "target_error": 0.1, "graded": 1326,
             "threshold": 0.77, "error_at_threshold": 0.0949, "coverage": 0.61},
        ],
        "experiment_mix_test": [
            {"experiment_id": "gate-test", "variants": 2, "chi2": 41.2, "dof": 2, "p_value": 1e-9, "mix_differs": True},
            {"experiment_id": "prompt-test", "variants": 2, "chi2": 0.26, "dof": 2, "p_value": 0.88, "mix_differs": False},
        ],
        "escalation_series": [
            {"minute": m, "tier": t, "category": c, "escalated": e, "accepted": a, "escalation_rate": e / (e + a)}
            for m, t, c, e, a in SERIES
        ],
        "tenants": [
            {"tenant": EVIL_TENANT if i == 0 else f"tenant-{i:03d}", "requests": 1000 - i, "escalated_requests": 10,
             "escalation_rate": 0.2, "cost_usd": 10.0 - i * 0.1, "share_of_spend": 0.04}
            for i in range(25)
        ],
        "dead_letters": [
            {"topic": "routerwatch.decisions.v1", "reason": "schema", "messages": 12, "last_received_at": "2026-11-22 04:30:00"},
        ],
        "canaries": [dict(r) for r in CANARIES],
        "canary_series": [dict(r) for r in CANARY_SERIES],
    }


def sample_report(**overrides) -> Report:
    sections = sample_sections()
    sections.update(overrides)
    return Report(SINCE, UNTIL, "", sections)


class Page(HTMLParser):
    """Elements of interest: every tag with its attributes, SVGs with the title that is their first child."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.svgs: list[dict] = []
        self._stack: list[str] = []
        self._svg: dict | None = None
        self._in_title = False
        self.text_by_class: dict[str, list[str]] = defaultdict(list)
        self._text_class: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attrs))
        if tag == "svg":
            self._svg = {"attrs": attrs, "title": None, "first_child": None}
            self.svgs.append(self._svg)
        elif self._svg is not None and self._svg["first_child"] is None:
            self._svg["first_child"] = tag
        if tag == "title" and self._stack and self._stack[-1] == "svg":
            self._in_title = True
        if tag == "text":
            self._text_class = attrs.get("class")
        self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass
        if tag == "svg":
            self._svg = None
        if tag == "title":
            self._in_title = False
        if tag == "text":
            self._text_class = None

    def handle_data(self, data):
        if self._in_title and self._svg is not None:
            self._svg["title"] = (self._svg["title"] or "") + data
        if self._text_class:
            self.text_by_class[self._text_class].append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in wanted.items())]


@pytest.fixture(scope="module")
def page_text() -> str:
    return render_html(sample_report())


@pytest.fixture(scope="module")
def page(page_text) -> Page:
    return Page(page_text)


def test_is_one_html_document(page_text):
    assert page_text.startswith("<!DOCTYPE html>")
    assert page_text.count("<html") == 1 and page_text.rstrip().endswith("</html>")
    assert "2026-11-21 05:00:00" in page_text and "2026-11-22 05:00:00" in page_text
    for term in ("terminal", "passthrough", "kept", "escalated", "escalation rate"):
        assert f"<dt>{term}</dt>" in page_text


def test_no_external_references_and_no_scripts(page_text, page):
    assert "http://" not in page_text and "https://" not in page_text
    assert "<script" not in page_text.lower()
    assert "@import" not in page_text and "url(" not in page_text
    assert not [t for t, a in page.tags if t in ("script", "link", "img", "iframe", "object", "embed", "image")]
    assert not [a for _, a in page.tags if "src" in a]
    hrefs = [a["href"] for _, a in page.tags if "href" in a]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    ids = {a["id"] for _, a in page.tags if "id" in a}
    assert all(h[1:] in ids for h in hrefs), "every in-page link has its target"


def plots(page: Page) -> list[dict]:
    return [s for s in page.svgs if s["attrs"].get("class") == "plot"]


def test_one_svg_per_plot_each_with_a_title(page):
    assert [s["attrs"].get("data-plot") for s in plots(page)] == list(PLOTS)
    # The only other pictures are the canary sparklines, one per side with pass rates to show.
    assert [s["attrs"].get("class") for s in page.svgs if s not in plots(page)] == ["sparkline"]
    for svg in page.svgs:
        assert svg["first_child"] == "title"
        assert svg["title"] and svg["title"].strip()
        assert svg["attrs"]["role"] == "img"


def test_strings_from_data_are_escaped(page_text, page):
    assert EVIL_TIER not in page_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page_text
    assert EVIL_TENANT not in page_text
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page_text
    # The parser sees the hostile names only as data, never as elements.
    assert page.find("polyline", data_tier=EVIL_TIER)
    assert not [t for t, _ in page.tags if t in ("script", "img")]


def test_nan_and_missing_values_render_as_dashes(page_text):
    assert not re.search(r"\bnan\b|\binf\b", page_text, re.IGNORECASE)
    assert "- / - / -" in page_text


def test_tier_latency_marks_carry_the_reports_quantiles(page):
    for row in sample_sections()["tiers"]:
        for population in ("terminal", "passthrough"):
            groups = page.find("g", data_tier=row["tier"], data_population=population)
            assert len(groups) == 1
            quantiles = row[f"{population}_latency_ms"]
            marks = _marks_in_group(page, "tier-latency", row["tier"], population)
            expected = {q: v for q, v in zip(("p50", "p95", "p99"), quantiles) if v is not None and not math.isnan(v)}
            assert marks == pytest.approx(expected)


def _marks_in_group(page: Page, plot: str, tier: str, population: str) -> dict[str, float]:
    """data-quantile -> data-value of the marks inside one series group of one plot."""
    out: dict[str, float] = {}
    in_plot = in_group = False
    for tag, attrs in page.tags:
        if tag == "svg":
            in_plot = attrs.get("data-plot") == plot
            in_group = False
        elif tag == "g" and attrs.get("class") == "series":
            in_group = in_plot and attrs.get("data-tier") == tier and attrs.get("data-population") == population
        elif in_group and attrs.get("class") == "q":
            out[attrs["data-quantile"]] = float(attrs["data-value"])
    return out


def test_marks_are_placed_on_a_log_scale_in_order(page):
    # Within each series, p50 is below p95 is below p99 on screen (larger y is lower).
    ys: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    in_plot, key = False, None
    for tag, attrs in page.tags:
        if tag == "svg":
            in_plot = attrs.get("data-plot") == "tier-latency"
        elif in_plot and tag == "g" and attrs.get("class") == "series":
            key = (attrs["data-tier"], attrs["data-population"])
        elif in_plot and attrs.get("class") == "q" and tag == "circle":
            ys[key].append((float(attrs["data-value"]), float(attrs["cy"])))
    points = sorted(v for series in ys.values() for v in series)
    assert len(points) == 6  # one p50 circle per series with data: small x2, medium x2, large and EVIL_TIER terminal
    # ... ys strictly decrease as values grow, and log-linearly: equal ratios give equal distances.
    (v1, y1), (v2, y2) = points[0], points[-1]
    slope = (y2 - y1) / (math.log10(v2) - math.log10(v1))
    assert slope < 0
    for v, y in points:
        assert y == pytest.approx(y1 + slope * (math.log10(v) - math.log10(v1)), abs=0.2)


def test_request_latency_marks(page):
    for row in sample_sections()["request_latency"]:
        groups = page.find("g", data_path=row["path_group"])
        assert len(groups) == 1
        values = []
        in_plot = in_group = False
        for tag, attrs in page.tags:
            if tag == "svg":
                in_plot = attrs.get("data-plot") == "request-latency"
            elif tag == "g" and attrs.get("class") == "series":
                in_group = in_plot and attrs.get("data-path") == row["path_group"]
            elif in_group and attrs.get("class") == "q":
                values.append(float(attrs["data-value"]))
        assert values == pytest.approx(row["latency_ms"])


def test_escalation_series_one_point_per_distinct_minute_with_the_aggregated_rate(page):
    expected: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for minute, tier, _, escalated, accepted in SERIES:
        expected[tier][minute][0] += escalated
        expected[tier][minute][1] += accepted
    lines = page.find("polyline")
    assert sorted(line["data-tier"] for line in lines) == sorted(expected)
    coords = []
    for line in lines:
        tier = line["data-tier"]
        points = [tuple(map(float, p.split(","))) for p in line["points"].split()]
        minutes = sorted(expected[tier])
        assert len(points) == len(minutes) == len(line["data-minutes"].split())
        assert line["data-minutes"].split() == minutes
        rates = [expected[tier][m][0] / sum(expected[tier][m]) for m in minutes]
        assert [float(r) for r in line["data-rates"].split()] == pytest.approx(rates)
        coords += [(m, r, x, y) for m, r, (x, y) in zip(minutes, rates, points)]
    # The same minute is at the same x in every line, later minutes to the right; y is linear in the rate.
    by_minute = defaultdict(set)
    for m, _, x, _ in coords:
        by_minute[m].add(x)
    assert all(len(xs) == 1 for xs in by_minute.values())
    xs = [by_minute[m].pop() for m in sorted(by_minute)]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    lo = min(coords, key=lambda c: c[1])
    hi = max(coords, key=lambda c: c[1])
    assert lo[1] == 0 and hi[1] == 0.5  # large's 0% and small's 5/10 at 04:10
    for _, r, _, y in coords:
        assert y == pytest.approx(lo[3] + (hi[3] - lo[3]) * r / hi[1], abs=0.2)


def test_routing_mix_bars_have_the_shares(page):
    bars = page.find("rect", **{"class": "bar"})
    mix = [b for b in bars if b.get("data-tier") is not None]
    rows = sample_sections()["routing_mix"]
    assert {b["data-tier"]: float(b["data-value"]) for b in mix} == pytest.approx({r["final_tier"]: r["share"] for r in rows})
    widths = {b["data-tier"]: float(b["width"]) for b in mix}
    total = sum(widths.values())
    for r in rows:
        assert widths[r["final_tier"]] / total == pytest.approx(r["share"] / sum(x["share"] for x in rows), abs=0.002)
    # Tiers are stacked in rank order, (not served) last.
    order = [b["data-tier"] for b in sorted(mix, key=lambda b: float(b["x"]))]
    assert order == ["small", "medium", EVIL_TIER, "(not served)"]


def test_cost_bars_and_savings(page):
    bars = {b["data-series"]: b for b in page.find("rect", **{"class": "bar"}) if b.get("data-series")}
    assert float(bars["actual"]["data-value"]) == pytest.approx(9.77)
    assert float(bars["counterfactual"]["data-value"]) == pytest.approx(56.43)
    assert float(bars["actual"]["width"]) / float(bars["counterfactual"]["width"]) == pytest.approx(9.77 / 56.43, rel=0.01)
    savings = page.find("text", **{"class": "savings"})
    assert len(savings) == 1 and float(savings[0]["data-value"]) == pytest.approx(1 - 9.77 / 56.43)
    assert "savings 82.7%" in page.text_by_class["savings"]


def test_tier_colours_are_the_same_in_every_plot(page):
    colour_of: dict[str, set[str]] = defaultdict(set)
    for tag, attrs in page.tags:
        tier = attrs.get("data-tier")
        if tier is None:
            continue
        if tag == "polyline":
            colour_of[tier].add(attrs["stroke"].lower())
        elif tag == "rect" and attrs.get("class") == "bar":
            colour_of[tier].add(attrs["fill"].lower())
    for tag, attrs in page.tags:
        if tag == "g" and attrs.get("data-population"):
            stroke = _first_mark_stroke(page, attrs)
            if stroke:  # series without data have no marks
                colour_of[attrs["data-tier"]].add(stroke)
    assert colour_of["small"] and all(len(c) == 1 for c in colour_of.values())
    assert len({next(iter(c)) for c in colour_of.values()}) == len(colour_of), "distinct tiers get distinct colours"


def _first_mark_stroke(page: Page, group_attrs: dict[str, str]) -> str | None:
    tags = page.tags
    start = next(i for i, (t, a) in enumerate(tags) if a is group_attrs)
    for tag, attrs in tags[start + 1:]:
        if tag == "g":
            break
        if attrs.get("class") == "q":
            return attrs["stroke"].lower()
    return None


def test_every_section_has_a_table(page_text, page):
    for key, title, _, _ in SECTIONS:
        assert page.find("section", id=f"section-{key}"), key
    assert page.find("section", id="section-experiment_mix_test")
    # one table per section (the two computed ones included), two for the wide per-tier section
    # and two for the canaries (per side, per canary)
    assert page_text.count("<table>") + page_text.count('<table class="canary-sides">') == len(SECTIONS) + 2 + 1 + 1
    assert not page.find("section", id="section-canary_series"), "drawn inside the canary section"


def test_mix_differs_is_a_warning(page_text, page):
    assert "variants differ in routing mix \u2014 compare within slices" in page_text
    assert len(page.find("div", **{"class": "warning", "role": "alert"})) == 1
    assert len(page.find("p", **{"class": "warning"})) == 1, "a pointer at the top of the page"
    assert page.find("a", href="#section-experiment_mix_test")
    assert len(page.find("tr", **{"class": "warn"})) == 1
    assert "gate-test:" in page_text


def test_no_warning_when_mixes_agree():
    text = render_html(sample_report(experiment_mix_test=[
        {"experiment_id": "gate-test", "variants": 2, "chi2": 0.3, "dof": 2, "p_value": 0.86, "mix_differs": False}]))
    assert 'class="warning"' not in text and 'class="warn"' not in text


def test_tenants_top_20(page_text):
    assert "tenant-019" in page_text and "tenant-020" not in page_text
    assert "Top 20 of 25 tenants" in page_text


def test_all_sections_empty_still_renders():
    empty = Report(SINCE, UNTIL, "", {key: [] for key in sample_sections()})
    text = render_html(empty)
    page = Page(text)
    assert [s["attrs"].get("data-plot") for s in page.svgs] == list(PLOTS)
    assert all(s["title"] for s in page.svgs)
    # every section says it is empty, except the canary series (drawn inside the canary section)
    assert text.count('class="nodata"') == len(PLOTS) + len(sample_sections()) - 1
    assert "no canary probes in this range" in text
    assert "<table" not in text


def test_no_sections_at_all_still_renders():
    text = render_html(Report(SINCE, UNTIL, "category", {}))
    assert len(Page(text).svgs) == len(PLOTS)
    assert "split by: <strong>category</strong>" in text
    assert "no data" in text


def test_one_empty_section_does_not_hide_the_others():
    text = render_html(sample_report(escalation_series=[], cost=[]))
    page = Page(text)
    assert not page.find("polyline")
    assert not [b for b in page.find("rect", **{"class": "bar"}) if b.get("data-series")]
    assert page.find("rect", data_tier="small")


def test_segments_get_their_own_groups():
    sections = sample_sections()
    mix = []
    for segment in ("billing", "coding"):
        for row in sections["routing_mix"]:
            mix.append({**row, "segment": segment})
    tiers = [{**r, "segment": s} for s in ("billing", "coding") for r in sections["tiers"]]
    report = Report(SINCE, UNTIL, "category", {**sections, "routing_mix": mix, "tiers": tiers})
    page = Page(render_html(report))
    assert {b["data-segment"] for b in page.find("rect", **{"class": "bar"}) if b.get("data-tier")} == {"billing", "coding"}
    assert len(page.find("g", data_tier="small", data_population="terminal")) == 2


def test_numeric_strings_from_a_json_transport_are_plotted():
    sections = sample_sections()
    sections["cost"] = [{k: (str(v) if isinstance(v, float) else v) for k, v in sections["cost"][0].items()}]
    sections["escalation_series"] = [{**r, "escalated": str(r["escalated"]), "accepted": str(r["accepted"])}
                                     for r in sections["escalation_series"]]
    page = Page(render_html(Report(SINCE, UNTIL, "", sections)))
    assert float(page.find("text", **{"class": "savings"})[0]["data-value"]) == pytest.approx(1 - 9.77 / 56.43)
    assert len(page.find("polyline")) == 4


def test_datetime_minutes_are_accepted():
    sections = sample_sections()
    sections["escalation_series"] = [
        {**r, "minute": datetime.fromisoformat(r["minute"])} for r in sections["escalation_series"]
    ]
    page = Page(render_html(Report(SINCE, UNTIL, "", sections)))
    small = page.find("polyline", data_tier="small")[0]
    assert small["data-minutes"].split() == ["2026-11-22T04:08:00", "2026-11-22T04:09:00", "2026-11-22T04:10:00"]


def test_value_labels_show_the_numbers(page):
    labels = page.text_by_class["value-label"]
    assert "p50 452" in labels and "p99 9,192" in labels
    assert any(re.fullmatch(r"actual \$9\.77", t) for t in labels)


def _canary_tables(page_text: str) -> tuple[str, str]:
    section = page_text[page_text.index('id="section-canaries"'):]
    section = section[: section.index("</section>")]
    sides = section[section.index('<table class="canary-sides">'):]
    sides = sides[: sides.index("</table>")]
    per_canary = section[section.index("<table>"):]
    return sides, per_canary[: per_canary.index("</table>")]


def _cells(table: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)] for row in rows]


def test_canary_section_per_side_and_per_canary(page_text, page):
    assert page.find("a", href="#section-canaries")
    sides, per_canary = _canary_tables(page_text)
    header, *rows = _cells(sides)
    assert header[:7] == ["side", "canaries", "probes", "answered", "no_answer", "pass_rate %", "tier_flip_rate %"]
    # cheap: 24 probes, 22 answered, 21 passed, 1 flip; strong: nothing answered, so no rates (dashes, not NaN).
    assert [r[:7] for r in rows] == [
        ["cheap", "2", "24", "22", "2", f"{21 / 22 * 100:.1f}%", f"{1 / 22 * 100:.1f}%"],
        ["strong", "1", "6", "0", "6", "-", "-"],
    ]
    header, *rows = _cells(per_canary)
    assert "router_id" not in header, "one router: no router column"
    by_canary = {r[header.index("canary_id")]: dict(zip(header, r)) for r in rows}
    assert set(by_canary) == {"refund-policy", "greeting", "contract-<clause>"}
    refund = by_canary["refund-policy"]
    assert (refund["probes"], refund["no_answer"], refund["pass_rate %"], refund["tier_flip_rate %"]) == ("12", "2", "90.0%", "10.0%")
    assert (refund["expected_tier"], refund["most_common_observed_tier"], refund["observed_tiers"]) == ("small", "small", "small 9, large 1")
    assert refund["last_error"] == "timeout after 30 s" and refund["last_check_detail"] == "regex did not match"
    assert by_canary["contract-<clause>"]["pass_rate %"] == "-" and by_canary["contract-<clause>"]["most_common_observed_tier"] == "-"
    assert "contract-&lt;clause&gt;" in per_canary
    # Rows with failures, flips or unanswered probes are highlighted; the clean canary is not.
    assert len(page.find("tr", **{"class": "flag"})) == 2


def test_canary_sparkline_carries_the_pass_rates(page):
    (spark,) = [s["attrs"] for s in page.svgs if s["attrs"].get("class") == "sparkline"]
    assert spark["data-side"] == "cheap" and spark["data-router"] == "r1"
    assert spark["data-buckets"].split() == ["2026-11-22T04:00:00", "2026-11-22T04:30:00"]
    assert [float(v) for v in spark["data-rates"].split()] == pytest.approx([1.0, 13 / 14])
    (line,) = page.find("path", **{"class": "spark"})
    points = [tuple(map(float, p.split(","))) for p in line["d"].lstrip("M").split(" L")]
    assert points[0][0] < points[1][0] and points[0][1] < points[1][1], "later to the right, lower rate lower down"


def test_no_canary_probes_says_so():
    text = render_html(sample_report(canaries=[], canary_series=[]))
    section = text[text.index('id="section-canaries"'):]
    section = section[: section.index("</section>")]
    assert '<p class="nodata">no canary probes in this range</p>' in section
    assert "<table" not in section and "<svg" not in section
