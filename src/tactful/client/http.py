"""A small typed async client for tactful's REST API, on httpx.

```python
async with TactfulClient("http://127.0.0.1:8800") as client:
    agent = (await client.list_agents())[0]
    session = await client.create_session(agent.id)
    turn = await client.send(session.id, "Where is my order?")
    print(turn.text)
```
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from tactful.client.models import (
    AgentInfo,
    AppliedInfo,
    CustomerInfo,
    EvaluationInfo,
    EventInfo,
    GuidelineDetail,
    GuidelineInfo,
    Health,
    JourneyGraphInfo,
    JourneyInfo,
    PlanInfo,
    RevisionInfo,
    SessionInfo,
    TagInfo,
    TraceInfo,
    TurnResult,
)
from tactful.domain.flags import Flag
from tactful.errors import TactfulError

DEFAULT_URL = "http://127.0.0.1:8800"
# Event listings come in pages of at most PAGE; this header says another one follows.
PAGE = 1000
HAS_MORE = "Tactful-Has-More"

M = TypeVar("M")


class ClientError(TactfulError):
    """The API refused a request or could not be reached. ``detail`` is the server's own words;
    ``problems``, each problem of a refused request on its own (a 422's items, e.g. every
    problem of a definitions document), when the server listed them."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status_code: int | None = None,
        detail: str | None = None,
        problems: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code
        self.detail = detail
        self.problems = problems


class UnreachableError(ClientError):
    """Nothing answers at the base URL (refused, unknown host, connect timeout)."""


def _detail_of(response: httpx.Response) -> tuple[str, tuple[str, ...]]:
    """The server's ``detail`` as one line (a string, or FastAPI's list of validation errors
    joined), and the items of such a list one by one."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase, ()
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, str):
        return detail, ()
    if isinstance(detail, list) and all(isinstance(d, dict) for d in detail):
        parts = []
        for d in detail:
            where = ".".join(str(p) for p in d.get("loc", []) if p != "body")
            parts.append(f"{where}: {d.get('msg', d)}" if where else str(d.get("msg", d)))
        return "; ".join(parts), tuple(parts)
    return json.dumps(detail), ()


class TactfulClient:
    """Async client for one tactful server. Use as ``async with`` or call ``aclose()``.

    ``timeout`` bounds each ordinary request in seconds; long polls get their wait on top.
    ``transport`` replaces the network (e.g. ``httpx.MockTransport`` or ``httpx.ASGITransport``).
    ``api_key`` (an API key or a customer token) goes with every request, for production
    servers.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout: float = 30.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = dict(headers or {})
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    async def __aenter__(self) -> TactfulClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints ------------------------------------------------------------------------------

    async def health(self) -> Health:
        """``GET /healthz``."""
        return self._parse(Health, await self._json("GET", "/healthz"), "GET /healthz")

    async def list_agents(self) -> list[AgentInfo]:
        """``GET /agents``."""
        return self._parse(list[AgentInfo], await self._json("GET", "/agents"), "GET /agents")

    async def get_agent(self, agent_id: str) -> AgentInfo:
        """``GET /agents/{id}``."""
        return await self._get(AgentInfo, f"/agents/{agent_id}")

    # -- what an agent does ---------------------------------------------------------------------
    # Guidelines and journeys are scoped to an agent by the tag ``agent:<agent id>``.

    async def list_guidelines(self, *, tag_id: str | None = None) -> list[GuidelineInfo]:
        """``GET /guidelines``: every guideline, or those carrying ``tag_id``."""
        return await self._get(list[GuidelineInfo], "/guidelines", tag_id=tag_id)

    async def get_guideline(self, guideline_id: str) -> GuidelineDetail:
        """``GET /guidelines/{id}``: with its relationships and tool associations."""
        return await self._get(GuidelineDetail, f"/guidelines/{guideline_id}")

    async def list_journeys(self, *, tag_id: str | None = None) -> list[JourneyInfo]:
        """``GET /journeys``: every journey, or those carrying ``tag_id``."""
        return await self._get(list[JourneyInfo], "/journeys", tag_id=tag_id)

    async def get_journey(self, journey_id: str) -> JourneyInfo:
        """``GET /journeys/{id}``."""
        return await self._get(JourneyInfo, f"/journeys/{journey_id}")

    async def get_journey_graph(self, journey_id: str) -> JourneyGraphInfo:
        """``GET /journeys/{id}/graph``: its states and transitions."""
        return await self._get(JourneyGraphInfo, f"/journeys/{journey_id}/graph")

    # -- sessions -------------------------------------------------------------------------------

    async def list_sessions(
        self, *, agent_id: str | None = None, customer_id: str | None = None
    ) -> list[SessionInfo]:
        """``GET /sessions``: every session, or one agent's or customer's."""
        return await self._get(
            list[SessionInfo], "/sessions", agent_id=agent_id, customer_id=customer_id
        )

    async def get_session(self, session_id: str) -> SessionInfo:
        """``GET /sessions/{id}`` (for staff, with its ``usage``)."""
        return await self._get(SessionInfo, f"/sessions/{session_id}")

    async def create_session(
        self, agent_id: str, customer_id: str | None = None, title: str | None = None
    ) -> SessionInfo:
        """``POST /sessions``: a new conversation with ``agent_id`` (a guest if no customer)."""
        body: dict[str, Any] = {"agent_id": agent_id}
        if customer_id is not None:
            body["customer_id"] = customer_id
        if title is not None:
            body["title"] = title
        data = await self._json("POST", "/sessions", json=body)
        return self._parse(SessionInfo, data, "POST /sessions")

    async def post_message(
        self, session_id: str, text: str, *, moderation: str | None = None
    ) -> EventInfo:
        """``POST /sessions/{id}/events``: a customer message; the agent's turn starts.
        ``moderation`` (auto, paranoid, none) checks it first (docs/moderation.md)."""
        path = f"/sessions/{session_id}/events"
        if moderation is not None:
            path += f"?moderation={quote(moderation)}"
        body = {"kind": "message", "source": "customer", "message": text}
        return self._parse(EventInfo, await self._json("POST", path, json=body), f"POST {path}")

    async def wait_events(
        self,
        session_id: str,
        min_offset: int = 0,
        kinds: Sequence[str] | None = None,
        wait_for_data: int = 30,
    ) -> list[EventInfo]:
        """Events from ``min_offset`` on (one page: ask again after the last one); waits up to
        ``wait_for_data`` s for the first one.

        Returns an empty list when nothing came in time (the server's 504).
        """
        path = f"/sessions/{session_id}/events"
        params: dict[str, Any] = {"min_offset": min_offset, "wait_for_data": wait_for_data}
        if kinds:
            params["kinds"] = ",".join(kinds)
        response = await self._request(
            "GET", path, params=params, timeout=self.timeout + max(wait_for_data, 0)
        )
        if response.status_code == 504:
            return []
        return self._parse(list[EventInfo], self._body(response, "GET", path), f"GET {path}")

    async def read_events(
        self, session_id: str, min_offset: int = 0, kinds: Sequence[str] | None = None
    ) -> list[EventInfo]:
        """Every event from ``min_offset`` on, without waiting, read page by page: the server
        answers one page at a time and says with ``Tactful-Has-More`` that another follows."""
        path = f"/sessions/{session_id}/events"
        events: list[EventInfo] = []
        while True:
            params: dict[str, Any] = {"min_offset": min_offset, "wait_for_data": 0, "limit": PAGE}
            if kinds:
                params["kinds"] = ",".join(kinds)
            response = await self._request("GET", path, params=params)
            page = self._parse(list[EventInfo], self._body(response, "GET", path), f"GET {path}")
            events += page
            if not page or response.headers.get(HAS_MORE) != "true":
                return events
            min_offset = page[-1].offset + 1

    async def get_trace(self, trace_id: str, *, wait: float = 0.0) -> TraceInfo:
        """``GET /traces/{id}``. With ``wait``, retry a not-yet-stored trace for that long.

        A turn's trace is stored just after its ``ready`` status, so a caller that reads it
        right after the reply may need a moment.
        """
        path = f"/traces/{trace_id}"
        deadline = asyncio.get_running_loop().time() + wait
        delay = 0.02
        while True:
            response = await self._request("GET", path)
            now = asyncio.get_running_loop().time()
            if response.status_code != 404 or now >= deadline:
                break
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.25)
        return self._parse(TraceInfo, self._body(response, "GET", path), f"GET {path}")

    async def list_traces(self, session_id: str) -> list[TraceInfo]:
        """``GET /sessions/{id}/traces``: the traces of the session's finished turns, oldest
        first."""
        return await self._get(list[TraceInfo], f"/sessions/{session_id}/traces")

    # -- customers and tags ---------------------------------------------------------------------

    async def get_customer(self, customer_id: str) -> CustomerInfo:
        """``GET /customers/{id}`` (its ``tags`` are tag ids)."""
        return await self._get(CustomerInfo, f"/customers/{customer_id}")

    async def get_tag(self, tag_id: str) -> TagInfo:
        """``GET /tags/{id}``."""
        return await self._get(TagInfo, f"/tags/{tag_id}")

    # -- flags ----------------------------------------------------------------------------------
    # A flag is the stored entity itself (``tactful.domain.Flag``): one definition on both sides.

    async def create_flag(self, session_id: str, event_id: str, note: str = "") -> Flag:
        """``POST /flags``: mark one of the agent's messages with a note (staff)."""
        body = {"session_id": session_id, "event_id": event_id, "note": note}
        return self._parse(Flag, await self._json("POST", "/flags", json=body), "POST /flags")

    async def list_flags(
        self, *, session_id: str | None = None, agent_id: str | None = None
    ) -> list[Flag]:
        """``GET /flags``: every flag, newest first; only one session's or agent's when given."""
        params = {k: v for k, v in {"session_id": session_id, "agent_id": agent_id}.items() if v}
        response = await self._request("GET", "/flags", params=params)
        return self._parse(list[Flag], self._body(response, "GET", "/flags"), "GET /flags")

    async def delete_flag(self, flag_id: str) -> None:
        """``DELETE /flags/{id}`` (the message it named stays)."""
        path = f"/flags/{flag_id}"
        response = await self._request("DELETE", path)
        if response.is_error:
            self._body(response, "DELETE", path)

    # -- evaluations ----------------------------------------------------------------------------

    async def evaluate_agent(self, agent_id: str, *, wait: float = 60.0) -> EvaluationInfo:
        """``POST /evaluations`` (admin) for an agent's guidelines among themselves, then
        ``GET /evaluations/{id}`` waiting up to ``wait`` seconds for it to complete."""
        created = await self._json("POST", "/evaluations", json={"agent_id": agent_id})
        evaluation = self._parse(EvaluationInfo, created, "POST /evaluations")
        return await self._get(
            EvaluationInfo, f"/evaluations/{evaluation.id}", wait_for_completion=str(wait)
        )

    # -- definitions ----------------------------------------------------------------------------
    # An agent's definitions as one document, in the file format (tactful.definitions.document):
    # what `tactful export` writes and `tactful plan|apply` send. A refused document raises
    # ClientError (422) with each of its problems in ``problems``.

    async def export_agent(self, agent_id: str, revision: int | None = None) -> dict[str, Any]:
        """``GET /definitions/agents/{id}``: the agent's document, now or as of ``revision``."""
        return await self._get(
            dict[str, Any],
            f"/definitions/agents/{agent_id}",
            revision=None if revision is None else str(revision),
        )

    async def plan_definitions(self, document: dict[str, Any]) -> PlanInfo:
        """``POST /definitions/plan``: what applying the document would create, update and
        delete; writes nothing."""
        data = await self._json("POST", "/definitions/plan", json={"document": document})
        return self._parse(PlanInfo, data, "POST /definitions/plan")

    async def apply_definitions(
        self, document: dict[str, Any], summary: str | None = None
    ) -> AppliedInfo:
        """``POST /definitions/apply`` (admin): apply the document as one revision, ``summary``
        saying what for; what it no longer has is deleted."""
        body = {"document": document, "summary": summary}
        data = await self._json("POST", "/definitions/apply", json=body)
        return self._parse(AppliedInfo, data, "POST /definitions/apply")

    async def list_revisions(
        self, agent_id: str | None = None, limit: int = 50
    ) -> list[RevisionInfo]:
        """``GET /definitions/revisions`` (admin): revisions of definitions, newest first; only
        those touching ``agent_id``'s when given."""
        return await self._get(
            list[RevisionInfo], "/definitions/revisions", agent_id=agent_id, limit=str(limit)
        )

    async def rollback(self, revision: int, agent_id: str) -> AppliedInfo:
        """``POST /definitions/revisions/{id}/rollback`` (admin): make the agent's definitions
        what they were once ``revision`` was made, as a new revision."""
        path = f"/definitions/revisions/{revision}/rollback"
        data = await self._json("POST", path, json={"agent_id": agent_id})
        return self._parse(AppliedInfo, data, f"POST {path}")

    # -- one exchange ---------------------------------------------------------------------------

    async def send(
        self,
        session_id: str,
        text: str,
        *,
        timeout: float = 120.0,
        moderation: str | None = None,
    ) -> TurnResult:
        """Post a customer message (checked first as ``moderation`` says) and wait, by long
        poll, for the ``ready`` status of its turn.

        Raises ``ClientError`` if the turn does not finish within ``timeout`` seconds.
        """
        posted = await self.post_message(session_id, text, moderation=moderation)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        offset = posted.offset + 1
        replies: list[EventInfo] = []
        trace_id = ""
        error: str | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ClientError(
                    f"the agent did not finish its turn within {timeout:g}s", url=self.base_url
                )
            wait = max(1, min(30, math.ceil(remaining)))
            for event in await self.wait_events(session_id, offset, ["message", "status"], wait):
                offset = max(offset, event.offset + 1)
                if event.source in ("customer", "customer_ui"):
                    continue
                trace_id = trace_id or event.trace_id
                if event.message is not None:
                    replies.append(event)
                elif event.status == "error":
                    error = _status_error(event)
                elif event.status == "ready":
                    return TurnResult(
                        customer_event=posted,
                        replies=replies,
                        trace_id=event.trace_id or trace_id,
                        error=error,
                    )

    # -- plumbing -------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                path,
                json=json,
                params=params,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise UnreachableError(
                f"cannot reach tactful at {self.base_url}: {e or type(e).__name__}",
                url=self.base_url,
            ) from e
        except httpx.TimeoutException as e:
            raise ClientError(
                f"tactful at {self.base_url} did not answer {method} {path} in time",
                url=self.base_url,
            ) from e
        except httpx.HTTPError as e:
            raise ClientError(
                f"{method} {path} at {self.base_url} failed: {e or type(e).__name__}",
                url=self.base_url,
            ) from e

    async def _get(self, shape: type[M], path: str, **params: str | None) -> M:
        query = {k: v for k, v in params.items() if v is not None}
        response = await self._request("GET", path, params=query or None)
        return self._parse(shape, self._body(response, "GET", path), f"GET {path}")

    async def _json(self, method: str, path: str, *, json: Any = None) -> Any:
        return self._body(await self._request(method, path, json=json), method, path)

    def _body(self, response: httpx.Response, method: str, path: str) -> Any:
        if response.is_error:
            detail, problems = _detail_of(response)
            raise ClientError(
                f"{method} {path} failed ({response.status_code}): {detail}",
                url=self.base_url,
                status_code=response.status_code,
                detail=detail,
                problems=problems,
            )
        try:
            return response.json()
        except ValueError as e:
            raise ClientError(
                f"{method} {path} answered something that is not JSON "
                f"(is {self.base_url} a tactful server?)",
                url=self.base_url,
                status_code=response.status_code,
            ) from e

    def _parse(self, shape: type[M], data: Any, what: str) -> M:
        try:
            return pydantic.TypeAdapter(shape).validate_python(data)
        except pydantic.ValidationError as e:
            raise ClientError(
                f"unexpected answer to {what} (is {self.base_url} a tactful server of this "
                f"version?): {e.error_count()} problem(s), first: {e.errors()[0]['msg']}",
                url=self.base_url,
            ) from e


def _status_error(event: EventInfo) -> str:
    data = event.data.get("data") if isinstance(event.data, dict) else None
    if isinstance(data, dict) and data.get("exception"):
        return str(data["exception"])
    return "the turn failed"
