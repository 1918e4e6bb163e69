"""How ``routerwatch`` turns a failure into its exit code and one line (routerwatch.cli.failure / main).

The subprocess runs of every subcommand are in tests/integration/test_cli_exit_codes.py; these
check the mapping itself, including failures that are hard to provoke from outside.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from aiokafka import errors as kafka_errors
from pydantic import BaseModel, ValidationError

from routerwatch import cli
from routerwatch.errors import (
    ConfigError,
    MissingDependency,
    PermanentError,
    RetryableError,
    RouterwatchError,
    UsageError,
)
from routerwatch.storage.errors import StoreUnavailable

REPO = Path(__file__).resolve().parents[2]


def _validation_error() -> ValidationError:
    class Profile(BaseModel):
        requests: int

    try:
        Profile.model_validate({"requests": "many"})
    except ValidationError as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("exc", "code", "says"),
    [
        (UsageError("--since: not a time"), 2, "usage error: --since"),
        (ConfigError("ROUTERWATCH_DATABASE: bad"), 2, "configuration error: ROUTERWATCH_DATABASE"),
        (StoreUnavailable("cannot open ClickHouse at http://h:8123"), 3, "unavailable: cannot open ClickHouse"),
        (RetryableError("down"), 3, "unavailable: down"),
        (PermanentError("bad SQL"), 1, "bad SQL"),
        (RouterwatchError("odd"), 1, "odd"),
        (MissingDependency("faust", "service"), 3, "pip install 'routerwatch[service]'"),
        (ModuleNotFoundError("No module named 'pydantic_settings'", name="pydantic_settings"), 3,
         "needs the service extra (module 'pydantic_settings' is not installed): pip install 'routerwatch[service]'"),
        (ModuleNotFoundError("No module named 'clickhouse_connect.driver'", name="clickhouse_connect.driver"), 3,
         "routerwatch[service]"),
        (ModuleNotFoundError("No module named 'litellm'", name="litellm"), 3, "pip install 'routerwatch[litellm]'"),
        (kafka_errors.KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]"), 3, "unavailable: Kafka at"),
        (kafka_errors.KafkaTimeoutError(), 3, "unavailable: Kafka at"),
        (kafka_errors.NoBrokersAvailable(), 3, "unavailable: Kafka at"),
        (kafka_errors.SaslAuthenticationFailed("bad password"), 2, "configuration error: Kafka at"),
        (kafka_errors.TopicAuthorizationFailedError(), 2, "refused"),
        (FileNotFoundError(2, "No such file or directory", "missing.sql"), 2, "missing.sql: No such file or directory"),
        (IsADirectoryError(21, "Is a directory", "sql"), 2, "sql: Is a directory"),
        (PermissionError(13, "Permission denied", "/root/report.html"), 2, "/root/report.html: Permission denied"),
        (ConnectionRefusedError(111, "Connection refused"), 3, "unavailable: ConnectionRefusedError"),
        (TimeoutError("no answer"), 3, "unavailable: TimeoutError"),
        (_validation_error(), 2, "invalid Profile: requests:"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_expected_failures_have_a_code_and_one_line(exc: BaseException, code: int, says: str) -> None:
    found = cli.failure(exc)
    assert found is not None
    assert found[0] == code
    line = found[1]
    assert line.startswith("routerwatch: ") and "\n" not in line
    assert says in line


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        KeyError("x"),
        TypeError("unsupported operand"),
        AttributeError("'NoneType' object has no attribute 'rows'"),
        # A module of routerwatch itself, or of no extra, missing: a broken install or a bug.
        ModuleNotFoundError("No module named 'routerwatch.nope'", name="routerwatch.nope"),
        ModuleNotFoundError("No module named 'numpy'", name="numpy"),
        OSError("no file involved"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_bugs_are_not_mapped(exc: BaseException) -> None:
    assert cli.failure(exc) is None


def test_a_long_message_stays_one_bounded_line() -> None:
    _, line = cli.failure(RetryableError("first\nsecond\n" + "x" * 5000))
    assert "\n" not in line and len(line) < 700 and "first second" in line


def _run_main(monkeypatch: pytest.MonkeyPatch, exc: BaseException, *argv: str) -> int:
    def boom(args):
        raise exc

    # serve: main() sets no logger levels or filters for it, so nothing leaks into other tests.
    monkeypatch.setattr(cli, "cmd_serve", boom)
    return cli.main(["serve", *argv])


def test_main_prints_one_line_and_returns_the_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ROUTERWATCH_DEBUG", raising=False)
    assert _run_main(monkeypatch, FileNotFoundError(2, "No such file or directory", "q.sql")) == 2
    err = capsys.readouterr().err
    assert err == "routerwatch: q.sql: No such file or directory\n"


def test_main_keeps_the_traceback_of_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTERWATCH_DEBUG", raising=False)
    with pytest.raises(ZeroDivisionError):
        _run_main(monkeypatch, ZeroDivisionError("division by zero"))


def test_debug_shows_the_traceback_of_an_expected_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERWATCH_DEBUG", "1")
    with pytest.raises(ConfigError):
        _run_main(monkeypatch, ConfigError("ROUTERWATCH_X: bad"))


def test_interrupt_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_main(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "routerwatch: interrupted\n"


@pytest.mark.parametrize("text", ["banana", "2026-13-45", "90 minutes"])
def test_a_bad_time_is_a_usage_error_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(UsageError, match=r"not a time: .*ISO time.*90m"):
        cli._parse_when(text)


def test_every_package_of_an_extra_has_its_module_listed() -> None:
    """A package added to the service or litellm extra must be in EXTRA_OF_MODULE, or the
    SDK-only install would print its ModuleNotFoundError traceback instead of the pip hint."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    modules_of: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(re.sub(r"[-_.]+", "-", dist).lower(), set()).add(module)
    for extra in ("service", "litellm"):
        for requirement in extras[extra]:
            dist = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group()).lower()
            modules = modules_of.get(dist, set())
            assert modules, f"{dist} (routerwatch[{extra}]) is not installed in the test environment"
            listed = {m for m in modules if cli.EXTRA_OF_MODULE.get(m) == extra}
            assert listed, f"{dist} of routerwatch[{extra}]: none of its modules {sorted(modules)} is in cli.EXTRA_OF_MODULE"


@pytest.mark.parametrize(
    "argv, option",
    [(["report", "--since", "banana"], "--since 'banana'"), (["report", "--until", "noon"], "--until 'noon'")],
)
def test_report_says_which_times_it_accepts(argv, option, capsys, monkeypatch):
    # The report read its window with a parser of its own, which let fromisoformat's
    # "Invalid isoformat string: 'banana'" through; it now reads times as the cookbook does.
    for name in list(__import__("os").environ):
        if name.startswith("ROUTERWATCH_"):
            monkeypatch.delenv(name)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"routerwatch: usage error: {option} is not a time: give an ISO 8601 time in UTC"), err
    assert "90m, 6h, 7d" in err and "Invalid isoformat" not in err
