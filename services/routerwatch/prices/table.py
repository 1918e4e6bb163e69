"""The price table and the flagship-everywhere counterfactual.

A versioned TOML file maps each model to its USD price per million input and
output tokens and the tier rank it serves at, and names the flagship: the model
that would serve every request if there were no router. For each request:

    counterfactual = entry attempt's input tokens x flagship input price
                   + served attempt's output tokens x flagship output price

(the prompt as the router first sent it, the answer length the user got; for an
unserved request, the last non-shadow attempt's output). Savings = 1 - actual /
counterfactual, where actual is the request's reported spend: every non-shadow
attempt plus its verifier.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from routerwatch.errors import ConfigError
from routerwatch.events.models import RoutingDecision
from routerwatch.events.vocabulary import Outcome


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tier_rank: int = Field(ge=0)
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    flagship: str
    models: dict[str, ModelPrice] = Field(min_length=1)

    @model_validator(mode="after")
    def _flagship_is_priced(self) -> PriceTable:
        if self.flagship not in self.models:
            raise ValueError(f"flagship {self.flagship!r} is not in [models]")
        return self

    @property
    def top_tier_rank(self) -> int:
        """Rank of the flagship: requests served below it count as routable."""
        return self.models[self.flagship].tier_rank

    def counterfactual(self, decision: RoutingDecision) -> float:
        """What ``decision`` would have cost on the flagship alone (USD): its first attempt's input
        and its answer's output (the accepted attempt, else the last one) at the flagship's prices."""
        non_shadow = [a for a in decision.attempts if a.outcome is not Outcome.SHADOW]
        answered = next((a for a in non_shadow if a.outcome is Outcome.ACCEPTED), non_shadow[-1])
        return self.flagship_cost(non_shadow[0].input_tokens, answered.output_tokens)

    def flagship_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD of these tokens at the flagship's prices (for callers that found the attempts already)."""
        flagship = self.models[self.flagship]
        return (input_tokens * flagship.input_usd_per_mtok + output_tokens * flagship.output_usd_per_mtok) / 1_000_000


def default_prices_file() -> Path:
    return Path(__file__).resolve().parents[2] / "deploy" / "prices.toml"


def load_prices(path: Path) -> PriceTable:
    """Read and validate a price table; :class:`ConfigError` names the file and the problem."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"ROUTERWATCH_PRICES_FILE: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"ROUTERWATCH_PRICES_FILE: {path} is not valid TOML: {exc}") from exc
    try:
        return PriceTable.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<file>'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"ROUTERWATCH_PRICES_FILE: {path}: {problems}") from exc
