"""One exception hierarchy; the REST layer maps each class to a status code in one place."""

from __future__ import annotations


class TactfulError(Exception):
    """Base of every error tactful raises on purpose. The message tells the user what to do."""


class NotFoundError(TactfulError):
    """An id that names nothing."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id!r} was not found")
        self.kind = kind
        self.id = id


class ValidationError(TactfulError):
    """Input that is well-formed JSON but makes no sense (e.g. a session for an unknown agent).

    ``loc`` names the field when it is known, as FastAPI does: ``("query", "cursor")``,
    ``("body", "kind")``. ``problems``: each problem on its own, when there are several (a
    definitions file); the message then introduces them.
    """

    def __init__(
        self,
        message: str,
        *,
        loc: tuple[str | int, ...] = (),
        problems: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.loc = loc
        self.problems = problems


class ConflictError(TactfulError):
    """The request clashes with the current state (e.g. a duplicate name where names are unique)."""


class PayloadTooLargeError(TactfulError):
    """A message or payload over the configured size limit."""


class ModelError(TactfulError):
    """A model provider failed or answered with something unusable, even after a repair retry.

    ``retryable``: the same request may well succeed if sent again (a timeout, a dropped
    connection, HTTP 408, 409, 429 or 5xx); an answer that is wrong, a refused key or a bad
    request is not.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class StoreError(TactfulError):
    """The store could not be opened or migrated."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached now (down, cut off, or out of connections): nothing was
    written, and the same request may succeed a moment later."""

    retry_after_s = 1


class ConfigurationError(TactfulError):
    """Settings that cannot work together (e.g. an unknown model provider)."""


class RateLimitedError(TactfulError):
    """Too many requests of one kind in the current minute; ``retry_after_s`` says when to
    try again."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnauthorizedError(TactfulError):
    """Credentials are missing, malformed, expired or revoked."""


class ForbiddenError(TactfulError):
    """The caller is known but may not do this."""
