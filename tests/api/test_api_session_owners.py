"""``SessionOwners``: the event routes authorise a session from what this process keeps of its
owners. Kept or not, the answer is the same: a customer token reaches its own sessions only, a
deleted session answers 404, and a session handed to another customer or agent (here or in
another process) is refused to the old one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from production import SECRET, Production, production_settings, start_production

from fresh_databases import postgres_database
from tactful.api import create_app
from tactful.api.auth import SessionOwners, SessionRef, owned_session, owned_session_ref
from tactful.bus.memory import MemoryBus
from tactful.definitions.customers import ensure_guest
from tactful.domain import Agent, Customer, KeyRole, Session
from tactful.errors import NotFoundError
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime
from tactful.security import tokens
from tactful.security.keys import create_key
from tactful.store.base import Store

CUSTOM = {"kind": "custom", "source": "customer_ui", "data": {"note": "hi"}}


def owners(app: FastAPI) -> SessionOwners:
    kept: SessionOwners = app.state.session_owners
    return kept


async def new_session(admin: httpx.AsyncClient, customer_id: str = "cust-a") -> tuple[str, str]:
    """A session of ``customer_id`` with one custom event; (agent id, session id)."""
    agent = (await admin.post("/agents", json={"name": "Owners"})).json()["id"]
    created = await admin.post("/sessions", json={"agent_id": agent, "customer_id": customer_id})
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    assert (await admin.post(f"/sessions/{session_id}/events", json=CUSTOM)).status_code == 201
    return agent, session_id


async def poll(client: httpx.AsyncClient, session_id: str) -> int:
    """A long poll that finds its event at once: its status."""
    response = await client.get(
        f"/sessions/{session_id}/events", params={"min_offset": 0, "wait_for_data": 5}
    )
    return response.status_code


async def test_another_customer_is_refused_once_the_owner_is_kept(production: Production) -> None:
    async with (
        production.client(production.admin_key) as admin,
        production.client(production.token(production.customer_a)) as ann,
        production.client(production.token(production.customer_b)) as bob,
    ):
        _, session_id = await new_session(admin)
        assert await poll(ann, session_id) == 200
        assert session_id in owners(production.app)._entries  # kept from now on
        reads = 0
        store_get = production.runtime.store.get

        async def counting_get(entity: type, id: str) -> object:
            nonlocal reads
            reads += entity is Session
            return await store_get(entity, id)

        production.runtime.store.get = counting_get  # type: ignore[method-assign,assignment]
        assert await poll(ann, session_id) == 200
        posted = await ann.post(f"/sessions/{session_id}/events", json=CUSTOM)
        assert posted.status_code == 201
        event_id = posted.json()["id"]
        assert reads == 0  # authorised from what was kept
        assert await poll(bob, session_id) == 404
        assert (await bob.post(f"/sessions/{session_id}/events", json=CUSTOM)).status_code == 404
        read = await bob.get(f"/sessions/{session_id}/events/{event_id}")
        assert read.status_code == 404
        streamed = await bob.get(
            f"/sessions/{session_id}/events", params={"sse": True, "wait_for_data": 1}
        )
        assert streamed.status_code == 404
        # Not kept: an unknown session is asked of the store each time.
        assert await poll(ann, "no-such-session") == 404
        assert await poll(admin, "no-such-session") == 404
        assert "no-such-session" not in owners(production.app)._entries


@pytest.mark.parametrize("how", ["session", "matching", "customer", "agent"])
async def test_a_deleted_session_answers_404_though_it_was_kept(
    production: Production, how: str
) -> None:
    async with (
        production.client(production.admin_key) as admin,
        production.client(production.token(production.customer_a)) as ann,
    ):
        agent_id, session_id = await new_session(admin)
        assert await poll(ann, session_id) == 200
        assert await poll(admin, session_id) == 200
        assert session_id in owners(production.app)._entries
        paths = {
            "session": f"/sessions/{session_id}",
            "matching": f"/sessions?agent_id={agent_id}",
            "customer": f"/customers/{production.customer_a}",
            "agent": f"/agents/{agent_id}",
        }
        assert (await admin.delete(paths[how])).status_code == 204
        assert session_id not in owners(production.app)._entries
        assert await poll(admin, session_id) == 404
        if how != "customer":  # a deleted customer's token is refused before any session
            assert await poll(ann, session_id) == 404
        posted = await admin.post(f"/sessions/{session_id}/events", json=CUSTOM)
        assert posted.status_code == 404


async def test_a_session_handed_to_another_customer_is_refused_to_the_old_one(
    production: Production,
) -> None:
    async with (
        production.client(production.admin_key) as admin,
        production.client(production.token(production.customer_a)) as ann,
        production.client(production.token(production.customer_b)) as bob,
    ):
        _, session_id = await new_session(admin)
        assert await poll(ann, session_id) == 200
        assert await poll(bob, session_id) == 404
        moved = await admin.patch(
            f"/sessions/{session_id}", json={"customer_id": production.customer_b}
        )
        assert moved.status_code == 200
        assert await poll(ann, session_id) == 404
        assert await poll(bob, session_id) == 200
        # A change that leaves the owners as they are keeps them.
        assert (await admin.patch(f"/sessions/{session_id}", json={"title": "T"})).is_success
        assert session_id in owners(production.app)._entries


async def test_a_guest_is_refused_once_the_agent_takes_no_more_guests() -> None:
    production = await start_production(production_settings())
    try:
        async with (
            production.client(production.admin_key) as admin,
            production.client() as guest,
        ):
            agent = (await admin.post("/agents", json={"name": "G", "guest_sessions": True})).json()
            created = await guest.post("/sessions", json={"agent_id": agent["id"]})
            assert created.status_code == 201, created.text
            session_id = created.json()["id"]
            assert (await guest.post(f"/sessions/{session_id}/events", json=CUSTOM)).is_success
            assert await poll(guest, session_id) == 200
            assert session_id in owners(production.app)._entries
            off = await admin.patch(f"/agents/{agent['id']}", json={"guest_sessions": False})
            assert off.status_code == 200
            # The agent is read each time: its guest_sessions is not kept with the owners.
            assert await poll(guest, session_id) == 404
    finally:
        await production.runtime.close()


# -- SessionOwners itself ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """The one store method ``SessionOwners`` uses, counting its reads; ``gate`` holds a read."""

    def __init__(self, sessions: dict[str, Session]) -> None:
        self.sessions = sessions
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def get(self, entity: type[Session], id: str) -> Session:
        self.reads += 1
        found = self.sessions.get(id)
        if self.gate is not None:
            await self.gate.wait()
        if found is None:
            raise NotFoundError("Session", id)
        return found


def session(id: str, customer_id: str = "c1") -> Session:
    return Session(id=id, agent_id="a1", customer_id=customer_id)


async def test_owners_are_kept_until_changed_heard_of_or_too_old() -> None:
    bus, clock = MemoryBus(), Clock()
    store = CountingStore({"s1": session("s1"), "s2": session("s2")})
    kept = SessionOwners(bus, ttl_s=10, clock=clock)
    as_store: Store = store  # type: ignore[assignment]
    assert await kept.get(as_store, "s1") == SessionRef("s1", "c1", "a1", False)
    assert await kept.get(as_store, "s1") == SessionRef("s1", "c1", "a1", False)
    assert store.reads == 1
    bus.publish("s1", 7)  # an append: owners unchanged
    await kept.get(as_store, "s1")
    assert store.reads == 1
    store.sessions["s1"] = session("s1", customer_id="c2")
    bus.publish("s1", -1)  # changed hands (or deleted)
    assert (await kept.get(as_store, "s1")).customer_id == "c2"
    assert store.reads == 2
    clock.now += 10.5  # too old: read again
    await kept.get(as_store, "s1")
    assert store.reads == 3
    await kept.get(as_store, "s2")
    bus.wake_everyone()  # notifications may have been lost: forget everything
    assert len(kept) == 0
    with pytest.raises(NotFoundError):
        await kept.get(as_store, "nope")
    assert len(kept) == 0


async def test_owners_are_bounded_oldest_used_out_first() -> None:
    store = CountingStore({f"s{i}": session(f"s{i}") for i in range(4)})
    kept = SessionOwners(MemoryBus(), size=2)
    as_store: Store = store  # type: ignore[assignment]
    for id in ("s0", "s1", "s0", "s2"):
        await kept.get(as_store, id)
    assert list(kept._entries) == ["s0", "s2"]


async def test_a_read_overtaken_by_a_change_is_not_kept() -> None:
    bus = MemoryBus()
    store = CountingStore({"s1": session("s1")})
    store.gate = asyncio.Event()
    kept = SessionOwners(bus)
    as_store: Store = store  # type: ignore[assignment]
    reading = asyncio.create_task(kept.get(as_store, "s1"))
    await asyncio.sleep(0)
    assert store.reads == 1
    bus.publish("s1", -1)  # committed while the read was under way
    store.gate.set()
    assert (await reading).customer_id == "c1"  # this request's answer, as before
    assert len(kept) == 0  # but not kept: the next request reads the store


async def test_kept_and_fresh_owners_decide_alike(production: Production) -> None:
    """The route dependencies: ``owned_session_ref`` (kept owners) admits exactly whom
    ``owned_session`` (the session read now) admits, for every role and session."""
    store = production.runtime.store
    guests = await store.create(Agent(name="guests", guest_sessions=True))
    closed = await store.create(Agent(name="closed"))
    guest_customer = await ensure_guest(store)
    sessions = [
        await store.create(Session(agent_id=closed.id, customer_id=production.customer_a)),
        await store.create(Session(agent_id=closed.id, customer_id=production.customer_b)),
        await store.create(Session(agent_id=guests.id, customer_id=guest_customer.id, guest=True)),
        await store.create(Session(agent_id=closed.id, customer_id=guest_customer.id, guest=True)),
        await store.create(Session(agent_id=guests.id, customer_id=guest_customer.id)),
    ]
    credentials = [
        production.admin_key,
        production.operator_key,
        production.token(production.customer_a),
        production.token(production.customer_b),
        None,
    ]
    decisions = []
    for credential in credentials:
        for s in [*sessions, session("missing")]:
            for _ in range(2):  # the second time from what was kept
                request = await authenticated(production, credential)
                verdicts = []
                for dependency in (owned_session, owned_session_ref):
                    try:
                        found = await dependency(s.id, request, production.runtime)
                        verdicts.append(found.id)
                    except NotFoundError:
                        verdicts.append(None)
                assert verdicts[0] == verdicts[1], (credential, s)
                decisions.append(verdicts[0] is not None)
    assert any(decisions) and not all(decisions)


async def authenticated(production: Production, credential: str | None) -> object:
    """A request as ``allow`` leaves it: the caller's principal on its state."""
    from starlette.requests import Request

    from tactful.security.principals import GUEST

    headers = [(b"authorization", f"Bearer {credential}".encode())] if credential else []
    request = Request({"type": "http", "headers": headers, "app": production.app, "state": {}})
    principal = await production.app.state.authenticator.authenticate(request)
    request.state.principal = principal or GUEST
    return request


# -- two processes on one PostgreSQL database ----------------------------------------------------


@asynccontextmanager
async def two_production_apps() -> AsyncIterator[tuple[FastAPI, FastAPI, str]]:
    """Two production-mode apps on one fresh PostgreSQL database (as two workers), and an
    admin key."""
    async with postgres_database() as url:
        runtimes: list[Runtime] = []
        try:
            for _ in range(2):
                runtimes.append(
                    await start_runtime(
                        production_settings(transient=False, database_url=url),
                        embedder=HashingEmbedder(),
                        offline=True,
                    )
                )
            key = await create_key(runtimes[0].store, "root", KeyRole.ADMIN, "test")
            for name in ("cust-a", "cust-b"):
                await runtimes[0].store.create(Customer(id=name, name=name))
            yield create_app(runtimes[0]), create_app(runtimes[1]), key.token
        finally:
            for rt in runtimes:
                await rt.close()


def client(app: FastAPI, credential: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://tactful.example.com",
        headers={"Authorization": f"Bearer {credential}"},
    )


@pytest.mark.postgres
async def test_a_change_in_another_process_reaches_the_owners_kept_here() -> None:
    async with two_production_apps() as (here, there, admin_key):
        ann_token = tokens.mint(SECRET, "cust-a", 600).token
        bob_token = tokens.mint(SECRET, "cust-b", 600).token
        async with (
            client(here, admin_key) as admin_here,
            client(there, admin_key) as admin_there,
            client(here, ann_token) as ann,
            client(here, bob_token) as bob,
        ):
            _, moved_id = await new_session(admin_here)
            _, deleted_id = await new_session(admin_here)
            for session_id in (moved_id, deleted_id):
                assert await poll(ann, session_id) == 200
                assert session_id in owners(here)._entries
            patched = await admin_there.patch(
                f"/sessions/{moved_id}", json={"customer_id": "cust-b"}
            )
            assert patched.status_code == 200
            assert (await admin_there.delete(f"/sessions/{deleted_id}")).status_code == 204
            # The other process's notifications arrive through PostgreSQL, a moment later.
            for _ in range(500):
                if not {moved_id, deleted_id} & set(owners(here)._entries):
                    break
                await asyncio.sleep(0.01)
            assert await poll(ann, moved_id) == 404
            assert await poll(bob, moved_id) == 200
            assert await poll(ann, deleted_id) == 404
            assert await poll(admin_here, deleted_id) == 404
