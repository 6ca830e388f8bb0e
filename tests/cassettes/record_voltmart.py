"""Record tests/cassettes/voltmart.json: the Voltmart conversation of voltmart_conversation.py,
held over HTTP against a real tactful server whose model calls go through the OpenAI adapter
(the official SDK) and are recorded by ``RecordingGenerator``.

    python tests/cassettes/record_voltmart.py          # the local OpenAI wire server (below)
    python tests/cassettes/record_voltmart.py --live   # a real provider, from the settings:
        # TACTFUL_OPENAI_API_KEY, TACTFUL_OPENAI_BASE_URL, TACTFUL_OPENAI_MODEL

By default the model is ``tests/llm/openai_wire.py``, a local server speaking OpenAI's protocol,
answering as a model would: it reads each prompt (the numbered guidelines, the journeys, the
tool results) and answers the matching or the reply that fits the conversation. With ``--live``
a real model answers instead; its replies differ, so the replay test's expected replies
(``EXPECTED_REPLIES`` in test_voltmart_replay.py) must be updated from the printed transcript.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))

from openai_wire import Reply, serve_openai_wire
from voltmart_conversation import (
    CASSETTE,
    CUSTOMER_MESSAGES,
    RECORD_COMMAND,
    hold_conversation,
    voltmart_server,
)

import tactful
from tactful.llm.base import Generator, count_tokens
from tactful.llm.cassette import RecordingGenerator
from tactful.runtime import choose_generator

WIRE_MODEL = "voltmart-scripted"

# -- the scripted model: what it decides for each customer message ---------------------------------


class Turn:
    """What the scripted model makes of one customer message: the guidelines that apply (by a
    phrase of their condition) with the quoted evidence, the tool arguments the customer gave,
    and how it writes the reply from the compose prompt."""

    def __init__(
        self,
        applies: dict[str, str],
        reply: str,
        arguments: dict[str, str] | None = None,
    ) -> None:
        self.applies = applies
        self.reply = reply
        self.arguments = arguments or {}


TRACKING = "wants to know where their order is"
TURNS = {
    CUSTOMER_MESSAGES[0]: Turn(
        {TRACKING: "'Where is my order? It still hasn't arrived.'"},
        "Sorry your order hasn't turned up yet! You can follow it live under Account > Order "
        "History. If you send me your order number (VM followed by 8 digits), I'll check its "
        "latest status for you.",
    ),
    CUSTOMER_MESSAGES[1]: Turn(
        {
            TRACKING: "asked where the order is; now gives 'VM10234568'",
            "has given an order number": "'It's VM10234568'",
        },
        "{order}",
        arguments={"order_id": "VM10234568"},
    ),
    CUSTOMER_MESSAGES[2]: Turn(
        {"asks about delivery speed": "'Can I get express shipping on my next order?'"},
        "Yes! Express shipping delivers in 2 business days for $12.99, and Next Day is $24.99 "
        "when you order by 2 pm ET on a business day. You choose the speed at checkout.",
    ),
    CUSTOMER_MESSAGES[3]: Turn(
        {
            "thanks the agent": "'thanks for your help!'",
            "says goodbye": "'That's all for today.'",
        },
        "You're welcome, happy to help! Enjoy your new monitor, and start a new chat anytime "
        "if you need us.",
    ),
}

_NUMBERED = re.compile(r"^(\d+)\. (?:\[([^\]]*)\] )?(.+)$")
_TOOLS = re.compile(r"^   tools: (\w+)\(")
_JOURNEY = re.compile(r'^J(\d+)\. "')
_CUSTOMER = re.compile(r"^customer: (.*)$", re.MULTILINE)
_RETURNED = re.compile(r"^- (\S+) returned: (.*)$", re.MULTILINE)


def _section(text: str, title: str, end: str) -> list[str]:
    start = text.index(f"{title}:\n") + len(title) + 2
    stop = text.find(f"\n\n{end}", start) if end else -1
    return text[start : stop if stop >= 0 else len(text)].splitlines()


def _latest(user: str) -> Turn:
    return TURNS[_CUSTOMER.findall(user)[-1]]


def _match(user: str, with_journeys: bool) -> dict[str, Any]:
    """One check per detailed guideline, flags for screened ones that hold, journeys."""
    turn = _latest(user)
    checks: list[dict[str, Any]] = []
    for line in _section(user, "DETAILED CHECKS", "SCREEN"):
        tools = _TOOLS.match(line)
        if tools and checks and checks[-1]["applies"]:
            arguments = [
                {"name": "order_id", "value": turn.arguments["order_id"], "source": "customer"}
                if "order_id" in turn.arguments
                else {"name": "order_id", "value": None, "source": "missing"}
            ]
            checks[-1]["tool_calls"] = [{"tool": tools.group(1), "arguments": arguments}]
            continue
        numbered = _NUMBERED.match(line)
        if numbered is None:
            continue
        number, marks, condition = int(numbered.group(1)), numbered.group(2), numbered.group(3)
        evidence = next((quote for key, quote in turn.applies.items() if key in condition), None)
        check: dict[str, Any] = {
            "guideline": number,
            "condition_restated": condition.removeprefix("The customer ").rstrip("."),
            "evidence": evidence or "not mentioned",
            "applies": evidence is not None,
        }
        if marks and "applied earlier" in marks:
            check["reapply"] = evidence is not None
        checks.append(check)
    flagged = []
    for line in _section(user, "SCREEN", "JOURNEYS" if with_journeys else ""):
        numbered = _NUMBERED.match(line)
        if numbered is None:
            continue
        condition = numbered.group(3)
        evidence = next((quote for key, quote in turn.applies.items() if key in condition), None)
        if evidence is not None:
            flagged.append(
                {
                    "guideline": int(numbered.group(1)),
                    "condition_restated": condition.removeprefix("The customer "),
                    "evidence": evidence,
                    "applies": True,
                }
            )
    answer: dict[str, Any] = {"checks": checks, "flagged": flagged}
    if with_journeys:
        answer["journeys"] = [
            {"journey": int(m.group(1)), "status": "not started", "evidence": "not mentioned"}
            for line in user.split("\nJOURNEYS:\n", 1)[1].splitlines()
            if (m := _JOURNEY.match(line))
        ]
    return answer


def _day(iso: str) -> str:
    value = date.fromisoformat(iso)
    return f"{value:%A, %B} {value.day}"


def _compose(user: str) -> dict[str, Any]:
    """The reply, written from the tool results the prompt shows."""
    turn = _latest(user)
    if turn.reply != "{order}":
        return {"message": turn.reply}
    found = {tool: ast.literal_eval(data) for tool, data in _RETURNED.findall(user)}
    order = found["voltmart:order_status"]
    return {
        "message": f"Good news: your order {order['order_id']} ({', '.join(order['items'])}) "
        f"has shipped and should arrive by {_day(order['eta'])}. You can follow it live under "
        "Account > Order History."
    }


def scripted_model(body: dict[str, Any]) -> Reply:
    """What the wire server answers to one chat completion request."""
    system, user = (m["content"] for m in body["messages"][:2])
    name = body["response_format"]["json_schema"]["name"]
    if name in ("MatchAnswer", "JourneyMatchAnswer"):
        answer = _match(user, with_journeys=name == "JourneyMatchAnswer")
    elif name == "ReplyAnswer":
        answer = _compose(user)
    else:
        raise ValueError(f"the scripted Voltmart model has no answer for {name}")
    content = json.dumps(answer)
    return Reply(
        content,
        prompt_tokens=count_tokens(system) + count_tokens(user),
        completion_tokens=count_tokens(content),
    )


# -- recording ------------------------------------------------------------------------------------


@contextmanager
def _model(live: bool) -> Iterator[Generator]:
    if live:
        generator, reason = choose_generator(tactful.Settings(model_provider="openai"))
        assert generator is not None
        print(reason)
        yield generator
        return
    with serve_openai_wire() as wire:
        wire.responder = scripted_model
        settings = tactful.Settings(openai_base_url=wire.base_url, openai_model=WIRE_MODEL)
        generator, reason = choose_generator(settings)
        assert generator is not None
        print(f"{reason} (scripted: tests/cassettes/record_voltmart.py)")
        yield generator


async def record(path: Path, live: bool) -> int:
    """Hold the conversation, print it, and return how many calls were recorded."""
    with _model(live) as model, tempfile.TemporaryDirectory() as folder:
        recorder = RecordingGenerator(model, path, how_to_record=RECORD_COMMAND)
        async with voltmart_server(recorder, Path(folder)) as server:
            _, turns = await hold_conversation(server.url)
    for text, turn in zip(CUSTOMER_MESSAGES, turns, strict=True):
        print(f"customer: {text}")
        for reply in turn.replies:
            print(f"agent:    {reply.message}")
        if turn.error:
            print(f"error:    {turn.error}")
    return len(recorder.interactions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", action="store_true", help="record against a real provider")
    parser.add_argument("--out", type=Path, default=CASSETTE, help="the cassette to write")
    args = parser.parse_args()
    try:
        calls = asyncio.run(record(args.out, args.live))
    except tactful.ConfigurationError as e:
        sys.exit(f"cannot record: {e}")
    print(f"{calls} model calls recorded in {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
