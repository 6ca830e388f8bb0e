"""Azure OpenAI, through the official ``openai`` SDK's ``AsyncAzureOpenAI`` client.

Azure serves OpenAI's models under a resource endpoint, a deployment name and an API version;
once the client knows them, requests and answers are OpenAI's, so the OpenAI adapters do the
rest (structured outputs, the repair retry, streaming, error messages).
"""

from __future__ import annotations

import os

import openai

from tactful.errors import ConfigurationError
from tactful.llm.openai import OpenAIEmbedder, OpenAIGenerator

# The GA version that has structured outputs (response_format json_schema).
DEFAULT_API_VERSION = "2024-10-21"


def _resolve_api_key(api_key: str | None) -> str:
    key = api_key or os.environ.get("AZURE_OPENAI_API_KEY")
    if not key:
        raise ConfigurationError(
            "The Azure OpenAI model provider needs an API key: set TACTFUL_AZURE_API_KEY "
            "(or AZURE_OPENAI_API_KEY)."
        )
    return key


def _client(
    deployment: str,
    *,
    endpoint: str,
    api_key: str | None,
    api_version: str,
    timeout_s: float,
    max_retries: int,
) -> openai.AsyncAzureOpenAI:
    if not endpoint:
        raise ConfigurationError(
            "The Azure OpenAI model provider needs the resource endpoint, e.g. "
            "https://my-resource.openai.azure.com."
        )
    return openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint,
        azure_deployment=deployment,
        api_key=_resolve_api_key(api_key),
        api_version=api_version,
        timeout=timeout_s,
        max_retries=max_retries,
    )


def azure_generator(
    deployment: str,
    *,
    endpoint: str,
    api_key: str | None = None,
    api_version: str = DEFAULT_API_VERSION,
    timeout_s: float = 60.0,
    max_retries: int = 2,
    use_json_schema: bool = True,
) -> OpenAIGenerator:
    """A generator on the Azure OpenAI ``deployment`` of the resource at ``endpoint``.

    The key is ``api_key``, else the ``AZURE_OPENAI_API_KEY`` environment variable. The
    generator reports provider ``"azure"`` and closes its client in ``aclose``. For Microsoft
    Entra ID tokens, build an ``openai.AsyncAzureOpenAI`` with ``azure_ad_token_provider`` and
    pass it to ``OpenAIGenerator(deployment, client=..., provider="azure")``.
    """
    client = _client(
        deployment,
        endpoint=endpoint,
        api_key=api_key,
        api_version=api_version,
        timeout_s=timeout_s,
        max_retries=max_retries,
    )
    return OpenAIGenerator(
        deployment,
        use_json_schema=use_json_schema,
        client=client,
        owns_client=True,
        provider="azure",
    )


def azure_embedder(
    deployment: str,
    *,
    endpoint: str,
    dimensions: int,
    api_key: str | None = None,
    api_version: str = DEFAULT_API_VERSION,
    timeout_s: float = 60.0,
    max_retries: int = 2,
    send_dimensions: bool | None = None,
) -> OpenAIEmbedder:
    """An embedder on the Azure OpenAI embedding ``deployment`` of the resource at ``endpoint``.

    ``dimensions`` is checked on every vector. It is sent with the request (shortening
    ``text-embedding-3`` vectors) when ``send_dimensions`` is true, or, when it is None, if
    the deployment's name starts with ``text-embedding-3`` (name the deployment after its model,
    or say so). The key as for ``azure_generator``.
    """
    client = _client(
        deployment,
        endpoint=endpoint,
        api_key=api_key,
        api_version=api_version,
        timeout_s=timeout_s,
        max_retries=max_retries,
    )
    return OpenAIEmbedder(
        deployment,
        dimensions=dimensions,
        client=client,
        owns_client=True,
        send_dimensions=send_dimensions,
    )
