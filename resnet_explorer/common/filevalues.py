"""Plain numbers out of files a person, an upload or a crash may have written (status.json,
sidecars, metrics): what is not a finite number of sensible size reads as None, so it is
shown as missing instead of reaching formatting or arithmetic (text, booleans, NaN,
infinities, integers of hundreds of digits)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_MAGNITUDE", "finite_number", "non_negative", "fraction"]

# Larger than any count, duration or timestamp we record; an integer past it is damage.
MAX_MAGNITUDE = 1e15


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite int or float within MAX_MAGNITUDE, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return value if math.isfinite(value) and abs(value) <= MAX_MAGNITUDE else None


def non_negative(value: Any) -> float | None:
    """A count, time or rate: a finite number of 0 or more, else None."""
    number = finite_number(value)
    return number if number is not None and number >= 0 else None


def fraction(value: Any) -> float | None:
    """An accuracy: a finite number from 0 to 1, else None."""
    number = finite_number(value)
    return number if number is not None and 0.0 <= number <= 1.0 else None
