"""The price table, the lookup of an attempt's price, and the flagship-everywhere counterfactual.

A versioned TOML file (``deploy/prices.toml``; format in ``docs/prices.md``) holds two kinds of rows:

- ``[models."<key>"]``: the user's own entries. They say which models are which tier
  (``tier_rank``) and may carry prices (``input_usd_per_mtok`` / ``output_usd_per_mtok``, USD per
  million tokens), which win over any imported price. A key is ``provider/model`` (one deployment)
  or a bare ``model`` (that model on any provider); ``provider = "..."`` makes the whole key the
  model name; ``price_as = "provider/model"`` prices an entry like an imported model (an Azure
  deployment name, a LiteLLM model group).
- ``[prices."<provider>/<model>"]``: imported prices without tiers, written by
  ``routerwatch prices import --from litellm`` from LiteLLM's model cost map, or filled in when
  the table is loaded with the ``litellm`` price source (:mod:`routerwatch.prices.litellm`).

**Looking an attempt up.** ``(model, provider)`` is tried as given, then, when the model name
carries a provider prefix (LiteLLM's ``openai/gpt-4o``, ``azure/gpt-4o``), as (prefix, rest).
Provider names pass through ``provider_aliases`` first (built in: OpenTelemetry GenAI's
``aws.bedrock``, ``gcp.vertex_ai``, ``azure.ai.openai``... to LiteLLM's names). For each candidate a
``provider/model`` entry of ``[models]`` wins, then a bare ``model`` entry, then ``[prices]``. An
attempt nothing prices is *unpriced*: it is never priced at zero; ingest stores it in the request's
``unpriced_models`` column and counts it (``routerwatch_unpriced_attempts_total``).

**The flagship is a tier.** ``flagship_tier_rank = N`` (or, as before, ``flagship = "<model key>"``:
the tier of that entry) names the tier every request would go to if there were no router. Every
``[models]`` entry at that rank is a *flagship deployment*, and each must have a price. For each
request::

    counterfactual = prompt tokens x flagship input price + answer's output tokens x flagship output price

- prompt tokens: the first non-zero ``input_tokens`` among the non-shadow attempts, in order
  (:func:`prompt_tokens`). Every attempt of a request is sent the same prompt; a call that failed
  before the provider counted it (a 429, a connection error) reports 0, so the entry attempt alone
  under-counts. The first non-zero count is the prompt as first measured; the largest is not used
  because a later tier may be sent more than the user's prompt (a cascade that passes the rejected
  answer along), which the flagship alone would never have been sent.
- answer: the accepted attempt, else the last non-shadow one (an unserved request's last try).
- flagship price: when the answer came from a flagship deployment (the request reached the
  flagship tier and was answered there), that deployment's own price: it is what the request paid
  the flagship, and pricing it at another deployment's price would invent a saving or a loss.
  Otherwise the request never reached the flagship, and which deployment would have served it is
  unknown: the plain mean of the flagship deployments' prices (a load balancer spreading requests
  evenly). With one flagship deployment both rules give its price, as before.

Savings = 1 - actual / counterfactual, where actual is the request's reported spend (every
non-shadow attempt plus its verifier); the price table never replaces a reported cost.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from routerwatch import packagedata
from routerwatch.errors import ConfigError
from routerwatch.events.models import Attempt, RoutingDecision
from routerwatch.events.vocabulary import Outcome

_SHADOW = Outcome.SHADOW

# OpenTelemetry GenAI's gen_ai.provider.name values -> LiteLLM's provider names, for the providers
# whose names differ. A table's own provider_aliases extend and override these.
GENAI_PROVIDER_ALIASES: dict[str, str] = {
    "aws.bedrock": "bedrock",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure_ai",
    "gcp.vertex_ai": "vertex_ai",
    "gcp.gemini": "gemini",
    "mistral_ai": "mistral",
    "x_ai": "xai",
    "ibm.watsonx.ai": "watsonx",
}

# Distinct (model, provider) pairs whose lookup is kept; names come from routers, so the cache is
# bounded (cleared when full) rather than grown without limit.
_CACHE_LIMIT = 65_536


class ModelEntry(BaseModel):
    """One ``[models."<key>"]`` entry: a tier and, optionally, the user's own price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier_rank: int | None = Field(default=None, ge=0, le=255)
    provider: str | None = Field(default=None, min_length=1, description="the whole key is then the model name")
    input_usd_per_mtok: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    output_usd_per_mtok: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    price_as: str | None = Field(default=None, min_length=3, description="an imported [prices] key to price this entry by")

    @model_validator(mode="after")
    def _both_or_neither(self) -> ModelEntry:
        if (self.input_usd_per_mtok is None) != (self.output_usd_per_mtok is None):
            raise ValueError("give both input_usd_per_mtok and output_usd_per_mtok, or neither (then the price is imported)")
        if self.price_as is not None and self.input_usd_per_mtok is not None:
            raise ValueError("price_as and own prices exclude each other")
        return self

    @property
    def has_price(self) -> bool:
        return self.input_usd_per_mtok is not None


# The name the table used before entries could leave their price to an import.
ModelPrice = ModelEntry


class ImportedPrice(BaseModel):
    """One ``[prices."<provider>/<model>"]`` row: an imported price, no tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_usd_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    output_usd_per_mtok: float = Field(ge=0, allow_inf_nan=False)


class Deployment(NamedTuple):
    """What the table says about one (model, provider): the entry that matched, its tier, its price.

    ``key`` is the ``[models]`` or ``[prices]`` key that gave the price ("" when none did);
    ``tier_rank`` comes from a ``[models]`` entry only (None when the table gives no tier).
    """

    key: str
    tier_rank: int | None
    input_usd_per_mtok: float | None
    output_usd_per_mtok: float | None

    @property
    def priced(self) -> bool:
        return self.input_usd_per_mtok is not None


def deployment_name(model: str, provider: str) -> str:
    """How an attempt's deployment is named in the store, the metric's help and the report."""
    return f"{provider}/{model}"


def prompt_tokens(decision: RoutingDecision) -> int:
    """The request's prompt size: the first non-zero ``input_tokens`` of its non-shadow attempts.

    A failed attempt (429, connection error) may report 0 input tokens; the prompt it was sent is
    the one the next attempt reports. 0 only when no non-shadow attempt reported any.
    """
    for a in decision.attempts:
        if a.outcome is not _SHADOW and a.input_tokens:
            return a.input_tokens
    return 0


def _split(key: str) -> tuple[str | None, str]:
    head, sep, rest = key.partition("/")
    return (head, rest) if sep and head and rest else (None, key)


class PriceTable(BaseModel):
    """A validated price table; see the module docstring for lookup and counterfactual rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    flagship: str | None = Field(default=None, description="a [models] key; the flagship tier is its tier")
    flagship_tier_rank: int | None = Field(default=None, ge=0, le=255)
    source: str = Field(default="", description="where [prices] came from, e.g. litellm 1.110.2")
    provider_aliases: dict[str, str] = Field(default_factory=dict)
    models: dict[str, ModelEntry] = Field(min_length=1)
    prices: dict[str, ImportedPrice] = Field(default_factory=dict)

    _index: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _flagship_tier_is_priced(self) -> PriceTable:
        if self.flagship is None and self.flagship_tier_rank is None:
            raise ValueError("name the flagship tier: flagship_tier_rank = N (or flagship = \"<model key>\")")
        if self.flagship is not None:
            entry = self.models.get(self.flagship)
            if entry is None:
                raise ValueError(f"flagship {self.flagship!r} is not in [models]")
            if entry.tier_rank is None:
                raise ValueError(f"flagship {self.flagship!r} has no tier_rank")
            if self.flagship_tier_rank is not None and self.flagship_tier_rank != entry.tier_rank:
                raise ValueError(
                    f"flagship {self.flagship!r} has tier_rank {entry.tier_rank}, flagship_tier_rank says {self.flagship_tier_rank}"
                )
        for key in self.prices:
            if _split(key)[0] is None:
                raise ValueError(f"[prices] key {key!r} must be provider/model")
        rank = self.top_tier_rank
        deployments = [k for k, e in self.models.items() if e.tier_rank == rank]
        if not deployments:
            raise ValueError(f"no [models] entry has the flagship tier_rank {rank}")
        for key in deployments:
            if self._entry_price(key, self.models[key]) is None:
                entry = self.models[key]
                hint = (
                    f"price_as {entry.price_as!r} is not in [prices]" if entry.price_as
                    else "give input/output_usd_per_mtok, or key it provider/model and import prices"
                    " (routerwatch prices import --from litellm)"
                )
                raise ValueError(f"flagship tier entry {key!r} has no price: {hint}")
        return self

    # -- lookup ---------------------------------------------------------------------------

    @property
    def top_tier_rank(self) -> int:
        """Rank of the flagship tier: requests served below it count as routable."""
        if self.flagship_tier_rank is not None:
            return self.flagship_tier_rank
        return self.models[self.flagship].tier_rank  # type: ignore[index, return-value]

    def _alias(self, provider: str) -> str:
        aliases = self.provider_aliases
        return aliases.get(provider) or GENAI_PROVIDER_ALIASES.get(provider) or provider

    def _imported(self, provider: str, model: str) -> tuple[str, ImportedPrice] | None:
        key = f"{provider}/{model}"
        found = self.prices.get(key)
        return (key, found) if found is not None else None

    def _entry_price(self, key: str, entry: ModelEntry) -> tuple[str, float, float] | None:
        """The price of a [models] entry by itself (its own, price_as, or its provider/model's import)."""
        if entry.input_usd_per_mtok is not None:
            return key, entry.input_usd_per_mtok, entry.output_usd_per_mtok  # type: ignore[return-value]
        if entry.price_as is not None:
            found = self.prices.get(entry.price_as)
            return (entry.price_as, found.input_usd_per_mtok, found.output_usd_per_mtok) if found else None
        provider, model = (entry.provider, key) if entry.provider else _split(key)
        if provider is None:
            return None
        hit = self._imported(self._alias(provider), model)
        return (hit[0], hit[1].input_usd_per_mtok, hit[1].output_usd_per_mtok) if hit else None

    def _build_index(self) -> Any:
        by_pair: dict[tuple[str, str], tuple[str, ModelEntry]] = {}
        bare: dict[str, tuple[str, ModelEntry]] = {}
        for key, entry in self.models.items():
            provider, model = (entry.provider, key) if entry.provider else _split(key)
            if provider is None:
                bare[model] = (key, entry)
            else:
                by_pair[(self._alias(provider), model)] = (key, entry)
        rank = self.top_tier_rank
        flagship = {}
        for key, entry in self.models.items():
            if entry.tier_rank == rank:
                found = self._entry_price(key, entry)
                assert found is not None  # validated
                flagship[key] = found[1:]
        n = len(flagship)
        mean = (sum(p[0] for p in flagship.values()) / n, sum(p[1] for p in flagship.values()) / n)
        index = (by_pair, bare, flagship, mean, {})
        self._index = index
        return index

    def resolve(self, model: str, provider: str) -> Deployment:
        """What the table says about ``model`` served by ``provider`` (see the module docstring)."""
        index = self._index or self._build_index()
        cache = index[4]
        hit = cache.get((model, provider))
        if hit is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            hit = cache[(model, provider)] = self._resolve(index, model, provider)
        return hit

    def _resolve(self, index: Any, model: str, provider: str) -> Deployment:
        by_pair, bare = index[0], index[1]
        candidates = [(self._alias(provider), model)]
        head, rest = _split(model)
        if head is not None:
            candidates.append((self._alias(head), rest))
        entry = next((by_pair[c] for c in candidates if c in by_pair), None)
        if entry is None:
            entry = next((bare[name] for _, name in candidates if name in bare), None)
        tier = entry[1].tier_rank if entry else None
        if entry is not None:
            own = self._entry_price(*entry)
            if own is not None:
                return Deployment(own[0] if entry[1].price_as else entry[0], tier, own[1], own[2])
        for provider_name, name in candidates:
            imported = self._imported(provider_name, name)
            if imported is not None:
                return Deployment(imported[0], tier, imported[1].input_usd_per_mtok, imported[1].output_usd_per_mtok)
        return Deployment("", tier, None, None)

    def entry_priced(self, key: str) -> bool:
        """Whether the [models] entry ``key`` has a price by itself (own, price_as or imported)."""
        return self._entry_price(key, self.models[key]) is not None

    def is_priced(self, model: str, provider: str) -> bool:
        return self.resolve(model, provider).input_usd_per_mtok is not None

    def unpriced(self, decision: RoutingDecision) -> list[str]:
        """``provider/model`` of each attempt (shadow ones included) the table cannot price, in order."""
        return [deployment_name(a.model, a.provider) for a in decision.attempts if not self.is_priced(a.model, a.provider)]

    # -- the flagship tier and the counterfactual ---------------------------------------------

    @property
    def flagship_deployments(self) -> dict[str, tuple[float, float]]:
        """Each flagship-tier [models] key -> its (input, output) USD per million tokens."""
        return dict((self._index or self._build_index())[2])

    @property
    def flagship_mean_price(self) -> tuple[float, float]:
        """The plain mean of the flagship deployments' (input, output) prices."""
        return (self._index or self._build_index())[3]

    def flagship_price(self, answered: Attempt) -> tuple[float, float]:
        """The flagship price for a request answered by ``answered``: its own deployment's price when
        it is a flagship deployment, else the flagship deployments' mean."""
        found = self.resolve(answered.model, answered.provider)
        if found.tier_rank == self.top_tier_rank and found.input_usd_per_mtok is not None:
            return found.input_usd_per_mtok, found.output_usd_per_mtok  # type: ignore[return-value]
        return self.flagship_mean_price

    def counterfactual_of(self, input_tokens: int, answered: Attempt) -> float:
        """USD of ``input_tokens`` of prompt and ``answered``'s output at the flagship price for it."""
        price_in, price_out = self.flagship_price(answered)
        return (input_tokens * price_in + answered.output_tokens * price_out) / 1_000_000

    def counterfactual(self, decision: RoutingDecision) -> float:
        """What ``decision`` would have cost on the flagship tier alone (USD); see the module docstring."""
        non_shadow = [a for a in decision.attempts if a.outcome is not _SHADOW]
        answered = next((a for a in non_shadow if a.outcome is Outcome.ACCEPTED), non_shadow[-1])
        return self.counterfactual_of(prompt_tokens(decision), answered)

    def flagship_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD of these tokens at the flagship deployments' mean price."""
        price_in, price_out = self.flagship_mean_price
        return (input_tokens * price_in + output_tokens * price_out) / 1_000_000


def default_prices_file() -> Path:
    """``deploy/prices.toml``: the package's copy in a wheel, the source tree's in a checkout."""
    return packagedata.prices_file()


def read_table(path: Path) -> dict[str, Any]:
    """The TOML of a price table as data; :class:`ConfigError` names the file when it cannot be read."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"ROUTERWATCH_PRICES_FILE: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"ROUTERWATCH_PRICES_FILE: {path} is not valid TOML: {exc}") from exc


def validate_table(data: dict[str, Any], where: str) -> PriceTable:
    """``data`` as a :class:`PriceTable`; :class:`ConfigError` lists every problem, prefixed by ``where``."""
    try:
        return PriceTable.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<file>'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"{where}: {problems}") from exc


def load_prices(path: Path, source: str = "table") -> PriceTable:
    """Read and validate a price table; :class:`ConfigError` names the file and the problem.

    ``source`` is the price source (``ROUTERWATCH_PRICE_SOURCE``): ``table`` uses the file's
    numbers only; ``litellm`` also fills in every price of the installed LiteLLM's bundled model
    cost map that the file does not have (the file's own rows win), and appends the LiteLLM version
    to the table's version, so the rows priced with it say so.
    """
    data = read_table(path)
    if source == "litellm":
        from routerwatch.prices.litellm import SourceUnavailable, merge, read_cost_map

        try:
            cost_map, label = read_cost_map()
        except SourceUnavailable as exc:
            raise ConfigError(f"ROUTERWATCH_PRICE_SOURCE=litellm: {exc}") from exc
        data = merge(data, cost_map, label)
    elif source != "table":
        raise ConfigError(f"ROUTERWATCH_PRICE_SOURCE: unknown price source {source!r} (table or litellm)")
    return validate_table(data, f"ROUTERWATCH_PRICES_FILE: {path}")
