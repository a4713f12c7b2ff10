"""Strict reading of a model sidecar (weights/<name>.json) into a typed `ModelCard`.

A sidecar may come from an upload, so every field the predictor relies on is checked
before any tensor is looked at: the architecture through ArchConfig's own validation,
one class name per output, an input size the architecture takes, finite normalisation
statistics. Extra keys are tolerated (a newer writer may add some); missing or wrong
ones are refused with one sentence each.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..arch.config import ArchConfig
from ..common.errors import ModelError, UserError
from ..datasets.transforms import Preprocess

__all__ = ["FORMAT", "MODEL_SOURCES", "MAX_MODEL_SIDE", "ModelCard", "check_model_name"]

FORMAT = "resnet-explorer/1"
MODEL_SOURCES = ("trained", "imported", "imagenet")
# Input side of a stored model, and so of training: larger inputs cost a shared server too much.
MAX_MODEL_SIDE = 512
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def check_model_name(name: Any) -> str:
    """A model name is a file stem: letters, digits, '.', '_', '-'; no path, no hidden file."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith("."):
        raise ModelError(
            f"model name {str(name)[:90]!r} must be 1–80 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return name


@dataclass(frozen=True)
class ModelCard:
    name: str
    arch: ArchConfig
    class_names: tuple[str, ...]
    preprocess: Preprocess
    source: str
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)
    train: dict[str, Any] | None = field(default=None, compare=False)
    run_id: str | None = None
    created: str = ""
    sha256: str = ""

    @classmethod
    def from_sidecar(cls, data: Any) -> ModelCard:
        if not isinstance(data, dict):
            raise ModelError("the sidecar must be a JSON object")
        if data.get("format") != FORMAT:
            raise ModelError(
                f"the sidecar's format must be {FORMAT!r} (got {data.get('format')!r})")
        problems: list[str] = []

        def grab(fn: Any, *args: Any) -> Any:
            try:
                return fn(*args)
            except UserError as exc:
                problems.extend(exc.problems)
                return None

        name = grab(check_model_name, data.get("name"))
        arch = grab(ArchConfig.from_dict, data.get("arch"))
        classes = grab(_class_names, data.get("class_names"), arch)
        pre = grab(_preprocess, data, arch)
        source = data.get("source")
        if source not in MODEL_SOURCES:
            problems.append(f"source must be one of {', '.join(MODEL_SOURCES)} (got {source!r})")
        metrics = data.get("metrics", {})
        if not isinstance(metrics, dict):
            problems.append("metrics must be an object")
        train = data.get("train")
        if train is not None and not isinstance(train, dict):
            problems.append("train must be an object or null")
        run_id, created, sha = data.get("run_id"), data.get("created", ""), data.get("sha256", "")
        if run_id is not None and not isinstance(run_id, str):
            problems.append("run_id must be text or null")
        if not isinstance(created, str):
            problems.append("created must be an ISO-8601 text")
        if not isinstance(sha, str) or (sha and not re.fullmatch(r"[0-9a-f]{64}", sha)):
            problems.append("sha256 must be 64 lowercase hex digits")
        if problems:
            raise ModelError(problems)
        return cls(name=name, arch=arch, class_names=classes, preprocess=pre, source=source,
                   metrics=metrics, train=train, run_id=run_id, created=created, sha256=sha)

    def to_sidecar(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "arch": self.arch.to_dict(),
                "train": self.train, "class_names": list(self.class_names),
                **self.preprocess.to_sidecar(),
                "metrics": self.metrics, "run_id": self.run_id, "source": self.source,
                "created": self.created, "sha256": self.sha256}

    def summary(self) -> str:
        """One line for a picker: architecture, classes, input size, best metric."""
        c, s = self.preprocess.channels, self.preprocess.size
        parts = [self.arch.short_name(), f"{len(self.class_names)} classes", f"{c}×{s}×{s}"]
        if self.accuracy is not None:
            parts.append(f"val acc {self.accuracy:.1%}")
        return " · ".join(parts)

    def provenance(self) -> str:
        """Where the model came from: "source: trained · run <id>"."""
        return f"source: {self.source}" + (f" · run {self.run_id}" if self.run_id else "")

    @property
    def accuracy(self) -> float | None:
        """The best validation accuracy the sidecar records, or None where it records none that
        is a fraction: the sidecar may come from an upload, and this reaches formatting."""
        acc = self.metrics.get("best_val_acc", self.metrics.get("val_acc"))
        if isinstance(acc, bool) or not isinstance(acc, (int, float)):
            return None
        try:
            acc = float(acc)
        except OverflowError:  # an integer of hundreds of digits
            return None
        return acc if 0.0 <= acc <= 1.0 else None  # NaN fails both comparisons


def _class_names(raw: Any, arch: ArchConfig | None) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) and len(c) <= 200 for c in raw):
        raise ModelError("class_names must be a list of texts of at most 200 characters")
    if arch is not None and len(raw) != arch.num_classes:
        raise ModelError(f"class_names has {len(raw)} entries but the network has "
                          f"{arch.num_classes} outputs")
    return tuple(raw)


def _preprocess(data: dict[str, Any], arch: ArchConfig | None) -> Preprocess:
    size, resize, norm = data.get("input_size"), data.get("resize"), data.get("normalization")
    if (not isinstance(size, list) or len(size) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
        raise ModelError("input_size must be [channels, height, width] as whole numbers")
    c, h, w = size
    if h != w:
        raise ModelError(f"input_size must be square (got {h}×{w})")
    if not 1 <= h <= MAX_MODEL_SIDE:
        raise ModelError(f"input side must be between 1 and {MAX_MODEL_SIDE} (got {h})")
    if arch is not None and c != arch.in_channels:
        raise ModelError(f"input_size has {c} channels but the network takes {arch.in_channels}")
    if (not isinstance(resize, int) or isinstance(resize, bool)
            or not h <= resize <= 2 * MAX_MODEL_SIDE):
        raise ModelError(f"resize must be a whole number between {h} and {2 * MAX_MODEL_SIDE} "
                          f"(got {resize!r})")
    if not isinstance(norm, dict):
        raise ModelError("normalization must be an object with mean and std")
    stats = []
    for key in ("mean", "std"):
        values = norm.get(key)
        if (not isinstance(values, list) or len(values) != c
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in values)):
            raise ModelError(f"normalization {key} must be {c} finite numbers")
        stats.append(tuple(float(v) for v in values))
    if min(stats[1]) <= 0:
        raise ModelError("normalization std must be positive")
    return Preprocess(channels=c, size=h, resize=resize, mean=stats[0], std=stats[1])
