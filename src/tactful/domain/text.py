"""What text tactful accepts and stores: Unicode without NUL and without lone surrogates.

A lone surrogate (e.g. the JSON escape ``"\\ud800"`` alone) is a valid Python ``str`` that
cannot be written as UTF-8, so it breaks every response that echoes it; PostgreSQL refuses NUL
in text. The edge refuses both; what an older version stored anyway is repaired when read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# Any surrogate code point in a Python str is lone: JSON decoding joins valid escape pairs.
_BAD = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON text that holds a surrogate escape (valid pairs included); only such text needs repair.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
REPLACEMENT = "\ufffd"
ECHO_MAX_CHARS = 200


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be accepted (NUL or a lone surrogate), or None."""
    found = _BAD.search(text)
    if found is None:
        return None
    char = found.group()
    at = found.start()
    if char == "\x00":
        return f"text may not contain NUL (U+0000), found at character {at}"
    return f"text may not contain a lone surrogate (U+{ord(char):04X}), found at character {at}"


def bad_text_in(
    value: Any, loc: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Where in a decoded JSON value (keys and values, at any depth) text is refused, and why."""
    if isinstance(value, str):
        if problem := text_problem(value):
            yield loc, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            if problem := text_problem(key):
                yield (*loc, key), f"a key: {problem}"
            yield from bad_text_in(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from bad_text_in(item, (*loc, index))


def repaired(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (two halves of a pair are joined)."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def repaired_value(value: Any) -> Any:
    """A decoded JSON value with every string (keys too) ``repaired``."""
    if isinstance(value, str):
        return repaired(value)
    if isinstance(value, dict):
        return {repaired(k): repaired_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repaired_value(v) for v in value]
    return value


def escaped(text: str, limit: int = ECHO_MAX_CHARS) -> str:
    """``text`` safe to echo in an error: at most ``limit`` characters, NUL and lone
    surrogates written as ``\\uXXXX``."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return _BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", short)
