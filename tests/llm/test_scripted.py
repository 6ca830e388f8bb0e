"""The scripted double: calls made together overlap, as they would with a real model."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import BaseModel

from tactful.llm.base import _TOKEN, Prompt, count_tokens
from tactful.llm.scripted import ScriptedGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


class Answer(BaseModel):
    text: str


async def test_calls_gathered_at_no_latency_start_before_any_answers() -> None:
    model = ScriptedGenerator({"match": lambda c: Answer(text="ok")})
    prompt = Prompt(system="s", user="u")
    await asyncio.gather(*(model.generate(prompt, Answer, stage="match") for _ in range(3)))
    first_end = min(c.ended for c in model.calls)
    assert all(c.started <= first_end for c in model.calls)
    assert model.max_in_flight == 3


async def test_bench_counts_one_wave_per_round_trip_at_no_latency() -> None:
    import turn_cost

    model = ScriptedGenerator({"match": lambda c: Answer(text="ok")})
    prompt = Prompt(system="s", user="u")
    await asyncio.gather(*(model.generate(prompt, Answer, stage="match") for _ in range(3)))
    await model.generate(prompt, Answer, stage="match")
    assert turn_cost.waves(model.calls) == 2


def test_token_counts_line_by_line_are_those_of_the_whole_text() -> None:
    texts = [
        "",
        "\n",
        "one line, no break.",
        "Agent: Shop.\nCustomer: Ann (tier: gold)\n\n1. The customer asks: refund?\n2. x\n",
        "windows\r\nline ends\r\n\tand tabs \u00a0 and non-breaking\u2028spaces",
        "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e\nemoji \U0001f600!\n\n\n",
        '{"checks": [{"guideline": 1, "applies": true}]}\n' * 3,
    ]
    for text in texts:
        # Twice: counted, then found again.
        assert count_tokens(text) == len(_TOKEN.findall(text))
        assert count_tokens(text) == len(_TOKEN.findall(text))
    assert count_tokens("a, b\nc.") == 5
