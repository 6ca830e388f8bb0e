"""``tactful keys``: create, list and revoke API keys in a server's database.

It works on the database the settings name (``TACTFUL_DATABASE_URL``, ``--data-dir``...), so
the first admin key of a production server is made here, before any key exists to call the
API with. Changes are recorded in the audit trail as made by ``cli:<user>@<host>``.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rich.table import Table

from tactful.cli.output import console, fail, note
from tactful.config import Settings
from tactful.domain import ApiKey, KeyRole
from tactful.domain.audit import acting_as
from tactful.errors import NotFoundError, TactfulError
from tactful.security import keys
from tactful.store.base import Store
from tactful.store.sql import open_store

T = TypeVar("T")


def cli_actor() -> str:
    """Who the audit trail names for changes made from this command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    if not settings.database_url and not settings.transient:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.resolved_database_url())
    try:
        with acting_as(cli_actor()):
            return await work(store)
    finally:
        await store.close()


def _run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_with_store(settings, work))
    except TactfulError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot open the database: {e}")


def issue(settings: Settings, name: str, role: KeyRole) -> keys.IssuedKey:
    """Create a key in the database the settings name (before or while a server runs there)."""

    async def work(store: Store) -> keys.IssuedKey:
        return await keys.create_key(store, name, role, cli_actor())

    return asyncio.run(_with_store(settings, work))


def create(settings: Settings, name: str, role: KeyRole) -> None:
    """Create a key and print its token, once."""
    try:
        issued = issue(settings, name, role)
    except TactfulError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot open the database: {e}")
    console.print(f"created {role.value} key {issued.key.id} ({name}); its token, shown once:")
    console.print(issued.token, soft_wrap=True)
    note("send it as 'Authorization: Bearer <token>'; tactful keeps only its digest")


def list_all(settings: Settings) -> None:
    """Print every key, without secrets."""
    found: list[ApiKey] = _run(settings, keys.list_keys)
    if not found:
        note("no API keys yet: `tactful keys create --role admin --name <you>`")
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("id", "name", "role", "created", "by", "revoked"):
        table.add_column(column)
    for k in found:
        table.add_row(
            k.id,
            k.name,
            k.role.value,
            k.creation_utc.strftime("%Y-%m-%d %H:%M"),
            k.created_by,
            k.revoked_utc.strftime("%Y-%m-%d %H:%M") if k.revoked_utc else "",
        )
    console.print(table)


def revoke(settings: Settings, key_id: str) -> None:
    """Revoke a key: every server process on the database refuses it from its next request."""

    async def work(store: Store) -> ApiKey:
        try:
            return await keys.revoke_key(store, key_id)
        except NotFoundError:
            fail(f"no API key {key_id!r}: `tactful keys list` shows them")

    key = _run(settings, work)
    console.print(f"revoked key {key.id} ({key.name})")
