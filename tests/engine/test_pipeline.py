"""The pipeline runs ARCHITECTURE.md's stages in order, one call each, each handing the next a
typed result."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import Any

import pytest_asyncio

import tactful
from tactful.engine import pipeline as pipeline_module
from tactful.engine.compose import ReplyAnswer
from tactful.engine.match import ListedGuideline, MatchAnswer, answer_listed
from tactful.engine.pipeline import Action, Composed, Decision, Matching, Pipeline, Retrieval
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator

STAGES = ["context", "retrieve", "match", "resolve", "act", "compose", "emit"]


def refunds(call: ScriptedCall) -> MatchAnswer:
    def decide(g: ListedGuideline) -> str | None:
        return "the customer asks for a refund" if "refund" in g.condition else None

    return answer_listed(call.prompt.user, decide)


@pytest_asyncio.fixture
async def model() -> ScriptedGenerator:
    return ScriptedGenerator(
        {"match": refunds, "compose": lambda c: ReplyAnswer(message="Refunds take 5 days.")}
    )


def _record(pipeline: Pipeline, calls: list[tuple[str, Any]]) -> None:
    """Wrap each stage of ``pipeline`` to note its name and result."""
    for name in STAGES:
        stage: Callable[..., Any] = getattr(pipeline, name)

        async def wrapped(*args: Any, _name: str = name, _stage: Any = stage, **kw: Any) -> Any:
            result = await _stage(*args, **kw)
            calls.append((_name, result))
            return result

        setattr(pipeline, name, wrapped)


async def test_a_turn_runs_the_stages_in_order_with_typed_results(
    server: tactful.Server,
) -> None:
    agent = await server.create_agent("Support", "Answers customers of a shop")
    refund = await agent.create_guideline("the customer asks for a refund", "explain timing")
    await agent.create_guideline("the customer asks about shipping costs", "quote costs")
    session = await server.create_session(agent)
    calls: list[tuple[str, Any]] = []
    _record(server.runtime.engine.pipeline, calls)

    reply = await server.send(session, "I want a refund")

    assert [name for name, _ in calls] == STAGES
    results = dict(calls)
    retrieval = results["retrieve"]
    assert isinstance(retrieval, Retrieval)
    assert refund.id in {r.guideline.id for r in retrieval.chosen.detailed}
    matching = results["match"]
    assert isinstance(matching, Matching)
    assert {v.guideline_id for v in matching.verdicts if v.applies} == {refund.id}
    decision = results["resolve"]
    assert isinstance(decision, Decision)
    assert [m.ranked.guideline.id for m in decision.matched] == [refund.id]
    assert isinstance(results["act"], Action)
    composed = results["compose"]
    assert isinstance(composed, Composed)
    assert composed.data["message"] == reply.data["message"] == "Refunds take 5 days."


def test_the_run_reads_as_the_stages_in_order() -> None:
    """``Pipeline.run_stages`` calls each stage once, in the order of ARCHITECTURE.md."""
    tree = ast.parse(
        inspect.getsource(pipeline_module.Pipeline.run_stages).strip().replace("\n    ", "\n")
    )
    called = [
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
        and node.func.attr in STAGES
    ]
    lines = {
        node.func.attr: node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in STAGES
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    }
    assert sorted(called) == sorted(STAGES)
    assert sorted(lines, key=lines.__getitem__) == STAGES
