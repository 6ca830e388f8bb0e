"""Capabilities: what an agent can actually do for a customer ("Reset a password", "Replace a
broken phone"), so that it offers real options and never promises what it cannot do."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from tactful.domain.common import Entity


class Capability(Entity):
    collection: ClassVar[str] = "capabilities"
    title: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=4000)
    # Things a customer says when they need it ("my phone just broke"): stripped, without
    # blanks and repeats.
    signals: list[str] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list)

    @field_validator("signals")
    @classmethod
    def _clean(cls, signals: list[str]) -> list[str]:
        return list(dict.fromkeys(s.strip() for s in signals if s.strip()))
