"""Customer tokens: JWTs (HS256, PyJWT) signed with the server's ``secret_key``.

A token names one customer (``sub``) and expires (``exp``). A back end may also mint them
itself with any JWT library and the same secret: the claims are ``sub``, ``exp``, ``iat``,
``aud`` = ``tactful:customer``, ``iss`` = ``tactful``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from tactful.config import Settings
from tactful.domain import GUEST_CUSTOMER_ID, utcnow
from tactful.errors import ConfigurationError

AUDIENCE = "tactful:customer"
ISSUER = "tactful"
ALGORITHM = "HS256"
# Clocks of several server processes may differ a little.
LEEWAY_S = 30


# Development mode without a secret key signs with one made at start-up: its tokens die with the
# process (development mode does not check them anyway: every caller is admin there).
_PROCESS_SECRET = secrets.token_urlsafe(32)


def signing_secret(settings: Settings) -> str | None:
    """The key tokens are signed and checked with: ``secret_key``, else in development mode
    one made for this process."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return _PROCESS_SECRET if settings.mode == "development" else None


@dataclass(frozen=True)
class CustomerToken:
    token: str
    customer_id: str
    expires_utc: datetime


class TokenError(Exception):
    """A token that is malformed, badly signed, expired or not for customers."""


def mint(secret: str | None, customer_id: str, ttl_s: int) -> CustomerToken:
    """A token for ``customer_id`` valid for ``ttl_s`` seconds."""
    if not secret:
        raise ConfigurationError(
            "customer tokens are signed with TACTFUL_SECRET_KEY, which is not set"
        )
    now = utcnow().replace(microsecond=0)
    expires = now + timedelta(seconds=ttl_s)
    claims = {"sub": customer_id, "iat": now, "exp": expires, "aud": AUDIENCE, "iss": ISSUER}
    return CustomerToken(jwt.encode(claims, secret, algorithm=ALGORITHM), customer_id, expires)


def verify(secret: str | None, token: str) -> str:
    """The customer id a valid token names; raises ``TokenError``."""
    if not secret:
        raise TokenError("this server has no secret key, so it accepts no customer tokens")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": ["sub", "exp", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the customer token has expired; ask for a new one") from None
    except jwt.InvalidTokenError as e:
        raise TokenError(f"the customer token is not valid ({e})") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("the customer token names no customer")
    if subject == GUEST_CUSTOMER_ID:
        raise TokenError("no token acts as the guest customer, whom every visitor shares")
    return subject
