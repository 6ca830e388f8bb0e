"""The models the settings describe, built and routed (docs/models.md).

Each provider's adapter is imported only when the settings name it, so that a server on one
provider never loads another's SDK. Adapters are built with no retries of their own: the
router (``llm.routing``) retries, within the turn's deadline, and records every attempt.
"""

from __future__ import annotations

import os
from typing import Literal

from tactful.config import ModelSpec, Settings
from tactful.errors import ConfigurationError
from tactful.llm.base import Embedder, Generator
from tactful.llm.breaker import BreakerPolicy, CircuitBreaker
from tactful.llm.routing import STAGES, CallPolicy, ModelRouter, RoutedModel

# The name of the model the flat provider settings describe (openai_model, ...).
PROVIDER_MODEL = "default"


def provider_spec(settings: Settings) -> ModelSpec | None:
    """The model the flat provider settings describe, or None for the offline tier."""
    provider = settings.model_provider
    if provider == "auto":
        provider = _auto_provider(settings)
    if provider == "offline":
        return None
    if provider == "openai":
        return ModelSpec(
            provider="openai",
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            json_schema=settings.openai_json_schema,
            fallback=settings.fallback_model,
        )
    if provider == "anthropic":
        return ModelSpec(
            provider="anthropic",
            model=settings.anthropic_model,
            base_url=settings.anthropic_base_url,
            api_key=settings.anthropic_api_key,
            fallback=settings.fallback_model,
        )
    if provider == "azure":
        return ModelSpec(
            provider="azure",
            model=settings.azure_deployment,
            base_url=settings.azure_endpoint,
            api_key=settings.azure_api_key,
            api_version=settings.azure_api_version,
            fallback=settings.fallback_model,
        )
    if not settings.litellm_model:
        raise ConfigurationError(
            "TACTFUL_MODEL_PROVIDER=litellm needs TACTFUL_LITELLM_MODEL, e.g. "
            "gemini/gemini-2.0-flash or ollama_chat/llama3.1"
        )
    return ModelSpec(
        provider="litellm",
        model=settings.litellm_model,
        base_url=settings.litellm_api_base,
        api_key=settings.litellm_api_key,
        fallback=settings.fallback_model,
    )


def _auto_provider(settings: Settings) -> Literal["openai", "anthropic", "offline"]:
    if settings.openai_api_key or settings.openai_base_url or os.environ.get("OPENAI_API_KEY"):
        return "openai"
    if settings.anthropic_api_key or os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    return "offline"


def build_model(spec: ModelSpec, settings: Settings) -> Generator:
    """The adapter for one model, with the settings' per-request timeout and no retries; a
    provider whose SDK is not installed is a configuration error that says what to install."""
    try:
        return _build(spec, settings)
    except ModuleNotFoundError as e:
        extra = {"anthropic": "anthropic", "litellm": "litellm"}.get(spec.provider)
        if extra is None or e.name is None or not e.name.startswith(extra):
            raise
        raise ConfigurationError(
            f"the {spec.provider} provider needs its SDK: pip install 'tactful[{extra}]'"
        ) from e


def _build(spec: ModelSpec, settings: Settings) -> Generator:
    key = spec.api_key or getattr(settings, f"{spec.provider}_api_key")
    api_key = key.get_secret_value() if key is not None else None
    timeout_s = settings.model_timeout_s
    if spec.provider == "openai":
        from tactful.llm.openai import OpenAIGenerator

        return OpenAIGenerator(
            spec.model,
            base_url=spec.base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=0,
            use_json_schema=spec.json_schema,
        )
    if spec.provider == "anthropic":
        from tactful.llm.anthropic import AnthropicGenerator

        return AnthropicGenerator(
            spec.model, base_url=spec.base_url, api_key=api_key, timeout_s=timeout_s, max_retries=0
        )
    if spec.provider == "azure":
        from tactful.llm.azure import azure_generator

        if not spec.base_url:
            raise ConfigurationError(
                "An Azure OpenAI model needs its endpoint: set TACTFUL_AZURE_ENDPOINT (or the "
                "model's base_url), e.g. https://NAME.openai.azure.com"
            )
        return azure_generator(
            spec.model,
            endpoint=spec.base_url,
            api_key=api_key,
            api_version=spec.api_version or settings.azure_api_version,
            timeout_s=timeout_s,
            max_retries=0,
            use_json_schema=spec.json_schema,
        )
    from tactful.llm.litellm import LiteLLMGenerator

    return LiteLLMGenerator(
        spec.model,
        api_base=spec.base_url,
        api_key=api_key,
        timeout_s=timeout_s,
        max_retries=0,
        use_json_schema=spec.json_schema,
    )


def model_router(settings: Settings) -> ModelRouter | None:
    """The router over every model the settings describe, or None for the offline tier."""
    flat = None if settings.model_provider == "offline" else provider_spec(settings)
    specs = dict(settings.models)
    routes = dict(settings.stage_models)
    if "default" not in routes:
        if flat is not None:
            specs[PROVIDER_MODEL] = flat
            routes["default"] = PROVIDER_MODEL
        elif routes:
            unrouted = [s for s in STAGES if s not in routes]
            if unrouted:
                raise ConfigurationError(
                    f"stage_models names no model for {', '.join(unrouted)}: add a 'default' "
                    "entry, or configure a model provider"
                )
            routes["default"] = routes["compose"]
    if "default" not in routes:
        return None
    breaker = BreakerPolicy(
        failures=settings.model_breaker_failures, cooldown_s=settings.model_breaker_cooldown_s
    )
    built: dict[str, RoutedModel] = {}

    def routed(name: str) -> RoutedModel:
        if name not in built:
            spec = specs[name]
            built[name] = RoutedModel(
                name, build_model(spec, settings), CircuitBreaker(breaker), where=_where(spec)
            )
            if spec.fallback and spec.fallback != name:
                built[name].fallback = routed(spec.fallback)
        return built[name]

    default = routed(routes.pop("default"))
    stages = {stage: routed(name) for stage, name in routes.items()}
    policy = CallPolicy(timeout_s=settings.model_timeout_s, retries=settings.model_retries)
    return ModelRouter(default, stages, policy=policy)


def _where(spec: ModelSpec) -> str:
    if spec.base_url:
        return spec.base_url
    return {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}.get(spec.provider, "")


def describe(router: ModelRouter) -> str:
    """One line: which model answers which stage, and the fallbacks."""
    parts = [router.default.describe()]
    parts += [f"{stage}: {model.describe()}" for stage, model in router.stages.items()]
    fallbacks = [f"{m.name} -> {m.fallback.name}" for m in router.models() if m.fallback]
    line = "; ".join(parts)
    return f"{line} (fallback {', '.join(fallbacks)})" if fallbacks else line


def build_embedder(settings: Settings) -> Embedder:
    """A provider's embeddings API, as the embedding settings describe it (with the provider's
    key and base URL settings where the embedding ones are not set)."""
    provider = settings.embedding_provider
    key = settings.embedding_api_key or getattr(settings, f"{provider}_api_key", None)
    api_key = key.get_secret_value() if key is not None else None
    model, dims = settings.embedding_model, settings.embedding_dimensions
    if provider == "openai":
        from tactful.llm.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            model,
            dimensions=dims,
            base_url=settings.embedding_base_url or settings.openai_base_url,
            api_key=api_key,
            timeout_s=settings.model_timeout_s,
        )
    if provider == "azure":
        from tactful.llm.azure import azure_embedder

        endpoint = settings.embedding_base_url or settings.azure_endpoint
        if not endpoint:
            raise ConfigurationError(
                "Azure embeddings need the resource endpoint: set TACTFUL_AZURE_ENDPOINT or "
                "TACTFUL_EMBEDDING_BASE_URL"
            )
        return azure_embedder(
            model,
            endpoint=endpoint,
            dimensions=dims,
            api_key=api_key,
            api_version=settings.azure_api_version,
            timeout_s=settings.model_timeout_s,
        )
    try:
        from tactful.llm.litellm import LiteLLMEmbedder
    except ModuleNotFoundError as e:
        raise ConfigurationError(
            "LiteLLM embeddings need its SDK: pip install 'tactful[litellm]'"
        ) from e
    return LiteLLMEmbedder(
        model,
        dimensions=dims,
        api_base=settings.embedding_base_url or settings.litellm_api_base,
        api_key=api_key,
        timeout_s=settings.model_timeout_s,
    )
