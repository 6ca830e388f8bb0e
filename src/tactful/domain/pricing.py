"""What model calls cost: a price table in US dollars per million tokens, and the rule.

Prices change and differ per contract, so tactful ships none: the ``model_prices`` setting
lists them. A model without a price costs ``None`` (unknown), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

PER_TOKENS = 1_000_000


class ModelPrice(BaseModel):
    """One model's prices, in US dollars per million tokens. ``cached_input`` (prompt tokens
    the provider served from its prompt cache) defaults to the ``input`` price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    output: float = Field(ge=0)

    def cost_usd(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        """(prompt - cached) x input + cached x cached_input + completion x output, per million."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        dollars = (
            (prompt_tokens - cached) * self.input
            + cached * cached_price
            + completion_tokens * self.output
        )
        return dollars / PER_TOKENS


class PriceTable:
    """Prices keyed by model name as the provider reports it: an exact name first, else the
    longest name that starts the model's (``gpt-4o-mini`` prices ``gpt-4o-mini-2024-07-18``)."""

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self.prices = dict(prices or {})
        # Longest first, so the first prefix found is the most specific one.
        self._by_length = sorted(self.prices, key=len, reverse=True)
        self._found: dict[str, ModelPrice | None] = {}

    def __bool__(self) -> bool:
        return bool(self.prices)

    def price_of(self, model: str) -> ModelPrice | None:
        """The model's price, or None when the table has none for it."""
        if model in self._found:
            return self._found[model]
        price = self.prices.get(model)
        if price is None:
            price = next((self.prices[n] for n in self._by_length if model.startswith(n)), None)
        # Models seen are few (a provider names a handful): remember each answer.
        self._found[model] = price
        return price

    def cost_usd(
        self, model: str, prompt_tokens: int, cached_tokens: int, completion_tokens: int
    ) -> float | None:
        """What one call cost in US dollars; None when the model has no price."""
        price = self.price_of(model)
        if price is None:
            return None
        return price.cost_usd(prompt_tokens, cached_tokens, completion_tokens)
