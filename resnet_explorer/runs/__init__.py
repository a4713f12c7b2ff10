"""Training runs on disk: the run directory layout and its status, the per-device queue, the
supervisor process that runs the trainer, and what pages read (list, get, metrics, log).
Run curves for pages are in `runs.charts` (plotly, imported by full name).

Never imports torch (import-linter holds it): a queued run waits in a small process, and
reading runs costs no torch import. Imports `common` only.
"""

from .control import (RESUMABLE, RunInfo, RunMetrics, cancel_run, get_run, list_runs, log_tail,
                      read_metrics, resume_run, start_run)
from .layout import (ACTIVE, CANCELLED, COMPLETED, DIVERGED, FAILED, FINISHED, INTERRUPTED, QUEUED,
                     RUNNING, RunPaths, read_jsonl, read_status, write_status)

__all__ = [
    "RESUMABLE", "RunInfo", "RunMetrics", "cancel_run", "get_run", "list_runs", "log_tail",
    "read_metrics", "resume_run", "start_run",
    "ACTIVE", "CANCELLED", "COMPLETED", "DIVERGED", "FAILED", "FINISHED", "INTERRUPTED",
    "QUEUED", "RUNNING", "RunPaths", "read_jsonl", "read_status", "write_status",
]
