"""Inference benchmark: upload bytes → top-5, ours against the plain torchvision pipeline.

    .venv/bin/python bench/inference.py [--repeats 30] [--device cpu|cuda|auto]

Both paths use a full ResNet34 with the same random weights (no download) and start from
the same JPEG bytes of a 224×224 photo:
* torchvision: PIL.Image.open → .convert("RGB") → weights.transforms() → model under
  torch.no_grad() → softmax → top-5;
* ours: Predictor.classify (content sniffing, size caps, EXIF orientation, resize/crop,
  inference_mode forward, top-5 with labels).
Runs alternate so drift on a shared machine hits both alike; medians are reported.
Ratio = ours / torchvision time (≤ 1.0: ours is no slower). Then images/s for a batch of 32.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from torchvision.models import ResNet34_Weights

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resnet_explorer.arch import BASELINE, build_model
from resnet_explorer.common.devices import resolve_device
from resnet_explorer.inference import Predictor
from resnet_explorer.models import ModelCard, imagenet_sidecar


def photo_bytes() -> bytes:
    img = Image.fromarray(skdata.chelsea())  # 451×300 real photo
    side = min(img.size)
    left = (img.width - side) // 2
    img = img.crop((left, 0, left + side, side)).resize((224, 224), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


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
    predictor = Predictor(ours, ModelCard.from_sidecar(imagenet_sidecar()), device)
    transform = ResNet34_Weights.IMAGENET1K_V1.transforms()
    data = photo_bytes()

    def torchvision_top5(blobs: list[bytes]) -> list[list[int]]:
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]
        x = torch.stack([transform(im) for im in images]).to(device)
        with torch.no_grad():
            probs = reference(x).softmax(1)
        return probs.topk(5, dim=1).indices.tolist()

    def our_top5(blobs: list[bytes]) -> list[list[int]]:
        results = predictor.classify([(f"{i}.jpg", b) for i, b in enumerate(blobs)], k=5)
        return [list(r.topk.indices) for r in results]

    assert torchvision_top5([data]) == our_top5([data]), "the two pipelines disagree"

    def timed(fn, blobs: list[bytes]) -> float:
        sync(device)
        start = time.perf_counter()
        fn(blobs)
        sync(device)
        return time.perf_counter() - start

    def compare(blobs: list[bytes], repeats: int) -> tuple[float, float]:
        for _ in range(3):  # warm-up: allocator, oneDNN/cuDNN kernel choice
            timed(torchvision_top5, blobs), timed(our_top5, blobs)
        tv, mine = [], []
        for _ in range(repeats):
            tv.append(timed(torchvision_top5, blobs))
            mine.append(timed(our_top5, blobs))
        return statistics.median(tv), statistics.median(mine)

    print(f"device: {device} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}")
    tv1, ours1 = compare([data], args.repeats)
    print(f"one 224×224 JPEG, bytes → top-5: torchvision {tv1 * 1e3:.1f} ms, "
          f"ours {ours1 * 1e3:.1f} ms, ratio {ours1 / tv1:.3f}")
    batch = [data] * args.batch
    tvb, oursb = compare(batch, max(5, args.repeats // 4))
    print(f"batch of {args.batch}: torchvision {args.batch / tvb:.1f} images/s, "
          f"ours {args.batch / oursb:.1f} images/s, ratio {oursb / tvb:.3f}")


if __name__ == "__main__":
    main()
