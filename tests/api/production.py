"""A production-mode app for the access tests: one key per role, two named customers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from tactful.api import create_app
from tactful.config import Settings
from tactful.domain import Customer, KeyRole
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import Runtime, start_runtime
from tactful.security import tokens
from tactful.security.keys import create_key

SECRET = "test-secret-key-of-at-least-32-characters"


@dataclass
class Production:
    """A production-mode app with one key per role and two named customers, A and B."""

    runtime: Runtime
    app: FastAPI
    admin_key: str
    operator_key: str
    customer_a: str
    customer_b: str

    def client(self, credential: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(self.app),
            base_url="http://tactful.example.com",
            headers=headers,
        )

    def token(self, customer_id: str, ttl_s: int = 600) -> str:
        return tokens.mint(SECRET, customer_id, ttl_s).token


def production_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"transient": True, "mode": "production", "secret_key": SECRET}
    return Settings(**(values | overrides))


async def start_production(settings: Settings | None = None) -> Production:
    rt = await start_runtime(
        settings or production_settings(), embedder=HashingEmbedder(), offline=True
    )
    admin = await create_key(rt.store, "root", KeyRole.ADMIN, "test")
    operator = await create_key(rt.store, "bff", KeyRole.OPERATOR, "test")
    a = await rt.store.create(Customer(id="cust-a", name="Ann"))
    b = await rt.store.create(Customer(id="cust-b", name="Bob"))
    return Production(rt, create_app(rt), admin.token, operator.token, a.id, b.id)
