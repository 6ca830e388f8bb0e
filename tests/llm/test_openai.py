"""The OpenAI adapter, through the official SDK, against a real local OpenAI-wire server."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from openai_wire import Body, Fail, OpenAIWire, Reply, vector_for
from pydantic import BaseModel

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.base import Prompt
from tactful.llm.openai import OpenAIEmbedder, OpenAIGenerator

MODEL = "gpt-test"
PROMPT = Prompt(system="You match guidelines. STABLE PREFIX", user="Customer: where is my order?")


class Verdict(BaseModel):
    guideline_id: str
    applies: bool
    score: float
    note: str | None = None


VALID = '{"guideline_id": "g1", "applies": true, "score": 0.9, "note": null}'


@pytest.fixture
async def generator(openai_wire: OpenAIWire) -> AsyncIterator[OpenAIGenerator]:
    # No SDK retries: the adapter's own behaviour is under test, and retries only slow it down.
    async with OpenAIGenerator(
        MODEL, base_url=openai_wire.base_url, api_key="sk-test", timeout_s=5, max_retries=0
    ) as gen:
        yield gen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_valid_structured_answer(openai_wire: OpenAIWire, generator: OpenAIGenerator) -> None:
    openai_wire.script(Reply(VALID, prompt_tokens=120, completion_tokens=30))

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.content == Verdict(guideline_id="g1", applies=True, score=0.9)
    assert result.attempts == 1
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (120, 30)
    assert result.model == MODEL
    assert result.raw == VALID
    assert result.latency_ms > 0
    [sent] = openai_wire.chat_requests
    assert sent["model"] == MODEL
    assert sent["temperature"] == 0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][0]["content"] == PROMPT.system
    assert sent["messages"][1]["content"] == PROMPT.user
    response_format = sent["response_format"]
    assert response_format["type"] == "json_schema"
    json_schema = response_format["json_schema"]
    assert json_schema["name"] == "Verdict"
    assert json_schema["strict"] is False
    schema = json_schema["schema"]
    assert set(schema["properties"]) == {"guideline_id", "applies", "score", "note"}
    # Strict-compatible shape: closed objects, every property listed as required.
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"guideline_id", "applies", "score", "note"}
    recorded = openai_wire.requests[0]
    assert recorded.headers["authorization"] == "Bearer sk-test"


async def test_invalid_then_valid_repairs_once(
    openai_wire: OpenAIWire, generator: OpenAIGenerator
) -> None:
    openai_wire.script(
        Reply('{"guideline_id": "g1", "applies": "maybe"}', prompt_tokens=100, completion_tokens=9),
        Reply(VALID, prompt_tokens=140, completion_tokens=20, cached_tokens=96),
    )

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.content.guideline_id == "g1"
    assert result.attempts == 2
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (240, 29)
    # The repair re-sends the same prefix, which the provider served from its cache.
    assert result.usage.cached_tokens == 96
    first, second = openai_wire.chat_requests
    # The repair keeps the original prefix, then shows the bad answer and what was wrong.
    assert second["messages"][:2] == first["messages"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == '{"guideline_id": "g1", "applies": "maybe"}'
    repair = second["messages"][3]["content"]
    assert "applies: Input should be a valid boolean" in repair
    assert "score: Field required" in repair
    assert second["response_format"] == first["response_format"]


async def test_non_json_then_valid(openai_wire: OpenAIWire, generator: OpenAIGenerator) -> None:
    openai_wire.script("Sure! The guideline applies.", VALID)

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.attempts == 2
    assert "Invalid JSON" in openai_wire.chat_requests[1]["messages"][3]["content"]


async def test_invalid_twice_raises(openai_wire: OpenAIWire, generator: OpenAIGenerator) -> None:
    openai_wire.script('{"applies": true}', '{"applies": true}')

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert MODEL in message
    assert "'match'" in message
    assert "repair retry" in message
    assert "guideline_id: Field required" in message
    assert len(openai_wire.chat_requests) == 2


async def test_fenced_json_is_accepted(openai_wire: OpenAIWire, generator: OpenAIGenerator) -> None:
    openai_wire.script(f"```json\n{VALID}\n```")

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.attempts == 1
    assert result.content.score == 0.9


async def test_refusal_gets_a_repair_retry(
    openai_wire: OpenAIWire, generator: OpenAIGenerator
) -> None:
    openai_wire.script(Reply(None, refusal="I can't help with that."), VALID)

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.attempts == 2
    assert "refused" in openai_wire.chat_requests[1]["messages"][3]["content"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "HTTP 500"), (401, "HTTP 401"), (429, "HTTP 429")],
)
async def test_http_errors_become_model_errors(
    openai_wire: OpenAIWire, generator: OpenAIGenerator, status: int, expected: str
) -> None:
    openai_wire.script(Fail(status, message="upstream exploded"))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="respond")

    message = str(caught.value)
    assert expected in message
    assert "upstream exploded" in message
    assert MODEL in message and "'respond'" in message
    assert "Error code" not in message and "APIStatusError" not in message
    if status == 401:
        assert "API key" in message


async def test_sdk_retries_are_used_when_configured(openai_wire: OpenAIWire) -> None:
    openai_wire.script(503, VALID)
    async with OpenAIGenerator(
        MODEL, base_url=openai_wire.base_url, api_key="sk-test", timeout_s=5, max_retries=1
    ) as gen:
        result = await gen.generate(PROMPT, Verdict, stage="match")

    # A transport retry by the SDK is not a repair attempt.
    assert result.attempts == 1
    assert len(openai_wire.chat_requests) == 2


async def test_server_down_fails_fast() -> None:
    base_url = f"http://127.0.0.1:{_free_port()}/v1"
    started = time.perf_counter()
    async with OpenAIGenerator(
        MODEL, base_url=base_url, api_key="sk-test", timeout_s=2, max_retries=0
    ) as gen:
        with pytest.raises(ModelError) as caught:
            await gen.generate(PROMPT, Verdict, stage="match")

    assert time.perf_counter() - started < 3
    message = str(caught.value)
    assert "could not connect" in message
    assert base_url in message


async def test_slow_server_times_out(openai_wire: OpenAIWire) -> None:
    openai_wire.script(Reply(VALID, delay_s=2.0))
    async with OpenAIGenerator(
        MODEL, base_url=openai_wire.base_url, api_key="sk-test", timeout_s=0.3, max_retries=0
    ) as gen:
        with pytest.raises(ModelError) as caught:
            await gen.generate(PROMPT, Verdict, stage="match")

    assert "timed out after 0.3 s" in str(caught.value)


async def test_json_object_mode(openai_wire: OpenAIWire) -> None:
    openai_wire.script(VALID)
    async with OpenAIGenerator(
        MODEL, base_url=openai_wire.base_url, use_json_schema=False, max_retries=0
    ) as gen:
        result = await gen.generate(PROMPT, Verdict, stage="match")

    assert result.content.applies is True
    [sent] = openai_wire.chat_requests
    assert sent["response_format"] == {"type": "json_object"}
    system = sent["messages"][0]["content"]
    # The stable prefix comes first; the schema is described after it.
    assert system.startswith(PROMPT.system)
    assert "JSON Schema" in system
    assert '"guideline_id"' in system
    assert sent["messages"][1] == {"role": "user", "content": PROMPT.user}


async def test_placeholder_key_for_local_servers(
    openai_wire: OpenAIWire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai_wire.script(VALID)
    async with OpenAIGenerator(MODEL, base_url=openai_wire.base_url, max_retries=0) as gen:
        await gen.generate(PROMPT, Verdict, stage="match")

    assert openai_wire.requests[0].headers["authorization"] == "Bearer not-needed"


def test_no_key_and_no_base_url_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(ConfigurationError, match="TACTFUL_OPENAI_API_KEY"):
        OpenAIGenerator(MODEL)
    with pytest.raises(ConfigurationError, match="TACTFUL_OPENAI_API_KEY"):
        OpenAIEmbedder(dimensions=8)


async def test_embeddings_are_normalised_and_ordered(openai_wire: OpenAIWire) -> None:
    openai_wire.reverse_embeddings = True
    texts = ["refund policy", "shipping times", "opening hours"]
    async with OpenAIEmbedder(
        "text-embedding-3-small", dimensions=16, base_url=openai_wire.base_url, max_retries=0
    ) as embedder:
        vectors = await embedder.embed(texts)

    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    for row, text in zip(vectors, texts, strict=True):
        expected = np.asarray(vector_for(text, 16), dtype=np.float32)
        np.testing.assert_allclose(row, expected / np.linalg.norm(expected), rtol=1e-5)
    [sent] = openai_wire.embedding_requests
    assert sent == {
        "model": "text-embedding-3-small",
        "input": texts,
        "dimensions": 16,
        "encoding_format": "float",
    }


async def test_embeddings_other_models_do_not_send_dimensions(openai_wire: OpenAIWire) -> None:
    async with OpenAIEmbedder(
        "nomic-embed-text", dimensions=8, base_url=openai_wire.base_url, max_retries=0
    ) as embedder:
        vectors = await embedder.embed(["hello"])
        assert vectors.shape == (1, 8)
        # The wire server defaults to 8 dimensions; asking for 16 is a mismatch, not a crash.
        embedder.dimensions = 16
        with pytest.raises(ModelError, match="8-dimensional"):
            await embedder.embed(["hello"])

    assert "dimensions" not in openai_wire.embedding_requests[0]


async def test_embeddings_empty_input_makes_no_request(openai_wire: OpenAIWire) -> None:
    async with OpenAIEmbedder(dimensions=16, base_url=openai_wire.base_url) as embedder:
        vectors = await embedder.embed([])

    assert vectors.shape == (0, 16)
    assert vectors.dtype == np.float32
    assert openai_wire.requests == []


async def test_embedding_errors_become_model_errors(openai_wire: OpenAIWire) -> None:
    openai_wire.fail_embeddings(Fail(400, message="input too long", type="invalid_request_error"))
    async with OpenAIEmbedder(
        dimensions=16, base_url=openai_wire.base_url, max_retries=0
    ) as embedder:
        with pytest.raises(ModelError, match="HTTP 400: input too long"):
            await embedder.embed(["x" * 10])


async def test_streaming_text_through_the_sdk(
    openai_wire: OpenAIWire, generator: OpenAIGenerator
) -> None:
    openai_wire.script(Reply("Your order ships today.", prompt_tokens=30, completion_tokens=5))
    pieces: list[str] = []

    async def collect(piece: str) -> None:
        pieces.append(piece)

    assert generator.supports_streaming
    streamed = await generator.stream(PROMPT, stage="compose", on_text=collect)
    assert pieces == ["Your ", "order ", "ships ", "today."]
    assert streamed.text == "Your order ships today."
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (30, 5)
    [request] = openai_wire.chat_requests
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert "response_format" not in request  # plain text, not JSON


async def test_streaming_errors_become_model_errors(
    openai_wire: OpenAIWire, generator: OpenAIGenerator
) -> None:
    openai_wire.script(Fail(503, message="overloaded"))

    async def ignore(piece: str) -> None:
        raise AssertionError("no text expected")

    with pytest.raises(ModelError, match="overloaded"):
        await generator.stream(PROMPT, stage="compose", on_text=ignore)
    openai_wire.script(Reply("   "))
    with pytest.raises(ModelError, match="empty answer"):
        await generator.stream(PROMPT, stage="compose", on_text=ignore)


async def test_a_body_that_is_not_json_is_a_model_error(
    openai_wire: OpenAIWire, generator: OpenAIGenerator
) -> None:
    """HTTP 200 whose body is not JSON at all (a proxy's error page) once escaped as a
    JSONDecodeError and killed the turn; it is a model error with an excerpt of the body."""
    openai_wire.script(Body("<html>upstream overloaded</html>", content_type="text/html"))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert "not JSON" in message and "'match'" in message
    assert "<html>upstream overloaded</html>" in message

    # Said to be JSON, and cut short.
    openai_wire.script(Body('{"id": "chatcmpl-1", "choices": [{"mess'))
    with pytest.raises(ModelError, match=r"not JSON: '\{\"id\": \"chatcmpl-1\""):
        await generator.generate(PROMPT, Verdict, stage="match")
