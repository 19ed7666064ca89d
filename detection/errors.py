"""The one exception base for mistakes a user can fix (a bad file, key, option or input).

Every user-facing error class of the package derives from `UserError`, and every tool catches
it once (`detection.apps.cli`) and prints one line naming the file and the row or key, with exit
code 2. Anything else that escapes is a bug and keeps its traceback.

Error classes also derive from the builtin that describes them (``ValueError`` for malformed
content, ``RuntimeError`` for things that cannot run), so callers may catch either.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 500
"""Longest message a tool prints: an offending 10 MB line must not be echoed whole."""


class UserError(Exception):
    """A mistake in the user's files, options or inputs; the message says which and why."""


def shorten(text: str, limit: int = 80) -> str:
    """`text` cut to at most `limit` characters, marked with '...' when cut (for quoting an
    offending value inside an error message)."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."
