"""Who may call a route: every route declares its roles through ONE dependency factory, ``allow``.

Direct deployments let a customer's browser call tactful (a customer credential may only use its
own sessions); deployments behind a BFF call with an operator key; admins define agents. For now
the development default (``DevelopmentAuthenticator``) lets everyone through with every role.
API keys and customer tokens come later as another ``Authenticator`` set on
``app.state.authenticator``: the routers do not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from fastapi import HTTPException, Request, status


class Role(StrEnum):
    """What a caller is to tactful."""

    ADMIN = "admin"  # defines agents, guidelines, tags, ...
    OPERATOR = "operator"  # a back end (BFF) or a human agent working conversations
    CUSTOMER = "customer"  # a customer's browser or app, talking in its own sessions


STAFF = (Role.ADMIN, Role.OPERATOR)
EVERYONE = (Role.ADMIN, Role.OPERATOR, Role.CUSTOMER)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    id: str
    roles: frozenset[Role]
    # For customer credentials: the one customer this caller may act as (checks come with tokens).
    customer_id: str | None = None


class Authenticator(ABC):
    """Turns a request's credentials into a principal (None: no credentials were given)."""

    @abstractmethod
    async def authenticate(self, request: Request) -> Principal | None: ...


class DevelopmentAuthenticator(Authenticator):
    """Development default: everyone is let through with every role. Never expose it publicly."""

    principal = Principal(id="development", roles=frozenset(Role))

    async def authenticate(self, request: Request) -> Principal | None:
        return self.principal


@dataclass(frozen=True)
class RouteAccess:
    """The dependency ``allow`` makes: resolves the caller and checks it holds an allowed role.

    The principal is also left on ``request.state.principal`` for checks that depend on the body.
    """

    roles: frozenset[Role]
    anonymous: bool = False
    _names: str = field(default="", compare=False)

    async def __call__(self, request: Request) -> Principal | None:
        authenticator: Authenticator = (
            getattr(request.app.state, "authenticator", None) or DevelopmentAuthenticator()
        )
        principal = await authenticator.authenticate(request)
        request.state.principal = principal
        if principal is None:
            if self.anonymous:
                return None
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "this route needs credentials (an API key or token)"
            )
        if not principal.roles & self.roles and not self.anonymous:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this route is for: {self._names or 'nobody'}"
            )
        return principal


def allow(*roles: Role, anonymous: bool = False) -> RouteAccess:
    """The dependency every route declares, e.g. ``dependencies=[Depends(allow(Role.ADMIN))]``.

    ``anonymous=True`` also admits callers without credentials (health checks).
    """
    names = ", ".join(r.value for r in roles)
    return RouteAccess(roles=frozenset(roles), anonymous=anonymous, _names=names)


def require(request: Request, roles: Iterable[Role]) -> None:
    """A second check inside a route whose allowed roles depend on the body (e.g. event sources)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    allowed = frozenset(roles)
    if principal is None or not principal.roles & allowed:
        names = ", ".join(r.value for r in Role if r in allowed)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this request is for: {names}")
