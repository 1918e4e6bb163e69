// The routerwatch on-call console. No library: fetch the JSON of /console/api/*, fill tables, draw SVG.
// The state (range, router, request id) lives in the URL's hash, so a link shows what its sender saw.
// A token given once as #token=... is kept in sessionStorage (not in the URL) and sent as a bearer token.
"use strict";

(function () {
  const TOKEN_KEY = "routerwatch-token";
  const REFRESH_MS = 60000;
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  let timer = null;

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const token = params.get("token");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      params.delete("token");
      history.replaceState(null, "", "#" + params.toString());
    }
    return {
      range: params.get("range") || "6h",
      router: params.get("router") || "",
      env: params.get("env") || "",
      id: params.get("id") || "",
      refresh: params.get("refresh") === "1",
      tier: params.get("tier") || "",
    };
  }

  function writeHash(state) {
    const params = new URLSearchParams();
    params.set("range", state.range);
    if (state.router) params.set("router", state.router);
    if (state.env) params.set("env", state.env);
    if (state.id) params.set("id", state.id);
    if (state.refresh) params.set("refresh", "1");
    if (state.tier) params.set("tier", state.tier);
    const next = "#" + params.toString();
    if (location.hash !== next) location.hash = next; // fires hashchange -> render
  }

  async function api(name, query) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    const response = await fetch("/console/api/" + name + "?" + new URLSearchParams(query).toString(), { headers });
    let body;
    try {
      body = await response.json();
    } catch (e) {
      throw new Error(name + ": HTTP " + response.status);
    }
    if (!response.ok) throw new Error(name + ": " + (body.error || "HTTP " + response.status));
    return body;
  }

  // --- formatting (text only: values are never parsed as HTML) ---
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function num(v) { return v === null || v === undefined ? "\u2013" : Number(v).toLocaleString("en-US"); }
  function pct(v) { return v === null || v === undefined ? "\u2013" : (100 * v).toFixed(1) + "%"; }
  function ms(v) { return v === null || v === undefined ? "\u2013" : Math.round(v).toLocaleString("en-US"); }
  function usd(v) { return v === null || v === undefined ? "\u2013" : "$" + Number(v).toFixed(4); }
  function msAxis(v) { return Math.round(v).toLocaleString("en-US") + " ms"; }
  function usdAxis(v) { return "$" + (v >= 1 ? v.toFixed(2) : Number(v).toPrecision(2)); }
  function shortTime(iso) { return new Date(iso).toISOString().slice(0, 16).replace("T", " "); }
  function q(arr, i) { return Array.isArray(arr) ? arr[i] : null; }

  function fill(table, rows, cells) {
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const [text, cls, testid] of cells(row)) {
        const td = el("td", text, cls);
        if (testid) td.dataset.testid = testid;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    table.hidden = rows.length === 0;
  }

  // --- sections ---
  function renderNow(now) {
    const status = document.getElementById("now-status");
    const table = document.getElementById("now-table");
    if (!now.detectors) {
      status.textContent = "The detectors are not running in this serve (nothing is evaluated here).";
      table.hidden = true;
      return;
    }
    const when = now.evaluated_at ? "last evaluated " + now.evaluated_at : "not evaluated yet";
    status.textContent = now.firing.length ? now.firing.length + " firing (" + when + ")" : "Nothing is firing (" + when + ").";
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const alert of now.firing) {
      const l = alert.labels, a = alert.annotations;
      const tr = document.createElement("tr");
      tr.className = "firing";
      for (const text of [l.alertname, l.router, l.tier, l.category || l.canary || l.side, a.baseline, a.observed, a.magnitude,
                          a.change_start || alert.starts_at]) {
        tr.appendChild(el("td", text));
      }
      const runbook = el("td");
      if (a.runbook_url && /^https?:\/\//i.test(a.runbook_url)) {
        const link = el("a", "runbook");
        link.href = a.runbook_url;
        runbook.appendChild(link);
      }
      tr.appendChild(runbook);
      const sql = el("td", undefined, "query");
      if (a.query) sql.appendChild(el("code", a.query));
      tr.appendChild(sql);
      tr.appendChild(el("td", splitText(alert.kitagawa), "split"));
      body.appendChild(tr);
    }
    table.hidden = now.firing.length === 0;
    renderSuppressed(now.silenced);
    renderResolved(now.resolved || {});
  }

  // The Kitagawa split of a pooled rate change: how much is the category mix, how much within categories.
  function splitText(k) {
    if (!k || k.total === null || k.total === undefined) return "";
    const pp = (v) => (v >= 0 ? "+" : "") + (100 * v).toFixed(1) + " pp";
    return pp(k.total) + " = mix " + pp(k.mix) + " + within " + pp(k.within);
  }

  function labelCells(l) {
    return [[l.alertname], [l.router], [l.tier], [l.category || l.canary || l.side || l.tenant]];
  }

  // Alerts Alertmanager holds back (silenced or inhibited): still firing here, nobody is paged.
  function renderSuppressed(silenced) {
    const status = document.getElementById("silenced-status");
    const table = document.getElementById("silenced-table");
    if (!silenced || silenced.available === false) {
      status.textContent = silenced && silenced.error ? "Alertmanager could not be asked: " + silenced.error
        : "No Alertmanager is configured: nothing is silenced here.";
      table.hidden = true;
      return;
    }
    const alerts = silenced.alerts || [];
    status.textContent = alerts.length ? alerts.length + " silenced or inhibited." : "Nothing is silenced or inhibited.";
    fill(table, alerts, (x) => [...labelCells(x.labels || {}), [(x.silenced_by || []).length ? "silenced" : "inhibited"],
                                [(x.silenced_by || []).concat(x.inhibited_by || []).join(", ")],
                                [x.starts_at ? shortTime(x.starts_at) : ""]]);
  }

  // Resolved in the last 24 hours, from the scheduler's alert history in the store (alert_events).
  function renderResolved(resolved) {
    const status = document.getElementById("resolved-status");
    const alerts = resolved.alerts || [];
    if (resolved.available === false) {
      status.textContent = "The alert history could not be read: " + (resolved.error || "unknown error");
    } else {
      status.textContent = alerts.length ? alerts.length + " resolved in the last 24 hours." : "Nothing resolved in the last 24 hours.";
    }
    fill(document.getElementById("resolved-table"), alerts, (x) => [...labelCells(x.labels || {}),
      [x.starts_at ? shortTime(x.starts_at) : ""], [x.ends_at ? shortTime(x.ends_at) : ""]]);
  }

  function renderEscalation(data, tier) {
    document.getElementById("escalation-note").textContent =
      shortTime(data.since) + " to " + shortTime(data.until) + " UTC, " + data.step_minutes + "-minute steps" + (data.router ? ", router " + data.router : ", every router")
      + (data.truncated ? ". The chart is cut at " + num(data.series.length) + " points: pick a router or a shorter range." : "");
    fill(document.getElementById("tiers-table"), data.tiers, (r) => [
      [r.segment], [r.tier],
      [num(r.attempts), "num", "attempts-" + r.segment + "-" + r.tier],
      [num(r.accepted), "num", "accepted-" + r.segment + "-" + r.tier],
      [num(r.escalated), "num", "escalated-" + r.segment + "-" + r.tier],
      [num(r.failed), "num"],
      [pct(r.escalation_rate), "num", "rate-" + r.segment + "-" + r.tier],
    ]);
    document.getElementById("escalation-sql").textContent = data.series_sql + ";\n\n" + data.reasons_sql + ";";
    document.getElementById("tiers-scope").textContent = scopeText(data);
    // The chart's tier (in the URL as tier=): fewer lines to read on a busy router.
    const select = document.getElementById("chart-tier");
    const tiers = [...new Set(data.tiers.map((r) => r.tier))].sort();
    if (tier && !tiers.includes(tier)) tiers.push(tier);
    select.replaceChildren(el("option", "every tier"));
    select.firstChild.value = "";
    for (const name of tiers) {
      const option = el("option", name);
      option.value = name;
      select.appendChild(option);
    }
    select.value = tier;
    drawSeries(document.getElementById("escalation-chart"), data, tier);
    lineChart(document.getElementById("reasons-chart"), data.since, data.until,
              toLines(data.reasons, "minute", (r) => r.escalation_reason || "(none)", (r) => r.escalations), new Map(),
              "escalations by reason over time", "No escalation in this range.", { fmt: num, rate: false });
    drawStatistics(data.statistics, tier);
  }

  // Which rows the tables hold: the figure views split by one dimension (router, else environment).
  function scopeText(data) {
    if (data.tables_by === "environment") return "Tables: environment " + data.environment + ", every router.";
    if (data.router && data.environment) return "Tables: router " + data.router + ", every environment (charts: environment " + data.environment + " only).";
    return data.router ? "Tables: router " + data.router + "." : "Tables: per router.";
  }

  // The escalation-drift CUSUM: its statistic per series against the threshold it pages at.
  function drawStatistics(stats, tier) {
    const box = document.getElementById("statistic-chart");
    const sql = document.getElementById("statistic-sql");
    if (!stats) {
      box.replaceChildren(el("p", "Choose a tier: the chart shows the CUSUM of each of its categories.", "muted"));
      sql.textContent = "";
      return;
    }
    sql.textContent = stats.sql || "";
    const rows = stats.rows.filter((r) => !tier || r.tier === tier);
    const key = (r) => r.router_id + " / " + r.tier + " / " + r.category + (r.signal && r.signal !== "escalation_drift" ? " (" + r.signal + ")" : "");
    // The statistic as a share of its threshold: 100% is where the detector pages, whatever each series' h.
    const lines = toLines(rows, "minute", key, (r) => (r.threshold ? r.statistic / r.threshold : null));
    const last = new Map();
    for (const r of rows) last.set(key(r), r);
    lineChart(box, stats.since, stats.until, lines, new Map([["threshold (pages)", 1]]),
              "CUSUM statistic over its threshold", "The escalation-drift detector judged no series in this range.",
              { fmt: pct, rate: false, refColors: { "threshold (pages)": "#d62728" } });
    const legend = box.querySelector(".legend");
    if (legend) {
      for (const [k, r] of last) {
        legend.appendChild(el("span", k + ": statistic " + Number(r.statistic).toFixed(2) + " of threshold " + Number(r.threshold).toFixed(2), "muted"));
      }
    }
  }

  // One line per router x tier x category: escalation rate per bucket.
  function drawSeries(box, data, tier) {
    const lines = new Map();
    for (const row of data.series) {
      if (row.escalation_rate === null || (tier && row.tier !== tier)) continue;
      const key = (data.router ? "" : row.router_id + " / ") + row.tier + (row.category ? " / " + row.category : "");
      if (!lines.has(key)) lines.set(key, []);
      lines.get(key).push([Date.parse(row.minute), row.escalation_rate]);
    }
    // The frozen baselines (p0 of the escalation-drift detector) of the series drawn: dashed, same colour.
    const baselines = new Map();
    for (const b of data.baselines || []) {
      const key = (data.router ? "" : b.router_id + " / ") + b.tier + " / " + b.category;
      if (lines.has(key)) baselines.set(key, b.p0);
    }
    lineChart(box, data.since, data.until, lines, baselines, "escalation rate over time",
              "No accepted or escalated attempts in this range.");
    if (!tier && lines.size) box.appendChild(el("p", "A line per router and tier: choose a tier for its categories and their frozen baselines.", "muted"));
  }

  // A chart over time: lines (key -> [[ms, value]]) and refs (key -> value, drawn dashed: a baseline
  // in the line's colour, or, with refColors, a target in its own). fmt formats the axis (pct, ms, usd).
  function lineChart(box, since, until, lines, baselines, label, empty, opts) {
    const o = Object.assign({ fmt: pct, rate: true, refColors: null, refLabel: "baseline" }, opts || {});
    box.replaceChildren();
    if (lines.size === 0) {
      box.appendChild(el("p", empty, "muted"));
      return;
    }
    const W = 900, H = lines.size > 4 ? 260 : 180, L = 64, R = 12, T = 10, B = 28;
    const t0 = Date.parse(since), t1 = Date.parse(until);
    let top = 0;
    for (const pts of lines.values()) for (const p of pts) top = Math.max(top, p[1]);
    for (const v of baselines.values()) top = Math.max(top, v);
    top = o.rate ? Math.min(1, Math.max(0.05, Math.ceil(top * 10 + 0.0001) / 10)) : niceTop(top);
    const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const add = (name, attrs, text) => {
      const node = document.createElementNS(NS, name);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      svg.appendChild(node);
      return node;
    };
    add("line", { x1: L, y1: y(0), x2: W - R, y2: y(0), class: "axis" });
    add("line", { x1: L, y1: T, x2: L, y2: y(0), class: "axis" });
    for (const v of [0, top / 2, top]) add("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, o.fmt(v));
    for (const [t, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) {
      add("text", { x: x(t), y: H - 8, "text-anchor": anchor }, new Date(t).toISOString().slice(5, 16).replace("T", " ") + " UTC");
    }
    const legend = el("div", undefined, "legend");
    let i = 0;
    for (const [key, pts] of lines) {
      const color = COLORS[i++ % COLORS.length];
      pts.sort((a, b) => a[0] - b[0]);
      const d = pts.map((p, j) => (j ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
      const path = add("path", { d, fill: "none", stroke: color, "stroke-width": 1.5 });
      path.dataset.series = key;
      path.dataset.points = String(pts.length);
      if (pts.length === 1) add("circle", { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2.5, fill: color });
      const item = el("span", key);
      const swatch = el("i");
      swatch.style.background = color;
      item.prepend(swatch);
      if (!o.refColors && baselines.has(key)) {
        const v = baselines.get(key);
        const line = add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: color, "stroke-width": 1, "stroke-dasharray": "5 4" });
        line.dataset.baseline = key;
        line.appendChild(document.createElementNS(NS, "title")).textContent = key + ": " + o.refLabel + " " + o.fmt(v);
        item.append(" (" + o.refLabel + " " + o.fmt(v) + ", dashed)");
      }
      legend.appendChild(item);
    }
    if (o.refColors) {
      // Targets (SLOs, thresholds) of their own colour, named in the legend.
      for (const [key, v] of baselines) {
        const color = o.refColors[key] || "#555";
        const line = add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: color, "stroke-width": 1, "stroke-dasharray": "2 3" });
        line.dataset.target = key;
        line.appendChild(document.createElementNS(NS, "title")).textContent = key + " " + o.fmt(v);
        const item = el("span", key + " " + o.fmt(v) + " (dotted)");
        const swatch = el("i");
        swatch.style.background = color;
        item.prepend(swatch);
        legend.appendChild(item);
      }
    }
    box.appendChild(svg);
    box.appendChild(legend);
  }

  // A round top for the y axis: 1, 2 or 5 times a power of ten, at or above the largest value.
  function niceTop(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // Rows of a series into lines: key(row) -> [[time, value(row)]], skipping null values.
  function toLines(rows, time, key, value) {
    const lines = new Map();
    for (const row of rows) {
      const v = value(row);
      if (v === null || v === undefined) continue;
      const k = key(row);
      if (!lines.has(k)) lines.set(k, []);
      lines.get(k).push([Date.parse(row[time]), v]);
    }
    return lines;
  }

  function renderLatencyCost(data, tiers) {
    const rows = [];
    for (const r of tiers) {
      rows.push({ segment: r.segment, path: r.tier + " kept", n: r.accepted, lat: r.terminal_latency_ms });
      if (r.escalated) rows.push({ segment: r.segment, path: r.tier + " escalated", n: r.escalated, lat: r.passthrough_latency_ms });
    }
    fill(document.getElementById("latency-table"), rows, (r) => [
      [r.segment], [r.path], [num(r.n), "num"], [ms(q(r.lat, 0)), "num"], [ms(q(r.lat, 1)), "num", "p95-" + r.segment + "-" + r.path],
    ]);
    fill(document.getElementById("request-latency-table"), data.latency, (r) => [
      [r.segment], [r.path_group], [num(r.requests), "num", "requests-" + r.segment + "-" + r.path_group],
      [ms(q(r.latency_ms, 0)), "num"], [ms(q(r.latency_ms, 1)), "num"], [ms(q(r.latency_ms, 2)), "num"],
    ]);
    fill(document.getElementById("cost-table"), data.cost, (r) => [
      [r.segment], [num(r.requests), "num"], [usd(r.actual_cost_usd), "num", "spend-" + r.segment],
      [usd(r.counterfactual_cost_usd), "num"], [pct(r.savings_share), "num"],
    ]);
    fill(document.getElementById("mix-table"), data.mix, (r) => [
      [r.segment], [r.final_tier], [num(r.requests), "num", "mix-" + r.segment + "-" + r.final_tier], [pct(r.share), "num"],
    ]);
    const many = new Set(data.spend_series.map((r) => r.router_id)).size > 1 || !data.router;
    const who = (r) => (many ? r.router_id + " / " : "");
    const p95 = (r) => q(r.latency_ms, 1);
    // Terminal (kept at the tier) and passthrough (escalated from it) p95 per tier.
    lineChart(document.getElementById("tier-latency-chart"), data.since, data.until,
              toLines(data.tier_latency_series, "bucket", (r) => who(r) + r.tier + (r.outcome === "accepted" ? " terminal" : " passthrough"), p95),
              new Map(), "terminal and passthrough p95 latency per tier over time", "No accepted or escalated attempts in this range.",
              { fmt: msAxis, rate: false });
    const slo = new Map();
    if (data.slo && data.slo.kept_p95_ms) slo.set("kept SLO p95", data.slo.kept_p95_ms);
    if (data.slo && data.slo.escalated_p95_ms) slo.set("escalated SLO p95", data.slo.escalated_p95_ms);
    lineChart(document.getElementById("request-latency-chart"), data.since, data.until,
              toLines(data.request_series, "bucket", (r) => who(r) + r.path + " requests", p95), slo,
              "request p95 latency, kept and escalated, against the SLO targets", "No request in this range.",
              { fmt: msAxis, rate: false, refColors: { "kept SLO p95": "#2ca02c", "escalated SLO p95": "#d62728" } });
    const spend = new Map();
    for (const r of data.spend_series) {
      for (const [name, v] of [["spend", r.actual_cost_usd], ["flagship counterfactual", r.counterfactual_cost_usd]]) {
        const k = who(r) + name;
        if (!spend.has(k)) spend.set(k, []);
        spend.get(k).push([Date.parse(r.bucket), v]);
      }
    }
    lineChart(document.getElementById("spend-chart"), data.since, data.until, spend, new Map(),
              "spend against the flagship counterfactual per bucket", "No request in this range.", { fmt: usdAxis, rate: false });
    lineChart(document.getElementById("mix-chart"), data.since, data.until,
              toLines(data.mix_series, "bucket", (r) => who(r) + r.final_tier, (r) => r.share), new Map(),
              "routing mix over time: share of requests by final tier", "No request in this range.");
    document.getElementById("latency-note").textContent = data.step_minutes + "-minute steps. " + scopeText(data);
  }

  function renderCanaries(data) {
    const status = document.getElementById("canaries-status");
    status.textContent = data.canaries.length ? "" : "No canary probes in this range.";
    fill(document.getElementById("canaries-table"), data.canaries, (r) => [
      [r.router_id], [r.side], [r.canary_id], [num(r.probes), "num", "probes-" + r.router_id + "-" + r.side + "-" + r.canary_id],
      [num(r.answered), "num"], [pct(r.pass_rate), "num", "pass-" + r.router_id + "-" + r.side + "-" + r.canary_id],
      [pct(r.tier_flip_rate), "num", "flip-" + r.router_id + "-" + r.side + "-" + r.canary_id],
      [r.last_error || ""], [r.last_error_at || ""],
    ]);
    document.getElementById("canary-history").hidden = !data.canaries.length;
    // History per router and side, from canary_series: pass rate and tier-flip rate per bucket.
    for (const [id, column, label] of [["canary-pass-chart", "pass_rate", "canary pass rate over time"],
                                       ["canary-flip-chart", "tier_flip_rate", "canary tier-flip rate over time"]]) {
      const lines = new Map();
      for (const row of data.series) {
        if (row[column] === null) continue;
        const key = row.router_id + " / " + row.side;
        if (!lines.has(key)) lines.set(key, []);
        lines.get(key).push([Date.parse(row.bucket), row[column]]);
      }
      const box = document.getElementById(id);
      lineChart(box, data.since, data.until, lines, new Map(), label, "No answered probe in this range.");
    }
    // Per canary: which canary fails or flips, with its last error in the legend's tooltip.
    const key = (r) => r.router_id + " / " + r.side + " / " + r.canary_id;
    for (const [id, column, label] of [["canary-each-pass-chart", "pass_rate", "pass rate per canary over time"],
                                       ["canary-each-flip-chart", "tier_flip_rate", "tier-flip rate per canary over time"]]) {
      lineChart(document.getElementById(id), data.since, data.until, toLines(data.history || [], "bucket", key, (r) => r[column]),
                new Map(), label, "No answered probe in this range.");
    }
  }

  async function renderRequest(id) {
    const status = document.getElementById("request-status");
    const table = document.getElementById("request-table");
    const grades = document.getElementById("request-grades");
    document.getElementById("request-id").value = id;
    if (!id) {
      status.textContent = "Search a request id to see every attempt: gate score, outcome, reason, cost, grades (or a canary run id: its probes).";
      document.getElementById("run-table").hidden = true;
      table.hidden = true;
      grades.textContent = "";
      return;
    }
    status.textContent = "looking up " + id;
    const data = await api("request", { id });
    const run = document.getElementById("run-table");
    run.hidden = true;
    if (!data.attempts.length && data.canary_run.length) {
      status.textContent = "Canary run " + id + ": " + data.canary_run.length + " probe(s). A probe's request id shows its attempts.";
      table.hidden = true;
      grades.textContent = "";
      fill(run, data.canary_run, (r) => [
        [r.occurred_at], [r.router_id], [r.canary_id], [r.side], [r.expected_tier], [r.observed_tier || "\u2013"],
        [r.answer_passed === null ? "\u2013" : (r.answer_passed ? "yes" : "no")], [ms(r.latency_ms), "num"], [r.error],
        [r.request_id, "probe-request"],
      ]);
      for (const cell of run.querySelectorAll("td.probe-request")) {
        const link = el("a", cell.textContent);
        link.href = "#";
        link.addEventListener("click", (e) => { e.preventDefault(); writeHash({ ...current(), id: link.textContent }); });
        cell.replaceChildren(link);
      }
      return;
    }
    if (!data.attempts.length) {
      status.textContent = "No request or canary run " + id + " in the store.";
      table.hidden = true;
      grades.textContent = "";
      return;
    }
    const first = data.attempts[0];
    status.textContent = "Request " + id + ": category " + first.category + ", final tier " + first.final_tier + ", "
      + ms(first.request_latency_ms) + " ms, " + data.attempts.length + " attempt(s). Same answer: " + data.cookbook;
    fill(table, data.attempts, (a) => [
      [a.attempt_index, "num"], [a.tier], [a.model], [a.provider], [ms(a.latency_ms), "num"], [a.outcome, "", "outcome-" + a.attempt_index],
      [a.gate_kind], [a.gate_score === null ? "\u2013" : Number(a.gate_score).toFixed(3), "num"],
      [a.gate_threshold === null ? "\u2013" : Number(a.gate_threshold).toFixed(3), "num"],
      [a.escalation_reason], [a.failure_mode], [usd(a.cost_usd), "num"],
    ]);
    const g = first.grades || [];
    grades.textContent = g.length ? "Grades: " + g.map((x) => x[0] + " " + (x[1] ? "passed" : "failed") + (x[2] === null ? "" : " (" + x[2] + ")")).join("; ") : "No grades.";
  }

  function fillChoices(select, names, chosen, all) {
    names = new Set(names);
    if (chosen) names.add(chosen);
    select.replaceChildren(el("option", all));
    select.firstChild.value = "";
    for (const name of [...names].sort()) {
      const option = el("option", name);
      option.value = name;
      select.appendChild(option);
    }
    select.value = chosen;
  }

  async function fillRouters(state, range) {
    const data = await api("routers", range);
    fillChoices(document.getElementById("environment"), data.environments || [], state.env, "all environments");
    fillChoices(document.getElementById("router"), data.routers, state.router, "all routers");
  }

  async function render() {
    const state = readHash();
    document.getElementById("range").value = state.range;
    document.getElementById("refresh").checked = state.refresh;
    const range = { since: state.range };
    const filter = { ...range };
    if (state.router) filter.router = state.router;
    if (state.env) filter.environment = state.env;
    const canaryFilter = state.router ? { ...range, router: state.router } : range; // probes have no environment
    const error = document.getElementById("error");
    document.body.dataset.loading = "1";
    try {
      const [now, esc, lc, can] = await Promise.all([
        api("now", {}), api("escalation", state.tier ? { ...filter, tier: state.tier } : filter), api("latency_cost", filter), api("canaries", canaryFilter), fillRouters(state, range),
      ]);
      renderNow(now);
      renderEscalation(esc, state.tier);
      renderLatencyCost(lc, esc.tiers);
      renderCanaries(can);
      await renderRequest(state.id);
      error.hidden = true;
      document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    } catch (e) {
      error.textContent = String(e.message || e);
      error.hidden = false;
    } finally {
      document.body.dataset.loading = "0";
      document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
    }
    clearTimeout(timer);
    if (state.refresh) timer = setTimeout(render, REFRESH_MS);
  }

  function current() {
    return readHash();
  }

  document.getElementById("range").addEventListener("change", (e) => writeHash({ ...current(), range: e.target.value }));
  document.getElementById("router").addEventListener("change", (e) => writeHash({ ...current(), router: e.target.value }));
  document.getElementById("environment").addEventListener("change", (e) => writeHash({ ...current(), env: e.target.value }));
  document.getElementById("chart-tier").addEventListener("change", (e) => writeHash({ ...current(), tier: e.target.value }));
  document.getElementById("refresh").addEventListener("change", (e) => writeHash({ ...current(), refresh: e.target.checked }));
  document.getElementById("request-form").addEventListener("submit", (e) => {
    e.preventDefault();
    writeHash({ ...current(), id: document.getElementById("request-id").value.trim() });
  });
  // The read-only SQL box: the same /query endpoint `routerwatch sql` uses (sqlguard, readonly, limits).
  const SQL_ROWS_SHOWN = 500;
  document.getElementById("sql-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = document.getElementById("sql-status");
    const table = document.getElementById("sql-table");
    const text = document.getElementById("sql-text").value.trim();
    table.hidden = true;
    if (!text) {
      status.textContent = "Type a query that reads, e.g. SELECT * FROM tier_scoreboard(since = '2026-12-01', until = '2026-12-02', by = 'router')";
      return;
    }
    status.textContent = "running";
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    try {
      const response = await fetch("/query", { method: "POST", headers, body: JSON.stringify({ sql: text }) });
      let body;
      try { body = await response.json(); } catch (err) { body = { error: "HTTP " + response.status }; }
      if (!response.ok) {
        status.textContent = "Refused: " + (body.error || "HTTP " + response.status);
        status.className = "error";
        return;
      }
      status.className = "muted";
      const rows = body.rows || [];
      status.textContent = rows.length + " row(s)" + (rows.length > SQL_ROWS_SHOWN ? ", the first " + SQL_ROWS_SHOWN + " shown" : "") + ".";
      const head = table.querySelector("thead");
      head.replaceChildren();
      const tr = document.createElement("tr");
      for (const c of body.columns || []) tr.appendChild(el("th", c));
      head.appendChild(tr);
      fill(table, rows.slice(0, SQL_ROWS_SHOWN), (row) => row.map((v) => [v === null ? "NULL" : (typeof v === "object" ? JSON.stringify(v) : v)]));
    } catch (err) {
      status.textContent = "Refused: " + String(err.message || err);
      status.className = "error";
    }
  });
  window.addEventListener("hashchange", render);
  render();
})();
