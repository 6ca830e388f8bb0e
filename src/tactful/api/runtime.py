"""The running tactful a request works with, as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tactful.runtime import Runtime


async def current_runtime(request: Request) -> Runtime:
    """The ``Runtime`` that ``create_app`` stored on ``app.state``.

    A coroutine, though it never waits: FastAPI runs a plain function dependency in a worker
    thread, and that hop cost every request more CPU than the rest of its dependencies."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(current_runtime)]
