"""``python -m tactful.api.openapi FILE``: write the REST API's ``/openapi.json`` to FILE.

The web app (web/) generates its TypeScript types from this file, so that the app and the
server share one definition of every body. It is the spec of a development-mode server on a
transient database, with no model and no embedder weights.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tactful.api.app import create_app
from tactful.config import Settings
from tactful.llm.scripted import HashingEmbedder
from tactful.runtime import start_runtime


async def openapi_spec() -> dict[str, Any]:
    """The spec ``GET /openapi.json`` answers on a development-mode server."""
    settings = Settings(transient=True, mode="development")
    runtime = await start_runtime(settings, embedder=HashingEmbedder(), offline=True)
    try:
        return create_app(runtime).openapi()
    finally:
        await runtime.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tactful.api.openapi FILE", file=sys.stderr)
        return 2
    spec = asyncio.run(openapi_spec())
    Path(argv[0]).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
