"""Table 1, for notebooks and callers written before the split: a re-export, nothing defined here.

Table 1 lives in :mod:`irnlib.experiments.table1` (the table as data),
:mod:`irnlib.experiments.table1_markdown` (its page), :mod:`irnlib.experiments.figures` (its
figures) and :mod:`irnlib.experiments.table1_job` (the whole job for one scale); summaries over
the draws of z in :mod:`irnlib.protocol.summary`.
"""

from __future__ import annotations

from irnlib.experiments.figures import plot_paper_vs_kit, qualitative_figure
from irnlib.experiments.table1 import NOT_AVAILABLE, TABLE_COLUMNS, KitRow, build_table, load_per_image, summarize
from irnlib.experiments.table1_job import Table1, checkpoint_help, fetch_command, make_table1, write_table
from irnlib.experiments.table1_markdown import render_markdown

__all__ = [
    "KitRow",
    "TABLE_COLUMNS",
    "NOT_AVAILABLE",
    "load_per_image",
    "summarize",
    "build_table",
    "render_markdown",
    "write_table",
    "plot_paper_vs_kit",
    "qualitative_figure",
    "fetch_command",
    "checkpoint_help",
    "Table1",
    "make_table1",
]
