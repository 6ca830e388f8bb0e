"""Settings: environment variables, defaults, and what start-up prints."""

from __future__ import annotations

import pytest

from tactful.config import Settings


def test_describe_hides_secrets_but_keeps_plain_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("TACTFUL_DATABASE_URL", "postgresql://app:hunter2@db.local/tactful")
    shown = Settings().describe()
    assert shown["openai_api_key"] == "***"
    assert shown["database_url"] == "postgresql://app:***@db.local/tactful"
    assert "sk-very-secret" not in str(shown) and "hunter2" not in str(shown)
    assert Settings(database_url="", transient=True).describe()["database_url"] == (
        "sqlite+aiosqlite:///:memory:"
    )


def test_database_defaults_to_a_file_in_the_data_folder(tmp_path: object) -> None:
    settings = Settings(data_dir="somewhere")  # type: ignore[arg-type]
    assert settings.resolved_database_url() == "sqlite+aiosqlite:///somewhere/tactful.db"


def test_bad_settings_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_PORT", "99999")
    with pytest.raises(ValueError, match="port"):
        Settings()
