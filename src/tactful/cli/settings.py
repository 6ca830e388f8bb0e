"""The settings a CLI command runs with: ``TACTFUL_*`` (and ``tactful.toml``) with its flags on
top, every problem one red line."""

from __future__ import annotations

from typing import Any

import pydantic

from tactful.cli.output import fail
from tactful.config import Settings


def load_settings(**overrides: Any) -> Settings:
    """``TACTFUL_*`` settings with the given flags on top; bad settings are one red line."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except pydantic.ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        fail(f"invalid settings (TACTFUL_* environment or tactful.toml): {problems}")
