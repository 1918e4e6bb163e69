"""Every subcommand keeps the exit-code contract when something it needs is missing.

The contract (README, ``routerwatch.cli``): 0 ok, 1 a problem found, 2 bad usage or configuration,
3 a dependency unavailable; an expected failure is one ``routerwatch...`` line on stderr, never a
traceback. Each subcommand runs as a subprocess in four situations:

- ``kafka_down``: the Kafka bootstrap is a closed port on 127.0.0.1 (the store, where one is needed, a fresh chDB path);
- ``clickhouse_down``: the ClickHouse URL is ``http://127.0.0.1:<closed port>``;
- ``missing_file``: the file (or folder) the command reads does not exist;
- ``sdk_only``: the SDK-only install (base dependencies only), simulated by a meta-path finder that
  refuses to import the service extra's packages (pydantic_settings, faust, chdb, ...).

The subcommands are listed from the argparse parser itself (with the choices of an ``action``
positional, e.g. ``baseline show`` / ``baseline learn``), and every scenario must say what each of
them does, or why it does not apply: a new subcommand fails here until it has its cases.
Nothing here needs a running broker or store; the runs go in parallel (``serve`` and ``simulate``
wait ~30 s for an absent broker before giving up, which bounds the file's runtime).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from routerwatch.cli import parser

REPO = Path(__file__).resolve().parents[2]
CANARY_SET = REPO / "deploy" / "canaries" / "example.yml"
PIP_HINT = "pip install 'routerwatch[service]'"

# Run as `python -c SDK_ONLY args...`: the CLI with the service extra's packages not importable.
SDK_ONLY = """
import runpy, sys
BLOCKED = {"pydantic_settings", "faust", "mode", "chdb", "clickhouse_connect", "apscheduler",
           "prometheus_client", "yaml", "jsonschema", "aiohttp", "opentelemetry", "google", "litellm"}
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
sys.argv = ["routerwatch", *sys.argv[1:]]
runpy.run_module("routerwatch.cli", run_name="__main__", alter_sys=True)
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = _closed_port()
KAFKA_DOWN_LINE = f"Kafka at 127.0.0.1:{CLOSED}"


@dataclass(frozen=True)
class Case:
    """One run: ``argv`` after ``routerwatch``, extra ``env``, the exit code and a piece of stderr's message.

    ``{tmp}`` in argv or env values is the run's own (empty) working directory. ``chdb``: the store
    is a fresh embedded path in it instead of the scenario's ClickHouse URL.
    """

    argv: tuple[str, ...]
    code: int
    says: str = ""
    env: dict[str, str] = field(default_factory=dict)
    chdb: bool = False
    setup: tuple[str, ...] = ()  # a routerwatch command run first, in the same place (it must succeed)
    logs: bool = False  # other lines may come before it (the Kafka client logs each refused connection)


@dataclass(frozen=True)
class NotApplicable:
    why: str


def command_paths(p: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every subcommand of ``p`` (recursively), with one path per choice of an ``action`` positional."""
    paths: set[tuple[str, ...]] = set()
    for action in p._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            path = (*prefix, name)
            choices = [a for a in sub._actions if not a.option_strings and a.choices
                       and not isinstance(a, argparse._SubParsersAction)]
            if choices:
                paths |= {(*path, str(c)) for c in choices[0].choices}
            else:
                paths.add(path)
            paths |= command_paths(sub, path)
    return paths


SSL_CA_MISSING = {"ROUTERWATCH_KAFKA_SECURITY__PROTOCOL": "SSL", "ROUTERWATCH_KAFKA_SECURITY__CA_FILE": "{tmp}/missing-ca.pem"}
NO_CLICKHOUSE = NotApplicable("does not use ClickHouse")
NO_KAFKA = NotApplicable("does not use Kafka")
NO_FILE = NotApplicable("reads no file")

SCENARIOS: dict[str, dict[tuple[str, ...], Case | NotApplicable]] = {
    "kafka_down": {
        ("migrate",): NO_KAFKA,
        # On a migrated store, serve waits ~30 s for Kafka, then gives up.
        ("serve",): Case(("serve",), 3, KAFKA_DOWN_LINE, chdb=True, setup=("migrate",), logs=True),
        # Waits ~30 s for Kafka, logging each refused connection (it shows that it waits).
        ("simulate",): Case(("simulate", "--requests", "1"), 3, KAFKA_DOWN_LINE, logs=True),
        ("wait",): Case(("wait", "--timeout", "1"), 3, KAFKA_DOWN_LINE),
        ("dlq",): Case(("dlq",), 3, KAFKA_DOWN_LINE),  # the consumer that failed to start is closed: one line
        ("sql",): NO_KAFKA,
        ("cookbook",): NO_KAFKA,
        ("report",): NO_KAFKA,
        ("alerts",): NO_KAFKA,
        ("baseline", "show"): NO_KAFKA,
        ("baseline", "learn"): NO_KAFKA,
        ("canary", "check"): NO_KAFKA,
        # --emit sends the results through the SDK: none arrives, so 3 (though every canary also
        # failed here, the router being down too: the missing results are the bigger news).
        ("canary", "run"): Case(("canary", "run", "--emit", "--file", str(CANARY_SET), "--router-url",
                                 f"http://127.0.0.1:{CLOSED}/v1/chat/completions"), 3, "canary result(s) not sent", logs=True),
        ("prices", "import"): NO_KAFKA,
        ("prices", "lookup"): NO_KAFKA,
        # The example router serves without Kafka (its SDK buffers); its failure path: the port is taken.
        ("example-router",): Case(("example-router", "--port", "{busy}"), 2, "cannot listen", logs=True),
        # switch's dependency is the router itself: not there, exit 3.
        ("example-router", "switch"): Case(("example-router", "switch", "--url", f"http://127.0.0.1:{CLOSED}"), 3, "no router"),
        ("schemas", "export"): NO_KAFKA,
        ("schemas", "check"): NO_KAFKA,
        ("config", "reference"): NO_KAFKA,
    },
    "clickhouse_down": {
        ("migrate",): Case(("migrate",), 3, "cannot open ClickHouse"),
        ("serve",): Case(("serve",), 3, "cannot open ClickHouse", logs=True),  # a service: its own logs
        ("simulate",): NO_CLICKHOUSE,
        ("wait",): NO_CLICKHOUSE,
        ("dlq",): NO_CLICKHOUSE,
        ("sql",): Case(("sql", "select 1"), 3, "cannot open ClickHouse"),
        ("cookbook",): Case(("cookbook", "spend_by_minute", "--since", "2026-12-07T10:00"), 3, "cannot open ClickHouse"),
        ("report",): Case(("report",), 3, "cannot open ClickHouse"),
        # Asks serve (not running here), else reads the scheduler's state file: nothing is firing.
        ("alerts",): Case(("alerts",), 0, "nothing is firing"),
        ("baseline", "show"): Case(("baseline", "show"), 3, "cannot open ClickHouse"),
        ("baseline", "learn"): Case(("baseline", "learn"), 3, "cannot open ClickHouse"),
        ("canary", "check"): NO_CLICKHOUSE,
        ("canary", "run"): NO_CLICKHOUSE,
        ("prices", "import"): NO_CLICKHOUSE,
        ("prices", "lookup"): NO_CLICKHOUSE,
        ("example-router",): NO_CLICKHOUSE,
        ("example-router", "switch"): NO_CLICKHOUSE,
        ("schemas", "export"): NO_CLICKHOUSE,
        ("schemas", "check"): NO_CLICKHOUSE,
        ("config", "reference"): NO_CLICKHOUSE,
    },
    "missing_file": {
        ("migrate",): Case(("migrate",), 2, "no migrations found", env={"ROUTERWATCH_SQL_DIR": "{tmp}/missing"}),
        ("serve",): Case(("serve",), 2, "no migrations found", env={"ROUTERWATCH_SQL_DIR": "{tmp}/missing"}, chdb=True),
        ("simulate",): Case(("simulate", "--profile", "{tmp}/missing.json"), 2, "missing.json"),
        ("wait",): Case(("wait",), 2, "ROUTERWATCH_KAFKA_SECURITY__CA_FILE", env=SSL_CA_MISSING),
        ("dlq",): Case(("dlq",), 2, "ROUTERWATCH_KAFKA_SECURITY__CA_FILE", env=SSL_CA_MISSING),
        ("sql",): Case(("sql", "@{tmp}/missing.sql"), 2, "missing.sql: No such file"),
        ("cookbook",): Case(("cookbook", "missing_query"), 2, "no cookbook query 'missing_query'"),
        # --output into a folder that does not exist: checked before the store is opened.
        ("report",): Case(("report", "--format", "html", "--output", "{tmp}/missing/report.html"), 2, "missing"),
        # No state file is the normal state before the scheduler's first run.
        ("alerts",): Case(("alerts",), 0, "nothing is firing",
                          env={"ROUTERWATCH_SCHEDULER__STATE_FILE": "{tmp}/missing/state.json"}),
        ("baseline", "show"): NO_FILE,
        ("baseline", "learn"): NO_FILE,
        ("canary", "check"): Case(("canary", "check", "--file", "{tmp}/missing.yaml"), 2, "missing.yaml"),
        ("canary", "run"): Case(("canary", "run", "--file", "{tmp}/missing.yaml"), 2, "missing.yaml"),
        ("prices", "import"): Case(("prices", "import", "--from", "litellm", "--table", "{tmp}/missing.toml"), 2, "missing.toml"),
        ("prices", "lookup"): Case(("prices", "lookup", "gpt-4o"), 2, "missing.toml",
                                   env={"ROUTERWATCH_PRICES_FILE": "{tmp}/missing.toml"}),
        ("example-router",): Case(("example-router", "--port", "0"), 2, "ROUTERWATCH_KAFKA_SECURITY__CA_FILE", env=SSL_CA_MISSING),
        ("example-router", "switch"): NO_FILE,
        # A path under a regular file cannot be a folder.
        ("schemas", "export"): Case(("schemas", "export", "--dir", "{tmp}/a-file/schemas"), 2, "a-file"),
        ("schemas", "check"): Case(("schemas", "check", "--dir", "{tmp}/missing"), 2, "no such directory"),
        ("config", "reference"): Case(("config", "reference", "--check", "--file", "{tmp}/missing.md"), 2, "no such file"),
    },
    "sdk_only": {
        **{
            path: Case(argv, 3, PIP_HINT)
            for path, argv in {
                ("migrate",): ("migrate",),
                ("serve",): ("serve",),
                ("simulate",): ("simulate", "--requests", "1"),
                ("wait",): ("wait",),
                ("dlq",): ("dlq",),
                ("sql",): ("sql", "select 1"),
                ("cookbook",): ("cookbook", "spend_by_minute"),
                ("report",): ("report",),
                ("alerts",): ("alerts",),
                ("baseline", "show"): ("baseline", "show"),
                ("baseline", "learn"): ("baseline", "learn"),
                ("canary", "check"): ("canary", "check", "--file", str(CANARY_SET)),
                ("canary", "run"): ("canary", "run", "--file", str(CANARY_SET)),
                ("prices", "import"): ("prices", "import", "--from", "litellm"),
                ("prices", "lookup"): ("prices", "lookup", "gpt-4o"),
                ("example-router",): ("example-router", "--port", "0"),
                ("example-router", "switch"): ("example-router", "switch", "--url", f"http://127.0.0.1:{CLOSED}"),
            }.items()
        },
        # The events and their JSON Schema need only pydantic: these work in the SDK-only install.
        ("schemas", "export"): Case(("schemas", "export", "--dir", "{tmp}/schemas"), 0),
        ("schemas", "check"): Case(("schemas", "check", "--dir", "{tmp}/missing"), 2, "no such directory"),
        # The reference is rendered from the service's settings models (pydantic-settings).
        ("config", "reference"): Case(("config", "reference", "--file", "{tmp}/configuration.md"), 3, PIP_HINT),
    },
}

RUNS = [(scenario, path) for scenario, cases in SCENARIOS.items() for path, case in cases.items() if isinstance(case, Case)]


@dataclass
class Result:
    code: int | None
    stdout: str
    stderr: str
    seconds: float


def _env(scenario: str, case: Case, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTERWATCH_", "EXAMPLE_ROUTER_"))}
    env.update({
        "ROUTERWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{CLOSED}",
        "ROUTERWATCH_CLICKHOUSE_URL": f"http://127.0.0.1:{CLOSED}",
        "ROUTERWATCH_HTTP__PORT": str(CLOSED),  # no serve answers: commands fall back to their own path
        "ROUTERWATCH_OTLP__PORT": str(_closed_port()),
        "PYTHONUNBUFFERED": "1",
    })
    if case.chdb:
        env["ROUTERWATCH_CLICKHOUSE_URL"] = f"chdb://{tmp}/store"
    env.update({k: v.format(tmp=tmp) for k, v in case.env.items()})
    return env


def _run(scenario: str, path: tuple[str, ...], root: Path) -> Result:
    case = SCENARIOS[scenario][path]
    assert isinstance(case, Case)
    tmp = root / f"{scenario}-{'-'.join(path)}"
    tmp.mkdir()
    (tmp / "a-file").write_text("")
    busy = socket.socket()  # a port someone else holds, for the servers' failure path
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    argv = [a.format(tmp=tmp, busy=busy.getsockname()[1]) for a in case.argv]
    head = [sys.executable, "-c", SDK_ONLY] if scenario == "sdk_only" else [sys.executable, "-m", "routerwatch.cli"]
    env = _env(scenario, case, tmp)
    started = time.monotonic()
    try:
        if case.setup:
            subprocess.run([sys.executable, "-m", "routerwatch.cli", *case.setup], cwd=tmp, env=env,
                           capture_output=True, timeout=75, stdin=subprocess.DEVNULL, check=True)
        done = subprocess.run([*head, *argv], cwd=tmp, env=env, capture_output=True,
                              text=True, timeout=75, stdin=subprocess.DEVNULL)
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
    except subprocess.TimeoutExpired as exc:
        return Result(None, str(exc.stdout or ""), str(exc.stderr or ""), time.monotonic() - started)
    finally:
        busy.close()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, tuple[str, ...]], Result]:
    root = tmp_path_factory.mktemp("cli-exit-codes")
    # The two ~30 s waits for Kafka first, so they overlap the many short runs.
    order = sorted(RUNS, key=lambda run: run not in (("kafka_down", ("serve",)), ("kafka_down", ("simulate",))))
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 3)) as pool:
        futures = {run: pool.submit(_run, run[0], run[1], root) for run in order}
        return {run: future.result() for run, future in futures.items()}


def test_every_subcommand_has_a_case_in_every_scenario() -> None:
    paths = command_paths(parser())
    assert ("baseline", "show") in paths and ("example-router", "switch") in paths  # the walk sees nested commands
    for scenario, cases in SCENARIOS.items():
        assert set(cases) == paths, (
            f"{scenario}: subcommands without a case {sorted(paths - set(cases))}, stale cases {sorted(set(cases) - paths)}"
        )


@pytest.mark.parametrize(("scenario", "path"), RUNS, ids=[f"{s}:{' '.join(p)}" for s, p in RUNS])
def test_exit_code_and_one_line(results, scenario: str, path: tuple[str, ...]) -> None:
    case = SCENARIOS[scenario][path]
    assert isinstance(case, Case)
    r = results[(scenario, path)]
    shown = f"routerwatch {' '.join(case.argv)} ({scenario}, {r.seconds:.1f}s)\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-4000:]}"
    assert r.code is not None, f"did not exit: {shown}"
    assert "Traceback" not in r.stderr, shown
    assert r.code == case.code, shown
    if case.code != 0:
        # One line says what went wrong (log lines from the clients may come before it).
        lines = [line for line in r.stderr.splitlines() if line.startswith("routerwatch")]
        assert len(lines) == 1, shown
        assert case.says in lines[0], shown
        if not case.logs:
            assert r.stderr == lines[0] + "\n", shown
    else:
        assert case.says in r.stdout + r.stderr, shown


def test_alerts_with_a_state_file_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    case = Case(("alerts",), 2, "state file", env={"ROUTERWATCH_SCHEDULER__STATE_FILE": "{tmp}/state.json"})
    done = subprocess.run([sys.executable, "-m", "routerwatch.cli", "alerts"], cwd=tmp_path, env=_env("x", case, tmp_path),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("routerwatch: configuration error: the scheduler's state file") and done.stderr.count("\n") == 1
    assert "ROUTERWATCH_SCHEDULER__STATE_FILE" in done.stderr
