"""`python -m resnet_explorer.sweep`: an ablation sweep from the command line.

    python -m resnet_explorer.sweep SPEC.json [--device cpu|cuda|cuda:1|cuda:0,cuda:1]
                                    [--print-commands] [--yes] [--no-wait]
    python -m resnet_explorer.sweep --resume SWEEP_ID | --cancel SWEEP_ID | --summary SWEEP_ID

SPEC.json: {"base_arch": {ArchConfig fields}, "train": {TrainConfig fields},
"modifications": [{"name": "silu", "arch": {"activation": "silu"}, "train": {}}, ...],
"seeds": 3}. The baseline (the base unchanged) always runs; runs differ by seed only.

The runs go into the run store the dashboard reads (RESNET_EXPLORER_HOME), so they show on
the Compare and Sweeps pages while they train. The command waits, printing progress, then
writes sweeps/<id>/summary.csv and prints the table. Ctrl-C while waiting CANCELS the sweep's
queued and running runs (resume them with --resume SWEEP_ID); with --no-wait the runs keep
going in the background and the command returns at once.

--print-commands prepares the runs (state "prepared": the dashboard lists them, nothing
starts them here) and prints one trainer command per run on stdout, for a cluster
scheduler such as a SLURM array sharing RESNET_EXPLORER_HOME (run them from the checkout):
    sed -n "${SLURM_ARRAY_TASK_ID}p" commands.txt | bash
Then `--summary SWEEP_ID` writes the table once they are done.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..common.errors import UserError
from ..common.paths import REPO_ROOT, home_dir
from ..common.schema import parse_json_object
from . import stats
from .sweep import (SweepRecord, cancel_sweep, progress, queue_sweep, read_sweep, resume_sweep,
                    sweep_runs, sweep_summary, trainer_commands, write_summary)
from .sweep_spec import CONFIRM_ABOVE, SweepSpec, SweepTooLarge

__all__ = ["main"]

POLL_S = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resnet_explorer.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", type=Path, help="the sweep spec (JSON)")
    parser.add_argument("--device", default=None,
                        help="device of every run (cpu, cuda, cuda:1, auto); a comma list "
                             "(cuda:0,cuda:1) spreads the runs round-robin, one queue per GPU; "
                             "default: the spec's train.device")
    parser.add_argument("--print-commands", action="store_true",
                        help="prepare the runs and print one trainer command per run instead")
    parser.add_argument("--yes", action="store_true",
                        help=f"confirm a sweep of more than {CONFIRM_ABOVE} runs")
    parser.add_argument("--no-wait", action="store_true",
                        help="queue and return; the runs go on in the background")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", metavar="SWEEP_ID",
                       help="resume a sweep's interrupted, cancelled and failed runs and wait")
    group.add_argument("--cancel", metavar="SWEEP_ID", help="cancel a sweep's runs")
    group.add_argument("--summary", metavar="SWEEP_ID",
                       help="write and print a sweep's summary as it is now")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    existing = args.resume or args.cancel or args.summary
    if bool(existing) == (args.spec is not None):
        parser.error("give a SPEC.json, or one of --resume/--cancel/--summary with a sweep id")
    try:
        if args.cancel:
            print(cancel_sweep(read_sweep(args.cancel)))
            return 0
        if args.summary:
            return _report(read_sweep(args.summary))
        if args.resume:
            record, message = resume_sweep(read_sweep(args.resume))
            print(message)
        else:
            queued: list[SweepRecord] = []
            try:
                record = _start(args, queued.append)
            except KeyboardInterrupt:  # while queueing: take back what was queued so far
                if queued:
                    print(f"\ninterrupted while queueing: {cancel_sweep(queued[-1])}")
                return 130
            if record is None:
                return 0
        return 0 if args.no_wait else _wait_and_report(record)
    except SweepTooLarge as exc:
        print(f"error: {exc}: pass --yes to queue it", file=sys.stderr)
        return 2
    except (OSError, UserError) as exc:
        problems = getattr(exc, "problems", [str(exc)])
        text = problems[0] if len(problems) == 1 else "".join(f"\n  - {p}" for p in problems)
        print(f"error: {text}", file=sys.stderr)
        return 2


def _start(args: argparse.Namespace,
           on_queued: Callable[[SweepRecord], None]) -> SweepRecord | None:
    spec = SweepSpec.from_dict(parse_json_object(args.spec.read_bytes()))
    devices = [d.strip() for d in args.device.split(",")] if args.device else None
    record = queue_sweep(spec, devices=devices, confirmed=args.yes, external=args.print_commands,
                         on_queued=on_queued)
    if args.print_commands:
        for line in trainer_commands(record):
            print(line)
        print(f"sweep {record.sweep_id}: {len(record.slots)} runs prepared; run the commands "
              f"above from {REPO_ROOT} with RESNET_EXPLORER_HOME={home_dir()}, then "
              f"`python -m resnet_explorer.sweep --summary {record.sweep_id}`", file=sys.stderr)
        return None
    print(f"sweep {record.sweep_id}: {len(record.slots)} runs queued "
          f"({len(spec.variants)} configurations × {spec.seeds} seeds)", flush=True)
    return record


def _wait_and_report(record: SweepRecord) -> int:
    try:
        _wait(record)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {cancel_sweep(read_sweep(record.sweep_id))}; resume with "
              f"`python -m resnet_explorer.sweep --resume {record.sweep_id}`", flush=True)
        return 130
    return _report(record)


def _wait(record: SweepRecord) -> None:
    last = ""
    while True:
        record = read_sweep(record.sweep_id)  # resumed elsewhere: runs queued again get new ids
        runs = sweep_runs(record)
        counts = progress(runs)
        line = " · ".join(f"{n} {state}" for state, n in counts.items())
        if line != last:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            last = line
        if not any(r.info is not None and r.info.active for r in runs):
            return
        time.sleep(POLL_S)


def _report(record: SweepRecord) -> int:
    record = read_sweep(record.sweep_id)
    summary = sweep_summary(record)
    path = write_summary(record, summary)
    print(stats.format_table(summary).to_string(index=False))
    print(stats.NOISE_NOTE)
    print(f"summary: {path}")
    complete = all(r.state == "completed" for r in sweep_runs(record))
    return 0 if complete else 1
