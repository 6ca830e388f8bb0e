"""Text the store refuses (NUL, lone surrogates in ids, keys and names), text it repairs (lone
surrogates in documents, including those an older version stored), and bounded event reads."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tactful.domain import Customer, EventKind, EventSource, Session, Tag
from tactful.errors import NotFoundError, ValidationError
from tactful.store.base import E
from tactful.store.sql import SQLStore

BAD = ["a\x00b", "a\ud800b"]


async def write_raw_json(store: SQLStore, table: str, id: str, raw: str) -> None:
    """Overwrite a row's ``data`` with JSON text as an older version could have written it."""
    cast = "CAST(CAST(:raw AS TEXT) AS JSON)" if store.backend == "postgresql" else ":raw"
    async with store.transaction() as conn:
        assert isinstance(conn, AsyncConnection)
        await conn.execute(
            text(f"UPDATE {table} SET data = {cast} WHERE id = :id"), {"raw": raw, "id": id}
        )


def with_text(entity: E, **values: str) -> E:
    # Our models refuse lone surrogates already; the store must refuse them from any caller.
    return entity.model_copy(update=values)


@pytest.mark.parametrize("bad", BAD)
async def test_bad_text_in_an_indexed_column_is_a_validation_error(
    store: SQLStore, bad: str
) -> None:
    with pytest.raises(ValidationError, match="Customer's name"):
        await store.create(with_text(Customer(name="Ada"), name=bad))
    with pytest.raises(ValidationError, match="Customer's id"):
        await store.create(with_text(Customer(name="Ada"), id=bad))
    with pytest.raises(ValidationError, match="Tag's name"):
        await store.create(with_text(Tag(name="gold"), name=bad))
    with pytest.raises(ValidationError, match="key"):
        await store.upsert(Tag(name="gold"), key=bad)
    ada = await store.create(Customer(name="Ada"))
    with pytest.raises(ValidationError):
        await store.update(with_text(ada, name=bad))
    assert (await store.get(Customer, ada.id)).name == "Ada"
    assert [c.name for c in await store.list(Customer)] == ["Ada"]


@pytest.mark.parametrize("bad", BAD)
async def test_looking_up_bad_text_finds_nothing(store: SQLStore, bad: str) -> None:
    await store.create(Customer(name="Ada"))
    assert await store.find(Customer, bad) is None
    with pytest.raises(NotFoundError):
        await store.get(Customer, bad)
    assert await store.get_by_key(Customer, bad) is None
    assert await store.list(Customer, name=bad) == []
    assert await store.delete(Customer, bad) is False
    assert await store.list_events(bad) == []
    assert await store.delete_events(bad, min_offset=0) == 0
    with pytest.raises(NotFoundError):
        await store.get_event(bad, "e")
    with pytest.raises(NotFoundError):
        await store.append_event(bad, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data={})


async def test_offsets_beyond_32_bits_match_nothing(store: SQLStore) -> None:
    session = await store.create(Session(agent_id="a", customer_id="c"))
    await store.append_event(session.id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=1)
    for offset in (2**31, 2**63, 2**70):
        assert await store.list_events(session.id, min_offset=offset) == []
        assert await store.delete_events(session.id, min_offset=offset) == 0
    assert len(await store.list_events(session.id, min_offset=-(2**70))) == 1


async def test_events_are_read_in_pages(store: SQLStore) -> None:
    session = await store.create(Session(agent_id="a", customer_id="c"))
    async with store.transaction():
        for i in range(7):
            await store.append_event(
                session.id, kind=EventKind.CUSTOM, source=EventSource.SYSTEM, data=i
            )
    pages, offset = [], 0
    while page := await store.list_events(session.id, min_offset=offset, limit=3):
        pages.append([e.data for e in page])
        offset = page[-1].offset + 1
    assert pages == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_lone_surrogate_in_a_document_is_stored_as_a_replacement(store: SQLStore) -> None:
    session = await store.create(Session(agent_id="a", customer_id="c"))
    event = await store.append_event(
        session.id,
        kind=EventKind.MESSAGE,
        source=EventSource.AI_AGENT,
        data={"message": "hi \udc00", "emoji": "\U0001f600"},
    )
    [read] = await store.list_events(session.id)
    assert read.id == event.id
    assert read.data == {"message": "hi \ufffd", "emoji": "\U0001f600"}


async def test_documents_an_older_version_stored_with_lone_surrogates_still_read(
    store: SQLStore,
) -> None:
    ada = await store.create(Customer(name="Ada"))
    raw = ada.model_dump_json().replace('"Ada"', '"Ada \\ud800"')
    await write_raw_json(store, "customers", ada.id, raw)
    assert (await store.get(Customer, ada.id)).name == "Ada \ufffd"

    session = await store.create(Session(agent_id="a", customer_id=ada.id))
    event = await store.append_event(
        session.id, kind=EventKind.MESSAGE, source=EventSource.CUSTOMER, data={"message": "hi"}
    )
    await write_raw_json(
        store, "events", event.id, '{"message": "hi \\ud800", "ok": "\\ud83d\\ude00"}'
    )
    [read] = await store.list_events(session.id)
    assert read.data == {"message": "hi \ufffd", "ok": "\U0001f600"}
    assert (await store.get_event(session.id, event.id)).data == read.data
