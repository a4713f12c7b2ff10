"""What the Compare charts need besides the table's rows, without plotly: legend names that
tell the plotted runs apart, and the Pareto front of accuracy against cost."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from .table import BASELINE_LABEL, MODEL_KEY_PREFIX, CompareRow, number

__all__ = ["legend_names", "shared_parts", "pareto_front"]


def legend_names(rows: Sequence[CompareRow]) -> list[str]:
    """Each row's label without the parts every row shares (shared_parts; a row with nothing
    else is named by its sweep modification, else "base"), told apart where two rows still
    share a name: "silu (seed 1)", then by data, image size or epochs, else by run id."""
    common = set(shared_parts(rows))
    labels = []
    for r in rows:
        rest = [p for p in r.label.split(", ") if p not in common]
        labels.append(", ".join(rest) or r.modification or "base")
    counts = Counter(labels)
    names = []
    for r, label in zip(rows, labels):
        if counts[label] == 1:
            names.append(label)
            continue
        twins = [o for o, other in zip(rows, labels) if other == label]
        detail = [text(r) for attr, text in _TELL_APART
                  if len({getattr(o, attr) for o in twins}) > 1]
        names.append(f"{label} ({', '.join(detail or [_short_key(r)])})")
    repeated = Counter(names)
    return [f"{n[:-1]}, {_short_key(r)})" if repeated[n] > 1 and n.endswith(")")
            else n for n, r in zip(names, rows)]


def shared_parts(rows: Sequence[CompareRow]) -> list[str]:
    """The parts of the label (short_diff) that every one of two or more rows has: what the
    whole selection shares, said once instead of in every legend entry. None where all rows
    have the same label: that label then tells the reader more than "base" would."""
    if len({r.label for r in rows}) < 2 or any(r.arch is None for r in rows):
        return []
    first = rows[0].label.split(", ")
    return [p for p in first if all(p in r.label.split(", ") for r in rows[1:])
            and p != BASELINE_LABEL]


_TELL_APART = (("seed", lambda r: f"seed {r.seed}"), ("dataset", lambda r: r.dataset),
               ("input_size", lambda r: f"{r.image_size} px"),
               ("epochs", lambda r: f"{r.epochs} epochs"))


def _short_key(row: CompareRow) -> str:
    return row.key[len(MODEL_KEY_PREFIX):] if not row.is_run else f"run …{row.key[-4:]}"


def pareto_front(costs: Sequence[float | None], accuracies: Sequence[float | None]) -> list[int]:
    """Indices of the points no other point beats (cost as low or lower and accuracy as high
    or higher, one of them strictly), by rising cost. Points missing a value are left out."""
    usable = [i for i in range(len(costs))
              if number(costs[i]) is not None and number(accuracies[i]) is not None]
    front: list[int] = []
    best = -math.inf
    for i in sorted(usable, key=lambda i: (costs[i], -accuracies[i])):
        if accuracies[i] > best:
            front.append(i)
            best = accuracies[i]
        elif front and (costs[i], accuracies[i]) == (costs[front[-1]], accuracies[front[-1]]):
            front.append(i)  # a tie with the last point of the front: neither beats the other
    return front
