"""Small things every room needs: the user-facing errors, upload limits, where files live,
atomic writes, config field specs, the config base class and strict parsing; the demo-mode
rules (`common.access`). Imports no other room.

All of it is torch-free, so runs/ and its supervisor processes stay small; the one module
that needs torch, `common.devices`, is not re-exported here: import it by its full name.
"""

from .errors import (AccessDenied, ConfigError, DataError, ImageRejected, ImportRefused,
                     InputSizeError, ModelError, PretrainedUnavailable, RunError, UploadTooLarge,
                     UserError, WeightsMismatch)
from .fileio import (TMP_SUFFIX, append_line, atomic_write_bytes, atomic_write_json,
                     atomic_write_text)
from .limits import (CONFIG_UPLOAD, DATASET_ZIP_UPLOAD, IMAGE_UPLOAD, MODEL_UPLOAD,
                     SERVER_MAX_UPLOAD_MB, UPLOAD_LIMITS, UploadLimit)
from .paths import HOME_ENV, REPO_ROOT, data_dir, home_dir, runs_dir, weights_dir
from .schema import (MAX_CONFIG_BYTES, ConfigBase, Spec, check_settings, field_types,
                     parse_json_object, setting, spec_of)

__all__ = [
    "ConfigError", "DataError", "ImageRejected", "ImportRefused", "InputSizeError", "ModelError",
    "PretrainedUnavailable", "RunError", "UserError", "WeightsMismatch", "AccessDenied",
    "UploadTooLarge",
    "CONFIG_UPLOAD", "DATASET_ZIP_UPLOAD", "IMAGE_UPLOAD", "MODEL_UPLOAD", "SERVER_MAX_UPLOAD_MB",
    "UPLOAD_LIMITS", "UploadLimit",
    "TMP_SUFFIX", "append_line", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
    "HOME_ENV", "REPO_ROOT", "data_dir", "home_dir", "runs_dir", "weights_dir",
    "MAX_CONFIG_BYTES", "ConfigBase", "Spec", "check_settings", "field_types",
    "parse_json_object", "setting", "spec_of",
]
