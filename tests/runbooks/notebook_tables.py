"""Read a DataFrame that an executed notebook displayed, by column name.

pandas renders a displayed DataFrame as an HTML ``<table>`` (``text/html``); the
stdlib parser reads it back, so a test checks a named column of every row instead
of searching the plain-text rendering by position."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def displayed_table(cells: list[Any], source_marker: str) -> list[dict[str, str]]:
    """The rows (column name -> text) of the DataFrame shown by the one code cell whose
    source contains ``source_marker``; fails if there is not exactly one such table."""
    found = [c for c in cells if c.cell_type == "code" and source_marker in c.source]
    assert len(found) == 1, f"{len(found)} code cells contain {source_marker!r}"
    htmls = [o["data"]["text/html"] for o in found[0].get("outputs", [])
             if "text/html" in o.get("data", {})]
    assert len(htmls) == 1, f"the cell with {source_marker!r} displayed {len(htmls)} tables"
    parser = _TableParser()
    parser.feed(htmls[0])
    header, *body = [r for r in parser.rows if r]
    return [dict(zip(header, row, strict=True)) for row in body]
