"""What every notebook of the pipeline does the same way: read and check its parameters, save a
figure, show its provenance.

Notebooks import these instead of carrying their own copies::

    from irnlib.app.notebook import parse_parameter, save_figure, show_provenance

Parameters arrive from ``papermill -p`` as numbers, strings or JSON text. Each notebook checks
every parameter once, in the cell after its ``parameters`` cell, with :func:`as_list`,
:func:`int_parameter`, :func:`float_parameter` and :func:`choice_parameter`: a value outside what
the notebook can do stops it there with one :class:`ParameterError` line naming the parameter,
its value and what is allowed.
"""

from __future__ import annotations

import json

from IPython.display import Markdown, display

from irnlib.app.values import float_in_range, int_in_range
from irnlib.runtime.paths import save_figure  # re-exported for the notebooks
from irnlib.runtime.provenance import provenance, provenance_markdown

__all__ = [
    "ParameterError",
    "parse_parameter",
    "as_list",
    "int_parameter",
    "float_parameter",
    "choice_parameter",
    "save_figure",
    "show_provenance",
]


class ParameterError(ValueError):
    """A notebook parameter the notebook cannot use; the message names it, its value and what is allowed."""


def _refuse(name: str, value, allowed: str) -> ParameterError:
    return ParameterError(f"notebook parameter {name}={value!r}: {allowed} (papermill -p {name} ...)")


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


def as_list(name: str, value) -> list | None:
    """A list parameter: JSON text or a list as it is, one bare value as a list of one.

    ``-p scales 3`` gives ``[3]`` (a documented conversion, as ``-p scales '[3]'``); ``None`` stays
    ``None`` (the notebook's default). A dict or unreadable JSON is refused.
    """
    try:
        value = parse_parameter(value)
    except ValueError:
        raise _refuse(name, value, "not readable as JSON; give a list such as '[2, 4]'") from None
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, dict):
        raise _refuse(name, value, "a list is expected, such as '[2, 4]'")
    return [value]


def int_parameter(name: str, value, low: int, high: int) -> int:
    """An integer parameter in ``low..high`` (integer text such as ``"5"`` is read as a number)."""
    try:
        return int_in_range(value, low, high)
    except ValueError as err:
        raise _refuse(name, value, str(err)) from None


def float_parameter(name: str, value, low: float, high: float) -> float:
    """A finite number in ``low..high`` (numeric text is read as a number; nan and inf are refused)."""
    try:
        return float_in_range(value, low, high)
    except ValueError as err:
        raise _refuse(name, value, str(err)) from None


def choice_parameter(name: str, value, allowed) -> object:
    """One of ``allowed`` (numbers may arrive as text: ``"4"`` matches ``4``)."""
    for option in allowed:
        if value == option or (isinstance(value, str) and value.strip() == str(option)):
            return option
    raise _refuse(name, value, f"use one of {', '.join(map(str, allowed))}")


def show_provenance(record: dict | None = None, title: str = "Provenance", **fields) -> dict:
    """Display a provenance block (Markdown) in the notebook and return the record.

    ``record`` defaults to :func:`irnlib.runtime.provenance.provenance` of ``fields`` (the current
    commit, date, machine and library versions, plus what the notebook says about its run).
    """

    record = record if record is not None else provenance(**fields)
    display(Markdown(provenance_markdown(record, title=title)))
    return record
