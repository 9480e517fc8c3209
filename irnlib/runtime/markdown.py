"""Markdown tables with numbered footnotes: the one writer of every results page.

A table is a header and rows of cells (any value; ``str`` of it is shown, ``|`` escaped and
line breaks folded so that a cell cannot break the table). Long facts (paths, how a model was
trained, which images) go to footnotes rather than into a cell: :class:`Footnotes` numbers each
distinct text once, gives the marker to put after a label, and writes the numbered list that
follows the table::

    notes = Footnotes()
    rows = [["IRN (kit reference)" + notes.mark("weights models/...; 1,000 iterations"), "33.1"]]
    lines = markdown_table(["Row", "Y-PSNR"], rows, notes)
"""

from __future__ import annotations

__all__ = ["Footnotes", "markdown_cell", "markdown_table"]

_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


class Footnotes:
    """Numbered footnotes: each distinct text gets one number, in the order first marked.

    Parameters
    ----------
    style : str
        ``"superscript"`` (markers ``¹``, ``²``, … after a label) or ``"bracket"`` (``[1]``, ``[2]``, …).
    """

    def __init__(self, style: str = "superscript"):
        if style not in ("superscript", "bracket"):
            raise ValueError(f"Footnotes: style must be 'superscript' or 'bracket', not {style!r}")
        self.style = style
        self._numbers: dict[str, int] = {}

    def number(self, text: str) -> int:
        """The footnote number of ``text`` (a new number the first time)."""
        return self._numbers.setdefault(text, len(self._numbers) + 1)

    def marker(self, number: int) -> str:
        return str(number).translate(_SUPERSCRIPT) if self.style == "superscript" else f"[{number}]"

    def mark(self, text: str) -> str:
        """The marker of ``text`` (``""`` for an empty text: nothing to say, no footnote)."""
        return self.marker(self.number(text)) if text else ""

    def lines(self) -> list[str]:
        """The footnotes as a numbered Markdown list, ``"1. text"`` (empty if none)."""
        return [f"{n}. {text}" for text, n in self._numbers.items()]

    def __len__(self) -> int:
        return len(self._numbers)


def markdown_cell(value) -> str:
    """A value as one table cell: ``str`` of it, ``|`` escaped, line breaks as spaces."""
    return " ".join(str(value).replace("|", "\\|").split("\n"))


def markdown_table(header, rows, footnotes: Footnotes | None = None) -> list[str]:
    """The lines of a Markdown table, then (when ``footnotes`` holds any) a blank line and the
    footnotes. Every row must have as many cells as the header."""
    header = [markdown_cell(c) for c in header]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for row in rows:
        cells = [markdown_cell(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(f"markdown_table: a row has {len(cells)} cells, the header {len(header)}: {cells}")
        out.append("| " + " | ".join(cells) + " |")
    if footnotes is not None and len(footnotes):
        out += [""] + footnotes.lines()
    return out
