"""Session labels over REST: given by the guidelines a turn applies, filtered in the query,
set and removed with ``PATCH /sessions/{id}`` (Parlant's shapes), on both backends."""

from __future__ import annotations

import httpx
from api_scenario import answering_agent, new_session
from test_api_events import REFUND_QUESTION, read_turn

from tactful.runtime import Runtime


async def test_a_turn_labels_its_session_and_the_filter_finds_it(
    backend_client: httpx.AsyncClient, backend_runtime: Runtime
) -> None:
    client = backend_client
    scenario = await answering_agent(client, backend_runtime)
    labelled = await client.patch(
        f"/guidelines/{scenario.guideline_id}", json={"labels": {"upsert": ["refund", "money"]}}
    )
    assert labelled.status_code == 200, labelled.text
    assert labelled.json()["guideline"]["labels"] == ["refund", "money"]
    session_id = await new_session(client, scenario.agent_id, labels=["vip"])
    quiet = await new_session(client, scenario.agent_id, labels=["vip"])

    posted = await client.post(
        f"/sessions/{session_id}/events",
        json={"kind": "message", "source": "customer", "message": REFUND_QUESTION},
    )
    assert posted.status_code == 201, posted.text
    events = await read_turn(client, session_id)
    reply = next(e for e in events if e["kind"] == "message" and e["source"] == "ai_agent")
    assert reply["data"]["guidelines"] == [scenario.guideline_id]

    session = (await client.get(f"/sessions/{session_id}")).json()
    assert session["labels"] == ["vip", "refund", "money"]
    trace = (await client.get(f"/traces/{reply['trace_id']}")).json()
    assert trace["session_labels"] == ["refund", "money"]
    assert trace["session_labels_added"] == ["refund", "money"]

    def ids(listing: httpx.Response) -> list[str]:
        assert listing.status_code == 200, listing.text
        body = listing.json()
        return [s["id"] for s in (body["items"] if isinstance(body, dict) else body)]

    assert ids(await client.get("/sessions", params={"labels": ["refund"]})) == [session_id]
    assert ids(await client.get("/sessions", params={"labels": ["vip"]})) == [session_id, quiet]
    both = await client.get("/sessions", params={"labels": ["vip", "money"], "limit": 1})
    assert ids(both) == [session_id]
    assert (both.json()["total_count"], both.json()["has_more"]) == (1, False)
    page = await client.get("/sessions", params={"labels": ["vip"], "limit": 1, "sort": "desc"})
    assert ids(page) == [quiet] and page.json()["total_count"] == 2

    # Staff set and remove them as Parlant's clients do.
    patched = await client.patch(
        f"/sessions/{session_id}", json={"labels": {"upsert": ["handled"], "remove": ["money"]}}
    )
    assert patched.json()["labels"] == ["vip", "refund", "handled"]
    assert ids(await client.get("/sessions", params={"labels": ["money"]})) == []
