"""Revisions of definitions, on every backend: one per transaction, or per ``revision()`` block
across transactions; a revision goes with the transaction that wrote it when it rolls back."""

from __future__ import annotations

import pytest

from tactful.domain import Customer, Guideline, Term
from tactful.domain.audit import acting_as, revision
from tactful.store.sql import SQLStore


async def test_each_transaction_is_one_revision_with_its_changes(store: SQLStore) -> None:
    with acting_as("key:k1 (ci)"):
        async with store.transaction():
            a = await store.create(Guideline(condition="says hello", action="greet"))
            b = await store.create(Term(name="SKU", description="a stock keeping unit"))
        await store.delete(Guideline, a.id)
    await store.create(Customer(name="Dana"))  # not a definition: no revision
    newest, first = await store.list_revisions()
    assert (first.actor, newest.actor) == ("key:k1 (ci)", "key:k1 (ci)")
    changes = await store.definition_changes(revisions=[first.id])
    assert {(c.kind, c.entity_id) for c in changes} == {("guidelines", a.id), ("terms", b.id)}
    [deleted] = await store.definition_changes(revisions=[newest.id])
    assert (deleted.entity_id, deleted.data) == (a.id, None)
    assert [c.revision for c in await store.definition_changes(until=first.id)] == [first.id] * 2


async def test_a_revision_block_spans_transactions_and_keeps_its_summary(store: SQLStore) -> None:
    with revision("apply shop.yaml") as scope:
        await store.create(Guideline(condition="asks for a refund", action="explain"))
        await store.create(Guideline(condition="is angry", action="apologise"))
    [made] = await store.list_revisions()
    assert (made.id, made.summary) == (scope.id, "apply shop.yaml")
    assert len(await store.definition_changes(revisions=[made.id])) == 2


async def test_a_rolled_back_transaction_leaves_no_revision(store: SQLStore) -> None:
    with revision("fails") as scope, pytest.raises(RuntimeError):
        async with store.transaction():
            await store.create(Guideline(condition="says bye", action="wave"))
            raise RuntimeError("refused")
    assert scope.id is None
    assert await store.list_revisions() == []
    assert await store.definition_changes() == []
