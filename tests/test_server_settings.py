"""The server's safe defaults and the one table of upload limits, read where they live:
.streamlit/config.toml, resnet_explorer/common/limits.py, the rooms' own size constants and
every st.file_uploader call in app_pages/ and ui/ (read from the source, so an upload box
added later is held to the table too)."""

from __future__ import annotations

import ast
import ipaddress
import tomllib
from pathlib import Path

import pytest

from resnet_explorer.common import (CONFIG_UPLOAD, DATASET_ZIP_UPLOAD, IMAGE_UPLOAD,
                                    MAX_CONFIG_BYTES, MODEL_UPLOAD, SERVER_MAX_UPLOAD_MB,
                                    UPLOAD_LIMITS, ConfigError, UploadLimit, UploadTooLarge,
                                    UserError, limits, parse_json_object)
from resnet_explorer.datasets import MAX_IMAGE_BYTES, decode_image
from resnet_explorer.datasets import uploads
from resnet_explorer.datasets.uploads import ZipLimits, extract_upload, extract_zip
from resnet_explorer.models import MAX_MODEL_BYTES

REPO = Path(__file__).resolve().parents[1]
SERVER = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]
TABLE = {name for name, value in vars(limits).items() if isinstance(value, UploadLimit)}


def test_the_server_listens_on_this_machine_only():
    assert ipaddress.ip_address(SERVER.get("address", "0.0.0.0")).is_loopback


def test_xsrf_protection_is_on():
    assert SERVER.get("enableXsrfProtection") is True


def test_the_server_accepts_exactly_the_largest_upload_limit():
    # Below it, a box stating more than the server takes ends in a bare "413"; above it, a
    # client that skips the browser could send any box more than any consumer allows.
    assert SERVER["maxUploadSize"] == SERVER_MAX_UPLOAD_MB
    assert SERVER_MAX_UPLOAD_MB == max(limit.megabytes for limit in UPLOAD_LIMITS)
    assert {getattr(limits, name) for name in TABLE} == set(UPLOAD_LIMITS)


def test_every_box_reads_its_limit_as_set():
    # Above DISPLAYED_MB_MAX the box would round to whole gigabytes ("1GB per file" for 512),
    # promising twice what the server takes.
    assert all(1 <= limit.megabytes <= limits.DISPLAYED_MB_MAX for limit in UPLOAD_LIMITS)


def test_the_rooms_enforce_the_limits_of_the_table():
    assert MAX_IMAGE_BYTES == IMAGE_UPLOAD.max_bytes
    assert MAX_MODEL_BYTES == MODEL_UPLOAD.max_bytes
    assert MAX_CONFIG_BYTES == CONFIG_UPLOAD.max_bytes
    assert ZipLimits().upload == DATASET_ZIP_UPLOAD


def _uploader_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for path in sorted([*REPO.glob("app_pages/*.py"), *REPO.glob("ui/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name) \
                    and getattr(node.func, "attr", getattr(node.func, "id", "")) == "file_uploader":
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", node))
    return calls


def test_every_upload_box_states_its_limit_from_the_table():
    calls = _uploader_calls()
    assert len(calls) >= 5  # images, model files, dataset zip, architecture and recipe JSON
    for where, call in calls:
        size = {k.arg: k.value for k in call.keywords}.get("max_upload_size")
        assert size is not None, f"{where}: the upload box states no limit (Streamlit's 200 MB)"
        assert isinstance(size, ast.Attribute) and size.attr == "megabytes" \
            and isinstance(size.value, ast.Name) and size.value.id in TABLE, \
            f"{where}: max_upload_size={ast.unparse(size)} is not an entry of common/limits.py"


def test_a_limit_refuses_in_words_what_is_over_it():
    limit = UploadLimit("a dataset zip", 2)
    limit.check("ok.zip", 2 * 2**20)
    with pytest.raises(UploadTooLarge, match=r"^big.zip is 2.5 MB; a dataset zip may be at most "
                                             r"2 MB$"):
        limit.check("big.zip", int(2.5 * 2**20))


def test_an_oversized_zip_is_refused_with_a_message_before_it_is_opened(tmp_path, monkeypatch,
                                                                       caplog):
    small = ZipLimits(upload=UploadLimit("a dataset zip", 1))
    data = b"PK\x03\x04" + bytes(2**20)
    with pytest.raises(UploadTooLarge, match="may be at most 1 MB"):
        extract_zip(data, "big.zip", root=tmp_path, limits=small)
    assert not (tmp_path / "uploads").exists()  # nothing extracted, not even a temp folder
    # The page's path turns it into a message, not an exception, and logs no bug.
    monkeypatch.setattr(uploads, "extract_zip",
                        lambda data, name, root: extract_zip(data, name, root=root, limits=small))
    assert extract_upload({}, "id", data, "big.zip", root=tmp_path) == \
        "big.zip is 1.0 MB; a dataset zip may be at most 1 MB"
    assert not caplog.records


def test_oversized_images_and_configs_get_a_message():
    with pytest.raises(UserError, match="too large"):
        decode_image(b"\xff\xd8\xff" + bytes(IMAGE_UPLOAD.max_bytes), name="huge.jpg")
    with pytest.raises(ConfigError, match="the limit is"):
        parse_json_object(b" " * (CONFIG_UPLOAD.max_bytes + 1))
