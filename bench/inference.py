"""Inference benchmark: upload bytes → top-5, both Predictor engines against plain torchvision.

    .venv/bin/python bench/inference.py [--repeats 30] [--batch 32] [--device cpu|cuda|auto]

Every path uses a full ResNet34 with the same random weights (no download) and starts from
the same JPEG bytes of a 224×224 photo:
* torchvision (the baseline): PIL.Image.open → .convert("RGB") → weights.transforms() →
  eager model under torch.no_grad() → softmax → top-5;
* ours, PyTorch engine: Predictor.classify (content sniffing, size caps, EXIF orientation,
  resize/crop, batch norms folded, inference_mode forward, top-5 with labels);
* ours, ONNX Runtime engine: the same Predictor path with the forward pass in ONNX Runtime
  (CPU only; exported in memory before timing, the export time is printed).
Each round runs every path once, in an order that rotates between rounds, so drift on a
shared machine hits all alike; medians are reported. Ratio = path time / torchvision time
(≤ 1.0: no slower). Targets (issue 10): ONNX engine ≤ 0.75 for one image, ≤ 0.65 for a batch.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from torchvision.models import ResNet34_Weights

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import sync
from resnet_explorer.analysis import measured_on
from resnet_explorer.arch import BASELINE, build_model
from resnet_explorer.common.devices import resolve_device
from resnet_explorer.inference import Predictor, load_onnxruntime
from resnet_explorer.models import ModelCard, imagenet_sidecar

TARGETS = {"single": 0.75, "batch": 0.65}  # ONNX engine time / torchvision time


def photo_bytes() -> bytes:
    img = Image.fromarray(skdata.chelsea())  # 451×300 real photo
    side = min(img.size)
    left = (img.width - side) // 2
    img = img.crop((left, 0, left + side, side)).resize((224, 224), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


Top5 = Callable[[list[bytes]], list[list[int]]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    reference = torchvision.models.resnet34().eval().to(device)
    ours = build_model(BASELINE)
    ours.load_state_dict(reference.state_dict())
    card = ModelCard.from_sidecar(imagenet_sidecar())
    transform = ResNet34_Weights.IMAGENET1K_V1.transforms()
    data = photo_bytes()

    def torchvision_top5(blobs: list[bytes]) -> list[list[int]]:
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]
        x = torch.stack([transform(im) for im in images]).to(device)
        with torch.no_grad():
            probs = reference(x).softmax(1)
        return probs.topk(5, dim=1).indices.tolist()

    def predictor_top5(predictor: Predictor) -> Top5:
        def run(blobs: list[bytes]) -> list[list[int]]:
            results = predictor.classify([(f"{i}.jpg", b) for i, b in enumerate(blobs)], k=5)
            return [list(r.topk.indices) for r in results]
        return run

    paths: dict[str, Top5] = {"torchvision (PIL + weights.transforms() + eager)": torchvision_top5,
                              "ours, PyTorch engine": predictor_top5(
                                  Predictor(ours, card, device, engine="torch"))}
    ort, why_not = load_onnxruntime()
    onnx_label = "ours, ONNX Runtime engine"
    if ort is not None and device.type == "cpu":
        onnx = Predictor(ours, card, device, engine="onnx")
        start = time.perf_counter()
        paths[onnx_label] = predictor_top5(onnx)
        paths[onnx_label]([data])  # the export and session happen on first use
        export_s = time.perf_counter() - start
    expected = torchvision_top5([data])
    for label, fn in paths.items():
        assert fn([data]) == expected, f"{label} disagrees with torchvision's top-5"

    def timed(fn: Top5, blobs: list[bytes]) -> float:
        sync(device)
        start = time.perf_counter()
        fn(blobs)
        sync(device)
        return time.perf_counter() - start

    def compare(blobs: list[bytes], repeats: int) -> dict[str, float]:
        fns = list(paths.items())
        for _ in range(2):  # warm-up: allocator, oneDNN/cuDNN kernel choice, ORT arenas
            for _, fn in fns:
                timed(fn, blobs)
        times: dict[str, list[float]] = {label: [] for label in paths}
        for r in range(repeats):
            for label, fn in fns[r % len(fns):] + fns[:r % len(fns)]:
                times[label].append(timed(fn, blobs))
        return {label: statistics.median(t) for label, t in times.items()}

    def report(title: str, medians: dict[str, float], images: int, target: float) -> None:
        print(title)
        base = next(iter(medians.values()))
        for label, t in medians.items():
            note = ""
            if label == onnx_label:
                note = f"  target ≤ {target:.2f}: {'met' if t / base <= target else 'NOT met'}"
            print(f"  {label:<50} {t * 1e3:8.1f} ms  {images / t:7.1f} img/s  "
                  f"ratio {t / base:.3f}{note}")

    ort_text = f"onnxruntime {ort.__version__}" if ort is not None else f"no ONNX engine: {why_not}"
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())  # other work on a shared machine
    print(f"machine: {measured_on('cpu')}, {os.cpu_count()} cores, load average {load}; "
          f"device {device}; {ort_text}")
    if onnx_label in paths:
        print(f"ONNX export + session on first use (in memory): {export_s:.1f} s")
    repeats_batch = max(5, args.repeats // 3)
    report(f"one 224×224 JPEG, bytes → top-5 (median of {args.repeats} rounds):",
           compare([data], args.repeats), 1, TARGETS["single"])
    report(f"batch of {args.batch} JPEGs, bytes → top-5 (median of {repeats_batch} rounds):",
           compare([data] * args.batch, repeats_batch), args.batch, TARGETS["batch"])


if __name__ == "__main__":
    main()
