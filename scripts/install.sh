#!/usr/bin/env bash
# Creates .venv in the repo root and installs the requirements into it.
# Re-running is fast: pip is only called when a requirements file changed.
#   bash scripts/install.sh         runtime packages
#   bash scripts/install.sh --dev   runtime + test packages
set -euo pipefail
cd "$(dirname "$0")/.."
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=".venv/.installed-$(basename "$req" .txt)"
digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -r "$req"
  echo "$digest" > "$stamp"
fi
