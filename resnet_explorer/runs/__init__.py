"""Training runs on disk: the run directory layout and its status (layout), starting,
resuming and cancelling runs (launch), the per-device queue (queue), the supervisor process
that runs the trainer (supervisor), and what pages read: list, get, metrics, log (reading).
Run curves for pages are in `runs.charts` (plotly, imported by full name).

Never imports torch (import-linter holds it): a queued run waits in a small process, and
reading runs costs no torch import. Imports `common` only.
"""

from .launch import cancel_run, delete_run, resume_run, start_run
from .layout import (ACTIVE, CANCELLED, COMPLETED, DIVERGED, FAILED, FINISHED, INTERRUPTED, QUEUED,
                     RUNNING, RunPaths, read_jsonl, read_status, write_status)
from .reading import RESUMABLE, RunInfo, RunMetrics, get_run, list_runs, log_tail, read_metrics

__all__ = [
    "RESUMABLE", "RunInfo", "RunMetrics", "cancel_run", "delete_run", "get_run", "list_runs",
    "log_tail", "read_metrics", "resume_run", "start_run",
    "ACTIVE", "CANCELLED", "COMPLETED", "DIVERGED", "FAILED", "FINISHED", "INTERRUPTED",
    "QUEUED", "RUNNING", "RunPaths", "read_jsonl", "read_status", "write_status",
]
