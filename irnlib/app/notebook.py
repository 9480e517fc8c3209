"""What every notebook of the pipeline does the same way: read its parameters, save a figure,
show its provenance.

Notebooks import these instead of carrying their own copies::

    from irnlib.app.notebook import parse_parameter, save_figure, show_provenance
"""

from __future__ import annotations

import json

from IPython.display import Markdown, display

from irnlib.runtime.paths import save_figure  # re-exported for the notebooks
from irnlib.runtime.provenance import provenance, provenance_markdown

__all__ = ["parse_parameter", "save_figure", "show_provenance"]


def parse_parameter(value):
    """A notebook parameter given on the command line as JSON text (``-p datasets '["Set5"]'``) -> its value.

    Lists and dicts given as Python objects pass through unchanged; ``None`` stays ``None``.
    """
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError as err:
            raise ValueError(f"cannot read the parameter {value!r} as JSON: {err}") from err
    return value


def show_provenance(record: dict | None = None, title: str = "Provenance", **fields) -> dict:
    """Display a provenance block (Markdown) in the notebook and return the record.

    ``record`` defaults to :func:`irnlib.runtime.provenance.provenance` of ``fields`` (the current
    commit, date, machine and library versions, plus what the notebook says about its run).
    """

    record = record if record is not None else provenance(**fields)
    display(Markdown(provenance_markdown(record, title=title)))
    return record
