"""Whether a trained model learned anything: its validation accuracy against guessing.

"Guessing" is always answering the most common validation class (1/classes for a balanced
split). An accuracy within CHANCE_Z standard errors of that is what a model that learned
nothing scores on a lucky draw of the validation images, so such a model is reported as at
chance level, wherever it is shown (the run's status, the model's sidecar), not as a result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["CHANCE_Z", "chance_bar", "chance_warning", "NOT_LEARNED_ADVICE"]

# Three standard errors: on the digits' 359 validation images chance is about 10 % and the
# bar about 15 %; on 10,000 CIFAR-10 images 10 % and 10.9 %.
CHANCE_Z = 3.0
NOT_LEARNED_ADVICE = ("it has not learned: train for more epochs, or check the learning rate "
                      "and the warm-up")


def chance_bar(val_counts: Sequence[int]) -> tuple[float, float]:
    """(the accuracy of guessing the most common class, the accuracy a model must beat to
    count as having learned) for a validation split of `val_counts` images per class."""
    n = sum(val_counts)
    guess = max(val_counts) / n
    return guess, guess + CHANCE_Z * math.sqrt(guess * (1 - guess) / n)


def chance_warning(accuracy: float | None, val_counts: Sequence[int]) -> str:
    """A sentence when `accuracy` is at chance level on this split, else ""."""
    if accuracy is None or len(val_counts) < 2 or not sum(val_counts):
        return ""
    guess, bar = chance_bar(val_counts)
    if accuracy > bar:
        return ""
    return (f"at chance level: validation accuracy {accuracy:.1%} is no better than always "
            f"answering the most common class ({guess:.1%}; up to {bar:.1%} is luck on "
            f"{sum(val_counts):,} images)")
