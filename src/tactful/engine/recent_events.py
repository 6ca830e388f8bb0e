"""The events this process just wrote to sessions' timelines, so that a long poll or a stream
woken by the bus is answered without reading the store again.

Per session it keeps a run of consecutive offsets, newest last: events this process appended
(and their updates, a streamed reply growing), each taken as it is published, once its write
committed. A run answers a read only when it can vouch for every offset from the read's
``min_offset`` to the newest one this process has heard of; else the caller reads the store:

- a change heard on the bus that no event comes with (another process's append or update, a
  deletion, a publish by code that does not pass the event here) drops the session's run, and
  notifications possibly lost (the bus reconnecting) drop every run;
- an append commits as its session's newest event (offsets are taken under the session's lock),
  so an append that does not follow the run's newest offset (someone else's came in between)
  starts a new run, and one older than the newest offset heard of is not vouched for;
- an update replaces the event it holds.

Another process's write whose notification is still on its way is missed as by a store read
made a moment earlier: its notification then wakes the waiters, and they read the store.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tactful.bus.base import Bus
from tactful.domain import Event, EventKind, EventSource
from tactful.domain.text import SURROGATE_ESCAPE, repaired_value

# A waiter is rarely more than a turn behind; an older offset is read from the store.
PER_SESSION = 32
SESSIONS = 1000


@dataclass
class _Known:
    """What this process knows of one session's timeline."""

    # The highest offset heard of (ours or another process's); -1 for none.
    newest: int = -1
    # Consecutive offsets, oldest first; empty when there is nothing to vouch for.
    run: list[Event] = field(default_factory=list)

    @property
    def vouched(self) -> bool:
        return bool(self.run) and self.run[-1].offset >= self.newest


def _as_stored(value: Any) -> Any:
    """``value`` as the store hands it back: JSON's types, lone surrogates repaired."""
    text = json.dumps(value)
    loaded = json.loads(text)
    return repaired_value(loaded) if SURROGATE_ESCAPE.search(text) else loaded


class RecentEvents:
    """Publishes this process's writes on the bus and keeps them, per session, for readers."""

    def __init__(self, bus: Bus, *, per_session: int = PER_SESSION, sessions: int = SESSIONS):
        self.bus = bus
        self.per_session = per_session
        self.sessions = sessions
        self._known: OrderedDict[str, _Known] = OrderedDict()
        # The publish under way that this instance made (its event is kept already).
        self._ours: tuple[str, int] | None = None
        bus.watch(self._heard)

    # -- writes ---------------------------------------------------------------------------------

    def publish_append(self, event: Event) -> None:
        """Keep an event this process appended (its write committed), then publish it."""
        known = self._session(event.session_id)
        run, offset = known.run, event.offset
        if run and offset < run[0].offset:
            pass  # published after a newer append of ours: the run starts after it
        elif run and offset <= run[-1].offset:
            run.clear()  # an offset appended twice: nothing here can be trusted
        else:
            if run and offset != run[-1].offset + 1:
                run.clear()  # someone else appended in between
            self._keep(run, len(run), event)
            del run[: -self.per_session]
        self._publish(event, known)

    def publish_update(self, event: Event) -> None:
        """Keep the new state of an event this process updated (its write committed), then
        publish it."""
        known = self._session(event.session_id)
        run = known.run
        if run and run[0].offset <= event.offset <= run[-1].offset:
            at = event.offset - run[0].offset
            if run[at].id == event.id and not event.deleted:
                self._keep(run, at, event)
            else:
                run.clear()
        elif run and event.offset > run[-1].offset:
            run.clear()  # an event newer than the run, which never saw it appended
        self._publish(event, known)

    @staticmethod
    def _keep(run: list[Event], at: int, event: Event) -> None:
        """Put the event at ``run[at]`` as the store would hand it back (a copy of its own:
        the writer's data may change after the write)."""
        try:
            kept = event.model_copy(
                update={"data": _as_stored(event.data), "metadata": _as_stored(event.metadata)}
            )
        except (TypeError, ValueError):  # not JSON (the store would have refused it)
            run.clear()
            return
        if at == len(run):
            run.append(kept)
        else:
            run[at] = kept

    def _publish(self, event: Event, known: _Known) -> None:
        known.newest = max(known.newest, event.offset)
        self._ours = (event.session_id, event.offset)
        try:
            self.bus.publish(event.session_id, event.offset)
        finally:
            self._ours = None

    def _heard(self, session_id: str | None, offset: int) -> None:
        """The bus heard of a change: drop what it may have made stale, unless it is ours."""
        if session_id is None:
            for known in self._known.values():
                known.run.clear()
            return
        if self._ours == (session_id, offset):
            return
        known = self._session(session_id)
        known.run.clear()
        known.newest = max(known.newest, offset)

    def _session(self, session_id: str) -> _Known:
        known = self._known.get(session_id)
        if known is None:
            known = self._known[session_id] = _Known()
            while len(self._known) > self.sessions:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(session_id)
        return known

    # -- reads ----------------------------------------------------------------------------------

    def events(
        self,
        session_id: str,
        *,
        min_offset: int = 0,
        kinds: Sequence[EventKind] | None = None,
        source: EventSource | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> list[Event] | None:
        """What ``Store.list_events`` would answer with the same arguments, or None when this
        cannot be vouched for (read the store)."""
        known = self._known.get(session_id)
        if known is None or not known.vouched:
            return None
        run = known.run
        first = max(min_offset, 0)
        if first < run[0].offset:
            return None
        found = [
            e
            for e in run[first - run[0].offset :]
            if (not kinds or e.kind in kinds)
            and (source is None or e.source is source)
            and (trace_id is None or e.trace_id == trace_id)
        ]
        return found if limit is None else found[: max(limit, 0)]

    def event(self, session_id: str, event_id: str) -> Event | None:
        """The newest state of one event, when this can be vouched for; else None."""
        known = self._known.get(session_id)
        if known is None or not known.vouched:
            return None
        return next((e for e in known.run if e.id == event_id), None)
