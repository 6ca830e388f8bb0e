"""The running tactful a request works with, as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tactful.runtime import Runtime


def current_runtime(request: Request) -> Runtime:
    """The ``Runtime`` that ``create_app`` stored on ``app.state``."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(current_runtime)]
