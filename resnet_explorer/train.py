"""`python -m resnet_explorer.train`: one training run (the CLI lives in training/job.py)."""

import sys

from .training.job import main

if __name__ == "__main__":
    sys.exit(main())
