"""A production server as a real process: what refuses to start, keys from the command line,
and customer tokens that reach only their own customer's sessions."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import httpx
from cli_process import SHOP_AGENT, run, start_serve
from click.testing import Result
from typer.testing import CliRunner

from tactful.cli.main import app

runner = CliRunner()

SECRET = "a-production-secret-of-at-least-32-chars"
PRODUCTION = {"TACTFUL_MODE": "production", "TACTFUL_SECRET_KEY": SECRET}


def test_development_mode_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    result = run(["serve", "--transient", "--host", "0.0.0.0", "--port", "8991"], tmp_path)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert "development mode lets every caller act as admin" in message
    assert "TACTFUL_MODE=production" in message and "tactful keys create" in message
    assert "Traceback" not in result.stdout + result.stderr


def test_production_mode_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    result = run(
        ["serve", "--transient", "--host", "0.0.0.0", "--port", "8992"],
        tmp_path,
        extra_env={"TACTFUL_MODE": "production", "TACTFUL_SECRET_KEY": "short"},
    )
    assert result.returncode == 1
    assert "TACTFUL_SECRET_KEY" in result.stderr and "at least 32" in result.stderr
    assert SECRET not in result.stdout + result.stderr and "short" not in result.stdout


def keys(*args: str, data: Path) -> Result:
    """``tactful keys ...`` in-process (Typer's runner) on the database in ``data``."""
    return runner.invoke(app, ["keys", *args, "--data-dir", str(data)])


def test_keys_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = keys("create", "--role", "operator", "--name", "bff", data=data)
    assert created.exit_code == 0, created.output
    token = re.search(r"tfk_\S+", created.output)
    assert token is not None
    listed = keys("list", data=data)
    assert "bff" in listed.output and "operator" in listed.output
    assert token.group() not in listed.output
    key_id = token.group()[4:14]
    assert keys("revoke", key_id, data=data).exit_code == 0
    assert "revoked key" in keys("revoke", key_id, data=data).output
    unknown = keys("revoke", "nosuchkey0", data=data)
    assert unknown.exit_code == 1 and "no API key 'nosuchkey0'" in unknown.output
    bad = keys("create", "--role", "boss", "--name", "x", data=data)
    assert bad.exit_code == 2 and "admin or operator" in bad.output


def test_a_production_server_on_every_address(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    created = keys("create", "--role", "admin", "--name", "root", data=tmp_path / "data")
    admin_key = re.search(r"tfk_\S+", created.output)
    assert admin_key is not None, created.output
    served = start_serve(
        ["--host", "0.0.0.0", *data, "--agent", str(SHOP_AGENT)], tmp_path, extra_env=PRODUCTION
    )
    try:
        with contextlib.ExitStack() as clients:
            _converse(served.url, admin_key.group(), clients)
    finally:
        served.stop()
    out = served.output()
    assert "production mode: 1 active API key(s)" in out
    assert SECRET not in out and admin_key.group() not in out


def _converse(url: str, admin_key: str, clients: contextlib.ExitStack) -> None:
    def client(credential: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {credential}"}
        return clients.enter_context(httpx.Client(base_url=url, headers=headers, timeout=60))

    anonymous = httpx.get(f"{url}/customers")
    assert anonymous.status_code == 401
    assert httpx.get(f"{url}/sessions").status_code == 401
    admin = client(admin_key)
    tokens = {}
    for name in ("Ann", "Bob"):
        customer = admin.post("/customers", json={"name": name, "id": name.lower()})
        assert customer.status_code == 201, customer.text
        minted = admin.post(f"/customers/{name.lower()}/tokens", json={"expires_in": 600})
        assert minted.status_code == 201, minted.text
        tokens[name] = minted.json()["token"]
    ann, bob = client(tokens["Ann"]), client(tokens["Bob"])
    session = ann.post("/sessions", json={"agent_id": "shopbot"}).json()
    posted = ann.post(
        f"/sessions/{session['id']}/events",
        json={"kind": "message", "source": "customer", "message": "How do I return this?"},
    )
    assert posted.status_code == 201, posted.text
    reply = ann.get(
        f"/sessions/{session['id']}/events",
        params={"min_offset": 1, "kinds": "message", "wait_for_data": 30},
    )
    assert "30 days" in reply.json()[0]["data"]["message"]
    for path in (f"/sessions/{session['id']}", f"/sessions/{session['id']}/events"):
        assert bob.get(path, params={"wait_for_data": 0}).status_code == 404
    assert bob.get("/sessions").json() == []
    assert ann.get("/customers").status_code == 403
