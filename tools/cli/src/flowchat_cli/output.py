"""Tables for people, JSON for programs (``--json``), one field for shell variables
(``--field NAME``); notes and progress go to standard error, never into the data."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table


def plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def dig(data: Any, path: str) -> Any:
    """``a.b`` in nested dicts (None when absent)."""
    value = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Output:
    def __init__(
        self,
        *,
        as_json: bool = False,
        field: str | None = None,
        out: Any = None,
        err: Any = None,
    ) -> None:
        self.as_json = as_json
        self.field = field
        self.out = out or sys.stdout
        wide = not self.out.isatty() if hasattr(self.out, "isatty") else True
        self.console = Console(
            file=self.out, width=200 if wide else None, highlight=False, soft_wrap=False
        )
        self.err = Console(file=err or sys.stderr, highlight=False)

    def json(self, data: Any) -> None:
        self.out.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")

    def record(self, data: Any, fields: Sequence[str] | None = None, title: str = "") -> None:
        """One object: ``field  value`` lines (or JSON, or the one field asked for)."""
        if self.field:
            self.out.write(plain(dig(data, self.field)) + "\n")
            return
        if self.as_json:
            self.json(data)
            return
        if not isinstance(data, dict):
            self.out.write(plain(data) + "\n")
            return
        names = list(fields) if fields else list(data)
        width = max((len(n) for n in names), default=0)
        if title:
            self.out.write(title + "\n")
        for name in names:
            self.out.write(f"  {name.ljust(width)}  {plain(dig(data, name))}\n")

    def table(self, rows: Iterable[Any], columns: Sequence[str]) -> list[Any]:
        """Rows as a table (or a JSON array, or one field per line); returns them."""
        items = list(rows)
        if self.field:
            for row in items:
                self.out.write(plain(dig(row, self.field)) + "\n")
            return items
        if self.as_json:
            self.json(items)
            return items
        if not items:
            self.out.write("(none)\n")
            return items
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in items:
            table.add_row(*(plain(dig(row, c)) for c in columns))
        self.console.print(table)
        return items

    def note(self, text: str) -> None:
        """A remark for people (standard error)."""
        self.err.print(text)
