"""Production mode: API keys, customer tokens, guest sessions, ownership, limits and the audit
trail, through the REST API."""

from __future__ import annotations

import httpx
from api_scenario import REFUND_REPLY, answering_agent
from production import SECRET, Production, production_settings, start_production
from test_api_events import REFUND_QUESTION, read_turn

from tactful.domain import EventKind, EventSource, SessionStatus
from tactful.security import tokens

MESSAGE = {"kind": "message", "source": "customer", "message": REFUND_QUESTION}


async def test_anonymous_callers_are_refused_everything_but_health(
    production: Production,
) -> None:
    async with production.client() as anonymous:
        for method, path in [
            ("GET", "/customers"),
            ("DELETE", "/sessions"),
            ("DELETE", "/agents/any"),
            ("PATCH", "/guidelines/any"),
            ("GET", "/keys"),
            ("GET", "/audit"),
        ]:
            response = await anonymous.request(method, path, json={} if method == "PATCH" else None)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in response.json()["detail"]
        assert (await anonymous.get("/healthz")).status_code == 200


async def test_bad_credentials_are_refused_with_a_reason(production: Production) -> None:
    cases = {
        "Basic abc": "malformed",
        "Bearer tfk_nosuchkey0_secret": "unknown or revoked",
        f"Bearer {production.admin_key}x": "unknown or revoked",
        "Bearer not.a.jwt": "not valid",
        f"Bearer {tokens.mint('another-secret-' * 3, production.customer_a, 60).token}": "valid",
        f"Bearer {tokens.mint(SECRET, production.customer_a, -120).token}": "expired",
    }
    async with production.client() as c:
        for header, reason in cases.items():
            response = await c.get("/customers", headers={"Authorization": header})
            assert response.status_code == 401, header
            assert reason in response.json()["detail"], (header, response.text)


async def test_keys_are_shown_once_stored_hashed_and_revocable(production: Production) -> None:
    async with production.client(production.admin_key) as admin:
        created = await admin.post("/keys", json={"name": "support desk", "role": "operator"})
        assert created.status_code == 201, created.text
        issued = created.json()
        token = issued["key"]
        assert token.startswith("tfk_") and issued["role"] == "operator"
        listed = (await admin.get("/keys")).json()
        assert {k["name"] for k in listed} >= {"root", "bff", "support desk"}
        assert token not in str(listed) and all("digest" not in k for k in listed)
        async with production.client(token) as desk:
            assert (await desk.get("/customers")).status_code == 200
            assert (await desk.post("/agents", json={"name": "X"})).status_code == 403
            assert (await desk.get("/keys")).status_code == 403
            assert (await admin.delete(f"/keys/{issued['id']}")).status_code == 204
            refused = await desk.get("/customers")
            assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        revoked = (await admin.get(f"/keys/{issued['id']}")).json()
        assert revoked["revoked_utc"] is not None
        assert (await admin.delete("/keys/nosuchkey")).status_code == 404


async def test_operators_work_conversations_but_define_nothing(production: Production) -> None:
    async with production.client(production.operator_key) as operator:
        assert (await operator.get("/customers")).status_code == 200
        assert (await operator.get("/guidelines")).status_code == 200
        refused = await operator.post("/guidelines", json={"condition": "c", "action": "a"})
        assert refused.status_code == 403
        assert "admin" in refused.json()["detail"]
        assert (await operator.delete("/agents/any")).status_code == 403


async def test_operators_mint_customer_tokens(production: Production) -> None:
    async with production.client(production.operator_key) as operator:
        minted = await operator.post(f"/customers/{production.customer_a}/tokens", json={})
        assert minted.status_code == 201, minted.text
        assert minted.json()["customer_id"] == production.customer_a
        assert tokens.verify(SECRET, minted.json()["token"]) == production.customer_a
        too_long = await operator.post(
            f"/customers/{production.customer_a}/tokens", json={"expires_in": 30 * 24 * 3600}
        )
        assert too_long.status_code == 422 and "maximum" in too_long.text
        await operator.post("/sessions", json={"agent_id": "nobody"})  # makes no guest
        guest = await operator.post("/customers/guest/tokens", json={})
        assert guest.status_code in (404, 422)
        unknown = await operator.post("/customers/nobody/tokens", json={})
        assert unknown.status_code == 404
    async with production.client(production.token(production.customer_a)) as customer:
        denied = await customer.post(f"/customers/{production.customer_a}/tokens", json={})
        assert denied.status_code == 403


async def test_no_token_acts_as_the_shared_guest_customer() -> None:
    forged = tokens.mint(SECRET, "guest", 600).token
    try:
        tokens.verify(SECRET, forged)
    except tokens.TokenError as e:
        assert "guest" in str(e)
    else:
        raise AssertionError("a token for the guest customer was accepted")


async def test_a_customer_token_reaches_only_its_own_sessions(production: Production) -> None:
    async with production.client(production.admin_key) as admin:
        scenario = await answering_agent(admin, production.runtime)
        theirs = await admin.post(
            "/sessions", json={"agent_id": scenario.agent_id, "customer_id": production.customer_b}
        )
        b_session = theirs.json()["id"]
    async with production.client(production.token(production.customer_a)) as ann:
        created = await ann.post("/sessions", json={"agent_id": scenario.agent_id, "title": "hi"})
        assert created.status_code == 201, created.text
        mine = created.json()
        assert mine["customer_id"] == production.customer_a
        for body, why in [
            ({"customer_id": production.customer_b}, "own customer"),
            ({"metadata": {"tier": "vip"}}, "metadata"),
        ]:
            refused = await ann.post("/sessions", json={"agent_id": scenario.agent_id, **body})
            assert refused.status_code == 403 and why in refused.text

        listed = (await ann.get("/sessions")).json()
        assert [s["id"] for s in listed] == [mine["id"]]
        assert (await ann.get("/sessions", params={"customer_id": "cust-b"})).status_code == 403

        for method, path, body in [
            ("GET", f"/sessions/{b_session}", None),
            ("GET", f"/sessions/{b_session}/events?wait_for_data=0", None),
            ("POST", f"/sessions/{b_session}/events", MESSAGE),
        ]:
            response = await ann.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        for method, path in [
            ("GET", f"/sessions/{mine['id']}/traces"),
            ("GET", f"/sessions/{mine['id']}/journeys"),
            ("PATCH", f"/sessions/{mine['id']}"),
            ("DELETE", f"/sessions/{mine['id']}"),
            ("GET", "/customers"),
            ("GET", "/agents"),
        ]:
            response = await ann.request(method, path, json={} if method == "PATCH" else None)
            assert response.status_code == 403, (method, path, response.text)

        posted = await ann.post(f"/sessions/{mine['id']}/events", json=MESSAGE)
        assert posted.status_code == 201, posted.text
        assert posted.json()["data"]["participant"] == {"id": "cust-a", "display_name": "Ann"}
        events = await read_turn(ann, mine["id"])
        reply = next(e for e in events if e["kind"] == "message" and e["source"] == "ai_agent")
        assert reply["data"]["message"] == REFUND_REPLY.replace("{{agent_name}}", "Support")

        custom = {"kind": "custom", "source": "customer_ui", "data": {"clicked": "faq"}}
        assert (await ann.post(f"/sessions/{mine['id']}/events", json=custom)).status_code == 201
        for body in [
            {"kind": "status", "source": "ai_agent", "status": "typing"},
            {**MESSAGE, "source": "human_agent", "participant": {"display_name": "Ann"}},
            {**MESSAGE, "participant": {"display_name": "Someone else"}},
        ]:
            refused = await ann.post(f"/sessions/{mine['id']}/events", json=body)
            assert refused.status_code == 403, (body, refused.text)


async def test_customers_see_their_timeline_without_tool_events_or_internals(
    production: Production,
) -> None:
    async with production.client(production.admin_key) as admin:
        scenario = await answering_agent(admin, production.runtime)
    async with production.client(production.token(production.customer_a)) as ann:
        session_id = (await ann.post("/sessions", json={"agent_id": scenario.agent_id})).json()[
            "id"
        ]
        engine = production.runtime.engine
        tool = await engine.timeline.append(
            session_id, EventKind.TOOL, EventSource.SYSTEM, {"tool_calls": [{"secret": 1}]}
        )
        await engine.timeline.status(
            session_id, SessionStatus.ERROR, "t1", exception="OperationalError: db at 10.0.0.5"
        )
        seen = (await ann.get(f"/sessions/{session_id}/events?wait_for_data=0")).json()
        assert [e["kind"] for e in seen] == ["status"]
        assert "10.0.0.5" not in str(seen)
        assert seen[0]["data"]["data"]["exception"].startswith("the agent could not answer")
        only_tools = await ann.get(f"/sessions/{session_id}/events?kinds=tool&wait_for_data=5")
        assert only_tools.status_code == 200 and only_tools.json() == []
        assert (await ann.get(f"/sessions/{session_id}/events/{tool.id}")).status_code == 404
        stream = await ann.get(f"/sessions/{session_id}/events?sse=true&wait_for_data=0.2")
        assert "10.0.0.5" not in stream.text and "secret" not in stream.text
    async with production.client(production.operator_key) as operator:
        full = (await operator.get(f"/sessions/{session_id}/events?wait_for_data=0")).json()
        assert [e["kind"] for e in full] == ["tool", "status"]
        assert "10.0.0.5" in str(full)


async def test_guest_sessions_are_off_unless_the_agent_takes_them(
    production: Production,
) -> None:
    async with production.client(production.admin_key) as admin:
        scenario = await answering_agent(admin, production.runtime)
        staff_session = (
            await admin.post("/sessions", json={"agent_id": scenario.agent_id})
        ).json()["id"]
    async with production.client() as guest:
        refused = await guest.post("/sessions", json={"agent_id": scenario.agent_id})
        assert refused.status_code == 401 and "guest sessions" in refused.json()["detail"]
        async with production.client(production.admin_key) as admin:
            on = await admin.patch(f"/agents/{scenario.agent_id}", json={"guest_sessions": True})
            assert on.status_code == 200 and on.json()["guest_sessions"] is True
        created = await guest.post("/sessions", json={"agent_id": scenario.agent_id})
        assert created.status_code == 201, created.text
        session = created.json()
        assert len(session["id"]) == 32 and session["customer_id"] == "guest"
        named = await guest.post(
            "/sessions", json={"agent_id": scenario.agent_id, "customer_id": "cust-a"}
        )
        assert named.status_code == 403

        assert (await guest.post(f"/sessions/{session['id']}/events", json=MESSAGE)).is_success
        events = await read_turn(guest, session["id"])
        assert any(e["kind"] == "message" and e["source"] == "ai_agent" for e in events)
        assert (await guest.get(f"/sessions/{session['id']}")).status_code == 200
        # Only its own session: not a staff-made session of the same guest customer, no lists.
        assert (await guest.get(f"/sessions/{staff_session}")).status_code == 404
        assert (await guest.get("/sessions")).status_code == 401
        assert (await guest.get(f"/sessions/{session['id']}/traces")).status_code == 401

        async with production.client(production.admin_key) as admin:
            await admin.patch(f"/agents/{scenario.agent_id}", json={"guest_sessions": False})
        assert (await guest.get(f"/sessions/{session['id']}")).status_code == 404


async def test_customer_messages_are_rate_limited_per_session() -> None:
    prod = await start_production(production_settings(rate_messages_per_session=2))
    try:
        async with prod.client(prod.admin_key) as admin:
            scenario = await answering_agent(admin, prod.runtime)
            session_id = (
                await admin.post(
                    "/sessions",
                    json={"agent_id": scenario.agent_id, "customer_id": prod.customer_a},
                )
            ).json()["id"]
            for _ in range(2):
                assert (await admin.post(f"/sessions/{session_id}/events", json=MESSAGE)).is_success
            limited = await admin.post(f"/sessions/{session_id}/events", json=MESSAGE)
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["retry-after"]) <= 61
            assert "2 a minute" in limited.json()["detail"]
            customer_messages = await prod.runtime.store.list_events(
                session_id, kinds=[EventKind.MESSAGE], source=EventSource.CUSTOMER
            )
            assert len(customer_messages) == 2  # the refused one was not stored
    finally:
        await prod.runtime.close()


async def test_requests_are_rate_limited_per_key_and_guest_sessions_per_client() -> None:
    prod = await start_production(
        production_settings(rate_requests_per_key=5, rate_guest_sessions_per_client=1)
    )
    try:
        async with prod.client(prod.operator_key) as operator:
            statuses = [(await operator.get("/customers")).status_code for _ in range(6)]
            assert statuses == [200] * 5 + [429]
        async with prod.client(prod.admin_key) as admin:  # another key, its own count (4 calls)
            scenario = await answering_agent(admin, prod.runtime)
            await admin.patch(f"/agents/{scenario.agent_id}", json={"guest_sessions": True})
        async with prod.client() as guest:
            first = await guest.post("/sessions", json={"agent_id": scenario.agent_id})
            second = await guest.post("/sessions", json={"agent_id": scenario.agent_id})
            assert (first.status_code, second.status_code) == (201, 429)
            assert "guest sessions from this address" in second.json()["detail"]
    finally:
        await prod.runtime.close()


async def test_every_definition_change_is_audited_with_who_made_it(
    production: Production,
) -> None:
    async with production.client(production.admin_key) as admin:
        created = await admin.post("/guidelines", json={"condition": "c1", "action": "a1"})
        guideline_id = created.json()["id"]
        await admin.patch(f"/guidelines/{guideline_id}", json={"action": "a2"})
        await admin.delete(f"/guidelines/{guideline_id}")
        await admin.post("/keys", json={"name": "ci", "role": "operator"})
        trail = (await admin.get("/audit", params={"entity_id": guideline_id})).json()
        assert [(e["action"], e["kind"]) for e in trail] == [
            ("deleted", "guidelines"),
            ("updated", "guidelines"),
            ("created", "guidelines"),
        ]
        assert all(e["actor"].startswith("key:") and "(root)" in e["actor"] for e in trail)
        assert trail[1]["data"]["action"] == "a2" and trail[0]["data"] is None
        keys = (await admin.get("/audit", params={"kind": "api_keys", "limit": 1})).json()
        assert keys[0]["data"]["name"] == "ci" and "digest" not in keys[0]["data"]
        older = (await admin.get("/audit", params={"before": trail[1]["id"]})).json()
        assert all(e["id"] < trail[1]["id"] for e in older)
    async with production.client(production.operator_key) as operator:
        assert (await operator.get("/audit")).status_code == 403


async def test_the_spec_declares_the_bearer_scheme_and_its_refusals(
    production: Production,
) -> None:
    async with production.client() as c:
        spec = (await c.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    customers = spec["paths"]["/customers"]["get"]
    assert customers["security"] == [{"bearer": []}]
    assert {"401", "403", "429"} <= set(customers["responses"])
    guest_route = spec["paths"]["/sessions/{session_id}/events"]["post"]
    assert guest_route["security"] == [{"bearer": []}, {}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


async def test_development_mode_declares_no_credentials(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "securitySchemes" not in spec.get("components", {})
    assert "401" not in spec["paths"]["/customers"]["get"]["responses"]
