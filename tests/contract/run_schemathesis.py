"""The contract run: schemathesis over ``/openapi.json`` of a real server, every operation and
every check, with a fixed seed and a bounded number of examples (a few minutes on 2 CPUs).

    python tests/contract/run_schemathesis.py
        starts ``tactful serve --example --transient`` (development mode) on a loopback port
    python tests/contract/run_schemathesis.py --production
        starts it in production mode with an admin key made in its database first, and sends
        that key (schemathesis then also checks that a request without it is refused)
    python tests/contract/run_schemathesis.py --url http://127.0.0.1:8800 --bearer KEY
        runs against a server that is already up, sending ``Authorization: Bearer KEY``

Exits with schemathesis's status: 0 when it found no server error and no contract mismatch.
``tests/contract/schemathesis.toml`` says which settings differ from schemathesis's defaults,
and why. ``tests/contract/test_contract.py`` runs this from pytest (``-m contract``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"
SEED = 12
MAX_EXAMPLES = 20
WORKERS = 1
# Long polls and SSE streams end after this long without an event: the run stays short.
LONG_POLL_MAX_S = "0.05"
REQUEST_TIMEOUT_S = 20


def schemathesis_command(
    url: str,
    *,
    bearer: str | None = None,
    seed: int = SEED,
    max_examples: int = MAX_EXAMPLES,
) -> list[str]:
    """The ``schemathesis run`` command line for the server at ``url``."""
    executable = Path(sys.executable).parent / "schemathesis"
    command = [
        str(executable),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{url.rstrip('/')}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(seed),
        "--max-examples",
        str(max_examples),
        "--workers",
        str(WORKERS),
        "--request-timeout",
        str(REQUEST_TIMEOUT_S),
    ]
    if bearer:
        command += ["--header", f"Authorization: Bearer {bearer}"]
    return command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


PRODUCTION = {
    "TACTFUL_MODE": "production",
    "TACTFUL_SECRET_KEY": "contract-run-secret-key-of-32-characters",
    # Schemathesis sends many requests with one key, and many messages to one session.
    "TACTFUL_RATE_REQUESTS_PER_KEY": "0",
    "TACTFUL_RATE_MESSAGES_PER_SESSION": "0",
    "TACTFUL_RATE_MESSAGES_PER_CUSTOMER": "0",
}


def admin_key(data: Path) -> str:
    """An admin key in the database under ``data``, as ``tactful keys create`` makes it."""
    from tactful.cli.keys import issue
    from tactful.config import Settings
    from tactful.domain import KeyRole

    return issue(Settings(data_dir=data), "contract", KeyRole.ADMIN).token


@contextmanager
def served(
    workdir: Path, *, production: bool = False, timeout: float = 60
) -> Iterator[tuple[str, str | None]]:
    """``tactful serve --example`` on a free loopback port until the block ends: its URL, and
    in production mode an admin key."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACTFUL_")}
    env.update(TACTFUL_MODEL_PROVIDER="offline", TACTFUL_LONG_POLL_MAX_S=LONG_POLL_MAX_S)
    log = workdir / "serve.log"
    serve = ["serve", "--example", "--host", "127.0.0.1", "--port", str(port)]
    key = None
    if production:
        env.update(PRODUCTION)
        key = admin_key(workdir / "data")
        serve += ["--data-dir", str(workdir / "data")]
    else:
        serve += ["--transient"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tactful.cli.main", *serve],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tactful serve exited early:\n{log.read_text()}")
            try:
                # The API starts listening once the example agent is defined.
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tactful serve did not come up:\n{log.read_text()}")
            time.sleep(0.1)
        yield url, key
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_contract(
    url: str | None = None,
    *,
    bearer: str | None = None,
    seed: int = SEED,
    production: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run schemathesis against ``url``, or against a server started for the run (in
    production mode with its own admin key, when asked)."""
    # In memory where the machine has it: the production run's SQLite file then costs no fsync.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="tactful-contract-", dir=shm) as tmp:
        workdir = Path(tmp)
        if url is not None:
            return _schemathesis(url, bearer, seed, workdir)
        with served(workdir, production=production) as (started, key):
            return _schemathesis(started, bearer or key, seed, workdir)


def _schemathesis(
    url: str, bearer: str | None, seed: int, workdir: Path
) -> subprocess.CompletedProcess[str]:
    # Run in a scratch folder: schemathesis and hypothesis leave state in the working directory.
    return subprocess.run(
        schemathesis_command(url, bearer=bearer, seed=seed),
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"NO_COLOR": "1", "COLUMNS": "120"},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--bearer", help="sent as Authorization: Bearer <key>")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--production", action="store_true", help="start the server in production mode"
    )
    args = parser.parse_args(argv)
    result = run_contract(args.url, bearer=args.bearer, seed=args.seed, production=args.production)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
