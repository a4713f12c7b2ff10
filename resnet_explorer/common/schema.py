"""Config dataclasses: what each field may hold, said once, and strict parsing of plain data.

A field declared with `setting(...)` carries its label, help, bounds or choices in its
dataclass metadata. Validation (`check_settings`) and the forms the pages generate read that
one declaration, so a bound is never written twice and a widget never offers a value the
validator refuses. Parsing (`ConfigBase.from_dict`, `parse_json_object`) checks every value
against the field's type annotation with the limits an upload box needs, so JSON from a
file, a URL or a form all obey the same rules. Nothing here knows any particular config.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError
from .filevalues import finite_number
from .limits import CONFIG_UPLOAD

__all__ = ["Spec", "setting", "spec_of", "check_settings", "field_types", "parse_json_object",
           "ConfigBase", "MAX_LIST_ITEMS", "MAX_CONFIG_BYTES"]

MAX_LIST_ITEMS = 64  # no config list is longer
MAX_CONFIG_BYTES = CONFIG_UPLOAD.max_bytes  # a config document (upload, paste, CLI file)


@dataclass(frozen=True)
class Spec:
    """What a person may set a field to, and how a form asks for it.

    `choices` may be a Mapping (an option table: membership and order are read live, so an
    entry added at run time is allowed at once, and each entry's `.label` names it in a
    widget). Bounds are inclusive and apply to each item of a tuple field; `each` names what
    a tuple holds one item per, and `item` one item, in messages ("stage 2: width must be …").
    """

    label: str
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: Collection[Any] | None = None
    step: float | None = None
    format: str | None = None  # printf-style format for number widgets ("%.5f")
    item: str = ""
    each: str = "item"

    def choice_label(self, value: Any) -> str:
        """An option table entry's `.label`, a plain mapping's text, else the value itself."""
        entry = self.choices.get(value) if isinstance(self.choices, Mapping) else None
        return entry if isinstance(entry, str) else str(getattr(entry, "label", value))

    def problems(self, name: str, value: Any) -> list[str]:
        """Sentences about `value` breaking this spec (empty when it fits)."""
        if isinstance(value, tuple):
            who = self.item or name
            return [f"{self.each} {i}: {p}" for i, v in enumerate(value, start=1)
                    for p in self._scalar_problems(who, v)]
        return self._scalar_problems(name, value)

    def _scalar_problems(self, name: str, value: Any) -> list[str]:
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            return [f"{name} must be one of {allowed} (got {value!r})"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return []
        if self.lo is not None and self.hi is not None and not self.lo <= value <= self.hi:
            return [f"{name} must be between {self.lo} and {self.hi} (got {value})"]
        if self.lo is not None and value < self.lo:
            return [f"{name} must be at least {self.lo} (got {value})"]
        if self.hi is not None and value > self.hi:
            return [f"{name} must be at most {self.hi} (got {value})"]
        return []


def setting(default: Any, label: str, lo: float | None = None, hi: float | None = None,
            **more: Any) -> Any:
    """A dataclass field with its Spec: `epochs: int = setting(8, "Epochs", 1, 1000)`."""
    return field(default=default, metadata={"spec": Spec(label, lo=lo, hi=hi, **more)})


def spec_of(cls: Any, name: str) -> Spec:
    for f in fields(cls):
        if f.name == name and "spec" in f.metadata:
            return f.metadata["spec"]
    raise KeyError(f"{getattr(cls, '__name__', cls)}.{name} has no setting spec")


def check_settings(obj: Any) -> list[str]:
    """Every field's value against its own Spec, in declaration order."""
    return [p for f in fields(obj) if "spec" in f.metadata
            for p in f.metadata["spec"].problems(f.name, getattr(obj, f.name))]


C = TypeVar("C", bound="ConfigBase")


class ConfigBase:
    """What every config dataclass does the same way: validation against its settings (plus
    the class's own cross-field rules) and a JSON round trip through the strict parser.

    Subclasses name themselves in parse errors with `WHERE` and add cross-field rules by
    overriding `validate` (starting from `check_settings`).
    """

    WHERE: ClassVar[str] = "config"

    def validate(self) -> list[str]:
        return check_settings(self)

    def check(self: C) -> C:
        problems = self.validate()
        if problems:
            raise ConfigError(problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        values = ((f.name, getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]
        return {name: _plain(value) for name, value in values}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls: type[C], data: Any) -> C:
        """Build from plain data, each value checked against its annotation, then validated."""
        where = cls.WHERE
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be an object with named fields, got "
                              f"{type(data).__name__}")
        hints = field_types(cls)
        problems = [f"{where}: unknown field {k!r}" for k in data if k not in hints]
        values: dict[str, Any] = {}
        for name, raw in data.items():
            if name not in hints:
                continue
            try:
                values[name] = _coerce(raw, hints[name], name)
            except ConfigError as exc:
                problems.append(f"{where}: {exc}")
        if problems:
            raise ConfigError(problems)
        return cls(**values).check()

    @classmethod
    def from_json(cls: type[C], text: str | bytes) -> C:
        return cls.from_dict(parse_json_object(text))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ----- strict JSON and dict parsing ---------------------------------------------------------
@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each init field (get_type_hints costs ~0.3 ms: once per class)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.init}


def parse_json_object(text: str | bytes, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
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
        if len(value) > MAX_LIST_ITEMS:
            raise ConfigError(f"{name} has {len(value)} entries; at most {MAX_LIST_ITEMS} are "
                              "allowed")
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
        number = finite_number(value)  # None for NaN, ±inf and 400-digit integers alike
        if number is None or abs(number) > 1e12:
            raise ConfigError(f"{name} must be a finite number of sensible size, got "
                              f"{str(value)[:20]}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {value!r}")
        if len(value) > 4096:
            raise ConfigError(f"{name} is too long ({len(value)} characters)")
        return value
    raise ConfigError(f"{name} has an unsupported type")
