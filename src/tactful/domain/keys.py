"""API keys: credentials of the back ends (operators) and of the people who define agents."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from tactful.domain.common import Entity


class KeyRole(StrEnum):
    """What a key lets its holder do (docs/security.md)."""

    ADMIN = "admin"  # everything, including definitions and keys
    OPERATOR = "operator"  # conversations, customers and their tokens; reads definitions


class ApiKey(Entity):
    """A key as stored: only the SHA-256 digest of its secret, never the secret itself."""

    collection: ClassVar[str] = "api_keys"
    name: str = Field(min_length=1, max_length=200)
    role: KeyRole
    digest: str = Field(min_length=64, max_length=64)
    # Who created it (the acting principal), for the audit trail.
    created_by: str = ""
    revoked_utc: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_utc is None

    def audit_view(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"digest"})
