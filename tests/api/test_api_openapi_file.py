"""``python -m tactful.api.openapi FILE``: the spec the web app's types are generated from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tactful.api import openapi


def test_it_writes_the_spec_a_development_server_answers(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert openapi.main([str(out)]) == 0
    spec = json.loads(out.read_text())
    assert spec["info"]["title"] == "tactful"
    assert "/sessions/{session_id}/events" in spec["paths"]
    assert "Trace" in spec["components"]["schemas"]
    # Development mode: no bearer scheme (production adds it; the bodies are the same).
    assert "securitySchemes" not in spec["components"]


def test_it_says_how_to_call_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert openapi.main([]) == 2
    assert "usage: python -m tactful.api.openapi FILE" in capsys.readouterr().err
