"""Tables that fit the terminal by wrapping text, never by cutting an id.

Rich shrinks every column to fit the console, down to one character, so a run id in an
80-column terminal comes out in pieces that cannot be copied. Here the widths are chosen
first: id columns (run and version ids, model names) keep their full width and never
wrap; the other columns wrap (at spaces, or mid-word past ``WORD_CAP``), the widest
first. When even that does not fit, each row is printed as a block of ``column value``
lines instead (as psql's expanded display does), every value whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

# A wrapped column is never narrower than its longest word, up to this many characters.
WORD_CAP = 24


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


class Rows:
    def __init__(self, *columns: str, ids: Sequence[str] = ()) -> None:
        unknown = set(ids) - set(columns)
        if unknown:
            raise ValueError(f"id columns {sorted(unknown)} are not columns")
        self.columns = columns
        self.ids = set(ids)
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def widths(self, available: int) -> list[int]:
        """Each column's text width for a table of at most ``available`` characters, if it can be."""
        cells = [[name, *(row[i] for row in self.rows)] for i, name in enumerate(self.columns)]
        natural = [max(len(text) for text in column) for column in cells]
        minimum = [
            natural[i]
            if name in self.ids
            else max(
                1, _longest_word(name), min(WORD_CAP, max(_longest_word(t) for t in cells[i][1:] or [""]))
            )
            for i, name in enumerate(self.columns)
        ]
        widths = list(natural)
        budget = available - self.overhead
        while sum(widths) > budget:
            shrinkable = [i for i, width in enumerate(widths) if width > minimum[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
        return widths

    @property
    def overhead(self) -> int:
        """Two spaces between columns (no borders: ids copy cleanly)."""
        return 2 * (len(self.columns) - 1)

    def fits(self, widths: list[int], available: int) -> bool:
        return sum(widths) + self.overhead <= available

    def print(self, console: Console) -> None:
        widths = self.widths(console.width)
        if not self.fits(widths, console.width):
            self._print_records(console)
            return
        table = Table(box=None, pad_edge=False)
        for name, width in zip(self.columns, widths, strict=True):
            if name in self.ids:
                table.add_column(name, width=width, no_wrap=True)
            else:
                table.add_column(name, width=width, overflow="fold")
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))  # no markup: cells are data
        console.print(table)

    def _print_records(self, console: Console) -> None:
        label = max(len(name) for name in self.columns)
        for number, row in enumerate(self.rows):
            if number:
                console.print()
            for name, cell in zip(self.columns, row, strict=True):
                line = Text(f"{name:<{label}}  ", style="bold")
                line.append(cell)
                console.print(line, soft_wrap=True)
