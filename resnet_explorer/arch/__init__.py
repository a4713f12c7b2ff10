"""The network itself: option tables, `ArchConfig` and presets, layer factories, blocks,
`build_model`, and the checks and transfers of weights against an architecture.

Modules, from the bottom: layers (shared modules, the `Layers` factory) ← blocks (residual
blocks, shortcut and stem factories) ← options (the tables) ← config ← model ← weights.

Imports only `common`: everything above (analysis, training, models, pages) builds on it.
"""

from .config import (BASELINE, MAX_BLOCKS_PER_STAGE, MAX_CLASSES, MAX_PARAMS, MAX_STAGES,
                     MAX_WIDTH, PRESETS, SIZED_BY_DATA, STAGE_FIELDS, ArchConfig, next_stage_value)
from .model import ResNet, build_model, count_parameters, meta_model
from .options import (ACTIVATIONS, BLOCKS, NORMS, SHORTCUTS, STEMS, ActivationOption, BlockOption,
                      NormOption, Option, ShortcutOption, StemOption)
from .weights import (TransferReport, check_state_dict, expected_tensors, require_layout,
                      transfer_weights)

__all__ = [
    "ACTIVATIONS", "BASELINE", "BLOCKS", "MAX_BLOCKS_PER_STAGE", "MAX_CLASSES", "MAX_PARAMS",
    "MAX_STAGES", "MAX_WIDTH", "NORMS", "PRESETS", "SHORTCUTS", "SIZED_BY_DATA", "STAGE_FIELDS",
    "STEMS", "ArchConfig", "next_stage_value", "Option", "ActivationOption", "BlockOption",
    "NormOption", "ShortcutOption", "StemOption",
    "ResNet", "build_model", "count_parameters", "meta_model",
    "TransferReport", "check_state_dict", "expected_tensors", "require_layout", "transfer_weights",
]
