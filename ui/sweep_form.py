"""The Sweeps page's form for a new sweep: base architecture, recipe, modifications (picked
with the config widgets or typed as JSON), seeds and devices; live validation and queueing.

Widgets are generated from the config fields (ui.fields) under their own keys: the recipe
"sw_hp_<field>", a modification's changes "sw_mod_<arch|train>_<field>[_<stage>]", so the
Train and Architecture pages' values are never touched. The modifications added so far live
in session state (MODS_KEY) as the plain dicts a SPEC.json holds; SweepSpec checks the whole
sweep on every run of the page and lists every problem with its modification's name.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import fields
from typing import Any

import streamlit as st

from resnet_explorer.arch import SIZED_BY_DATA, ArchConfig
from resnet_explorer.common import UserError, data_dir, runs_dir, spec_of, weights_dir
from resnet_explorer.common.devices import device_queue, gpu_count
from resnet_explorer.common.paths import sweeps_dir
from resnet_explorer.datasets import SOURCES
from resnet_explorer.experiments.sweep import queue_sweep
from resnet_explorer.experiments.sweep_spec import (CONFIRM_ABOVE, MAX_SEEDS, SWEEP_SETS,
                                                    SweepSpec, parse_modifications)
from resnet_explorer.training import QUICK, TrainConfig
from ui import fields as gen
from ui.access import write_button
from ui.arch_form import STAGE_FIELDS
from ui.flash import flash, remember
from ui.train_form import MORE, ROWS, network, unplaced_fields

ARCH_PICK_KEY = "sw_arch"
MODS_KEY = "sw_mods"
MOD_NAME_KEY = "sw_mod_name"
MOD_FIELDS_KEY = "sw_mod_fields"
MOD_JSON_KEY = "sw_mod_json"
REMOVE_KEY = "sw_remove"
SEEDS_KEY = "sw_seeds"
GPUS_KEY = "sw_gpus"
CONFIRM_KEY = "sw_confirm"
QUEUE_KEY = "sw_queue"
LAST_QUEUED_KEY = "sw_last_queued"
SELECTED_KEY = "sw_selected"  # the sweep shown below the form (ui.sweep_view)
DOUBLE_CLICK_S = 10.0
# What a modification may change: design fields (the data sizes the output layer) and the
# recipe, except what the sweep sets per run.
CHANGEABLE = ([f"arch.{f.name}" for f in fields(ArchConfig) if f.name not in SIZED_BY_DATA]
              + [f"train.{f.name}" for f in fields(TrainConfig) if f.name not in SWEEP_SETS])


def _part(option: str) -> tuple[type, str]:
    part, name = option.split(".", 1)
    return (ArchConfig if part == "arch" else TrainConfig), name


def _label(option: str) -> str:
    cls, name = _part(option)
    return f"{'architecture' if cls is ArchConfig else 'recipe'}: {spec_of(cls, name).label}"


def _mod_key(option: str, stage: int | None = None) -> str:
    key = "sw_mod_" + option.replace(".", "_")
    return key if stage is None else f"{key}_{stage}"


# ----- base and recipe -----------------------------------------------------------------------
def base_arch() -> ArchConfig:
    return network(ARCH_PICK_KEY, "Base architecture")


def _recipe_field(name: str, where: Any = st, **options: Any) -> Any:
    return gen.widget(TrainConfig, name, f"sw_hp_{name}", default=getattr(QUICK, name),
                      where=where, **options)


def recipe() -> dict[str, Any]:
    """The recipe widgets (Train page layout, own keys); their values as a "train" dict."""
    values = {"dataset": _recipe_field("dataset")}
    if SOURCES[values["dataset"]].needs_path:
        values["data_path"] = _recipe_field("data_path")
    for row in ROWS:
        for col, name in zip(st.columns(4), row):
            label = "First seed" if name == "seed" else None
            values[name] = _recipe_field(name, where=col, label=label)
    with st.expander("More: step schedule, validation split, limits"):
        more = [*MORE, *unplaced_fields()]  # as on the Train page: every field has a widget
        for start in range(0, len(more), 4):
            for col, name in zip(st.columns(4), more[start:start + 4]):
                values[name] = _recipe_field(name, where=col)
    return values


# ----- modifications -------------------------------------------------------------------------
def modifications(base: ArchConfig, train: dict[str, Any]) -> list[dict[str, Any]]:
    """The modification editor; the modifications added so far."""
    mods: list[dict[str, Any]] = st.session_state.setdefault(MODS_KEY, [])
    with_widgets, with_json = st.tabs(["Add with widgets", "Add as JSON"])
    with with_widgets:
        st.text_input("Name", key=MOD_NAME_KEY, placeholder="e.g. silu (empty: named after the "
                      "changes)")
        picked = st.multiselect("Fields to change", CHANGEABLE, key=MOD_FIELDS_KEY,
                                format_func=_label)
        for option in picked:
            _change_widget(option, base, train)
        st.button("Add modification", on_click=_add_from_widgets, args=(base.num_stages,),
                  disabled=not picked)
        st.caption("Each field starts at the base's value. Changing the number of stages "
                   "needs JSON (blocks, widths and depthwise together).")
    with with_json:
        st.text_area("One modification, a list of them, or a whole sweep spec", key=MOD_JSON_KEY,
                     height=120, placeholder='[{"name": "silu", "arch": {"activation": "silu"}}, '
                     '{"name": "no warm-up", "train": {"warmup_epochs": 0}}]')
        st.button("Add from JSON", on_click=_add_from_json)
    if mods:
        st.dataframe([{"name": m.get("name"), "architecture changes": _text(m.get("arch")),
                       "recipe changes": _text(m.get("train"))} for m in mods], hide_index=True)
        names = [str(m.get("name")) for m in mods]
        cols = st.columns([3, 1, 1], vertical_alignment="bottom")
        cols[0].multiselect("Remove", names, key=REMOVE_KEY)
        cols[1].button("Remove selected", on_click=_remove)
        cols[2].button("Remove all", on_click=_remove, args=(True,))
    return mods


def _text(changes: Any) -> str:
    return json.dumps(changes) if changes else ""


def _change_widget(option: str, base: ArchConfig, train: dict[str, Any]) -> None:
    cls, name = _part(option)
    current = getattr(base, name) if cls is ArchConfig else train.get(name, getattr(QUICK, name))
    if name in STAGE_FIELDS:
        cols = st.columns(len(current))
        for i, (col, value) in enumerate(zip(cols, current)):
            gen.widget(cls, name, _mod_key(option, i), default=value, where=col,
                       label=f"{spec_of(cls, name).label}, stage {i + 1}")
    else:
        gen.widget(cls, name, _mod_key(option), default=current, label=_label(option))


def _add_from_widgets(stages: int) -> None:
    arch: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for option in st.session_state.get(MOD_FIELDS_KEY, []):
        cls, name = _part(option)
        if name in STAGE_FIELDS:
            value: Any = [st.session_state.get(_mod_key(option, i)) for i in range(stages)]
        else:
            value = st.session_state.get(_mod_key(option))
        (arch if cls is ArchConfig else train)[name] = value
    described = ", ".join(f"{k}={v}" for k, v in {**arch, **train}.items())
    name = st.session_state.get(MOD_NAME_KEY, "").strip() or described[:60]
    st.session_state[MODS_KEY].append({"name": name, "arch": arch, "train": train})
    st.session_state[MOD_NAME_KEY] = ""
    st.session_state[MOD_FIELDS_KEY] = []
    remember("success", f"Added modification {name!r}.")


def _add_from_json() -> None:
    try:
        items = parse_modifications(st.session_state.get(MOD_JSON_KEY, ""))
    except UserError as exc:
        remember("error", f"The JSON was not added: {exc}")
        return
    st.session_state[MODS_KEY].extend(items)
    st.session_state[MOD_JSON_KEY] = ""
    remember("success", f"Added {len(items)} modification(s).")


def _remove(everything: bool = False) -> None:
    gone = set(st.session_state.get(REMOVE_KEY, []))
    st.session_state[MODS_KEY] = [] if everything else [
        m for m in st.session_state[MODS_KEY] if str(m.get("name")) not in gone]
    st.session_state[REMOVE_KEY] = []


# ----- the whole sweep -----------------------------------------------------------------------
def devices(train: dict[str, Any]) -> list[str] | None:
    """GPUs to spread over (one queue each), when there are several; None: the recipe's."""
    gpus = gpu_count()
    if gpus < 2:
        return None
    picked = st.multiselect("Spread over GPUs (round-robin, one queue each)",
                            [f"cuda:{i}" for i in range(gpus)], key=GPUS_KEY,
                            help=f"none: every run on the recipe's device ({train['device']})")
    return picked or None


def check(spec_data: dict[str, Any], chosen: list[str] | None) -> tuple[SweepSpec | None,
                                                                          list[str]]:
    """The sweep, or every problem that keeps it from being queued."""
    problems: list[str] = []
    try:
        spec: SweepSpec | None = SweepSpec.from_dict(spec_data)
    except UserError as exc:
        spec, problems = None, list(exc.problems)
    for device in chosen or [spec_data["train"].get("device", "auto")]:
        try:
            device_queue(device)
        except UserError as exc:
            problems += exc.problems
    return spec, problems


def seeds() -> int:
    return int(st.number_input("Seeds per configuration", 1, MAX_SEEDS, 3, key=SEEDS_KEY,
                               help="runs of one configuration differ only in their seed: the "
                                    "first seed, +1, +2, …"))


def queue_controls(spec: SweepSpec | None, problems: list[str],
                   chosen: list[str] | None) -> None:
    """Problems, the size of the sweep, its confirmation above CONFIRM_ABOVE runs, the button."""
    if problems:
        st.error("Fix these to queue the sweep:\n\n" + "\n".join(f"- {p}" for p in problems))
    confirmed = True
    if spec is not None:
        st.markdown(f"**{len(spec.variants)} configuration(s)** (the baseline included) × "
                    f"**{spec.seeds} seeds** = **{spec.n_runs} runs**")
        if spec.n_runs > CONFIRM_ABOVE:
            confirmed = st.checkbox(f"Yes, queue all {spec.n_runs} runs (more than "
                                    f"{CONFIRM_ABOVE})", key=CONFIRM_KEY)
    n = spec.n_runs if spec is not None else 0
    if write_button(f"Queue {n} runs" if n else "Queue the sweep", type="primary", key=QUEUE_KEY,
                    disabled=spec is None or bool(problems) or not confirmed) and spec is not None:
        _queue(spec, chosen, confirmed)


def _queue(spec: SweepSpec, chosen: list[str] | None, confirmed: bool) -> None:
    digest = hashlib.sha256(json.dumps([spec.to_dict(), chosen]).encode()).hexdigest()
    last = st.session_state.get(LAST_QUEUED_KEY)
    if last and last[0] == digest and time.monotonic() - last[1] < DOUBLE_CLICK_S:
        return  # a double click: the first click queued this sweep a moment ago
    try:
        with st.spinner(f"Queueing {spec.n_runs} runs…"):
            record = queue_sweep(spec, devices=chosen, confirmed=confirmed, runs_dir=runs_dir(),
                                 sweeps_dir=sweeps_dir(), weights_dir=weights_dir(),
                                 data_dir=data_dir())
    except (UserError, OSError) as exc:  # OSError: a full or read-only disk, mid-way too
        st.error(f"Cannot queue: {exc}")
        return
    st.session_state[LAST_QUEUED_KEY] = (digest, time.monotonic())
    st.session_state[SELECTED_KEY] = record.sweep_id
    flash("success", f"Queued sweep {record.sweep_id}: {len(record.slots)} runs.")
