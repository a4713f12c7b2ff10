"""Training benchmarks: trainer overhead and the quick recipe's time to 97 %.

    .venv/bin/python bench/train.py                  # CPU: overhead ratio + quick recipe
    .venv/bin/python bench/train.py --skip-recipe    # only the overhead ratio
    .venv/bin/python bench/train.py --gpu            # + ResNet34 at 224, bf16, channels_last

1. Overhead: images/s of `Trainer.train_epoch` against a bare PyTorch loop on the same
   model, batch, optimizer and in-memory data, in this process. Both apply the same batch
   transform (augmentation + normalization), so the ratio isolates what the trainer adds
   (lr schedule, device-side metric sums, stop checks, logging). Rounds alternate so
   drift on a shared machine hits both alike; the median ratio is reported (target ≥ 0.97).
2. Quick recipe: full-width ResNet34 on digits with the default TrainConfig, through the
   real trainer (run directory, checkpoints, model files); wall time until validation
   accuracy first reaches 97 %.
3. GPU: the same overhead ratio for a full ResNet34 at 224×224 on synthetic data, with
   bf16 autocast and channels_last, plus their speed-up over fp32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resnet_explorer.arch import BASELINE, ArchConfig
from resnet_explorer.datasets import Augment, ImageData, Preprocess, load_dataset
from resnet_explorer.runs import RunPaths, read_jsonl
from resnet_explorer.training import QUICK, TrainConfig, Trainer, run_training


def bare_images_per_s(trainer: Trainer, steps: int) -> float:
    """The textbook loop on the trainer's own model, optimizer, data and transform."""
    model, opt, data, dev = trainer.model, trainer.optimizer, trainer.data, trainer.device
    gen = torch.Generator(device=dev).manual_seed(0)
    n, b = len(data.train_y), trainer.batch
    model.train()
    sync(dev)
    start = time.perf_counter()
    for i in range(steps):
        idx = torch.randint(0, n, (b,), device=data.train_y.device, generator=None)
        x = trainer.transform.train(data.train_x[idx], gen)
        with trainer._autocast():
            loss = F.cross_entropy(model(x), data.train_y[idx],
                                   label_smoothing=trainer.cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(dev)
    return steps * b / (time.perf_counter() - start)


def trainer_images_per_s(trainer: Trainer) -> float:
    sync(trainer.device)
    start = time.perf_counter()
    trainer.train_epoch()
    sync(trainer.device)
    return trainer.steps_per_epoch * trainer.batch / (time.perf_counter() - start)


def overhead_ratio(arch: ArchConfig, cfg: TrainConfig, data: ImageData, device: torch.device,
                   rounds: int = 3) -> tuple[float, float, float]:
    """(median trainer/bare ratio, trainer images/s, bare images/s)."""
    trainer = Trainer(arch, cfg, data, device)
    trainer_images_per_s(trainer)  # warm-up: allocator, cudnn autotuning, first-touch
    bare_images_per_s(trainer, 3)
    ratios, ours, bare = [], [], []
    for _ in range(rounds):
        ours.append(trainer_images_per_s(trainer))
        bare.append(bare_images_per_s(trainer, trainer.steps_per_epoch))
        ratios.append(ours[-1] / bare[-1])
    return statistics.median(ratios), statistics.median(ours), statistics.median(bare)


def synthetic_data(n: int, size: int, classes: int = 10) -> ImageData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    pre = Preprocess(channels=3, size=size, resize=size, mean=(0.5,) * 3, std=(0.25,) * 3)
    return ImageData("synthetic", [str(i) for i in range(classes)], x, y, x[:64], y[:64], pre,
                     Augment(flip=True, translate=0.1))


def quick_recipe(arch: ArchConfig = BASELINE, cfg: TrainConfig = QUICK) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        status = run_training(arch, cfg, Path(tmp) / "run", weights_dir=Path(tmp) / "w", echo=False)
        wall = time.perf_counter() - start
        epochs = [r for r in read_jsonl(RunPaths(Path(tmp) / "run").metrics) if r["kind"] == "epoch"]
    hit = next((r for r in epochs if r.get("val_acc", 0) >= 0.97), None)
    return {"state": status["state"], "best_val_acc": status.get("final", {}).get("best_val_acc"),
            "wall_s": wall, "epoch_97": hit["epoch"] if hit else None,
            "train_s_97": hit["elapsed_s"] if hit else None}


def gpu_figures(steps_data: int = 2048, batch: int = 128) -> dict[str, float]:
    device = torch.device("cuda")
    data = synthetic_data(steps_data, 224)
    arch = replace(BASELINE, num_classes=10)
    fast = TrainConfig(batch_size=batch, precision="bf16", channels_last="on", epochs=1,
                       warmup_epochs=0)
    ratio, ours, bare = overhead_ratio(arch, fast, data, device)
    fp32 = replace(fast, precision="fp32", channels_last="off")
    _, ours_fp32, _ = overhead_ratio(arch, fp32, data, device, rounds=1)
    return {"ratio": ratio, "images_per_s": ours, "bare_images_per_s": bare,
            "fp32_images_per_s": ours_fp32, "speedup_vs_fp32": ours / ours_fp32}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    cpu = torch.device("cpu")
    data = load_dataset("digits", channels=3, image_size=QUICK.image_size)
    arch = replace(BASELINE, num_classes=10)
    ratio, ours, bare = overhead_ratio(arch, QUICK, data, cpu, args.rounds)
    print(f"[cpu] ResNet34 32 px batch {QUICK.batch_size}: trainer {ours:.0f} img/s, bare loop "
          f"{bare:.0f} img/s, ratio {ratio:.3f} (target ≥ 0.97)")
    if not args.skip_recipe:
        r = quick_recipe()
        print(f"[cpu] quick recipe (ResNet34, digits, {QUICK.epochs} epochs): {r['state']}, best "
              f"val acc {r['best_val_acc']:.2%}, wall {r['wall_s']:.1f} s; ≥ 97 % after epoch "
              f"{r['epoch_97']} at {r['train_s_97'] or float('nan'):.1f} s of training")
    if args.gpu:
        g = gpu_figures()
        print(f"[cuda] ResNet34 224 px bf16+channels_last: trainer {g['images_per_s']:.0f} img/s, "
              f"bare {g['bare_images_per_s']:.0f} img/s, ratio {g['ratio']:.3f}; "
              f"{g['speedup_vs_fp32']:.2f}× fp32 ({g['fp32_images_per_s']:.0f} img/s)")


if __name__ == "__main__":
    main()
