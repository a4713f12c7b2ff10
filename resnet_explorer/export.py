"""`python -m resnet_explorer.export`: a stored model as ONNX (the CLI lives in
inference/export_cli.py)."""

import sys

from .inference.export_cli import main

if __name__ == "__main__":
    sys.exit(main())
