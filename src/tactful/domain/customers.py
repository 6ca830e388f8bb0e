"""Customers: who the agent talks to."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from tactful.domain.common import Entity

GUEST_CUSTOMER_ID = "guest"


class Customer(Entity):
    collection: ClassVar[str] = "customers"
    name: str = Field(min_length=1, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
