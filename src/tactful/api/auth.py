"""Who may call a route: every route declares its roles through ONE dependency factory, ``allow``,
and routes about one session take it through ONE ownership dependency, ``OwnedSession``.

Development mode (``DevelopmentAuthenticator``) lets everyone through with every role; it only
ever listens on loopback (``tactful.security.exposure``). Production mode
(``CredentialAuthenticator``) reads ``Authorization: Bearer`` and knows API keys (admin,
operator) and customer tokens; a caller without credentials is the anonymous guest, admitted only
by routes that allow ``Role.GUEST`` and only into guest sessions. See docs/security.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from tactful.api.runtime import RuntimeDep
from tactful.api.spec import ERROR_REF
from tactful.domain import Agent, Session
from tactful.domain.audit import act_as, begin_revision
from tactful.errors import ForbiddenError, NotFoundError, UnauthorizedError
from tactful.security import tokens
from tactful.security.keys import looks_like_key, verify_key
from tactful.security.limits import RateLimiter
from tactful.security.principals import (
    DEVELOPMENT,
    EVERYONE,
    GUEST,
    STAFF,
    Principal,
    Role,
)

if TYPE_CHECKING:
    from tactful.runtime import Runtime

__all__ = [
    "EVERYONE",
    "STAFF",
    "Authenticator",
    "CredentialAuthenticator",
    "DevelopmentAuthenticator",
    "OwnedSession",
    "Principal",
    "Role",
    "allow",
    "caller",
    "require",
]

CREDENTIALS_HINT = "send an API key or a customer token as 'Authorization: Bearer <credential>'"


class Authenticator(ABC):
    """Turns a request's credentials into a principal (None: no credentials were given).

    Raises ``UnauthorizedError`` for credentials that are given but not valid.
    """

    @abstractmethod
    async def authenticate(self, request: Request) -> Principal | None: ...


class DevelopmentAuthenticator(Authenticator):
    """Development mode: everyone is let through with every role. Loopback only."""

    async def authenticate(self, request: Request) -> Principal | None:
        return DEVELOPMENT


class CredentialAuthenticator(Authenticator):
    """Production mode: API keys (``tfk_...``) and customer tokens (JWTs) as bearer tokens."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def authenticate(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise UnauthorizedError(f"the Authorization header is malformed: {CREDENTIALS_HINT}")
        if looks_like_key(credential):
            key = await verify_key(self.runtime.store, credential)
            if key is None:
                raise UnauthorizedError("the API key is unknown or revoked")
            return Principal(
                id=f"key:{key.id} ({key.name})", roles=frozenset({Role(key.role)}), key_id=key.id
            )
        try:
            customer_id = tokens.verify(tokens.signing_secret(self.runtime.settings), credential)
        except tokens.TokenError as e:
            raise UnauthorizedError(str(e)) from None
        return Principal(
            id=f"customer:{customer_id}",
            roles=frozenset({Role.CUSTOMER}),
            customer_id=customer_id,
        )


def authenticator_for(runtime: Runtime) -> Authenticator:
    """The authenticator the settings' mode asks for."""
    if runtime.settings.mode == "production":
        return CredentialAuthenticator(runtime)
    return DevelopmentAuthenticator()


@dataclass(frozen=True)
class RouteAccess:
    """The dependency ``allow`` makes: resolves the caller and checks it holds an allowed role.

    The principal is left on ``request.state.principal`` (for ``OwnedSession`` and checks that
    depend on the body), and the task acts as it, so the audit trail names it. Requests with an
    API key count towards that key's rate limit.
    """

    roles: frozenset[Role]
    anonymous: bool = False
    _names: str = field(default="", compare=False)

    async def __call__(self, request: Request) -> Principal | None:
        runtime: Runtime = request.app.state.runtime
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.authenticate(request)
        if principal is None and Role.GUEST in self.roles:
            principal = GUEST
        request.state.principal = principal
        if principal is None:
            if self.anonymous:
                return None
            raise UnauthorizedError(f"this route needs credentials: {CREDENTIALS_HINT}")
        if not principal.roles & self.roles and not self.anonymous:
            raise ForbiddenError(f"this route is for: {self._names or 'nobody'}")
        act_as(principal.id)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # Whatever the request changes in definitions is one revision.
            begin_revision(f"{request.method} {request.url.path}")
        if principal.key_id is not None:
            await RateLimiter(runtime.store).hit(
                f"key:{principal.key_id}",
                runtime.settings.rate_requests_per_key,
                "requests with this API key",
            )
        return principal


def allow(*roles: Role, anonymous: bool = False) -> RouteAccess:
    """The dependency every route declares, e.g. ``dependencies=[Depends(allow(Role.ADMIN))]``.

    ``anonymous=True`` also admits callers without credentials (health checks); ``Role.GUEST``
    admits them as the guest, whom ``OwnedSession`` lets into guest sessions only.
    """
    names = ", ".join(r.value for r in roles)
    return RouteAccess(roles=frozenset(roles), anonymous=anonymous, _names=names)


def caller(request: Request) -> Principal | None:
    """The principal ``allow`` found for this request (None: anonymous)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def require(request: Request, roles: Iterable[Role]) -> None:
    """A second check inside a route whose allowed roles depend on the body (e.g. event sources)."""
    principal = caller(request)
    allowed = frozenset(roles)
    if principal is None or not principal.roles & allowed:
        names = ", ".join(r.value for r in Role if r in allowed)
        raise ForbiddenError(f"this request is for: {names}")


async def owned_session(session_id: str, request: Request, runtime: RuntimeDep) -> Session:
    """The session, if the caller may use it: staff any; a customer token its customer's; the
    guest a guest session of an agent that still takes guests. Anything else is "not found",
    so nobody learns which sessions exist."""
    session = await runtime.store.get(Session, session_id)
    principal = caller(request)
    if principal is not None:
        if principal.is_staff:
            return session
        if Role.CUSTOMER in principal.roles and session.customer_id == principal.customer_id:
            return session
        if Role.GUEST in principal.roles and session.guest:
            agent = await runtime.store.find(Agent, session.agent_id)
            if agent is not None and agent.guest_sessions:
                return session
    raise NotFoundError("Session", session_id)


OwnedSession = Annotated[Session, Depends(owned_session)]


def route_access(route: APIRoute) -> RouteAccess | None:
    """The ``allow(...)`` a route declared (None: it declared none)."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if isinstance(dependency.call, RouteAccess):
            return dependency.call
        pending += dependency.dependencies
    return None


REFUSALS: dict[str, dict[str, Any]] = {
    "401": {
        "description": "No credentials where this route needs them, or credentials that are "
        "malformed, unknown, revoked or expired",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
    },
    "403": {"description": "Credentials whose role may not do this"},
    "429": {
        "description": "Over a rate limit",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    },
}


ERROR_BODY = {"schema": ERROR_REF}


def document_access(app: FastAPI, routes: Iterable[APIRoute], *, production: bool) -> None:
    """Make ``/openapi.json`` say who may call what: in production, the bearer scheme on every
    route that takes credentials (optional where guests are admitted) and its 401/403/429;
    in development (where everyone is admin) only the 429 of the rate limits."""
    access = {(r.path, m.lower()): route_access(r) for r in routes for m in r.methods or ()}
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        if production:
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (tfk_...) or a customer token",
            }
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                declared = access.get((path, method))
                if declared is None or declared.anonymous:
                    continue
                codes = ["401", "403", "429"] if production else ["429"]
                for code in codes:
                    refusal = {**REFUSALS[code], "content": {"application/json": ERROR_BODY}}
                    operation.setdefault("responses", {}).setdefault(code, refusal)
                if production:
                    optional = Role.GUEST in declared.roles
                    operation["security"] = [{"bearer": []}, *([{}] if optional else [])]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
