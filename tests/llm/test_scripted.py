"""The scripted double: calls made together overlap, as they would with a real model."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import BaseModel

from tactful.llm.base import Prompt
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
