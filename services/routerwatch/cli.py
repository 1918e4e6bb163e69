"""The ``routerwatch`` command.

Subcommands: ``migrate``, ``serve``, ``simulate``, ``wait``, ``dlq``, ``sql``, ``report``,
``cookbook``, ``alerts``, ``baseline``, ``canary``, ``example-router``, ``schemas``, ``config``. Settings come from ``ROUTERWATCH_*`` environment variables (see
:mod:`routerwatch.config`), built once here and passed down. Exit codes: 0 ok,
1 the command ran and found a problem, 2 bad usage or configuration,
3 a dependency (Kafka, ClickHouse) is unavailable.

Every expected failure ends in one line on stderr (``routerwatch: ...``) and its exit code, never a
traceback: :func:`main` maps routerwatch's own errors, Kafka and ClickHouse being unreachable, a file
the user named that cannot be read or written (2, naming the file), a malformed argument (2) and a
package of an extra that is not installed (3: the SDK-only install has no ``pydantic_settings``,
``faust``, ``chdb``...; the line says ``pip install 'routerwatch[service]'``). An exception nobody
expected is a bug: it keeps Python's traceback (and exit 1), so that it can be reported.
``ROUTERWATCH_DEBUG=1`` shows the traceback of the mapped failures too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from routerwatch.errors import (
    ConfigError,
    MissingDependency,
    RetryableError,
    RouterwatchError,
    UsageError,
)
from routerwatch.textsafe import terminal_safe


_loaded: dict[str, Any] = {}


def _settings() -> Any:
    from routerwatch.config import load_settings

    # Kept so that main() can name the Kafka bootstrap in the one line of a connection failure.
    _loaded["settings"] = settings = load_settings()
    return settings


def cmd_migrate(args: argparse.Namespace) -> int:
    from routerwatch.storage import migrations
    from routerwatch.storage.client import Store

    settings = _settings()
    directory = settings.migrations_dir()
    migrations.load(directory)  # none found: a configuration error (exit 2) before the store is opened
    with Store(settings.store_dsn(), settings.database) as store:
        if args.status:
            done = migrations.applied(store)
            for m in migrations.load(directory):
                print(f"{m.version:04d}_{m.name}: {'applied' if m.version in done else 'pending'}")
            return 0
        if args.down_to is not None:
            reverted = migrations.migrate_down(store, directory, args.down_to)
            for m in reverted:
                print(f"reverted {m.version:04d}_{m.name}")
            print(f"{len(reverted)} migration(s) reverted on {store.target.describe()} database {store.database}")
            return 0
        ran = migrations.migrate_up(store, directory, args.to)
        for m in ran:
            print(f"applied {m.version:04d}_{m.name}")
        print(f"{len(ran)} migration(s) applied on {store.target.describe()} database {store.database}; schema is current")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from routerwatch.ingest.service import serve
    from routerwatch.ingest.webguard import serve_guard

    settings = _settings()
    serve_guard(settings.http)  # no token beyond loopback: a ConfigError (exit 2) before anything starts
    serve(settings, settings.migrations_dir())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from routerwatch.ingest.topics import ensure_topics
    from routerwatch.sdk import RouterWatch, SdkConfig
    from routerwatch.simulate import Profile, emit

    settings = _settings()
    profile = Profile.model_validate_json(Path(args.profile).read_text()) if args.profile else Profile()
    overrides: dict[str, Any] = {}
    if args.router_id:
        overrides["router_id"] = args.router_id
    if args.minutes:
        overrides["minutes"] = args.minutes
    if args.escalation:
        tiers = []
        rates = dict(item.split("=", 1) for item in args.escalation)
        for tier in profile.tiers:
            if tier.name in rates:
                rate = float(rates[tier.name])
                tier = tier.model_copy(update={"escalation_rate": {c: rate for c in profile.categories}})
            tiers.append(tier)
        overrides["tiers"] = tiers
    profile = profile.model_copy(update=overrides)
    if args.start and args.end:
        print("routerwatch simulate: give --start or --end, not both", file=sys.stderr)
        return 2
    start = _parse_when(args.start).timestamp() if args.start else None
    end = _parse_when(args.end) if args.end else None
    asyncio.run(ensure_topics(settings))
    from routerwatch.kafka_client import sdk_options

    config = SdkConfig(
        **sdk_options(settings),
        router_id=profile.router_id,
        router_version="sim-1",
        strategy="cascade",
        policy_version="sim-policy-1",
        decisions_topic=settings.topics.decisions,
        feedback_topic=settings.topics.feedback,
        max_queue=max(10_000, args.requests * 3 + args.invalid + args.duplicates),
        close_timeout_s=60,
    )
    rw = RouterWatch(config).start()
    summary = emit(
        rw, profile, args.requests, args.seed, invalid=args.invalid, duplicates=args.duplicates,
        now=end.timestamp() if end else None, start=start,
    )
    stats = rw.close()
    summary["sdk"] = {k: stats.get(k, 0) for k in ("enqueued", "sent", "dropped")}
    print(json.dumps(summary, indent=2))
    if stats.get("dropped"):
        print(f"routerwatch simulate: the SDK dropped {stats['dropped']} event(s); see the log above", file=sys.stderr)
        return 1
    return 0


def _parse_when(text: str) -> Any:
    """An ISO time (UTC when no zone) or a duration back from now: ``90m``, ``2h``."""
    from datetime import datetime, timedelta, timezone

    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (an ISO time such as 2026-01-31T14:05 or 2026-01-31T14:05Z, UTC when no zone, "
            "or a duration back from now: 90m, 6h, 2d)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def cmd_wait(args: argparse.Namespace) -> int:
    from routerwatch.ingest.lag import wait_caught_up

    settings = _settings()
    lag = asyncio.run(wait_caught_up(settings, args.timeout))
    if any(lag.values()):
        print(f"ingest still behind after {args.timeout:.0f}s: {lag}", file=sys.stderr)
        return 1
    print("ingest caught up: every message on the input topics is stored or dead-lettered")
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    from routerwatch.ingest.dlq import count_dead_letters, read_dead_letters
    from routerwatch.kafka_client import settings_kwargs

    settings = _settings()
    security = settings_kwargs(settings.kafka_security)
    if args.count:
        print(asyncio.run(count_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, security)))
        return 0
    records = asyncio.run(read_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, args.limit, security))
    for r in records:
        h = r.headers
        source = f"{h.get('routerwatch.topic', '?')}[{h.get('routerwatch.partition', '?')}]@{h.get('routerwatch.offset', '?')}"
        # Headers carry text from rejected payloads (field names, values): never print it raw.
        fields = (source, r.reason, h.get("routerwatch.detail", ""))
        print("\t".join(terminal_safe(str(f)) for f in fields) + f"\t{len(r.value or b'')} bytes")
    return 0


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and infinite float replaced by ``None`` (JSON ``null``), recursively.

    JSON has no NaN or infinity, and ``json.dumps`` would write the bare tokens ``NaN`` /
    ``Infinity`` that strict parsers (jq, JavaScript's ``JSON.parse``) reject. ClickHouse returns
    them for empty aggregates (``avg`` of no rows) and divisions by zero, so ``routerwatch sql
    --format json`` prints them as ``null``; ``--format tsv`` keeps ClickHouse's ``nan`` / ``inf``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def cmd_sql(args: argparse.Namespace) -> int:
    text = Path(args.query[1:]).read_text() if args.query.startswith("@") else args.query
    return _run_query(args, text)


def _run_query(args: argparse.Namespace, text: str, title: str | None = None) -> int:
    """Bind the window and ``--param`` values (:func:`routerwatch.cookbook.bind`), run ``text``
    read-only and print it: ``--format``, else a table on a terminal and TSV to a pipe or file."""
    from routerwatch import cookbook
    from routerwatch.storage.errors import QueryError
    from routerwatch.storage.reader import Reader

    bound = cookbook.bind(text, args.param, since=args.since, until=args.until, baseline_since=args.baseline_since)
    reader = Reader(_settings())
    try:
        result = reader.query(text, bound.parameters or None)
    except QueryError as exc:
        # A figure view refusing a parameter value (throwIf: by='tier'): the user's to fix.
        refused = cookbook.engine_refusal(str(exc))
        if refused is None:
            raise
        raise UsageError(refused) from None
    finally:
        reader.close()
    fmt = args.format or cookbook.default_format(sys.stdout)
    if fmt == "json":
        print(json.dumps(json_safe(result.as_dicts()), default=str, indent=2, allow_nan=False))
        return 0
    if fmt == "table" and (title or bound.window):
        caption = " ".join(part for part in (title, bound.window and bound.window.describe(bound.with_baseline)) if part)
        print(terminal_safe(caption))
    out = cookbook.render(result.columns, result.rows, fmt, header=args.header)
    if out:
        print(out)
    return 0


def cmd_cookbook(args: argparse.Namespace) -> int:
    from routerwatch import cookbook, tabular

    if args.name in (None, "list"):
        rows = cookbook.listing(cookbook.available())
        columns = ["query", "parameters", "question"]
        fmt = args.format or cookbook.default_format(sys.stdout)
        if fmt == "json":
            print(json.dumps([dict(zip(columns, row)) for row in rows], indent=2))
        elif fmt == "table":
            print(tabular.render_table(columns, rows, max_width=120, count=False))
            print("\nrun one: routerwatch cookbook NAME --since 2026-12-07T10:00 --until 2026-12-07T11:00 "
                  "(or --since 90m: back from --until, default now); --show prints its SQL")
        else:
            print(cookbook.render(columns, rows, fmt, header=args.header))
        return 0
    query = cookbook.find(args.name)
    if args.show:
        print(query.text.rstrip("\n"))
        return 0
    return _run_query(args, query.text, title=query.name)


def _query_options(q: argparse.ArgumentParser) -> None:
    """The options ``sql`` and ``cookbook`` share: parameters, the window, the output format."""
    q.add_argument("--param", action="append", metavar="NAME=VALUE", help="bind a {NAME:Type} placeholder")
    q.add_argument("--since", help="start of the window (binds {since:DateTime}): ISO time in UTC such as "
                   "2026-12-07T10:00, or a duration back from --until: 90m, 6h, 7d (default 1h)")
    q.add_argument("--until", help="end of the window (binds {until:DateTime}): ISO time in UTC, or a duration "
                   "back from now (default now)")
    q.add_argument("--baseline-since", help="start of the baseline [baseline_since, since) of a query comparing "
                   "against one: ISO time, or a duration back from --since (default: as long as the window)")
    q.add_argument("--format", choices=["table", "tsv", "csv", "json"], default=None,
                   help="table (default on a terminal): aligned, rounded, NULL and NaN as '-'; tsv (default "
                   "otherwise): ClickHouse's spelling, \\N for NULL; csv: with a header; json: a list of row "
                   "objects, NaN and infinite floats as null")
    q.add_argument("--header", action="store_true", help="print column names first (tsv)")


def cmd_report(args: argparse.Namespace) -> int:
    from routerwatch.report import scoreboard
    from routerwatch.storage.reader import Reader

    settings = _settings()
    try:
        since, until = scoreboard.parse_range(args.since, args.until)
    except ValueError as exc:
        print(f"routerwatch report: {exc}", file=sys.stderr)
        return 2
    if args.format == "html" and not Path(args.output).absolute().parent.is_dir():
        # Said before the report is computed, not after a long query.
        raise UsageError(f"--output {args.output}: no such directory {Path(args.output).absolute().parent}")
    reader = Reader(settings)
    try:
        report = scoreboard.build(reader, since, until, args.by or "", args.target_error)
    finally:
        reader.close()
    if args.format == "html":
        from routerwatch.report.html import render_html

        Path(args.output).write_text(render_html(report), encoding="utf-8")
        print(f"wrote {args.output}")
    elif args.format == "json":
        print(scoreboard.render_json(report))
    else:
        print(scoreboard.render_text(report))
    return 0


def _serve_call(settings: Any, path: str, method: str = "GET") -> Any:
    """Ask the running `serve` (the process holding the store); None when none answers."""
    import urllib.error
    import urllib.request

    from routerwatch.ingest.webguard import client_headers

    host = settings.http.host if settings.http.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    request = urllib.request.Request(
        f"http://{host}:{settings.http.port}{path}",
        method=method,
        data=b"{}" if method == "POST" else None,
        headers=client_headers(settings.http.token, json_body=method == "POST"),
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ConfigError(
                f"routerwatch serve refused {path} ({exc.code}: {exc.read()[:500]!r}); "
                "set ROUTERWATCH_HTTP__TOKEN to the token serve was started with"
            ) from exc
        raise RetryableError(f"routerwatch serve answered {exc.code} on {path}: {exc.read()[:500]!r}") from exc
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def cmd_alerts(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.at and not args.evaluate:
        print("routerwatch alerts: --at needs --evaluate", file=sys.stderr)
        return 2
    path = "/alerts"
    if args.evaluate:
        import urllib.parse

        path = "/alerts/evaluate" + (f"?{urllib.parse.urlencode({'now': _parse_when(args.at).isoformat()})}" if args.at else "")
    status = _serve_call(settings, path, "POST" if args.evaluate else "GET")
    if status is None:
        # No serve: report the firing set the scheduler left in its state file.
        path = settings.scheduler.state_file
        if not path.exists():
            print("routerwatch serve is not running and has left no alert state; nothing is firing", file=sys.stderr)
            return 0
        try:
            state = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(
                f"the scheduler's state file {path} is not JSON ({exc}); remove it or set ROUTERWATCH_SCHEDULER__STATE_FILE"
            ) from None
        firing = state.get("firing", {})
        print(f"serve is not running; {len(firing)} alert(s) firing at its last run (state {path}):")
        for record in firing.values():
            labels = record.get("labels", {})
            print(terminal_safe(f"  {labels.get('alertname')} {labels}  {record.get('annotations', {}).get('summary', '')}"))
        return 0
    if args.format == "json":
        print(json.dumps(status, indent=2))
        return 0
    print(f"evaluated at {status.get('evaluated_at')}; {status.get('series_evaluated', 0)} series judged")
    if status.get("false_alarm_budget"):
        print(f"false-alarm budget: {status['false_alarm_budget']}")
    if status.get("dry_run"):
        print("dry run (a past minute): what the detectors said then; live pages and baselines are unchanged")
    if not status["firing"]:
        print("nothing is firing")
    for alert in status["firing"]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        print(f"FIRING {alert['alertname']} [{alert['severity']}] {labels}")
        print(f"  {alert['summary']}")
        if alert.get("baseline_window"):
            print(f"  baseline window: {alert['baseline_window']}")
        print(f"  {alert['description']}")
    for key, n in sorted(status.get("silent", {}).items()):
        print(f"silent: {n} series {key.replace(':', ' ')}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from routerwatch.report.scoreboard import text_table
    from routerwatch.scheduler import baselines as store_baselines
    from routerwatch.storage.reader import Reader

    settings = _settings()
    if args.action == "learn":
        import urllib.parse
        from datetime import datetime, timedelta, timezone

        until = (_parse_when(args.until) if args.until else datetime.now(timezone.utc)).replace(second=0, microsecond=0)
        query = urllib.parse.urlencode({"hours": args.hours, "until": until.isoformat()})
        learned = _serve_call(settings, f"/baselines/learn?{query}", "POST")
        if learned is None:
            from routerwatch.scheduler.evaluate import learn_all
            from routerwatch.storage.client import Store

            with Store(settings.store_dsn(), settings.database) as store:
                found = learn_all(store, until - timedelta(hours=args.hours), until, settings.scheduler.baseline_min_trials)
                learned = {signal: store_baselines.save(store, signal, items) for signal, items in found.items()}
        from routerwatch.drift.verdict import window_text

        window = window_text(until - timedelta(hours=args.hours), until)  # the real times, not "the last 24h"
        for signal, n in sorted(learned.items()):
            print(f"learned {n} new {signal} baseline(s) from {window}")
        if not learned:
            print(f"no series had enough history from {window} (min {settings.scheduler.baseline_min_trials} trials)")
        return 0
    reader = Reader(settings)
    try:
        current = store_baselines.load(reader)
    finally:
        reader.close()
    rows = [{"signal": signal, **store_baselines.describe(b)} for (signal, _), b in sorted(current.items())]
    print(text_table(rows) if rows else "no baselines yet: detectors stay silent until one is learned")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from routerwatch.events import schema_export

    directory = Path(args.dir)
    if args.action == "export":
        for path in schema_export.export(directory):
            print(f"wrote {path}")
        return 0
    if not directory.is_dir():
        print(f"routerwatch schemas check: no such directory: {directory} (give --dir)", file=sys.stderr)
        return 2
    stale = schema_export.drift(directory)
    if stale:
        print(f"schemas out of date for {', '.join(stale)}: run `routerwatch schemas export`", file=sys.stderr)
        return 1
    print("schemas match the models")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from routerwatch import configref

    target = args.file
    if args.check:
        if target == "-":
            print("routerwatch: usage error: --check compares a file: give --file PATH, not -", file=sys.stderr)
            return 2
        path = Path(target)
        if not path.is_file():
            print(f"routerwatch: usage error: no such file: {path} (give --file)", file=sys.stderr)
            return 2
        diff = configref.drift(path)
        if diff:
            print("\n".join(diff))
            regenerate = configref.REGENERATE + ("" if target == configref.REFERENCE_FILE else f" --file {target}")
            print(f"routerwatch: {path} is out of date with the settings models (diff above): run `{regenerate}`",
                  file=sys.stderr)
            return 1
        print(f"{path} matches the settings models")
        return 0
    text = configref.render()
    if target == "-":
        sys.stdout.write(text)
        return 0
    Path(target).write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def cmd_canary(args: argparse.Namespace) -> int:
    from routerwatch.canary.prober import load_targets

    settings = _settings()
    files = [Path(f) for f in args.file] or list(settings.canary.files)
    if not files:
        raise ConfigError("no canary set: pass --file or set ROUTERWATCH_CANARY__FILES")
    if args.action == "check":
        targets = load_targets(files, args.router_url or settings.canary.router_url)
        for path in files:
            print(f"{path}: ok")
        print(f"{len(targets)} canaries in {len(files)} file(s)")
        return 0
    return asyncio.run(_canary_run(settings, files, args))


async def _canary_run(settings: Any, files: list[Path], args: argparse.Namespace) -> int:
    from routerwatch.canary.prober import CanaryProber, result_kind

    canary = settings.canary.model_copy(update={"files": files, "router_url": args.router_url or settings.canary.router_url})
    settings = settings.model_copy(update={"canary": canary})
    emit = None if args.emit else (lambda result: None)
    prober = CanaryProber(settings, None, emit=emit, use_lease=False)
    await prober.start(schedule=False)
    sdk = prober._sdk  # kept past stop(): its final counts say whether --emit delivered the results
    try:
        results = await prober.run_all_once()
    finally:
        await prober.stop()
    dropped = sdk.stats().get("dropped", 0) if sdk is not None else 0
    bad = 0
    for r in results:
        kind = result_kind(r)
        bad += kind != "passed"
        what = r.get("error") or r.get("check_detail") or ""
        print(f"{r['router_id']}/{r['canary_id']}\t{kind}\texpected {r['expected_tier']}\tobserved "
              f"{r.get('observed_tier') or '-'} ({r.get('tier_source') or '-'})\t{r.get('latency_ms') or 0:.0f} ms\t{what}")
    print(f"{len(results) - bad} of {len(results)} canaries passed" + ("; results sent to Kafka" if args.emit and not dropped else ""))
    if dropped:
        raise RetryableError(
            f"{dropped} canary result(s) not sent: Kafka at {settings.kafka_bootstrap} did not take them "
            "(start it or set ROUTERWATCH_KAFKA_BOOTSTRAP)"
        )
    return 1 if bad else 0


def cmd_prices(args: argparse.Namespace) -> int:
    """``prices import --from litellm``: write a versioned table priced from LiteLLM's cost map;
    ``prices lookup``: what the configured table says about one model. Exit codes as for every
    command; import: 3 when LiteLLM is not installed, 1 when the result is not a usable table."""
    from routerwatch.prices import default_prices_file, read_table
    from routerwatch.prices import litellm as source
    from routerwatch.prices.table import validate_table

    settings = _settings()
    if args.action == "lookup":
        if not args.model:
            print("routerwatch prices lookup: give a model (and --provider)", file=sys.stderr)
            return 2
        table = settings.price_table()
        found = table.resolve(args.model, args.provider or "")
        flagship = found.tier_rank == table.top_tier_rank and found.priced
        print(terminal_safe(json.dumps({
            "model": args.model, "provider": args.provider or "", "version": table.version, "priced": found.priced,
            "key": found.key or None, "tier_rank": found.tier_rank, "flagship_deployment": flagship,
            "input_usd_per_mtok": found.input_usd_per_mtok, "output_usd_per_mtok": found.output_usd_per_mtok,
        })))
        return 0 if found.priced else 1
    if args.source is None:
        print("routerwatch prices import: say where prices come from: --from litellm", file=sys.stderr)
        return 2
    table_path = Path(args.table) if args.table else settings.prices_file or default_prices_file()
    data = read_table(table_path)  # ConfigError (exit 2) names the file
    try:
        cost_map, label = source.read_cost_map(Path(args.map) if args.map else None)
    except source.SourceUnavailable as exc:
        print(f"routerwatch prices import: unavailable: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"routerwatch prices import: cannot read --map {args.map}: {exc.strerror}", file=sys.stderr)
        return 2
    except source.BadCostMap as exc:
        print(f"routerwatch prices import: {exc}", file=sys.stderr)
        return 1
    merged = source.import_table(data, cost_map, label, version=args.version, listed_only=args.listed_only)
    try:
        table = validate_table(merged, f"{table_path} priced from {label}")
    except ConfigError as exc:
        print(f"routerwatch prices import: {exc}", file=sys.stderr)
        return 1
    text = source.render_toml(merged, source.generated_header(label, str(table_path)))
    output = args.output or str(table_path.with_name(f"{table_path.stem}.litellm.toml"))
    if output == "-":
        sys.stdout.write(text)
    else:
        target = Path(output)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(text)
        partial.replace(target)  # readers never see half a table
    # Entries that name a deployment (provider/model, provider = or price_as) the map does not price.
    listed = sorted(k for k, e in table.models.items() if (e.provider or "/" in k or e.price_as) and not table.entry_priced(k))
    flagship = ", ".join(f"{k} {p[0]:g}/{p[1]:g}" for k, p in table.flagship_deployments.items())
    print(f"{'stdout' if output == '-' else output}: version {table.version}, {len(table.prices)} imported prices; "
          f"flagship tier {table.top_tier_rank} (USD per million input/output tokens): {flagship}",
          file=sys.stderr if output == "-" else sys.stdout)
    for key in listed:
        print(f"routerwatch prices import: warning: [models] {key!r} has no price in LiteLLM's map or the table: "
              "its attempts will be counted as unpriced", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="routerwatch", description="Telemetry and drift alerting for LLM routers.")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("migrate", help="apply (or revert) ClickHouse migrations")
    m.add_argument("--to", type=int, help="apply up to this version only")
    m.add_argument("--down-to", type=int, help="revert every applied migration above this version")
    m.add_argument("--status", action="store_true", help="list migrations and whether they are applied")
    m.set_defaults(func=cmd_migrate)

    s = sub.add_parser("serve", help="run the ingest service until SIGTERM")
    s.set_defaults(func=cmd_serve)

    sim = sub.add_parser("simulate", help="emit synthetic cascade traffic through the SDK")
    sim.add_argument("--requests", type=int, default=1000)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--invalid", type=int, default=0, help="also send this many contract-breaking messages")
    sim.add_argument("--duplicates", type=int, default=0, help="also re-send this many already-sent decisions")
    sim.add_argument("--profile", help="JSON file with a simulate.Profile (tiers, rates, prices)")
    sim.add_argument("--router-id", help="override the profile's router id")
    sim.add_argument("--minutes", type=float, help="spread the requests over this many minutes before --end")
    sim.add_argument("--end", help="time of the last request: ISO (UTC) or a duration back from now (default now)")
    sim.add_argument("--start", help="start of the simulated timeline, ISO (UTC): the same seed and --start send "
                     "the same events at any later time, so a replay stores nothing twice (the summary prints it)")
    sim.add_argument("--escalation", action="append", metavar="TIER=RATE",
                     help="set a tier's escalation rate in every category (an injected incident)")
    sim.set_defaults(func=cmd_simulate)

    w = sub.add_parser("wait", help="wait until ingest has consumed everything on its topics")
    w.add_argument("--timeout", type=float, default=120.0)
    w.set_defaults(func=cmd_wait)

    d = sub.add_parser("dlq", help="list dead-lettered messages with their reasons")
    d.add_argument("--count", action="store_true", help="print only how many messages the DLQ holds")
    d.add_argument("--limit", type=int, default=None)
    d.set_defaults(func=cmd_dlq)

    q = sub.add_parser("sql", help="run read-only SQL against the configured ClickHouse")
    q.add_argument("query", help="SQL text, or @FILE to read it from a file (e.g. @sql/queries/what_did_this_request_do.sql)")
    _query_options(q)
    q.set_defaults(func=cmd_sql)

    cb = sub.add_parser("cookbook", help="list the on-call cookbook's queries, or run one over a window")
    cb.add_argument("name", nargs="?", help="the query to run (e.g. why_did_escalations_jump); none or 'list': list them")
    cb.add_argument("--show", action="store_true", help="print the query's SQL instead of running it")
    _query_options(cb)
    cb.set_defaults(func=cmd_cookbook)

    r = sub.add_parser("report", help="per-tier scoreboard for a time range")
    r.add_argument("--since", help="ISO time (UTC) or a duration back from --until: 90m, 6h, 7d (default 24h)")
    r.add_argument("--until", help="ISO time (UTC); default now")
    r.add_argument("--by", choices=["category", "variant", "router", "environment", "tenant"], help="split every figure")
    r.add_argument("--format", choices=["text", "json", "html"], default="text")
    r.add_argument("--target-error", type=float, default=0.1, help="error rate the gate-threshold section solves for")
    r.add_argument("--output", default="routerwatch-report.html", help="file for --format html")
    r.set_defaults(func=cmd_report)

    al = sub.add_parser("alerts", help="what the drift scheduler has firing, and why")
    al.add_argument("--evaluate", action="store_true", help="run the detectors now instead of showing the last run")
    al.add_argument("--at", help="with --evaluate: judge as of this past minute (ISO or 90m), a replay")
    al.add_argument("--format", choices=["text", "json"], default="text")
    al.set_defaults(func=cmd_alerts)

    bl = sub.add_parser("baseline", help="review or re-learn the detectors' frozen baselines")
    bl.add_argument("action", choices=["show", "learn"])
    bl.add_argument("--hours", type=float, default=24.0, help="history window to learn from (learn)")
    bl.add_argument("--until", help="end of that window: ISO or a duration back from now (default now)")
    bl.set_defaults(func=cmd_baseline)

    ca = sub.add_parser("canary", help="validate canary sets, or probe the router with them once")
    ca.add_argument("action", choices=["check", "run"])
    ca.add_argument("--file", action="append", default=[], help="canary set YAML (default ROUTERWATCH_CANARY__FILES)")
    ca.add_argument("--router-url", help="chat completions URL (default: the set's endpoint)")
    ca.add_argument("--emit", action="store_true", help="run: also send the CanaryResults to Kafka")
    ca.set_defaults(func=cmd_canary)

    pr = sub.add_parser("prices", help="import prices from LiteLLM's model cost map, or look a model up")
    pr.add_argument("action", choices=["import", "lookup"])
    pr.add_argument("model", nargs="?", help="lookup: the attempt's model (e.g. gpt-4o or openai/gpt-4o)")
    pr.add_argument("--provider", help="lookup: the attempt's provider (e.g. openai, azure, aws.bedrock)")
    pr.add_argument("--from", dest="source", choices=["litellm"], default=None,
                    help="import: where prices come from (litellm: the installed LiteLLM's bundled cost map)")
    pr.add_argument("--table", help="import: the table with tiers and flagship (default ROUTERWATCH_PRICES_FILE)")
    pr.add_argument("--map", help="import: a LiteLLM model cost map JSON file instead of the installed one")
    pr.add_argument("--output", help="import: where to write (default <table>.litellm.toml next to it; - for stdout)")
    pr.add_argument("--version", help="import: the new table's version (default <table version>+litellm-<version>)")
    pr.add_argument("--listed-only", action="store_true",
                    help="import: keep only the prices the table's [models] entries use (default: every text model)")
    pr.set_defaults(func=cmd_prices)

    from routerwatch.examplerouter.cli import register as register_example_router

    register_example_router(sub)

    sc = sub.add_parser("schemas", help="export or check the events' JSON Schema files")
    sc.add_argument("action", choices=["export", "check"])
    sc.add_argument("--dir", default="schemas")
    sc.set_defaults(func=cmd_schemas)

    cf = sub.add_parser("config", help="write or check the configuration reference (docs/configuration.md)")
    cf.add_argument("action", choices=["reference"])
    cf.add_argument("--check", action="store_true",
                    help="exit 1, printing the difference, when the file differs from the settings models")
    cf.add_argument("--file", default="docs/configuration.md", help="the reference (default docs/configuration.md; - for stdout)")
    cf.set_defaults(func=cmd_config)
    return p


# Top-level module of each optional dependency -> the routerwatch extra that installs it. The
# SDK-only install (aiokafka, pydantic, orjson) has none of them; a unit test checks that every
# distribution of the service and litellm extras is listed here.
EXTRA_OF_MODULE = {
    "pydantic_settings": "service",
    "faust": "service",
    "mode": "service",  # faust-streaming's own runtime
    "clickhouse_connect": "service",
    "chdb": "service",
    "apscheduler": "service",
    "prometheus_client": "service",
    "yaml": "service",
    "jsonschema": "service",
    "aiohttp": "service",
    "opentelemetry": "service",
    "google": "service",  # protobuf
    "litellm": "litellm",
}

# aiokafka's errors that mean "the broker cannot be reached or did not answer in time" (exit 3)
# and "the broker refused us" (exit 2: a setting or an ACL to fix, retrying cannot help).
_KAFKA_UNREACHABLE = (
    "KafkaConnectionError", "KafkaTimeoutError", "NoBrokersAvailable", "NodeNotReadyError",
    "RequestTimedOutError", "BrokerNotAvailableError", "LeaderNotAvailableError",
    "CoordinatorNotAvailableError", "GroupCoordinatorNotAvailableError", "ConnectionError",
)
_KAFKA_REFUSED = (
    "SaslAuthenticationFailed", "AuthenticationFailedError", "AuthenticationMethodNotSupported",
    "UnsupportedSaslMechanismError", "TopicAuthorizationFailedError", "GroupAuthorizationFailedError",
    "ClusterAuthorizationFailedError",
)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def _kafka_bootstrap() -> str:
    settings = _loaded.get("settings")
    return settings.kafka_bootstrap if settings is not None else "the configured bootstrap servers"


def failure(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and the one stderr line for an expected failure; ``None`` for a bug (keep its traceback).

    Called by :func:`main` on any exception a subcommand raises. Expected: routerwatch's own errors
    (by class: usage and configuration 2, unavailable 3, a problem found 1), Kafka or ClickHouse
    unreachable (3), a file that cannot be read or written (2, naming it), a malformed input file
    (2), and a missing package of an extra (3, with the pip command).
    """
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] in EXTRA_OF_MODULE:
        exc = MissingDependency(exc.name, EXTRA_OF_MODULE[exc.name.split(".")[0]])
    if isinstance(exc, MissingDependency):
        return 3, f"routerwatch: {exc}"
    if isinstance(exc, (UsageError, ConfigError)):
        kind = "usage error" if isinstance(exc, UsageError) else "configuration error"
        return 2, f"routerwatch: {kind}: {_one_line(exc)}"
    if isinstance(exc, RetryableError):
        return 3, f"routerwatch: unavailable: {_one_line(exc)}"
    if isinstance(exc, RouterwatchError):
        return 1, f"routerwatch: {_one_line(exc)}"
    kafka_errors = sys.modules.get("aiokafka.errors")
    if kafka_errors is not None and isinstance(exc, getattr(kafka_errors, "KafkaError", ())):
        name = type(exc).__name__
        if any(isinstance(exc, getattr(kafka_errors, n, ())) for n in _KAFKA_REFUSED):
            return 2, f"routerwatch: configuration error: Kafka at {_kafka_bootstrap()} refused: {_one_line(exc)}"
        if any(isinstance(exc, getattr(kafka_errors, n, ())) for n in _KAFKA_UNREACHABLE) or exc.retriable:
            return 3, (f"routerwatch: unavailable: Kafka at {_kafka_bootstrap()} cannot be reached ({name}); "
                       "start it (deploy/kafka/start.sh) or set ROUTERWATCH_KAFKA_BOOTSTRAP")
        return 1, f"routerwatch: Kafka error: {name}: {_one_line(exc)}"
    ch_errors = sys.modules.get("clickhouse_connect.driver.exceptions")
    if ch_errors is not None and isinstance(exc, getattr(ch_errors, "OperationalError", ())):
        return 3, f"routerwatch: unavailable: ClickHouse: {_one_line(exc)}"
    if isinstance(exc, (ConnectionError, TimeoutError)):  # sockets, asyncio timeouts
        return 3, f"routerwatch: unavailable: {type(exc).__name__}: {_one_line(exc)}"
    if isinstance(exc, OSError) and exc.filename is not None:
        # A path the user gave (@FILE, --profile, --output, a settings file): fix the argument.
        target = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return 2, f"routerwatch: {target}: {exc.strerror or _one_line(exc)}"
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors(include_url=False)[:5]
        )
        return 2, f"routerwatch: invalid {exc.title}: {problems}"
    return None


def _not_kafka_unreachable(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("aiokafka") and str(record.msg).startswith("Unable connect to"))


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every expected failure becomes its exit code and one line (see :func:`failure`)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The Kafka client's INFO lines (subscriptions, coordinators) drown the command's own output.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    if args.command not in ("serve", "example-router"):
        # A one-shot command says why ClickHouse failed in its own line; the driver's warning
        # ("Unexpected Http Driver Exception") would only come first and say less.
        logging.getLogger("clickhouse_connect").setLevel(logging.ERROR)
        # urllib3 retries the same refused connection once (and clickhouse_connect resets "urllib3" on import).
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    if args.command in ("wait", "dlq"):
        # One attempt: the client's "Unable connect to" says what the command's own line says.
        # (simulate keeps them: it retries for 30 s and they show that it is waiting.)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_kafka_unreachable)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("routerwatch: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # sorted by failure(); a bug is re-raised with its traceback
        found = failure(exc)
        if found is None or os.environ.get("ROUTERWATCH_DEBUG", "") not in ("", "0"):
            raise
        code, line = found
        print(terminal_safe(line), file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
