"""`python -m resnet_explorer.analysis`: the layer table and totals of a configuration as text."""

from __future__ import annotations

import argparse
import sys

from ..arch.config import PRESETS, ArchConfig
from ..common.errors import ConfigError
from ..common.schema import MAX_CONFIG_BYTES
from .report import text_report
from .summary import analyze, parse_input_size, torchinfo_text


def _load_config(args: argparse.Namespace) -> ArchConfig:
    if args.config:
        try:
            with open(args.config, "rb") as f:
                return ArchConfig.from_json(f.read(MAX_CONFIG_BYTES + 1))
        except OSError as exc:
            raise ConfigError(f"cannot read {args.config}: {exc.strerror}") from None
    if args.preset not in PRESETS:
        raise ConfigError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[args.preset]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_explorer.analysis",
        description="Layer table, parameters, MACs, FLOPs and memory of a ResNet configuration.")
    parser.add_argument("--config", help="architecture JSON file (default: --preset)")
    parser.add_argument("--preset", default="resnet34", help="preset name when no --config")
    parser.add_argument("--input", default=None, help="CxHxW, e.g. 3x224x224 (default: C×224×224)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--torchinfo", action="store_true", help="also print torchinfo's summary")
    args = parser.parse_args(argv)
    try:
        cfg = _load_config(args)
        size = parse_input_size(args.input) if args.input else None  # C×224×224
        result = analyze(cfg, size, args.batch)
        print(text_report(result))
        if args.torchinfo:
            print(torchinfo_text(cfg, size))
    except ConfigError as exc:
        print("error: " + "\n       ".join(exc.problems), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
