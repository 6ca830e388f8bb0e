"""All settings in one model: ``TACTFUL_*`` environment variables or an optional tactful.toml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tactful.domain.moderation import MODERATION_TAGS, ModerationAction
from tactful.domain.pricing import ModelPrice
from tactful.engine.options import (
    HOOK_TIMEOUT_S,
    JOURNEY_CONDITION_THRESHOLD,
    MODERATION_REFUSAL,
    MODERATION_TIMEOUT_S,
    OFFLINE_MATCH_THRESHOLD,
    RETRIEVER_TIMEOUT_S,
    TOOL_TIMEOUT_S,
    TURN_DEADLINE_S,
)
from tactful.llm.routing import STAGES

Provider = Literal["openai", "anthropic", "azure", "litellm"]
# What `stage_models` may name: the engine's model stages, and the default for the others.
MODEL_STAGES = ("default", *STAGES)


class ModelSpec(BaseModel):
    """One model tactful may call (``models`` in the settings; docs/models.md)."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider
    # The provider's model name; for azure, the deployment; for litellm, its "provider/model".
    model: str = Field(min_length=1)
    # openai and anthropic: the API's base URL; azure: the resource endpoint; litellm: api_base.
    base_url: str | None = None
    # Else the provider's key setting (openai_api_key, ...), else its usual environment variable.
    api_key: SecretStr | None = None
    # azure only: the API version.
    api_version: str | None = None
    # openai, azure, litellm: JSON schema in response_format; false: JSON mode with the schema
    # in the prompt, for servers without structured outputs.
    json_schema: bool = True
    # Another entry of `models` to try when this one fails or its breaker is open.
    fallback: str | None = None


class Settings(BaseSettings):
    """Server settings. Secrets are never printed."""

    model_config = SettingsConfigDict(
        env_prefix="TACTFUL_", toml_file="tactful.toml", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8800, ge=1, le=65535)
    data_dir: Path = Path(".tactful")
    # SQLAlchemy URL; empty means the embedded SQLite file under data_dir (or memory if transient).
    database_url: str = ""
    # PostgreSQL: connections each process keeps open, and how many more a burst may open
    # (plus one for the bus's LISTEN): size the server's max_connections for every process.
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    database_max_overflow: int = Field(default=20, ge=0, le=1000)
    transient: bool = False

    # Model tier (docs/models.md): "offline" (no model; embeddings + canned responses), one
    # provider, or "auto": openai when its key or base URL is set, else anthropic when its key
    # is set, else offline.
    model_provider: Literal["auto", "offline", "openai", "anthropic", "azure", "litellm"] = "auto"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_json_schema: bool = True
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-5"
    # Azure OpenAI: the resource endpoint (https://NAME.openai.azure.com) and the deployment.
    azure_api_key: SecretStr | None = None
    azure_endpoint: str | None = None
    azure_deployment: str = "gpt-4o-mini"
    azure_api_version: str = "2024-10-21"
    # LiteLLM (pip install 'tactful[litellm]'): "gemini/gemini-2.0-flash", "bedrock/...", ...
    litellm_model: str = ""
    litellm_api_base: str | None = None
    litellm_api_key: SecretStr | None = None
    # Named models (TACTFUL_MODELS as JSON, or [models.NAME] tables in tactful.toml), and which
    # one answers each stage ({"match": "fast", "compose": "strong", "default": ...}); stages
    # not named use "default", else the model the provider settings above describe.
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    stage_models: dict[str, str] = Field(default_factory=dict)
    # A model of `models` to try when the provider settings' model fails.
    fallback_model: str | None = None

    # Embeddings: "offline" (all-MiniLM-L6-v2 on this CPU, 384 dimensions, no network) or a
    # provider's embeddings API; its model, the dimensions the index keeps, and how to reach it
    # (else the provider's key and base URL settings above).
    embedding_provider: Literal["offline", "openai", "azure", "litellm"] = "offline"
    embedding_model: str = "text-embedding-3-small"
    embedding_dimensions: int = Field(default=1536, ge=1, le=65536)
    embedding_base_url: str | None = None
    embedding_api_key: SecretStr | None = None
    # The offline embedder computes in a process of its own (started with the server), not in a
    # thread that shares the interpreter's lock with the event loop: under load the server
    # answers more turns per second (docs/benchmarks.md). False: in a thread, as before.
    embedder_process: bool = True
    # Where the offline embedder's encoder runs: "onnx" (ONNX Runtime, the onnx extra: about
    # 1.3 to 1.5 times as fast on a turn's texts), "numpy", or "auto" (ONNX Runtime when
    # installed).
    embedder_runtime: Literal["auto", "onnx", "numpy"] = "auto"
    # ONNX Runtime's threads for one embedding (they sleep between embeddings; a second one
    # was no faster in a server's turns, docs/benchmarks.md).
    embedder_threads: int = Field(default=1, ge=1, le=64)

    # A cassette (docs/cassettes.md): record every model call to this file, or replay them
    # from it with no model, key or network.
    model_cassette: Path | None = None
    model_cassette_mode: Literal["record", "replay"] = "replay"

    # -- model failures (llm.routing) -----------------------------------------------------------
    # A turn's model calls all end within turn_deadline_s of its start; one request within
    # model_timeout_s; a retryable failure is tried model_retries more times while time is left.
    turn_deadline_s: float = Field(default=TURN_DEADLINE_S, gt=0, le=3600)
    model_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    model_retries: int = Field(default=1, ge=0, le=10)
    # After this many failures in a row a model's calls are skipped for the cool-down (0: never).
    model_breaker_failures: int = Field(default=3, ge=0, le=1000)
    model_breaker_cooldown_s: float = Field(default=30.0, gt=0, le=86400)

    # Offline tier: a guideline matches when its calibrated similarity reaches this.
    offline_match_threshold: float = Field(default=OFFLINE_MATCH_THRESHOLD, ge=0.0, le=1.0)
    # Where the engine walks a journey by rules (offline, as it starts, after a tool state): a
    # conditional transition holds when its condition is this similar to the latest message.
    journey_condition_threshold: float = Field(default=JOURNEY_CONDITION_THRESHOLD, ge=0.0, le=1.0)
    max_message_chars: int = Field(default=8000, ge=1)
    # Threads of numpy's BLAS (OpenBLAS) in this process; 0 leaves its default (one per CPU).
    # Its idle threads spin while they wait for work: with one, the offline embedder and the
    # retrieval's matrix products cost several times less CPU (docs/benchmarks.md).
    blas_threads: int = Field(default=1, ge=0, le=256)
    # Allocations between two young-generation collections of Python's cycle collector in this
    # process; 0 leaves Python's 700. A turn at 1,000 guidelines allocates tens of thousands of
    # short-lived objects: at 700 the collector ran a dozen times in each, about 3 ms of the
    # turn (docs/benchmarks.md); at 20,000 most of them are freed before it looks.
    gc_threshold: int = Field(default=20_000, ge=0, le=10_000_000)
    long_poll_max_s: float = Field(default=60.0, gt=0, le=3600)

    # -- timeouts of the agent's own code (engine.options) ---------------------------------------
    # A tool call is cut after this (a tool's own timeout_s wins); a code matcher, a journey
    # transition's code condition or a hook after hook_timeout_s; a retriever after
    # retriever_timeout_s. What was cut is an error in the trace, and the turn goes on.
    tool_timeout_s: float = Field(default=TOOL_TIMEOUT_S, gt=0, le=3600)
    hook_timeout_s: float = Field(default=HOOK_TIMEOUT_S, gt=0, le=3600)
    retriever_timeout_s: float = Field(default=RETRIEVER_TIMEOUT_S, gt=0, le=3600)

    # -- exposure (docs/security.md) -----------------------------------------------------------
    # development: everyone is admin, allowed only while listening on loopback; production:
    # API keys, customer tokens and guest sessions, required to listen on any other address.
    mode: Literal["development", "production"] = "development"
    # Signs customer tokens (HS256); production needs one of at least 32 characters.
    secret_key: SecretStr | None = None
    # Browser origins allowed to call the API (CORS), comma-separated in the environment.
    # Development allows any origin; production none unless listed here ("*" for any).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where tool services (OpenAPI, MCP over HTTP) may connect: host names ("api.example.com",
    # "*.example.com"), "host:port", IP addresses or networks ("10.0.0.0/8", "[::1]:8080");
    # "*" is any host on a public address. Loopback, private, link-local and metadata addresses
    # are refused unless an entry names them explicitly: the host's own name, or the address or
    # a network holding it (wildcards only reach public addresses). Checked at registration and
    # on every connection, redirects included (docs/security.md).
    outbound_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    # The longest customer token an operator may mint, in seconds.
    customer_token_max_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, le=365 * 24 * 3600)

    # -- templates ------------------------------------------------------------------------------
    # A canned response renders to at most this many characters, in at most this many loop
    # iterations and calls, within this many seconds; beyond that it is disqualified.
    template_max_chars: int = Field(default=4000, ge=100, le=1_000_000)
    template_max_steps: int = Field(default=10_000, ge=100, le=10_000_000)
    template_timeout_s: float = Field(default=1.0, gt=0, le=60)

    # Server processes `tactful serve` runs on this host and port (PostgreSQL only: a SQLite
    # file has one process); they share the port (SO_REUSEPORT) and the database.
    workers: int = Field(default=1, ge=1, le=64)
    # Set for the processes of `--workers`: several sockets may listen on one port.
    reuse_port: bool = False

    # -- turns (engine.runner) -------------------------------------------------------------------
    # A worker holds a claimed turn this long (renewed every third of it); a turn whose worker
    # died is taken over once its lease expired, within turn_recovery_interval_s after.
    turn_lease_s: float = Field(default=30.0, ge=1, le=3600)
    turn_recovery_interval_s: float = Field(default=5.0, gt=0, le=600)
    # On SIGTERM, running turns get this long to finish; the rest are handed over.
    drain_grace_s: float = Field(default=20.0, ge=0, le=3600)

    # -- rate limits (per minute; 0 turns one off) ----------------------------------------------
    rate_messages_per_session: int = Field(default=30, ge=0, le=1_000_000)
    rate_messages_per_customer: int = Field(default=60, ge=0, le=1_000_000)
    # A BFF long-polls for many conversations with one key: generous, against runaway clients.
    rate_requests_per_key: int = Field(default=6000, ge=0, le=10_000_000)
    rate_guest_sessions_per_client: int = Field(default=20, ge=0, le=1_000_000)

    # -- moderation of customer messages (docs/moderation.md) -----------------------------------
    # What `moderation=auto` runs on a posted message: "local" rules (no network), or OpenAI's
    # moderation endpoint ("openai", reached only where outbound_hosts allow; its model, base URL
    # and key, else openai_base_url and openai_api_key); `paranoid` adds the local jailbreak check.
    moderation_provider: Literal["local", "openai"] = "local"
    moderation_model: str = "omni-moderation-latest"
    moderation_base_url: str | None = None
    moderation_api_key: SecretStr | None = None
    # A check that takes longer lets the message through (the trace says so).
    moderation_timeout_s: float = Field(default=MODERATION_TIMEOUT_S, gt=0, le=60)
    # What a flagged message leads to (an agent's moderation_action wins): the refusal below
    # with no model call, a handoff to a person (manual mode), or a warning in the prompts.
    moderation_action: ModerationAction = ModerationAction.REFUSE
    moderation_refusal: str = Field(default=MODERATION_REFUSAL, min_length=1, max_length=2000)
    # The local checks: the built-in rules, plus words and regular expressions per category
    # ({"harassment": ["..."], "jailbreak": ["..."]}, JSON in the environment).
    moderation_builtin_rules: bool = True
    moderation_words: dict[str, list[str]] = Field(default_factory=dict)
    moderation_patterns: dict[str, list[str]] = Field(default_factory=dict)

    # -- telemetry (docs/telemetry.md) ------------------------------------------------------------
    # US dollars per million tokens, by model name as the provider reports it (exact, else the
    # longest name it starts with): {"gpt-4o-mini": {"input": 0.15, "cached_input": 0.075,
    # "output": 0.6}}, JSON in TACTFUL_MODEL_PRICES. None by default: prices change, and a model
    # without a price costs null (unknown), never 0.
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # Prometheus metrics at GET /metrics (admin keys only in production).
    metrics_enabled: bool = True
    # An OTLP/HTTP collector (http://collector:4318): turn spans are sent there. Needs the otel
    # extra; unset, spans cost nothing.
    otel_endpoint: str | None = None

    @field_validator("model_prices")
    @classmethod
    def _named_prices(cls, value: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        # An empty name would be a prefix of every model.
        if any(not name.strip() for name in value):
            raise ValueError("a model price needs a model name")
        return value

    @field_validator("moderation_words", "moderation_patterns")
    @classmethod
    def _moderation_rules(
        cls, value: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        # An unknown category or a pattern that does not compile stops start-up with its reason.
        for tag, entries in value.items():
            if tag not in MODERATION_TAGS:
                known = ", ".join(MODERATION_TAGS)
                raise ValueError(f"unknown moderation category {tag!r} (categories: {known})")
            if info.field_name != "moderation_patterns":
                continue
            for entry in entries:
                try:
                    re.compile(entry)
                except re.error as e:
                    raise ValueError(f"{tag}: {entry!r} is not a regular expression: {e}") from None
        return value

    @field_validator("otel_endpoint")
    @classmethod
    def _otel_url(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"otel_endpoint must be an http(s) URL, not {value!r}")
        return value

    @field_validator("cors_origins", "outbound_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # TACTFUL_CORS_ORIGINS="https://a.example,https://b.example"; tactful.toml gives lists.
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("outbound_hosts")
    @classmethod
    def _outbound_entries(cls, value: list[str]) -> list[str]:
        # A malformed entry stops start-up with its reason, not the first tool call.
        from tactful.tools.outbound import OutboundPolicy

        OutboundPolicy(value)
        return value

    @model_validator(mode="after")
    def _model_routes(self) -> Settings:
        # A route to a model that does not exist stops start-up with its reason.
        for stage, name in self.stage_models.items():
            if stage not in MODEL_STAGES:
                raise ValueError(
                    f"stage_models: unknown stage {stage!r} (stages: {', '.join(MODEL_STAGES)})"
                )
            if name not in self.models:
                raise ValueError(f"stage_models: {stage!r} names {name!r}, which models lacks")
        fallbacks = {n: s.fallback for n, s in self.models.items() if s.fallback}
        if self.fallback_model:
            fallbacks["fallback_model"] = self.fallback_model
        for name, fallback in fallbacks.items():
            if fallback not in self.models:
                raise ValueError(f"{name}: its fallback {fallback!r} is not in models")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.transient:
            return "sqlite+aiosqlite:///:memory:"
        return f"sqlite+aiosqlite:///{self.data_dir / 'tactful.db'}"

    def describe(self) -> dict[str, Any]:
        """Settings as printed at start-up: secrets masked, database password hidden."""
        shown = self.model_dump(mode="json")
        for key in (
            "openai_api_key",
            "anthropic_api_key",
            "azure_api_key",
            "litellm_api_key",
            "embedding_api_key",
            "moderation_api_key",
        ):
            shown[key] = "***" if getattr(self, key) else None
        for name, spec in self.models.items():
            shown["models"][name]["api_key"] = "***" if spec.api_key else None
        shown["secret_key"] = "***" if self.secret_key else None
        from sqlalchemy.engine import make_url

        url = self.resolved_database_url()
        if make_url(url).password is not None:
            url = make_url(url).render_as_string(hide_password=True)
        shown["database_url"] = url
        return shown
