"""The LiteLLM adapter, through LiteLLM's OpenAI-compatible route ("openai/<name>" at
api_base), against the real local OpenAI-wire server."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from openai_wire import Body, Fail, OpenAIWire, Reply, vector_for
from pydantic import BaseModel

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.base import Prompt
from tactful.llm.litellm import LiteLLMEmbedder, LiteLLMGenerator

pytestmark = [
    # Not importorskip: importing LiteLLM before the adapter has set it to work offline would
    # fetch its model catalogue.
    pytest.mark.skipif(
        importlib.util.find_spec("litellm") is None, reason="needs the litellm extra"
    ),
    # Pydantic warns about LiteLLM's own ReadOnly TypedDicts as LiteLLM loads them lazily.
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    # ... and LiteLLM's streaming reads a pydantic attribute in a deprecated way.
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance"
        ":DeprecationWarning"
    ),
]

NAME = "gpt-test"
MODEL = f"openai/{NAME}"
PROMPT = Prompt(system="You match guidelines. STABLE PREFIX", user="Customer: where is my order?")


class Verdict(BaseModel):
    guideline_id: str
    applies: bool
    score: float


VALID = '{"guideline_id": "g1", "applies": true, "score": 0.9}'


@pytest.fixture
async def generator(openai_wire: OpenAIWire) -> AsyncIterator[LiteLLMGenerator]:
    # No retries: the adapter's own behaviour is under test, and retries only slow it down.
    async with LiteLLMGenerator(
        MODEL, api_base=openai_wire.base_url, api_key="sk-test", timeout_s=5, max_retries=0
    ) as gen:
        yield gen


async def _ignore(piece: str) -> None:
    raise AssertionError(f"no text expected, got {piece!r}")


async def test_valid_structured_answer(
    openai_wire: OpenAIWire, generator: LiteLLMGenerator
) -> None:
    openai_wire.script(Reply(VALID, prompt_tokens=120, completion_tokens=30, cached_tokens=100))

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.content == Verdict(guideline_id="g1", applies=True, score=0.9)
    assert result.attempts == 1
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (120, 30)
    assert result.usage.cached_tokens == 100
    assert result.raw == VALID
    assert generator.provider == "litellm" and generator.model_name == MODEL
    [recorded] = openai_wire.requests
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer sk-test"
    sent = recorded.body
    # LiteLLM's route prefix is not part of the model name the server sees.
    assert sent["model"] == NAME
    assert sent["temperature"] == 0
    assert sent["messages"] == [
        {"role": "system", "content": PROMPT.system},
        {"role": "user", "content": PROMPT.user},
    ]
    response_format = sent["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Verdict"
    assert response_format["json_schema"]["strict"] is False
    schema = response_format["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"guideline_id", "applies", "score"}


async def test_invalid_then_valid_repairs_once(
    openai_wire: OpenAIWire, generator: LiteLLMGenerator
) -> None:
    openai_wire.script(
        Reply('{"guideline_id": "g1", "applies": "maybe"}', prompt_tokens=100, completion_tokens=9),
        Reply(VALID, prompt_tokens=140, completion_tokens=20, cached_tokens=96),
    )

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.attempts == 2
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (240, 29)
    assert result.usage.cached_tokens == 96
    first, second = openai_wire.chat_requests
    assert second["messages"][:2] == first["messages"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == '{"guideline_id": "g1", "applies": "maybe"}'
    repair = second["messages"][3]["content"]
    assert "applies: Input should be a valid boolean" in repair
    assert "score: Field required" in repair


async def test_invalid_twice_raises(openai_wire: OpenAIWire, generator: LiteLLMGenerator) -> None:
    openai_wire.script('{"applies": true}', "no JSON here")

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert MODEL in message and "'match'" in message
    assert "repair retry" in message and "Invalid JSON" in message
    assert len(openai_wire.chat_requests) == 2


async def test_refusal_gets_a_repair_retry(
    openai_wire: OpenAIWire, generator: LiteLLMGenerator
) -> None:
    openai_wire.script(Reply(None, refusal="I can't help with that."), VALID)

    result = await generator.generate(PROMPT, Verdict, stage="match")

    assert result.attempts == 2
    assert "refused: I can't help" in openai_wire.chat_requests[1]["messages"][3]["content"]


async def test_json_object_mode(openai_wire: OpenAIWire) -> None:
    openai_wire.script(VALID)
    async with LiteLLMGenerator(
        MODEL, api_base=openai_wire.base_url, api_key="k", use_json_schema=False, max_retries=0
    ) as gen:
        result = await gen.generate(PROMPT, Verdict, stage="match")

    assert result.content.applies is True
    [sent] = openai_wire.chat_requests
    assert sent["response_format"] == {"type": "json_object"}
    system = sent["messages"][0]["content"]
    assert system.startswith(PROMPT.system) and "JSON Schema" in system
    assert '"guideline_id"' in system


@pytest.mark.parametrize(
    ("status", "expected"), [(500, "HTTP 500"), (429, "HTTP 429"), (401, "HTTP 401")]
)
async def test_http_errors_become_model_errors(
    openai_wire: OpenAIWire, generator: LiteLLMGenerator, status: int, expected: str
) -> None:
    openai_wire.script(Fail(status, message="upstream exploded"))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="respond")

    message = str(caught.value)
    assert f"{expected}: upstream exploded" in message
    assert MODEL in message and "'respond'" in message
    # LiteLLM's and the SDK's wrapping is gone.
    assert "litellm." not in message and "Exception" not in message
    assert "Error code" not in message
    if status == 401:
        assert "check the API key" in message


async def test_retries_come_from_the_constructor(openai_wire: OpenAIWire) -> None:
    openai_wire.script(503, VALID)
    async with LiteLLMGenerator(
        MODEL, api_base=openai_wire.base_url, api_key="k", timeout_s=5, max_retries=1
    ) as gen:
        result = await gen.generate(PROMPT, Verdict, stage="match")

    # A transport retry is not a repair attempt, and LiteLLM's and the SDK's do not add up.
    assert result.attempts == 1
    assert len(openai_wire.chat_requests) == 2

    openai_wire.reset()
    openai_wire.script(503, 503, 503)
    async with LiteLLMGenerator(
        MODEL, api_base=openai_wire.base_url, api_key="k", timeout_s=5, max_retries=0
    ) as gen:
        with pytest.raises(ModelError, match="HTTP 503"):
            await gen.generate(PROMPT, Verdict, stage="match")
    assert len(openai_wire.chat_requests) == 1


async def test_a_hang_times_out(openai_wire: OpenAIWire) -> None:
    openai_wire.script(Reply(VALID, delay_s=3.0), Reply(VALID, delay_s=3.0))
    async with LiteLLMGenerator(
        MODEL, api_base=openai_wire.base_url, api_key="k", timeout_s=0.3, max_retries=0
    ) as gen:
        with pytest.raises(ModelError) as caught:
            await gen.generate(PROMPT, Verdict, stage="match")
        assert f"the request to {openai_wire.base_url} timed out after 0.3 s" in str(caught.value)
        # The caller's per-call timeout wins over the adapter's default.
        with pytest.raises(ModelError, match=r"timed out after 0\.2 s"):
            await gen.generate(PROMPT, Verdict, stage="match", timeout_s=0.2)


async def test_server_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    async with LiteLLMGenerator(MODEL, api_base=base_url, api_key="k", max_retries=0) as gen:
        with pytest.raises(ModelError) as caught:
            await gen.generate(PROMPT, Verdict, stage="match")

    assert f"could not connect to the provider at {base_url}" in str(caught.value)


async def test_a_body_that_is_not_json_is_a_model_error(
    openai_wire: OpenAIWire, generator: LiteLLMGenerator
) -> None:
    openai_wire.script(Body("<html>upstream overloaded</html>", content_type="text/html"))

    with pytest.raises(ModelError) as caught:
        await generator.generate(PROMPT, Verdict, stage="match")

    message = str(caught.value)
    assert "not JSON" in message and "'match'" in message
    assert "<html>upstream overloaded</html>" in message
    assert "HTTP" not in message  # it was a 200, whatever LiteLLM's exception says

    # Said to be JSON, and cut short.
    openai_wire.script(Body('{"id": "chatcmpl-1", "choices": [{"mess'))
    with pytest.raises(ModelError, match=r"not JSON: '\{\"id\": \"chatcmpl-1\""):
        await generator.generate(PROMPT, Verdict, stage="match")


async def test_streaming_with_usage(openai_wire: OpenAIWire, generator: LiteLLMGenerator) -> None:
    openai_wire.script(
        Reply("Your order ships today.", prompt_tokens=30, completion_tokens=5, cached_tokens=24)
    )
    pieces: list[str] = []

    async def collect(piece: str) -> None:
        pieces.append(piece)

    assert generator.supports_streaming
    streamed = await generator.stream(PROMPT, stage="compose", on_text=collect)

    assert pieces == ["Your ", "order ", "ships ", "today."]
    assert streamed.text == "Your order ships today."
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (30, 5)
    assert streamed.usage.cached_tokens == 24
    [request] = openai_wire.chat_requests
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert request["model"] == NAME
    assert "response_format" not in request


async def test_streaming_errors_become_model_errors(
    openai_wire: OpenAIWire, generator: LiteLLMGenerator
) -> None:
    openai_wire.script(Fail(503, message="overloaded"))
    with pytest.raises(ModelError, match="HTTP 503: overloaded"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore)

    openai_wire.script(Reply("   "))
    with pytest.raises(ModelError, match="empty answer"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore)

    openai_wire.script(Reply("slow words", delay_s=3.0))
    with pytest.raises(ModelError, match=r"timed out after 0\.2 s"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore, timeout_s=0.2)


async def test_a_failing_on_text_is_not_a_model_error(
    openai_wire: OpenAIWire, generator: LiteLLMGenerator
) -> None:
    openai_wire.script("Hello there")

    with pytest.raises(AssertionError, match="no text expected"):
        await generator.stream(PROMPT, stage="compose", on_text=_ignore)


async def test_extra_goes_to_every_call(openai_wire: OpenAIWire) -> None:
    openai_wire.script(VALID)
    async with LiteLLMGenerator(
        MODEL,
        api_base=openai_wire.base_url,
        api_key="k",
        max_retries=0,
        extra={"extra_headers": {"x-tenant": "acme"}, "seed": 7},
    ) as gen:
        await gen.generate(PROMPT, Verdict, stage="match")

    [recorded] = openai_wire.requests
    assert recorded.headers["x-tenant"] == "acme"
    assert recorded.body["seed"] == 7


async def test_hosted_vllm_route(openai_wire: OpenAIWire) -> None:
    """LiteLLM's vLLM route speaks the same wire protocol and needs no key."""
    openai_wire.script(VALID)
    async with LiteLLMGenerator(
        f"hosted_vllm/{NAME}", api_base=openai_wire.base_url, max_retries=0
    ) as gen:
        result = await gen.generate(PROMPT, Verdict, stage="match")

    assert result.content.guideline_id == "g1"
    [sent] = openai_wire.chat_requests
    assert sent["model"] == NAME
    assert sent["response_format"]["type"] == "json_schema"


async def test_embeddings_are_normalised_and_ordered(openai_wire: OpenAIWire) -> None:
    openai_wire.reverse_embeddings = True
    texts = ["refund policy", "shipping times", "opening hours"]
    async with LiteLLMEmbedder(
        "openai/text-embedding-3-small",
        dimensions=16,
        api_base=openai_wire.base_url,
        api_key="k",
        max_retries=0,
    ) as embedder:
        vectors = await embedder.embed(texts)
        assert (await embedder.embed([])).shape == (0, 16)

    assert vectors.dtype == np.float32 and vectors.shape == (3, 16)
    for row, text in zip(vectors, texts, strict=True):
        expected = np.asarray(vector_for(text, 16), dtype=np.float32)
        np.testing.assert_allclose(row, expected / np.linalg.norm(expected), rtol=1e-5)
    [sent] = openai_wire.embedding_requests
    # No encoding_format: floats are the default, and some providers reject the field.
    assert sent == {"model": "text-embedding-3-small", "input": texts, "dimensions": 16}


async def test_embedding_errors_and_dimension_mismatch(openai_wire: OpenAIWire) -> None:
    async with LiteLLMEmbedder(
        "openai/nomic-embed-text", dimensions=16, api_base=openai_wire.base_url, api_key="k"
    ) as embedder:
        # Not a text-embedding-3 model: no dimensions sent; the server's 8 are a mismatch.
        with pytest.raises(ModelError, match="8-dimensional vectors but 16 were configured"):
            await embedder.embed(["hello"])
        openai_wire.fail_embeddings(Fail(400, message="input too long"))
        with pytest.raises(ModelError, match="HTTP 400: input too long"):
            await embedder.embed(["x" * 10])

    assert "dimensions" not in openai_wire.embedding_requests[0]
    with pytest.raises(ConfigurationError, match="positive"):
        LiteLLMEmbedder("openai/x", dimensions=0)


def test_offline_import_and_calls(openai_wire: OpenAIWire, tmp_path: Path) -> None:
    """``import tactful`` does not load LiteLLM, and a call through it opens no connection
    other than to the configured server: no model catalogue, no tokenizer download. Run in a
    fresh interpreter, where LiteLLM has not been imported yet, with an audit hook on sockets."""
    openai_wire.script(VALID)
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, json, os, sys
            seen = []
            def hook(event, args):
                if event == "socket.connect":
                    seen.append(["connect", str(args[1])])
                elif event == "socket.getaddrinfo":
                    seen.append(["resolve", str(args[0])])
            sys.addaudithook(hook)
            import tactful
            loaded_with_tactful = "litellm" in sys.modules
            from pydantic import BaseModel
            from tactful.llm.base import Prompt
            from tactful.llm.litellm import LiteLLMGenerator
            class Verdict(BaseModel):
                guideline_id: str
                applies: bool
                score: float
            async def main():
                async with LiteLLMGenerator(
                    "openai/gpt-test", api_base=sys.argv[1], api_key="k", max_retries=0
                ) as gen:
                    answer = await gen.generate(Prompt("s", "u"), Verdict, stage="match")
                return answer.content.guideline_id
            answer = asyncio.run(main())
            print(json.dumps({
                "loaded_with_tactful": loaded_with_tactful,
                "answer": answer,
                "seen": seen,
                "offline": os.environ.get("LITELLM_OFFLINE_MODE"),
            }))
            """
        )
    )
    env = {key: value for key, value in os.environ.items() if "LITELLM" not in key}
    done = subprocess.run(
        [sys.executable, str(script), openai_wire.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded_with_tactful"] is False
    assert report["answer"] == "g1"
    port = openai_wire.base_url.split(":")[2].split("/")[0]
    assert ["connect", f"('127.0.0.1', {port})"] in report["seen"]
    elsewhere = [
        event for event in report["seen"] if "127.0.0.1" not in event[1] and event[1] != "None"
    ]
    assert elsewhere == []
    assert report["offline"] == "true"
