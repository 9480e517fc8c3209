"""A user's number, checked where it enters: the one rule the command line and the notebooks share.

:func:`int_in_range` and :func:`float_in_range` read a value as the user gave it (text from a
command line or ``papermill -p``, or a number) and return it, or raise :class:`ValueError` with
the problem and the allowed range (``"not an integer; use 1..100"``, ``"out of range; use a number
in 0..10"``); each caller puts its own name for the value in front (``--seed``, ``notebook
parameter draws=...``).
"""

from __future__ import annotations

__all__ = ["int_in_range", "float_in_range"]


def int_in_range(value, low: int, high: int) -> int:
    """An integer in ``low..high``; integer text (``"5"``) and whole floats (``2.0``) are read as one."""
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(f"not an integer; use {low}..{high}") from None
    if isinstance(number, bool) or not isinstance(number, int):
        if not (isinstance(number, float) and number.is_integer()):
            raise ValueError(f"not an integer; use {low}..{high}")
        number = int(number)
    if not low <= number <= high:
        raise ValueError(f"out of range; use {low}..{high}")
    return number


def float_in_range(value, low: float, high: float) -> float:
    """A finite number in ``low..high``; numeric text is read as one, nan and inf are refused."""
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number; use {low:g}..{high:g}") from None
    if isinstance(value, bool) or not low <= number <= high:  # also false for nan
        raise ValueError(f"out of range; use a number in {low:g}..{high:g}")
    return number
