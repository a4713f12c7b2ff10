"""The one family of errors a person is meant to read.

Everything the program refuses because of what someone typed, uploaded or left in a
file is a `UserError`: its text is a complete sentence for that person (say what is wrong
and what to do), and `problems` holds one sentence per problem where there are several.
Pages catch `UserError` alone and show its message; anything else is a bug and is
allowed to surface as one. Subclasses say which room refused, so callers that can do
something specific (skip a damaged image, keep a run listed) catch the narrow type.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["UserError", "ConfigError", "InputSizeError", "DataError", "ImageRejected",
           "ModelError", "WeightsMismatch", "ImportRefused", "PretrainedUnavailable",
           "RunError", "UploadTooLarge", "AccessDenied"]


class UserError(Exception):
    """A refusal worded for a person; str() joins `problems` with "; "."""

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else [str(p) for p in problems]
        super().__init__(self.problems)  # one argument, so the error pickles and unpickles

    def __str__(self) -> str:
        return "; ".join(self.problems)


class ConfigError(UserError):
    """An architecture or training configuration (widgets, JSON, URL) that is not valid."""


class InputSizeError(ConfigError):
    """The network cannot run on the requested input; the problems name the stage that fails."""


class DataError(UserError):
    """A dataset that cannot be used: missing, offline, empty, too large, outside data/."""


class ImageRejected(UserError):
    """An image that cannot be used; str() is "<name>: <reason>"."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")
        self.args = (name, reason)  # matches __init__, so the error pickles


class ModelError(UserError):
    """A model in the store (or its name) that cannot be used as asked."""


class WeightsMismatch(ModelError):
    """Tensors that do not fit the architecture they are said to belong to."""


class ImportRefused(ModelError):
    """An uploaded model file that is not imported."""


class PretrainedUnavailable(UserError):
    """Pretrained weights that cannot be had right now; the message says how to get them."""


class RunError(UserError):
    """A training run that cannot do what was asked (still active, removed, not a run)."""


class UploadTooLarge(UserError):
    """An uploaded file over its limit (common/limits.py), whatever the browser was told."""


class AccessDenied(UserError):
    """Not now, not for this session: a demo visitor's limit, or every prediction slot busy."""
