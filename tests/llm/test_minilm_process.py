"""The offline embedder in a process of its own (the server's default): the same vectors as in
this process, bit for bit, and a new process when the old one dies."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tactful.config import Settings
from tactful.llm import minilm
from tactful.llm.minilm import MiniLMEmbedder
from tactful.runtime import default_embedder

TEXTS = [
    "I want a refund for the laptop I bought last week.",
    "It arrived broken.",
    "Can I still return it after thirty days, or is it too late for that?",
    "",
]


def _worker_pids() -> set[int]:
    pool = minilm._PROCESS
    assert pool is not None
    return set(pool._processes or {})


@pytest.mark.embedder
async def test_vectors_from_the_embedding_process_are_this_processes_bit_for_bit() -> None:
    here = MiniLMEmbedder()
    there = MiniLMEmbedder(process=True)
    got = await there.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert np.array_equal(got, here.embed_sync(TEXTS))
    # Computed there: this process never loaded the model for it.
    assert there._model is None
    assert _worker_pids() and os.getpid() not in _worker_pids()


@pytest.mark.embedder
async def test_a_killed_embedding_process_is_replaced_on_the_next_call() -> None:
    embedder = MiniLMEmbedder(process=True)
    first = await embedder.embed(TEXTS[:2])
    (pid,) = _worker_pids()
    os.kill(pid, signal.SIGKILL)
    again = await embedder.embed(TEXTS[:2])
    assert np.array_equal(again, first)
    assert _worker_pids() and pid not in _worker_pids()


def test_the_server_embeds_in_a_process_unless_told_otherwise() -> None:
    chosen = default_embedder(Settings())
    assert isinstance(chosen, MiniLMEmbedder) and chosen.process
    in_thread = default_embedder(Settings(embedder_process=False))
    assert isinstance(in_thread, MiniLMEmbedder) and not in_thread.process
