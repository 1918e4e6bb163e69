"""``routerwatch report --format html``: the scoreboard as one self-contained page.

:func:`render_html` turns a :class:`~routerwatch.report.scoreboard.Report` into a
single HTML document: inline CSS, five plots drawn as inline SVG, and a
table for every section (the canary section adds a pass-rate sparkline per
side, also inline SVG). Nothing is fetched when the page is opened (no
scripts, fonts, images or style sheets from elsewhere), so the file can be
mailed, attached to an incident or opened offline.

Every string that comes from the data (tier names, tenants, categories,
experiment ids, dead-letter reasons) is escaped. Plotted marks carry
``data-*`` attributes with the value they show, so tests (and curious readers)
can check a mark against the table below it.

This module assembles the page; the parts are drawn by
:mod:`~routerwatch.report.plots` (charts), :mod:`~routerwatch.report.html_tables`
(tables) and styled by :mod:`~routerwatch.report.css`.
"""

from __future__ import annotations

from routerwatch.report.css import CSS
from routerwatch.report.html_tables import MIX_WARNING, section_table
from routerwatch.report.plots import (
    plot_cost, plot_escalation_series, plot_request_latency, plot_routing_mix, plot_tier_latency, series_bucket, tier_colours,
)
from routerwatch.report.scoreboard import SECTIONS, UNPRICED, UNPRICED_TITLE, Report, fmt_time, unpriced_line
from routerwatch.report.values import esc, num, pct, section_rows, usd

__all__ = ["render_html"]

TITLES = {key: title for key, title, _, _ in SECTIONS}
TITLES[UNPRICED] = UNPRICED_TITLE
TITLES["experiment_mix_test"] = "Experiments: does routing mix differ between variants? (chi-square, alpha 0.01)"
SECTION_ORDER = [key for key, _, _, _ in SECTIONS]
SECTION_ORDER.insert(SECTION_ORDER.index("experiment_mix") + 1, "experiment_mix_test")
TITLES["gate_thresholds"] = "Gate thresholds that meet the target error on graded answers"
SECTION_ORDER.insert(SECTION_ORDER.index("gate_calibration") + 1, "gate_thresholds")
# Drawn inside the canary section (sparklines), not as a table of its own.
EMBEDDED_SECTIONS = {"canary_series"}


def _kpis(report: Report) -> str:
    rows = section_rows(report, "cost")
    if not rows:
        return ""
    requests = sum(num(r.get("requests")) or 0 for r in rows)
    actual = sum(num(r.get("actual_cost_usd")) or 0 for r in rows)
    counterfactual = sum(num(r.get("counterfactual_cost_usd")) or 0 for r in rows)
    items = [(f"{requests:,.0f}", "requests"), (usd(actual), "actual cost"), (usd(counterfactual), "counterfactual cost")]
    if counterfactual > 0:
        items.append((pct(1 - actual / counterfactual), "savings"))
    kept = [r for r in section_rows(report, "request_latency") if r.get("path_group") == "kept"]
    everyone = [r for r in section_rows(report, "request_latency") if r.get("path_group") == "all"]
    total = sum(num(r.get("requests")) or 0 for r in everyone)
    if total:
        items.append((pct(sum(num(r.get("requests")) or 0 for r in kept) / total), "kept by the entry tier"))
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><div class="v">{esc(v)}</div><div class="l">{esc(label)}</div></div>' for v, label in items
    ) + "</div>"


def _top_warnings(report: Report) -> str:
    out = ""
    unpriced = section_rows(report, UNPRICED)
    if unpriced:
        out = (f'<p class="warning">&#9888; {esc(unpriced_line(unpriced).removeprefix("WARNING: "))} '
               f'<a href="#section-{UNPRICED}">See the models.</a></p>')
    differing = [r for r in section_rows(report, "experiment_mix_test") if r.get("mix_differs") is True]
    if not differing:
        return out
    names = ", ".join(esc(r.get("experiment_id")) for r in differing)
    return out + (f'<p class="warning">&#9888; Experiments {names}: {esc(MIX_WARNING)}. '
                  '<a href="#section-experiment_mix_test">See the routing-mix test.</a></p>')


VOCABULARY = (
    ("terminal", "a tier whose attempt was <em>accepted</em>: its answer was served to the user."),
    ("passthrough", "a tier whose attempt was <em>escalated</em>: a gate or verifier rejected the answer and the request moved up a tier."),
    ("kept", "a request served by its entry tier (the first tier it tried), with no escalation."),
    ("escalated", "a request with at least one escalation. <em>all</em> also counts requests that are neither "
                  "(fallbacks after failures, unserved)."),
    ("escalation rate", "of a tier: escalated / (accepted + escalated) attempts at that tier. Failed attempts (errors, "
                        "retries, fallbacks: reliability, not quality) and shadow attempts (never served) are excluded."),
    ("counterfactual cost", "what the same requests would have cost on the flagship tier alone."),
    ("tier flip", "a canary probe answered by another tier than the canary expects. Canary pass and tier-flip rates "
                  "are over answered probes; canary traffic is kept out of every other figure."),
    ("p50 / p95 / p99", "latency quantiles in milliseconds (t-digest estimates merged over the range)."),
)


def render_html(report: Report) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts) for ``report``."""
    colours = tier_colours(report)
    since, until = fmt_time(report.since), fmt_time(report.until)
    by = report.by or "none"
    plots = [
        ("tier-latency", "Terminal vs passthrough latency per tier", plot_tier_latency(report, colours),
         "Filled marks: attempts whose answer was served; hollow marks with a dashed whisker: attempts whose answer was "
         "rejected (the request then escalated). Passthrough latency is paid on top of the next tier's."),
        ("request-latency", "Request latency", plot_request_latency(report),
         "Kept and escalated requests are two populations with two SLOs; the blended figure is shown only beside them."),
        ("escalation-series", "Escalation rate over time", plot_escalation_series(report, colours),
         f"Categories are summed per tier and {series_bucket(report)} before the rate is taken."),
        ("routing-mix", "Routing mix", plot_routing_mix(report, colours), "Where requests ended: the tier that served the answer."),
        ("cost", "Cost", plot_cost(report), "Savings share = 1 - actual / counterfactual."),
    ]
    section_keys = [k for k in SECTION_ORDER if k in report.sections or k in TITLES]
    section_keys += [k for k in report.sections if k not in section_keys]
    section_keys = [k for k in section_keys if k not in EMBEDDED_SECTIONS]

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>routerwatch report {esc(since)} .. {esc(until)} UTC</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        '<header class="page"><div class="inner">',
        "<h1>routerwatch report</h1>",
        f'<div class="meta"><span>from <strong>{esc(since)}</strong> to <strong>{esc(until)}</strong> UTC</span>'
        f'<span>split by: <strong>{esc(by)}</strong></span>'
        + (f'<span>routers: <strong>{esc(", ".join(report.routers))}</strong></span>' if report.routers else "")
        + "</div>",
        "</div></header><main>",
        _kpis(report),
        _top_warnings(report),
        '<section class="card" id="vocabulary"><h3>Vocabulary</h3><dl class="vocab">',
        "".join(f"<dt>{esc(term)}</dt><dd>{text}</dd>" for term, text in VOCABULARY),
        "</dl></section>",
        '<nav class="toc" aria-label="contents">',
        "".join(f'<div><a href="#fig-{pid}">{esc(name)}</a></div>' for pid, name, _, _ in plots),
        "".join(f'<div><a href="#section-{esc(k)}">{esc(TITLES.get(k, k))}</a></div>' for k in section_keys),
        "</nav>",
        "<h2>Plots</h2>",
    ]
    plot_sections = {"tier-latency": "tiers", "request-latency": "request_latency", "routing-mix": "routing_mix", "cost": "cost"}
    for pid, _, svg, caption in plots:
        pooled = report.pooled.get(plot_sections.get(pid, ""))
        if pooled:
            caption += f" Pools routers {', '.join(pooled)} (split by {by}, not by router)."
        out.append(f'<figure class="plot" id="fig-{pid}">{svg}<figcaption>{esc(caption)}</figcaption></figure>')
    out.append("<h2>Tables</h2>")
    for key in section_keys:
        out.append(f'<section class="card" id="section-{esc(key)}"><h3>{esc(TITLES.get(key, key))}</h3>')
        out.append(section_table(report, key))
        out.append("</section>")
    out.append('<footer>Generated by <code>routerwatch report --format html</code>. Self-contained: no scripts, no network.</footer>')
    out.append("</main></body></html>")
    return "\n".join(out)
