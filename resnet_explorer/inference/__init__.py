"""Classifying images with a stored or pretrained model: the `Predictor` (decode, preprocess,
batched top-k on ONNX Runtime where installed, else PyTorch), Grad-CAM on any stage, what a
model expects to be shown (`expects`), a CSV of results, and the ONNX export of any model or
architecture. Top-k bars are in `inference.charts` (plotly, imported by full name);
`python -m resnet_explorer.export` is the export CLI.

Imports `arch`, `analysis`, `datasets`, `models` and `common`.
"""

from .export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, export_onnx, untrained_card
from .expects import InputGuide, input_guide, looks_inverted, training_samples
from .gradcam import coarse_stages, colorize, grad_cam, overlay
from .onnx_engine import ENGINES, load_onnxruntime, prune_onnx_cache
from .predictor import MAX_FILES, FileResult, Predictor, TopK, fold_batch_norms, results_csv

__all__ = ["InputGuide", "input_guide", "looks_inverted", "training_samples", "coarse_stages",
           "colorize", "grad_cam", "overlay", "MAX_FILES", "FileResult", "Predictor", "TopK",
           "fold_batch_norms", "results_csv", "DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET",
           "export_onnx", "untrained_card", "ENGINES", "load_onnxruntime", "prune_onnx_cache"]
