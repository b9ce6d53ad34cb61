"""The one exception type for bad user input.

Raise :class:`SeglabError` when the user can fix the problem (a wrong path, an
unknown key, an impossible value, data that does not match). The CLI turns it
into a one-line message and exit code 2. Anything else is an internal failure.
"""

from __future__ import annotations


class SeglabError(Exception):
    """Bad user input: the message names the culprit and what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return " ".join(text.split())
