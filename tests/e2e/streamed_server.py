"""A real tactful server whose agent streams its replies, written by the scripted model: the
reply grows word by word (``CHUNK_DELAY_S`` apart), after a preamble. For the web app's
browser tests (test_sandbox.py); the scripted model can only be given by a program, hence this
one rather than ``tactful serve``.

Usage: python streamed_server.py --port PORT --data-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio

import tactful
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import answer_listed
from tactful.llm.scripted import HashingEmbedder, ScriptedGenerator

AGENT_ID = "streamer"
REPLY = (
    "Refunds reach your card within five business days after we receive the parcel, "
    "and you get an email the moment it is issued."
)
CHUNK_DELAY_S = 0.12


async def main(port: int, data_dir: str) -> None:
    model = ScriptedGenerator(
        {
            "match": lambda c: answer_listed(
                c.prompt.user, lambda g: "the customer asked how refunds work"
            ),
            "compose": lambda c: ReplyAnswer(message=REPLY),
        },
        # Slow enough for the preamble to go out before the reply.
        latency_s=0.4,
        chunk_delay_s=CHUNK_DELAY_S,
    )
    server = tactful.Server(
        data_dir=data_dir, generator=model, embedder=HashingEmbedder(), serve=True, port=port
    )
    async with server:
        agent = await server.create_agent(
            "Streamer",
            id=AGENT_ID,
            description="Writes its replies with a (scripted) model, streamed",
            message_output_mode=tactful.MessageOutputMode.STREAM,
            preambles=["One moment, let me check."],
            preamble_after_ms=200,
        )
        await agent.create_guideline(
            condition="the customer asks about refunds",
            action="explain when the refund arrives",
            id="refund-timing",
        )
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.data_dir))
