"""What a misbehaving model costs a turn: seconds to the reply, requests sent, how it degraded.

    .venv/bin/python bench/model_failures.py [--deadline-s 20] [--timeout-s 10] [--retries 1]

Runs whole turns of a two-guideline agent (real offline embedder) on the model tier, configured
from settings as a deployment would be, through the official OpenAI SDK to the local wire-
protocol server of the tests (tests/llm/openai_wire.py), while it hangs, answers HTTP 500,
answers a body that is not JSON, or answers JSON that does not validate; and, for reference,
while it answers well. Each failure mode gets a fresh server: turn 1 finds the model healthy
(breaker closed), turn 2 follows with the breaker as turn 1 left it. Reports per turn the
seconds from the customer's message to the reply, the requests the model server received, and
the reply's method (model, canned, no-match) and degraded stages.

Before issue 14 the same hang cost 363 s per turn (2 calls x 3 attempts x 60 s, the SDK's
defaults) and every following turn the same again; a 500 made every turn answer no_match_reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "llm"))

from openai_wire import Body, Fail, OpenAIWire, Reply, serve_openai_wire

import tactful
from tactful.domain import Trace
from tactful.llm.minilm import MiniLMEmbedder

ORDER = "Could you give me your order number?"
GOOD_MATCH = json.dumps(
    {
        "checks": [
            {"guideline": 1, "condition_restated": "order", "evidence": "-", "applies": True},
            {"guideline": 2, "condition_restated": "refund", "evidence": "-", "applies": False},
        ]
    }
)
MODES: dict[str, list[str | Reply | Fail | Body]] = {
    "answers well": [GOOD_MATCH, json.dumps({"message": "Sure, which order?"})] * 2,
    "hangs": [Reply('{"message": "late"}', delay_s=600.0)] * 20,
    "HTTP 500": [Fail(500, "upstream exploded")] * 20,
    "body not JSON": [Body("<html>502 Bad Gateway</html>")] * 20,
    "invalid JSON": ["this is not json {"] * 40,
}


async def run_mode(
    wire: OpenAIWire, answers: list[str | Reply | Fail | Body], settings: tactful.Settings
) -> list[tuple[float, int, str, str]]:
    wire.reset()
    wire.script(*answers)
    rows = []
    async with tactful.Server(transient=True, embedder=EMBEDDER, settings=settings) as s:
        agent = await s.create_agent("Support")
        order = await s.create_canned_response(ORDER)
        refund = await s.create_canned_response("Refunds take 5 business days.")
        await agent.create_guideline(
            "the customer asks where their order is",
            "ask for the order number",
            canned_responses=[order],
        )
        await agent.create_guideline(
            "the customer asks for a refund", "say when refunds arrive", canned_responses=[refund]
        )
        for _ in range(2):
            sent = len(wire.chat_requests)
            session = await s.create_session(agent)
            started = time.perf_counter()
            reply = await s.send(session, "where is my order?")
            elapsed = time.perf_counter() - started
            trace = await s.runtime.store.get(Trace, reply.trace_id)
            method = str(trace.composition.method or "model")
            degraded = ", ".join(r.split(":")[0] for r in trace.degraded) or "-"
            rows.append((elapsed, len(wire.chat_requests) - sent, method, degraded))
    return rows


async def main(args: argparse.Namespace) -> None:
    with serve_openai_wire() as wire:
        settings = tactful.Settings(
            openai_base_url=wire.base_url,
            openai_model="local-model",
            turn_deadline_s=args.deadline_s,
            model_timeout_s=args.timeout_s,
            model_retries=args.retries,
        )
        print(
            f"deadline {args.deadline_s:g} s, per-request timeout {args.timeout_s:g} s, "
            f"{args.retries} retry; breaker: 3 failures, 30 s\n"
        )
        print("| model | turn | seconds to reply | requests | reply | degraded |")
        print("|---|---|---|---|---|---|")
        for name, answers in MODES.items():
            for i, (seconds, requests, method, degraded) in enumerate(
                await run_mode(wire, answers, settings), start=1
            ):
                print(f"| {name} | {i} | {seconds:.2f} | {requests} | {method} | {degraded} |")


EMBEDDER = MiniLMEmbedder()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline-s", type=float, default=20.0)
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--retries", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
