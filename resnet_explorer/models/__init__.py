"""Trained models kept for later: the store (`<name>.safetensors` + `<name>.json` sidecar in
weights/, listing, sorting, deleting, disk used), the model card read from a sidecar and
rendered as Markdown, the bytes behind the download buttons, safe imports of uploaded files,
and torchvision's ImageNet weights (found, downloaded, transferred into any variant).

Imports `arch`, `datasets` (preprocessing), `runs` (a run's files for downloads) and `common`.
"""

from .card import (BEST, FORMAT, LAST, MODEL_SOURCES, ModelCard, check_model_name, render_card,
                   size_text)
from .downloads import (METRIC_COLUMNS, RUN_CONFIGS, ModelFiles, metrics_csv, model_file_bytes,
                        model_zip, run_config_bytes, run_files)
from .importing import (MAX_MODEL_BYTES, ImportedModel, import_imagenet_transfer, import_model,
                        prepare_import)
from .pretrained import (RESNET34_IMAGENET, DownloadFailed, PretrainedSpec,
                         checkpoint_fingerprint, download_checkpoint, imagenet_model,
                         imagenet_sidecar, install_checkpoint, where_to_put)
from .store import (MODEL_SORTS, ModelInfo, card_markdown, delete_model, delete_models, disk_used,
                    folder_usage, list_models, load_model, model_files, read_model_card,
                    read_sidecar, rename_model, save_model, sort_models, update_metrics,
                    weights_sha256)

__all__ = [
    "BEST", "FORMAT", "LAST", "MODEL_SOURCES", "ModelCard", "check_model_name", "render_card",
    "size_text",
    "METRIC_COLUMNS", "RUN_CONFIGS", "ModelFiles", "metrics_csv", "model_file_bytes", "model_zip",
    "run_config_bytes", "run_files",
    "MAX_MODEL_BYTES", "ImportedModel", "import_imagenet_transfer", "import_model",
    "prepare_import",
    "RESNET34_IMAGENET", "DownloadFailed", "PretrainedSpec", "checkpoint_fingerprint",
    "download_checkpoint", "imagenet_model", "imagenet_sidecar", "install_checkpoint",
    "where_to_put",
    "MODEL_SORTS", "ModelInfo", "card_markdown", "delete_model", "delete_models", "disk_used",
    "folder_usage", "list_models", "load_model", "model_files", "read_model_card", "read_sidecar",
    "rename_model", "save_model", "sort_models", "update_metrics", "weights_sha256",
]
