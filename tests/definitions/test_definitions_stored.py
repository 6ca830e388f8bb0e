"""A restart that defines its agent again as it was (``definitions.stored``): no check and no
write per definition, while a changed definition is still written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tactful
from tactful.definitions.guidelines import define_guideline
from tactful.definitions.stored import StoredDefinitions
from tactful.domain import Guideline
from tactful.llm.scripted import HashingEmbedder
from tactful.store.base import Store


async def _define(server: tactful.Server, conditions: list[str]) -> tactful.Agent:
    agent = await server.create_agent("Shop", id="shop")
    for i, condition in enumerate(conditions):
        await agent.create_guideline(condition, "help them", id=f"g{i}")
    await agent.create_guideline("the customer is angry", "apologise", tags=[])
    return agent


class _Counted:
    """Counts a store's per-definition calls (one-row reads and writes)."""

    def __init__(self, store: Store) -> None:
        self.calls: list[str] = []
        for name in ("find", "get", "get_by_key", "upsert", "create", "update"):
            real = getattr(store, name)

            async def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                self.calls.append(_name)
                return await _real(*args, **kw)

            setattr(store, name, counted)


async def test_a_restart_defining_the_same_guidelines_reads_each_kind_once(
    tmp_path: Path,
) -> None:
    conditions = [f"the customer asks about product {i}" for i in range(30)]
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), offline=True
    ) as server:
        await _define(server, conditions)
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), offline=True
    ) as server:
        store = server.runtime.store
        revision = await store.definitions_revision()
        await server.create_agent("Shop", id="shop")  # before counting: the agent itself
        counted = _Counted(store)
        await _define(server, conditions)
        assert await store.definitions_revision() == revision
        # The agent is defined again (one upsert); none of the 31 guidelines is read or written.
        assert counted.calls.count("upsert") <= 1
        assert counted.calls.count("find") + counted.calls.count("get_by_key") <= 1


async def test_a_changed_guideline_is_still_written_on_restart(tmp_path: Path) -> None:
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), offline=True
    ) as server:
        await _define(server, ["the customer asks about returns"])
    async with tactful.Server(
        data_dir=tmp_path, embedder=HashingEmbedder(), offline=True
    ) as server:
        agent = await server.create_agent("Shop", id="shop")
        changed = await agent.create_guideline(
            "the customer asks about refunds", "help them", id="g0"
        )
        assert changed.condition == "the customer asks about refunds"
        stored = await server.runtime.store.get(Guideline, "g0")
        assert stored.condition == "the customer asks about refunds"
        # Defined again in the same run, as just written: nothing more to write.
        revision = await server.runtime.store.definitions_revision()
        await agent.create_guideline("the customer asks about refunds", "help them", id="g0")
        assert await server.runtime.store.definitions_revision() == revision


async def test_stored_definitions_compare_as_the_checked_write_stores(named: Store) -> None:
    first = await define_guideline(
        named,
        Guideline(condition="c2", action="a", tags=["agent:shop", "agent:shop"]),
        key="k",
    )
    stored = StoredDefinitions(named)
    # The same definition with its repeated tag: stored exactly so once repeats are dropped.
    again = await define_guideline(
        named,
        Guideline(condition="c2", action="a", tags=["agent:shop", "agent:shop"]),
        key="k",
        stored=stored,
    )
    assert again.id == first.id
    other = Guideline(condition="c2", action="b", tags=["agent:shop"])
    assert await stored.same(other, "k") is None
