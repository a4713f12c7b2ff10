"""Strict reading of a model sidecar (weights/<name>.json) into a typed `ModelCard`.

A sidecar may come from an upload, so every field the predictor relies on is checked
before any tensor is looked at: the architecture through ArchConfig's own validation,
one class name per output, an input size the architecture takes, finite normalisation
statistics. Extra keys are tolerated (a newer writer may add some); missing or wrong
ones are refused with one sentence each.

`render_card` writes the card a person reads (Markdown): what the network is in words, the
data, the preprocessing, the accuracy of this model and of the run, and the file's hash.
What the parser does not check (metrics, train, dates) may hold anything an upload put
there, so every such value is formatted through a guard that falls back to "—".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..arch.config import ArchConfig
from ..common.errors import ModelError, UserError
from ..common.filevalues import finite_number as _number
from ..common.filevalues import fraction as _fraction
from ..datasets.transforms import Preprocess

__all__ = ["FORMAT", "MODEL_SOURCES", "MAX_MODEL_SIDE", "MAX_INFERENCE_ACTIVATION_BYTES",
           "MAX_INFERENCE_MACS", "ModelCard", "check_model_name", "clean_metrics",
           "largest_activation_bytes",
           "render_card", "size_text", "BEST", "LAST"]

FORMAT = "resnet-explorer/1"
MODEL_SOURCES = ("trained", "imported", "imagenet")
# Input side of a stored model, and so of training: larger inputs cost a shared server too much.
MAX_MODEL_SIDE = 512
# One image's forward pass at a model's own input size, checked before an upload is imported
# (a file of under 1 MB can describe a network that needs gigabytes: width 2048 at 512×512).
# The largest activation tensor: inference frees each layer's input after it, so the peak is
# a few tensors of this size. The predictor sizes its batches by the same figure; every
# preset passes at MAX_MODEL_SIDE (resnet34-cifar's largest, 64×512×512, is 64 MiB).
MAX_INFERENCE_ACTIVATION_BYTES = 256 * 2**20
# Multiply-adds of that pass: resnet34-cifar at 512×512, the costliest preset at the largest
# side, takes 297 G; a file asking for more is built to stall a shared server.
MAX_INFERENCE_MACS = 300 * 10**9
# Metrics a sidecar may hold as text; every other metric must be a finite number.
# "warning": what the trainer says the model must not be taken for (at chance level).
TEXT_METRICS = ("role", "dataset", "warning")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
# metrics["role"] of a trained model: the run's best epoch or its last one.
BEST, LAST = "best", "last"
NONE = "—"  # what a card shows for a value that is absent or not what it should be


def largest_activation_bytes(analysis: Any) -> int:
    """The largest single fp32 activation of a forward pass (`analysis`: analyze()'s), the
    figure MAX_INFERENCE_ACTIVATION_BYTES bounds."""
    return max(math.prod(row.out_shape) for row in analysis.rows) * 4


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
        preset, changes = self.arch.closest_preset()
        network = self.arch.short_name() if changes else preset  # the class count comes next
        parts = [network, f"{len(self.class_names)} classes", f"{c}×{s}×{s}"]
        if self.accuracy is not None:
            parts.append(f"val acc {self.accuracy:.1%}")
        if _text(self.metrics.get("warning"), 200):  # the trainer said "at chance level"
            parts.append("at chance level: it has not learned")
        return " · ".join(parts)

    def provenance(self) -> str:
        """Where the model came from: "source: trained · run <id>"."""
        return f"source: {self.source}" + (f" · run {self.run_id}" if self.run_id else "")

    @property
    def accuracy(self) -> float | None:
        """This model's own validation accuracy (a "-last" model's is its last epoch's, not the
        run's best), else the best one recorded; None where none is a fraction: the sidecar
        may come from an upload, and this reaches formatting."""
        own = _fraction(self.metrics.get("val_acc"))
        return own if own is not None else _fraction(self.metrics.get("best_val_acc"))

    @property
    def dataset(self) -> str:
        """The dataset it was trained on, as recorded ("" when unknown)."""
        for where in (self.metrics, self.train or {}):
            text = _text(where.get("dataset"), 60)
            if text:
                return text
        return ""


def clean_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`metrics` without the values no page can show: (kept, names of those dropped).

    Kept: a finite number within MAX_MAGNITUDE (an accuracy, `*_acc`, from 0 to 1) and short
    text in TEXT_METRICS. Dropped: a 400-digit integer, 1e400, NaN, text where a number
    belongs, lists, objects — each would otherwise reach formatting or sorting.
    """
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in metrics.items():
        if key in TEXT_METRICS:
            ok = isinstance(value, str) and len(value) <= 200
        elif key.endswith("_acc"):
            ok = _fraction(value) is not None
        else:
            ok = _number(value) is not None
        if ok:
            kept[key] = value
        else:
            dropped.append(key)
    return kept, dropped


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
                or not all(_number(v) is not None for v in values)):
            raise ModelError(f"normalization {key} must be {c} finite numbers")
        stats.append(tuple(float(v) for v in values))
    if min(stats[1]) <= 0:
        raise ModelError("normalization std must be positive")
    return Preprocess(channels=c, size=h, resize=resize, mean=stats[0], std=stats[1])


# ----- the card a person reads ---------------------------------------------------------------
def render_card(card: ModelCard, *, sha256: str = "", size_bytes: int | None = None,
                sha_computed: bool = False) -> str:
    """The model card as Markdown. `sha256` is the weights' hash (the sidecar's, or computed
    now for an older sidecar without one: `sha_computed`)."""
    m, train = card.metrics, card.train or {}
    preset, changes = card.arch.closest_preset()
    role = _role_words(m)
    rows = [
        ("Model", f"`{card.name}`" + (f" — {role}" if role else "")),
        ("Architecture", _md(card.arch.short_name())),
        (f"Differences from {preset}", _md("; ".join(changes)) if changes else "none"),
        ("Parameters", _whole_text(m.get("params"))),
        ("Dataset", _md(card.dataset) or NONE),
        ("Classes", _classes(card.class_names)),
        ("Input", _input_words(card.preprocess)),
        ("Validation accuracy (this model)", _acc_at(m.get("val_acc"), m.get("epoch"))),
        ("Best validation accuracy", _acc_at(m.get("best_val_acc"), m.get("best_epoch"))),
        ("Last validation accuracy", _last_words(m)),
        ("Epochs trained", _epochs_words(m, train)),
        ("Created", _md(_text(card.created, 40)) or NONE),
        ("Source", _md(card.provenance().removeprefix("source: "))),
        ("Weights file", _file_words(card.name, size_bytes)),
        ("SHA-256", (f"`{sha256}`" + (" (computed now: the sidecar records none)"
                                      if sha_computed else "")) if sha256 else NONE),
    ]
    warning = _text(m.get("warning"), 200)
    if warning:
        rows.insert(1, ("Warning", f"**{_md(warning)}**"))
    lines = [f"# Model card: `{card.name}`", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join(lines) + "\n"


def _role_words(m: dict[str, Any]) -> str:
    role = m.get("role")
    if role == BEST:
        return "the run's best epoch"
    if role == LAST:
        return "the run's last epoch"
    return ""


def _last_words(m: dict[str, Any]) -> str:
    if m.get("role") == LAST:
        return _acc_at(m.get("val_acc"), m.get("epoch"))
    return _acc_at(m.get("last_val_acc"), m.get("last_epoch"))


def _epochs_words(m: dict[str, Any], train: dict[str, Any]) -> str:
    """Epochs the run trained (a best model's sidecar learns them when the run ends) of those
    planned."""
    done = m.get("epoch") if m.get("role") == LAST else m.get("last_epoch", m.get("epoch"))
    planned = _whole(train.get("epochs"))
    return _epoch_text(done) + ("" if planned is None else f" of {planned:,}")


def _classes(names: tuple[str, ...], shown: int = 12) -> str:
    listed = ", ".join(_md(n) or "(empty)" for n in names[:shown])
    more = f", … ({len(names) - shown:,} more)" if len(names) > shown else ""
    return f"{len(names):,}: {listed}{more}"


def _input_words(pre: Preprocess) -> str:
    crop = (f"shorter side resized to {pre.resize} px, centre crop {pre.size}×{pre.size}"
            if pre.resize != pre.size else f"resized to {pre.size}×{pre.size}")
    stats = (f"mean ({', '.join(f'{v:.4g}' for v in pre.mean)}), "
             f"std ({', '.join(f'{v:.4g}' for v in pre.std)})")
    kind = "grayscale" if pre.channels == 1 else "RGB"
    return (f"{pre.channels}×{pre.size}×{pre.size} {kind}; {crop}; "
            f"pixels/255 normalised with {stats}")


def _file_words(name: str, size_bytes: int | None) -> str:
    size = f", {size_text(size_bytes)}" if isinstance(size_bytes, int) else ""
    return f"`{name}.safetensors`{size}"


def size_text(size: float) -> str:
    """A file size for people: "512 bytes", "3.4 kB", "81.4 MB", "1.2 GB" (steps of 1024)."""
    if size < 1024:
        return f"{int(size)} bytes"
    for unit in ("kB", "MB"):
        size /= 1024
        if size < 1024:
            return f"{size:,.1f} {unit}"
    return f"{size / 1024:,.1f} GB"


def _acc_at(acc: Any, epoch: Any) -> str:
    value = _fraction(acc)
    if value is None:
        return NONE
    at = _epoch_text(epoch)
    return f"{value:.2%}" + (f" (epoch {at})" if at != NONE else "")


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 0 and number.is_integer() else None


def _whole_text(value: Any) -> str:
    number = _whole(value)
    return NONE if number is None else f"{number:,}"


def _epoch_text(value: Any) -> str:
    """Whole epochs as "8"; a time-budget stop's fraction as "2.35"."""
    number = _number(value)
    if number is None or number < 0:
        return NONE
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}"


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


# Inline markup inside a table cell: emphasis, code, links/images, HTML, the cell border, and
# Streamlit's LaTeX ($) and coloured text (:red[…] needs the bracket).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$])")


def _md(text: str) -> str:
    """Untrusted text as literal Markdown in a table cell: one line, markup escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
