"""The Grafana dashboards of deploy/grafana have the structure Grafana's dashboard model expects.

No Grafana runs here (docs/grafana.md says so): each dashboard JSON is checked against what
Grafana needs to load and lay it out (title, unique uid, schemaVersion, panels with unique ids,
known types and a gridPos inside the 24 columns that overlaps no other), every target names a
provisioned data source by uid and type, the ClickHouse targets have the plugin's SQL-editor
shape, every variable a query uses is defined, and the provisioning and docker-compose.yml agree
on the paths. tests/integration/test_grafana_dashboards.py runs every query.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from grafanakit import (
    BUILTIN_VARIABLES,
    CLICKHOUSE,
    DASHBOARDS,
    DATASOURCES,
    GRAFANA,
    PROMETHEUS,
    PROVIDERS,
    REPO,
    load,
    panels,
    queries,
    referenced_variables,
)

PANEL_TYPES = {"row", "timeseries", "table", "stat", "gauge", "bargauge", "barchart", "piechart", "text",
               "state-timeline", "status-history", "heatmap", "histogram", "logs"}
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
NAMES = [p.name for p in DASHBOARDS]


def datasources() -> dict[str, str]:
    """uid -> type of the provisioned data sources."""
    return {d["uid"]: d["type"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def test_there_are_the_three_dashboards() -> None:
    assert set(NAMES) == {"routerwatch-overview.json", "routerwatch-request.json", "routerwatch-pipeline.json"}


def test_dashboard_uids_and_titles_are_unique() -> None:
    boards = [load(p) for p in DASHBOARDS]
    uids = [b["uid"] for b in boards]
    assert len(set(uids)) == len(uids)
    assert all(0 < len(u) <= 40 for u in uids), "Grafana's uid is at most 40 characters"
    titles = [b["title"] for b in boards]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_model(name: str) -> None:
    board = load(GRAFANA / "dashboards" / name)
    assert "id" not in board or board["id"] is None, "a provisioned dashboard has no fixed numeric id"
    assert isinstance(board["title"], str) and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert set(board["time"]) == {"from", "to"}
    assert isinstance(board["templating"]["list"], list)
    assert isinstance(board["panels"], list) and board["panels"]


@pytest.mark.parametrize("name", NAMES)
def test_panels_ids_types_and_grid(name: str) -> None:
    board = load(GRAFANA / "dashboards" / name)
    ids = [p["id"] for p in panels(board)]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids), f"panel ids not unique: {ids}"
    cells: dict[tuple[int, int], str] = {}
    for p in panels(board):
        assert p["type"] in PANEL_TYPES, f"{p['title']}: unknown panel type {p['type']}"
        assert p["title"]
        g = p["gridPos"]
        assert set(g) >= {"x", "y", "w", "h"} and all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] >= 1 and g["h"] >= 1, p["title"]
        assert g["x"] + g["w"] <= 24, f"{p['title']}: beyond the 24 columns"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]} at x={x} y={y}"
                cells[(x, y)] = p["title"]


@pytest.mark.parametrize("name", NAMES)
def test_targets_name_provisioned_data_sources(name: str) -> None:
    board = load(GRAFANA / "dashboards" / name)
    provisioned = datasources()
    for p in panels(board):
        if p["type"] in ("row", "text"):
            continue
        ds = p["datasource"]
        assert provisioned.get(ds["uid"]) == ds["type"], f"{p['title']}: data source {ds} is not provisioned"
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs), f"{p['title']}: refIds {refs}"
        for t in p["targets"]:
            tds = t["datasource"]
            assert provisioned.get(tds["uid"]) == tds["type"], f"{p['title']}/{t['refId']}: {tds}"
            if tds["type"] == CLICKHOUSE:
                assert t["editorType"] == "sql" and t["rawSql"].strip(), f"{p['title']}/{t['refId']}"
                # The plugin's formats: 0 time series, 1 table; queryType says the same.
                want = (0, "timeseries") if p["type"] == "timeseries" else (1, "table")
                assert (t["format"], t["queryType"]) == want, f"{p['title']}/{t['refId']}"
            else:
                assert tds["type"] == PROMETHEUS and t["expr"].strip(), f"{p['title']}/{t['refId']}"


@pytest.mark.parametrize("name", NAMES)
def test_every_variable_a_query_uses_is_defined(name: str) -> None:
    board = load(GRAFANA / "dashboards" / name)
    variables = board["templating"]["list"]
    defined = [v["name"] for v in variables]
    assert len(set(defined)) == len(defined)
    provisioned = datasources()
    texts = [(f"{title}/{ref}", t.get("rawSql") or t.get("expr"))
             for kind in (CLICKHOUSE, PROMETHEUS) for title, ref, t in queries(board, kind)]
    for v in variables:
        if v["type"] == "query":
            assert provisioned.get(v["datasource"]["uid"]) == v["datasource"]["type"], v["name"]
            texts.append((f"variable {v['name']}", v["query"]))
    for where, text in texts:
        missing = referenced_variables(text) - set(defined) - BUILTIN_VARIABLES
        assert not missing, f"{name} {where} uses undefined variables {missing}"


def test_the_overview_has_router_and_environment_variables() -> None:
    board = load(GRAFANA / "dashboards" / "routerwatch-overview.json")
    by_name = {v["name"]: v for v in board["templating"]["list"]}
    assert by_name["router"]["type"] == "query" and not by_name["router"]["includeAll"]
    assert by_name["environment"]["includeAll"] and by_name["environment"]["allValue"] == "__all"


def _overview_panels() -> dict[str, dict]:
    return {p["title"]: p for p in panels(load(GRAFANA / "dashboards" / "routerwatch-overview.json"))}


# The console's charts over time (console/routes.py: escalation(), latency_cost(), canaries()) and
# the series view each panel reads, as the console does.
CONSOLE_CHARTS = {
    "Escalation rate per tier x category": "attempt_series",
    "Escalations by reason": "attempt_series",
    "Terminal and passthrough attempt p95 per tier": "attempt_latency_series",
    "Request p95, kept and escalated, against the SLO targets": "request_series",
    "Spend against the flagship counterfactual": "request_series",
    "Routing mix over time: share of requests by final tier": "request_series",
    "Routing mix: requests by final tier": "request_series",
    "Canary pass rate per canary": "canary_history",
    "Canary tier-flip rate per canary": "canary_history",
}


def test_the_overview_has_the_consoles_charts_at_the_panels_interval() -> None:
    by_title = _overview_panels()
    for title, view in CONSOLE_CHARTS.items():
        p = by_title[title]
        assert p["type"] == "timeseries" and p["datasource"]["type"] == CLICKHOUSE, title
        (target,) = p["targets"]
        sql = target["rawSql"]
        assert f"FROM {view}(since = formatDateTime($__fromTime, '%F %T', 'UTC'), until = formatDateTime($__toTime, " \
               f"'%F %T', 'UTC'), step_minutes = greatest(intDiv($__interval_s, 60), 1))" in sql, title
        assert "router_id = ${router:sqlstring}" in sql, title
        environment = "(${environment:sqlstring} = '__all' OR environment = ${environment:sqlstring})"
        # canary_history has no environment column (probes have none); the others do.
        assert (environment in sql) == (view != "canary_history"), title


def test_the_request_p95_panel_draws_the_slo_settings_as_thresholds() -> None:
    from routerwatch.config import SchedulerSettings

    board = load(GRAFANA / "dashboards" / "routerwatch-overview.json")
    constants = {v["name"]: float(v["query"]) for v in board["templating"]["list"] if v["type"] == "constant"}
    defaults = SchedulerSettings()
    assert constants == {"kept_slo_ms": defaults.kept_p95_ms, "escalated_slo_ms": defaults.escalated_p95_ms}
    p = _overview_panels()["Request p95, kept and escalated, against the SLO targets"]
    field = p["fieldConfig"]["defaults"]
    steps = field["thresholds"]["steps"]
    assert field["thresholds"]["mode"] == "absolute" and steps[0]["value"] is None
    assert [s["value"] for s in steps[1:]] == [defaults.kept_p95_ms, defaults.escalated_p95_ms]
    assert field["custom"]["thresholdsStyle"]["mode"] in ("line", "dashed", "line+area", "dashed+area")
    assert field["unit"] == "ms"
    for name in ("ROUTERWATCH_SCHEDULER__KEPT_P95_MS", "ROUTERWATCH_SCHEDULER__ESCALATED_P95_MS", "5000 ms", "13000 ms"):
        assert name in p["description"], name


def test_the_cusum_panels_read_the_detector_metrics() -> None:
    from routerwatch import metrics

    statistic, threshold = metrics.DETECTOR_STATISTIC._name, metrics.DETECTOR_THRESHOLD._name
    by_title = _overview_panels()
    ratio = by_title["Escalation-drift CUSUM statistic over its threshold"]
    raw = by_title["Escalation-drift CUSUM statistic and threshold"]
    for p in (ratio, raw):
        assert p["type"] == "timeseries" and p["datasource"]["type"] == PROMETHEUS
        for t in p["targets"]:
            assert 'signal="escalation_drift", router="$router"' in t["expr"], t["expr"]
    (a,) = ratio["targets"]
    assert a["expr"].index(statistic) < a["expr"].index("/") < a["expr"].index(threshold)
    steps = ratio["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 1] and ratio["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert [(t["refId"], statistic in t["expr"], threshold in t["expr"]) for t in raw["targets"]] == [
        ("A", True, False), ("B", False, True)]


def test_the_trace_panel_is_the_cookbook_query() -> None:
    """One definition: the request dashboard runs sql/queries/what_did_this_request_do.sql."""
    board = load(GRAFANA / "dashboards" / "routerwatch-request.json")
    (trace,) = [t for title, _, t in queries(board, CLICKHOUSE) if title.startswith("Decision trace")]
    cookbook = (REPO / "sql" / "queries" / "what_did_this_request_do.sql").read_text()
    body = "\n".join(line for line in cookbook.splitlines() if not line.startswith("--")).strip()
    assert trace["rawSql"] == body.replace("{request_id:String}", "${request_id:sqlstring}")


def test_provisioning_parses_and_names_the_compose_services() -> None:
    ds = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    assert ds["routerwatch-clickhouse"]["type"] == CLICKHOUSE
    assert ds["routerwatch-clickhouse"]["jsonData"]["host"] in COMPOSE["services"]
    assert ds["routerwatch-clickhouse"]["jsonData"]["port"] == 8123
    assert ds["routerwatch-prometheus"]["type"] == PROMETHEUS
    assert ds["routerwatch-prometheus"]["url"].split("//")[1].split(":")[0] in COMPOSE["services"]
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"


def test_compose_mounts_the_provisioning_and_the_dashboards() -> None:
    grafana = COMPOSE["services"]["grafana"]
    image, _, tag = grafana["image"].partition(":")
    assert image == "grafana/grafana" and tag and tag != "latest", "pin the Grafana image"
    plugin, _, version = grafana["environment"]["GF_INSTALL_PLUGINS"].partition(" ")
    assert plugin == CLICKHOUSE and version.count(".") == 2, "pin the plugin's version"
    mounts = {}
    for volume in grafana["volumes"]:
        host, _, target = volume.partition(":")
        if host.startswith("./"):
            assert (REPO / host).is_dir(), f"{host} does not exist"
            mounts[target.removesuffix(":ro")] = (REPO / host).resolve()
    assert mounts["/etc/grafana/provisioning/datasources"] == DATASOURCES.parent.resolve()
    assert mounts["/etc/grafana/provisioning/dashboards"] == PROVIDERS.parent.resolve()
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert mounts[provider["options"]["path"]] == (GRAFANA / "dashboards").resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (GRAFANA / "dashboards" / home.rsplit("/", 1)[1]).is_file()
    assert "grafana-data" in COMPOSE["volumes"]
