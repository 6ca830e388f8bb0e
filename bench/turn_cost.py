"""Per-turn model cost of the engine at 10, 100, 300 and 1,000 guidelines (scripted model).

    .venv/bin/python bench/turn_cost.py [--sizes 10 100 300 1000] [--latency-ms 50]

Builds the agent from the scenario of ../shared/anchors/parlant (the content the Parlant anchor
measures; beyond its 900 guidelines, variants of them): guidelines, glossary, its two tools and
its journey of 3 states. Runs its 5 customer turns through the real engine with the scripted
double (match: word overlap with the latest customer message, like the anchor's fake; the
journey starts on the same rule and skips to its tool state once an order number was given;
compose: a fixed reply), and reports per turn (median over turns):
model calls, prompt tokens (o200k_base via bpe-openai when installed, counting the system
prompt, the user prompt and the JSON schema sent; else tactful's word count), the largest
single prompt, and model waves on the critical path. With --write, replaces the measured
table in docs/turn-cost.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tactful
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import (
    JourneyCheck,
    ListedGuideline,
    ListedJourney,
    MatchAnswer,
    ProposedArgument,
    ProposedCall,
    answer_listed,
)
from tactful.llm.base import count_tokens
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "anchors" / "parlant" / "scenario.py"
ANCHOR_MAX = 900
_STOPWORDS = "the a an of to for and or is are was it its my me i you your on in with about"
STOP = frozenset(_STOPWORDS.split(" "))


def tokenizer() -> tuple[Any, str]:
    try:
        import bpe_openai  # type: ignore[import-not-found]
    except ImportError:
        return count_tokens, "tactful word count (bpe-openai not installed)"
    enc = bpe_openai.get_encoding("o200k_base")
    return (lambda s: len(enc.encode(s))), "o200k_base (bpe-openai)"


def scenario(n: int) -> dict[str, Any]:
    base = min(n, ANCHOR_MAX)
    out = subprocess.run(
        [sys.executable, str(ANCHOR), "--guidelines", str(base), "--dump"],
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    extra = n - base
    for i in range(extra):
        g = dict(data["guidelines"][i % base])
        g["id"] = f"x{i:04d}"
        g["condition"] += " for a business order"
        g["action"] += " and mention business invoicing"
        data["guidelines"].append(g)
    return data


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP and len(w) > 2}


@tactful.tool
async def get_order_status(context: tactful.ToolContext, order_id: str) -> dict[str, str]:
    """Look up the shipping and delivery status of a customer order by its order number."""
    return {"order_id": order_id, "status": "in transit", "eta": "in 2 days"}


@tactful.tool
async def initiate_refund(
    context: tactful.ToolContext, order_id: str, reason: str
) -> dict[str, str]:
    """Start a refund / return for a customer order (returns an RMA number)."""
    return {"order_id": order_id, "rma": "RMA-777", "reason": reason}


TOOLS = {"get_order_status": get_order_status, "initiate_refund": initiate_refund}
_NUMBER = re.compile(r"\b\d{4,}\b")


def fake_match(call: ScriptedCall) -> MatchAnswer:
    user = call.prompt.user
    conversation = user.split("DETAILED CHECKS:")[0].strip().splitlines()
    latest = conversation[-1]
    said = words(latest.split(":", 1)[-1])
    numbers = [
        n for line in conversation if line.startswith("customer:") for n in _NUMBER.findall(line)
    ]

    def decide(g: ListedGuideline) -> str | None:
        return latest if len(words(g.condition) & said) >= 2 else None

    def journey(j: ListedJourney) -> JourneyCheck | None:
        starts = next(
            (line for line in user.splitlines() if line.startswith("   starts when:")), ""
        )
        if j.status == "not started" and len(words(starts) & said) < 2:
            return None
        tool = j.step("get_order_status")
        if numbers and j.status in ("not started", "at step 1"):
            argument = ProposedArgument(name="order_id", value=numbers[-1], source="customer")
            call = ProposedCall(tool="get_order_status", arguments=[argument])
            return JourneyCheck(
                journey=j.number, status="following", evidence=latest, step=tool, tool_calls=[call]
            )
        now = re.search(r"at step (\d+)", j.status)
        step = int(now.group(1)) if now else j.step("Ask the customer for their order number")
        return JourneyCheck(journey=j.number, status="following", evidence=latest, step=step)

    return answer_listed(user, decide, reapply=False, journeys=journey)


def waves(calls: list[ScriptedCall]) -> int:
    """Connected groups of overlapping calls: sequential model round trips."""
    spans = sorted((c.started, c.ended) for c in calls)
    count, end = 0, float("-inf")
    for start, stop in spans:
        if start > end:
            count += 1
        end = max(end, stop)
    return count


@dataclass
class TurnCost:
    calls: int
    prompt_tokens: int
    largest: int
    waves: int
    matched: int


async def measure(n: int, latency_s: float, count: Any) -> list[TurnCost]:
    data = scenario(n)
    model = ScriptedGenerator(
        {"match": fake_match, "compose": lambda c: ReplyAnswer(message="Happy to help.")},
        latency_s=latency_s,
    )
    async with tactful.Server(transient=True, generator=model) as server:
        agent = await define_agent(server, data)
        session = await server.create_session(agent)
        await server.send(session, "hello")  # warm the embedding cache; not measured
        costs = []
        for text in data["customer_turns"]:
            model.calls.clear()
            reply = await server.send(session, text)
            sizes = [
                count(c.prompt.system)
                + count(c.prompt.user)
                + count(json.dumps(c.schema.model_json_schema()))
                for c in model.calls
            ]
            costs.append(
                TurnCost(
                    calls=len(model.calls),
                    prompt_tokens=sum(sizes),
                    largest=max(sizes, default=0),
                    waves=waves(model.calls),
                    matched=len(reply.data["guidelines"]),
                )
            )
    return costs


async def define_agent(server: tactful.Server, data: dict[str, Any]) -> tactful.Agent:
    """The scenario's agent: its guidelines (with their ids), glossary and journey."""
    agent = await server.create_agent(data["agent"]["name"], data["agent"]["description"])
    for g in data["guidelines"]:
        await agent.create_guideline(g["condition"], g["action"], id=g["id"])
    for t in data["glossary"]:
        await agent.create_term(t["name"], t["description"], synonyms=t["synonyms"])
    await define_journey(agent, data["journey"])
    return agent


async def define_journey(agent: tactful.Agent, spec: dict[str, Any]) -> None:
    """The scenario's journey, state by state (its tool states use the bench's tools)."""
    journey = await agent.create_journey(
        spec["title"], conditions=spec["conditions"], description=spec["description"]
    )
    states = {s["id"]: s for s in spec["states"]}
    handles = {"initial": journey.initial_state}
    for t in spec["transitions"]:
        target = states[t["to"]]
        kind: dict[str, Any]
        if target["kind"] == "chat":
            kind = {"chat_state": target["action"]}
        elif target["kind"] == "tool":
            kind = {"tool_state": [TOOLS[name] for name in target["tools"]]}
        else:
            kind = {"end": True}
        made = await handles[t["from"]].transition_to(condition=t["condition"], **kind)
        handles[t["to"]] = made.target


def median(values: list[int]) -> float:
    return float(statistics.median(values))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 300, 1000])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--write", action="store_true", help="write docs/turn-cost.md")
    args = parser.parse_args()
    count, tokenizer_name = tokenizer()
    rows = []
    for n in args.sizes:
        print(f"N={n}: measuring 5 turns ...", file=sys.stderr, flush=True)
        costs = await measure(n, args.latency_ms / 1000, count)
        rows.append(
            (
                n,
                median([c.calls for c in costs]),
                median([c.prompt_tokens for c in costs]),
                median([c.largest for c in costs]),
                median([c.waves for c in costs]),
                median([c.matched for c in costs]),
            )
        )
    lines = [
        f"Tokenizer: {tokenizer_name}. Scripted model, {args.latency_ms:g} ms per call. "
        "Medians over the scenario's 5 customer turns.",
        "",
        "| guidelines | model calls / turn | prompt tokens / turn | largest prompt | waves | "
        "guidelines applied |",
        "|---|---|---|---|---|---|",
    ]
    for n, calls, tokens, largest, w, matched in rows:
        lines.append(f"| {n} | {calls:g} | {tokens:,.0f} | {largest:,.0f} | {w:g} | {matched:g} |")
    if len(rows) >= 2:
        (n0, _, t0, *_), (n1, _, t1, *_) = rows[0], rows[-1]
        lines += ["", f"Marginal prompt tokens per added guideline: {(t1 - t0) / (n1 - n0):.1f}"]
    table = "\n".join(lines)
    print(table)
    if args.write:
        # Only the measured table between the markers is replaced; the prose around it stays.
        out = ROOT / "docs" / "turn-cost.md"
        start, end = "<!-- bench:turn_cost:start -->", "<!-- bench:turn_cost:end -->"
        doc = out.read_text()
        before, rest = doc.split(start, 1)
        after = rest.split(end, 1)[1]
        out.write_text(f"{before}{start}\n{table}\n{end}{after}")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
