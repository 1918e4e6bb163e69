"""docs/configuration.md is generated from the settings models and kept in sync with them (issue 17).

The committed page must equal :func:`routerwatch.configref.render`; every field of every settings
model needs a description (the reference's only source of what a setting does); and
``routerwatch config reference --check`` exits 1 on a page that drifted, 0 on one that did not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from routerwatch import configref
from routerwatch.cli import main
from routerwatch.config import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / configref.REFERENCE_FILE


def test_committed_reference_matches_the_settings_models() -> None:
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    assert committed == configref.render(), (
        f"{configref.REFERENCE_FILE} is out of date with services/routerwatch/config.py: "
        f"run `{configref.REGENERATE}` from the repository root and commit the result\n"
        + "\n".join(configref.drift(REFERENCE)[:80] if REFERENCE.exists() else [])
    )


def test_the_walk_sees_every_settings_model() -> None:
    names = {model.__name__ for model in configref.settings_models()}
    assert {"Settings", "KafkaSecurity", "TopicSettings", "IngestSettings", "HttpSettings", "QuerySettings",
            "MetricsSettings", "SchedulerSettings", "CanarySettings", "OtlpSettings"} <= names
    # Every section attribute of Settings is a model the walk found (a new section cannot be missed).
    for name, field in Settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            assert field.annotation in configref.settings_models(), name


def test_every_field_of_every_settings_model_has_a_description() -> None:
    missing = [
        f"{model.__name__}.{name}"
        for model in configref.settings_models()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not missing, (
        f"{len(missing)} setting(s) without Field(description=...): {', '.join(missing)}; "
        f"describe them in services/routerwatch/config.py, then run `{configref.REGENERATE}`"
    )


def test_every_environment_variable_is_in_the_reference() -> None:
    settings = list(configref.iter_settings())
    leaf_count = 0
    for model in configref.settings_models():
        leaf_count += sum(
            1 for f in model.model_fields.values() if not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))
        )
    assert len(settings) == leaf_count  # each leaf field of each model is one row (no model is used twice)
    page = REFERENCE.read_text(encoding="utf-8")
    for setting in settings:
        assert setting.variable.startswith(ENV_PREFIX)
        assert f"| `{setting.variable}` |" in page, f"{setting.variable} is not in {configref.REFERENCE_FILE}"
    for example in ("ROUTERWATCH_HTTP__PORT", "ROUTERWATCH_KAFKA_SECURITY__SASL_MECHANISM", "ROUTERWATCH_CLICKHOUSE_URL",
                    "ROUTERWATCH_SCHEDULER__RUNBOOK_BASE_URL", "ROUTERWATCH_OTLP__MAX_BODY_BYTES"):
        assert example in {s.variable for s in settings}


def test_every_variable_of_the_reference_is_read_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The names on the page are the ones pydantic-settings reads: set a few and see them arrive.
    monkeypatch.setenv("ROUTERWATCH_HTTP__PORT", "1234")
    monkeypatch.setenv("ROUTERWATCH_INGEST__DLQ_REDACT", '["payload.*"]')
    monkeypatch.setenv("ROUTERWATCH_SCHEDULER__BASELINE_MIN_TRIALS", "77")
    settings = Settings()
    assert settings.http.port == 1234
    assert settings.ingest.dlq_redact == ["payload.*"]
    assert settings.scheduler.baseline_min_trials == 77


def test_secrets_are_marked_and_defaults_follow_the_models() -> None:
    by_name = {s.variable: s for s in configref.iter_settings()}
    for name in ("ROUTERWATCH_CLICKHOUSE_URL", "ROUTERWATCH_HTTP__TOKEN", "ROUTERWATCH_KAFKA_SECURITY__PASSWORD",
                 "ROUTERWATCH_KAFKA_SECURITY__KEY_PASSWORD"):
        assert "*secret*" in by_name[name].type, name
    assert by_name["ROUTERWATCH_HTTP__PORT"].default == "`9464`"
    assert by_name["ROUTERWATCH_HTTP__TOKEN"].default == "unset"
    assert by_name["ROUTERWATCH_SCHEDULER__ENABLED"].default == "`true`"
    assert by_name["ROUTERWATCH_INGEST__DLQ_REDACT"].default == "`[]`"
    assert by_name["ROUTERWATCH_QUERY__MAX_MEMORY_BYTES"].default == "`1073741824` (1 GiB)"
    assert "relative to the working directory" in by_name["ROUTERWATCH_SCHEDULER__STATE_FILE"].default


def test_the_page_does_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = configref.render()
    monkeypatch.setenv("ROUTERWATCH_HTTP__PORT", "1")
    monkeypatch.setenv("ROUTERWATCH_CLICKHOUSE_URL", "http://user:hunter2@db:8123")
    after = configref.render()
    assert after == before and "hunter2" not in after


def test_a_default_factory_that_may_depend_on_the_machine_needs_its_words() -> None:
    from pydantic import Field

    class Odd(BaseModel):
        workers: int = Field(default_factory=lambda: os.cpu_count() or 1, description="worker count")
        said: int = Field(default_factory=lambda: os.cpu_count() or 1, description="worker count",
                          json_schema_extra={"default_doc": "the number of CPUs"})

    with pytest.raises(TypeError, match="default_doc"):
        configref._default(Odd.model_fields["workers"], "workers")
    assert configref._default(Odd.model_fields["said"], "said") == "the number of CPUs"


def test_check_passes_on_the_generated_page_and_fails_on_a_modified_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "configuration.md"
    assert main(["config", "reference", "--file", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == configref.render()
    assert main(["config", "reference", "--check", "--file", str(page)]) == 0
    capsys.readouterr()

    page.write_text(page.read_text(encoding="utf-8").replace("`9464`", "`8080`"), encoding="utf-8")
    assert main(["config", "reference", "--check", "--file", str(page)]) == 1
    out, err = capsys.readouterr()
    assert "-| `ROUTERWATCH_HTTP__PORT` |" in out and "+| `ROUTERWATCH_HTTP__PORT` |" in out  # what differs
    assert err.count("\n") == 1 and err.startswith("routerwatch: ") and "routerwatch config reference" in err


def test_check_of_the_committed_page_through_the_command(tmp_path: Path) -> None:
    # The installed command, as CI runs it, from the repository root with the default --file.
    done = subprocess.run([sys.executable, "-m", "routerwatch.cli", "config", "reference", "--check"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    copy = tmp_path / "configuration.md"
    copy.write_text(REFERENCE.read_text(encoding="utf-8") + "\nhand-written line\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "routerwatch.cli", "config", "reference", "--check", "--file", str(copy)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "+hand-written line" not in done.stdout and "-hand-written line" in done.stdout
    assert "run `routerwatch config reference" in done.stderr


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "reference", "--check", "--file", str(tmp_path / "missing.md")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["config", "reference", "--check", "--file", "-"]) == 2
    with pytest.raises(SystemExit) as caught:
        main(["config", "bogus"])
    assert caught.value.code == 2


def test_cells_stay_one_line_and_keep_angle_brackets_visible() -> None:
    assert configref._cell("a |\n b") == "a \\| b"
    # A bare <word ...> would be swallowed as an HTML tag by Markdown renderers; code spans are left alone.
    assert configref._cell("plus #<alertname in lower case>, `<x>`, <= 2") == "plus #&lt;alertname in lower case>, `<x>`, <= 2"
