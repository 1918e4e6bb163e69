"""Prices: the versioned price table, the flagship tier and the flagship-everywhere counterfactual.

:mod:`routerwatch.prices.table` holds the table and the lookup of an attempt's (model, provider);
:mod:`routerwatch.prices.litellm` reads LiteLLM's model cost map (the ``litellm`` price source and
``routerwatch prices import --from litellm``). ``docs/prices.md`` describes the file format.
"""

from routerwatch.prices.table import (
    Deployment,
    ImportedPrice,
    ModelEntry,
    ModelPrice,
    PriceTable,
    default_prices_file,
    load_prices,
    prompt_tokens,
    read_table,
)

__all__ = [
    "Deployment",
    "ImportedPrice",
    "ModelEntry",
    "ModelPrice",
    "PriceTable",
    "default_prices_file",
    "load_prices",
    "prompt_tokens",
    "read_table",
]
