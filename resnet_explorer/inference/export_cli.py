"""`python -m resnet_explorer.export MODEL_NAME --format onnx --out PATH [--opset N]
[--no-dynamic-batch]`: a stored model as an ONNX file.

The graph takes the preprocessed tensor; its metadata carries mean, std, input size and class
names (see inference/export.py). Exit status 0 when written, 2 for anything the person can fix
(an unknown model, a path that cannot be written, an opset out of range).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..analysis.report import si
from ..common.errors import ModelError, UserError
from ..models import store
from .export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, export_onnx

__all__ = ["main"]

FORMATS = ("onnx",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_explorer.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL_NAME", help="a model in the store (weights/)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", required=True, type=Path, help="the file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset, {MIN_OPSET}–{MAX_OPSET} (default {DEFAULT_OPSET})")
    parser.add_argument("--dynamic-batch", action=argparse.BooleanOptionalAction, default=True,
                        help="a free batch dimension (default); --no-dynamic-batch fixes it to 1")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="default: weights/ in the home")
    args = parser.parse_args(argv)
    try:
        _check_exists(args.model, args.weights_dir)
        if args.out.is_dir():
            raise ModelError(f"--out {args.out} is a folder; give a file name such as "
                             f"{args.out / (args.model + '.onnx')}")
        path = export_onnx(args.model, args.out, opset=args.opset,
                           dynamic_batch=args.dynamic_batch, weights_dir=args.weights_dir)
    except (OSError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    batch = "dynamic batch" if args.dynamic_batch else "batch 1"
    print(f"wrote {path} ({si(path.stat().st_size)}B, ONNX opset {args.opset}, {batch})")
    return 0


def _check_exists(name: str, weights_dir: Path | None) -> None:
    """An unknown name is told with the names that exist, not as a missing sidecar."""
    weights, _ = store.model_files(name, weights_dir)
    if weights.is_file():
        return
    names = [info.name for info in store.list_models(weights_dir)]
    known = f"; stored models: {', '.join(names)}" if names else "; the store is empty"
    raise ModelError(f"there is no model named {name!r} in {weights.parent}{known}")
