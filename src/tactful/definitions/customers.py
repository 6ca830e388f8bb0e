"""The guest customer: who an anonymous conversation is with (id ``guest``), created on first use
by whichever way starts such a conversation (REST, the SDK)."""

from __future__ import annotations

from tactful.domain import GUEST_CUSTOMER_ID, Customer
from tactful.errors import ConflictError
from tactful.store.base import Store


async def ensure_guest(store: Store) -> Customer:
    """The guest customer, created if it is not there yet."""
    guest = await store.find(Customer, GUEST_CUSTOMER_ID)
    if guest is not None:
        return guest
    try:
        return await store.create(Customer(id=GUEST_CUSTOMER_ID, name="Guest"))
    except ConflictError:
        # Another request created it in between.
        return await store.get(Customer, GUEST_CUSTOMER_ID)
