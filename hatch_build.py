"""Hatch build hook: a wheel carries the web app's build (web/ -> src/tactful/web/dist).

Runs ``npm ci`` and ``npm run bundle`` in web/ when a wheel is built (not for editable
installs, which ``./dev`` makes: ``./dev serve`` builds the web app itself when it is missing).
The bundle needs no Python: the API types the sources import are erased when bundling
(``npm run build`` also generates them and type-checks, for development and CI).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class WebAppBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        web = root / "web"
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "building a wheel of tactful builds its web app (web/), which needs Node.js "
                "20.19+ and npm on PATH: install them (e.g. apt-get install nodejs npm) and "
                "build again"
            )
        for step in (["ci", "--no-audit", "--no-fund"], ["run", "bundle"]):
            self.app.display_info(f"web app: npm {' '.join(step)}")
            done = subprocess.run([npm, *step], cwd=web, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"web app: `npm {' '.join(step)}` failed in {web}")
        if not (root / "src" / "tactful" / "web" / "dist" / "index.html").is_file():
            raise RuntimeError("web app: the build wrote no src/tactful/web/dist/index.html")
        # Ignored by git, so included explicitly.
        build_data["artifacts"].append("src/tactful/web/dist/**")
