"""Training one model: `TrainConfig` (the recipe), the loop (`Trainer`), torch.distributed
glue, and the run job that ties a run directory to both (`run_training`; the CLI is
`python -m resnet_explorer.train`, also under torchrun).

Imports `arch`, `datasets`, `models`, `runs` (the run directory layout) and `common`.
"""

from .config import CHANNELS_LAST, OPTIMIZERS, PRECISIONS, QUICK, SCHEDULES, TrainConfig
from .dist import Dist
from .job import run_training
from .loop import Cancelled, Diverged, FitResult, Trainer, autocast_dtype, use_channels_last
from .recorder import RunRecorder, model_names

__all__ = [
    "CHANNELS_LAST", "OPTIMIZERS", "PRECISIONS", "QUICK", "SCHEDULES", "TrainConfig", "Dist",
    "RunRecorder", "model_names", "run_training",
    "Cancelled", "Diverged", "FitResult", "Trainer", "autocast_dtype", "use_channels_last",
]
