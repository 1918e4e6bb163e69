"""Price table: import from LiteLLM's map, lookup by (model, provider), the flagship tier, unpriced
attempts, and the counterfactual's prompt size when the first attempt failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routerwatch.errors import ConfigError
from routerwatch.events import RoutingDecision
from routerwatch.prices import PriceTable, default_prices_file, load_prices, prompt_tokens
from routerwatch.prices import litellm as source
from routerwatch.prices.table import validate_table
from routerwatch.storage.rows import decision_columns

REPO = Path(__file__).resolve().parents[2]

# A slice of LiteLLM's map as it ships (keys, providers and per-token prices as in 1.110.2).
COST_MAP = {
    "sample_spec": {"litellm_provider": "one of ...", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "mode": "chat"},
    "gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "mode": "chat"},
    "gpt-4o-mini": {"litellm_provider": "openai", "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07, "mode": "chat"},
    "azure/gpt-4o": {"litellm_provider": "azure", "input_cost_per_token": 2.75e-06, "output_cost_per_token": 1.1e-05, "mode": "chat"},
    "vertex_ai/claude-3-5-haiku": {"litellm_provider": "vertex_ai-anthropic_models", "input_cost_per_token": 1e-06,
                                   "output_cost_per_token": 5e-06, "mode": "chat"},
    "gemini-2.5-flash": {"litellm_provider": "vertex_ai-language-models", "input_cost_per_token": 3e-07,
                         "output_cost_per_token": 2.5e-06, "mode": "chat"},
    "anthropic.claude-3-5-sonnet-20240620-v1:0": {"litellm_provider": "bedrock", "input_cost_per_token": 3e-06,
                                                  "output_cost_per_token": 1.5e-05, "mode": "chat"},
    "text-embedding-3-small": {"litellm_provider": "openai", "input_cost_per_token": 2e-08, "output_cost_per_token": 0.0,
                               "mode": "embedding"},
    "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation"},
    "azure/gpt-realtime": {"litellm_provider": "azure", "mode": "chat"},  # no token prices: skipped
}

USER_TABLE = {
    "version": "2026-12-01",
    "flagship_tier_rank": 2,
    "models": {
        "openai/gpt-4o-mini": {"tier_rank": 0},
        "openai/gpt-4o": {"tier_rank": 2},
        "azure/gpt-4o": {"tier_rank": 2},
    },
}


def imported(table: dict | None = None) -> PriceTable:
    return validate_table(source.import_table(table or USER_TABLE, COST_MAP, "litellm-test"), "test")


def attempt(index: int, model: str, provider: str, outcome: str, tier_rank: int = 0, input_tokens: int = 100,
            output_tokens: int = 50, **extra) -> dict:
    a = {"index": index, "tier": f"t{tier_rank}", "tier_rank": tier_rank, "model": model, "provider": provider,
         "offset_ms": index * 10.0, "latency_ms": 5.0, "input_tokens": input_tokens, "output_tokens": output_tokens,
         "outcome": outcome, **extra}
    if outcome == "failed":
        a.setdefault("failure_mode", "rate_limited")
        a["output_tokens"] = 0
    if outcome == "escalated":
        a.setdefault("escalation_reason", "low_confidence")
    return a


def decision(*attempts: dict, served: bool | None = None) -> RoutingDecision:
    accepted = [a for a in attempts if a["outcome"] == "accepted"]
    served = bool(accepted) if served is None else served
    final = {"served": served, "latency_ms": 10.0 * len(attempts) + 10, "cost_usd": 0.0}
    if served:
        final.update(tier=accepted[0]["tier"], model=accepted[0]["model"])
    return RoutingDecision.model_validate({
        "event_id": str(uuid.uuid4()), "request_id": "r", "occurred_at": "2026-12-01T00:00:00Z",
        "router": {"id": "rt", "strategy": "cascade"}, "attempts": list(attempts), "final": final,
    })


# -- import ---------------------------------------------------------------------------------------

def test_normalise_keys_every_text_model_by_provider_and_model():
    prices = source.normalise(COST_MAP)
    assert prices == {
        "azure/gpt-4o": (2.75, 11.0),
        "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0": (3.0, 15.0),
        "openai/gpt-4o": (2.5, 10.0),
        "openai/gpt-4o-mini": (0.15, 0.6),
        "vertex_ai/claude-3-5-haiku": (1.0, 5.0),
        "vertex_ai/gemini-2.5-flash": (0.3, 2.5),
    }


def test_a_key_already_written_provider_slash_model_wins_a_collision():
    both = {
        "gpt-x": {"litellm_provider": "acme", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat"},
        "acme/gpt-x": {"litellm_provider": "acme", "input_cost_per_token": 3e-06, "output_cost_per_token": 4e-06, "mode": "chat"},
    }
    assert source.normalise(both) == {"acme/gpt-x": (3.0, 4.0)}
    assert source.normalise(dict(reversed(both.items()))) == {"acme/gpt-x": (3.0, 4.0)}


def test_import_keeps_the_users_tiers_and_numbers_and_versions_the_table():
    user = {**USER_TABLE, "models": {**USER_TABLE["models"], "openai/gpt-4o-mini": {
        "tier_rank": 0, "input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.4}}}
    table = imported(user)
    assert table.version == "2026-12-01+litellm-test" and table.source == "litellm-test"
    assert table.resolve("gpt-4o-mini", "openai")[2:] == (0.1, 0.4)  # negotiated price wins
    assert table.resolve("gpt-4o", "azure")[1:] == (2, 2.75, 11.0)
    # Re-importing a table that was imported before replaces the suffix instead of stacking it.
    assert source.imported_version(table.version, "litellm-2") == "2026-12-01+litellm-2"


def test_the_written_table_reads_back_to_the_same_prices(tmp_path):
    merged = source.import_table(USER_TABLE, COST_MAP, "litellm-test")
    text = source.render_toml(merged, "header")
    again = validate_table(tomllib.loads(text), "again")
    assert again == validate_table(merged, "merged")
    listed = source.import_table(USER_TABLE, COST_MAP, "litellm-test", listed_only=True)
    assert set(listed["prices"]) == {"openai/gpt-4o-mini", "openai/gpt-4o", "azure/gpt-4o"}


def test_the_installed_litellm_map_prices_what_litellm_prices():
    cost_map, label = source.read_cost_map()
    assert label.startswith("litellm-")
    table = load_prices(default_prices_file(), "litellm")
    assert table.version == f"2026-11-01+{label}"
    row = cost_map["gpt-4o"]
    found = table.resolve("gpt-4o", "openai")
    assert found.input_usd_per_mtok / 1e6 == pytest.approx(row["input_cost_per_token"], rel=1e-12)
    assert found.output_usd_per_mtok / 1e6 == pytest.approx(row["output_cost_per_token"], rel=1e-12)
    # The shipped demo models keep the file's own numbers.
    assert table.resolve("large-frontier", "initech")[2:] == (5.0, 15.0)


# -- lookup ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "provider", "key"), [
    ("gpt-4o", "openai", "openai/gpt-4o"),
    ("openai/gpt-4o", "openai", "openai/gpt-4o"),         # LiteLLM's provider-prefixed name
    ("azure/gpt-4o", "azure", "azure/gpt-4o"),
    ("azure/gpt-4o", "", "azure/gpt-4o"),                 # the prefix names the provider
    ("gpt-4o", "azure", "azure/gpt-4o"),                  # same model, the other deployment's price
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "aws.bedrock", "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("claude-3-5-haiku", "gcp.vertex_ai", "vertex_ai/claude-3-5-haiku"),
    ("gpt-4o", "initech", ""),                            # never priced from another provider
    ("text-embedding-3-small", "openai", ""),             # not a text model: not imported
])
def test_lookup_by_model_and_provider(model, provider, key):
    assert imported().resolve(model, provider).key == key


def test_bare_entries_price_any_provider_and_price_as_prices_a_deployment_name():
    table = imported({
        **USER_TABLE,
        "provider_aliases": {"my-azure": "azure"},
        "models": {**USER_TABLE["models"], "semantic-cache": {"tier_rank": 0, "input_usd_per_mtok": 0, "output_usd_per_mtok": 0},
                   "azure/prod-gpt4o-eu": {"tier_rank": 2, "price_as": "azure/gpt-4o"}},
    })
    assert table.resolve("semantic-cache", "redis")[1:] == (0, 0.0, 0.0)  # priced at zero on purpose
    assert table.resolve("prod-gpt4o-eu", "my-azure") == ("azure/gpt-4o", 2, 2.75, 11.0)
    assert table.flagship_deployments == {"openai/gpt-4o": (2.5, 10.0), "azure/gpt-4o": (2.75, 11.0),
                                          "azure/prod-gpt4o-eu": (2.75, 11.0)}


# -- the flagship tier ------------------------------------------------------------------------------

def test_the_flagship_price_is_the_deployment_that_answered_else_the_tiers_mean():
    table = imported()
    assert table.flagship_mean_price == pytest.approx((2.625, 10.5))
    on_azure = decision(attempt(0, "gpt-4o-mini", "openai", "escalated", input_tokens=1000),
                        attempt(1, "gpt-4o", "azure", "accepted", tier_rank=2, input_tokens=1000, output_tokens=200))
    kept = decision(attempt(0, "gpt-4o-mini", "openai", "accepted", input_tokens=1000, output_tokens=200))
    assert table.counterfactual(on_azure) == pytest.approx((1000 * 2.75 + 200 * 11.0) / 1e6)
    assert table.counterfactual(kept) == pytest.approx((1000 * 2.625 + 200 * 10.5) / 1e6)
    cols = decision_columns([(on_azure, 0, 0), (kept, 0, 1)], table)
    assert cols["counterfactual_cost_usd"] == [table.counterfactual(on_azure), table.counterfactual(kept)]
    assert cols["top_tier_rank"] == [2, 2] and cols["price_version"] == [table.version] * 2


def test_the_legacy_flagship_model_names_its_tier():
    table = load_prices(default_prices_file())
    assert table.top_tier_rank == 2 and table.flagship_deployments == {"large-frontier": (5.0, 15.0)}


def test_a_flagship_deployment_without_a_price_is_a_configuration_error(tmp_path):
    bad = {**USER_TABLE, "models": {**USER_TABLE["models"], "initech/large-frontier": {"tier_rank": 2}}}
    with pytest.raises(ConfigError, match="flagship tier entry 'initech/large-frontier' has no price"):
        imported(bad)
    with pytest.raises(ConfigError, match="name the flagship tier"):
        validate_table({"version": "v", "models": {"m": {"tier_rank": 0, "input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}}, "t")
    path = tmp_path / "p.toml"
    path.write_text('version = "v"\nflagship_tier_rank = 1\n[models."m"]\ntier_rank = 0\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n')
    with pytest.raises(ConfigError, match=r"ROUTERWATCH_PRICES_FILE: .*no \[models\] entry has the flagship tier_rank 1"):
        load_prices(path)


# -- unpriced attempts ----------------------------------------------------------------------------

def test_unpriced_attempts_are_listed_per_attempt_never_priced_at_zero():
    table = imported()
    d = decision(attempt(0, "mystery-8b", "initech", "failed"),
                 attempt(1, "mystery-8b", "initech", "escalated"),
                 attempt(2, "gpt-4o", "openai", "accepted", tier_rank=2))
    assert table.unpriced(d) == ["initech/mystery-8b", "initech/mystery-8b"]
    cols = decision_columns([(d, 0, 0), (decision(attempt(0, "gpt-4o", "openai", "accepted")), 0, 1)], table)
    assert cols["unpriced_models"] == ["initech/mystery-8b,initech/mystery-8b", ""]


def test_the_sink_counts_unpriced_attempts_in_the_metric():
    from prometheus_client import REGISTRY

    from routerwatch.ingest.sink import count_unpriced

    def value(provider: str, model: str) -> float:
        return REGISTRY.get_sample_value("routerwatch_unpriced_attempts_total", {"provider": provider, "model": model}) or 0.0

    before = value("initech", "unit-test-model")
    count_unpriced(["initech/unit-test-model,initech/unit-test-model", "", "initech/unit-test-model"])
    assert value("initech", "unit-test-model") - before == 3


# -- the prompt size of a request whose first attempt failed ---------------------------------------

def test_a_429_with_zero_input_tokens_does_not_shrink_the_counterfactual():
    table = load_prices(default_prices_file())
    d = decision(attempt(0, "small-8b", "acme", "failed", input_tokens=0),
                 attempt(1, "small-8b", "acme-eu", "accepted", input_tokens=1200, output_tokens=300))
    expected = (1200 * 5.0 + 300 * 15.0) / 1e6
    assert prompt_tokens(d) == 1200
    assert table.counterfactual(d) == pytest.approx(expected)
    assert decision_columns([(d, 0, 0)], table)["counterfactual_cost_usd"] == [pytest.approx(expected)]


outcomes_before = st.lists(st.sampled_from(["failed", "escalated"]), max_size=5)


@settings(max_examples=200, deadline=None)
@given(outcomes_before, st.lists(st.integers(0, 5000), min_size=6, max_size=6), st.integers(0, 2000),
       st.booleans(), st.integers(0, 5))
def test_the_prompt_is_the_first_non_zero_count_and_rows_agree_with_the_table(before, tokens, output, served, zeros):
    table = imported()
    # The first `zeros` attempts were rejected before the provider counted the prompt.
    counts = [0 if i < zeros else t for i, t in enumerate(tokens)]
    attempts = [attempt(i, "gpt-4o-mini", "openai", o, input_tokens=counts[i]) for i, o in enumerate(before)]
    last = len(attempts)
    attempts.append(attempt(last, "gpt-4o", "azure", "accepted" if served else "failed", tier_rank=2,
                            input_tokens=counts[last], output_tokens=output))
    d = decision(*attempts)
    first = next((c for c in counts[: last + 1] if c), 0)
    assert prompt_tokens(d) == first
    answered_out = output if served else 0
    assert table.counterfactual(d) == pytest.approx((first * 2.75 + answered_out * 11.0) / 1e6)
    assert decision_columns([(d, 0, 0)], table)["counterfactual_cost_usd"] == [table.counterfactual(d)]


# -- the CLI ------------------------------------------------------------------------------------------

def _cli(*args: str, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERWATCH_")}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "routerwatch.cli", "prices", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    if not lines[0].startswith("usage:"):
        assert len(lines) == 1, done.stderr
    return lines[-1]


def test_cli_import_writes_a_versioned_table_that_serve_can_load(tmp_path):
    table = tmp_path / "prices.toml"
    table.write_text(source.render_toml(USER_TABLE))
    done = _cli("import", "--from", "litellm", "--table", str(table), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "prices.litellm.toml"
    assert str(written) in done.stdout and "flagship tier 2" in done.stdout
    loaded = load_prices(written)
    cost_map, label = source.read_cost_map()
    assert loaded.version == f"2026-12-01+{label}"
    assert loaded.resolve("gpt-4o", "azure").input_usd_per_mtok == pytest.approx(
        cost_map["azure/gpt-4o"]["input_cost_per_token"] * 1e6)
    assert len(loaded.prices) > 1000
    # --map: a map file of one's own; its content hash versions the table.
    map_file = tmp_path / "map.json"
    map_file.write_text(json.dumps(COST_MAP))
    done = _cli("import", "--from", "litellm", "--table", str(table), "--map", str(map_file), "--output", "-",
                "--version", "v-7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert tomllib.loads(done.stdout)["version"] == "v-7"


@pytest.mark.parametrize(("args", "code", "says"), [
    (("import",), 2, "--from litellm"),
    (("import", "--from", "nowhere"), 2, "invalid choice"),
    (("import", "--from", "litellm", "--table", "missing.toml"), 2, "cannot read"),
    (("import", "--from", "litellm", "--table", "prices.toml", "--map", "missing.json"), 2, "cannot read --map"),
    (("import", "--from", "litellm", "--table", "prices.toml", "--map", "broken.json"), 1, "is not JSON"),
    (("import", "--from", "litellm", "--table", "unpriceable.toml"), 1, "has no price"),
])
def test_cli_import_exit_codes_with_one_clear_line(tmp_path, args, code, says):
    (tmp_path / "prices.toml").write_text(source.render_toml(USER_TABLE))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "unpriceable.toml").write_text(source.render_toml(
        {**USER_TABLE, "models": {**USER_TABLE["models"], "initech/large-frontier": {"tier_rank": 2}}}))
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert says in _one_error_line(done)


def test_cli_import_without_litellm_is_a_missing_dependency(tmp_path):
    # A `litellm` without its cost map first on the path: what an install without the extra looks like to find_spec.
    fake = tmp_path / "site" / "litellm"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (tmp_path / "prices.toml").write_text(source.render_toml(USER_TABLE))
    done = _cli("import", "--from", "litellm", "--table", "prices.toml", cwd=tmp_path, extra_path=tmp_path / "site")
    assert done.returncode == 3, done.stderr
    assert "no bundled cost map" in _one_error_line(done)


def test_cli_lookup_says_which_row_priced_a_model(tmp_path):
    done = _cli("lookup", "large-frontier", "--provider", "initech", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {} == {
        "model": "large-frontier", "provider": "initech", "version": "2026-11-01", "priced": True, "key": "large-frontier",
        "tier_rank": 2, "flagship_deployment": True, "input_usd_per_mtok": 5.0, "output_usd_per_mtok": 15.0}
    assert _cli("lookup", "nobody-knows", "--provider", "x", cwd=REPO).returncode == 1
