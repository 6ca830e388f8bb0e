"""API keys: ``tfk_<id>_<secret>``, shown once, stored as the SHA-256 digest of the secret.

The secret is 256 random bits, so a fast hash is the right one (a slow password hash protects
low-entropy passwords, and would cost every request); lookups go by the id, and the digests are
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from tactful.domain import ApiKey, KeyRole, new_id, utcnow
from tactful.errors import NotFoundError
from tactful.store.base import Store

PREFIX = "tfk_"
_ID_CHARS = 10


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: ``token`` is shown once and never stored."""

    key: ApiKey
    token: str


async def create_key(store: Store, name: str, role: KeyRole, created_by: str) -> IssuedKey:
    """Create a key; its token is in the result and nowhere else."""
    key_id = new_id()
    secret = secrets.token_urlsafe(32)
    key = ApiKey(id=key_id, name=name, role=role, digest=_digest(secret), created_by=created_by)
    await store.create(key)
    return IssuedKey(key, f"{PREFIX}{key_id}_{secret}")


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


async def verify_key(store: Store, token: str) -> ApiKey | None:
    """The active key whose token this is, or None."""
    body = token[len(PREFIX) :]
    key_id, sep, secret = body[:_ID_CHARS], body[_ID_CHARS : _ID_CHARS + 1], body[_ID_CHARS + 1 :]
    if not token.startswith(PREFIX) or sep != "_" or not secret or not key_id.isalnum():
        return None
    key = await store.find(ApiKey, key_id)
    if key is None or not key.active:
        return None
    return key if hmac.compare_digest(key.digest, _digest(secret)) else None


async def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Revoke a key (it stays listed, revoked); raises ``NotFoundError``."""
    key = await store.get(ApiKey, key_id)
    if not key.active:
        return key
    return await store.update(key.model_copy(update={"revoked_utc": utcnow()}))


async def list_keys(store: Store) -> list[ApiKey]:
    return await store.list(ApiKey)


async def get_key(store: Store, key_id: str) -> ApiKey:
    found = await store.find(ApiKey, key_id)
    if found is None:
        raise NotFoundError("API key", key_id)
    return found
