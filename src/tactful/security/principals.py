"""Who a caller is to tactful: its roles, and for customers the one customer it acts as."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a caller is to tactful."""

    ADMIN = "admin"  # defines agents, guidelines, tags, ... and manages keys
    OPERATOR = "operator"  # a back end (BFF) or a human agent working conversations
    CUSTOMER = "customer"  # a customer's browser or app, with a token for its own customer
    GUEST = "guest"  # an anonymous browser, in a guest session it started (docs/security.md)


STAFF = (Role.ADMIN, Role.OPERATOR)
EVERYONE = (Role.ADMIN, Role.OPERATOR, Role.CUSTOMER)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (or the anonymous guest)."""

    # As the audit trail names it: "key:<id> (<name>)", "customer:<id>", "development", ...
    id: str
    roles: frozenset[Role]
    # For customer tokens: the one customer this caller acts as.
    customer_id: str | None = None
    # For API keys: the key, whose requests are rate-limited together.
    key_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & {Role.ADMIN, Role.OPERATOR})


DEVELOPMENT = Principal(id="development", roles=frozenset(Role))
GUEST = Principal(id="guest", roles=frozenset({Role.GUEST}))
