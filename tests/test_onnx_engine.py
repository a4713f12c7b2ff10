"""ONNX Runtime as the Predictor's top-k engine: the same top-k as PyTorch on the test photos,
one export per model cached next to it and checked on every read, fallbacks that say why."""

from __future__ import annotations

import logging
import os
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.common.errors import ModelError
from resnet_explorer.datasets import Preprocess
from resnet_explorer.inference import Predictor, onnx_engine
from resnet_explorer.models import ModelCard, delete_model, load_model, read_sidecar, save_model
from tests.imaging_helpers import PHOTOS, photo
from tests.inference_helpers import TINY, classify_images, sidecar_for

# The TorchScript exporter's notices (inference/export.py silences them for the program;
# pytest resets the process's filters around each test).
pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:torch\.onnx"),
    pytest.mark.filterwarnings(r"ignore::UserWarning:torch\.onnx"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]
CLASSES = 10
CONFIGS = {
    "batch norm (folded)": ArchConfig(stem="cifar", stem_width=8, blocks=(1, 1), widths=(8, 16),
                                      depthwise=(False, True), se_reduction=4,
                                      num_classes=CLASSES),
    "pre-activation, group norm, mish": ArchConfig(
        stem="deep", stem_width=8, blocks=(1, 1), widths=(8, 16), depthwise=(False, False),
        block="preact", norm="group", norm_groups=4, activation="mish", shortcut="D",
        num_classes=CLASSES),
}


def sample_images() -> list[Image.Image]:
    """The real photos, a grey one, a flipped one and a flat one."""
    images = [photo(name) for name in PHOTOS]
    return images + [images[0].convert("L").convert("RGB"),
                     images[1].transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                     Image.new("RGB", (40, 40), (120, 60, 200))]


def trained_looking(cfg: ArchConfig, seed: int = 0) -> torch.nn.Module:
    """Random weights with non-trivial batch-norm statistics, so folding them matters."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


def card_of(cfg: ArchConfig, sha256: str = "") -> ModelCard:
    return ModelCard(name="m", arch=cfg, source="trained", sha256=sha256,
                     class_names=tuple(f"c{i}" for i in range(cfg.num_classes)),
                     preprocess=Preprocess(3, 32, 36, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)))


@pytest.fixture
def count_exports(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = onnx_engine.export_onnx
    monkeypatch.setattr(onnx_engine, "export_onnx",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


# ----- the same answers --------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_onnx_top_k_equals_the_pytorch_path(cfg, one_thread):
    model = trained_looking(cfg)
    onnx, torch_path = (Predictor(model, card_of(cfg), engine=e) for e in ("onnx", "torch"))
    assert (onnx.engine, torch_path.engine) == ("onnx", "torch")
    images = sample_images()
    for a, b in zip(classify_images(onnx, images, k=CLASSES),
                    classify_images(torch_path, images, k=CLASSES)):
        assert a.topk.indices == b.topk.indices and a.topk.labels == b.topk.labels
        assert np.abs(np.subtract(a.topk.probs, b.topk.probs)).max() <= 1e-4
    # Against the network as built, before the Predictor folded its batch norms.
    x = onnx.to_input([onnx.prepare(img) for img in images], channels_last=False)
    with torch.no_grad():
        assert (onnx.logits(x) - model(x)).abs().max() <= 1e-4


def test_gradcam_still_runs_in_pytorch_with_the_same_top_k(one_thread):
    cfg = CONFIGS["batch norm (folded)"]
    predictor = Predictor(trained_looking(cfg), card_of(cfg), engine="onnx")
    images = sample_images()[:3]
    plain = classify_images(predictor, images, k=3)
    with_cam = classify_images(predictor, images, k=3, cam=True)
    assert [r.topk.indices for r in plain] == [r.topk.indices for r in with_cam]
    assert all(r.cam is not None and r.cam.size == (32, 32) for r in with_cam)


def test_session_threads_follow_torch_and_every_optimisation_is_on(one_thread):
    cfg = CONFIGS["batch norm (folded)"]
    predictor = Predictor(trained_looking(cfg), card_of(cfg), engine="onnx")
    classify_images(predictor, sample_images()[:1])
    options = predictor._onnx()._session.get_session_options()
    assert options.intra_op_num_threads == torch.get_num_threads() == 1
    assert options.graph_optimization_level == onnx_engine.load_onnxruntime()[0] \
        .GraphOptimizationLevel.ORT_ENABLE_ALL


def test_concurrent_first_requests_export_once(count_exports, one_thread):
    cfg = CONFIGS["batch norm (folded)"]
    predictor = Predictor(trained_looking(cfg), card_of(cfg), engine="onnx")
    images, results = sample_images()[:2], []
    threads = [threading.Thread(target=lambda: results.append(classify_images(predictor, images)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(count_exports) == 1
    assert all([r.topk for r in res] == [r.topk for r in results[0]] for res in results)


def test_a_predictor_used_only_for_gradcam_never_exports(count_exports, one_thread):
    cfg = CONFIGS["batch norm (folded)"]
    predictor = Predictor(trained_looking(cfg), card_of(cfg))
    classify_images(predictor, sample_images()[:1], cam=True)
    assert count_exports == [] and predictor.engine == "onnx"


# ----- the cache next to the model ---------------------------------------------------------
@pytest.fixture
def stored(store_home) -> tuple:
    weights = store_home / "weights"
    save_model(trained_looking(TINY), sidecar_for(name="tiny"), "tiny", weights)
    return weights, weights / onnx_engine.CACHE_FOLDER


def cached_files(cache) -> list:
    return sorted(p for p in cache.iterdir()) if cache.is_dir() else []


def test_a_stored_model_is_exported_once_and_reused(stored, count_exports, one_thread):
    weights, cache = stored
    first = classify_images(Predictor.from_store("tiny", weights), sample_images())
    (path,) = cached_files(cache)
    sha = read_sidecar("tiny", weights)["sha256"]
    assert path.name.startswith(sha + "-") and path.suffix == ".onnx"
    again = classify_images(Predictor.from_store("tiny", weights), sample_images())
    assert len(count_exports) == 1 and [r.topk for r in again] == [r.topk for r in first]


@pytest.mark.parametrize("damage", ["truncated", "bytes changed", "not onnx, name rehashed"])
def test_a_damaged_cache_file_is_exported_again(stored, count_exports, damage, one_thread):
    weights, cache = stored
    reference = Predictor.from_store("tiny", weights, engine="torch")
    expected = classify_images(reference, sample_images())
    classify_images(Predictor.from_store("tiny", weights), sample_images())
    (path,) = cached_files(cache)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "bytes changed":  # same size: only the hash in the name tells
        path.write_bytes(data[:-200] + bytes(b ^ 0xFF for b in data[-200:-100]) + data[-100:])
    else:  # a file whose name matches its content: only ONNX Runtime can refuse it
        path.unlink()
        junk = b"not an onnx model"
        key = path.name.split(".", 1)[0]
        onnx_engine._store(cache, key, junk)
    results = classify_images(Predictor.from_store("tiny", weights), sample_images())
    assert len(count_exports) == 2
    for a, b in zip(results, expected):
        assert a.topk.indices == b.topk.indices
        assert np.abs(np.subtract(a.topk.probs, b.topk.probs)).max() <= 1e-4
    (fresh,) = cached_files(cache)
    assert onnx_engine._read_checked(fresh) is not None


def test_a_cache_that_cannot_be_written_keeps_the_export_in_memory(stored, monkeypatch, caplog,
                                                                    one_thread):
    weights, cache = stored

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(onnx_engine, "atomic_write_bytes", read_only)
    with caplog.at_level(logging.WARNING, logger=onnx_engine.__name__):
        predictor = Predictor.from_store("tiny", weights)
        results = classify_images(predictor, sample_images())
    assert predictor.engine == "onnx" and all(r.ok for r in results)
    assert cached_files(cache) == [] and "Read-only file system" in caplog.text


def test_one_weights_file_at_two_input_sizes_gets_an_export_for_each(stored, one_thread):
    weights, cache = stored
    model, _ = load_model("tiny", weights)
    save_model(model, sidecar_for(name="big", input_size=[3, 48, 48], resize=54), "big", weights)
    assert read_sidecar("big", weights)["sha256"] == read_sidecar("tiny", weights)["sha256"]
    classify_images(Predictor.from_store("tiny", weights), sample_images()[:1])
    # The 32-px export's graph has a fixed 32 x 32 input: the 48-px model must not reuse it.
    big = Predictor.from_store("big", weights)
    results = classify_images(big, sample_images()[:2])
    assert big.engine == "onnx" and all(r.ok for r in results)
    expected = classify_images(Predictor.from_store("big", weights, engine="torch"),
                               sample_images()[:2])
    assert [r.topk.indices for r in results] == [r.topk.indices for r in expected]
    assert len(cached_files(cache)) == 2  # both stay: each is the export a live model reads


def test_exports_of_deleted_models_and_old_variants_are_pruned(stored, one_thread):
    weights, cache = stored
    classify_images(Predictor.from_store("tiny", weights), sample_images()[:1])
    (export,) = cached_files(cache)
    # What an older opset or torch release left: another variant of the same weights.
    old_variant = cache / export.name.replace("-", "-0", 1)
    export.rename(old_variant)
    killed_writer = cache / f".{export.name}.abc{onnx_engine.TMP_SUFFIX}"
    killed_writer.write_bytes(b"half")
    os.utime(killed_writer, (0, 0))
    classify_images(Predictor.from_store("tiny", weights), sample_images()[:1])
    assert cached_files(cache) == [export]
    save_model(trained_looking(TINY, seed=1), sidecar_for(name="other"), "other", weights)
    classify_images(Predictor.from_store("other", weights), sample_images()[:1])
    assert len(cached_files(cache)) == 2
    delete_model("tiny", weights)
    assert onnx_engine.prune_onnx_cache(weights) == 1
    (left,) = cached_files(cache)
    assert left != export and left.name.startswith(read_sidecar("other", weights)["sha256"])


# ----- choosing the engine -----------------------------------------------------------------
def test_without_onnxruntime_top_k_runs_in_pytorch_and_says_why(monkeypatch, caplog, one_thread):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    cfg = CONFIGS["batch norm (folded)"]
    with caplog.at_level(logging.INFO):
        predictor = Predictor(trained_looking(cfg), card_of(cfg))
    assert predictor.engine == "torch" and "onnxruntime" in predictor.engine_note
    assert "top-k runs in PyTorch" in caplog.text and "onnxruntime" in caplog.text
    assert all(r.ok for r in classify_images(predictor, sample_images()[:2]))
    with pytest.raises(ModelError, match="pip install onnxruntime"):
        Predictor(trained_looking(cfg), card_of(cfg), engine="onnx")


def test_a_failed_export_falls_back_to_pytorch_unless_onnx_was_asked_for(monkeypatch, caplog,
                                                                          one_thread):
    def refuse(*args, **kwargs):
        raise ModelError("layer fc (Linear) cannot be exported to ONNX opset 17: test")

    monkeypatch.setattr(onnx_engine, "export_onnx", refuse)
    cfg = CONFIGS["batch norm (folded)"]
    predictor = Predictor(trained_looking(cfg), card_of(cfg))
    with caplog.at_level(logging.WARNING):
        results = classify_images(predictor, sample_images()[:2])
    assert all(r.ok for r in results) and predictor.engine == "torch"
    assert "layer fc (Linear)" in predictor.engine_note and "layer fc" in caplog.text
    strict = Predictor(trained_looking(cfg), card_of(cfg), engine="onnx")
    with pytest.raises(ModelError, match="layer fc"):
        classify_images(strict, sample_images()[:1])


def test_engine_names_are_checked():
    cfg = CONFIGS["batch norm (folded)"]
    with pytest.raises(ValueError, match="engine must be one of auto, onnx, torch"):
        Predictor(build_model(cfg), card_of(cfg), engine="tensorrt")
