"""Experiments over many runs: the comparison table of runs and stored models (table), and
ablation sweeps (sweep): modifications × seeds queued as ordinary runs, then summarised with
Welch's t-test against the baseline. What the Compare page does to selected rows (actions):
delete runs with their models, measure latency. Charts for pages are in `experiments.charts`
(plotly, imported by full name).

The top room: imports training (TrainConfig), models, analysis, runs, arch and common.
"""

from .actions import delete_rows, delete_runs, latency_device, measure_rows
from .chart_data import legend_names, pareto_front, shared_parts
from .table import (MODEL_KEY_PREFIX, CompareRow, CompareTable, build_table, diff_fields,
                    store_signature, table_csv, with_live_states)
from .stats import NOISE_NOTE, SUMMARY_COLUMNS, format_table, summarize, welch
from .sweep import (SweepRecord, cancel_sweep, list_sweeps, queue_sweep, read_sweep,
                    resume_sweep, sweep_runs, sweep_summary, trainer_commands, write_summary)
from .sweep_spec import CONFIRM_ABOVE, SweepSpec, SweepTooLarge

__all__ = [
    "delete_rows", "delete_runs", "latency_device", "measure_rows",
    "MODEL_KEY_PREFIX", "CompareRow", "CompareTable", "build_table", "diff_fields",
    "legend_names", "pareto_front", "shared_parts", "store_signature", "table_csv",
    "with_live_states",
    "NOISE_NOTE", "SUMMARY_COLUMNS", "format_table", "summarize", "welch",
    "SweepRecord", "cancel_sweep", "list_sweeps", "queue_sweep", "read_sweep", "resume_sweep",
    "sweep_runs", "sweep_summary", "trainer_commands", "write_summary",
    "CONFIRM_ABOVE", "SweepSpec", "SweepTooLarge",
]
