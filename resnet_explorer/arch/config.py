"""Architecture configuration: one frozen dataclass whose defaults ARE torchvision's resnet34.

Everything a page, the trainer or a saved model needs to rebuild a network is in
`ArchConfig`; it is hashable so caches can key on it, and it round-trips through JSON
and URL query parameters with strict, user-facing validation.
"""

from __future__ import annotations

import typing
from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..common.errors import ConfigError
from ..common.schema import ConfigBase, check_settings, field_types, setting, spec_of
from .options import ACTIVATIONS, BLOCKS, NORMS, SHORTCUTS, STEMS


# Bounds keep a typo (widths=[6400], blocks=[300]) from exhausting a shared server.
MAX_STAGES = 6
MAX_BLOCKS_PER_STAGE = 64
MAX_WIDTH = 4096
MAX_CLASSES = 100_000
MAX_PARAMS = 500_000_000


@dataclass(frozen=True)
class ArchConfig(ConfigBase):
    WHERE: ClassVar[str] = "architecture"

    stem: str = setting("imagenet", "Stem", choices=STEMS)
    stem_width: int = setting(64, "Stem width (channels out of the stem)", 1, MAX_WIDTH,
                              help="the deep stem uses half of it inside")
    blocks: tuple[int, ...] = setting((3, 4, 6, 3), "Blocks", 1, MAX_BLOCKS_PER_STAGE,
                                      item="blocks", each="stage")
    widths: tuple[int, ...] = setting((64, 128, 256, 512), "Width", 1, MAX_WIDTH, item="width",
                                      each="stage",
                                      help="channels per stage before block expansion")
    width_multiplier: float = setting(1.0, "Width multiplier (applied to every stage width)",
                                      0.0625, 4.0, step=0.25)
    block: str = setting("basic", "Block", choices=BLOCKS)
    shortcut: str = setting("B", "Shortcut", choices=SHORTCUTS)
    depthwise: tuple[bool, ...] = setting((False, False, False, False),
                                          "Depthwise-separable 3×3", item="depthwise",
                                          each="stage")
    activation: str = setting("relu", "Activation", choices=ACTIVATIONS)
    leaky_slope: float = setting(0.01, "Negative slope (leaky ReLU; initial PReLU slope)",
                                 0.0, 1.0, step=0.01)
    norm: str = setting("batch", "Normalization", choices=NORMS)
    norm_groups: int = setting(32, "Groups (GroupNorm)", 1, MAX_WIDTH)
    se_reduction: int = setting(0, "Squeeze-excitation reduction (0 = off, 16 = SENet)", 0, 1024)
    dropout: float = setting(0.0, "Dropout before the classifier", 0.0, 0.95, step=0.05)
    drop_path: float = setting(0.0, "Stochastic depth rate (last block)", 0.0, 0.95, step=0.05)
    zero_init_last: bool = setting(False, "Zero-init the last norm of each block")
    head_hidden: int = setting(0, "Head hidden channels (0 = pool + fc; k = pool + 1×1 conv to "
                                  "k + fc)", 0, 16384)
    in_channels: int = setting(3, "Input channels", choices={3: "3 (RGB)", 1: "1 (grayscale)"})
    num_classes: int = setting(1000, "Classes", 1, MAX_CLASSES)

    # ----- derived figures -------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.blocks)

    @property
    def expansion(self) -> int:
        return BLOCKS[self.block].expansion

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return tuple(max(1, round(w * self.width_multiplier)) for w in self.widths)

    def norm_channel_counts(self) -> set[int]:
        """Every channel count a norm layer sees, so group counts can be checked."""
        counts = set(STEMS[self.stem].norm_widths(self.stem_width))
        for w in self.stage_widths:
            counts.update({w, w * self.expansion})
        return counts

    # ----- validation ------------------------------------------------------------------
    def validate(self) -> list[str]:
        problems = _check_field_values(self)
        if problems:
            return problems
        from .model import count_parameters  # late import: model imports this module

        # Every block holds a convolution with at least width² weights, so this bound refuses
        # a huge network (a crafted link) before seconds are spent building it on meta.
        floor = sum(b * w * w for b, w in zip(self.blocks, self.stage_widths))
        if floor > MAX_PARAMS:
            return [f"the network would have over {floor:,} parameters; the limit is "
                    f"{MAX_PARAMS:,} (reduce widths, blocks or width_multiplier)"]
        params = count_parameters(self)
        if params > MAX_PARAMS:
            problems.append(
                f"the network would have {params:,} parameters; the limit is {MAX_PARAMS:,} "
                "(reduce widths, blocks or width_multiplier)"
            )
        return problems

    # ----- parsing ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any) -> ArchConfig:
        """ConfigBase.from_dict, but a per-stage list the document leaves out follows the
        stage count of the ones it gives, so `{"blocks": [2, 2, 2]}` is a 3-stage network,
        not a complaint about the default depthwise list's 4 entries."""
        if isinstance(data, dict):
            data = {**_stage_lists_for(data), **data}
        return super().from_dict(data)

    # ----- URL query (JSON: ConfigBase) -------------------------------------------------
    def to_query(self) -> dict[str, str]:
        """Only the fields that differ from the default, so shared links stay short."""
        base = ArchConfig()
        return {
            f.name: _query_value(getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(base, f.name)
        }

    @classmethod
    def from_query(cls, params: typing.Mapping[str, str]) -> ArchConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigError(f"unknown URL parameter(s): {', '.join(unknown)}")
        data: dict[str, Any] = {}
        for name, raw in params.items():
            data[name] = _parse_query_value(str(raw), name)
        return cls.from_dict(data)

    # ----- comparison ------------------------------------------------------------------
    def describe_diff(self, other: ArchConfig, *, ignore: Collection[str] = ()) -> list[str]:
        """What changes going from `other` to `self`, in words (empty when identical). Fields in
        `ignore` are left out: names and change counts pass SIZED_BY_DATA, while a layer diff
        (the Summary page) keeps the output size, which really is a different layer there."""
        out: list[str] = []
        for f in fields(self):
            old, new = getattr(other, f.name), getattr(self, f.name)
            if old == new or f.name in ignore:
                continue
            if f.name in _PER_STAGE_WORDS and len(old) == len(new):
                for i, (a, b) in enumerate(zip(old, new), start=1):
                    if a != b:
                        out.append(f"stage {i}: " + _PER_STAGE_WORDS[f.name](a, b))
            else:
                out.append(f"{f.name.replace('_', ' ')}: {_word(old)} → {_word(new)}")
        return out

    def closest_preset(self) -> tuple[str, list[str]]:
        """The preset this config differs least from, and how, in words; the class count (any
        SIZED_BY_DATA field) is not a difference. A tie goes to a preset with the same class
        count, then to the one listed first (resnet34)."""
        diffs = {name: self.describe_diff(p, ignore=SIZED_BY_DATA) for name, p in PRESETS.items()}
        name = min(diffs, key=lambda n: (len(diffs[n]), PRESETS[n].num_classes != self.num_classes))
        return name, diffs[name]

    def short_name(self) -> str:
        """"resnet34"; "resnet34 · 10 classes" (a preset sized for other data); or "custom
        (2 changes from resnet34)", counted from the closest preset without the class count."""
        name, changes = self.closest_preset()
        if changes:
            n = len(changes)
            return f"custom ({n} change{'' if n == 1 else 's'} from {name})"
        if self.num_classes != PRESETS[name].num_classes:
            n = self.num_classes
            return f"{name} · {n} class{'' if n == 1 else 'es'}"
        return name

    def short_diff(self, other: ArchConfig | None = None) -> str:
        """Terse legend text of what differs from `other` (default: resnet34), from the option
        tables' short labels: "silu, dw stage 3", "se r16", "blocks 2-2-2-2". SIZED_BY_DATA
        fields are not a difference; with nothing else different it is the other's preset
        name ("resnet34"), or "base" for a custom other."""
        other = BASELINE if other is None else other
        parts = []
        names = [*_SHORT, *(f.name for f in fields(self) if f.name not in _SHORT)]
        for name in names:
            new, old = getattr(self, name), getattr(other, name)
            if new != old and name not in SIZED_BY_DATA:
                text = (_SHORT.get(name) or _short_generic(name))(new, old)
                if text:
                    parts.append(text)
        if parts:
            return ", ".join(parts)
        name, changes = other.closest_preset()
        return "base" if changes else name


# The fields that hold one value per stage, in the order a stage's widgets show them.
STAGE_FIELDS = tuple(f.name for f in fields(ArchConfig)
                     if spec_of(ArchConfig, f.name).each == "stage")


def next_stage_value(name: str, previous: Any) -> Any:
    """Field `name`'s value for a stage added after one holding `previous`: the same, but
    twice as wide (the Architecture page's stage counter and parsing both grow this way)."""
    return min(MAX_WIDTH, previous * 2) if name == "widths" else previous


def stage_values(name: str, n: int) -> tuple[Any, ...]:
    """Field `name`'s default for an n-stage network: ResNet34's first n stages, then each
    further stage grown from the one before."""
    values = list(getattr(BASELINE, name)[:n])
    while len(values) < n:
        values.append(next_stage_value(name, values[-1]))
    return tuple(values)


def _stage_lists_for(data: dict[str, Any]) -> dict[str, Any]:
    """Defaults for the per-stage fields `data` leaves out, sized to the stage count of the
    ones it gives (`blocks` first). Nothing when it gives none or all, or a count out of
    bounds: then the person's own lists are what the messages are about."""
    given = [name for name in STAGE_FIELDS if isinstance(data.get(name), list)]
    if not given or len(given) == len(STAGE_FIELDS):
        return {}
    n = len(data[given[0]])
    if not 1 <= n <= MAX_STAGES:
        return {}
    return {name: list(stage_values(name, n)) for name in STAGE_FIELDS if name not in data}


_PER_STAGE_WORDS = {
    "blocks": lambda a, b: f"{a} → {b} blocks",
    "widths": lambda a, b: f"width {a} → {b}",
    "depthwise": lambda a, b: "depthwise-separable convs " + ("on" if b else "off"),
}


def _dash(values: tuple[Any, ...]) -> str:
    return "-".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _depthwise_short(new: tuple[bool, ...], old: tuple[bool, ...]) -> str:
    on = [i for i, flag in enumerate(new, start=1) if flag]
    if on == [i for i, flag in enumerate(old, start=1) if flag]:
        return ""  # only the stage count changed, which `blocks` already says
    if not on:
        return "no dw"
    if len(on) == len(new) > 1:
        return "dw all"
    return f"dw stage {on[0]}" if len(on) == 1 else "dw stages " + "+".join(map(str, on))


def _short_generic(name: str) -> Any:
    """A field without its own entry in _SHORT (one added later): its name and new value."""
    label = name.replace("_", " ")
    return lambda new, old: f"{label} {_dash(new) if isinstance(new, tuple) else _word(new)}"


# Legend text of one field's new value (short_diff), from the option tables where they exist;
# in this order: what a block computes first, then where and how deep, then the rest.
_SHORT: dict[str, Any] = {
    "activation": lambda new, old: ACTIVATIONS[new].short,
    "leaky_slope": lambda new, old: f"slope {new:g}",
    "norm": lambda new, old: "no norm" if NORMS[new].module is None else f"norm {NORMS[new].short}",
    "norm_groups": lambda new, old: f"{new} groups",
    "se_reduction": lambda new, old: f"se r{new}" if new else "no se",
    "depthwise": _depthwise_short,
    "block": lambda new, old: BLOCKS[new].short,
    "shortcut": lambda new, old: f"shortcut {new}",
    "stem": lambda new, old: f"{STEMS[new].short} stem",
    "stem_width": lambda new, old: f"stem {new}",
    "blocks": lambda new, old: f"blocks {_dash(new)}",
    "widths": lambda new, old: f"widths {_dash(new)}",
    "width_multiplier": lambda new, old: f"width ×{new:g}",
    "dropout": lambda new, old: f"dropout {new:g}",
    "drop_path": lambda new, old: f"drop path {new:g}",
    "zero_init_last": lambda new, old: "zero-init last" if new else "no zero-init",
    "head_hidden": lambda new, old: f"head {new}" if new else "head fc",
    "in_channels": lambda new, old: f"{new} channel{'' if new == 1 else 's'}",
}


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return "[" + ", ".join(_word(v) for v in value) + "]"
    return str(value)


def _check_field_values(cfg: ArchConfig) -> list[str]:
    p = check_settings(cfg)
    n = len(cfg.blocks)
    if not 1 <= n <= MAX_STAGES:
        p.append(f"blocks must list 1 to {MAX_STAGES} stages (got {n})")
    if len(cfg.widths) != n:
        p.append(f"widths must have one entry per stage ({n}), got {len(cfg.widths)}")
    if len(cfg.depthwise) != n:
        p.append(f"depthwise must have one entry per stage ({n}), got {len(cfg.depthwise)}")
    stem = STEMS.get(cfg.stem)
    if stem and cfg.stem_width % stem.width_multiple:
        p.append(f"stem_width must be a multiple of {stem.width_multiple} for the {cfg.stem} "
                 f"stem (got {cfg.stem_width})")
    if p:  # the checks below need well-formed stages and known choices
        return p
    if NORMS[cfg.norm].grouped:
        bad = sorted(c for c in cfg.norm_channel_counts() if c % cfg.norm_groups)
        if bad:
            p.append(
                f"norm_groups={cfg.norm_groups} must divide every normalised channel count; "
                f"it does not divide {', '.join(map(str, bad))}"
            )
    shortcut = SHORTCUTS[cfg.shortcut]
    if not shortcut.can_reduce_channels:
        widths = [w * cfg.expansion for w in cfg.stage_widths]
        others = [name for name, entry in SHORTCUTS.items() if entry.can_reduce_channels]
        for i, (cin, cout) in enumerate(zip([cfg.stem_width] + widths[:-1], widths), start=1):
            if cout < cin:
                p.append(f"stage {i}: shortcut {cfg.shortcut} ({shortcut.detail}) cannot reduce "
                         f"channels {cin} → {cout}; use {_either(others)}")
    return p


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# Fields the dataset decides when training starts (the output layer follows the class count):
# a different value is not a design change, so names, legends and diff columns ignore it.
SIZED_BY_DATA = ("num_classes",)

# ----- presets ---------------------------------------------------------------------------
BASELINE = ArchConfig()
PRESETS: dict[str, ArchConfig] = {
    "resnet34": BASELINE,
    "resnet18": ArchConfig(blocks=(2, 2, 2, 2)),
    # timm resnet34d: deep stem (32-32-64) and avg-pool downsampling (ResNet-D).
    "resnet34-d": ArchConfig(stem="deep", shortcut="D"),
    # timm seresnet34: SE after the last norm of each block, reduction 16.
    "se-resnet34": ArchConfig(se_reduction=16),
    # timm resnet26: bottleneck blocks, two per stage.
    "resnet26": ArchConfig(block="bottleneck", blocks=(2, 2, 2, 2)),
    "resnet34-cifar": ArchConfig(stem="cifar", num_classes=10),
    "resnet34-dw": ArchConfig(depthwise=(True, True, True, True)),
    "preact-resnet34": ArchConfig(block="preact"),
}


def _query_value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_query_value(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _parse_query_value(raw: str, name: str) -> Any:
    hint = field_types(ArchConfig)[name]
    if len(raw) > 512:
        raise ConfigError(f"URL parameter {name} is too long")

    def scalar(text: str, t: Any) -> Any:
        try:
            if t is bool:
                if text not in ("0", "1", "true", "false"):
                    raise ValueError
                return text in ("1", "true")
            if t is int:
                return int(text)
            if t is float:
                return float(text)
        except ValueError:
            raise ConfigError(f"URL parameter {name}={text!r} is not a valid {t.__name__}") from None
        return text

    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return [scalar(part, item) for part in raw.split(",")] if raw else []
    return scalar(raw, hint)


__all__ = [
    "BASELINE", "PRESETS", "ArchConfig", "MAX_STAGES", "MAX_BLOCKS_PER_STAGE", "MAX_WIDTH",
    "MAX_CLASSES", "MAX_PARAMS", "SIZED_BY_DATA", "STAGE_FIELDS", "next_stage_value",
    "stage_values",
]
