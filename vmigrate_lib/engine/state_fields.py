"""Typed, named access to the JSON objects of ``state.json``.

Every complaint names the field and the file and is a :class:`StateCorrupt` (exit 2, one
line), shared by the state's parts (``state``, ``cutover_record``).
"""

from __future__ import annotations

from typing import Any

from ..errors import StateCorrupt
from ..modes import W


class FieldReader:
    """Typed access to one JSON object, naming the field in every complaint."""

    def __init__(self, data: object, where: str, path: str) -> None:
        if not isinstance(data, dict):
            raise bad_state(path, f"{where} is {type(data).__name__}, not an object")
        self.data: dict[str, Any] = data
        self.where, self.path = where, path

    def _get(self, key: str, types: tuple[type, ...], default: object, name: str) -> Any:
        value = self.data.get(key, default)
        if value is None and default is None:
            return None
        # bool is an int in Python; a JSON true is never a count or an offset
        if isinstance(value, bool) and bool not in types:
            value = WRONG
        if not isinstance(value, types):
            raise bad_state(self.path, f"{self.where}.{key} is {value!r}, not {name}")
        return value

    def str_(self, key: str, default: str | None = "") -> Any:
        return self._get(key, (str,), default, "a string")

    def word_(self, key: str, words: tuple[W, ...], default: W | None = None) -> W:
        """One of ``words`` (a status): anything else is a corrupt state, said in one line."""
        value = self._get(key, (str,), default, "a string")
        for word in words:
            if value == word:
                return word
        raise bad_state(self.path, f"{self.where}.{key} is {value!r}, not one of {', '.join(words)}")

    def int_(self, key: str, default: int | None = 0) -> Any:
        return self._get(key, (int,), default, "an integer")

    def float_(self, key: str, default: float | None = 0.0) -> Any:
        value = self._get(key, (int, float), default, "a number")
        return None if value is None else float(value)

    def bool_(self, key: str, default: bool = False) -> bool:
        return bool(self._get(key, (bool,), default, "true or false"))

    def obj(self, key: str) -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise bad_state(self.path, f"{self.where}.{key} is {value!r}, not an object")
        return value


#: Stands for a JSON true where a number was due (never a valid value).
WRONG = object()


def bad_state(path: str, what: str) -> StateCorrupt:
    return StateCorrupt(
        f"{path} is not a valid vmigrate state: {what}",
        hint="restore it from a backup; or start afresh: move the "
        "workspace away, remove the destination folder (or choose another dest_name), run "
        "vmigrate sync (a new seed)",
        path=path, problem=what,
    )

