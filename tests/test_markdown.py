"""irnlib.runtime.markdown: the one Markdown table writer, with numbered footnotes."""

import pytest

from irnlib.runtime.markdown import Footnotes, markdown_cell, markdown_table


def test_a_table_and_its_footnotes():
    notes = Footnotes()
    rows = [
        ["IRN (kit reference)" + notes.mark("weights `models/a.pth`; trained: 1,000 iterations"), 33.1],
        ["IRN (this kit)" + notes.mark("weights `runs/b.pth`"), 30.0],
        ["IRN (kit reference, z = 0)" + notes.mark("weights `models/a.pth`; trained: 1,000 iterations"), 34.0],
        ["Bicubic & Bicubic (this kit)" + notes.mark(""), 28.5],  # nothing to say: no marker, no note
    ]
    assert markdown_table(["Row", "Y-PSNR"], rows, notes) == [
        "| Row | Y-PSNR |",
        "| --- | --- |",
        "| IRN (kit reference)¹ | 33.1 |",
        "| IRN (this kit)² | 30.0 |",
        "| IRN (kit reference, z = 0)¹ | 34.0 |",
        "| Bicubic & Bicubic (this kit) | 28.5 |",
        "",
        "1. weights `models/a.pth`; trained: 1,000 iterations",
        "2. weights `runs/b.pth`",
    ]


def test_bracket_markers_and_numbers_past_nine():
    notes = Footnotes("bracket")
    assert [notes.mark(f"note {k}") for k in range(3)] == ["[1]", "[2]", "[3]"] and notes.mark("note 0") == "[1]"
    assert notes.lines()[-1] == "3. note 2" and len(notes) == 3
    many = Footnotes()
    assert [many.mark(str(k)) for k in range(12)][-3:] == ["¹⁰", "¹¹", "¹²"]
    with pytest.raises(ValueError, match="style"):
        Footnotes("roman")


def test_no_footnotes_no_trailing_lines_and_cells_cannot_break_the_table():
    assert markdown_table(["a"], [["x"]], Footnotes()) == ["| a |", "| --- |", "| x |"]
    assert markdown_cell("a | b\nc") == "a \\| b c"
    with pytest.raises(ValueError, match="2 cells"):
        markdown_table(["a"], [["x", "y"]])
