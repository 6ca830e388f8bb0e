"""Tools changing their own customer and session while a turn runs them: the customer's
metadata and tags, the session's metadata and labels (``tactful.domain.tool_updates``).

A tool asks through its ``ToolContext`` (``set_customer_metadata``, ``add_session_labels``,
...); the context only ever names the turn's own session and customer, so no other can be
changed. Each change is one transaction: its ``custom`` event is appended first (which takes
the session's lock, as a posted message does), the entity is read, changed and written, and
the event's data is completed with the change as it was made. A change that changes nothing
writes nothing; one that is refused (metadata too large, an unknown tag) raises ``ToolError``
and writes nothing. The trace lists each change with its event (``Composition.tool_updates``).
"""

from __future__ import annotations

from tactful.domain import Customer, Event, EventKind, EventSource, Session, Tag, Trace
from tactful.domain.tool_updates import (
    ToolUpdate,
    UpdateTarget,
    changed_metadata,
    changed_names,
    metadata_problem,
)
from tactful.engine.timeline import Timeline
from tactful.store.base import NewEvent
from tactful.tools.base import ToolError, Update


class _Unchanged(Exception):
    """Nothing to write: the transaction is rolled back (its event with it)."""

    def __init__(self, entity: Customer | Session) -> None:
        self.entity = entity


class ToolUpdates:
    """Changes tools make to the customer and session of the turn that runs them."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def for_turn(self, session_id: str, customer_id: str, trace: Trace) -> Update:
        """What a turn's ``ToolContext`` calls: changes to this session and this customer
        only, each recorded in ``trace``."""

        async def update(asked: ToolUpdate) -> tuple[ToolUpdate, Customer | Session]:
            done, entity = await self.apply(
                asked, session_id=session_id, customer_id=customer_id, trace_id=trace.id
            )
            if done:
                trace.composition.tool_updates.append(done)
            return done, entity

        return update

    async def apply(
        self, asked: ToolUpdate, *, session_id: str, customer_id: str, trace_id: str
    ) -> tuple[ToolUpdate, Customer | Session]:
        """Make the change; returns it as made (empty when nothing changed) and the entity."""
        if problem := asked.problem():
            raise ToolError(f"{asked.target.value}: {problem}")
        store = self.timeline.store
        try:
            async with store.transaction():
                [placeholder] = await store.append_events(
                    session_id,
                    [NewEvent(EventKind.CUSTOM, EventSource.SYSTEM, asked.event_data(), trace_id)],
                )
                done, entity = await self._change(asked, session_id, customer_id)
                if not done:
                    raise _Unchanged(entity)
                event: Event = await store.update_event_data(
                    session_id, placeholder.id, done.event_data()
                )
        except _Unchanged as nothing:
            none = asked.model_copy(update={"set": {}, "unset": [], "add": [], "remove": []})
            return none, nothing.entity
        self.timeline.publish([event])
        done.event_id = event.id
        return done, entity

    async def _change(
        self, asked: ToolUpdate, session_id: str, customer_id: str
    ) -> tuple[ToolUpdate, Customer | Session]:
        """Read, change and write the entity (inside the caller's transaction)."""
        store = self.timeline.store
        target = asked.target
        if target in (UpdateTarget.CUSTOMER_METADATA, UpdateTarget.CUSTOMER_TAGS):
            customer = await store.get(Customer, customer_id)
            if target is UpdateTarget.CUSTOMER_METADATA:
                metadata, done = changed_metadata(customer.metadata, asked)
                _check(target, metadata_problem(metadata))
                customer.metadata = {k: str(v) for k, v in metadata.items()}
            else:
                for tag in dict.fromkeys(asked.add):
                    if await store.find(Tag, tag) is None:
                        _check(target, f"no tag {tag!r}")
                customer.tags, done = changed_names(customer.tags, asked)
            return done, (await store.update(customer) if done else customer)
        session = await store.get(Session, session_id)
        if target is UpdateTarget.SESSION_METADATA:
            session.metadata, done = changed_metadata(session.metadata, asked)
            _check(target, metadata_problem(session.metadata))
        else:
            session.labels, done = changed_names(session.labels, asked)
        return done, (await store.update(session) if done else session)


def _check(target: UpdateTarget, problem: str | None) -> None:
    if problem is not None:
        raise ToolError(f"{target.value}: {problem}")
