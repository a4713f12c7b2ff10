"""`python -m resnet_explorer.sweep`: an ablation sweep (the CLI is experiments/sweep_cli.py)."""

import sys

from .experiments.sweep_cli import main

if __name__ == "__main__":
    sys.exit(main())
