"""The GPU check's table: OUT_DIR/gpu_bench.md from the rows bench/gpu_bench.py measured,
with each issue-13 target marked met or missed. Nothing here measures anything."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

REPORT = "gpu_bench.md"
# Targets on the H200 (issue 13): ResNet34 training is about 22 GFLOP per image at 224 px, so
# 6,000 img/s is about 17 % of its ~790 TFLOP/s of dense bf16.
TARGETS = {"train_images_per_s": 6000, "trainer_vs_bare": 0.97, "inference_images_per_s": 20000}
# The training rows, in the table's order: name -> TrainConfig changes.
TRAIN_SETTINGS = {
    "fp32": {"precision": "fp32", "channels_last": "off", "compile": "off"},
    "bf16": {"precision": "bf16", "channels_last": "off", "compile": "off"},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": "on", "compile": "off"},
    "bf16 + channels_last + compile": {"precision": "bf16", "channels_last": "on",
                                       "compile": "on"},
}


def _f(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _phases(path: Path | None) -> list[list[str]]:
    if path is None or not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()]


def break_even_steps(eager: dict[str, Any], compiled: dict[str, Any]) -> float | None:
    """Steps after which compiling has paid for its warm-up (None: it never does)."""
    extra = compiled["warmup_s"] - eager["warmup_s"]
    saved = 1 / eager["trainer_images_per_s"] - 1 / compiled["trainer_images_per_s"]
    if saved <= 0:
        return None
    return max(extra, 0.0) / saved / compiled["batch"]


def training_section(rows: list[dict[str, Any]]) -> list[str]:
    order = list(TRAIN_SETTINGS)
    train = sorted((r for r in rows if r["kind"] == "train"),
                   key=lambda r: order.index(r["setting"]) if r["setting"] in order else 99)
    if not train:
        return ["## Training throughput", "", "Not measured (see the phases below).", ""]
    first = train[0]
    lines = [f"## Training throughput: ResNet34, {first['size']} px, batch {first['batch']}, "
             "synthetic data on the device", "",
             "| setting | trainer img/s | bare loop img/s | trainer / bare | warm-up s | rounds |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in train:
        lines.append(f"| {r['setting']} | {_f(r['trainer_images_per_s'])} | "
                     f"{_f(r['bare_images_per_s'])} | {r['ratio']:.3f} | {_f(r['warmup_s'], 1)} | "
                     f"{r['rounds']} × {r['steps']} steps |")
    best = max(train, key=lambda r: r["trainer_images_per_s"])
    target, ratio = TARGETS["train_images_per_s"], TARGETS["trainer_vs_bare"]
    worst = min(train, key=lambda r: r["ratio"])
    lines += ["", f"* Target ≥ {target:,} img/s: {_mark(best['trainer_images_per_s'] >= target)} "
              f"(best {_f(best['trainer_images_per_s'])} img/s, {best['setting']}).",
              f"* Target trainer ≥ {ratio} × bare loop: {_mark(worst['ratio'] >= ratio)} "
              f"(lowest {worst['ratio']:.3f}, {worst['setting']})."]
    by_name = {r["setting"]: r for r in train}
    eager, compiled = by_name.get("bf16 + channels_last"), by_name.get(
        "bf16 + channels_last + compile")
    if eager and compiled:
        steps = break_even_steps(eager, compiled)
        gain = compiled["trainer_images_per_s"] / eager["trainer_images_per_s"]
        lines.append(f"* torch.compile: {gain:.2f}× the eager speed; "
                     + (f"its warm-up is paid back after ≈ {steps:,.0f} steps."
                        if steps is not None else "it never pays back its warm-up here."))
    notes = [n for r in train for n in r.get("notes", [])]
    lines += [f"* {n}" for n in notes]
    return lines + [""]


def inference_section(rows: list[dict[str, Any]]) -> list[str]:
    rows = [r for r in rows if r["kind"] == "inference"]
    if not rows:
        return []
    lines = [f"## Inference: ResNet34, {rows[0]['size']} px, batch {rows[0]['batch']}", "",
             "| setting | img/s | warm-up s |", "|---|---:|---:|"]
    lines += [f"| {r['setting']} | {_f(r['images_per_s'])} | {_f(r['warmup_s'], 1)} |"
              for r in rows]
    eager = next((r for r in rows if r["setting"] == "bf16 + channels_last"), None)
    target = TARGETS["inference_images_per_s"]
    if eager:
        best = max(rows, key=lambda r: r["images_per_s"])
        lines += ["", f"* Target ≥ {target:,} img/s with bf16 + channels_last: "
                  f"{_mark(eager['images_per_s'] >= target)} (eager {_f(eager['images_per_s'])};"
                  f" best {_f(best['images_per_s'])}, {best['setting']})."]
    return lines + [""]


def profile_section(rows: list[dict[str, Any]]) -> list[str]:
    r = next((r for r in rows if r["kind"] == "profile"), None)
    if r is None:
        return []
    lines = [f"## Profile: one trainer epoch, {r['setting']}, {r['size']} px, batch {r['batch']},"
             f" {r['steps']} steps", "",
             f"{r['wall_s']:.2f} s wall; the {r['measured']} was busy "
             f"{r['busy_fraction']:.0%} of it (the rest: host overhead and waiting).", "",
             f"| operator | {r['measured']} s | share of busy time | calls |",
             "|---|---:|---:|---:|"]
    busy = r["busy_fraction"] * r["wall_s"]
    lines += [f"| `{name[:60]}` | {seconds:.3f} | {seconds / busy:.0%} | {count} |"
              for name, seconds, count in r["top"]]
    return lines + [""]


def latest(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The last row of each setting of `kind`, in first-seen order (a run writes a
    placeholder row when it starts and its result when it ends)."""
    by_setting: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["kind"] == kind:
            by_setting[r.get("setting", "")] = r
    return list(by_setting.values())


def _run_line(what: str, r: dict[str, Any], length: str, result: str) -> str:
    if r["state"] != "completed" and "wall_s" not in r:
        return f"| {what}, {r['setting']} | {length} | – | – | {r['state']} |"
    return (f"| {what}, {r['setting']} | {length} | {_f(r['wall_s'], 1)} | "
            f"{_f(r.get('last_epoch_images_per_s'))} | {result} |")


def runs_section(rows: list[dict[str, Any]]) -> list[str]:
    recipes, cifars = latest(rows, "recipe"), latest(rows, "cifar")
    if not recipes and not cifars:
        return []
    lines = ["## Short runs: bf16 + channels_last (auto), compile off and auto", "",
             "| run | length | wall s | img/s (last epoch) | result |", "|---|---:|---:|---:|---|"]
    for r in recipes:
        acc = r.get("best_val_acc")
        hit = (f"≥ 97 % after epoch {r['epoch_97']} ({_f(r['train_s_97'], 1)} s of training)"
               if r.get("epoch_97") else "never ≥ 97 %")
        result = (f"{r['state']}, best val acc {_f(acc * 100 if acc is not None else None, 1)} "
                  f"%, {hit}")
        lines.append(_run_line(f"quick recipe: ResNet34, digits {r['size']} px, batch "
                               f"{r['batch']}", r, f"{r['epochs']} epochs", result))
    for r in cifars:
        epochs = ", ".join(f"{s:.1f}" for s in r.get("epoch_s", []))
        lines.append(_run_line(f"CIFAR-sized synthetic: resnet34-cifar, {r['size']} px, batch "
                               f"{r['batch']}", r, f"{r.get('steps', '–')} steps",
                               f"epochs took {epochs} s"))
    notes = [n for r in recipes for n in r.get("compile_lines", [])]
    notes += [n for r in cifars for n in r.get("notes", [])]
    return lines + [""] + [f"* {n}" for n in notes] + [""]


def write_report(out: Path, rows: list[dict[str, Any]], phases: Path | None = None) -> Path:
    info = next((r for r in rows if r["kind"] == "info"), {})
    if not info:
        where = "machine unknown (the info phase recorded nothing)"
    elif info.get("gpu"):
        where = (f"{info['gpu']}, torch {info.get('torch')} (CUDA {info.get('cuda')}, cuDNN "
                 f"{info.get('cudnn')})")
    else:
        where = f"CPU, torch {info.get('torch')}"
    lines = [f"# GPU check: {where}", "",
             f"`bash bench/gpu.sh` on {time.strftime('%Y-%m-%d')}."]
    if info.get("smoke"):
        lines.append("**Smoke mode: tiny sizes on the CPU. A check of the script, not a "
                     "measurement.**")
    lines.append("")
    lines += (training_section(rows) + inference_section(rows) + profile_section(rows)
              + runs_section(rows))
    tests = next(iter(latest(rows, "tests")), None)
    if tests:
        lines += ["## Tests", "", f"`pytest -m gpu -x` on {', '.join(tests['files'])}: "
                  f"{tests['summary']} (exit {tests['rc']}).", ""]
    errors = [r for r in rows if r["kind"] == "error"]
    lines += [f"* phase {r['phase']} failed: {r['error']}" for r in errors]
    table = _phases(phases)
    if table:
        lines += ["", "## Phases", "", "| phase | exit | s | limit s |", "|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in table]
        total = sum(float(cells[2]) for cells in table if len(cells) > 2)
        stopped = [cells[0] for cells in table if cells[1] in ("124", "137")]
        lines += ["", f"Total {total:.0f} s."
                  + (f" Stopped at their time limits: {', '.join(stopped)}." if stopped else "")]
    path = out / REPORT
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
