"""The Anthropic adapter, through the official SDK, against a real local Messages-API server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic_wire import (
    AnthropicWire,
    Body,
    Fail,
    Reply,
    StreamError,
)
from pydantic import BaseModel

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.anthropic import AnthropicGenerator
from tactful.llm.base import Prompt

MODEL = "claude-test"
PROMPT = Prompt(system="You match guidelines. STABLE PREFIX", user="Customer: where is my order?")


class Verdict(BaseModel):
    guideline_id: str
    applies: bool
    score: float
    note: str | None = None


class Check(BaseModel):
    guideline: int
    applies: bool


class Checks(BaseModel):
    checks: list[Check]


VALID: dict[str, Any] = {"guideline_id": "g1", "applies": True, "score": 0.9, "note": None}


@pytest.fixture
async def generator(anthropic_wire: AnthropicWire) -> AsyncIterator[AnthropicGenerator]:
    # No SDK retries: the adapter's own behaviour is under test, and retries only slow it down.
    async with AnthropicGenerator(
        MODEL, base_url=anthropic_wire.base_url, api_key="sk-ant-test", timeout_s=5, max_retries=0
    ) as gen:
        yield gen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _ignore(piece: str) -> None:
    raise AssertionError(f"no text expected, got {piece!r}")


async def test_a_structured_answer_is_a_forced_tool_call(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(Reply(tool_input=VALID, input_tokens=120, output_tokens=30))

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.content == Verdict(guideline_id="g1", applies=True, score=0.9)
    assert result.attempts == 1
    assert result.model == MODEL
    assert result.latency_ms > 0
    assert Verdict.model_validate_json(result.raw) == result.content
    [recorded] = anthropic_wire.requests
    # The first call writes the prefix to the cache: billed as input, not read from the cache.
    assert recorded.usage is not None and recorded.usage["cache_creation_input_tokens"] > 0
    created = recorded.usage["cache_creation_input_tokens"]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (120 + created, 30)
    assert result.usage.cached_tokens == 0
    sent = recorded.body
    assert sent["model"] == MODEL
    assert sent["max_tokens"] == 4096
    # API version 2026-10-21 rejects sampling parameters, even at their defaults.
    assert not {"temperature", "top_p", "top_k"} & set(sent)
    assert recorded.headers["anthropic-version"] == "2026-10-21"
    assert recorded.headers["authorization"] == "Bearer sk-ant-test"
    assert sent["system"] == [
        {"type": "text", "text": PROMPT.system, "cache_control": {"type": "ephemeral"}}
    ]
    assert sent["messages"] == [{"role": "user", "content": PROMPT.user}]
    [tool] = sent["tools"]
    assert tool["name"] == "Verdict"
    assert tool["input_schema"]["type"] == "object"
    assert set(tool["input_schema"]["properties"]) == {"guideline_id", "applies", "score", "note"}
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "Verdict",
        "disable_parallel_tool_use": True,
    }
    assert "stream" not in sent


async def test_a_nested_schema_keeps_its_defs(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script({"checks": [{"guideline": 1, "applies": True}]})

    result = await generator.generate(PROMPT, Checks, stage="match")

    assert result.content == Checks(checks=[Check(guideline=1, applies=True)])
    schema = anthropic_wire.message_requests[0]["tools"][0]["input_schema"]
    assert schema["properties"]["checks"]["items"] == {"$ref": "#/$defs/Check"}
    assert set(schema["$defs"]["Check"]["properties"]) == {"guideline", "applies"}


async def test_an_invalid_tool_input_gets_one_repair_with_a_tool_result(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(
        Reply(tool_input={"guideline_id": "g1", "applies": "maybe"}, output_tokens=9),
        Reply(tool_input=VALID, input_tokens=40, output_tokens=20),
    )

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.content.guideline_id == "g1"
    assert result.attempts == 2
    first, second = anthropic_wire.requests
    assert first.usage is not None and second.usage is not None
    created = first.usage["cache_creation_input_tokens"]
    # The repair re-sends the same prefix, which the cache serves.
    assert second.usage["cache_read_input_tokens"] == created
    assert result.usage.prompt_tokens == 11 + created + 40 + created
    assert result.usage.completion_tokens == 9 + 20
    assert result.usage.cached_tokens == created
    # The repair keeps the prefix, shows the call as it was, and answers it with the problem.
    assert second.body["system"] == first.body["system"]
    assert second.body["tools"] == first.body["tools"]
    assert second.body["tool_choice"] == first.body["tool_choice"]
    user, assistant, result_turn = second.body["messages"]
    assert user == {"role": "user", "content": PROMPT.user}
    [call] = assistant["content"]
    assert call["type"] == "tool_use" and call["name"] == "Verdict"
    assert call["input"] == {"guideline_id": "g1", "applies": "maybe"}
    [tool_result] = result_turn["content"]
    assert tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == call["id"]
    assert tool_result["is_error"] is True
    assert "applies: Input should be a valid boolean" in tool_result["content"]
    assert "score: Field required" in tool_result["content"]


async def test_text_instead_of_a_tool_call_gets_one_repair(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script("Sure! The guideline applies.", VALID)

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.attempts == 2
    user, assistant, note = anthropic_wire.message_requests[1]["messages"]
    assert user == {"role": "user", "content": PROMPT.user}
    assert assistant == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Sure! The guideline applies."}],
    }
    assert note["role"] == "user"
    assert "did not call the Verdict tool" in note["content"]


async def test_an_invalid_answer_twice_is_a_model_error(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script({"applies": True}, {"applies": True})

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert MODEL in message and "'match'" in message
    assert "repair retry" in message
    assert "guideline_id: Field required" in message
    assert len(anthropic_wire.message_requests) == 2


async def test_no_tool_call_twice_quotes_the_text(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script("I think it applies.", "I still think it applies.")

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert "did not call the Verdict tool" in message
    assert "'I still think it applies.'" in message


async def test_a_refusal_is_a_model_error_without_a_retry(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(Reply(refusal="The request may enable harm."))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert "the model refused" in message
    assert "The request may enable harm." in message
    assert len(anthropic_wire.message_requests) == 1


async def test_an_answer_cut_at_max_tokens_says_so(anthropic_wire: AnthropicWire) -> None:
    cut = Reply(tool_input={"guideline_id": "g1"}, stop_reason="max_tokens")
    anthropic_wire.script(cut, cut)
    async with AnthropicGenerator(
        MODEL, base_url=anthropic_wire.base_url, max_tokens=64, max_retries=0
    ) as gen:
        with pytest.raises(ModelError) as caught:
            await gen.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert "cut off at the max_tokens limit of 64 tokens" in message
    assert "applies: Field required" in message
    assert anthropic_wire.message_requests[0]["max_tokens"] == 64
    repair = anthropic_wire.message_requests[1]["messages"][2]["content"][0]["content"]
    assert "cut off at the max_tokens limit" in repair


async def test_a_body_that_is_not_json_is_a_model_error(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(Body("<html>upstream overloaded</html>", content_type="text/html"))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert "not JSON" in message and "'match'" in message
    assert "<html>upstream overloaded</html>" in message

    # Said to be JSON, and cut short.
    anthropic_wire.script(Body('{"id": "msg_1", "content": [{"ty'))
    with pytest.raises(ModelError, match=r"not JSON: '\{\"id\": \"msg_1\""):
        await generator.generate(PROMPT, Verdict, stage="match")

    # JSON, but not a message.
    anthropic_wire.script(Body('{"status": "ok"}'))
    with pytest.raises(ModelError, match=r"JSON that is not a message: .*status"):
        await generator.generate(PROMPT, Verdict, stage="match")


@pytest.mark.parametrize(
    ("status", "error_message", "expected"),
    [
        (500, "Internal server error", "HTTP 500: Internal server error"),
        (529, "Overloaded", "HTTP 529: Overloaded (the provider is overloaded)"),
        (401, "invalid x-api-key", "HTTP 401: invalid x-api-key (check the API key"),
        (429, "Number of request tokens has exceeded your rate limit", "HTTP 429: Number of"),
    ],
)
async def test_http_errors_become_model_errors(
    anthropic_wire: AnthropicWire,
    generator: AnthropicGenerator,
    status: int,
    error_message: str,
    expected: str,
) -> None:
    anthropic_wire.script(Fail(status, error_message))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="respond")

    message = str(caught.value)
    assert expected in message
    assert MODEL in message and "'respond'" in message
    assert "Error code" not in message and "APIStatusError" not in message
    if status == 401:
        assert "TACTFUL_ANTHROPIC_API_KEY" in message


async def test_sdk_retries_are_used_when_configured(anthropic_wire: AnthropicWire) -> None:
    anthropic_wire.script(529, VALID)
    async with AnthropicGenerator(
        MODEL, base_url=anthropic_wire.base_url, timeout_s=5, max_retries=1
    ) as gen:
        result = await gen.generate(PROMPT, Verdict, stage="match")

    # A transport retry by the SDK is not a repair attempt.
    assert result.attempts == 1
    assert len(anthropic_wire.message_requests) == 2


async def test_a_hang_ends_at_the_per_call_timeout(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    # The adapter's default is 5 s; the call asks for 0.5 s and the server would take 30.
    anthropic_wire.script(Reply(tool_input=VALID, delay_s=30.0))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match", timeout_s=0.5)

    message = str(caught.value)
    assert "timed out after 0.5 s" in message
    assert anthropic_wire.base_url in message


async def test_a_server_that_is_down_is_a_model_error() -> None:
    base_url = f"http://127.0.0.1:{_free_port()}"
    async with AnthropicGenerator(
        MODEL, base_url=base_url, api_key="sk-ant-test", timeout_s=2, max_retries=0
    ) as gen:
        with pytest.raises(ModelError) as caught:
            await gen.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert "could not connect" in message
    assert base_url in message


async def test_the_second_call_with_the_same_system_prompt_reads_the_cache(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(VALID, VALID, VALID)
    other = Prompt(system="Another agent's prompt.", user=PROMPT.user)

    first = await generator.generate(PROMPT, Verdict, stage="match")
    second = await generator.generate(PROMPT, Verdict, stage="match")
    third = await generator.generate(other, Verdict, stage="match")

    usages = [r.usage for r in anthropic_wire.requests]
    assert all(u is not None for u in usages)
    created = usages[0]["cache_creation_input_tokens"]  # type: ignore[index]
    assert first.usage.cached_tokens == 0
    assert second.usage.cached_tokens == created
    # The cached prefix is still part of the prompt.
    assert second.usage.prompt_tokens == first.usage.prompt_tokens == 11 + created
    # Another system prompt is another prefix: written, not read.
    assert third.usage.cached_tokens == 0
    assert usages[2]["cache_creation_input_tokens"] > 0  # type: ignore[index]


async def test_streaming_text_through_the_sdk(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(
        Reply(text="Your order ships today.", input_tokens=30, output_tokens=5),
        Reply(text="Again.", input_tokens=30, output_tokens=2),
    )
    pieces: list[str] = []

    async def collect(piece: str) -> None:
        pieces.append(piece)

    assert generator.supports_streaming
    assert generator.provider == "anthropic"
    streamed = await generator.stream(PROMPT, stage="compose", on_text=collect)

    assert pieces == ["Your ", "order ", "ships ", "today."]
    assert streamed.text == "Your order ships today."
    assert streamed.model == MODEL
    first = anthropic_wire.requests[0]
    assert first.usage is not None
    created = first.usage["cache_creation_input_tokens"]
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (30 + created, 5)
    assert streamed.usage.cached_tokens == 0
    assert first.body["stream"] is True
    assert first.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "tools" not in first.body and "tool_choice" not in first.body  # plain text

    again = await generator.stream(PROMPT, stage="compose", on_text=collect)
    assert again.usage.cached_tokens == created
    assert again.usage.prompt_tokens == 30 + created


async def test_an_error_event_mid_stream_is_a_model_error(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(Reply(text="Your order ships", stream_error=StreamError()))
    pieces: list[str] = []

    async def collect(piece: str) -> None:
        pieces.append(piece)

    with pytest.raises(ModelError) as caught:
        await generator.stream(PROMPT, stage="compose", on_text=collect)

    message = str(caught.value)
    assert "mid-stream" in message
    assert "overloaded_error: Overloaded (the provider is overloaded)" in message
    assert "HTTP 200" not in message
    assert pieces == ["Your ", "order ", "ships"]


async def test_streaming_failures_become_model_errors(
    anthropic_wire: AnthropicWire, generator: AnthropicGenerator
) -> None:
    anthropic_wire.script(Fail(529, "Overloaded"))
    with pytest.raises(ModelError, match=r"HTTP 529: Overloaded \(the provider is overloaded\)"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore)

    anthropic_wire.script(Reply(text="   "))
    with pytest.raises(ModelError, match="empty answer"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore)

    anthropic_wire.script(Reply(refusal="Not something I can help with."))
    with pytest.raises(ModelError, match="the model refused: Not something I can help with"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore)

    anthropic_wire.script(Reply(text="slow", delay_s=30.0))
    with pytest.raises(ModelError, match=r"timed out after 0\.5 s"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore, timeout_s=0.5)


async def test_aclose_closes_only_a_client_it_made(anthropic_wire: AnthropicWire) -> None:
    gen = AnthropicGenerator(MODEL, base_url=anthropic_wire.base_url)
    assert not gen._client.is_closed()
    await gen.aclose()
    assert gen._client.is_closed()

    given = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=anthropic_wire.base_url)
    try:
        borrowed = AnthropicGenerator(MODEL, client=given)
        await borrowed.aclose()
        assert not given.is_closed()
    finally:
        await given.close()


async def test_the_api_key_comes_from_the_argument_the_environment_or_a_placeholder(
    anthropic_wire: AnthropicWire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="TACTFUL_ANTHROPIC_API_KEY"):
        AnthropicGenerator(MODEL)

    anthropic_wire.script(VALID, VALID)
    # A local server or proxy may need no key; the SDK still wants one.
    async with AnthropicGenerator(MODEL, base_url=anthropic_wire.base_url) as gen:
        await gen.generate(PROMPT, Verdict, stage="match")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    async with AnthropicGenerator(MODEL, base_url=anthropic_wire.base_url) as gen:
        await gen.generate(PROMPT, Verdict, stage="match")

    headers = [r.headers["authorization"] for r in anthropic_wire.requests]
    assert headers == ["Bearer not-needed", "Bearer sk-ant-from-env"]


async def test_the_wire_rejects_what_the_api_rejects(anthropic_wire: AnthropicWire) -> None:
    """The checks that make the request-shape tests above mean something."""
    request = {
        "model": MODEL,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"authorization": "Bearer sk-ant-test", "anthropic-version": "2026-10-21"}
    dangling = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}],
        },
        {"role": "user", "content": "and?"},
    ]
    async with httpx.AsyncClient(base_url=anthropic_wire.base_url) as http:
        sampled = await http.post(
            "/v1/messages", json={**request, "temperature": 0}, headers=headers
        )
        unanswered = await http.post(
            "/v1/messages", json={**request, "messages": dangling}, headers=headers
        )
        keyless = await http.post("/v1/messages", json=request)

    assert sampled.status_code == 400
    assert sampled.json()["error"]["message"] == "temperature: Extra inputs are not permitted"
    assert unanswered.status_code == 400
    assert "without `tool_result` blocks" in unanswered.json()["error"]["message"]
    assert keyless.status_code == 401
    assert keyless.json()["error"]["type"] == "authentication_error"


def test_tactful_does_not_import_the_anthropic_sdk() -> None:
    """The SDK is an optional extra: only a runtime that picks the provider imports the adapter."""
    probe = "import sys, tactful.server, tactful.runtime; print('anthropic' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "False"
