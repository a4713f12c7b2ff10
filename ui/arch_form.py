"""Glue between the Architecture page's widgets and ArchConfig.

Every widget is generated from its ArchConfig field (ui.fields): label, help, bounds and the
option tables' labels come from the config's declaration. Widgets are keyed "aw_<field>"
(per-stage ones "aw_<field>_<i>") and always rendered, so Streamlit never drops their state;
presets and imports write into these keys from callbacks, the only place Streamlit allows
changing a widget's value. A field some option entry reads (`Option.uses`: the leaky slope,
the GroupNorm groups) is enabled only while the chosen entry reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import streamlit as st

from resnet_explorer.arch import (MAX_STAGES, PRESETS, STAGE_FIELDS, ArchConfig,
                                   next_stage_value)
from resnet_explorer.common import UserError, spec_of
from ui import fields as gen
from ui.flash import remember

SCALAR_FIELDS = tuple(f.name for f in fields(ArchConfig) if f.name not in STAGE_FIELDS)
STAGES_KEY = "aw_stages"
PRESET_KEY = "arch_preset"
UPLOAD_KEY = "arch_upload"
PASTE_KEY = "arch_paste"


def key(field: str, stage: int | None = None) -> str:
    return f"aw_{field}" if stage is None else f"aw_{field}_{stage}"


def _choosers() -> dict[str, list[str]]:
    """For each field an option entry may read, the choice fields whose entries can read it
    (read live from the tables, so an entry added at run time counts at once)."""
    out: dict[str, list[str]] = {}
    for f in fields(ArchConfig):
        choices = spec_of(ArchConfig, f.name).choices
        if isinstance(choices, Mapping):
            for entry in choices.values():
                for used in getattr(entry, "uses", ()):
                    if f.name not in out.setdefault(used, []):
                        out[used].append(f.name)
    return out


def enabled(field: str) -> bool:
    """False for a field no chosen option reads (the slope while the activation is ReLU)."""
    choosers = _choosers().get(field)
    if not choosers:
        return True
    for chooser in choosers:
        table = spec_of(ArchConfig, chooser).choices
        entry = table.get(st.session_state.get(key(chooser)))
        if field in getattr(entry, "uses", ()):
            return True
    return False


def widget(field: str, where: Any = st, **options: Any) -> Any:
    return gen.widget(ArchConfig, field, key(field), where=where,
                      disabled=not enabled(field), **options)


def stage_widgets(i: int) -> None:
    """Blocks, width and depthwise for stage i (0-based) in one row."""
    ensure_stage(i)
    cols = st.columns(3, vertical_alignment="bottom")
    for col, field in zip(cols, STAGE_FIELDS):
        label = spec_of(ArchConfig, field).label
        if field != "depthwise":
            label = f"Stage {i + 1} {label.lower()}"
        gen.widget(ArchConfig, field, key(field, i), where=col, label=label)


def stages_widget() -> int:
    return int(st.number_input("Stages", 1, MAX_STAGES, key=STAGES_KEY))


def load(cfg: ArchConfig) -> None:
    """Put every value of `cfg` into the widgets (call before they render, or from a callback)."""
    for name in SCALAR_FIELDS:
        st.session_state[key(name)] = getattr(cfg, name)
    st.session_state[STAGES_KEY] = cfg.num_stages
    for name in STAGE_FIELDS:
        for i, value in enumerate(getattr(cfg, name)):
            st.session_state[key(name, i)] = value


def init(cfg: ArchConfig) -> None:
    if STAGES_KEY not in st.session_state:
        load(cfg)


def ensure_stage(i: int) -> None:
    """A stage added with the stage counter grows from the previous one (stage 1 is always
    there: init loads a whole config)."""
    for name in STAGE_FIELDS:
        if key(name, i) not in st.session_state:
            st.session_state[key(name, i)] = next_stage_value(
                name, st.session_state[key(name, i - 1)])


def read() -> tuple[ArchConfig | None, list[str]]:
    """The config the widgets describe, or the problems that stop it from being one (also
    before the widgets are drawn: a stage the counter just added is made here)."""
    data: dict[str, Any] = {name: st.session_state[key(name)] for name in SCALAR_FIELDS}
    n = st.session_state[STAGES_KEY]
    for i in range(n):
        ensure_stage(i)
    for name in STAGE_FIELDS:
        data[name] = [st.session_state[key(name, i)] for i in range(n)]
    try:
        return ArchConfig.from_dict(data), []
    except UserError as exc:
        return None, exc.problems


def sync_preset() -> None:
    """Show in the preset box the preset the widgets describe, or none (the placeholder) for
    any other config; call before the box is drawn. A reset or an edit then never leaves the
    previous preset's name standing, and picking that preset again reloads it."""
    cfg, _ = read()
    st.session_state[PRESET_KEY] = next((name for name, p in PRESETS.items() if p == cfg), None)


# ----- callbacks ---------------------------------------------------------------------------
def apply_preset() -> None:
    name = st.session_state.get(PRESET_KEY)
    if name in PRESETS:
        load(PRESETS[name])


def import_json(raw: bytes | str, source: str) -> None:
    """Load a config from an uploaded or pasted JSON document; the message says what happened."""
    try:
        cfg = ArchConfig.from_json(raw)
    except UserError as exc:
        remember("error", f"{source} was not loaded: {exc}")
        return
    load(cfg)
    remember("success", f"Loaded the architecture from {source}.")


def on_upload() -> None:
    uploaded = st.session_state.get(UPLOAD_KEY)
    if uploaded is not None:
        import_json(uploaded.getvalue(), f"“{uploaded.name}”")


def on_paste() -> None:
    import_json(st.session_state.get(PASTE_KEY, ""), "the pasted JSON")
