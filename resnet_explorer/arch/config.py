"""Architecture configuration: one frozen dataclass whose defaults ARE torchvision's resnet34.

Everything a page, the trainer or a saved model needs to rebuild a network is in
`ArchConfig`; it is hashable so caches can key on it, and it round-trips through JSON
and URL query parameters with strict, user-facing validation.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass, fields
from typing import Any

STEMS = ("imagenet", "deep", "cifar")
BLOCKS = ("basic", "bottleneck", "preact")
SHORTCUTS = ("A", "B", "C", "D")
ACTIVATIONS = ("relu", "leaky_relu", "silu", "gelu", "mish", "hardswish", "elu", "prelu")
NORMS = ("batch", "group", "layer", "instance", "none")

# Bounds keep a typo (widths=[6400], blocks=[300]) from exhausting a shared server.
MAX_STAGES = 6
MAX_BLOCKS_PER_STAGE = 64
MAX_WIDTH = 4096
MAX_CLASSES = 100_000
MAX_PARAMS = 500_000_000


class ConfigError(ValueError):
    """Invalid configuration; `problems` holds one human-readable sentence per issue."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class ArchConfig:
    stem: str = "imagenet"
    stem_width: int = 64  # channels leaving the stem; the deep stem uses half of it inside
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # "planes" per stage, before block expansion
    width_multiplier: float = 1.0
    block: str = "basic"
    shortcut: str = "B"
    depthwise: tuple[bool, ...] = (False, False, False, False)
    activation: str = "relu"
    leaky_slope: float = 0.01
    norm: str = "batch"
    norm_groups: int = 32
    se_reduction: int = 0  # 0 = no squeeze-excitation
    dropout: float = 0.0
    drop_path: float = 0.0
    zero_init_last: bool = False
    head_hidden: int = 0  # 0 = pool + fc; k = pool + 1x1 conv to k channels + act + fc
    in_channels: int = 3
    num_classes: int = 1000

    # ----- derived figures -------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.blocks)

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return tuple(max(1, round(w * self.width_multiplier)) for w in self.widths)

    @property
    def out_channels(self) -> int:
        return self.stage_widths[-1] * self.expansion

    def norm_channel_counts(self) -> set[int]:
        """Every channel count a norm layer sees, so group counts can be checked."""
        counts = {self.stem_width}
        if self.stem == "deep":
            counts.add(self.stem_width // 2)
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

    def check(self) -> ArchConfig:
        problems = self.validate()
        if problems:
            raise ConfigError(problems)
        return self

    # ----- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> ArchConfig:
        return dataclass_from_dict(cls, data, where="architecture")

    @classmethod
    def from_json(cls, text: str | bytes) -> ArchConfig:
        return cls.from_dict(parse_json_object(text))

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
            data[name] = _parse_query_value(known[name].type, str(raw), name)
        return cls.from_dict(data)

    # ----- comparison ------------------------------------------------------------------
    def describe_diff(self, other: ArchConfig) -> list[str]:
        """What changes going from `other` to `self`, in words (empty when identical)."""
        out: list[str] = []
        for f in fields(self):
            old, new = getattr(other, f.name), getattr(self, f.name)
            if old == new:
                continue
            if f.name in _PER_STAGE_WORDS and len(old) == len(new):
                for i, (a, b) in enumerate(zip(old, new), start=1):
                    if a != b:
                        out.append(f"stage {i}: " + _PER_STAGE_WORDS[f.name](a, b))
            else:
                out.append(f"{f.name.replace('_', ' ')}: {_word(old)} → {_word(new)}")
        return out

    def short_name(self) -> str:
        for name, preset in PRESETS.items():
            if preset == self:
                return name
        return f"custom ({len(self.describe_diff(BASELINE))} changes from resnet34)"


_PER_STAGE_WORDS = {
    "blocks": lambda a, b: f"{a} → {b} blocks",
    "widths": lambda a, b: f"width {a} → {b}",
    "depthwise": lambda a, b: "depthwise-separable convs " + ("on" if b else "off"),
}


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return "[" + ", ".join(_word(v) for v in value) + "]"
    return str(value)


def _check_field_values(cfg: ArchConfig) -> list[str]:
    p: list[str] = []

    def choice(name: str, allowed: tuple[str, ...]) -> None:
        if getattr(cfg, name) not in allowed:
            p.append(f"{name} must be one of {', '.join(allowed)} (got {getattr(cfg, name)!r})")

    def in_range(name: str, value: float, lo: float, hi: float) -> None:
        if not (lo <= value <= hi):
            p.append(f"{name} must be between {lo} and {hi} (got {value})")

    choice("stem", STEMS)
    choice("block", BLOCKS)
    choice("shortcut", SHORTCUTS)
    choice("activation", ACTIVATIONS)
    choice("norm", NORMS)
    n = len(cfg.blocks)
    if not 1 <= n <= MAX_STAGES:
        p.append(f"blocks must list 1 to {MAX_STAGES} stages (got {n})")
    if len(cfg.widths) != n:
        p.append(f"widths must have one entry per stage ({n}), got {len(cfg.widths)}")
    if len(cfg.depthwise) != n:
        p.append(f"depthwise must have one entry per stage ({n}), got {len(cfg.depthwise)}")
    for i, b in enumerate(cfg.blocks, start=1):
        if not 1 <= b <= MAX_BLOCKS_PER_STAGE:
            p.append(f"stage {i}: blocks must be between 1 and {MAX_BLOCKS_PER_STAGE} (got {b})")
    for i, w in enumerate(cfg.widths, start=1):
        if not 1 <= w <= MAX_WIDTH:
            p.append(f"stage {i}: width must be between 1 and {MAX_WIDTH} (got {w})")
    in_range("width_multiplier", cfg.width_multiplier, 0.0625, 4.0)
    in_range("stem_width", cfg.stem_width, 2 if cfg.stem == "deep" else 1, MAX_WIDTH)
    if cfg.stem == "deep" and cfg.stem_width % 2:
        p.append(f"stem_width must be even for the deep stem (got {cfg.stem_width})")
    in_range("leaky_slope", cfg.leaky_slope, 0.0, 1.0)
    in_range("norm_groups", cfg.norm_groups, 1, MAX_WIDTH)
    in_range("se_reduction", cfg.se_reduction, 0, 1024)
    in_range("dropout", cfg.dropout, 0.0, 0.95)
    in_range("drop_path", cfg.drop_path, 0.0, 0.95)
    in_range("head_hidden", cfg.head_hidden, 0, 16384)
    if cfg.in_channels not in (1, 3):
        p.append(f"in_channels must be 1 or 3 (got {cfg.in_channels})")
    in_range("num_classes", cfg.num_classes, 1, MAX_CLASSES)
    if p:  # the checks below need well-formed stages
        return p
    widths = cfg.stage_widths
    if cfg.norm == "group":
        bad = sorted(c for c in cfg.norm_channel_counts() if c % cfg.norm_groups)
        if bad:
            p.append(
                f"norm_groups={cfg.norm_groups} must divide every normalised channel count; "
                f"it does not divide {', '.join(map(str, bad))}"
            )
    if cfg.shortcut == "A":
        ins = [cfg.stem_width] + [w * cfg.expansion for w in widths[:-1]]
        for i, (cin, w) in enumerate(zip(ins, widths), start=1):
            if w * cfg.expansion < cin:
                p.append(
                    f"stage {i}: shortcut A (zero-padding identity) cannot reduce channels "
                    f"{cin} → {w * cfg.expansion}; use B, C or D"
                )
    return p


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


# ----- strict JSON / dict parsing shared by every config dataclass -------------------------
def parse_json_object(text: str | bytes, max_bytes: int = 65_536) -> dict[str, Any]:
    """json.loads with the limits an upload box needs: size, nesting, NaN, object at top."""
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise ConfigError(f"config file is {len(text):,} bytes; the limit is {max_bytes:,}")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError("config file is not UTF-8 text") from None
    if len(text) > max_bytes:
        raise ConfigError(f"config text is {len(text):,} characters; the limit is {max_bytes:,}")

    def no_constants(name: str) -> None:
        raise ConfigError(f"{name} is not allowed in a config (numbers must be finite)")

    try:
        data = json.loads(text, parse_constant=no_constants)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError("config JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints over Python's digit limit
        raise ConfigError(f"config is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
    return data


def dataclass_from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build `cls` from plain data, checking each field against its annotation."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object with named fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.init}
    problems = [f"{where}: unknown field {k!r}" for k in data if k not in known]
    values: dict[str, Any] = {}
    for name, raw in data.items():
        if name not in known:
            continue
        try:
            values[name] = _coerce(raw, hints[name], name)
        except ConfigError as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise ConfigError(problems)
    obj = cls(**values)
    if hasattr(obj, "validate"):
        problems = obj.validate()
        if problems:
            raise ConfigError(problems)
    return obj


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{name} must be null")
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {type(value).__name__}")
        if len(value) > 64:
            raise ConfigError(f"{name} has {len(value)} entries; at most 64 are allowed")
        return tuple(_coerce(v, item_type, f"{name}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        if abs(value) > 10**12:
            raise ConfigError(f"{name} is far too large ({str(value)[:20]}…)")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value) or abs(value) > 1e12:
            raise ConfigError(f"{name} must be a finite number of sensible size, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {value!r}")
        if len(value) > 4096:
            raise ConfigError(f"{name} is too long ({len(value)} characters)")
        return value
    raise ConfigError(f"{name} has an unsupported type")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _query_value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_query_value(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _parse_query_value(hint: Any, raw: str, name: str) -> Any:
    hint = typing.get_type_hints(ArchConfig)[name]
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
    "ACTIVATIONS", "BASELINE", "BLOCKS", "NORMS", "PRESETS", "SHORTCUTS", "STEMS",
    "ArchConfig", "ConfigError", "dataclass_from_dict", "parse_json_object",
]
