"""Safe extraction of an uploaded zip of class folders into the data folder.

A zip from a browser is untrusted. Nothing in it decides where a file lands:
every entry is checked to stay inside the upload folder (no absolute paths, no
`..`, no drive letters), links are never created, only image files whose
bytes decode are written, and the total size, file count and compression
ratio are capped, counting the bytes actually inflated rather than trusting
the sizes the archive declares. The result is published with one directory
rename, so a half-extracted upload is never visible, and is named after the
archive's hash: uploading the same zip again reuses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import lzma
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..common.errors import DataError, ImageRejected, UserError
from ..common.fileio import atomic_write_json
from ..common.limits import DATASET_ZIP_UPLOAD, UploadLimit
from . import imaging
from .folders import IMAGE_EXTENSIONS, SPLIT_NAMES, uploads_dir

__all__ = ["ZipLimits", "UploadReport", "extract_zip", "extract_upload"]

_log = logging.getLogger(__name__)
_REPORT = ".report.json"


@dataclass(frozen=True)
class ZipLimits:
    max_total_bytes: int = 2 * 2**30  # inflated bytes over all extracted files
    max_files: int = 50_000  # image entries
    max_entries: int = 200_000  # all entries, checked before any work
    max_ratio: float = 100.0  # inflated/compressed for one entry (images barely compress)
    ratio_min_bytes: int = 4096  # entries above this size get the per-entry ratio check
    # Declared image bytes over the zip's size: many entries each just under the per-entry
    # checks (small, highly compressible BMPs, say) add up to a bomb too.
    max_archive_ratio: float = 20.0
    max_file_bytes: int = imaging.MAX_IMAGE_BYTES
    upload: UploadLimit = DATASET_ZIP_UPLOAD  # the zip itself, before it is opened


@dataclass
class UploadReport:
    name: str  # pass as TrainConfig.data_path with dataset="upload"
    classes: dict[str, int]  # images per class, both splits together
    has_split: bool = False  # the zip had its own train/ and val/ folders
    not_images: int = 0
    corrupt: int = 0
    links: int = 0
    outside_class_folder: int = 0
    problems: list[str] = field(default_factory=list)  # a few example reasons

    @property
    def images(self) -> int:
        return sum(self.classes.values())

    def lines(self) -> list[str]:
        """The report for a person: classes and counts, then what was left out and why."""
        out = [f"{self.images:,} images in {len(self.classes)} classes"
               + (" (with its own train/val split)" if self.has_split else "")]
        out += [f"{name}: {count:,}" for name, count in self.classes.items()]
        for count, what in ((self.corrupt, "unreadable image(s)"), (self.not_images, "non-image file(s)"),
                            (self.links, "link(s)"),
                            (self.outside_class_folder, "file(s) outside a class folder")):
            if count:
                out.append(f"skipped {count:,} {what}")
        out += self.problems[:5]
        return out


def extract_zip(data: bytes, filename: str, *, root: Path | None = None,
                limits: ZipLimits = ZipLimits()) -> UploadReport:
    """Extract `data` (the zip's bytes) under data/uploads/<name>/ and report what is in it."""
    limits.upload.check(filename, len(data))
    digest = hashlib.sha256(data).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(filename).stem).strip(".-")[:40] or "upload"
    name = f"{stem}-{digest}"
    base = uploads_dir(root)
    final = base / name
    if (final / _REPORT).is_file():  # same bytes were extracted before
        return UploadReport(**json.loads((final / _REPORT).read_text()))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:  # e.g. NotImplementedError for an unknown zip version
        raise DataError(f"{filename} is not a readable zip file ({_why(exc)})") from None
    with archive:
        report = UploadReport(name=name, classes={})
        entries = _select_entries(archive, report, limits, len(data))
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=base))
        try:
            _extract(archive, entries, tmp, report, limits)
            if len(report.classes) < 2:
                raise DataError(f"{filename} needs at least two class folders with images; found "
                                f"{len(report.classes)}. " + "; ".join(report.lines()[1:]))
            atomic_write_json(tmp / _REPORT, asdict(report))
            try:
                tmp.rename(final)
            except OSError:  # another session published the same upload first
                if not (final / _REPORT).is_file():
                    raise
            return report
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def extract_upload(cache: dict[str, UploadReport | str], upload_id: str, data: bytes, filename: str,
                   *, root: Path | None = None) -> UploadReport | str:
    """`extract_zip` once per upload: its report, or why it was refused, as a message.

    For the page, which reruns on every click: `cache` (per browser session) remembers a
    refusal too, so a bad or hostile zip is not inflated again on each rerun. Any error,
    even an unexpected one, becomes a message; unexpected ones are logged with traceback.
    """
    if upload_id not in cache:
        try:
            cache[upload_id] = extract_zip(data, filename, root=root)
        except UserError as exc:  # DataError, or UploadTooLarge
            cache[upload_id] = str(exc)
        except Exception as exc:  # a bug here must not show the user a traceback
            _log.exception("extracting %s failed", filename)
            cache[upload_id] = f"could not extract {filename}: {type(exc).__name__}: {_why(exc)}"
    return cache[upload_id]


Entry = tuple[zipfile.ZipInfo, str | None, str]  # (info, split or None, class name)
# What a damaged archive raises from zipfile: its own errors, but also the decompressors'
# (zlib.error, lzma.LZMAError, EOFError for a truncated stream) and NotImplementedError for
# a version or method it does not support.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError,
               ValueError, NotImplementedError, zlib.error, lzma.LZMAError)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # EOFError has no message


def _select_entries(archive: zipfile.ZipFile, report: UploadReport, limits: ZipLimits,
                    zip_bytes: int) -> list[Entry]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise DataError(f"the zip has {len(infos):,} entries; the limit is {limits.max_entries:,}")
    candidates: list[tuple[zipfile.ZipInfo, list[str]]] = []
    declared = 0
    for info in infos:
        raw = info.filename.replace("\\", "/")
        parts = [p for p in raw.split("/") if p not in ("", ".")]
        if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw) or ".." in parts:
            raise DataError(f"refused: the zip entry {info.filename!r} would land outside the "
                            "upload folder")
        if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue  # folders are implied by files; hidden and macOS metadata are noise
        if stat.S_ISLNK(info.external_attr >> 16):
            report.links += 1
            continue
        if Path(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
            report.not_images += 1
            continue
        declared += info.file_size
        if declared > limits.max_total_bytes:
            raise DataError(f"the zip inflates to more than {limits.max_total_bytes / 2**30:.1f} GiB")
        if info.file_size > limits.ratio_min_bytes \
                and info.file_size > limits.max_ratio * max(1, info.compress_size):
            raise DataError(f"refused: {info.filename!r} compresses {info.file_size // max(1, info.compress_size)}:1"
                            " (a zip bomb?)")
        candidates.append((info, parts))
    if declared > limits.max_archive_ratio * zip_bytes:
        raise DataError(f"refused: the zip's images inflate to {declared / max(zip_bytes, 1):.0f} "
                        f"times its size; the limit is {limits.max_archive_ratio:.0f} (a zip bomb?)")
    if len(candidates) > limits.max_files:
        raise DataError(f"the zip has {len(candidates):,} images; the limit is {limits.max_files:,}")
    return _layout(candidates, report)


def _layout(candidates: list[tuple[zipfile.ZipInfo, list[str]]], report: UploadReport) -> list[Entry]:
    """class/file or train|val/class/file, below any common wrapper folders."""
    paths = [parts for _, parts in candidates]
    while (paths and all(len(p) > 2 for p in paths) and len({p[0] for p in paths}) == 1
           and paths[0][0].lower() not in SPLIT_NAMES):
        paths = [p[1:] for p in paths]  # "my-dataset/cat/1.jpg" → "cat/1.jpg"
    tops = {p[0].lower() for p in paths if len(p) > 2}
    split = bool(tops) and tops <= set(SPLIT_NAMES) and {"train", "val"} <= {SPLIT_NAMES[t] for t in tops}
    report.has_split = split
    entries: list[Entry] = []
    folder_of: dict[str, str] = {}  # stored class name → the zip's folder name it came from
    for (info, _), parts in zip(candidates, paths):
        where = None
        if split and len(parts) > 2 and parts[0].lower() in SPLIT_NAMES:
            where, parts = SPLIT_NAMES[parts[0].lower()], parts[1:]
        if len(parts) < 2 or (split and where is None):
            report.outside_class_folder += 1
            continue
        stored = _safe_component(parts[0])
        first = folder_of.setdefault(stored, parts[0])
        if first != parts[0]:  # two classes would silently become one
            raise DataError(f"the class folders {first[:120]!r} and {parts[0][:120]!r} would both "
                            f"be stored as {stored[:120]!r} (characters such as ':' become '_', "
                            "names are cut at 100 characters); rename one of them")
        entries.append((info, where, stored))
    return entries


def _extract(archive: zipfile.ZipFile, entries: list[Entry], dest: Path, report: UploadReport,
             limits: ZipLimits) -> None:
    total = 0
    dest_resolved = dest.resolve()
    for index, (info, split, class_name) in enumerate(entries):
        try:
            payload = _read_capped(archive, info, limits.max_file_bytes)
        except _ZIP_ERRORS as exc:
            # A damaged entry (bad CRC, broken deflate stream, truncated, encrypted: a
            # RuntimeError) is skipped and counted like an unreadable image; the rest is kept.
            _skip_corrupt(report, f"{info.filename}: damaged in the zip ({_why(exc)})")
            continue
        total += len(payload)
        if total > limits.max_total_bytes:
            raise DataError(f"the zip inflates to more than {limits.max_total_bytes / 2**30:.1f} GiB")
        try:
            imaging.decode_image(payload, mode="RGB", name=info.filename)
        except ImageRejected as exc:
            _skip_corrupt(report, str(exc))
            continue
        folder = dest / split / class_name if split else dest / class_name
        target = (folder / f"{index:06d}-{_safe_component(Path(info.filename).name)}").resolve()
        if dest_resolved not in target.parents:  # belt and braces: checked names cannot escape
            raise DataError(f"refused: {info.filename!r} would land outside the upload folder")
        folder.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)  # invisible until the whole folder is renamed into place
        report.classes[class_name] = report.classes.get(class_name, 0) + 1
    report.classes = dict(sorted(report.classes.items()))


def _skip_corrupt(report: UploadReport, reason: str) -> None:
    report.corrupt += 1
    if len(report.problems) < 20:  # examples, not a full log
        report.problems.append(reason)


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Inflate one entry, stopping as soon as it exceeds what it declared or the cap."""
    limit = min(info.file_size, cap)
    if info.file_size > cap:
        raise ValueError(f"larger than {cap // 2**20} MB")
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError("inflates beyond its declared size")
    return data


def _safe_component(name: str) -> str:
    """One path component: no separators or control characters, bounded length."""
    cleaned = re.sub(r"[\x00-\x1f/\\:]+", "_", name).strip() or "_"
    return cleaned[:100] if cleaned not in (".", "..") else "_"
