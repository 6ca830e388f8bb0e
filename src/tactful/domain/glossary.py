"""Glossary terms: domain words the agent must understand the company's way."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from tactful.domain.common import Entity


class Term(Entity):
    collection: ClassVar[str] = "terms"
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    synonyms: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
