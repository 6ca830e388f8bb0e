"""All settings in one model: ``TACTFUL_*`` environment variables or an optional tactful.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tactful.engine.match import DEFAULT_OFFLINE_THRESHOLD


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
    transient: bool = False

    # Model tier: "offline" (no model; embeddings + canned responses), "openai", or "auto"
    # (openai when a key or base URL is configured, else offline).
    model_provider: Literal["auto", "offline", "openai"] = "auto"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_json_schema: bool = True

    # Offline tier: a guideline matches when its calibrated similarity reaches this.
    offline_match_threshold: float = Field(default=DEFAULT_OFFLINE_THRESHOLD, ge=0.0, le=1.0)
    max_message_chars: int = Field(default=8000, ge=1)
    long_poll_max_s: float = Field(default=60.0, gt=0)

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
        shown["openai_api_key"] = "***" if self.openai_api_key else None
        from sqlalchemy.engine import make_url

        url = self.resolved_database_url()
        if make_url(url).password is not None:
            url = make_url(url).render_as_string(hide_password=True)
        shown["database_url"] = url
        return shown
