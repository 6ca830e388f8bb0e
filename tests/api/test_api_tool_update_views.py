"""A tool's changes to a customer or session are on the timeline: staff read them whole;
the customer whose session it is sees the kind of change, not the values."""

from __future__ import annotations

from production import start_production

from tactful.domain import EventKind, EventSource
from tactful.domain.tool_updates import ToolUpdate, UpdateTarget


async def test_customers_see_that_a_tool_changed_something_not_what() -> None:
    prod = await start_production()
    try:
        async with prod.client(prod.admin_key) as admin:
            agent = (await admin.post("/agents", json={"name": "Shop"})).json()
            created = await admin.post(
                "/sessions", json={"agent_id": agent["id"], "customer_id": prod.customer_a}
            )
            session_id = created.json()["id"]
        # As engine/tool_updates.py records a tool's change.
        change = ToolUpdate(
            tool_id="crm:note", target=UpdateTarget.CUSTOMER_METADATA, set={"risk": "high"}
        )
        await prod.runtime.engine.timeline.append(
            session_id, EventKind.CUSTOM, EventSource.SYSTEM, change.event_data()
        )
        async with prod.client(prod.admin_key) as admin:
            staff = (await admin.get(f"/sessions/{session_id}/events")).json()
        assert [e["data"] for e in staff] == [
            {"tool_update": "customer_metadata", "tool_id": "crm:note", "set": {"risk": "high"}}
        ]
        async with prod.client(prod.token(prod.customer_a)) as customer:
            mine = (await customer.get(f"/sessions/{session_id}/events")).json()
        assert [e["data"] for e in mine] == [{"tool_update": "customer_metadata"}]
    finally:
        await prod.runtime.close()
