"""``tactful serve`` as a real process: start-up report, port taken, clean stop on signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cli_process import SHOP_AGENT, run, start_serve

from tactful.cli.serve import check_port
from tactful.errors import ConfigurationError


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_reports_its_start_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    served = start_serve(
        ["--data-dir", str(tmp_path / "data"), "--agent", str(SHOP_AGENT)], tmp_path
    )
    try:
        assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok", "tier": "offline"}
    finally:
        code = served.stop(sig)
    out = served.output()
    assert code == 0, out
    assert "model_provider" in out and "offline_match_threshold" in out  # the settings
    assert "offline tier: TACTFUL_MODEL_PROVIDER=offline" in out  # the tier and why
    assert "agent Shopbot (id shopbot): 3 guidelines, 1 observation" in out
    assert f"serving on {served.url}" in out
    assert out.rstrip().endswith("tactful stopped")
    assert "Traceback" not in out
    assert (tmp_path / "data" / "tactful.db").is_file()


def test_serve_masks_secrets(tmp_path: Path) -> None:
    served = start_serve(
        ["--transient", "--agent", str(SHOP_AGENT), "--database-url", "sqlite+aiosqlite://"],
        tmp_path,
        extra_env={
            "TACTFUL_OPENAI_API_KEY": "sk-secret-123",
            "TACTFUL_MODEL_PROVIDER": "offline",
            "TACTFUL_EMBEDDER_RUNTIME": "numpy",
        },
    )
    served.stop()
    out = served.output()
    assert "sk-secret-123" not in out
    assert "***" in out
    # Which runtime embeds, with the extra's name whole (not taken for console markup).
    assert "embedder: all-MiniLM-L6-v2 offline, on NumPy (`pip install 'tactful[onnx]'`" in out


def test_port_already_taken_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--transient", "--port", str(port)], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"port {port} on 127.0.0.1 is already in use: stop the other server or choose "
        "another port with --port"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_the_port_check_words_its_errors_as_the_server_does() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError) as refused:
            check_port("127.0.0.1", port)
    assert str(refused.value) == (
        f"port {port} on 127.0.0.1 is already in use: stop the other server or choose "
        "another port with --port"
    )
    # An address of no interface here (TEST-NET-1): not a taken port, said as such.
    with pytest.raises(ConfigurationError, match=r"^cannot listen on 192\.0\.2\.1:0: "):
        check_port("192.0.2.1", 0)


def test_the_installed_script_runs() -> None:
    # The `tactful` console script (pyproject [project.scripts]) next to the interpreter.
    script = Path(sys.executable).parent / "tactful"
    if not script.exists():
        pytest.skip("the tactful script is not installed in this environment")
    result = subprocess.run(
        [str(script), "version"], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0
    assert result.stdout.startswith("tactful ")
