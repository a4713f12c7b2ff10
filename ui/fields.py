"""Widgets generated from config fields: one declaration (common.schema's Spec) gives the
label, help, bounds, step, format and choices, so a form never offers a value the config's
validator refuses, and never repeats a bound.

`widget(cls, name, key, ...)` makes the widget a field's type calls for: a checkbox for a
bool, a select box (or radio) for a field with choices (labelled by the option table's
`.label`), a number box (or slider) for int and float, a text box for str. For a tuple field
(one value per stage) it makes the widget of one item; the caller keys one per stage
(ui/arch_form.py:stage_widgets). Values live in
st.session_state under `key`: the default is put there before the widget is made, so
presets and imports can write into the same keys from callbacks.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import streamlit as st

from resnet_explorer.common import Spec, field_types, spec_of

Kind = Literal["radio", "slider"]


def _item_type(cls: type, name: str) -> tuple[Any, bool]:
    """The type of one value of field `name` (the item type for tuple fields), and whether
    the field may be None (`float | None`: an empty box, meaning "auto")."""
    hint = field_types(cls)[name]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], False
    args = typing.get_args(hint)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _fit(value: Any, kind: Any) -> Any:
    # Streamlit refuses a float box holding an int (and the other way round).
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def widget(cls: type, name: str, key: str, *, default: Any = None, where: Any = st,
           label: str | None = None, kind: Kind | None = None, disabled: bool = False,
           horizontal: bool = False, placeholder: str | None = None) -> Any:
    """The widget for field `name` of config class `cls` in container `where`; its value.
    A number field that may be None is a box that may be left empty, showing `placeholder`."""
    spec: Spec = spec_of(cls, name)
    t, optional = _item_type(cls, name)
    if key not in st.session_state:
        if default is not None:
            st.session_state[key] = _fit(default, t)
    elif type(fitted := _fit(st.session_state[key], t)) is not type(st.session_state[key]):
        st.session_state[key] = fitted
    text = label or spec.label
    common: dict[str, Any] = {"key": key, "help": spec.help or None, "disabled": disabled}
    if t is bool:
        return where.checkbox(text, **common)
    if spec.choices is not None:
        options = list(spec.choices)
        fmt = spec.choice_label
        if kind == "radio":
            return where.radio(text, options, format_func=fmt, horizontal=horizontal, **common)
        return where.selectbox(text, options, format_func=fmt, **common)
    if t in (int, float):
        lo = None if spec.lo is None else t(spec.lo)
        hi = None if spec.hi is None else t(spec.hi)
        step = t(spec.step) if spec.step is not None else (1 if t is int else None)
        if kind == "slider":
            return where.slider(text, lo, hi, step=step, format=spec.format, **common)
        if optional:  # value=None: empty unless session state holds a number
            common.update(value=None, placeholder=placeholder or "auto")
        return where.number_input(text, lo, hi, step=step, format=spec.format, **common)
    if t is str:
        return where.text_input(text, **common)
    raise TypeError(f"{cls.__name__}.{name}: no widget for {t!r}")
