"""Training benchmarks: trainer overhead and the quick recipe's time to 97 %.

    .venv/bin/python bench/train.py                  # CPU: overhead ratio + quick recipe
    .venv/bin/python bench/train.py --skip-recipe    # only the overhead ratio
    .venv/bin/python bench/train.py --gpu            # + the GPU check's training rows

1. Overhead: images/s of `Trainer.train_epoch` against a bare PyTorch loop on the same
   model, batch, optimizer and in-memory data, in this process. Both apply the same batch
   transform (augmentation + normalization), so the ratio isolates what the trainer adds
   (lr schedule, device-side metric sums, stop checks, logging). Rounds alternate so
   drift on a shared machine hits both alike; the median ratio is reported (target ≥ 0.97).
2. Quick recipe: full-width ResNet34 on digits with the default TrainConfig, through the
   real trainer (run directory, checkpoints, model files); wall time until validation
   accuracy first reaches 97 %.
3. --gpu: the training rows of the GPU check (bench/gpu_bench.py's `train` phase: ResNet34
   at 224 px, batch 256, fp32 / bf16 / bf16 + channels_last, trainer against the bare loop),
   printed here; `bash bench/gpu.sh OUT_DIR` runs the whole check and writes its table.

The timing itself is bench/measure.py, shared with the GPU check.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import overhead, quick_recipe
from resnet_explorer.arch import BASELINE
from resnet_explorer.datasets import load_dataset
from resnet_explorer.training import QUICK


# The overhead is measured at 32 px, where each step computes least, so the trainer's own work
# shows most (the README's row); the quick recipe runs at its own size.
OVERHEAD_SIZE = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    cpu = torch.device("cpu")
    data = load_dataset("digits", channels=3, image_size=OVERHEAD_SIZE)
    arch = replace(BASELINE, num_classes=10)
    cfg = replace(QUICK, device="cpu")
    o = overhead(arch, replace(cfg, image_size=OVERHEAD_SIZE), data, cpu, args.rounds)
    print(f"[cpu] ResNet34 {OVERHEAD_SIZE} px batch {o.batch}: trainer "
          f"{o.trainer_images_per_s:.0f} img/s, bare loop {o.bare_images_per_s:.0f} img/s, "
          f"ratio {o.ratio:.3f} (target ≥ 0.97; median of {o.rounds} rounds)")
    if not args.skip_recipe:
        r = quick_recipe(BASELINE, cfg)
        print(f"[cpu] quick recipe (ResNet34, digits, {QUICK.image_size} px, {QUICK.epochs} "
              f"epochs): {r['state']}, best val acc {r['best_val_acc']:.2%}, wall "
              f"{r['wall_s']:.1f} s; ≥ 97 % after epoch {r['epoch_97']} at "
              f"{r['train_s_97'] or float('nan'):.1f} s of training")
    if args.gpu:
        from bench import gpu_bench

        with tempfile.TemporaryDirectory() as tmp:
            gpu_bench.main(["train", "--out", tmp, "--budget", "120"])
            for row in gpu_bench.read_rows(Path(tmp)):
                print(f"[cuda] ResNet34 {row['size']} px batch {row['batch']}, {row['setting']}: "
                      f"trainer {row['trainer_images_per_s']:.0f} img/s, bare "
                      f"{row['bare_images_per_s']:.0f} img/s, ratio {row['ratio']:.3f}")


if __name__ == "__main__":
    main()
