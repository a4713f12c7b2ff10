"""What a configured network costs, layer by layer, without running it: the shape walk over a
meta-device build, `analyze()` with its totals, tables and text reports; the CLI is
`python -m resnet_explorer.analysis`; the measured latency of the real network, and a note
where MACs and measured speed rank networks differently (latency.py). Figures for the Summary
page are in `analysis.charts` (plotly, imported by full name).

Imports `arch` and `common` only.
"""

from .latency import (THROUGHPUT_BATCH, Latency, cached_latency, measure_latency, measured_on,
                      ranking_note)
from .report import (COLUMN_FORMATS, LayerChange, changed_blocks, changes_frame, compare_layers,
                     layer_frame, mib, other_flops_text, shape_text, si, stage_frame, text_report,
                     totals)
from .summary import (MAX_BATCH, MAX_INPUT_SIDE, MIN_INPUT_SIDE, Analysis, BlockSummary,
                      StageSummary, analyze, parse_input_size, smallest_input_side,
                      torchinfo_text)
from .walk import LayerRow

__all__ = [
    "MAX_BATCH", "MAX_INPUT_SIDE", "MIN_INPUT_SIDE",
    "Analysis", "BlockSummary", "StageSummary", "LayerRow", "analyze",
    "parse_input_size", "smallest_input_side", "torchinfo_text",
    "COLUMN_FORMATS", "LayerChange", "changed_blocks", "changes_frame", "compare_layers",
    "layer_frame", "mib", "other_flops_text", "shape_text", "si", "stage_frame", "text_report", "totals",
    "THROUGHPUT_BATCH", "Latency", "cached_latency", "measure_latency", "measured_on",
    "ranking_note",
]
