"""Who may call a route: every route declares its roles through ONE dependency factory, ``allow``,
and routes about one session take it through ONE ownership check (``_may_use``): as the session
read now (``OwnedSession``), or as its owners kept by ``SessionOwners`` (``OwnedSessionRef``,
for the event routes, which a turn calls several times).

Development mode (``DevelopmentAuthenticator``) lets everyone through with every role; it only
ever listens on loopback (``tactful.security.exposure``). Production mode
(``CredentialAuthenticator``) reads ``Authorization: Bearer`` and knows API keys (admin,
operator) and customer tokens; a caller without credentials is the anonymous guest, admitted only
by routes that allow ``Role.GUEST`` and only into guest sessions. See docs/security.md.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from tactful.api.runtime import RuntimeDep
from tactful.api.spec import ERROR_REF
from tactful.bus.base import Bus
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
from tactful.store.base import Store

if TYPE_CHECKING:
    from tactful.runtime import Runtime

__all__ = [
    "EVERYONE",
    "STAFF",
    "Authenticator",
    "CredentialAuthenticator",
    "DevelopmentAuthenticator",
    "OwnedSession",
    "OwnedSessionRef",
    "Principal",
    "Role",
    "SessionOwners",
    "SessionRef",
    "allow",
    "caller",
    "require",
    "session_changed",
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


# How many sessions' owners a process keeps, and for how long at most. A change made through
# this API (or heard on the bus from another process) drops an entry at once; the time limit
# bounds how long one made otherwise (straight in the store) goes unnoticed.
SESSION_OWNERS_SIZE = 10_000
SESSION_OWNERS_TTL_S = 10.0


@dataclass(frozen=True)
class SessionRef:
    """What deciding who may use a session needs of it (and what the event routes use)."""

    id: str
    customer_id: str
    agent_id: str
    guest: bool

    @classmethod
    def of(cls, session: Session) -> SessionRef:
        return cls(session.id, session.customer_id, session.agent_id, session.guest)


class SessionOwners:
    """Sessions' owners (``SessionRef``), kept so that the requests of a turn (a message and
    the long polls that follow it) are authorised without reading the session each time.

    An entry is filled from the store on first use and dropped when the session is deleted or
    handed to another customer or agent: the routes that do so publish ``(session, -1)`` on
    the bus once their write committed (``session_changed``), which reaches this process's
    watchers and other processes' (PostgreSQL). Notifications possibly lost (``(None, -1)``)
    drop every entry. A read that an invalidation overtook is not kept, and no entry outlives
    ``ttl_s``. Unknown sessions are never kept: each asks the store (and answers 404).
    """

    def __init__(
        self,
        bus: Bus,
        *,
        size: int = SESSION_OWNERS_SIZE,
        ttl_s: float = SESSION_OWNERS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[SessionRef, float]] = OrderedDict()
        # Counts invalidations: a read that one happened during is not kept.
        self._generation = 0
        bus.watch(self._heard)

    async def get(self, store: Store, session_id: str) -> SessionRef:
        """The session's owners. Raises ``NotFoundError`` for an unknown session."""
        now = self._clock()
        kept = self._entries.get(session_id)
        if kept is not None:
            if kept[1] > now:
                self._entries.move_to_end(session_id)
                return kept[0]
            del self._entries[session_id]
        generation = self._generation
        ref = SessionRef.of(await store.get(Session, session_id))
        if generation == self._generation:
            self._entries[session_id] = (ref, now + self.ttl_s)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return ref

    def forget(self, session_id: str | None) -> None:
        """Drop what is kept of a session (of every session: None)."""
        self._generation += 1
        if session_id is None:
            self._entries.clear()
        else:
            self._entries.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _heard(self, session_id: str | None, offset: int) -> None:
        # Appends (offset >= 0) leave owners as they are; -1 says the session itself changed.
        if offset < 0:
            self.forget(session_id)


def session_changed(runtime: Runtime, session_id: str) -> None:
    """Say that a session was deleted or changed hands (call it once the write committed):
    every process drops what it kept of it (``SessionOwners``), and its waiters read again."""
    runtime.bus.publish(session_id, -1)


def session_owners(request: Request) -> SessionOwners:
    owners: SessionOwners = request.app.state.session_owners
    return owners


async def _may_use(runtime: Runtime, principal: Principal | None, session: SessionRef) -> bool:
    """Staff any session; a customer token its customer's; the guest a guest session of an
    agent that still takes guests."""
    if principal is None:
        return False
    if principal.is_staff:
        return True
    if Role.CUSTOMER in principal.roles and session.customer_id == principal.customer_id:
        return True
    if Role.GUEST in principal.roles and session.guest:
        agent = await runtime.store.find(Agent, session.agent_id)
        return agent is not None and agent.guest_sessions
    return False


async def owned_session(session_id: str, request: Request, runtime: RuntimeDep) -> Session:
    """The session, read now, if the caller may use it (``_may_use``). Anything else is "not
    found", so nobody learns which sessions exist."""
    session = await runtime.store.get(Session, session_id)
    if await _may_use(runtime, caller(request), SessionRef.of(session)):
        return session
    raise NotFoundError("Session", session_id)


async def owned_session_ref(session_id: str, request: Request, runtime: RuntimeDep) -> SessionRef:
    """As ``owned_session``, for routes that need only the session's id and owners: what
    ``SessionOwners`` keeps, so that a long poll reads no session from the store."""
    session = await session_owners(request).get(runtime.store, session_id)
    if await _may_use(runtime, caller(request), session):
        return session
    raise NotFoundError("Session", session_id)


OwnedSession = Annotated[Session, Depends(owned_session)]
OwnedSessionRef = Annotated[SessionRef, Depends(owned_session_ref)]


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
