"""The offline embedder's process itself: ``python -m tactful.llm.embed_worker MODEL_DIR
BATCH_SIZE BLAS_THREADS [RUNTIME THREADS]`` answers ``tactful.llm.embed_process``'s requests on
stdin until it closes (the protocol is described there)."""

from __future__ import annotations

import json
import sys

from tactful.llm.embed_process import HEADER, read_exactly


def serve(
    model_dir: str, batch_size: int, blas_threads: int, runtime: str = "numpy", threads: int = 1
) -> None:
    """The child's loop: answer requests on stdin until it closes."""
    from threadpoolctl import threadpool_limits

    from tactful.llm.minilm import MiniLMEmbedder

    if blas_threads:
        threadpool_limits(limits=blas_threads, user_api="blas")
    embedder = MiniLMEmbedder(
        model_dir,
        batch_size=batch_size,
        runtime="onnx" if runtime == "onnx" else "numpy",
        threads=threads,
    )
    embedder.embed_sync(["warm"])  # loads the model before the first request
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = source.read(HEADER.size)
        if len(head) < HEADER.size:
            return  # the program that started us closed our stdin, or ended
        (size,) = HEADER.unpack(head)
        try:
            texts = json.loads(read_exactly(source, size))
            vectors = embedder.embed_sync([str(t) for t in texts])
        except EOFError:
            return
        except Exception as e:  # said back, and the next request is served
            message = f"{type(e).__name__}: {e}".encode()
            sink.write(HEADER.pack(-1) + HEADER.pack(len(message)) + message)
        else:
            sink.write(HEADER.pack(len(vectors)) + vectors.astype("<f4").tobytes())
        sink.flush()


if __name__ == "__main__":
    rest = sys.argv[4:6] if len(sys.argv) >= 6 else ["numpy", "1"]
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), rest[0], int(rest[1]))
