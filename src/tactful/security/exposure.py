"""Development or production: which mode may listen where.

Development mode lets every caller act as admin, so it may only listen on loopback, where only
this machine reaches it (and the API checks the ``Host`` header against loopback names, so a web
page cannot reach it through DNS rebinding). Any other address needs production mode.
"""

from __future__ import annotations

import ipaddress

from tactful.config import Settings
from tactful.errors import ConfigurationError

MIN_SECRET_CHARS = 32
SECRET_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, maybe with IPv6 brackets) is this machine only."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problems(settings: Settings) -> list[str]:
    """Why these settings must not serve, each with how to fix it (empty: they may)."""
    problems = []
    if settings.mode == "development" and not is_loopback(settings.host):
        problems.append(
            f"development mode lets every caller act as admin, so it only listens on loopback "
            f"(127.0.0.1, ::1, localhost), not on {settings.host or 'every address'}: listen on "
            "127.0.0.1, or set TACTFUL_MODE=production with a TACTFUL_SECRET_KEY and create an "
            "admin key with `tactful keys create --role admin --name <you>` (docs/security.md)"
        )
    if settings.mode == "production":
        secret = settings.secret_key.get_secret_value() if settings.secret_key else ""
        if len(secret) < MIN_SECRET_CHARS:
            now = f"it has {len(secret)}" if secret else "it is not set"
            problems.append(
                f"production mode signs customer tokens with TACTFUL_SECRET_KEY, which must have "
                f"at least {MIN_SECRET_CHARS} characters ({now}); make one with: {SECRET_HINT}"
            )
    return problems


def check_exposure(settings: Settings) -> None:
    """Raise ``ConfigurationError`` when the settings must not serve (see ``exposure_problems``)."""
    problems = exposure_problems(settings)
    if problems:
        raise ConfigurationError("; ".join(problems))
