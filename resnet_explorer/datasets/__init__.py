"""Images for training: the catalogue of sources (plain data), loading whole datasets into
memory, image folders and zip uploads, safe decoding of any uploaded image, and the batched
on-device transforms shared by training and inference.

Imports `common` only.
"""

from .catalogue import SOURCES, Augment, SourceInfo, crop_resize_for, source_info
from .folders import FOLDER_ROOTS_ENV, IMAGE_EXTENSIONS, resolve_folder, scan_folder, uploads_dir
from .imaging import MAX_IMAGE_BYTES, decode_image, sniff_format
from .loading import DatasetSummary, ImageData, describe_dataset, load_dataset
from .transforms import BatchTransform, Preprocess, fit_side, resize_center_crop
from .uploads import UploadReport, ZipLimits, extract_upload, extract_zip

__all__ = [
    "SOURCES", "Augment", "SourceInfo", "crop_resize_for", "source_info",
    "FOLDER_ROOTS_ENV", "IMAGE_EXTENSIONS", "resolve_folder", "scan_folder",
    "MAX_IMAGE_BYTES", "decode_image", "sniff_format",
    "DatasetSummary", "ImageData", "describe_dataset", "load_dataset",
    "BatchTransform", "Preprocess", "fit_side", "resize_center_crop",
    "UploadReport", "ZipLimits", "extract_upload", "extract_zip", "uploads_dir",
]
