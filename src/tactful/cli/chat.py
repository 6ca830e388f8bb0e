"""``tactful chat``: a terminal conversation that shows, under each reply, what matched."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator, Sequence

from rich.text import Text

from tactful.cli.conversation import Conversation, Exchange
from tactful.cli.output import console, errors, fail, note
from tactful.cli.summary import LEGEND, summary
from tactful.client import AgentInfo, UnreachableError
from tactful.errors import TactfulError

QUIT = ("/quit", "/exit")
YOU = Text("you > ", style="bold cyan")


def pick_agent(agents: Sequence[AgentInfo], wanted: str | None, no_agents_hint: str) -> AgentInfo:
    """The agent named or identified by ``wanted``, else the only one."""
    names = ", ".join(f"{a.name} ({a.id})" for a in agents)
    if wanted:
        for a in agents:
            if a.id == wanted:
                return a
        by_name = [a for a in agents if a.name.casefold() == wanted.casefold()]
        if len(by_name) == 1:
            return by_name[0]
        if by_name:
            fail(f"several agents are named {wanted!r}: choose one by id ({names})")
        fail(f"no agent named or identified {wanted!r}; agents: {names or 'none'}")
    if not agents:
        fail(f"there are no agents: {no_agents_hint}")
    if len(agents) > 1:
        fail(f"there are {len(agents)} agents: choose one with --agent ({names})")
    return agents[0]


def read_messages() -> Iterator[str]:
    """Lines typed at a prompt, or piped in (one message per line); stops at end of input."""
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            try:
                line = console.input(YOU)
            except EOFError:
                console.print()
                return
        else:
            raw = sys.stdin.readline()
            if not raw:
                return
            line = raw.rstrip("\r\n")
            if line.strip():
                console.print(Text.assemble(YOU, line), soft_wrap=True)
        if line.strip():
            yield line.strip()


def show(agent: AgentInfo, exchange: Exchange) -> None:
    """A turn: the replies, then under them what the trace says about them (see ``LEGEND``)."""
    wrap = not console.is_terminal
    for reply in exchange.replies:
        console.print(Text.assemble((f"{agent.name} > ", "bold green"), reply), soft_wrap=wrap)
    if exchange.error:
        errors.print(Text(f"the turn failed: {exchange.error}", style="red"), soft_wrap=True)
    if exchange.trace_problem:
        note(f"  (no trace: {exchange.trace_problem})")
        return
    if exchange.trace is None:
        return
    for line in summary(exchange.trace, exchange.applied):
        console.print(Text(line, style="dim"), soft_wrap=wrap)


def run_chat(conversation: Conversation, wanted_agent: str | None, unreachable_hint: str) -> None:
    """Open the conversation, pick the agent, then one turn per line until /quit or EOF."""
    with asyncio.Runner() as runner:
        try:
            _chat(runner, conversation, wanted_agent)
        except KeyboardInterrupt:
            console.print()
        except UnreachableError as e:
            fail(f"cannot reach tactful at {e.url}: {unreachable_hint}")
        except TactfulError as e:
            fail(str(e))
        finally:
            with contextlib.suppress(KeyboardInterrupt):
                runner.run(conversation.close())


def _chat(runner: asyncio.Runner, conversation: Conversation, wanted_agent: str | None) -> None:
    note(runner.run(conversation.open()))
    agent = pick_agent(runner.run(conversation.agents()), wanted_agent, conversation.no_agents_hint)
    session_id = runner.run(conversation.start(agent.id))
    note(f"chatting with {agent.name} (session {session_id}); /quit to leave")
    note(LEGEND)
    for text in read_messages():
        if text in QUIT:
            return
        try:
            exchange = runner.run(conversation.send(session_id, text))
        except UnreachableError:
            raise
        except TactfulError as e:
            # A refused message (too long, ...) does not end the chat.
            errors.print(Text(str(e), style="red"), soft_wrap=True)
            continue
        show(agent, exchange)
