"""Per-stage routing from settings: matching on one provider, composition on another, with a
fallback; both through their official SDKs to local wire-protocol servers."""

from __future__ import annotations

import json

import pytest
from anthropic_wire import AnthropicWire
from anthropic_wire import Reply as AnthropicReply
from openai_wire import OpenAIWire
from pydantic import ValidationError

import tactful
from tactful.domain import Trace
from tactful.errors import ConfigurationError
from tactful.llm.routing import ModelRouter
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import choose_generator

MATCH = {
    "checks": [
        {
            "guideline": 1,
            "condition_restated": "asks about a refund",
            "evidence": "customer: 'where is my refund?'",
            "applies": True,
        }
    ]
}


def routed_settings(openai_wire: OpenAIWire, anthropic_wire: AnthropicWire) -> tactful.Settings:
    return tactful.Settings(
        model_provider="offline",
        models={
            "fast": {"provider": "openai", "model": "fast-model", "base_url": openai_wire.base_url},
            "strong": {
                "provider": "anthropic",
                "model": "claude-test",
                "base_url": anthropic_wire.base_url,
                "fallback": "fast",
            },
        },
        stage_models={"default": "fast", "compose": "strong"},
        model_breaker_cooldown_s=60,
    )


async def test_matching_and_composition_go_to_the_models_their_stages_name(
    openai_wire: OpenAIWire, anthropic_wire: AnthropicWire
) -> None:
    settings = routed_settings(openai_wire, anthropic_wire)
    generator, reason = choose_generator(settings)
    assert isinstance(generator, ModelRouter)
    assert reason == (
        f"model tier: openai fast-model at {openai_wire.base_url}; compose: anthropic "
        f"claude-test at {anthropic_wire.base_url} (fallback strong -> fast)"
    )
    await generator.aclose()
    openai_wire.script(json.dumps(MATCH))
    anthropic_wire.script(AnthropicReply(tool_input={"message": "Refunds take 5 days."}))
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), settings=settings) as s:
        agent = await s.create_agent("Support")
        await agent.create_guideline(
            "the customer asks about a refund", "say refunds take 5 days", id="refunds"
        )
        reply = await s.send(await s.create_session(agent), "where is my refund?")
        trace = await s.runtime.store.get(Trace, reply.trace_id)
    assert reply.data["message"] == "Refunds take 5 days."
    assert [(c.stage, c.provider, c.model) for c in trace.model_calls] == [
        ("match", "openai", "fast-model"),
        ("compose", "anthropic", "claude-test"),
    ]
    assert len(openai_wire.chat_requests) == 1
    assert len(anthropic_wire.requests) == 1


async def test_a_failing_model_hands_its_stage_to_its_fallback(
    openai_wire: OpenAIWire, anthropic_wire: AnthropicWire
) -> None:
    settings = routed_settings(openai_wire, anthropic_wire)
    openai_wire.script(json.dumps(MATCH), json.dumps({"message": "Refunds take 5 days (fast)."}))
    # Anthropic is down: the 401 is not worth a retry, so composition goes to "fast" at once.
    anthropic_wire.script(401)
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), settings=settings) as s:
        agent = await s.create_agent("Support")
        await agent.create_guideline(
            "the customer asks about a refund", "say refunds take 5 days", id="refunds"
        )
        reply = await s.send(await s.create_session(agent), "where is my refund?")
        trace = await s.runtime.store.get(Trace, reply.trace_id)
    assert reply.data["message"] == "Refunds take 5 days (fast)."
    calls = [(c.stage, c.provider, c.ok) for c in trace.model_calls]
    assert calls == [
        ("match", "openai", True),
        ("compose", "anthropic", False),
        ("compose", "openai", True),
    ]
    assert "HTTP 401" in (trace.model_calls[1].error or "")
    assert trace.degraded == []


def test_the_anthropic_provider_from_the_flat_settings(anthropic_wire: AnthropicWire) -> None:
    generator, reason = choose_generator(
        tactful.Settings(
            model_provider="anthropic",
            anthropic_base_url=anthropic_wire.base_url,
            anthropic_model="claude-test",
        )
    )
    assert generator is not None and generator.model_name == "claude-test"
    assert reason == f"model tier: anthropic claude-test at {anthropic_wire.base_url}"
    # auto picks Anthropic when only its key is set.
    generator, reason = choose_generator(tactful.Settings(anthropic_api_key="sk-ant-x"))
    assert reason == "model tier: anthropic claude-sonnet-4-5 at api.anthropic.com"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"stage_models": {"matching": "x"}}, "unknown stage 'matching'"),
        ({"stage_models": {"match": "nope"}}, "'match' names 'nope', which models lacks"),
        (
            {"models": {"a": {"provider": "openai", "model": "m", "fallback": "b"}}},
            "its fallback 'b' is not in models",
        ),
        ({"models": {"a": {"provider": "bard", "model": "m"}}}, "provider"),
        ({"model_timeout_s": 0}, "model_timeout_s"),
    ],
)
def test_a_route_to_nowhere_stops_start_up(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        tactful.Settings(**values)  # type: ignore[arg-type]


def test_stages_without_a_model_are_named() -> None:
    settings = tactful.Settings(
        model_provider="offline",
        models={"fast": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9"}},
        stage_models={"match": "fast"},
    )
    with pytest.raises(ConfigurationError, match="no model for compose, self_check"):
        choose_generator(settings)


def test_models_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TACTFUL_MODELS",
        '{"fast": {"provider": "openai", "model": "mini", "api_key": "sk-secret"}}',
    )
    monkeypatch.setenv("TACTFUL_STAGE_MODELS", '{"match": "fast"}')
    settings = tactful.Settings()
    assert settings.stage_models == {"match": "fast"}
    shown = settings.describe()
    assert shown["models"]["fast"]["api_key"] == "***"
    assert "sk-secret" not in json.dumps(shown)


def test_a_provider_without_its_sdk_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "tactful.llm.anthropic", raising=False)
    monkeypatch.setitem(sys.modules, "anthropic", None)
    settings = tactful.Settings(model_provider="anthropic", anthropic_api_key="sk-ant-x")
    with pytest.raises(ConfigurationError, match=r"pip install 'tactful\[anthropic\]'"):
        choose_generator(settings)


LITELLM_WARNINGS = [
    # LiteLLM's lazily loaded modules make pydantic warn (see test_litellm.py).
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance"
        ":DeprecationWarning"
    ),
]


@pytest.mark.parametrize(
    "provider",
    [
        "azure",
        pytest.param("litellm", marks=LITELLM_WARNINGS),
    ],
)
async def test_a_turn_on_each_provider_from_the_flat_settings(
    openai_wire: OpenAIWire, provider: str
) -> None:
    values: dict[str, object] = {
        "azure": {
            "model_provider": "azure",
            "azure_endpoint": openai_wire.endpoint,
            "azure_deployment": "support-gpt",
            "azure_api_key": "azure-key",
        },
        "litellm": {
            "model_provider": "litellm",
            "litellm_model": "openai/local-model",
            "litellm_api_base": openai_wire.base_url,
            "litellm_api_key": "sk-local",
        },
    }[provider]
    settings = tactful.Settings(**values)  # type: ignore[arg-type]
    openai_wire.script(json.dumps(MATCH), json.dumps({"message": "Refunds take 5 days."}))
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), settings=settings) as s:
        agent = await s.create_agent("Support")
        await agent.create_guideline(
            "the customer asks about a refund", "say refunds take 5 days", id="refunds"
        )
        reply = await s.send(await s.create_session(agent), "where is my refund?")
        trace = await s.runtime.store.get(Trace, reply.trace_id)
    assert reply.data["message"] == "Refunds take 5 days."
    assert [(c.stage, c.provider, c.ok) for c in trace.model_calls] == [
        ("match", provider, True),
        ("compose", provider, True),
    ]
    paths = [r.path for r in openai_wire.requests]
    expected = (
        "/openai/deployments/support-gpt/chat/completions"
        if provider == "azure"
        else "/v1/chat/completions"
    )
    assert paths == [expected, expected]
