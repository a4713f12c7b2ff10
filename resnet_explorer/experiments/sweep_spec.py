"""An ablation sweep's specification: a base architecture and recipe, named modifications of
either, and a number of seeds; checked whole before anything is queued.

    {"base_arch": {...ArchConfig fields...}, "train": {...TrainConfig fields...},
     "modifications": [{"name": "silu", "arch": {"activation": "silu"}, "train": {}}, ...],
     "seeds": 3}

Every modification becomes full configs (the base with its changes), each checked by
ArchConfig / TrainConfig themselves, and every problem is reported at once, prefixed with the
modification's name. The baseline (the base unchanged, named "baseline") always runs. Runs
of one configuration differ only in TrainConfig.seed: the recipe's seed, +1, +2, …
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..arch.config import BASELINE, SIZED_BY_DATA, ArchConfig
from ..common.errors import ConfigError
from ..common.schema import MAX_LIST_ITEMS, ConfigBase, parse_json_object
from ..training.config import TrainConfig

__all__ = ["BASELINE_NAME", "MAX_SEEDS", "CONFIRM_ABOVE", "SWEEP_SETS", "SweepTooLarge",
           "Variant", "SweepSpec", "parse_modifications"]

BASELINE_NAME = "baseline"
MAX_SEEDS = 100
MAX_NAME = 60
CONFIRM_ABOVE = 200  # runs; a larger sweep needs an explicit yes
SWEEP_SETS = ("seed", "device")  # TrainConfig fields the sweep sets per run, not modifications
SPEC_KEYS = ("base_arch", "train", "modifications", "seeds")
MODIFICATION_KEYS = ("name", "arch", "train")


class SweepTooLarge(ConfigError):
    """A valid sweep of more than CONFIRM_ABOVE runs that was not confirmed."""

    def __init__(self, runs: int, configs: int, seeds: int) -> None:
        self.runs = runs
        super().__init__(f"this sweep queues {runs} runs ({configs} configurations × {seeds} "
                         f"seeds); more than {CONFIRM_ABOVE} need confirmation")
        self.args = (runs, configs, seeds)  # matches __init__, so the error pickles


@dataclass(frozen=True)
class Variant:
    """One configuration of the sweep: the baseline or a modification, with its full configs
    and the changes as given (kept for spec.json)."""

    name: str
    arch: ArchConfig
    train: TrainConfig  # seed: the sweep's first seed
    arch_changes: Mapping[str, Any] = field(default_factory=dict)
    train_changes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    base_arch: ArchConfig
    train: TrainConfig
    variants: tuple[Variant, ...]  # the baseline first
    seeds: int

    @property
    def modifications(self) -> tuple[Variant, ...]:
        return self.variants[1:]

    @property
    def n_runs(self) -> int:
        return len(self.variants) * self.seeds

    def seed_values(self) -> list[int]:
        return [self.train.seed + i for i in range(self.seeds)]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def check_size(self, confirmed: bool) -> None:
        """SweepTooLarge for an unconfirmed sweep of more than CONFIRM_ABOVE runs."""
        if self.n_runs > CONFIRM_ABOVE and not confirmed:
            raise SweepTooLarge(self.n_runs, len(self.variants), self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that `from_dict` reads back to an equal spec (spec.json is a SPEC.json)."""
        return {"base_arch": self.base_arch.to_dict(), "train": self.train.to_dict(),
                "modifications": [{"name": v.name, "arch": dict(v.arch_changes),
                                   "train": dict(v.train_changes)} for v in self.modifications],
                "seeds": self.seeds}

    @classmethod
    def from_json(cls, text: str | bytes) -> SweepSpec:
        return cls.from_dict(parse_json_object(text))

    @classmethod
    def from_dict(cls, data: Any) -> SweepSpec:
        """Parse and check everything; ConfigError listing every problem found."""
        if not isinstance(data, dict):
            raise ConfigError(f"a sweep spec must be an object with the fields "
                              f"{', '.join(SPEC_KEYS)}, got {type(data).__name__}")
        problems = [f"sweep spec: unknown field {k!r} (expected {', '.join(SPEC_KEYS)})"
                    for k in data if k not in SPEC_KEYS]
        base = _config(ArchConfig, data.get("base_arch", {}), "base_arch", problems)
        train = _config(TrainConfig, data.get("train", {}), "train", problems)
        seeds = _seeds(data.get("seeds"), train, problems)
        raw = data.get("modifications")
        if not isinstance(raw, list):
            problems.append("sweep spec: modifications must be a list of {\"name\": …, "
                            "\"arch\": {…}, \"train\": {…}} (an empty list sweeps seeds only)")
            raw = []
        elif len(raw) > MAX_LIST_ITEMS:
            problems.append(f"sweep spec: {len(raw)} modifications; at most {MAX_LIST_ITEMS}")
            raw = []
        variants = [Variant(BASELINE_NAME, base, train)] if base and train else []
        names = {BASELINE_NAME}
        seen = {_identity(base, train): BASELINE_NAME} if base and train else {}
        for i, item in enumerate(raw, start=1):
            variant = _modification(item, i, base, train, names, problems)
            if variant is None:
                continue
            twin = seen.setdefault(_identity(variant.arch, variant.train), variant.name)
            if twin != variant.name:
                what = "changes nothing: it is the baseline" if twin == BASELINE_NAME \
                    else f"gives the same configuration as {twin!r}"
                problems.append(f"modification {variant.name!r} {what}")
                continue
            variants.append(variant)
        if problems:
            raise ConfigError(problems)
        assert base is not None and train is not None and seeds is not None
        return cls(base, train, tuple(variants), seeds)


def parse_modifications(text: str | bytes) -> list[dict[str, Any]]:
    """Modifications typed as JSON: one object, a list of them, or a whole sweep spec (its
    "modifications"). Only the shape is checked here; SweepSpec checks the contents."""
    stripped = text.lstrip() if isinstance(text, str) else text.lstrip().decode("utf-8", "replace")
    # A list is wrapped in an object so that parse_json_object's limits apply to it as well.
    data = parse_json_object(f'{{"modifications": {stripped}}}' if stripped.startswith("[")
                             else text)
    items = data["modifications"] if "modifications" in data else [data]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError("modifications must be objects such as "
                          '{"name": "silu", "arch": {"activation": "silu"}}')
    return items


def _config(cls: type[ConfigBase], data: Any, where: str, problems: list[str]) -> Any:
    """cls.from_dict(data), or None with its problems (prefixed with `where`) recorded."""
    try:
        return cls.from_dict(data)
    except ConfigError as exc:
        own = f"{cls.WHERE}: "
        problems.extend(f"{where}: {p.removeprefix(own)}" for p in exc.problems)
        return None


def _seeds(value: Any, train: TrainConfig | None, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEEDS:
        problems.append(f"sweep spec: seeds must be a whole number from 1 to {MAX_SEEDS} "
                        f"(got {value!r})")
        return None
    top = 2**31 - 1
    if train is not None and train.seed + value - 1 > top:
        problems.append(f"train: seed {train.seed} + {value} seeds passes the largest seed {top}")
        return None
    return value


def _modification(item: Any, i: int, base: ArchConfig | None, train: TrainConfig | None,
                  names: set[str], problems: list[str]) -> Variant | None:
    if not isinstance(item, dict):
        problems.append(f"modification {i}: must be an object with a name, got "
                        f"{type(item).__name__}")
        return None
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME \
            or not name.isprintable():
        problems.append(f"modification {i}: needs a name of 1 to {MAX_NAME} printable "
                        f"characters (got {str(name)[:80]!r})")
        return None
    name = name.strip()
    who = f"modification {name!r}"
    if name.casefold() in names:
        problems.append(f"{who}: the name is used twice" if name.casefold() != BASELINE_NAME
                        else f"{who}: the name {BASELINE_NAME!r} is the unchanged base's")
        return None
    names.add(name.casefold())
    bad = [f"{who}: unknown field {k!r} (expected {', '.join(MODIFICATION_KEYS)})"
           for k in item if k not in MODIFICATION_KEYS]
    arch_changes, train_changes = item.get("arch", {}), item.get("train", {})
    for part, changes in (("arch", arch_changes), ("train", train_changes)):
        if not isinstance(changes, dict):
            bad.append(f"{who}: {part} must be an object of field changes, got "
                       f"{type(changes).__name__}")
    if isinstance(train_changes, dict):
        bad += [f"{who}: train.{k} is set by the sweep for each run, not by a modification"
                for k in SWEEP_SETS if k in train_changes]
    if bad:
        problems.extend(bad)
        return None
    if base is None or train is None:  # the base's own problems are reported already
        return None
    before = len(problems)
    arch = _config(ArchConfig, {**base.to_dict(), **arch_changes}, f"{who}: arch", problems)
    cfg = _config(TrainConfig, {**train.to_dict(), **train_changes}, f"{who}: train", problems)
    if len(problems) > before:
        return None
    return Variant(name, arch, cfg, dict(arch_changes), dict(train_changes))


def _identity(arch: ArchConfig, train: TrainConfig) -> tuple[ArchConfig, TrainConfig]:
    """What makes two configurations the same run: fields the data decides do not count."""
    return replace(arch, **{f: getattr(BASELINE, f) for f in SIZED_BY_DATA}), train
