"""The base of vmigrate's exception tree: structured fields, a hint, one line, a dict.

``exit_code`` follows the CLI contract: 2 for bad input caught before any change
(nothing was touched), 1 for a fault during work (state is resumable).
"""

from __future__ import annotations

from typing import Any


class VmigrateError(Exception):
    """Base of all vmigrate errors."""

    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.fields: dict[str, Any] = fields

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def one_line(self) -> str:
        """A single line for a terminal or a journal entry."""
        return " ".join(str(self).split())

    def _render_traceback_(self) -> list[str]:
        """IPython's protocol for an exception that renders its own traceback
        (``InteractiveShell.showtraceback``): in a notebook cell a vmigrate error shows as
        its one line (what is wrong, how to fix it), not 40-60 lines of library frames."""
        return [f"{type(self).__name__}: {self.one_line()}"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "fields": {k: _jsonable(v) for k, v in self.fields.items()},
        }



def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)

