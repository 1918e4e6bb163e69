"""Prices from LiteLLM's model cost map, without importing LiteLLM.

LiteLLM ships its map as ``litellm/model_prices_and_context_window_backup.json``; it is read
straight from the installed package (no import of ``litellm``, so no network fetch of the remote
map and no second of import time). Each map row has ``litellm_provider``,
``input_cost_per_token`` and ``output_cost_per_token`` (USD per token).

How map keys become the table's ``provider/model`` keys (:func:`normalise`):

- ``azure/gpt-4o`` (provider ``azure``): the prefix is the provider -> ``azure/gpt-4o``.
- ``gpt-4o`` (provider ``openai``): a bare name is LiteLLM's default provider's -> ``openai/gpt-4o``.
- ``vertex_ai/claude-3-5-haiku`` (provider ``vertex_ai-anthropic_models``) and bare Vertex names
  (provider ``vertex_ai-language-models``): LiteLLM's per-family provider labels are folded into
  the prefix users route with -> ``vertex_ai/...``.
- any other key keeps its whole name as the model, under its provider.

Only rows a router calls for text are imported: mode ``chat``, ``completion`` or ``responses`` with
both token prices numeric. When two map keys land on one table key (a dated alias, a family label),
the key whose text already is ``provider/model`` wins, else the first in the map.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from routerwatch.errors import RouterwatchError

MAP_FILE = "model_prices_and_context_window_backup.json"
MODES = frozenset({"chat", "completion", "responses"})
_VERSION_SUFFIX = re.compile(r"\+litellm-[^+]*$")


class SourceUnavailable(RouterwatchError):
    """LiteLLM (or the map file it ships) is not installed here."""


class BadCostMap(RouterwatchError):
    """A cost map file that is not LiteLLM's JSON object of model rows."""


def bundled_map_path() -> Path:
    """The cost map inside the installed ``litellm`` package; :class:`SourceUnavailable` without one."""
    try:
        spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise SourceUnavailable("litellm is not installed (pip install 'routerwatch[litellm]')")
    path = Path(spec.origin).parent / MAP_FILE
    if not path.is_file():
        raise SourceUnavailable(f"the installed litellm has no bundled cost map ({path} is missing)")
    return path


def litellm_version() -> str:
    try:
        return importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError as exc:
        raise SourceUnavailable("litellm is not installed (pip install 'routerwatch[litellm]')") from exc


def read_cost_map(path: Path | None = None) -> tuple[dict[str, Any], str]:
    """(the map, its label): the installed LiteLLM's bundled map (label ``litellm-<version>``),
    or the map at ``path`` (label ``litellm-map-<sha256 prefix>``).

    Raises :class:`SourceUnavailable` when LiteLLM is missing, :class:`BadCostMap` when the file is
    not a JSON object, and ``OSError`` when ``path`` cannot be read.
    """
    if path is None:
        path = bundled_map_path()
        label = f"litellm-{litellm_version()}"
        raw = path.read_bytes()
    else:
        raw = path.read_bytes()
        label = f"litellm-map-{hashlib.sha256(raw).hexdigest()[:12]}"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadCostMap(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadCostMap(f"{path} is not a JSON object of model rows")
    return data, label


def _per_mtok(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    # Per token -> per million tokens, without the binary noise of the product (2.5e-06 * 1e6).
    return float(f"{value * 1_000_000:.12g}")


def _provider(litellm_provider: str) -> str:
    # LiteLLM labels Vertex AI's model families vertex_ai-<family>; users route them as vertex_ai/.
    return "vertex_ai" if litellm_provider.startswith("vertex_ai-") else litellm_provider


def normalise(cost_map: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The map's text-model rows as ``provider/model`` -> (input, output) USD per million tokens."""
    out: dict[str, tuple[float, float]] = {}
    exact: set[str] = set()
    for key, row in cost_map.items():
        if key == "sample_spec" or not isinstance(row, dict) or row.get("mode") not in MODES:
            continue
        raw_provider = row.get("litellm_provider")
        price_in, price_out = _per_mtok(row.get("input_cost_per_token")), _per_mtok(row.get("output_cost_per_token"))
        if not isinstance(raw_provider, str) or not raw_provider or price_in is None or price_out is None:
            continue
        provider = _provider(raw_provider)
        head, sep, rest = key.partition("/")
        if sep and rest and (head == raw_provider or head == provider or raw_provider.startswith(head)):
            provider, model = head if raw_provider.startswith(head) else provider, rest
        else:
            model = key
        table_key = f"{provider}/{model}"
        is_exact = key == table_key
        if table_key in out and (table_key in exact or not is_exact):
            continue
        out[table_key] = (price_in, price_out)
        if is_exact:
            exact.add(table_key)
    return dict(sorted(out.items()))


def imported_version(base: str, label: str) -> str:
    """The version of a table priced from ``label``: the user's version with the source appended."""
    return f"{_VERSION_SUFFIX.sub('', base)}+{label}"


def merge(table: dict[str, Any], cost_map: dict[str, Any], label: str) -> dict[str, Any]:
    """``table`` (TOML data) with the map's prices added under ``[prices]``.

    The table's own ``[prices]`` rows and every ``[models]`` entry are kept as they are (the user's
    numbers win: they may be negotiated prices); the version gets ``+<label>``.
    """
    merged = dict(table)
    prices = {k: {"input_usd_per_mtok": i, "output_usd_per_mtok": o} for k, (i, o) in normalise(cost_map).items()}
    prices.update(table.get("prices") or {})
    merged["prices"] = prices
    merged["version"] = imported_version(str(table.get("version", "")), label)
    merged["source"] = label
    return merged


# -- writing a table --------------------------------------------------------------------------------

def _toml_key(key: str) -> str:
    return json.dumps(key)  # a TOML basic string: JSON's escapes are TOML's


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"no TOML form for {value!r}")


def render_toml(table: dict[str, Any], header: str = "") -> str:
    """A price table as TOML: top-level keys, ``[provider_aliases]``, ``[models."..."]``, then
    ``[prices]`` one inline row per model."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key in ("version", "source", "flagship", "flagship_tier_rank"):
        if table.get(key) not in (None, ""):
            lines.append(f"{key} = {_toml_value(table[key])}")
    aliases = table.get("provider_aliases") or {}
    if aliases:
        lines += ["", "[provider_aliases]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in aliases.items()]
    for key, entry in (table.get("models") or {}).items():
        lines += ["", f"[models.{_toml_key(key)}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items() if v is not None]
    prices = table.get("prices") or {}
    if prices:
        lines += ["", "[prices]"]
        for key, row in prices.items():
            cells = ", ".join(f"{k} = {_toml_value(v)}" for k, v in row.items())
            lines.append(f"{_toml_key(key)} = {{ {cells} }}")
    return "\n".join(lines) + "\n"


def import_table(table: dict[str, Any], cost_map: dict[str, Any], label: str, version: str | None = None,
                 listed_only: bool = False) -> dict[str, Any]:
    """The table ``routerwatch prices import`` writes: ``table`` merged with the map (:func:`merge`).

    ``listed_only`` keeps only the imported rows some ``[models]`` entry is priced from (its own
    ``provider/model`` or ``price_as``), for a short file; the default keeps every text model of
    the map, so a model the table does not list is priced too.
    """
    merged = merge(table, cost_map, label)
    if version:
        merged["version"] = version
    if listed_only:
        wanted = set()
        for key, entry in (table.get("models") or {}).items():
            wanted.add(entry.get("price_as") or (f"{entry['provider']}/{key}" if entry.get("provider") else key))
        merged["prices"] = {k: v for k, v in merged["prices"].items() if k in wanted}
    return merged


def generated_header(label: str, source_path: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"Generated by `routerwatch prices import --from litellm` at {stamp} from {source_path}\n"
        f"and LiteLLM's model cost map ({label}). Edit {source_path} and import again; do not edit\n"
        "this file by hand. Format: docs/prices.md."
    )
