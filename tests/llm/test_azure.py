"""Azure OpenAI through the official SDK's AsyncAzureOpenAI client, against the local wire
server's Azure routes (deployment in the path, api-version query, api-key header)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import openai
import pytest
from openai_wire import Fail, OpenAIWire, Reply, vector_for
from pydantic import BaseModel

import tactful
from tactful.errors import ConfigurationError, ModelError
from tactful.llm.azure import DEFAULT_API_VERSION, azure_embedder, azure_generator
from tactful.llm.base import Prompt
from tactful.llm.openai import OpenAIGenerator

DEPLOYMENT = "support-gpt4o"
PROMPT = Prompt(system="You match guidelines. STABLE PREFIX", user="Customer: where is my order?")


class Verdict(BaseModel):
    guideline_id: str
    applies: bool


VALID = '{"guideline_id": "g1", "applies": true}'


@pytest.fixture
async def generator(openai_wire: OpenAIWire) -> AsyncIterator[OpenAIGenerator]:
    gen = azure_generator(
        DEPLOYMENT, endpoint=openai_wire.endpoint, api_key="az-key", timeout_s=5, max_retries=0
    )
    async with gen:
        yield gen


async def test_structured_answer_goes_to_the_deployment(
    openai_wire: OpenAIWire, generator: OpenAIGenerator
) -> None:
    openai_wire.script(Reply(VALID, prompt_tokens=90, completion_tokens=12, cached_tokens=64))

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.content == Verdict(guideline_id="g1", applies=True)
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (90, 64)
    assert generator.provider == "azure"
    assert generator.model_name == DEPLOYMENT
    [recorded] = openai_wire.requests
    assert recorded.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert recorded.query == {"api-version": DEFAULT_API_VERSION}
    assert recorded.headers["api-key"] == "az-key"
    assert "authorization" not in recorded.headers
    assert recorded.body["response_format"]["type"] == "json_schema"
    assert recorded.body["messages"][0]["content"] == PROMPT.system


async def test_api_version_and_key_from_the_environment(
    openai_wire: OpenAIWire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    openai_wire.script(VALID)
    async with azure_generator(
        DEPLOYMENT, endpoint=openai_wire.endpoint, api_version="2025-01-01-preview", max_retries=0
    ) as gen:
        await gen.generate(PROMPT, Verdict, stage="match")

    [recorded] = openai_wire.requests
    assert recorded.query == {"api-version": "2025-01-01-preview"}
    assert recorded.headers["api-key"] == "env-key"


def test_no_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)

    with pytest.raises(ConfigurationError, match="TACTFUL_AZURE_API_KEY"):
        azure_generator(DEPLOYMENT, endpoint="https://example.openai.azure.com")
    with pytest.raises(ConfigurationError, match="TACTFUL_AZURE_API_KEY"):
        azure_embedder("emb", endpoint="https://example.openai.azure.com", dimensions=8)
    with pytest.raises(ConfigurationError, match="endpoint"):
        azure_generator(DEPLOYMENT, endpoint="", api_key="k")


async def test_streaming(openai_wire: OpenAIWire, generator: OpenAIGenerator) -> None:
    openai_wire.script(Reply("Your order ships today.", prompt_tokens=30, completion_tokens=5))
    pieces: list[str] = []

    async def collect(piece: str) -> None:
        pieces.append(piece)

    streamed = await generator.stream(PROMPT, stage="compose", on_text=collect)

    assert pieces == ["Your ", "order ", "ships ", "today."]
    assert streamed.text == "Your order ships today."
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (30, 5)
    [recorded] = openai_wire.requests
    assert recorded.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert recorded.body["stream_options"] == {"include_usage": True}


async def test_embeddings(openai_wire: OpenAIWire) -> None:
    texts = ["refund policy", "shipping times"]
    async with azure_embedder(
        "emb-large",
        endpoint=openai_wire.endpoint,
        dimensions=12,
        api_key="az-key",
        max_retries=0,
        send_dimensions=True,
    ) as embedder:
        vectors = await embedder.embed(texts)

    assert vectors.shape == (2, 12)
    expected = np.asarray(vector_for("refund policy", 12), dtype=np.float32)
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), rtol=1e-5)
    [recorded] = openai_wire.requests
    assert recorded.path == "/openai/deployments/emb-large/embeddings"
    assert recorded.query == {"api-version": DEFAULT_API_VERSION}
    assert recorded.headers["api-key"] == "az-key"
    # The deployment's name does not say text-embedding-3: sent only because it was asked.
    assert recorded.body["dimensions"] == 12


async def test_embedding_dimensions_follow_the_deployment_name(openai_wire: OpenAIWire) -> None:
    async with (
        azure_embedder(
            "text-embedding-3-small", endpoint=openai_wire.endpoint, dimensions=8, api_key="k"
        ) as named,
        azure_embedder(
            "ada-prod", endpoint=openai_wire.endpoint, dimensions=8, api_key="k"
        ) as other,
    ):
        await named.embed(["a"])
        await other.embed(["a"])

    first, second = openai_wire.embedding_requests
    assert first["dimensions"] == 8
    assert "dimensions" not in second


@pytest.mark.parametrize(
    ("status", "message"),
    [(500, "The server had an error while processing your request."), (429, "Rate limit hit")],
)
async def test_http_errors_become_model_errors(
    openai_wire: OpenAIWire, generator: OpenAIGenerator, status: int, message: str
) -> None:
    openai_wire.script(Fail(status, message=message))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    text = str(caught.value)
    assert f"HTTP {status}: {message}" in text
    assert DEPLOYMENT in text and "'match'" in text


async def test_missing_key_is_answered_in_azures_shape(openai_wire: OpenAIWire) -> None:
    # An Entra ID token instead of a key: the wire server's gate wants the api-key header.
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=openai_wire.endpoint,
        azure_deployment=DEPLOYMENT,
        azure_ad_token="entra-token",
        api_version=DEFAULT_API_VERSION,
        max_retries=0,
    )
    gen = OpenAIGenerator(DEPLOYMENT, client=client, provider="azure")

    with pytest.raises(ModelError) as caught:
        await gen.generate(PROMPT, Verdict, stage="match")

    assert "HTTP 401: Access denied due to invalid subscription key" in str(caught.value)
    assert "check the API key" in str(caught.value)
    # A client passed in is the caller's to close.
    await gen.aclose()
    assert not client.is_closed()
    await client.close()


async def test_the_generator_closes_the_client_it_made(openai_wire: OpenAIWire) -> None:
    gen = azure_generator(DEPLOYMENT, endpoint=openai_wire.endpoint, api_key="k")
    embedder = azure_embedder("emb", endpoint=openai_wire.endpoint, dimensions=8, api_key="k")
    assert not gen._client.is_closed() and not embedder._client.is_closed()

    await gen.aclose()
    await embedder.aclose()

    assert gen._client.is_closed() and embedder._client.is_closed()


async def test_a_hang_times_out(openai_wire: OpenAIWire) -> None:
    openai_wire.script(Reply(VALID, delay_s=3.0), Reply(VALID, delay_s=3.0))
    async with azure_generator(
        DEPLOYMENT, endpoint=openai_wire.endpoint, api_key="k", timeout_s=0.3, max_retries=0
    ) as gen:
        with pytest.raises(ModelError, match=r"timed out after 0\.3 s"):
            await gen.generate(PROMPT, Verdict, stage="match")
        # The caller's per-call timeout wins over the adapter's default.
        with pytest.raises(ModelError, match=r"timed out after 0\.2 s"):
            await gen.generate(PROMPT, Verdict, stage="match", timeout_s=0.2)


async def test_a_turn_on_azure_with_provider_embeddings(openai_wire: OpenAIWire) -> None:
    """The engine with Azure's generator and a 16-dimensional Azure embedder (not MiniLM's
    384): retrieval, matching and composition all go through the deployments."""
    match = {
        "checks": [
            {
                "guideline": 1,
                "condition_restated": "asks about a refund",
                "evidence": "customer: 'where is my refund?'",
                "applies": True,
            }
        ]
    }
    openai_wire.script(json.dumps(match), json.dumps({"message": "Refunds take 5 days."}))
    generator = azure_generator(DEPLOYMENT, endpoint=openai_wire.endpoint, api_key="k")
    async with (
        azure_embedder(
            "text-embedding-3-small", endpoint=openai_wire.endpoint, dimensions=16, api_key="k"
        ) as embedder,
        tactful.Server(transient=True, generator=generator, embedder=embedder) as s,
    ):
        agent = await s.create_agent("Support")
        await agent.create_guideline(
            "the customer asks about a refund", "say refunds take 5 days", id="refunds"
        )
        session = await s.create_session(agent)
        reply = await s.send(session, "where is my refund?")

    assert reply.data["message"] == "Refunds take 5 days."
    assert reply.data["guidelines"] == ["refunds"]
    paths = {r.path for r in openai_wire.requests}
    assert paths == {
        f"/openai/deployments/{DEPLOYMENT}/chat/completions",
        "/openai/deployments/text-embedding-3-small/embeddings",
    }
    assert all(r["dimensions"] == 16 for r in openai_wire.embedding_requests)
    # The server closed the generator it was given.
    assert generator._client.is_closed()
