"""The offline embedder in a process of its own (the server's default): the same vectors as in
this process, bit for bit; a new process when the old one dies; none left behind when the
program that started it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tactful.config import Settings
from tactful.llm.minilm import MiniLMEmbedder
from tactful.runtime import default_embedder

TEXTS = [
    "I want a refund for the laptop I bought last week.",
    "It arrived broken.",
    "Can I still return it after thirty days, or is it too late for that?",
    "",
]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.embedder
async def test_vectors_from_the_embedding_process_are_this_processes_bit_for_bit() -> None:
    here = MiniLMEmbedder()
    there = MiniLMEmbedder(process=True)
    got = await there.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert np.array_equal(got, here.embed_sync(TEXTS))
    assert np.array_equal(await there.embed([]), np.zeros((0, 384), dtype=np.float32))
    # Computed there: this process never loaded the model for it.
    assert there._model is None
    child = there._child().pid()
    assert child is not None and child != os.getpid() and _alive(child)


@pytest.mark.embedder
async def test_a_killed_embedding_process_is_replaced_on_the_next_call() -> None:
    embedder = MiniLMEmbedder(process=True)
    first = await embedder.embed(TEXTS[:2])
    process = embedder._child()
    pid = process.pid()
    assert pid is not None
    started = process.started
    os.kill(pid, signal.SIGKILL)
    again = await embedder.embed(TEXTS[:2])
    assert np.array_equal(again, first)
    assert process.started == started + 1 and process.pid() not in (None, pid)


def _embedding_program(path: Path, then: str = "") -> Path:
    """A script that embeds once in its own process, prints that process's pid, then runs
    ``then``. It has no __main__ guard: the child imports nothing of it."""
    path.write_text(
        "import asyncio\n"
        "from tactful.llm.minilm import MiniLMEmbedder\n"
        "e = MiniLMEmbedder(process=True)\n"
        "asyncio.run(e.embed(['hello there']))\n"
        "print(e._child().pid(), flush=True)\n" + then
    )
    return path


@pytest.mark.embedder
def test_the_embedding_process_leaves_with_a_program_killed_outright(tmp_path: Path) -> None:
    script = _embedding_program(tmp_path / "serve.py", then="import time\ntime.sleep(120)\n")
    program = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert program.stdout is not None
        child = int(program.stdout.readline())
        assert _alive(child)
    finally:
        program.kill()
        program.wait()
        if program.stdout is not None:
            program.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


@pytest.mark.embedder
def test_a_program_that_ends_normally_waits_for_its_embedding_process(tmp_path: Path) -> None:
    script = _embedding_program(tmp_path / "ends.py")
    ended = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ended.returncode == 0, ended.stderr
    # Gone when the program is, and never reported as a subprocess left running.
    assert not _alive(int(ended.stdout))
    assert "ResourceWarning" not in ended.stderr, ended.stderr


def test_the_server_embeds_in_a_process_unless_told_otherwise() -> None:
    chosen = default_embedder(Settings())
    assert isinstance(chosen, MiniLMEmbedder) and chosen.process
    in_thread = default_embedder(Settings(embedder_process=False))
    assert isinstance(in_thread, MiniLMEmbedder) and not in_thread.process


@pytest.mark.embedder
async def test_prepare_starts_the_process_before_the_first_embedding() -> None:
    embedder = MiniLMEmbedder(process=True, batch_size=7)  # a process of its own
    process = embedder._child()
    assert process.pid() is None
    embedder.prepare()
    pid = process.pid()
    assert pid is not None and _alive(pid)
    await embedder.embed(TEXTS[:1])
    assert process.pid() == pid and process.started == 1
    process.close()  # its stdin closes: it ends, and is waited for
    assert not _alive(pid) and process.pid() is None


def test_an_embedder_in_a_thread_prepares_nothing() -> None:
    embedder = MiniLMEmbedder(batch_size=9)
    embedder.prepare()
    assert embedder._child().pid() is None
