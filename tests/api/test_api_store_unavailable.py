"""A database that cannot be reached (down, cut off, out of connections) answers 503 with
Retry-After, writes nothing, and the server serves again once the database is back."""

from __future__ import annotations

import httpx
from sqlalchemy.engine import make_url

from fresh_databases import postgres_database
from tactful.api.app import create_app
from tactful.config import Settings
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import start_runtime
from tactful.store.sql import SQLStore
from tcp_proxy import proxy_to


async def test_a_database_cut_off_answers_503_and_the_server_recovers() -> None:
    async with postgres_database() as url:
        target = make_url(url)
        async with proxy_to(target.host or "127.0.0.1", target.port or 5432) as proxy:
            through = target.set(port=proxy.port).render_as_string(hide_password=False)
            rt = await start_runtime(
                Settings(database_url=through, database_pool_size=3, database_max_overflow=2),
                embedder=HashingEmbedder(),
                offline=True,
            )
            try:
                assert isinstance(rt.store, SQLStore)
                assert (rt.store.pool_size, rt.store.max_overflow) == (3, 2)
                transport = httpx.ASGITransport(create_app(rt))
                async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                    assert (await c.post("/agents", json={"name": "Before"})).status_code == 201
                    proxy.sever()
                    for _ in range(3):  # pooled connections broken, then no new ones
                        cut = await c.post("/agents", json={"name": "During"})
                        assert cut.status_code == 503, cut.text
                        assert cut.headers["Retry-After"] == "1"
                        assert (
                            "unavailable" in cut.json()["detail"] or "lost" in cut.json()["detail"]
                        )
                    proxy.restore()
                    assert (await c.post("/agents", json={"name": "After"})).status_code == 201
                    names = [a["name"] for a in (await c.get("/agents")).json()]
                    assert sorted(names) == ["After", "Before"]
            finally:
                await rt.close()
