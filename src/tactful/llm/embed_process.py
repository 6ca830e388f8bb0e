"""The offline embedder's own process: ``MiniLMEmbedder(process=True)``, the server's default.

In a thread, an embedding shares the interpreter's lock with the event loop: each of its ~600
NumPy calls takes the lock back between two products, and every statement, socket send and
receive of the loop waits behind it. Under load that cost the server a part of its turns
(issue 18, docs/benchmarks.md). Here the same computation runs in a child process, started with
``python -m tactful.llm.embed_worker`` on first use (no ``multiprocessing``: it imports nothing
of the program that started it, so a script without a ``__main__`` guard is safe), one per
model folder, for the program's life. Requests and answers go over its stdin and stdout:

* request: 4 bytes (little-endian length) and a JSON list of texts;
* answer: 4 bytes (signed rows ``n``) and ``n x 384`` little-endian float32, or ``-1`` and then
  4 bytes of length and a UTF-8 error message.

The child leaves when its stdin closes: when the program ends, however it ends (``kill -9``
included). A child that died is started again by the next request, which is sent once more.
"""

from __future__ import annotations

import atexit
import json
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import numpy as np

from tactful.errors import ModelError
from tactful.llm.base import Vectors

DIMENSIONS = 384
HEADER = struct.Struct("<i")


class EmbeddingProcess:
    """One child process embedding with MiniLM (see the module's docstring). ``embed`` blocks:
    call it from a worker thread. Calls are serialised."""

    def __init__(
        self,
        model_dir: Path,
        batch_size: int,
        blas_threads: int | None,
        runtime: str = "numpy",
        threads: int = 1,
    ) -> None:
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.blas_threads = blas_threads
        self.runtime = runtime
        self.threads = threads
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self.started = 0

    def embed(self, texts: list[str]) -> Vectors:
        with self._lock:
            try:
                return self._ask(texts)
            except (BrokenPipeError, EOFError, ConnectionError):
                # Killed meanwhile (or out of memory): once more, in a new process.
                self._stop()
                return self._ask(texts)

    def start(self) -> None:
        """Start the process if it is not running (it loads the model at once)."""
        with self._lock:
            self._running()

    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ask(self, texts: list[str]) -> Vectors:
        child = self._running()
        assert child.stdin is not None and child.stdout is not None
        request = json.dumps(texts).encode()
        child.stdin.write(HEADER.pack(len(request)) + request)
        child.stdin.flush()
        (rows,) = HEADER.unpack(read_exactly(child.stdout, HEADER.size))
        if rows < 0:
            (size,) = HEADER.unpack(read_exactly(child.stdout, HEADER.size))
            reason = read_exactly(child.stdout, size).decode()
            raise ModelError(f"the embedding process failed: {reason}")
        data = read_exactly(child.stdout, rows * DIMENSIONS * 4)
        return np.frombuffer(data, dtype="<f4").reshape(rows, DIMENSIONS).astype(np.float32)

    def _running(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            self._stop()
            command = [sys.executable, "-m", "tactful.llm.embed_worker", str(self.model_dir)]
            command += [str(self.batch_size), str(self.blas_threads or 0)]
            command += [self.runtime, str(self.threads)]
            self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.started += 1
        return self._child

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the embedding process ended")
    return data


_PROCESSES: dict[tuple[Path, int, str, int], EmbeddingProcess] = {}
_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    """A program that ends normally waits for its embedding processes to leave (they would
    anyway, their stdin closed, but after this interpreter had warned of each as running)."""
    with _LOCK:
        for process in _PROCESSES.values():
            process.close()


def in_process(
    model_dir: Path, batch_size: int, runtime: str = "numpy", threads: int = 1
) -> EmbeddingProcess:
    """The program's embedding process for this model folder and runtime (made on first use,
    with this process's BLAS thread limit; started on its first request)."""
    key = (model_dir, batch_size, runtime, threads)
    with _LOCK:
        found = _PROCESSES.get(key)
        if found is None:
            found = _PROCESSES[key] = EmbeddingProcess(
                model_dir, batch_size, _blas_threads(), runtime, threads
            )
        return found


def _blas_threads() -> int | None:
    from threadpoolctl import ThreadpoolController

    found = ThreadpoolController().select(user_api="blas").lib_controllers
    return int(found[0].num_threads) if found else None
