"""Text bound for a CSV file a person opens in a spreadsheet.

Spreadsheets run a cell that starts with = + - @ (or a tab or carriage return before one) as
a formula, and the texts in our tables are chosen by people: file names, sweep and
modification names. Such a cell gets a leading apostrophe, which spreadsheets show as text.
Numbers pass unchanged (a negative number is not text, so it is never touched).
"""

from __future__ import annotations

from typing import Any

__all__ = ["spreadsheet_safe"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """`value`, with an apostrophe in front if it is text a spreadsheet would run."""
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS:
        return "'" + value
    return value
