"""Trained models kept for later: the store (`<name>.safetensors` + `<name>.json` sidecar in
weights/), the model card read from a sidecar, safe imports of uploaded files, and
torchvision's ImageNet weights (found, downloaded, transferred into any variant).

Imports `arch`, `datasets` (preprocessing) and `common`.
"""

from .card import FORMAT, MODEL_SOURCES, ModelCard, check_model_name
from .importing import (MAX_MODEL_BYTES, ImportedModel, import_imagenet_transfer, import_model,
                        prepare_import)
from .pretrained import (RESNET34_IMAGENET, PretrainedSpec, checkpoint_fingerprint,
                         download_checkpoint, imagenet_model, imagenet_sidecar, where_to_put)
from .store import (ModelInfo, delete_model, list_models, load_model, read_model_card, read_sidecar,
                    rename_model, save_model)

__all__ = [
    "FORMAT", "MODEL_SOURCES", "ModelCard", "check_model_name",
    "MAX_MODEL_BYTES", "ImportedModel", "import_imagenet_transfer", "import_model",
    "prepare_import",
    "RESNET34_IMAGENET", "PretrainedSpec", "checkpoint_fingerprint", "download_checkpoint",
    "imagenet_model", "imagenet_sidecar", "where_to_put",
    "ModelInfo", "delete_model", "list_models", "load_model", "read_model_card", "read_sidecar",
    "rename_model", "save_model",
]
