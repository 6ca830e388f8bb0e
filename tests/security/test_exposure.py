"""Which mode may listen where, and what the settings say about it."""

from __future__ import annotations

import pytest

from tactful.config import Settings
from tactful.errors import ConfigurationError
from tactful.security.exposure import check_exposure, exposure_problems, is_loopback

SECRET = "s" * 32


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.5.6.7", "::1", "[::1]", "localhost", "LOCALHOST.", "app.localhost"]
)
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "", "::", "10.0.0.1", "192.168.1.2", "example.com", "localhost.evil.com"]
)
def test_other_addresses_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_development_mode_listens_on_loopback_only() -> None:
    assert exposure_problems(Settings(host="127.0.0.1")) == []
    [problem] = exposure_problems(Settings(host="0.0.0.0"))
    assert "development mode" in problem and "TACTFUL_MODE=production" in problem
    with pytest.raises(ConfigurationError, match="only listens on loopback"):
        check_exposure(Settings(host="192.168.1.2"))


def test_production_mode_needs_a_long_secret() -> None:
    [problem] = exposure_problems(Settings(mode="production", host="0.0.0.0"))
    assert "TACTFUL_SECRET_KEY" in problem and "not set" in problem
    short = Settings(mode="production", host="0.0.0.0", secret_key="short")
    assert "it has 5" in exposure_problems(short)[0]
    assert exposure_problems(Settings(mode="production", host="0.0.0.0", secret_key=SECRET)) == []


def test_lists_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_CORS_ORIGINS", "https://shop.example, https://help.example")
    monkeypatch.setenv("TACTFUL_OUTBOUND_HOSTS", "api.example.com,10.1.0.0/16")
    monkeypatch.setenv("TACTFUL_SECRET_KEY", SECRET)
    settings = Settings()
    assert settings.cors_origins == ["https://shop.example", "https://help.example"]
    assert settings.outbound_hosts == ["api.example.com", "10.1.0.0/16"]
    assert settings.describe()["secret_key"] == "***"
    assert SECRET not in str(settings.describe())
