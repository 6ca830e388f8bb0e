"""Voltmart's order database (SQLite) and the tools the support agent calls on it.

The database is generated, never committed: ``OrderStore`` creates the schema and seeds 10 demo
orders the first time it is used (dates relative to that day, by tactful's clock: a
conversation test's ``time:`` moves them), in ``voltmart-orders.db`` under the server's data
folder, at the path in ``VOLTMART_ORDERS_DB``, or in memory for a transient server. Delete the
file to start over with fresh dates.

``OrderTools(store)`` is the tool service ``voltmart`` with six ``@tactful.tool`` functions:
``find_order``, ``order_status``, the consequential ``start_return``, ``refund`` and
``change_address``, and ``hand_off_to_person``, which puts the session in manual mode (a
person answers from then on). Business rules (30-day return window, refund only after the
return arrived or for a cancellation before shipping, address changes only while processing)
are checked here, not left to the model: a refused request is an ordinary result saying why
(``ok: false``), never an exception. Every result carries ``fields`` for canned responses
(``{{status}}``, ``{{rma}}``, ``{{transaction_id}}``, ...), set to None when they do not apply,
so a template can branch on them with ``{% if %}``. An opened return labels the session
``return`` and notes its RMA in the session's metadata (``ToolContext.add_session_labels``).
"""

# No `from __future__ import annotations`: like agent.py, this file is loaded by path.
import asyncio
import json
import os
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

import tactful
from tactful.domain.common import utcnow
from tactful.tools import PythonToolService, SessionControl

SERVICE = "voltmart"
DB_ENV = "VOLTMART_ORDERS_DB"
DB_FILE = "voltmart-orders.db"
RETURN_WINDOW_DAYS = 30
ORDER_ID_PATTERN = r"^VM\d{8}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY CHECK (id GLOB 'VM[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'),
    email TEXT NOT NULL,                -- lower case
    items TEXT NOT NULL,                -- JSON list of product names
    total_cents INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled')),
    placed_on TEXT NOT NULL,            -- ISO dates
    eta TEXT,
    delivered_on TEXT,
    address TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_email ON orders (email);
CREATE TABLE IF NOT EXISTS returns (
    rma TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE REFERENCES orders (id),
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('started', 'received')),
    started_on TEXT NOT NULL,
    received_on TEXT
);
CREATE TABLE IF NOT EXISTS refunds (
    transaction_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE REFERENCES orders (id),
    amount_cents INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('return', 'cancellation')),
    issued_on TEXT NOT NULL
);
"""

# -- seed data ------------------------------------------------------------------------------------
# (id, email, items, total in cents, status, placed, ETA, delivered: days from the seeding day,
# address). Each order exercises a rule: within/past the return window, return not yet received,
# already refunded, still processing (address change, cancellation refund)...
SEED_ORDERS: tuple[tuple[Any, ...], ...] = (
    ("VM10234567", "dana@example.com", ["Aurora ANC headphones"], 19999,
     "delivered", -15, None, -12, "48 Birch Lane, Portland, OR 97205"),
    ("VM10234568", "dana@example.com", ["Lumen 27-inch 4K monitor"], 32900,
     "shipped", -3, 3, None, "48 Birch Lane, Portland, OR 97205"),
    ("VM10234569", "dana@example.com", ["Pulse 65W USB-C charger", "Braided USB-C cable"], 5498,
     "processing", 0, 5, None, "48 Birch Lane, Portland, OR 97205"),
    ("VM20561234", "sam.rivera@example.com", ["Nimbus robot vacuum"], 27950,
     "delivered", -50, None, -45, "9 Harbor Street, Boston, MA 02110"),
    ("VM20561235", "sam.rivera@example.com", ["Orbit smart speaker"], 8999,
     "delivered", -24, None, -20, "9 Harbor Street, Boston, MA 02110"),
    ("VM31478820", "priya.k@example.com", ["Vector 15 gaming laptop"], 149900,
     "delivered", -11, None, -8, "310 Elm Avenue, Austin, TX 78701"),
    ("VM31478821", "priya.k@example.com", ["Halo smartwatch"], 24900,
     "delivered", -33, None, -30, "310 Elm Avenue, Austin, TX 78701"),
    ("VM42890017", "lee.chen@example.com", ["Drift wireless earbuds"], 12900,
     "delivered", -28, None, -25, "77 Pine Road, Seattle, WA 98101"),
    ("VM42890018", "lee.chen@example.com", ["Beam 4K projector"], 69900,
     "processing", -1, 6, None, "77 Pine Road, Seattle, WA 98101"),
    ("VM55012346", "maria.g@example.com", ["Spark 10-inch tablet", "Spark folio case"], 36898,
     "shipped", -4, 1, None, "5 Canal Street, Chicago, IL 60601"),
)  # fmt: skip
# (RMA, order, reason, status, started, received: days from the seeding day)
SEED_RETURNS: tuple[tuple[Any, ...], ...] = (
    ("RMA-482913", "VM20561235", "sound quality", "received", -8, -3),
    ("RMA-593014", "VM31478820", "too heavy to carry around", "started", -2, None),
    ("RMA-604125", "VM42890017", "one earbud does not charge", "received", -14, -10),
)
# (transaction id, order, amount in cents, kind, issued: days from the seeding day)
SEED_REFUNDS: tuple[tuple[Any, ...], ...] = (("TX-7F3A9C21D0", "VM42890017", 12900, "return", -7),)


def _day(d: str | None) -> str | None:
    """An ISO date as customers read it: "Friday, June 13"."""
    if d is None:
        return None
    value = date.fromisoformat(d)
    return f"{value:%A, %B} {value.day}"


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def current_day() -> date:
    """The day by tactful's clock (UTC): the real one, or a conversation test's ``time:``."""
    return utcnow().date()


class OrderStore:
    """The order database: one SQLite connection, used from worker threads one call at a time.

    ``path`` is a file (created with its folder, schema and seed data on first use) or
    ``":memory:"``. ``today`` is the clock the seed dates and the business rules use (tactful's
    by default, which a conversation test sets; tests may pin it).
    """

    def __init__(self, path: str | Path = ":memory:", *, today: Callable[[], date] = current_day):
        self.path = str(path)
        self.today = today
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: every write below opens its own BEGIN IMMEDIATE transaction.
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            try:
                conn.executescript(SCHEMA)
                self._transaction(conn, self._seed)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @staticmethod
    def _transaction(conn: sqlite3.Connection, work: Callable[..., Any], *args: Any) -> Any:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _seed(self, conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM orders LIMIT 1").fetchone():
            return
        today = self.today()

        def on(offset: int | None) -> str | None:
            return None if offset is None else (today + timedelta(days=offset)).isoformat()

        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (oid, email, json.dumps(items), cents, status, on(p), on(eta), on(dl), address)
                for oid, email, items, cents, status, p, eta, dl, address in SEED_ORDERS
            ],
        )
        conn.executemany(
            "INSERT INTO returns VALUES (?, ?, ?, ?, ?, ?)",
            [(rma, oid, why, st, on(s), on(r)) for rma, oid, why, st, s, r in SEED_RETURNS],
        )
        conn.executemany(
            "INSERT INTO refunds VALUES (?, ?, ?, ?, ?)",
            [(tx, oid, cents, kind, on(i)) for tx, oid, cents, kind, i in SEED_REFUNDS],
        )

    async def _run(self, work: Callable[..., Any], *args: Any, write: bool = False) -> Any:
        def call() -> Any:
            with self._lock:
                conn = self._connect()
                if write:
                    return self._transaction(conn, work, *args)
                return work(conn, *args)

        return await asyncio.to_thread(call)

    async def close(self) -> None:
        """Close the connection (an in-memory database is gone; the next call starts over)."""

        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)

    # -- reads ------------------------------------------------------------------------------------

    @staticmethod
    def _order(conn: sqlite3.Connection, order_id: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            return None
        order = dict(row)
        order["items"] = json.loads(order["items"])
        ret = conn.execute("SELECT * FROM returns WHERE order_id = ?", (order_id,)).fetchone()
        ref = conn.execute("SELECT * FROM refunds WHERE order_id = ?", (order_id,)).fetchone()
        order["return"] = dict(ret) if ret else None
        order["refund"] = dict(ref) if ref else None
        return order

    async def order(self, order_id: str) -> dict[str, Any] | None:
        """The order with its return and refund (None if there is none)."""
        return await self._run(self._order, order_id)

    async def orders_of(self, email: str) -> list[dict[str, Any]]:
        """The orders placed with ``email`` (any case), newest first."""

        def work(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT id FROM orders WHERE email = ? ORDER BY placed_on DESC, id",
                (email.strip().lower(),),
            ).fetchall()
            return [o for r in rows if (o := self._order(conn, r["id"])) is not None]

        return await self._run(work)

    # -- writes: each checks its business rule in the same transaction --------------------------

    async def start_return(self, order_id: str, reason: str) -> dict[str, Any]:
        """Open a return (an RMA) if the order was delivered within the return window."""

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            order = self._order(conn, order_id)
            if order is None:
                return _not_found(order_id)
            if order["return"] is not None:
                ret = order["return"]
                return {"ok": True, "order_id": order_id, "rma": ret["rma"],
                        "already_open": True, "return_status": ret["status"]}  # fmt: skip
            if order["status"] != "delivered":
                why = {
                    "processing": "it hasn't shipped yet, so it can simply be cancelled instead",
                    "shipped": "it hasn't been delivered yet; a return can start once it arrives",
                    "cancelled": "it was cancelled, so there is nothing to send back",
                }[order["status"]]
                return _refused(order_id, why)
            days = (self.today() - date.fromisoformat(order["delivered_on"])).days
            if days > RETURN_WINDOW_DAYS:
                return _refused(
                    order_id,
                    f"it was delivered {days} days ago, past the {RETURN_WINDOW_DAYS}-day "
                    "return window (a faulty item is still covered by its warranty)",
                )
            rma = _new_id(conn, "returns", "rma", lambda: f"RMA-{secrets.randbelow(10**6):06d}")
            conn.execute(
                "INSERT INTO returns VALUES (?, ?, ?, 'started', ?, NULL)",
                (rma, order_id, reason.strip() or "not given", self.today().isoformat()),
            )
            return {"ok": True, "order_id": order_id, "rma": rma, "already_open": False,
                    "return_status": "started",
                    "days_left": RETURN_WINDOW_DAYS - days}  # fmt: skip

        return await self._run(work, write=True)

    async def refund(self, order_id: str) -> dict[str, Any]:
        """Refund an order whose return was received, or cancel and refund one not yet shipped."""

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            order = self._order(conn, order_id)
            if order is None:
                return _not_found(order_id)
            if order["refund"] is not None:
                ref = order["refund"]
                return {"ok": True, "order_id": order_id, "transaction_id": ref["transaction_id"],
                        "amount": _money(ref["amount_cents"]), "kind": ref["kind"],
                        "already_refunded": True}  # fmt: skip
            ret = order["return"]
            if order["status"] == "processing":
                kind = "cancellation"
                conn.execute(
                    "UPDATE orders SET status = 'cancelled', eta = NULL WHERE id = ?", (order_id,)
                )
            elif ret is not None and ret["status"] == "received":
                kind = "return"
            elif ret is not None:
                return _refused(
                    order_id,
                    f"we haven't received the return ({ret['rma']}) yet; the refund is issued "
                    "once it arrives and is inspected",
                )
            else:
                done = "has already shipped" if order["status"] == "shipped" else "was delivered"
                return _refused(
                    order_id,
                    f"it {done} and no return was started, and a refund needs the item back "
                    f"(returns are free within {RETURN_WINDOW_DAYS} days of delivery)",
                )
            tx = _new_id(conn, "refunds", "transaction_id", lambda: f"TX-{secrets.token_hex(5)}")
            conn.execute(
                "INSERT INTO refunds VALUES (?, ?, ?, ?, ?)",
                (tx, order_id, order["total_cents"], kind, self.today().isoformat()),
            )
            return {"ok": True, "order_id": order_id, "transaction_id": tx,
                    "amount": _money(order["total_cents"]), "kind": kind,
                    "already_refunded": False}  # fmt: skip

        return await self._run(work, write=True)

    async def change_address(self, order_id: str, new_address: str) -> dict[str, Any]:
        """Change the delivery address while the order is still processing."""

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            order = self._order(conn, order_id)
            if order is None:
                return _not_found(order_id)
            if order["status"] != "processing":
                why = {
                    "shipped": "it has already shipped, so only the carrier can redirect it",
                    "delivered": "it has already been delivered",
                    "cancelled": "it was cancelled",
                }[order["status"]]
                return _refused(order_id, why)
            address = " ".join(new_address.split())
            conn.execute("UPDATE orders SET address = ? WHERE id = ?", (address, order_id))
            return {"ok": True, "order_id": order_id, "old_address": order["address"],
                    "new_address": address}  # fmt: skip

        return await self._run(work, write=True)


def _new_id(conn: sqlite3.Connection, table: str, column: str, make: Callable[[], str]) -> str:
    while True:
        value = make().upper()
        if not conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone():
            return value


def _not_found(order_id: str) -> dict[str, Any]:
    return {"ok": False, "order_id": order_id, "reason": f"not found: there is no order {order_id}"}


def _refused(order_id: str, reason: str) -> dict[str, Any]:
    return {"ok": False, "order_id": order_id, "reason": reason}


def _problem(data: dict[str, Any]) -> str | None:
    """The reason of a refused request, phrased for the customer; None when it went through."""
    if data["ok"]:
        return None
    if data["reason"].startswith("not found"):
        return "there is no order with that number (please double-check it: VM and 8 digits)"
    return data["reason"]


# -- the tools ------------------------------------------------------------------------------------

OrderId = Annotated[
    str,
    tactful.ToolParam(
        description="The Voltmart order number: VM followed by 8 digits",
        examples=["VM10234567"],
    ),
    # The pattern is validated, and lets the offline tier take the number from the message.
    Field(pattern=ORDER_ID_PATTERN),
]


class OrderTools(PythonToolService):
    """The ``voltmart`` tool service over one ``OrderStore``; closing it closes the store."""

    def __init__(self, store: OrderStore) -> None:
        super().__init__(SERVICE)
        self.store = store

        @tactful.tool(service=SERVICE)
        async def find_order(
            context: tactful.ToolContext,
            email: Annotated[
                str,
                tactful.ToolParam(
                    description="The email address the customer used at checkout",
                    examples=["dana@example.com"],
                ),
                Field(pattern=EMAIL_PATTERN),
            ],
        ) -> tactful.ToolResult:
            """Find the orders placed with an email address (newest first), when the customer
            does not know their order number."""
            found = await store.orders_of(email)
            listed = "; ".join(f"{o['id']} ({', '.join(o['items'])}, {o['status']})" for o in found)
            data = {
                "ok": bool(found),
                "email": email,
                "orders": [_summary(o) for o in found],
                **({} if found else {"reason": f"not found: no orders for {email}"}),
            }
            return tactful.ToolResult(data=data, fields={"email": email, "orders": listed or None})

        @tactful.tool(service=SERVICE)
        async def order_status(
            context: tactful.ToolContext, order_id: OrderId
        ) -> tactful.ToolResult:
            """Look up an order: its status, items, and expected or actual delivery date."""
            order = await store.order(order_id)
            if order is None:
                data = _not_found(order_id)
                return tactful.ToolResult(
                    data=data,
                    fields={"order_id": order_id, "status": None, "items": None, "eta": None,
                            "delivered_on": None, "order_problem": _problem(data)},
                )  # fmt: skip
            summary = _summary(order)
            return tactful.ToolResult(
                data={"ok": True, **summary},
                fields={
                    "order_id": order_id,
                    "status": order["status"],
                    "items": ", ".join(order["items"]),
                    "eta": _day(order["eta"]),
                    "delivered_on": _day(order["delivered_on"]),
                    "order_problem": None,
                },
            )

        @tactful.tool(service=SERVICE, consequential=True)
        async def start_return(
            context: tactful.ToolContext,
            order_id: OrderId,
            reason: Annotated[
                str,
                tactful.ToolParam(
                    description="Why the customer is sending it back, in their words",
                    examples=["too small", "changed my mind"],
                ),
            ] = "not given",
        ) -> tactful.ToolResult:
            """Start a return for a delivered order and get its RMA number. Only within 30 days
            of delivery; a return already open is returned as is."""
            data = await store.start_return(order_id, reason)
            if data.get("rma"):
                # The support team finds sessions with an open return (GET /sessions?labels=).
                await context.add_session_labels("return")
                await context.set_session_metadata({"rma": data["rma"]})
            return tactful.ToolResult(
                data=data,
                fields={"order_id": order_id, "rma": data.get("rma"),
                        "return_problem": _problem(data)},
            )  # fmt: skip

        @tactful.tool(service=SERVICE, consequential=True)
        async def refund(context: tactful.ToolContext, order_id: OrderId) -> tactful.ToolResult:
            """Refund an order to its original payment method and get the transaction id. Only
            once its return was received, or for an order cancelled before it shipped; an order
            already refunded gives its existing transaction id."""
            data = await store.refund(order_id)
            return tactful.ToolResult(
                data=data,
                fields={"order_id": order_id, "transaction_id": data.get("transaction_id"),
                        "amount": data.get("amount"), "refund_problem": _problem(data)},
            )  # fmt: skip

        @tactful.tool(service=SERVICE, consequential=True)
        async def change_address(
            context: tactful.ToolContext,
            order_id: OrderId,
            new_address: Annotated[
                str,
                tactful.ToolParam(
                    description="The full new delivery address: street, city, state and ZIP",
                    examples=["12 Oak Street, Springfield, IL 62704"],
                ),
                Field(min_length=8, max_length=300),
            ],
        ) -> tactful.ToolResult:
            """Change an order's delivery address; only while it is still processing."""
            data = await store.change_address(order_id, new_address)
            return tactful.ToolResult(
                data=data,
                fields={"order_id": order_id, "new_address": data.get("new_address"),
                        "address_problem": _problem(data)},
            )  # fmt: skip

        @tactful.tool(service=SERVICE)
        async def hand_off_to_person(context: tactful.ToolContext) -> tactful.ToolResult:
            """Hand the conversation to a person on the support team: the session goes to
            manual mode, and the agent stays quiet until a person hands it back."""
            return tactful.ToolResult(
                data={"ok": True, "handed_off": True},
                control=SessionControl.HANDOFF,
                handoff_reason="the customer asked for a person",
            )

        self.find_order = find_order
        self.order_status = order_status
        self.start_return = start_return
        self.refund = refund
        self.change_address = change_address
        self.hand_off_to_person = hand_off_to_person
        for t in (find_order, order_status, start_return, refund, change_address):
            self.add(t)
        self.add(hand_off_to_person)

    async def close(self) -> None:
        await self.store.close()


def _summary(order: dict[str, Any]) -> dict[str, Any]:
    """What the model is told about an order (no email, no full address)."""
    ret, ref = order["return"], order["refund"]
    return {
        "order_id": order["id"],
        "items": order["items"],
        "total": _money(order["total_cents"]),
        "status": order["status"],
        "placed_on": order["placed_on"],
        "eta": order["eta"],
        "delivered_on": order["delivered_on"],
        "return": {"rma": ret["rma"], "status": ret["status"]} if ret else None,
        "refund": {"transaction_id": ref["transaction_id"], "kind": ref["kind"]} if ref else None,
    }


def database_path(server: tactful.Server) -> str:
    """``VOLTMART_ORDERS_DB`` if set; in memory for a transient server; else a file in the
    server's data folder."""
    if path := os.environ.get(DB_ENV):
        return path
    if server.settings.transient:
        return ":memory:"
    return str(Path(server.settings.data_dir) / DB_FILE)


# One tool service per server, so that calling define() again reuses it (tools are idempotent
# by identity: a second, different function under the same id is refused).
_BY_SERVER: "weakref.WeakKeyDictionary[tactful.Server, OrderTools]" = weakref.WeakKeyDictionary()


def tools_for(server: tactful.Server) -> OrderTools:
    """The ``voltmart`` tool service of ``server``, created (not yet opened) on first call."""
    found = _BY_SERVER.get(server)
    if found is None:
        found = OrderTools(OrderStore(database_path(server)))
        _BY_SERVER[server] = found
    return found
