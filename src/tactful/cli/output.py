"""Where the command writes: results on stdout, one red line per failure on stderr."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear red line and exit; never a traceback for a failure the user can fix."""
    errors.print(Text(message, style="bold red"), soft_wrap=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A dimmed line on stdout."""
    console.print(Text(message, style="dim"), soft_wrap=True)
