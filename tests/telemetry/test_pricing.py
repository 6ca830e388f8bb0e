"""The price table: what a call costs, which price a model name finds, and how the settings
give it (tactful.toml and TACTFUL_MODEL_PRICES)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tactful.config import Settings
from tactful.domain import ModelCall, ModelUsage
from tactful.domain.pricing import ModelPrice, PriceTable

MINI = ModelPrice(input=0.15, cached_input=0.075, output=0.6)


def test_a_call_costs_its_uncached_cached_and_completion_tokens() -> None:
    # 1,000 prompt tokens of which 400 cached, 200 completion tokens.
    expected = (600 * 0.15 + 400 * 0.075 + 200 * 0.6) / 1e6
    assert MINI.cost_usd(1000, 400, 200) == pytest.approx(expected)
    # Without a cached price, cached tokens cost what other prompt tokens cost.
    assert ModelPrice(input=1, output=2).cost_usd(1000, 400, 200) == pytest.approx(1400 / 1e6)


def test_an_exact_name_wins_then_the_longest_prefix() -> None:
    big = ModelPrice(input=2.5, output=10)
    table = PriceTable({"gpt-4o": big, "gpt-4o-mini": MINI})
    assert table.price_of("gpt-4o-mini") is MINI
    assert table.price_of("gpt-4o-mini-2024-07-18") is MINI
    assert table.price_of("gpt-4o-2024-08-06") is big
    assert table.price_of("o3-mini") is None
    assert table.cost_usd("o3-mini", 10, 0, 10) is None
    assert table.cost_usd("gpt-4o-2024-08-06", 1_000_000, 0, 0) == pytest.approx(2.5)


def test_an_empty_table_prices_nothing_and_unknown_is_never_zero() -> None:
    assert PriceTable().cost_usd("gpt-4o-mini", 100, 0, 100) is None
    calls = [ModelCall(stage="match", model="m", prompt_tokens=10, completion_tokens=5)]
    usage = ModelUsage.of(calls)
    assert (usage.cost_usd, usage.cost_complete) == (None, False)


def test_turn_totals_sum_the_known_costs_and_say_when_some_were_unknown() -> None:
    calls = [
        ModelCall(stage="match", model="a", prompt_tokens=10, cached_tokens=4, cost_usd=0.25),
        ModelCall(stage="compose", model="b", prompt_tokens=5, completion_tokens=7),
        ModelCall(stage="compose", model="a", ok=False, error="timed out"),
    ]
    usage = ModelUsage.of(calls)
    assert usage.model_dump() == {
        "model_calls": 3,
        "prompt_tokens": 15,
        "cached_tokens": 4,
        "completion_tokens": 7,
        "cost_usd": 0.25,
        "cost_complete": False,
    }
    # A failed call reports no usage: it leaves the cost complete.
    priced = ModelUsage.of([calls[0], calls[2]])
    assert (priced.cost_usd, priced.cost_complete) == (0.25, True)
    assert ModelUsage.of([]).cost_usd == 0.0


def test_prices_come_from_tactful_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tactful.toml").write_text(
        '[model_prices."gpt-4o-mini"]\ninput = 0.15\ncached_input = 0.075\noutput = 0.6\n'
    )
    monkeypatch.chdir(tmp_path)
    assert Settings().model_prices == {"gpt-4o-mini": MINI}


def test_prices_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TACTFUL_MODEL_PRICES",
        '{"gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6}}',
    )
    settings = Settings()
    assert settings.model_prices == {"gpt-4o-mini": MINI}
    assert settings.describe()["model_prices"]["gpt-4o-mini"]["output"] == 0.6


@pytest.mark.parametrize(
    "prices",
    [
        {"": {"input": 1, "output": 1}},
        {"m": {"input": -1, "output": 1}},
        {"m": {"input": 1}},
        {"m": {"input": 1, "output": 1, "per": "token"}},
    ],
)
def test_malformed_prices_stop_start_up(prices: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="model_prices"):
        Settings(model_prices=prices)  # type: ignore[arg-type]


def test_no_prices_by_default() -> None:
    assert Settings().model_prices == {}
