"""Classifying images with a stored or pretrained model: the `Predictor` (decode, preprocess,
batched top-k), Grad-CAM, and a CSV of results. Top-k bars are in `inference.charts`
(plotly, imported by full name).

Imports `arch`, `analysis`, `datasets`, `models` and `common`.
"""

from .gradcam import colorize, grad_cam, overlay
from .predictor import MAX_FILES, FileResult, Predictor, TopK, fold_batch_norms, results_csv

__all__ = ["colorize", "grad_cam", "overlay", "MAX_FILES", "FileResult", "Predictor", "TopK",
           "fold_batch_norms", "results_csv"]
